//! Sweeps: one spec with a `[sweep]` table becomes several trials, each an ordinary run folder
//! under `reports/<experiment>/sweep-<fingerprint>/trial-NN/`, plus `trials.csv` and a sweep
//! report.
//!
//! Each trial runs in its own `brasa run --trial K` process (the unit a cluster job would run),
//! `jobs` at a time, the CPU threads split between them. Re-running the same command finds the
//! same folder: finished trials are skipped, interrupted ones resume from their last epoch, a
//! failed trial is recorded with its error and the sweep goes on.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::progress::Progress;
use crate::run_dir::{self, Part, RunDir, Status};
use crate::spec::sweep::{Sweep, Trial, fingerprint};
use crate::spec::{Layers, LoadedSpec, SpecError, SpecIssue};

/// A sweep resolved into trials, every trial's plan validated.
pub struct SweepPlan {
    pub name: String,
    pub dir: PathBuf,
    pub sweep: Sweep,
    pub trials: Vec<(Trial, Plan)>,
    /// The base spec as TOML (without its `[sweep]` table) and the sweep table, for the record.
    pub base_toml: String,
    pub sweep_toml: String,
}

/// Where a trial stands, read from its run folder.
#[derive(Debug, Clone, PartialEq)]
pub enum TrialStatus {
    Pending,
    /// Started and not finished (running now, or interrupted: it resumes).
    Unfinished,
    Complete,
    Failed(String),
}

impl TrialStatus {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Unfinished => "unfinished",
            Self::Complete => "complete",
            Self::Failed(_) => "failed",
        }
    }
}

impl SweepPlan {
    /// Loads `file` with `layers`, parses its `[sweep]` and resolves every trial.
    pub fn resolve(file: &Path, layers: &Layers) -> Result<Self> {
        let base = LoadedSpec::load(file, layers)?;
        let table = base.spec.sweep.clone().ok_or_else(|| {
            Error::Spec(SpecError::single(SpecIssue {
                origin: crate::fmt::display_path(file),
                key: "sweep".into(),
                value: None,
                message: "this spec has no [sweep] table".into(),
                hint: None,
            }))
        })?;
        let sweep = Sweep::parse(&table, &base.origin("sweep"))?;
        let base_plan = Plan::resolve(&base)?;
        let mut trials = Vec::new();
        let mut issues = Vec::new();
        for trial in sweep.trials(base.spec.experiment.seed) {
            let mut trial_layers = layers.clone();
            trial_layers.overrides.extend(trial.overrides.iter().cloned());
            let resolved = LoadedSpec::load(file, &trial_layers).map_err(Error::from).and_then(|l| Plan::resolve(&l).map_err(Error::from));
            match resolved {
                Ok(plan) => trials.push((trial, plan)),
                Err(Error::Spec(e)) => issues.extend(e.issues.into_iter().map(|mut i| {
                    i.message = format!("{} (in trial {}: {})", i.message, trial.number, trial.describe());
                    i
                })),
                Err(other) => return Err(other),
            }
        }
        if !issues.is_empty() {
            return Err(SpecError { issues }.into());
        }
        let sweep_toml = toml::to_string(&table).unwrap_or_default();
        let id = fingerprint(&format!("{}\n{sweep_toml}", base_plan.resolved_toml));
        Ok(Self {
            name: base_plan.name.clone(),
            dir: Path::new("reports").join(&base_plan.name).join(format!("sweep-{id}")),
            sweep,
            trials,
            base_toml: base_plan.resolved_toml,
            sweep_toml,
        })
    }

    pub fn trial_dir(&self, number: usize) -> PathBuf {
        self.dir.join(format!("trial-{number:02}"))
    }

    /// The plan of trial `number` (1-based).
    pub fn trial(&self, number: usize) -> Result<&(Trial, Plan)> {
        self.trials.get(number.wrapping_sub(1)).ok_or_else(|| {
            Error::Spec(SpecError::single(SpecIssue {
                origin: "--trial".into(),
                key: String::new(),
                value: Some(number.to_string()),
                message: format!("this sweep has trials 1 to {}", self.trials.len()),
                hint: None,
            }))
        })
    }

    /// The trial list as text (for `--dry-run`).
    pub fn listing(&self) -> String {
        let mut text = format!("sweep of {} trial(s) into {}\n", self.trials.len(), self.dir.display());
        for (trial, _) in &self.trials {
            text.push_str(&format!("trial {:>2}: {}\n", trial.number, trial.describe()));
        }
        text
    }
}

/// The status of the trial whose run folder is `dir`.
pub fn trial_status(dir: &Path) -> TrialStatus {
    let Ok(run) = RunDir::open(dir) else { return TrialStatus::Pending };
    match run.read_meta() {
        Ok(meta) => match meta.status {
            Status::Complete if run.path(run_dir::REPORT_MD).is_file() || !meta.report.markdown => TrialStatus::Complete,
            Status::Complete | Status::Running => TrialStatus::Unfinished,
            Status::Failed => TrialStatus::Failed(meta.error.unwrap_or_else(|| "failed".into())),
        },
        Err(e) => TrialStatus::Failed(e.to_string()),
    }
}

/// How to start one trial's process: `(trial, run folder, threads) -> command`.
pub type Launcher<'a> = dyn Fn(&Trial, &Path, usize) -> Command + 'a;

/// Runs every unfinished trial, `jobs` at a time with `threads / jobs` threads each, then writes
/// `trials.csv` and the sweep report. Returns the number of failed trials.
pub fn run(plan: &SweepPlan, jobs: usize, threads: usize, launcher: &Launcher, progress: &Progress) -> Result<usize> {
    std::fs::create_dir_all(&plan.dir).map_err(|e| Error::io(&plan.dir, e))?;
    crate::atomic_file::write_atomic(
        &plan.dir.join("sweep.toml"),
        format!("# the base spec of this sweep, then its [sweep] table\n{}\n[sweep]\n{}", plan.base_toml, plan.sweep_toml).as_bytes(),
    )?;
    let jobs = jobs.max(1).min(plan.trials.len().max(1));
    let per_trial = (threads / jobs).max(1);
    let mut queue: Vec<&Trial> = Vec::new();
    for (trial, _) in &plan.trials {
        match trial_status(&plan.trial_dir(trial.number)) {
            TrialStatus::Complete => progress.log(format!("trial {:>2}: complete, skipped ({})", trial.number, trial.describe())),
            TrialStatus::Unfinished => {
                progress.log(format!("trial {:>2}: interrupted earlier, resuming ({})", trial.number, trial.describe()));
                queue.push(trial);
            }
            _ => queue.push(trial),
        }
    }
    progress.log(format!(
        "sweep {}: {} of {} trial(s) to run, {jobs} at a time with {per_trial} thread(s) each",
        plan.dir.display(),
        queue.len(),
        plan.trials.len()
    ));
    let started = Instant::now();
    let mut running: Vec<(&Trial, Child, Instant)> = Vec::new();
    let mut pending = queue.into_iter();
    loop {
        while running.len() < jobs {
            let Some(trial) = pending.next() else { break };
            let dir = plan.trial_dir(trial.number);
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            let log_path = dir.join("log.txt");
            let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).map_err(|e| Error::io(&log_path, e))?;
            let err = log.try_clone().map_err(|e| Error::io(&log_path, e))?;
            let child = launcher(trial, &dir, per_trial)
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(err)
                .spawn()
                .map_err(|e| Error::Train(format!("cannot start trial {}: {e}", trial.number)))?;
            progress.log(format!("trial {:>2}: started ({}), log: {}", trial.number, trial.describe(), log_path.display()));
            running.push((trial, child, Instant::now()));
        }
        if running.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        let mut index = 0;
        while index < running.len() {
            let finished = running[index].1.try_wait().map_err(|e| Error::Train(format!("trial {}: {e}", running[index].0.number)))?;
            let Some(exit) = finished else {
                index += 1;
                continue;
            };
            let (trial, _, since) = running.remove(index);
            let status = trial_status(&plan.trial_dir(trial.number));
            let line = match (&status, exit.success()) {
                (TrialStatus::Complete, _) => format!("complete in {}", crate::fmt::format_duration(since.elapsed().as_secs_f64())),
                (TrialStatus::Failed(error), _) => format!("FAILED: {error}"),
                (_, _) => format!("FAILED: exited with {exit}; see {}", plan.trial_dir(trial.number).join("log.txt").display()),
            };
            progress.log(format!("trial {:>2}: {line}", trial.number));
            write_trials_csv(plan)?;
        }
    }
    let rows = write_trials_csv(plan)?;
    crate::report::sweep::render(plan, &rows)?;
    let failed = rows.iter().filter(|r| r.status != "complete").count();
    progress.log(format!(
        "sweep finished in {}: {} complete, {failed} not; report: {}",
        crate::fmt::format_duration(started.elapsed().as_secs_f64()),
        rows.len() - failed,
        plan.dir.join("report.md").display()
    ));
    Ok(failed)
}

/// One row of `trials.csv`.
#[derive(Debug, Clone, Serialize)]
pub struct TrialRow {
    pub trial: usize,
    pub overrides: String,
    /// The value of each swept key, in `SweepPlan::sweep.varied_keys()` order.
    #[serde(skip)]
    pub values: Vec<String>,
    pub status: String,
    pub best_epoch: Option<usize>,
    pub val_accuracy: Option<f64>,
    pub val_macro_f1: Option<f64>,
    pub val_weighted_f1: Option<f64>,
    pub val_loss: Option<f64>,
    pub test_accuracy: Option<f64>,
    pub test_macro_f1: Option<f64>,
    pub test_weighted_f1: Option<f64>,
    pub wall_seconds: Option<f64>,
    pub error: String,
    pub run_dir: String,
}

/// Reads every trial's folder and writes `trials.csv` (derived from the folders, so it is right
/// even after an interruption).
pub fn write_trials_csv(plan: &SweepPlan) -> Result<Vec<TrialRow>> {
    let keys = plan.sweep.varied_keys();
    let mut rows = Vec::new();
    for (trial, _) in &plan.trials {
        let dir = plan.trial_dir(trial.number);
        let status = trial_status(&dir);
        let mut row = TrialRow {
            trial: trial.number,
            overrides: trial.describe(),
            values: keys.iter().map(|k| trial.value_of(k).unwrap_or_default()).collect(),
            status: status.name().into(),
            best_epoch: None,
            val_accuracy: None,
            val_macro_f1: None,
            val_weighted_f1: None,
            val_loss: None,
            test_accuracy: None,
            test_macro_f1: None,
            test_weighted_f1: None,
            wall_seconds: None,
            error: match &status {
                TrialStatus::Failed(e) => e.clone(),
                _ => String::new(),
            },
            run_dir: format!("trial-{:02}", trial.number),
        };
        if let Ok(run) = RunDir::open(&dir)
            && let Ok(meta) = run.read_meta()
        {
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
            if status == TrialStatus::Complete
                && let Ok(predictions) = run.read_predictions(Part::Test, &meta.classes)
            {
                let truth: Vec<usize> = predictions.iter().map(|p| p.label).collect();
                let pred: Vec<usize> = predictions.iter().map(|p| p.prediction).collect();
                let report = crate::metrics::Scores::new(&truth, &pred, meta.classes.len());
                row.test_accuracy = Some(report.accuracy);
                row.test_macro_f1 = Some(report.macro_avg.f1);
                row.test_weighted_f1 = Some(report.weighted_avg.f1);
            }
        }
        rows.push(row);
    }
    let mut buffer = Vec::new();
    {
        let mut writer = csv::Writer::from_writer(&mut buffer);
        let mut header: Vec<String> = vec!["trial".into(), "overrides".into()];
        header.extend(keys.iter().cloned());
        header.extend(
            [
                "status", "best_epoch", "val_accuracy", "val_macro_f1", "val_loss", "test_accuracy", "test_macro_f1",
                "test_weighted_f1", "wall_seconds", "error", "run_dir",
            ]
            .map(String::from),
        );
        let csv_error = |e: csv::Error| Error::Report(format!("trials.csv: {e}"));
        writer.write_record(&header).map_err(csv_error)?;
        let opt = |v: Option<f64>| v.map(|v| format!("{v:.6}")).unwrap_or_default();
        for row in &rows {
            let mut record = vec![row.trial.to_string(), row.overrides.clone()];
            record.extend(row.values.iter().cloned());
            record.extend([
                row.status.clone(),
                row.best_epoch.map(|e| e.to_string()).unwrap_or_default(),
                opt(row.val_accuracy),
                opt(row.val_macro_f1),
                opt(row.val_loss),
                opt(row.test_accuracy),
                opt(row.test_macro_f1),
                opt(row.test_weighted_f1),
                row.wall_seconds.map(|w| format!("{w:.1}")).unwrap_or_default(),
                row.error.clone(),
                row.run_dir.clone(),
            ]);
            writer.write_record(&record).map_err(csv_error)?;
        }
        writer.flush().map_err(|e| Error::io(plan.dir.join("trials.csv"), e))?;
    }
    crate::atomic_file::write_atomic(&plan.dir.join("trials.csv"), &buffer)?;
    Ok(rows)
}
