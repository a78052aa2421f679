//! `brasa init`: a starting spec for an image folder — its splits, classes and counts found by
//! looking, and a model size, image size and batch chosen for this machine — written with a
//! comment on every choice, so that `brasa run` on it works as is and each line says how to
//! change it.

use std::fmt::Write;
use std::path::{Component, Path, PathBuf};

use crate::data::folder::{self, IMAGE_EXTENSIONS};
use crate::error::{Error, Result};

/// The models `brasa init` can start from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Starter {
    /// microsoft/cvt-13 fine-tuned: the reference notebook's recipe.
    Cvt13,
    /// google/vit-base-patch16-224 fine-tuned.
    VitB16,
    /// A small CvT trained from scratch: minutes on a CPU.
    CvtTiny,
}

impl Starter {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "cvt-13" => Some(Self::Cvt13),
            "vit-b16" | "vit-base-patch16-224" => Some(Self::VitB16),
            "cvt-tiny" => Some(Self::CvtTiny),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Cvt13 => "cvt-13",
            Self::VitB16 => "vit-b16",
            Self::CvtTiny => "cvt-tiny",
        }
    }
}

/// One split folder: its name under the root and its image count per class.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitSurvey {
    pub name: String,
    pub counts: Vec<(String, usize)>,
}

impl SplitSurvey {
    pub fn total(&self) -> usize {
        self.counts.iter().map(|(_, n)| n).sum()
    }
}

/// What an image folder holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Survey {
    pub root: PathBuf,
    pub train: SplitSurvey,
    pub test: Option<SplitSurvey>,
    /// Folders at the root that are neither (e.g. a `validation` one brasa does not read).
    pub unused: Vec<String>,
    /// `(width, height)` of a sample of the images: smallest, median and largest by area.
    pub sizes: Option<[(u32, u32); 3]>,
    pub sampled: usize,
}

fn is_named(name: &str, names: &[&str]) -> bool {
    names.iter().any(|n| n.eq_ignore_ascii_case(name))
}

const TRAIN_NAMES: [&str; 3] = ["train", "training", "trainset"];
const TEST_NAMES: [&str; 3] = ["test", "testing", "testset"];
const VALIDATION_NAMES: [&str; 4] = ["val", "valid", "validation", "dev"];

/// Whether `dir` holds images directly (a class folder) rather than class folders.
fn holds_images(dir: &Path) -> Result<bool> {
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if path.is_file() && path.extension().and_then(|e| e.to_str()).is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|k| k.eq_ignore_ascii_case(e))) {
            return Ok(true);
        }
    }
    Ok(false)
}

fn survey_split(root: &Path, name: &str) -> Result<(SplitSurvey, Vec<PathBuf>)> {
    let dir = root.join(name);
    let classes = folder::class_folders(&dir)?;
    let scanned = folder::scan(&dir, &classes, false)?.whole()?;
    let counts = classes.iter().enumerate().map(|(label, c)| (c.clone(), scanned.items.iter().filter(|i| i.label == label).count())).collect();
    Ok((SplitSurvey { name: name.to_string(), counts }, scanned.items.into_iter().map(|i| i.path).collect()))
}

/// Looks at the image folder `root`: `<root>/<split>/<class>/<image>` with a training split
/// (`train`, `Training`, ...) and optionally a test one, or `<root>/<class>/<image>`.
pub fn survey(root: &Path) -> Result<Survey> {
    if !root.is_dir() {
        return Err(Error::Data(format!("{} is not a folder", root.display())));
    }
    let subfolders = folder::class_folders(root)?;
    let (train, test, unused, images) = if subfolders.iter().all(|s| holds_images(&root.join(s)).unwrap_or(false)) {
        // the root's folders are the classes: one pool, split for validation only (`.` and
        // `..` have no name of their own: their absolute path does)
        let whole = std::fs::canonicalize(root).map_err(|e| Error::io(root, e))?;
        let (train, images) = survey_split(whole.parent().unwrap_or(&whole), &whole.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())?;
        (SplitSurvey { name: ".".into(), ..train }, None, Vec::new(), images)
    } else {
        let find = |names: &[&str]| subfolders.iter().find(|s| is_named(s, names)).cloned();
        let train_name = match (find(&TRAIN_NAMES), subfolders.as_slice()) {
            (Some(name), _) => name,
            (None, [only]) => only.clone(),
            (None, _) => {
                return Err(Error::Data(format!(
                    "{} has the folders {:?} but none is named like a training split ({}); rename it, or write the spec by hand with data.train",
                    root.display(),
                    subfolders,
                    TRAIN_NAMES.join(", ")
                )));
            }
        };
        let test_name = find(&TEST_NAMES).or_else(|| find(&VALIDATION_NAMES));
        let (train, mut images) = survey_split(root, &train_name)?;
        let test = match &test_name {
            Some(name) => {
                let (test, more) = survey_split(root, name)?;
                images.extend(more);
                Some(test)
            }
            None => None,
        };
        let unused = subfolders.iter().filter(|s| **s != train_name && Some(*s) != test_name.as_ref()).cloned().collect();
        (train, test, unused, images)
    };
    if train.total() == 0 {
        return Err(Error::Data(format!("{} holds no images ({})", root.join(&train.name).display(), IMAGE_EXTENSIONS.join(", "))));
    }
    let (sizes, sampled) = sample_sizes(&images, 200);
    Ok(Survey { root: root.to_path_buf(), train, test, unused, sizes, sampled })
}

/// The smallest, median and largest (by area) of up to `limit` images spread over `images`,
/// read from their headers.
fn sample_sizes(images: &[PathBuf], limit: usize) -> (Option<[(u32, u32); 3]>, usize) {
    let step = images.len().div_ceil(limit).max(1);
    let mut sizes: Vec<(u32, u32)> = images.iter().step_by(step).filter_map(|p| image::image_dimensions(p).ok()).collect();
    if sizes.is_empty() {
        return (None, 0);
    }
    sizes.sort_by_key(|(w, h)| u64::from(*w) * u64::from(*h));
    let n = sizes.len();
    (Some([sizes[0], sizes[n / 2], sizes[n - 1]]), n)
}

/// What this machine offers, for sizing the run.
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    pub cores: usize,
    pub memory_bytes: Option<u64>,
    /// The GPU `runtime.backend = "auto"` would choose.
    pub gpu: Option<String>,
}

impl Machine {
    pub fn here() -> Self {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let gpu = crate::backend::adapters().into_iter().find(|a| !a.software).map(|a| format!("{} ({})", a.name, a.api));
        Self { cores, memory_bytes: crate::data::pixels::available_memory(), gpu }
    }
}

/// `target` relative to the folder `from` (both made absolute), `/`-separated.
fn relative_path(from: &Path, target: &Path) -> String {
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let clean = |p: PathBuf| -> Vec<String> {
        let mut parts: Vec<String> = Vec::new();
        for c in p.components() {
            match c {
                Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
                Component::ParentDir => {
                    parts.pop();
                }
                _ => {}
            }
        }
        parts
    };
    let (from_parts, target_parts) = (clean(absolute(from)), clean(absolute(target)));
    let common = from_parts.iter().zip(&target_parts).take_while(|(a, b)| a == b).count();
    if common == 0 {
        // nothing shared but the root: the absolute path reads better than ../../..
        return absolute(target).display().to_string();
    }
    let (from, target) = (from_parts, target_parts);
    let mut parts: Vec<String> = std::iter::repeat_n("..".to_string(), from.len() - common).collect();
    parts.extend(target[common..].iter().cloned());
    if parts.is_empty() { ".".into() } else { parts.join("/") }
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn toml_key(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') { s.to_string() } else { toml_string(s) }
}

/// The spec for `survey` with `starter`, sized for `machine`, to be written at `spec_path`
/// (paths in it are relative to that file); `schema` is the path of the JSON Schema the
/// `#:schema` directive names, relative to the spec.
pub fn render(survey: &Survey, starter: Starter, machine: &Machine, spec_path: &Path, schema: &str) -> String {
    let spec_dir = spec_path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let folder_name = survey.root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "images".into());
    let name: String = folder_name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c.to_ascii_lowercase() } else { '-' }).collect();
    let gib = machine.memory_bytes.map(|b| b as f64 / (1u64 << 30) as f64);
    let low_memory = gib.is_some_and(|g| g < 8.0);
    let on_gpu = machine.gpu.is_some();
    let median_side = survey.sizes.map(|s| s[1].0.min(s[1].1));

    // model, input size, batch, learning rate
    let (arch, pretrained, lr, wd, schedule, mut batch) = match starter {
        Starter::Cvt13 => ("cvt-13", Some("hf:microsoft/cvt-13"), "2e-5", "0.01", "{ name = \"linear\", warmup_steps = 0 }", if on_gpu { 32 } else { 16 }),
        Starter::VitB16 => ("vit-base-patch16-224", Some("hf:google/vit-base-patch16-224"), "2e-5", "0.01", "{ name = \"linear\", warmup_steps = 0 }", if on_gpu { 32 } else { 8 }),
        Starter::CvtTiny => ("cvt-tiny", None, "1e-3", "0.05", "{ name = \"cosine\", warmup_ratio = 0.08 }", if on_gpu { 64 } else { 32 }),
    };
    if low_memory {
        batch = (batch / 2).max(4);
    }
    // no larger than the training part (the folder less the 20% held out for validation)
    let training = survey.train.total() * 8 / 10;
    let small_data = training < batch;
    batch = batch.min(training.max(1));
    let size: u32 = match starter {
        Starter::CvtTiny if !on_gpu => match median_side {
            // the images' own size when they are smaller, in steps of 16 (CvT downsamples by 16)
            Some(side) if side < 96 => (side / 16 * 16).max(32),
            _ => 96,
        },
        _ => 224,
    };

    let mut s = String::new();
    let _ = writeln!(s, "#:schema {schema}");
    let _ = writeln!(s, "# Written by `brasa init {}` for {} on a machine with {} core(s){}{}.", survey.root.display(), starter.name(), machine.cores,
        gib.map(|g| format!(", {g:.0} GiB of memory free")).unwrap_or_default(),
        machine.gpu.as_ref().map(|g| format!(" and a GPU ({g})")).unwrap_or_else(|| " and no GPU".into()));
    let _ = writeln!(s, "# Run it with `brasa run {}`; `brasa validate` shows it resolved, with its split.", spec_path.display());
    let _ = writeln!(s, "# Every key is documented in brasa.schema.json (completion and hover docs in an editor).\n");

    let _ = writeln!(s, "[experiment]\nname = {}\ndescription = {}\nseed = 42\n", toml_string(&format!("{name}-{}", starter.name())), toml_string(&format!("{} on {folder_name} ({} classes)", arch, survey.train.counts.len())));

    let _ = writeln!(s, "[data]");
    let _ = writeln!(s, "root = {}            # relative to this file", toml_string(&relative_path(spec_dir, &survey.root)));
    let _ = writeln!(s, "train = {}", toml_string(&survey.train.name));
    match &survey.test {
        Some(test) => {
            let _ = writeln!(s, "test = {}                # evaluated once, on the best epoch", toml_string(&test.name));
        }
        None => {
            let _ = writeln!(s, "# no test folder was found: only validation scores (add `test = \"<folder>\"` to get test ones)");
        }
    }
    for unused in &survey.unused {
        let _ = writeln!(s, "# {} is not used: validation images are held out of the training folder (data.split)", toml_string(unused));
    }
    if let Some([small, median, large]) = survey.sizes {
        let _ = writeln!(s, "# image sizes (of {} sampled): smallest {}x{}, median {}x{}, largest {}x{}", survey.sampled, small.0, small.1, median.0, median.1, large.0, large.1);
    }
    s.push('\n');
    let _ = writeln!(s, "[data.split]\nvalidation = 0.2                 # of the training folder, held out for validation\nstratify = true                  # the same class balance on both sides\n");
    if survey.train.name != "." {
        for split in std::iter::once(&survey.train).chain(survey.test.iter()) {
            let _ = writeln!(s, "# the counts found today; a run stops if the folder changes");
            let _ = writeln!(s, "[data.expect.{}]", toml_key(&split.name));
            for (class, n) in &split.counts {
                let _ = writeln!(s, "{} = {n}", toml_key(class));
            }
            s.push('\n');
        }
    }

    let _ = writeln!(s, "[preprocess]");
    if pretrained.is_some() {
        let _ = writeln!(s, "preset = \"hf\"                   # the checkpoint's own image processor (resize, crop, mean/std)\n");
    } else {
        let _ = writeln!(s, "resize = [{size}, {size}]{}# every input {size}x{size} pixels", " ".repeat(17usize.saturating_sub(format!("[{size}, {size}]").len())));
        let _ = writeln!(s, "interpolation = \"bilinear\"\nmean = [0.5, 0.5, 0.5]\nstd = [0.5, 0.5, 0.5]\n");
    }

    let _ = writeln!(s, "[augment]\nmode = \"online\"                  # a new random version of every training image each epoch\ncopies = 1\nchain = [");
    let _ = writeln!(s, "  {{ op = \"resize\", size = [{size}, {size}] }},");
    let _ = writeln!(s, "  {{ op = \"random_rotation\", degrees = 15 }},\n  {{ op = \"random_resized_crop\", size = {size}, scale = [0.8, 1.0] }},\n  {{ op = \"horizontal_flip\", p = 0.5 }},\n  {{ op = \"color_jitter\", brightness = 0.2, contrast = 0.2 }},\n]\n");

    let _ = writeln!(s, "[model]\narch = {}", toml_string(arch));
    if let Some(p) = pretrained {
        let _ = writeln!(s, "pretrained = {}   # downloaded once into the Hugging Face cache; its classifier is replaced", toml_string(p));
    } else {
        let _ = writeln!(s, "# trained from scratch; `brasa init --model cvt-13` fine-tunes a pretrained CvT-13 instead");
    }
    s.push('\n');

    let _ = writeln!(s, "[train]\nepochs = 10\nbatch_size = {batch}                  # chosen for {}{}", if on_gpu { "a GPU" } else { "a CPU" }, if small_data { ", and no more than the training images" } else if low_memory { " with little memory free" } else { "" });
    let _ = writeln!(s, "select_best = \"accuracy\"         # the epoch whose validation accuracy is highest is kept");
    let _ = writeln!(s, "optimizer = {{ name = \"adamw\", lr = {lr}, weight_decay = {wd} }}\nschedule = {schedule}\ngrad_clip = 1.0\n");
    let _ = writeln!(s, "[runtime]\nbackend = \"auto\"                 # the first GPU (Vulkan/Metal; CUDA in a cuda build), else the CPU (flex)\n");
    let _ = writeln!(s, "[report]\nformats = [\"markdown\", \"html\"]");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_between_folders() {
        assert_eq!(relative_path(Path::new("/a/b"), Path::new("/a/c/d")), "../c/d");
        assert_eq!(relative_path(Path::new("/a/b"), Path::new("/a/b")), ".");
        assert_eq!(relative_path(Path::new("/a"), Path::new("/a/b")), "b");
        assert_eq!(relative_path(Path::new("/tmp/x"), Path::new("/work/data")), "/work/data");
    }

    #[test]
    fn keys_are_quoted_when_needed() {
        assert_eq!(toml_key("glioma_tumor"), "glioma_tumor");
        assert_eq!(toml_key("no tumor"), "\"no tumor\"");
    }
}
