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
    // a signal stops an export at once (130); what it had staged goes with it
    crate::interrupt::install();
    remove_stale_staging(out)?;
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
    let staging = tempfile::Builder::new().prefix(&staging_prefix(&name)).tempdir_in(parent).map_err(|e| Error::io(parent, e))?;
    let _cleanup = {
        let staging = staging.path().to_path_buf();
        crate::interrupt::on_stop(move |_| {
            let _ = std::fs::remove_dir_all(&staging);
        })
    };
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
    let mut names: Vec<String> = std::fs::read_dir(out).map_err(|e| Error::io(out, e))?.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    if names.is_empty() {
        return Ok(());
    }
    names.sort();
    let earlier = is_earlier_export(out);
    if !force && earlier {
        return Err(Error::usage("OUT_DIR", format!("{} exists (an earlier export); pass --force to replace it", out.display())));
    }
    if !earlier {
        let why = if out.join(CONFIG_FILE).is_file() {
            format!("its {CONFIG_FILE} has no `exported_by` key naming brasa")
        } else {
            format!("it has no {CONFIG_FILE}")
        };
        let flag = if force { "--force" } else { "OUT_DIR" };
        return Err(Error::usage(
            flag,
            format!(
                "{} exists and is not an earlier export ({why}; it holds {}): brasa writes into a new or empty folder, and --force replaces only an earlier export",
                out.display(),
                listing(&names)
            ),
        ));
    }
    Ok(())
}

/// A few of `names`, quoted, for a message.
fn listing(names: &[String]) -> String {
    const SHOWN: usize = 4;
    let mut text = names.iter().take(SHOWN).map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
    if names.len() > SHOWN {
        text.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    text
}

/// How an export into a folder named `name` names its staging folder (tempfile adds six
/// letters or digits): with this process's id, so a later export can tell a staging folder whose
/// export was killed from one still being written.
fn staging_prefix(name: &str) -> String {
    format!(".{name}.brasa-{}.", std::process::id())
}

/// Removes the staging folders that killed exports to `out` left, inside `out` (an export into
/// an empty folder) and beside it. Only folders named as brasa names them, holding nothing but
/// export files, whose process is gone — or, by an older brasa that named no process, untouched
/// for a while — are removed: never someone's folder, never a live export's.
fn remove_stale_staging(out: &Path) -> Result<()> {
    let Some(name) = out.file_name().map(|n| n.to_string_lossy().into_owned()) else { return Ok(()) };
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    for folder in [out, parent] {
        let Ok(entries) = std::fs::read_dir(folder) else { continue };
        for entry in entries.filter_map(|e| e.ok()) {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) && is_stale_staging(&entry.file_name().to_string_lossy(), &name, &path) {
                std::fs::remove_dir_all(&path).map_err(|e| Error::io(&path, e))?;
                eprintln!("removed {}: the staging folder of an interrupted export", crate::fmt::display_path(&path));
            }
        }
    }
    Ok(())
}

/// Whether the folder `path`, named `entry`, is the staging folder of a killed export to a
/// folder named `name` (see [`remove_stale_staging`]).
fn is_stale_staging(entry: &str, name: &str, path: &Path) -> bool {
    let Some(rest) = entry.strip_prefix(&format!(".{name}.")) else { return false };
    let random = |s: &str| s.len() == 6 && s.chars().all(|c| c.is_ascii_alphanumeric());
    let owner_gone = match rest.strip_prefix("brasa-").and_then(|r| r.split_once('.')) {
        Some((pid, suffix)) if random(suffix) => match pid.parse::<u32>() {
            Ok(pid) => pid != std::process::id() && !process_alive(pid),
            Err(_) => return false,
        },
        // an older brasa's: no process named; one not written to for a minute is no live export
        _ if random(rest) => path.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok()).is_some_and(|age| age.as_secs() >= 60),
        _ => return false,
    };
    let export_files = [CONFIG_FILE, PREPROCESSOR_FILE, WEIGHTS_FILE, CARD_FILE];
    let only_export_files = std::fs::read_dir(path).is_ok_and(|entries| {
        entries.filter_map(|e| e.ok()).all(|e| e.file_type().is_ok_and(|t| t.is_file()) && export_files.iter().any(|f| e.file_name() == *f))
    });
    owner_gone && only_export_files
}

/// Whether a process with id `pid` runs on this machine.
fn process_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = i32::try_from(pid) else { return false };
        // SAFETY: kill(2) with signal 0 sends nothing; it only checks that the process exists
        let result = unsafe { libc::kill(pid, 0) };
        result == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_brasa_staging_folders_of_gone_exports_are_stale() {
        let dir = tempfile::tempdir().unwrap();
        let make = |name: &str, files: &[&str]| {
            let path = dir.path().join(name);
            std::fs::create_dir(&path).unwrap();
            for file in files {
                std::fs::write(path.join(file), "x").unwrap();
            }
            (name.to_string(), path)
        };
        // no process has the largest pid
        let gone = i32::MAX as u32;
        let (name, path) = make(&format!(".out.brasa-{gone}.Ab12Cd"), &[CONFIG_FILE, WEIGHTS_FILE]);
        assert!(is_stale_staging(&name, "out", &path), "its export was killed");
        let (name, path) = make(&format!(".out.brasa-{}.Ab12Cd", std::process::id()), &[CONFIG_FILE]);
        assert!(!is_stale_staging(&name, "out", &path), "a live export's");
        let (name, path) = make(&format!(".out.brasa-{gone}.Zz99Yy"), &["notes.txt"]);
        assert!(!is_stale_staging(&name, "out", &path), "holds a file no export writes");
        let (name, path) = make(&format!(".other.brasa-{gone}.Ab12Cd"), &[]);
        assert!(!is_stale_staging(&name, "out", &path), "the staging of an export to another folder");
        let (name, path) = make(".out.Qw34Er", &[CONFIG_FILE]);
        assert!(!is_stale_staging(&name, "out", &path), "an older brasa's, written to a moment ago");
    }
}
