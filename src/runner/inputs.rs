//! What a run needs before it trains: the checkpoint on disk, the device, the dataset scanned
//! and split, the model built, every image decoded once, and duplicates kept on one side.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use crate::backend::{self, Chosen};
use crate::data::cache::{self, DiskCache};
use crate::data::images::{Recipe, Unreadable};
use crate::data::pixels::{self, AutoChoice, CacheMode, Pixels};
use crate::data::{Dataset, MissingFrom, download};
use crate::fmt::display_path;
use crate::dedup::{self, Fingerprint, Group};
use crate::error::{Error, Result};
use crate::model;
use crate::plan::Plan;
use crate::progress::Progress;

/// `plan` with its pretrained checkpoint on disk: downloaded from the Hub when it is neither
/// local nor cached, the plan then resolved again with its files (see [`Plan::with_checkpoint`]).
pub fn with_checkpoint(plan: &Plan, progress: &Progress) -> Result<Plan> {
    match &plan.model.pretrained {
        Some(pretrained) if pretrained.files.is_none() => {
            progress.log(format!("pretrained: fetching {}", pretrained.locator.describe()));
            let files = pretrained.locator.fetch(progress)?;
            Ok(plan.with_checkpoint(files)?)
        }
        _ => Ok(plan.clone()),
    }
}

/// Sets the CPU threads and opens the plan's device.
pub fn open_device(plan: &Plan, progress: &Progress) -> Result<Chosen> {
    if let Some(threads) = plan.runtime.threads {
        backend::set_threads(threads);
    }
    let chosen = plan.runtime.backend.choose(plan.runtime.device)?;
    progress.log(format!("device: {}", chosen.info.describe()));
    #[cfg(any(feature = "gpu-backend", feature = "cuda"))]
    if chosen.info.is_gpu() {
        // a line of the log: a cache that cannot be looked at is said, not a reason to stop
        match backend::gpu_cache::GpuCache::locate() {
            Ok(cache) => progress.log(cache.note(&chosen.info.backend)),
            Err(e) => progress.log(format!("gpu cache: cannot be looked at ({e})")),
        }
    }
    Ok(chosen)
}

/// Makes sure the dataset is on disk (downloading it when the spec names a source) and scans it.
pub fn prepare_dataset(plan: &Plan, progress: &Progress) -> Result<Dataset> {
    let layout = &plan.data.layout;
    if !layout.root.is_dir() {
        match &plan.data.source {
            Some(url) => {
                progress.log(format!("data: {} is missing; downloading {url}", layout.root.display()));
                download::fetch_zip(url, &layout.root, progress)?;
            }
            None => return Err(Error::DataRootMissing { root: layout.root.clone() }),
        }
    }
    let dataset = Dataset::scan(layout, plan.data.split)?;
    if let Some(expect) = &plan.data.expect {
        dataset.check_counts(layout, expect)?;
    }
    if !dataset.skipped.is_empty() {
        progress.log(format!(
            "warning: {} file(s) in the dataset folders are not images ({}) and are not used, e.g. {}",
            dataset.skipped.len(),
            crate::data::folder::IMAGE_EXTENSIONS.join(", "),
            dataset.skipped[0].display()
        ));
    }
    Ok(dataset)
}

/// Builds the plan's model for `dataset`'s classes on `device`, logging what import did.
pub fn build_model(plan: &Plan, dataset: &Dataset, device: &burn::tensor::Device, progress: &Progress) -> Result<model::Built> {
    let source = plan.model.pretrained.as_ref().map(|p| p.locator.describe());
    let request = model::Request {
        arch: plan.model.arch,
        options: plan.model.options,
        classes: &dataset.classes,
        input_size: plan.preprocess.input_size,
        pretrained: plan.model.pretrained.as_ref().and_then(|p| p.files.as_ref()).zip(source.as_deref()),
        freeze: &plan.model.freeze,
        seed: plan.seed,
    };
    let built = model::build(&request, device)?;
    if let Some(import) = &built.import {
        progress.log(import.summary());
    }
    for note in &built.notes {
        progress.log(format!("model: {note}"));
    }
    if built.frozen > 0 {
        progress.log(format!("model: {} parameter tensors frozen ({})", built.frozen, plan.model.freeze.join(", ")));
    }
    Ok(built)
}

/// Decoded images of the whole dataset, in the forms the run needs, wherever `data.cache` keeps
/// them.
pub struct Images {
    /// Clean model inputs of the training folder's items.
    pub train_folder: Arc<Pixels>,
    /// Augmentation sources of the training folder's items (shared when the recipe is the same).
    pub sources: Arc<Pixels>,
    pub test: Pixels,
    pub train_sizes: Vec<(u32, u32)>,
    pub test_sizes: Vec<(u32, u32)>,
    pub train_fingerprints: Vec<Fingerprint>,
    pub test_fingerprints: Vec<Fingerprint>,
    /// Where they are kept (`auto` resolved).
    pub cache: CacheMode,
    /// Files decoded to get them (with the disk cache, those it did not have yet).
    pub decoded: usize,
}

/// Decodes every image once, in each recipe the run uses, and keeps them where `data.cache`
/// says (`auto` chooses, and says what and why).
///
/// Files that cannot be read stop the run with the full list (written to `unreadable.txt` in
/// `list_dir` when given), or with `data.unreadable = "skip"` are left out of `dataset`, which
/// is split again without them.
pub fn decode(plan: &Plan, dataset: &mut Dataset, list_dir: Option<&Path>, progress: &Progress) -> Result<Images> {
    let started = Instant::now();
    let clean = plan.preprocess.recipe;
    let source = plan.augment.source_recipe();
    let augmenting = !plan.augment.chain.ops.is_empty();
    let recipes: Vec<Recipe> = if augmenting && source != clean { vec![clean, source] } else { vec![clean] };
    let mode = cache_mode(plan, dataset, &recipes, progress);
    let cache = match mode {
        CacheMode::Disk => Some(DiskCache::open(&cache::default_dir())?),
        _ => None,
    };
    let decoded = pixels::load(&dataset.train_folder, &recipes, mode, cache.as_ref(), progress, "decoding")?;
    let mut test = pixels::load(&dataset.test, &[clean], mode, cache.as_ref(), progress, "decoding test")?;
    if !decoded.unreadable.is_empty() || !test.unreadable.is_empty() {
        unreadable(plan, dataset, (&decoded.unreadable, &test.unreadable), list_dir, progress)?;
    }
    let (count, seconds) = (dataset.train_folder.len() + dataset.test.len(), started.elapsed().as_secs_f64());
    progress.log(match &cache {
        Some(cache) => {
            let fresh = decoded.decoded + test.decoded;
            format!(
                "data.cache = disk: {count} images in {seconds:.1} s, {fresh} decoded now and {} read from the cache in {}",
                count - fresh,
                display_path(cache.root())
            )
        }
        None if mode == CacheMode::None => format!("data.cache = none: read {count} images in {seconds:.1} s; each is decoded again whenever a batch needs it"),
        None => format!("data.cache = memory: decoded {count} images in {seconds:.1} s"),
    });
    let mut forms = decoded.per_recipe.into_iter();
    let train_folder = Arc::new(forms.next().expect("clean recipe"));
    let sources = forms.next().map(Arc::new).unwrap_or_else(|| train_folder.clone());
    Ok(Images {
        train_folder,
        sources,
        test: test.per_recipe.remove(0),
        train_sizes: decoded.original_sizes,
        test_sizes: test.original_sizes,
        train_fingerprints: decoded.fingerprints,
        test_fingerprints: test.fingerprints,
        cache: mode,
        decoded: decoded.decoded + test.decoded,
    })
}

/// Name of the list of unreadable files a run stopped for, in its run folder.
pub const UNREADABLE_LIST: &str = crate::run_dir::UNREADABLE;
/// Unreadable files named in the error itself (the list file holds them all).
const UNREADABLE_SHOWN: usize = 20;

/// Stops the run on files that cannot be read, or leaves them out with `data.unreadable = "skip"`.
fn unreadable(plan: &Plan, dataset: &mut Dataset, (train, test): (&[Unreadable], &[Unreadable]), list_dir: Option<&Path>, progress: &Progress) -> Result<()> {
    let all = train.iter().map(|u| (u, &dataset.train_folder[u.index])).chain(test.iter().map(|u| (u, &dataset.test[u.index])));
    let mut per_class = vec![0usize; dataset.classes.len()];
    let mut lines = Vec::new();
    for (u, item) in all {
        per_class[item.label] += 1;
        lines.push(format!("{}: {}", display_path(&u.path), u.message));
    }
    let per_class: Vec<(String, usize)> = dataset.classes.iter().cloned().zip(per_class).filter(|(_, n)| *n > 0).collect();
    let count = lines.len();
    if !plan.data.skip_unreadable {
        let list = match list_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
                let path = dir.join(UNREADABLE_LIST);
                crate::atomic_file::write_atomic(&path, format!("{}\n", lines.join("\n")).as_bytes())?;
                Some(path)
            }
            None => None,
        };
        lines.truncate(UNREADABLE_SHOWN);
        return Err(Error::Unreadable { count, per_class, shown: lines, list });
    }
    let classes: Vec<String> = per_class.iter().map(|(class, n)| format!("{class} {n}")).collect();
    progress.log(format!(
        "warning: data.unreadable = skip: leaving out {count} image file(s) that cannot be read ({}), e.g. {}; split.csv and the report list them",
        classes.join(", "),
        lines[0]
    ));
    dataset.leave_out(train, test, plan.data.split)
}

/// `data.cache`, with `auto` resolved: memory when the decoded images (of every run sharing the
/// machine) fit comfortably in the memory available, else the disk cache.
fn cache_mode(plan: &Plan, dataset: &Dataset, recipes: &[Recipe], progress: &Progress) -> CacheMode {
    if plan.data.cache != CacheMode::Auto {
        return plan.data.cache;
    }
    let runs = std::env::var(pixels::RUNS_AT_ONCE_ENV).ok().and_then(|v| v.parse::<u64>().ok()).unwrap_or(1).max(1);
    let needed = runs * (pixels::estimate_bytes(&dataset.train_folder, recipes) + pixels::estimate_bytes(&dataset.test, &recipes[..1]));
    let Some(available) = pixels::available_memory() else {
        progress.log("data.cache = auto: the available memory cannot be read here; keeping the images in memory");
        return CacheMode::Memory;
    };
    let choice = AutoChoice::new(needed, available);
    let runs = if runs > 1 { format!(" ({runs} runs at once)") } else { String::new() };
    progress.log(format!(
        "data.cache = auto: the decoded images need about {}{runs} of {} available: {}",
        gigabytes(choice.needed),
        gigabytes(choice.available),
        match choice.mode {
            CacheMode::Memory => "keeping them in memory".to_string(),
            _ => format!("keeping them in the disk cache ({}; data.cache = \"memory\" keeps them in memory anyway)", display_path(&cache::default_dir())),
        }
    ));
    choice.mode
}

fn gigabytes(bytes: u64) -> String {
    format!("{:.1} GB", bytes as f64 / 1e9)
}

/// Duplicate groups among all the run's images (the training folder's items, then the test
/// items); with `data.split.group_duplicates`, each group of the training folder is moved to
/// one side of the split.
pub fn group_duplicates(plan: &Plan, dataset: &mut Dataset, images: &Images, progress: &Progress) -> Result<Vec<Group>> {
    let all: Vec<Fingerprint> = images.train_fingerprints.iter().chain(&images.test_fingerprints).copied().collect();
    let groups = dedup::group(&all, dedup::NEAR_THRESHOLD);
    if plan.data.split.group_duplicates {
        let (moved, within) = dataset.keep_duplicates_together(&groups)?;
        progress.log(format!(
            "data: data.split.group_duplicates moved {moved} image(s) so that each of {within} duplicate group(s) of the training folder is on one side"
        ));
    }
    progress.log(format!("data: {} classes, split (seed {}):\n{}", dataset.classes.len(), plan.data.split.seed, dataset.counts_table()));
    every_class_on_both_sides(plan, dataset)?;
    Ok(groups)
}

/// The split as it trains, after unreadable images were left out and duplicate groups moved:
/// every class still needs images on both sides (the plan checked the split before decoding,
/// when neither had happened yet).
fn every_class_on_both_sides(plan: &Plan, dataset: &Dataset) -> Result<()> {
    let counts = dataset.counts();
    let mut causes = Vec::new();
    if plan.data.skip_unreadable {
        causes.push("data.unreadable = \"skip\" left out the images that cannot be read");
    }
    if plan.data.split.group_duplicates {
        causes.push("data.split.group_duplicates kept each duplicate group on one side");
    }
    let problems: Vec<String> = counts
        .classes_missing_a_side()
        .map(|(class, missing)| {
            let name = &dataset.classes[class];
            match missing {
                MissingFrom::Both => format!("class `{name}` has no images left"),
                MissingFrom::Training => format!("class `{name}` has no training images left ({} in validation)", counts.val[class]),
                MissingFrom::Validation => format!("class `{name}` has no validation images left ({} in training)", counts.train[class]),
            }
        })
        .collect();
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::Data(format!(
        "{}{}: a run must train and validate every class (add images of it, fix the unreadable files, or change data.split.validation)",
        problems.join("; "),
        if causes.is_empty() { String::new() } else { format!(" after {}", causes.join(" and ")) }
    )))
}
