//! The runs under a reports folder, each read from its run folder's files alone.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use crate::error::Result;
use crate::run_dir::{self, FolderLock, Meta, RunDir, Status, SummaryFile};
use crate::sweep_dir::SweepDir;

/// One run, as the index shows it.
pub struct Entry {
    /// The run folder relative to the reports folder, `/`-separated: unique.
    pub id: String,
    pub meta: Meta,
    /// `complete`, `failed`, `running` (a process holds the folder) or `unfinished`.
    pub status: &'static str,
    /// The sweep folder relative to the reports folder, and the trial's folder name.
    pub sweep: Option<(String, String)>,
    /// Scores with intervals and findings (`summary.json`, or derived from the files).
    pub summary: Option<SummaryFile>,
    /// The validation scores of the best epoch from `epochs.csv` (runs without predictions yet).
    pub best: Option<run_dir::EpochRow>,
    pub hyperparameters: BTreeMap<String, toml::Value>,
    /// The keys its sweep varies.
    pub swept: Vec<String>,
    pub curves: Curves,
    /// `report.html` relative to the reports folder, when the run has one.
    pub report: Option<String>,
    /// What could not be read (the rest of the run is still shown).
    pub warnings: Vec<String>,
}

/// Per-epoch curves of a run, for the overlaid charts.
#[derive(Debug, Default, Serialize)]
pub struct Curves {
    pub epoch: Vec<usize>,
    pub val_accuracy: Vec<f64>,
    pub val_loss: Vec<f64>,
    pub train_loss: Vec<f64>,
}

/// The run folders under `root` (folders with a `meta.json`, whatever it is: one that cannot be
/// read is named as unreadable, not left out), sorted. Symbolic links to folders are followed,
/// except back into a folder they are in; run folders are not entered, nor hidden folders (the
/// decoded-image cache) or `root/compare/`.
pub fn run_folders(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut ancestors: Vec<PathBuf> = std::fs::canonicalize(root).into_iter().collect();
    walk(root, true, &mut ancestors, &mut found);
    found.sort();
    found
}

fn walk(dir: &Path, is_root: bool, ancestors: &mut Vec<PathBuf>, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        // `is_dir` follows a symbolic link: a run folder linked in from elsewhere is a run
        if name.starts_with('.') || (is_root && name == super::COMPARE_DIR) || !path.is_dir() {
            continue;
        }
        if path.join(run_dir::META).exists() {
            found.push(path);
            continue;
        }
        // a link to a folder it is in would be walked forever
        let Ok(real) = std::fs::canonicalize(&path) else { continue };
        if ancestors.contains(&real) {
            continue;
        }
        ancestors.push(real);
        walk(&path, false, ancestors, found);
        ancestors.pop();
    }
}

/// Every run under `root` (read in parallel; in folder order), and the folders that are not
/// readable runs with why.
pub fn runs(root: &Path) -> (Vec<Entry>, Vec<(PathBuf, String)>) {
    let folders = run_folders(root);
    // each sweep's sweep.toml is read once, not once per trial
    let mut swept: HashMap<PathBuf, std::result::Result<Vec<String>, String>> = HashMap::new();
    for sweep in folders.iter().filter_map(|dir| SweepDir::of_trial(dir)) {
        swept.entry(sweep.root().to_path_buf()).or_insert_with(|| sweep.varied_keys().map_err(|e| e.to_string()));
    }
    let read: Vec<(PathBuf, Result<Entry>)> = folders.into_par_iter().map(|dir| { let entry = read(root, &dir, &swept); (dir, entry) }).collect();
    let mut entries = Vec::new();
    let mut unreadable = Vec::new();
    for (dir, entry) in read {
        match entry {
            Ok(entry) => entries.push(entry),
            Err(e) => unreadable.push((dir, e.to_string())),
        }
    }
    (entries, unreadable)
}

/// The run in `dir` under `root`, whose sweep (if any) varies the keys `swept` holds for its
/// folder: an error only when its `meta.json` cannot be read.
fn read(root: &Path, dir: &Path, swept: &HashMap<PathBuf, std::result::Result<Vec<String>, String>>) -> Result<Entry> {
    let run = RunDir::open(dir)?;
    let mut meta = run.read_meta()?;
    let id = relative_id(root, dir);
    let mut warnings = Vec::new();
    let mut warn = |what: String| warnings.push(what);

    let status = match meta.status {
        Status::Complete => "complete",
        Status::Failed => "failed",
        Status::Running if FolderLock::holder(dir).is_some() => "running",
        Status::Running => "unfinished",
    };
    let epochs = if run.path(run_dir::EPOCHS).is_file() {
        run.read_epochs().unwrap_or_else(|e| {
            warn(e.to_string());
            Vec::new()
        })
    } else {
        Vec::new()
    };
    let summary = match run.read_summary(&meta) {
        Ok(Some(summary)) => Some(summary),
        // derived: a missing, stale or malformed summary.json is made again from the files
        _ if meta.status == Status::Running => None,
        // a run that failed before training has nothing to summarise (a complete run missing
        // these files is summarised as far as it can be, with a warning naming what is missing)
        _ if meta.status == Status::Failed && (!run.path(run_dir::EPOCHS).is_file() || !run.path(run_dir::STEPS).is_file()) => None,
        _ => match crate::report::summary(&run) {
            Ok(summary) => Some(summary.file()),
            Err(e) => {
                warn(e.to_string());
                None
            }
        },
    };
    let sweep_dir = SweepDir::of_trial(dir);
    let swept = match sweep_dir.as_ref().and_then(|sweep| swept.get(sweep.root())) {
        Some(Ok(keys)) => keys.clone(),
        Some(Err(e)) => {
            warn(e.clone());
            Vec::new()
        }
        None => Vec::new(),
    };
    let hyperparameters = match run.read_to_string(run_dir::SPEC).and_then(|text| {
        toml::from_str::<toml::Table>(&text).map_err(|e| crate::Error::run_dir(dir, format!("{} is malformed: {e}", run_dir::SPEC)))
    }) {
        Ok(spec) => crate::spec::flat::hyperparameters(&spec, &swept),
        Err(e) => {
            warn(e.to_string());
            BTreeMap::new()
        }
    };
    let sweep = sweep_dir.map(|s| (relative_id(root, s.root()), dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()));
    // meta.json has the best epoch and the epochs run only once a run has ended well: how far an
    // unfinished or failed run got is in its epochs.csv
    if meta.status != Status::Complete {
        meta.epochs_run = meta.epochs_run.max(epochs.last().map_or(0, |e| e.epoch));
        meta.best_epoch = meta.best_epoch.or_else(|| epochs.iter().rev().find(|e| e.best).map(|e| e.epoch));
    }
    let best = meta.best_epoch.and_then(|b| epochs.iter().find(|e| e.epoch == b)).cloned();
    let curves = Curves {
        epoch: epochs.iter().map(|e| e.epoch).collect(),
        val_accuracy: epochs.iter().map(|e| e.val_accuracy).collect(),
        val_loss: epochs.iter().map(|e| e.val_loss).collect(),
        train_loss: epochs.iter().map(|e| e.train_loss).collect(),
    };
    let report = dir.join(run_dir::REPORT_HTML).is_file().then(|| format!("{id}/{}", run_dir::REPORT_HTML));
    Ok(Entry { id, meta, status, sweep, summary, best, hyperparameters, swept, curves, report, warnings })
}

/// `dir` relative to `root`, `/`-separated.
pub fn relative_id(root: &Path, dir: &Path) -> String {
    let relative = dir.strip_prefix(root).unwrap_or(dir);
    relative.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect::<Vec<_>>().join("/")
}
