//! The run folder: the one place that knows its file names and formats.
//!
//! ```text
//! reports/<experiment>/<run-id>/
//!   spec.toml  meta.json                       the resolved spec; what ran and how it ended (meta)
//!   split.csv  duplicates.csv                  where each image went; duplicate groups   (tables)
//!   epochs.csv  steps.csv                      training curves                           (tables)
//!   {val,test}_predictions.csv  {val,test}_report.csv  confusion_{val,test}.csv          (tables)
//!   attention.json                             attention maps of a few test images   (attention)
//!   checkpoints/epoch-NNNN{,.optim}.bpk  checkpoints/state.json                     (checkpoint)
//!   charts/*.svg  report.md  report.html       written by `report` from the files above
//!   summary.json                               the results in brief, for lists of runs (summary)
//!   tb/events.out.tfevents.*                   TensorBoard's view of the files above (`tensorboard`)
//!   .lock                                      who works in the folder now               (lock)
//! ```
//!
//! What a killed run leaves besides (temporary files, unreferenced checkpoints) is removed when
//! the folder is resumed (`debris`).
//!
//! Every file is written atomically (a temporary file renamed into place), so a killed run
//! leaves each file either whole or absent, and `checkpoints/state.json` says which epoch the
//! run can resume from.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::atomic_file::write_atomic;
use crate::error::{Error, Result};

mod attention;
mod checkpoint;
mod debris;
mod lock;
mod meta;
mod summary;
mod tables;

pub use attention::AttentionEntry;
pub use checkpoint::{BestVal, Checkpoint};
pub use debris::is_temporary;
pub use lock::{FolderLock, HELD_BY_PARENT_ENV, Holder, LOCK, SHARED_LOCK_WAIT, SHARED_LOCK_WAIT_ENV, SharedFileLock, lock_shared_file, lock_shared_file_within};
pub use meta::{Counts, Meta, ModelMeta, PreprocessMeta, ReportMeta, Status, TrainMeta, UnreadableFile};
pub use summary::{FindingSummary, PartSummary, SUMMARY, Scored, SummaryFile};
pub use tables::{DuplicateRow, EpochRow, Placement, PredictionRow, SplitRow, StepRow};

pub const SPEC: &str = "spec.toml";
pub const META: &str = "meta.json";
pub const SPLIT: &str = "split.csv";
pub const EPOCHS: &str = "epochs.csv";
pub const STEPS: &str = "steps.csv";
pub const CHECKPOINTS: &str = "checkpoints";
pub const STATE: &str = "checkpoints/state.json";
pub const CHARTS: &str = "charts";
/// TensorBoard's event files (see the `tensorboard` module).
pub const TENSORBOARD: &str = "tb";

/// `charts/<name>.svg`, where the report draws chart `name`.
pub fn chart(name: &str) -> String {
    format!("{CHARTS}/{name}.svg")
}
pub const REPORT_MD: &str = "report.md";
pub const REPORT_HTML: &str = "report.html";
/// Groups of duplicate images among the run's images (the dataset audit's format).
pub const DUPLICATES: &str = "duplicates.csv";
/// Attention maps of a few test images, for the report.
pub const ATTENTION: &str = "attention.json";
/// The list of unreadable files a run stopped for (written before anything else, even the lock).
pub const UNREADABLE: &str = "unreadable.txt";
/// A sweep trial's stdout and stderr, in its run folder: the sweep writes it beside the trial's
/// lock before the trial starts.
pub const TRIAL_LOG: &str = "log.txt";
/// What a run stopped before it wrote `meta.json` can have left in its folder besides
/// [`UNREADABLE`] and temporary files: the lock first, then these.
const BEFORE_META: [&str; 7] = [lock::LOCK, CHECKPOINTS, CHARTS, SPEC, SPLIT, DUPLICATES, TRIAL_LOG];

/// Refuses to work in the existing folder `dir` unless it is empty, a run folder (`meta.json`),
/// or a run folder stopped before it wrote `meta.json` (only what such a run writes, lock
/// included): a run writes its files over whatever has their names, and must never write over a
/// user's (`--out .` beside a spec.toml, a sweep folder's report).
pub fn check_usable(dir: &Path) -> Result<()> {
    if dir.join(META).is_file() {
        return Ok(());
    }
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let names: Vec<String> = entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    let locked = names.iter().any(|n| n == lock::LOCK);
    let foreign: Vec<String> =
        names.iter().filter(|n| !is_temporary(n) && n.as_str() != UNREADABLE && !(locked && BEFORE_META.contains(&n.as_str()))).cloned().collect();
    if foreign.is_empty() {
        return Ok(());
    }
    Err(Error::run_dir(
        dir,
        format!(
            "is not empty and holds no brasa run (no {META}; it has {}): a run is written only into a new or empty folder, or a run folder it resumes, never over other files; choose another --out (e.g. a new subfolder)",
            some_names(foreign)
        ),
    ))
}

/// The first few of `names` in order, for a message: `a, b, c and 4 more`.
pub fn some_names(mut names: Vec<String>) -> String {
    const SHOWN: usize = 5;
    names.sort();
    let more = if names.len() > SHOWN { format!(" and {} more", names.len() - SHOWN) } else { String::new() };
    names.truncate(SHOWN);
    format!("{}{more}", names.join(", "))
}

/// The evaluated parts of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    Train,
    Val,
    Test,
}

impl Part {
    pub fn name(self) -> &'static str {
        match self {
            Part::Train => "train",
            Part::Val => "val",
            Part::Test => "test",
        }
    }

    pub fn predictions_file(self) -> String {
        format!("{}_predictions.csv", self.name())
    }

    pub fn report_file(self) -> String {
        format!("{}_report.csv", self.name())
    }

    pub fn confusion_file(self) -> String {
        format!("confusion_{}.csv", self.name())
    }
}

/// A run folder on disk.
#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// Takes this folder's lock for this process (see [`FolderLock`]): an error naming the
    /// holder when another process works in it.
    pub fn lock(&self) -> Result<FolderLock> {
        FolderLock::acquire(&self.root)
    }

    /// Creates (or reopens) the folder `root`.
    pub fn create(root: &Path) -> Result<Self> {
        for dir in [root.to_path_buf(), root.join(CHECKPOINTS), root.join(CHARTS)] {
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        Ok(Self { root: root.to_path_buf() })
    }

    /// Opens an existing run folder for reading.
    pub fn open(root: &Path) -> Result<Self> {
        if !root.join(META).is_file() {
            return Err(Error::run_dir(root, format!("no {META}: not a brasa run folder")));
        }
        Ok(Self { root: root.to_path_buf() })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Writes `bytes` to `name` atomically.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        write_atomic(&self.path(name), bytes)
    }

    pub fn read_to_string(&self, name: &str) -> Result<String> {
        let path = self.path(name);
        std::fs::read_to_string(&path).map_err(|e| Error::run_dir(&self.root, format!("cannot read {name}: {e}")))
    }



















    fn write_csv(
        &self,
        name: &str,
        fill: impl FnOnce(&mut csv::Writer<&mut Vec<u8>>) -> std::result::Result<(), csv::Error>,
    ) -> Result<()> {
        let mut buffer = Vec::new();
        {
            let mut writer = csv::Writer::from_writer(&mut buffer);
            fill(&mut writer).map_err(|e| Error::run_dir(&self.root, format!("cannot write {name}: {e}")))?;
            writer.flush().map_err(|e| Error::io(self.path(name), e))?;
        }
        self.write(name, &buffer)
    }

    fn read_csv<T>(
        &self,
        name: &str,
        parse: impl FnOnce(&mut csv::Reader<std::fs::File>) -> std::result::Result<T, csv::Error>,
    ) -> Result<T> {
        let path = self.path(name);
        let mut reader = csv::Reader::from_path(&path)
            .map_err(|e| Error::run_dir(&self.root, format!("cannot read {name}: {e}")))?;
        parse(&mut reader).map_err(|e| Error::run_dir(&self.root, format!("{name} is malformed: {e}")))
    }
}

