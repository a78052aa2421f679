//! `brasa export`: a trained run as a model folder other tools load — today the Hugging Face
//! layout (`config.json`, `model.safetensors`, `preprocessor_config.json` and a model card
//! `README.md`), which `AutoModelForImageClassification.from_pretrained` and
//! `pipeline("image-classification")` read as they read a Hub repository.
//!
//! The folder is written beside its destination and renamed into place, so a reader sees either
//! the whole export or none.

mod card;
mod hf;

use std::path::{Path, PathBuf};

use burn::tensor::Device;

use crate::error::{Error, Result};
use crate::model::hub::{CONFIG_FILE, PREPROCESSOR_FILE};
use crate::predict::{Trained, Which};
use crate::run_dir::RunDir;

/// The files of a Hugging Face export.
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const CARD_FILE: &str = "README.md";

/// What an export wrote.
#[derive(Debug, Clone)]
pub struct Exported {
    pub folder: PathBuf,
    /// The checkpoint under the run's `checkpoints/` it came from.
    pub checkpoint: String,
    pub tensors: usize,
    pub files: Vec<&'static str>,
}

/// Writes the `which` checkpoint of the run in `run_dir` to `out` in the Hugging Face layout.
/// An existing `out` is replaced only with `force`, and only when it is an earlier export (its
/// `config.json` carries the `exported_by` key brasa writes) or empty.
pub fn export_hf(run_dir: &Path, which: Which, out: &Path, force: bool) -> Result<Exported> {
    let shown = out;
    let out = &normalise(out)?;
    check_destination(out, force)?;
    let device = Device::flex();
    let trained = Trained::load(run_dir, which, &device)?;
    let run = RunDir::open(run_dir)?;
    let summary = crate::report::summary(&run)?;
    // an empty folder receives the files from a staging folder inside it (its parent may not be
    // writable: `export RUN .` in one's home); anything else is replaced from beside it
    let into_empty = out.is_dir() && std::fs::read_dir(out).map_err(|e| Error::io(out, e))?.next().is_none();
    let parent = if into_empty { out } else { out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")) };
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "export".into());
    let staging = tempfile::Builder::new().prefix(&format!(".{name}.")).tempdir_in(parent).map_err(|e| Error::io(parent, e))?;
    let fail_run = |message: String| Error::run_dir(run_dir, message);

    let config = hf::config_json(&trained.config, &trained.meta.classes);
    write(staging.path(), CONFIG_FILE, &pretty(&config))?;
    let pre = trained.meta.preprocess.as_ref().ok_or_else(|| fail_run("meta.json does not record its preprocessing (an older brasa wrote it)".into()))?;
    let processor = hf::preprocessor_json(pre).map_err(fail_run)?;
    write(staging.path(), PREPROCESSOR_FILE, &pretty(&processor))?;
    let weights = hf::weights(&trained.model).map_err(|e| fail_run(format!("cannot write the weights: {e}")))?;
    write(staging.path(), WEIGHTS_FILE, &weights.bytes)?;
    let card = card::render(&card::Inputs { run: &run, summary: &summary, trained: &trained, which, tensors: weights.tensors });
    write(staging.path(), CARD_FILE, card.as_bytes())?;

    if into_empty {
        // the emptied staging folder goes with its guard
        move_files_into(staging.path(), out)?;
    } else {
        replace_folder(staging.path(), out)?;
        // renamed into place: nothing is left for the guard to delete
        let _ = staging.keep();
    }
    Ok(Exported { folder: shown.to_path_buf(), checkpoint: trained.checkpoint, tensors: weights.tensors, files: vec![CONFIG_FILE, WEIGHTS_FILE, PREPROCESSOR_FILE, CARD_FILE] })
}

fn pretty(value: &serde_json::Value) -> Vec<u8> {
    let mut text = serde_json::to_string_pretty(value).expect("JSON values serialise");
    text.push('\n');
    text.into_bytes()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let path = dir.join(name);
    std::fs::write(&path, bytes).map_err(|e| Error::io(&path, e))
}

/// `out` may be written: it does not exist, or `force` and it is empty or an earlier export.
fn check_destination(out: &Path, force: bool) -> Result<()> {
    if !out.exists() {
        return Ok(());
    }
    if !out.is_dir() {
        return Err(Error::usage("OUT_DIR", format!("{} exists and is not a folder", out.display())));
    }
    let empty = std::fs::read_dir(out).map_err(|e| Error::io(out, e))?.next().is_none();
    if empty {
        return Ok(());
    }
    if !force {
        return Err(Error::usage("OUT_DIR", format!("{} exists; pass --force to replace it", out.display())));
    }
    if !is_earlier_export(out) {
        return Err(Error::usage(
            "--force",
            format!("{} is not an earlier export (its {CONFIG_FILE} has no `exported_by` key naming brasa); brasa replaces only those", out.display()),
        ));
    }
    Ok(())
}

/// Whether `dir` is a folder brasa exported: a `config.json` with `"exported_by": "brasa …"`.
/// Any other folder — a project that happens to hold a `config.json`, a transformers
/// `save_pretrained` folder — is someone else's work that `--force` must never delete.
fn is_earlier_export(dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join(CONFIG_FILE)) else {
        return false;
    };
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|config| config.get("exported_by").and_then(serde_json::Value::as_str).map(|by| by.starts_with("brasa")))
        .unwrap_or(false)
}

/// `out` as an absolute path without `.` components: `.` and `DIR/.` name a folder by a path
/// that cannot be renamed (EBUSY), and whose file name is not the folder's.
fn normalise(out: &Path) -> Result<PathBuf> {
    let absolute = std::path::absolute(out).map_err(|e| Error::io(out, e))?;
    Ok(absolute.components().collect())
}

/// Moves the finished `staging` folder to `out`, replacing what is there; on a failure `out`
/// is as it was.
fn replace_folder(staging: &Path, out: &Path) -> Result<()> {
    let old = out.exists().then(|| {
        let mut name = out.file_name().unwrap_or_default().to_os_string();
        name.push(format!(".old-{}", std::process::id()));
        out.with_file_name(name)
    });
    if let Some(old) = &old {
        std::fs::rename(out, old).map_err(|e| Error::io(out, e))?;
    }
    if let Err(e) = std::fs::rename(staging, out) {
        if let Some(old) = &old {
            let _ = std::fs::rename(old, out);
        }
        return Err(Error::io(out, e));
    }
    if let Some(old) = old {
        std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
    }
    Ok(())
}

/// Moves each file of `staging` into the empty folder `out`; on a failure, takes back out of
/// `out` what it had moved, so the folder is empty again.
fn move_files_into(staging: &Path, out: &Path) -> Result<()> {
    let mut moved = Vec::new();
    for entry in std::fs::read_dir(staging).map_err(|e| Error::io(staging, e))? {
        let name = entry.map_err(|e| Error::io(staging, e))?.file_name();
        let target = out.join(&name);
        if let Err(e) = std::fs::rename(staging.join(&name), &target) {
            for file in &moved {
                let _ = std::fs::remove_file(file);
            }
            return Err(Error::io(&target, e));
        }
        moved.push(target);
    }
    Ok(())
}
