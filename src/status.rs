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

/// Reads where every trial of `dir` stands, and rewrites `trials.csv` to say the same (a job
/// that failed or was stopped before or while its trial ran is known only here).
pub fn read(dir: &SweepDir) -> Result<SweepStatus> {
    let _lock = dir.lock_trials()?;
    let (keys, rows) = dir.read_trials_csv()?;
    let submissions = dir.read_submissions()?;
    let jobs: Vec<String> = submissions.iter().map(|s| s.job_id.clone()).collect();
    let (tasks, queue_unknown) = match slurm::queue(&jobs) {
        Ok(tasks) => (tasks, None),
        Err(e @ Error::Cluster { .. }) => (Vec::new(), Some(e.to_string())),
        Err(e) => return Err(e),
    };
    let known = queue_unknown.is_none();
    let mut trials = Vec::new();
    let mut recorded = Vec::new();
    for (mut row, earlier) in rows {
        let standing = standing(dir, &row, &tasks, &submissions, known);
        row.status = recorded_status(&row.status, &standing, earlier);
        trials.push(TrialStanding { trial: row.trial, overrides: row.overrides.clone(), standing });
        recorded.push(row);
    }
    dir.write_trials(&keys, &recorded)?;
    Ok(SweepStatus { trials, submissions, queue_unknown })
}

/// What `trials.csv` says of a trial whose folder says `folder` and which stands as `standing`:
/// a failure or stop seen in the queue, else the folder's word (when the queue cannot be read,
/// what an earlier status recorded, `earlier`, stays).
fn recorded_status(folder: &TrialStatus, standing: &Standing, earlier: Option<TrialStatus>) -> TrialStatus {
    match (folder, standing) {
        (TrialStatus::Complete | TrialStatus::Failed(_), _) => folder.clone(),
        // the job's own last line says why (a setup line that failed, say)
        (_, Standing::Failed { error, log_tail }) => TrialStatus::Failed(match log_tail.last() {
            Some(line) => format!("{error}: {}", line.trim()),
            None => error.clone(),
        }),
        (_, Standing::Stopped { why, progress }) => TrialStatus::Stopped(match progress {
            Some(progress) => format!("{why} ({progress})"),
            None => why.clone(),
        }),
        (_, Standing::Submitted) => earlier.unwrap_or_else(|| folder.clone()),
        _ => folder.clone(),
    }
}

fn standing(dir: &SweepDir, row: &TrialRow, tasks: &[Task], submissions: &[Submission], queue_known: bool) -> Standing {
    let folder = dir.trial_dir(row.trial);
    // the newest task of this trial (a later submission supersedes an earlier one)
    let task = tasks.iter().rev().find(|t| slurm::trial_of(t, submissions) == Some(row.trial)).cloned();
    let submitted = submissions.iter().any(|s| s.trials.contains(&row.trial));
    match &row.status {
        TrialStatus::Complete => return Standing::Finished { val_accuracy: row.val_accuracy, test_accuracy: row.test_accuracy },
        TrialStatus::Failed(error) => return Standing::Failed { error: error.clone(), log_tail: log_tail(dir, row.trial) },
        TrialStatus::Pending | TrialStatus::Unfinished | TrialStatus::Stopped(_) => {}
    }
    if let Some(holder) = FolderLock::holder(&folder) {
        return Standing::Running { holder: Some(holder.0), task: task.filter(Task::active), progress: progress(&folder) };
    }
    if !queue_known && submitted {
        return Standing::Submitted;
    }
    let started = row.status == TrialStatus::Unfinished;
    // preempted or stopped by a signal without a requeue: the trial saved a checkpoint and
    // exited 130, which Slurm calls FAILED
    let stopped = if started { stopped_by(&log_tail(dir, row.trial)) } else { None };
    match task {
        Some(task) if task.active() && task.state == "RUNNING" => Standing::Running { holder: None, task: Some(task), progress: progress(&folder) },
        Some(task) if task.active() => Standing::Queued { task },
        Some(task) if task.state == "CANCELLED" => Standing::Stopped { why: format!("Slurm job {} was cancelled", task.id), progress: progress(&folder) },
        Some(task) if stopped.is_some() => Standing::Stopped {
            why: format!("{}: Slurm job {} ended {} after the trial saved a checkpoint", stopped.unwrap_or_default(), task.id, task.state),
            progress: progress(&folder),
        },
        Some(task) => Standing::Failed {
            error: format!("Slurm job {} ended {} before the trial {}", task.id, task.state, if started { "finished" } else { "started" }),
            log_tail: log_tail(dir, row.trial),
        },
        None if started => Standing::Stopped { why: "interrupted".into(), progress: progress(&folder) },
        None if submitted => Standing::Failed {
            error: "its Slurm job is no longer queued and the trial never started".into(),
            log_tail: log_tail(dir, row.trial),
        },
        None => Standing::NotSubmitted,
    }
}

/// The signal a trial's last lines say it stopped at with a checkpoint saved (`error: SIGTERM:
/// stopped after step 76 (epoch 13) and saved a checkpoint in …`), if they say so.
fn stopped_by(log_tail: &[String]) -> Option<String> {
    log_tail.iter().rev().find_map(|line| {
        let rest = line.strip_prefix("error: ")?;
        let (signal, what) = rest.split_once(": ")?;
        (signal.starts_with("SIG") && what.starts_with("stopped after step") && what.contains("saved a checkpoint")).then(|| signal.to_string())
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trial_that_saved_a_checkpoint_at_a_signal_says_which() {
        let tail = |lines: &[&str]| lines.iter().map(|l| l.to_string()).collect::<Vec<_>>();
        let sigterm = tail(&[
            "SIGTERM: finishing the current step, then saving a checkpoint (send it again to stop at once)",
            "error: SIGTERM: stopped after step 76 (epoch 13) and saved a checkpoint in pt/trial-01; the same command resumes it at step 77:",
            "  brasa run slow.toml --trial 1 --out pt --threads 1",
        ]);
        assert_eq!(stopped_by(&sigterm), Some("SIGTERM".into()));
        assert_eq!(stopped_by(&tail(&["error: data: cannot read x.png", "Killed"])), None);
        assert_eq!(stopped_by(&[]), None);
    }

    #[test]
    fn trials_csv_records_what_status_says() {
        let task = Task { array_job: "7".into(), index: 1, id: "7_1".into(), state: "FAILED".into(), node: String::new(), reason: String::new() };
        let failed = Standing::Failed { error: "Slurm job 7_1 ended FAILED before the trial started".into(), log_tail: vec!["slurm_script: line 17: module: command not found".into()] };
        assert_eq!(
            recorded_status(&TrialStatus::Pending, &failed, None),
            TrialStatus::Failed("Slurm job 7_1 ended FAILED before the trial started: slurm_script: line 17: module: command not found".into())
        );
        let stopped = Standing::Stopped { why: "Slurm job 7_1 was cancelled".into(), progress: Some("epoch 3/10".into()) };
        assert_eq!(recorded_status(&TrialStatus::Unfinished, &stopped, None), TrialStatus::Stopped("Slurm job 7_1 was cancelled (epoch 3/10)".into()));
        // the folder's own word wins; a queue that cannot be read keeps what was recorded
        assert_eq!(recorded_status(&TrialStatus::Complete, &failed, None), TrialStatus::Complete);
        let earlier = TrialStatus::Failed("x".into());
        assert_eq!(recorded_status(&TrialStatus::Pending, &Standing::Submitted, Some(earlier.clone())), earlier);
        assert_eq!(recorded_status(&TrialStatus::Pending, &Standing::Queued { task }, Some(earlier)), TrialStatus::Pending);
    }
}
