//! The sweep folder: the one place that knows its file names and `trials.csv`.
//!
//! ```text
//! reports/<experiment>/sweep-<fingerprint>/
//!   sweep.toml        the base spec, then its [sweep] table
//!   trials.csv        one row per trial, derived from the trial folders
//!   trial-NN/         an ordinary run folder (see `run_dir`), plus the trial's log.txt
//!   charts/*.svg  report.md   written by `report::sweep` from the files above
//!   slurm/            with the Slurm launcher: trials.sbatch, jobs.csv (what was submitted),
//!                     trial-NN.log (each trial's output, every attempt), job-*.out (Slurm's),
//!                     .submit.lock (held by a submit while it reads the queue and submits)
//!   .trials.lock      held while trials.csv is read and rewritten (trials end at any time)
//! ```

use std::path::{Path, PathBuf};

use crate::atomic_file::write_atomic;
use crate::error::{Error, Result};
use crate::metrics::Scores;
use crate::run_dir::{self, FolderLock, Meta, Part, RunDir, Status};
pub use crate::run_dir::TRIAL_LOG;

pub const SWEEP_TOML: &str = "sweep.toml";
pub const TRIALS_CSV: &str = "trials.csv";
pub const REPORT_MD: &str = "report.md";
pub const CHARTS: &str = "charts";
/// The Slurm launcher's folder, its batch script and its record of submitted array jobs.
pub const SLURM: &str = "slurm";
pub const SLURM_SCRIPT: &str = "trials.sbatch";
pub const SLURM_JOBS: &str = "slurm/jobs.csv";
/// Held by a submit from reading the queue to recording its jobs (two submits, one sweep).
pub const SLURM_SUBMIT_LOCK: &str = "slurm/.submit.lock";
/// Serialises rewrites of `trials.csv` between the processes whose trials end.
const TRIALS_LOCK: &str = ".trials.lock";

/// What separates the base spec from the sweep table in `sweep.toml`.
const SWEEP_HEADER: &str = "\n[sweep]\n";
/// The columns of `trials.csv` after the swept keys' own.
const RESULT_COLUMNS: [&str; 11] = [
    "status", "best_epoch", "val_accuracy", "val_macro_f1", "val_loss", "test_accuracy", "test_macro_f1", "test_weighted_f1",
    "wall_seconds", "error", "run_dir",
];

/// Where a trial stands, read from its run folder.
#[derive(Debug, Clone, PartialEq)]
pub enum TrialStatus {
    Pending,
    /// Started and not finished (running now, or interrupted: it resumes).
    Unfinished,
    Complete,
    Failed(String),
    /// Its job ended before it did, with a checkpoint to resume from (cancelled, preempted):
    /// never read from a folder, only recorded by `brasa status`, which asks the launcher.
    Stopped(String),
}

impl TrialStatus {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Unfinished => "unfinished",
            Self::Complete => "complete",
            Self::Failed(_) => "failed",
            Self::Stopped(_) => "stopped",
        }
    }

    /// The status of the trial whose run folder is `dir`.
    pub fn of(dir: &Path) -> Self {
        match RunDir::open(dir) {
            Ok(run) => Self::read(&run, &run.read_meta()),
            Err(_) => Self::Pending,
        }
    }

    /// The status of the trial in `run`, whose `meta.json` read as `meta`.
    fn read(run: &RunDir, meta: &Result<Meta>) -> Self {
        match meta {
            Ok(meta) => match meta.status {
                Status::Complete if run.path(run_dir::REPORT_MD).is_file() || !meta.report.markdown => Self::Complete,
                Status::Complete | Status::Running => Self::Unfinished,
                Status::Failed => Self::Failed(meta.error.clone().unwrap_or_else(|| "failed".into())),
            },
            Err(e) => Self::Failed(e.to_string()),
        }
    }
}

/// One row of `trials.csv`: a trial, its swept values, and its results as its folder holds them.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialRow {
    pub trial: usize,
    pub overrides: String,
    /// The value of each swept key, in the order of `trials.csv`'s key columns.
    pub values: Vec<String>,
    pub status: TrialStatus,
    pub best_epoch: Option<usize>,
    pub val_accuracy: Option<f64>,
    pub val_macro_f1: Option<f64>,
    pub val_weighted_f1: Option<f64>,
    pub val_loss: Option<f64>,
    pub test_accuracy: Option<f64>,
    pub test_macro_f1: Option<f64>,
    pub test_weighted_f1: Option<f64>,
    pub wall_seconds: Option<f64>,
    /// The trial's folder, relative to the sweep folder.
    pub run_dir: String,
}

impl TrialRow {
    /// Why it failed or stopped; empty otherwise.
    pub fn error(&self) -> &str {
        match &self.status {
            TrialStatus::Failed(error) | TrialStatus::Stopped(error) => error,
            _ => "",
        }
    }
}

/// A sweep folder on disk.
#[derive(Debug, Clone)]
pub struct SweepDir {
    root: PathBuf,
}

impl SweepDir {
    pub fn new(root: &Path) -> Self {
        Self { root: root.to_path_buf() }
    }

    /// Opens an existing sweep folder for reading.
    pub fn open(root: &Path) -> Result<Self> {
        if !root.join(TRIALS_CSV).is_file() {
            return Err(Error::run_dir(root, format!("no {TRIALS_CSV}: not a brasa sweep folder")));
        }
        Ok(Self::new(root))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// `trial-NN`, the folder of trial `number` relative to the sweep folder.
    pub fn trial_name(number: usize) -> String {
        format!("trial-{number:02}")
    }

    pub fn trial_dir(&self, number: usize) -> PathBuf {
        self.root.join(Self::trial_name(number))
    }

    /// Refuses an existing folder that is neither empty nor a sweep folder (`sweep.toml`, or only
    /// what a sweep writes before it: trial folders, the trials lock, the Slurm folder): a sweep
    /// writes its files over whatever has their names (a run folder's `report.md`, say).
    pub fn check_usable(&self) -> Result<()> {
        if !self.root.is_dir() || self.path(SWEEP_TOML).is_file() {
            return Ok(());
        }
        let entries = std::fs::read_dir(&self.root).map_err(|e| Error::io(&self.root, e))?;
        let ours = |entry: &std::fs::DirEntry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            (is_dir && (name.starts_with("trial-") || name == SLURM)) || [TRIALS_LOCK, TRIALS_CSV].contains(&name.as_str()) || run_dir::is_temporary(&name)
        };
        let foreign: Vec<String> = entries.filter_map(|e| e.ok()).filter(|e| !ours(e)).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        if foreign.is_empty() {
            return Ok(());
        }
        Err(Error::run_dir(
            &self.root,
            format!(
                "is not empty and holds no brasa sweep (no {SWEEP_TOML}; it has {}): a sweep is written only into a new or empty folder, or a sweep folder it resumes, never over other files; choose another --out (e.g. a new subfolder)",
                run_dir::some_names(foreign)
            ),
        ))
    }

    /// Writes `sweep.toml`: the base spec (without its `[sweep]`), then the sweep table.
    pub fn write_spec(&self, base_toml: &str, sweep_toml: &str) -> Result<()> {
        std::fs::create_dir_all(&self.root).map_err(|e| Error::io(&self.root, e))?;
        let text = format!("# the base spec of this sweep, then its [sweep] table\n{base_toml}{SWEEP_HEADER}{sweep_toml}");
        write_atomic(&self.path(SWEEP_TOML), text.as_bytes())
    }

    /// The base spec and the `[sweep]` table of `sweep.toml`, as written.
    pub fn read_spec(&self) -> Result<(String, String)> {
        let path = self.path(SWEEP_TOML);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let (base, sweep) = text.rsplit_once(SWEEP_HEADER).ok_or_else(|| Error::run_dir(&self.root, format!("{SWEEP_TOML} has no [sweep] table")))?;
        let base = base.split_once('\n').map_or("", |(_comment, rest)| rest);
        Ok((base.to_string(), sweep.to_string()))
    }

    /// The sweep whose trial `run_root` is (a `trial-NN` folder beside a `sweep.toml`), if any.
    pub fn of_trial(run_root: &Path) -> Option<Self> {
        let is_trial = run_root.file_name().is_some_and(|n| n.to_string_lossy().starts_with("trial-"));
        run_root.parent().filter(|p| is_trial && p.join(SWEEP_TOML).is_file()).map(Self::new)
    }

    /// The spec keys the sweep varies, from its `sweep.toml`.
    pub fn varied_keys(&self) -> Result<Vec<String>> {
        use figment::providers::Format;
        let (_, table) = self.read_spec()?;
        let malformed = |e: &dyn std::fmt::Display| Error::run_dir(&self.root, format!("{SWEEP_TOML} is malformed: {e}"));
        let table: figment::value::Dict = figment::Figment::from(figment::providers::Toml::string(&table)).extract().map_err(|e| malformed(&e))?;
        let origin = crate::fmt::display_path(&self.path(SWEEP_TOML));
        let parsed = crate::spec::sweep::Sweep::parse(&table, &origin).map_err(|e| malformed(&e))?;
        Ok(parsed.varied_keys())
    }

    /// The row of trial `number` as its folder holds it now.
    pub fn read_trial(&self, number: usize, overrides: String, values: Vec<String>) -> TrialRow {
        let run = RunDir::open(&self.trial_dir(number));
        let meta = run.as_ref().ok().map(RunDir::read_meta);
        let mut row = TrialRow {
            trial: number,
            overrides,
            values,
            status: match (&run, &meta) {
                (Ok(run), Some(meta)) => TrialStatus::read(run, meta),
                _ => TrialStatus::Pending,
            },
            best_epoch: None,
            val_accuracy: None,
            val_macro_f1: None,
            val_weighted_f1: None,
            val_loss: None,
            test_accuracy: None,
            test_macro_f1: None,
            test_weighted_f1: None,
            wall_seconds: None,
            run_dir: Self::trial_name(number),
        };
        let (Ok(run), Some(Ok(meta))) = (run, meta) else { return row };
        row.best_epoch = meta.best_epoch;
        row.wall_seconds = meta.wall_seconds;
        if let (Some(best), Ok(epochs)) = (meta.best_epoch, run.read_epochs())
            && let Some(e) = epochs.iter().find(|e| e.epoch == best)
        {
            row.val_accuracy = Some(e.val_accuracy);
            row.val_macro_f1 = Some(e.val_macro_f1);
            row.val_weighted_f1 = Some(e.val_weighted_f1);
            row.val_loss = Some(e.val_loss);
        }
        if row.status == TrialStatus::Complete
            && let Ok(predictions) = run.read_predictions(Part::Test, &meta.classes)
        {
            let truth: Vec<usize> = predictions.iter().map(|p| p.label).collect();
            let pred: Vec<usize> = predictions.iter().map(|p| p.prediction).collect();
            let scores = Scores::new(&truth, &pred, meta.classes.len());
            row.test_accuracy = Some(scores.accuracy);
            row.test_macro_f1 = Some(scores.macro_avg.f1);
            row.test_weighted_f1 = Some(scores.weighted_avg.f1);
        }
        row
    }

    /// `slurm/trial-NN.log`: what trial `number` printed under the Slurm launcher.
    pub fn slurm_log(&self, number: usize) -> PathBuf {
        self.root.join(SLURM).join(format!("{}.log", Self::trial_name(number)))
    }

    /// Holds the lock that serialises rewrites of `trials.csv` until the guard is dropped, after
    /// at most a bounded wait for another holder, whom it names ([`crate::run_dir::lock_shared_file`]).
    pub fn lock_trials(&self) -> Result<crate::run_dir::SharedFileLock> {
        crate::run_dir::lock_shared_file(&self.path(TRIALS_LOCK), TRIALS_CSV)
    }

    /// Removes the temporary files that a killed writer of this folder's own files (`trials.csv`,
    /// `sweep.toml`, the report) left in it: brasa's names only, and only those untouched for a
    /// minute, since a live writer's look the same. The number removed.
    pub fn remove_debris(&self) -> Result<usize> {
        let root = self.root();
        let stale = |entry: &std::fs::DirEntry| {
            let age = entry.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
            age.is_some_and(|age| age >= std::time::Duration::from_secs(60))
        };
        let mut removed = 0;
        for entry in std::fs::read_dir(root).map_err(|e| Error::io(root, e))?.flatten() {
            if crate::run_dir::is_temporary(&entry.file_name().to_string_lossy()) && entry.path().is_file() && stale(&entry) {
                std::fs::remove_file(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Reads every trial of `trials.csv` again from its folder and writes the file anew, under
    /// the trials lock: what a trial does when it ends, and `brasa status`.
    pub fn refresh_trials(&self) -> Result<(Vec<String>, Vec<TrialRow>)> {
        let _lock = self.lock_trials()?;
        let (keys, rows) = self.read_trials()?;
        self.write_trials(&keys, &rows)?;
        Ok((keys, rows))
    }

    /// Writes `trials.csv`: `trial, overrides, <one column per swept key>, <results>`.
    pub fn write_trials(&self, keys: &[String], rows: &[TrialRow]) -> Result<()> {
        let mut buffer = Vec::new();
        {
            let mut writer = csv::Writer::from_writer(&mut buffer);
            let mut header: Vec<String> = vec!["trial".into(), "overrides".into()];
            header.extend(keys.iter().cloned());
            header.extend(RESULT_COLUMNS.map(String::from));
            let csv_error = |e: csv::Error| Error::run_dir(&self.root, format!("cannot write {TRIALS_CSV}: {e}"));
            writer.write_record(&header).map_err(csv_error)?;
            let opt = |v: Option<f64>| v.map(|v| format!("{v:.6}")).unwrap_or_default();
            for row in rows {
                let mut record = vec![row.trial.to_string(), row.overrides.clone()];
                record.extend(row.values.iter().cloned());
                record.extend([
                    row.status.name().to_string(),
                    row.best_epoch.map(|e| e.to_string()).unwrap_or_default(),
                    opt(row.val_accuracy),
                    opt(row.val_macro_f1),
                    opt(row.val_loss),
                    opt(row.test_accuracy),
                    opt(row.test_macro_f1),
                    opt(row.test_weighted_f1),
                    row.wall_seconds.map(|w| format!("{w:.1}")).unwrap_or_default(),
                    row.error().to_string(),
                    row.run_dir.clone(),
                ]);
                writer.write_record(&record).map_err(csv_error)?;
            }
            writer.flush().map_err(|e| Error::io(self.path(TRIALS_CSV), e))?;
        }
        write_atomic(&self.path(TRIALS_CSV), &buffer)
    }

    /// The swept keys and every trial of `trials.csv`, its results read again from its folder
    /// (the file rounds them, and leaves some out). What only the launcher knows and `brasa
    /// status` recorded — a job that failed before the trial started, a trial stopped with its
    /// job — is kept while the folder says no more (pending, or unfinished and not running).
    pub fn read_trials(&self) -> Result<(Vec<String>, Vec<TrialRow>)> {
        let (keys, rows) = self.read_trials_csv()?;
        let rows = rows
            .into_iter()
            .map(|(mut row, recorded)| {
                if let Some(recorded) = recorded
                    && matches!(row.status, TrialStatus::Pending | TrialStatus::Unfinished)
                    && FolderLock::holder(&self.trial_dir(row.trial)).is_none()
                {
                    row.status = recorded;
                }
                row
            })
            .collect();
        Ok((keys, rows))
    }

    /// As [`SweepDir::read_trials`], from the trial folders alone, each row with the failure or
    /// stop `trials.csv` records for it (if any).
    pub fn read_trials_csv(&self) -> Result<(Vec<String>, Vec<(TrialRow, Option<TrialStatus>)>)> {
        let malformed = |message: String| Error::run_dir(&self.root, format!("{TRIALS_CSV} is malformed: {message}"));
        let mut reader = csv::Reader::from_path(self.path(TRIALS_CSV)).map_err(|e| Error::run_dir(&self.root, format!("cannot read {TRIALS_CSV}: {e}")))?;
        let header = reader.headers().map_err(|e| malformed(e.to_string()))?.clone();
        let keys_end = header.iter().position(|h| h == RESULT_COLUMNS[0]).ok_or_else(|| malformed("no status column".into()))?;
        let error_column = header.iter().position(|h| h == "error");
        let keys: Vec<String> = header.iter().take(keys_end).skip(2).map(String::from).collect();
        let mut rows = Vec::new();
        for record in reader.records() {
            let record = record.map_err(|e| malformed(e.to_string()))?;
            let number = record.get(0).and_then(|t| t.parse().ok()).ok_or_else(|| malformed(format!("trial {:?} is not a number", record.get(0))))?;
            let overrides = record.get(1).unwrap_or_default().to_string();
            let values = (2..keys_end).map(|i| record.get(i).unwrap_or_default().to_string()).collect();
            let error = error_column.and_then(|i| record.get(i)).unwrap_or_default().to_string();
            let recorded = match record.get(keys_end) {
                Some("failed") => Some(TrialStatus::Failed(error)),
                Some("stopped") => Some(TrialStatus::Stopped(error)),
                _ => None,
            };
            rows.push((self.read_trial(number, overrides, values), recorded));
        }
        Ok((keys, rows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trials_csv_reads_back_its_trials_and_sweep_toml_its_parts() {
        let dir = tempfile::tempdir().unwrap();
        let sweep = SweepDir::new(dir.path());
        sweep.write_spec("[experiment]\nname = \"x\"\n", "lr = [1, 2]\n").unwrap();
        assert_eq!(sweep.read_spec().unwrap(), ("[experiment]\nname = \"x\"\n".to_string(), "lr = [1, 2]\n".to_string()));
        let keys = vec!["train.optimizer.lr".to_string()];
        let rows: Vec<TrialRow> = (1..=2).map(|n| sweep.read_trial(n, format!("lr={n}"), vec![n.to_string()])).collect();
        assert_eq!(rows[0].status, TrialStatus::Pending);
        sweep.write_trials(&keys, &rows).unwrap();
        assert_eq!(sweep.read_trials().unwrap(), (keys, rows));
    }

    #[test]
    fn a_failure_or_stop_only_the_launcher_knows_is_kept_until_the_folder_says_more() {
        let dir = tempfile::tempdir().unwrap();
        let sweep = SweepDir::new(dir.path());
        let keys = vec!["lr".to_string()];
        let mut rows: Vec<TrialRow> = (1..=3).map(|n| sweep.read_trial(n, format!("lr={n}"), vec![n.to_string()])).collect();
        rows[0].status = TrialStatus::Failed("Slurm job 7_1 ended FAILED before the trial started".into());
        rows[1].status = TrialStatus::Stopped("Slurm job 7_2 was cancelled".into());
        sweep.write_trials(&keys, &rows).unwrap();
        let text = std::fs::read_to_string(sweep.path(TRIALS_CSV)).unwrap();
        assert!(text.contains("failed,,,,,,,,,Slurm job 7_1 ended FAILED before the trial started,trial-01"), "{text}");
        assert!(text.contains("stopped,,,,,,,,,Slurm job 7_2 was cancelled,trial-02"), "{text}");
        // the report and a trial's end read these back: the folders (none yet) say no more
        assert_eq!(sweep.read_trials().unwrap().1, rows);
        // from the folders alone, with what was recorded beside
        let (_, fresh) = sweep.read_trials_csv().unwrap();
        assert_eq!(fresh[0].0.status, TrialStatus::Pending);
        assert_eq!(fresh[1].1, Some(TrialStatus::Stopped("Slurm job 7_2 was cancelled".into())));
        assert_eq!(fresh[2].1, None);
    }
}
