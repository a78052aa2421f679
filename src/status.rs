//! `brasa status SWEEP_DIR`: where each trial of a sweep stands — finished, running (where,
//! which job, how far), queued, failed (with the last lines of its log), stopped, not submitted —
//! read from the trial folders, their locks and, for a sweep sent to Slurm, `squeue`. It also
//! rewrites `trials.csv` and the sweep report, so they are current without a process waiting on
//! the cluster.

use crate::error::{Error, Result};
use crate::run_dir::{FolderLock, RunDir};
use crate::slurm::{self, Submission, Task};
use crate::sweep_dir::{SweepDir, TRIAL_LOG, TrialRow, TrialStatus};
use crate::train::TrainState;

/// Where one trial stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Standing {
    Finished { val_accuracy: Option<f64>, test_accuracy: Option<f64> },
    /// Its folder's lock is held (`holder` says by whom), or Slurm runs its task.
    Running { holder: Option<String>, task: Option<Task>, progress: Option<String> },
    Queued { task: Task },
    Failed { error: String, log_tail: Vec<String> },
    /// Interrupted or cancelled, and neither running nor queued: submitting the sweep again
    /// resumes it (`why` says what stopped it).
    Stopped { why: String, progress: Option<String> },
    NotSubmitted,
    /// Submitted, but the queue could not be read here (`squeue` missing or failing).
    Submitted,
}

impl Standing {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Finished { .. } => "finished",
            Self::Running { .. } => "running",
            Self::Queued { .. } => "queued",
            Self::Failed { .. } => "failed",
            Self::Stopped { .. } => "stopped",
            Self::NotSubmitted => "not submitted",
            Self::Submitted => "submitted",
        }
    }

    /// Neither running nor queued: nothing will change it without a new command.
    pub fn settled(&self) -> bool {
        !matches!(self, Self::Running { .. } | Self::Queued { .. })
    }
}

#[derive(Debug, Clone)]
pub struct TrialStanding {
    pub trial: usize,
    pub overrides: String,
    pub standing: Standing,
}

/// A sweep's trials as they stand, and what could not be asked.
#[derive(Debug, Clone)]
pub struct SweepStatus {
    pub trials: Vec<TrialStanding>,
    pub submissions: Vec<Submission>,
    /// Why the queue is unknown (e.g. `squeue` missing here), when it is.
    pub queue_unknown: Option<String>,
}

/// The lines of a log kept for a failed trial.
const LOG_TAIL: usize = 5;

/// Reads where every trial of `dir` stands, rewriting `trials.csv` on the way.
pub fn read(dir: &SweepDir) -> Result<SweepStatus> {
    let (_keys, rows) = dir.refresh_trials()?;
    let submissions = dir.read_submissions()?;
    let jobs: Vec<String> = submissions.iter().map(|s| s.job_id.clone()).collect();
    let (tasks, queue_unknown) = match slurm::queue(&jobs) {
        Ok(tasks) => (tasks, None),
        Err(e @ Error::Cluster { .. }) => (Vec::new(), Some(e.to_string())),
        Err(e) => return Err(e),
    };
    let known = queue_unknown.is_none();
    let trials = rows.iter().map(|row| TrialStanding { trial: row.trial, overrides: row.overrides.clone(), standing: standing(dir, row, &tasks, &submissions, known) }).collect();
    Ok(SweepStatus { trials, submissions, queue_unknown })
}

fn standing(dir: &SweepDir, row: &TrialRow, tasks: &[Task], submissions: &[Submission], queue_known: bool) -> Standing {
    let folder = dir.trial_dir(row.trial);
    // the newest task of this trial (a later submission supersedes an earlier one)
    let task = tasks.iter().rev().find(|t| slurm::trial_of(t, submissions) == Some(row.trial)).cloned();
    let submitted = submissions.iter().any(|s| s.trials.contains(&row.trial));
    match &row.status {
        TrialStatus::Complete => return Standing::Finished { val_accuracy: row.val_accuracy, test_accuracy: row.test_accuracy },
        TrialStatus::Failed(error) => return Standing::Failed { error: error.clone(), log_tail: log_tail(dir, row.trial) },
        TrialStatus::Pending | TrialStatus::Unfinished => {}
    }
    if let Some(holder) = FolderLock::holder(&folder) {
        return Standing::Running { holder: Some(holder.0), task: task.filter(Task::active), progress: progress(&folder) };
    }
    if !queue_known && submitted {
        return Standing::Submitted;
    }
    match task {
        Some(task) if task.active() && task.state == "RUNNING" => Standing::Running { holder: None, task: Some(task), progress: progress(&folder) },
        Some(task) if task.active() => Standing::Queued { task },
        Some(task) if task.state == "CANCELLED" => Standing::Stopped { why: format!("Slurm job {} was cancelled", task.id), progress: progress(&folder) },
        Some(task) => Standing::Failed {
            error: format!("Slurm job {} ended {} before the trial finished", task.id, task.state),
            log_tail: log_tail(dir, row.trial),
        },
        None if row.status == TrialStatus::Unfinished => Standing::Stopped { why: "interrupted".into(), progress: progress(&folder) },
        None if submitted => Standing::Failed {
            error: "its Slurm job is no longer queued and the trial never started".into(),
            log_tail: log_tail(dir, row.trial),
        },
        None => Standing::NotSubmitted,
    }
}

/// "epoch 2/10, step 14" from a trial's last checkpoint.
fn progress(folder: &std::path::Path) -> Option<String> {
    let run = RunDir::open(folder).ok()?;
    let meta = run.read_meta().ok()?;
    match run.read_checkpoint_state::<TrainState>().ok().flatten() {
        Some(checkpoint) => {
            let state = checkpoint.train;
            let epoch = (state.epochs_done + usize::from(state.partial.is_some())).max(1).min(meta.train.epochs);
            Some(format!("epoch {epoch}/{}, step {} of {} at the last checkpoint", meta.train.epochs, state.step, meta.train.epochs * meta.train.steps_per_epoch))
        }
        None => Some(format!("epoch 1/{}, before its first checkpoint", meta.train.epochs)),
    }
}

/// The last lines of what trial `number` printed (its Slurm log, else its own log).
fn log_tail(dir: &SweepDir, number: usize) -> Vec<String> {
    let text = [dir.slurm_log(number), dir.trial_dir(number).join(TRIAL_LOG)].iter().find_map(|p| std::fs::read_to_string(p).ok()).unwrap_or_default();
    let lines: Vec<String> = text.lines().filter(|l| !l.trim().is_empty()).map(String::from).collect();
    lines[lines.len().saturating_sub(LOG_TAIL)..].to_vec()
}

impl SweepStatus {
    /// One line per trial, then a summary line.
    pub fn render(&self, dir: &SweepDir) -> String {
        let mut text = String::new();
        let mut counts: Vec<(&'static str, usize)> = Vec::new();
        for t in &self.trials {
            let name = t.standing.name();
            match counts.iter_mut().find(|(n, _)| *n == name) {
                Some((_, count)) => *count += 1,
                None => counts.push((name, 1)),
            }
            let detail = match &t.standing {
                Standing::Finished { val_accuracy, test_accuracy } => {
                    let score = |v: &Option<f64>| v.map(|v| format!("{v:.4}")).unwrap_or_else(|| "–".into());
                    format!("val acc {}, test acc {}", score(val_accuracy), score(test_accuracy))
                }
                Standing::Running { holder, task, progress } => {
                    let mut parts = Vec::new();
                    if let Some(task) = task {
                        parts.push(format!("Slurm job {} on {}", task.id, task.node));
                    }
                    match holder {
                        Some(holder) => parts.push(format!("by {holder}")),
                        None => parts.push("starting".into()),
                    }
                    parts.extend(progress.clone());
                    parts.join(", ")
                }
                Standing::Queued { task } => match task.reason.as_str() {
                    "" | "None" => format!("Slurm job {} {}", task.id, task.state),
                    reason => format!("Slurm job {} {} ({reason})", task.id, task.state),
                },
                Standing::Failed { error, .. } => error.clone(),
                Standing::Stopped { why, progress } => {
                    let at = progress.as_ref().map(|p| format!(" ({p})")).unwrap_or_default();
                    format!("{why}{at}; submitting the sweep again resumes it")
                }
                Standing::NotSubmitted => String::new(),
                Standing::Submitted => "to Slurm; whether it is queued, running or gone is not known here".into(),
            };
            text.push_str(format!("trial {:>2}  {:<13}  {:<24}  {}\n", t.trial, name, t.overrides, detail).trim_end());
            text.push('\n');
            if let Standing::Failed { log_tail, .. } = &t.standing {
                for line in log_tail {
                    text.push_str(&format!("    | {line}\n"));
                }
            }
        }
        let summary: Vec<String> = counts.iter().map(|(name, n)| format!("{n} {name}")).collect();
        text.push_str(&format!("sweep {}: {} trial(s): {}\n", crate::fmt::display_path(dir.root()), self.trials.len(), summary.join(", ")));
        if let Some(why) = &self.queue_unknown {
            text.push_str(&format!("(the Slurm queue could not be read: {why})\n"));
        }
        text
    }

    /// The array jobs with a task still queued or running.
    pub fn active_jobs(&self) -> Vec<String> {
        let mut jobs: Vec<String> = Vec::new();
        for t in &self.trials {
            if let Standing::Running { task: Some(task), .. } | Standing::Queued { task } = &t.standing
                && !jobs.contains(&task.array_job)
            {
                jobs.push(task.array_job.clone());
            }
        }
        jobs
    }
}
