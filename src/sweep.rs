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

use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::progress::Progress;
use crate::run_dir::{FolderLock, HELD_BY_PARENT_ENV, Holder};
use crate::fmt::{display_path, format_duration};
use crate::spec::sweep::{Sweep, Trial, fingerprint};
use crate::spec::{Layers, LoadedSpec, SpecError, SpecIssue};
use crate::sweep_dir::{SweepDir, TRIAL_LOG, TrialRow, TrialStatus};

/// A sweep resolved into trials, every trial's plan validated.
pub struct SweepPlan {
    pub name: String,
    /// `reports/<experiment>/sweep-<fingerprint>`, or the folder given with `--out`.
    pub dir: SweepDir,
    pub sweep: Sweep,
    pub trials: Vec<(Trial, Plan)>,
    /// The base spec as TOML (without its `[sweep]` table) and the sweep table, for the record.
    pub base_toml: String,
    pub sweep_toml: String,
}

impl SweepPlan {
    /// Loads `file` with `layers`, parses its `[sweep]` and resolves every trial; the sweep folder
    /// is `out`, else the one its fingerprint names.
    pub fn resolve(file: &Path, layers: &Layers, out: Option<&Path>) -> Result<Self> {
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
            trial_layers.sweep = Some((base.file_setting("sweep").unwrap_or_else(|| file.to_path_buf()), trial.overrides.clone()));
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
            dir: SweepDir::new(&out.map(Path::to_path_buf).unwrap_or_else(|| Path::new("reports").join(&base_plan.name).join(format!("sweep-{id}")))),
            sweep,
            trials,
            base_toml: base_plan.resolved_toml,
            sweep_toml,
        })
    }

    pub fn trial_dir(&self, number: usize) -> PathBuf {
        self.dir.trial_dir(number)
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

    /// Refuses a folder that is not empty and not a sweep folder (see [`SweepDir::check_usable`]),
    /// and a sweep folder whose trial folders hold runs of other specs than this sweep's trials
    /// of the same numbers (an edited or reordered `[sweep]`, another base spec): skipped or
    /// resumed, their results would be listed under values they were not trained with.
    /// Called before anything in the folder is run, skipped or written.
    pub fn check_folder(&self) -> Result<()> {
        self.dir.check_usable()?;
        let mut differing = String::new();
        for (trial, plan) in &self.trials {
            let dir = self.trial_dir(trial.number);
            // a trial folder without a spec has run nothing yet
            let Ok(recorded) = std::fs::read_to_string(dir.join(crate::run_dir::SPEC)) else { continue };
            let differences = crate::runner::spec_differences(&recorded, &plan.resolved_toml);
            if !differences.is_empty() {
                differing.push_str(&format!("\n  {} (trial {} is now {}): {}", display_path(&dir), trial.number, trial.describe(), differences.join("; ")));
            }
        }
        if differing.is_empty() {
            return Ok(());
        }
        Err(Error::run_dir(
            self.dir.root(),
            format!(
                "holds trials that ran with other values than this sweep gives them, so nothing is run or skipped:{differing}\nrun the sweep with the values this folder was made with (its {}), or choose another --out for the edited one",
                crate::sweep_dir::SWEEP_TOML
            ),
        ))
    }

    /// The trial list as text (for `--dry-run`).
    pub fn listing(&self) -> String {
        let mut text = format!("sweep of {} trial(s) into {}\n", self.trials.len(), self.dir.root().display());
        for (trial, _) in &self.trials {
            text.push_str(&format!("trial {:>2}: {}\n", trial.number, trial.describe()));
        }
        text
    }
}

/// How to start one trial's process: `(trial, run folder, threads) -> command`.
pub type Launcher<'a> = dyn Fn(&Trial, &Path, usize) -> Command + 'a;

/// Runs every unfinished trial, `jobs` at a time with `threads / jobs` threads each, then writes
/// `trials.csv` and the sweep report. Returns the number of failed trials.
pub fn run(plan: &SweepPlan, jobs: usize, threads: usize, launcher: &Launcher, progress: &Progress) -> Result<Tally> {
    plan.check_folder()?;
    plan.dir.write_spec(&plan.base_toml, &plan.sweep_toml)?;
    let jobs = jobs.max(1).min(plan.trials.len().max(1));
    let per_trial = (threads / jobs).max(1);
    let mut queue: Vec<&Trial> = Vec::new();
    for (trial, _) in &plan.trials {
        match TrialStatus::of(&plan.trial_dir(trial.number)) {
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
        plan.dir.root().display(),
        queue.len(),
        plan.trials.len()
    ));
    // written now, not only when a trial ends: `brasa status` follows the sweep from its first trial
    write_trials_csv(plan)?;
    plan.dir.remove_debris()?;
    let started = Instant::now();
    let mut running: Vec<(&Trial, Child, Instant, FolderLock)> = Vec::new();
    let mut pending = queue.into_iter();
    let mut elsewhere = Vec::new();
    // a signal stops launching trials and is passed on to the running ones, which save a
    // checkpoint and stop; the sweep waits for them (a second signal stops everything at once)
    let _graceful = crate::interrupt::Graceful::new();
    let mut stopped: Option<(&'static str, usize)> = None;
    loop {
        if let Some(signal) = crate::interrupt::requested()
            && stopped.is_none()
        {
            running.iter().for_each(|(_, child, _, _)| crate::interrupt::forward(child.id()));
            progress.log(format!("{signal}: launching no more trials; waiting for the {} running to save a checkpoint", running.len()));
            stopped = Some((signal, running.len()));
        }
        while running.len() < jobs && stopped.is_none() {
            let Some(trial) = pending.next() else { break };
            let dir = plan.trial_dir(trial.number);
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            // the sweep takes each trial's lock for the trial's process (told so by the
            // environment), so a second sweep on this folder skips it from the very start; the
            // process gets the lock as its standard input and holds it as long as it runs, even
            // when this sweep is killed (a restarted sweep then never starts a second one on it)
            let lock = match FolderLock::try_acquire(&dir)? {
                Ok(lock) => lock,
                Err(Holder(holder)) => {
                    progress.log(format!("trial {:>2}: running in another process ({holder}), skipped", trial.number));
                    elsewhere.push(trial.number);
                    continue;
                }
            };
            if TrialStatus::of(&dir) == TrialStatus::Complete {
                progress.log(format!("trial {:>2}: completed by another process meanwhile, skipped", trial.number));
                continue;
            }
            let log_path = dir.join(TRIAL_LOG);
            let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).map_err(|e| Error::io(&log_path, e))?;
            let err = log.try_clone().map_err(|e| Error::io(&log_path, e))?;
            let mut command = launcher(trial, &dir, per_trial);
            command.env(HELD_BY_PARENT_ENV, &dir);
            // its own process group: a terminal's Ctrl-C reaches the sweep, which passes it on once
            #[cfg(unix)]
            std::os::unix::process::CommandExt::process_group(&mut command, 0);
            #[cfg(unix)]
            let stdin = match lock.handle() {
                Some(handle) => Stdio::from(handle.map_err(|e| Error::io(dir.join(crate::run_dir::LOCK), e))?),
                None => Stdio::null(),
            };
            #[cfg(not(unix))]
            let stdin = Stdio::null();
            let child = command.stdin(stdin).stdout(log).stderr(err).spawn().map_err(|e| Error::io(command.get_program(), e))?;
            progress.log(format!("trial {:>2}: started ({}), log: {}", trial.number, trial.describe(), log_path.display()));
            running.push((trial, child, Instant::now(), lock));
        }
        if running.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        let mut index = 0;
        while index < running.len() {
            let finished = running[index].1.try_wait().map_err(|e| Error::io(format!("<trial {} process>", running[index].0.number), e))?;
            let Some(exit) = finished else {
                index += 1;
                continue;
            };
            let (trial, _, since, _lock) = running.remove(index);
            let status = TrialStatus::of(&plan.trial_dir(trial.number));
            let line = match (&status, exit.success()) {
                (TrialStatus::Complete, _) => format!("complete in {}", format_duration(since.elapsed().as_secs_f64())),
                (TrialStatus::Failed(error), _) => format!("FAILED: {error}"),
                (_, _) if stopped.is_some() => "stopped; its checkpoint resumes it".to_string(),
                (_, _) => format!("FAILED: exited with {exit}; see {}", plan.trial_dir(trial.number).join(TRIAL_LOG).display()),
            };
            progress.log(format!("trial {:>2}: {line}", trial.number));
            // a trials.csv kept by a stopped holder of its lock is no reason to stop the sweep:
            // the next rewrite (at the latest, the sweep's last) catches up
            if let Err(e) = write_trials_csv(plan) {
                progress.log(format!("warning: trials.csv of {} was not rewritten: {e}", display_path(plan.dir.root())));
            }
        }
    }
    let rows = write_trials_csv(plan)?;
    crate::report::sweep::render(&plan.dir)?;
    if let Some((signal, running)) = stopped {
        return Err(Error::SweepInterrupted { signal: signal.into(), running });
    }
    // a trial another process is still running has not failed: that process reports on it
    let complete: Vec<usize> = rows.iter().zip(&plan.trials).filter(|(row, _)| row.status == TrialStatus::Complete).map(|(_, (trial, _))| trial.number).collect();
    elsewhere.retain(|number| !complete.contains(number));
    let failed = rows.len() - complete.len() - elsewhere.len();
    let elsewhere_count = elsewhere.len();
    let elsewhere = if elsewhere.is_empty() { String::new() } else { format!(", {} running in another process", elsewhere.len()) };
    progress.log(format!(
        "sweep finished in {}: {} complete, {failed} failed{elsewhere}; report: {}",
        format_duration(started.elapsed().as_secs_f64()),
        complete.len(),
        plan.dir.path(crate::sweep_dir::REPORT_MD).display()
    ));
    Ok(Tally { complete: complete.len(), failed, elsewhere: elsewhere_count })
}

/// How a sweep's trials stand after [`run`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub complete: usize,
    /// Neither complete nor running in another process.
    pub failed: usize,
    /// Held by another process (another sweep, or a `--trial` run) when this one reached them.
    pub elsewhere: usize,
}

/// Reads every trial's folder and writes `trials.csv` (derived from the folders, so it is right
/// even after an interruption).
pub fn write_trials_csv(plan: &SweepPlan) -> Result<Vec<TrialRow>> {
    let _lock = plan.dir.lock_trials()?;
    let keys = plan.sweep.varied_keys();
    let rows: Vec<TrialRow> = plan
        .trials
        .iter()
        .map(|(trial, _)| plan.dir.read_trial(trial.number, trial.describe(), keys.iter().map(|k| trial.value_of(k).unwrap_or_default()).collect()))
        .collect();
    plan.dir.write_trials(&keys, &rows)?;
    Ok(rows)
}
