//! Slurm, for a sweep: its unfinished trials go to the cluster as one job array (one per chunk
//! when trial numbers pass the cluster's `MaxArraySize`) and `brasa run` exits. Each array task
//! `exec`s `brasa run SPEC --trial K --out SWEEP_DIR` ([`script`]): the trial locks its folder,
//! resumes from its checkpoint, saves one and requeues itself at the time-limit signal, and
//! rewrites `trials.csv` and the sweep report when it ends. The sweep folder stays the single
//! source of truth; no process waits on the cluster.
//!
//! What was submitted is kept in `SWEEP_DIR/slurm/jobs.csv`; `squeue` says which of those tasks
//! are still queued or running ([`queue`]). No accounting database (`sacct`) is needed.

pub mod script;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub use script::Invocation;

use crate::atomic_file::write_atomic;
use crate::build_info::timestamp;
use crate::error::{Error, Result};
use crate::plan::SlurmPlan;
use crate::run_dir::{FolderLock, Holder};
use crate::sweep::SweepPlan;
use crate::sweep_dir::{SLURM, SLURM_JOBS, SLURM_SCRIPT, SLURM_SUBMIT_LOCK, SweepDir, TrialStatus};

/// The cluster's `MaxArraySize` when `scontrol show config` does not say (Slurm's default).
pub const DEFAULT_MAX_ARRAY_SIZE: usize = 1001;

/// One `sbatch` call: the array job it made and the trials its tasks run.
#[derive(Debug, Clone, PartialEq)]
pub struct Submission {
    pub job_id: String,
    /// Trial = array index + offset.
    pub offset: usize,
    pub trials: Vec<usize>,
    pub submitted_at: String,
}

/// One array task as `squeue` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// The array job's id (`%F`), as in `jobs.csv`.
    pub array_job: String,
    /// The task's array index (`%K`).
    pub index: usize,
    /// `<array job>_<index>` (`%i`).
    pub id: String,
    /// Slurm's state name: PENDING, RUNNING, REQUEUED, COMPLETED, TIMEOUT, …
    pub state: String,
    pub node: String,
    pub reason: String,
}

impl Task {
    /// Queued or running, not ended.
    pub fn active(&self) -> bool {
        !matches!(
            self.state.as_str(),
            "COMPLETED" | "CANCELLED" | "FAILED" | "TIMEOUT" | "NODE_FAIL" | "PREEMPTED" | "BOOT_FAIL" | "DEADLINE" | "OUT_OF_MEMORY" | "REVOKED" | "SPECIAL_EXIT"
        )
    }
}

/// Runs a Slurm command and returns its standard output.
fn slurm(program: &str, args: &[String]) -> Result<String> {
    let command = || format!("{program} {}", args.join(" ")).trim().to_string();
    let output = Command::new(program).args(args).stdin(Stdio::null()).output().map_err(|e| Error::Cluster {
        command: command(),
        message: if e.kind() == std::io::ErrorKind::NotFound {
            format!("{program} is not on PATH: the Slurm launcher needs Slurm's commands (run brasa on a login node of the cluster)")
        } else {
            e.to_string()
        },
    })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
        return Err(Error::Cluster { command: command(), message: if stderr.is_empty() { format!("exited with {}", output.status) } else { stderr } });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The cluster's `MaxArraySize` (array indices must stay below it).
pub fn max_array_size() -> Result<usize> {
    let config = slurm("scontrol", &["show".into(), "config".into()])?;
    Ok(config
        .lines()
        .filter_map(|line| line.split_once('='))
        .find(|(key, _)| key.trim() == "MaxArraySize")
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(DEFAULT_MAX_ARRAY_SIZE))
}

/// The `sbatch` arguments that submit `trials` (one chunk, see [`script::chunks`]) with the
/// script at `script_path`, at most `parallelism` at once, starting once every job of `after`
/// has ended (Slurm's `%N` limits one array: the arrays of one sweep run one after another).
pub fn sbatch_args(script_path: &Path, offset: usize, trials: &[usize], parallelism: Option<usize>, after: &[String]) -> Vec<String> {
    let indices: Vec<usize> = trials.iter().map(|t| t - offset).collect();
    let limit = parallelism.map(|n| format!("%{n}")).unwrap_or_default();
    let mut args = vec!["--parsable".into(), format!("--array={}{limit}", script::ranges(&indices)), format!("--export=ALL,{}={offset}", script::OFFSET_ENV)];
    if !after.is_empty() {
        args.push(format!("--dependency=afterany:{}", after.join(":")));
    }
    args.push(script_path.display().to_string());
    args
}

/// Submits one chunk: `sbatch` with [`sbatch_args`]; returns the array job's id.
pub fn submit(args: &[String]) -> Result<String> {
    let out = slurm("sbatch", args)?;
    // --parsable prints `<id>` or `<id>;<cluster>`
    let id = out.trim().split(';').next().unwrap_or_default().to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        return Err(Error::Cluster { command: format!("sbatch {}", args.join(" ")), message: format!("printed {out:?} instead of a job id") });
    }
    Ok(id)
}

/// Every task of the array jobs `array_jobs` that Slurm still lists (finished ones stay listed
/// for the cluster's `MinJobAge`).
pub fn queue(array_jobs: &[String]) -> Result<Vec<Task>> {
    if array_jobs.is_empty() {
        return Ok(Vec::new());
    }
    let format = "%F|%K|%i|%T|%N|%r";
    let list = |ids: &str| slurm("squeue", &["--noheader".into(), "--array".into(), "--states=all".into(), format!("--jobs={ids}"), format!("--format={format}")]);
    // squeue refuses the whole list when one job is no longer known: then ask job by job
    let text = match list(&array_jobs.join(",")) {
        Ok(text) => text,
        Err(Error::Cluster { message, .. }) if message.contains("Invalid job id") => {
            array_jobs.iter().filter_map(|id| list(id).ok()).collect::<Vec<_>>().join("")
        }
        Err(e) => return Err(e),
    };
    Ok(text
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.trim().split('|').collect();
            let [array_job, index, id, state, node, reason] = fields.as_slice() else { return None };
            Some(Task {
                array_job: array_job.to_string(),
                index: index.parse().ok()?,
                id: id.to_string(),
                state: state.to_string(),
                node: node.to_string(),
                reason: reason.to_string(),
            })
        })
        .filter(|task| array_jobs.contains(&task.array_job))
        .collect())
}

/// Cancels the array jobs `array_jobs` (their running trials get SIGTERM and save a checkpoint).
pub fn cancel(array_jobs: &[String]) -> Result<()> {
    slurm("scancel", array_jobs)?;
    Ok(())
}

/// In a Slurm job, asks Slurm to requeue it (after a checkpoint at the time-limit signal): the
/// job requeued, or `None` outside Slurm.
pub fn requeue_this_job() -> Option<Result<String>> {
    let var = |name: &str| std::env::var(name).ok();
    let job = own_job(var("SLURM_JOB_ID"), var("SLURM_ARRAY_JOB_ID"), var("SLURM_ARRAY_TASK_ID"))?;
    Some(slurm("scontrol", &["requeue".into(), job.clone()]).map(|_| job))
}

/// The id that names this job alone to `scontrol`: in an array `<array job>_<task>`, because
/// one task's `SLURM_JOB_ID` is the array's own id, which `scontrol requeue` reads as every task.
fn own_job(job_id: Option<String>, array_job_id: Option<String>, array_task_id: Option<String>) -> Option<String> {
    let set = |v: Option<String>| v.filter(|v| !v.is_empty());
    match (set(array_job_id), set(array_task_id)) {
        (Some(array), Some(task)) => Some(format!("{array}_{task}")),
        _ => set(job_id),
    }
}

/// What submitting a sweep would do: the script, and one `sbatch` call per array.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub script_path: PathBuf,
    pub script: String,
    /// `(offset, trials)` per array, in the order they are submitted.
    pub arrays: Vec<(usize, Vec<usize>)>,
    /// `array_parallelism`: at most this many of the sweep's trials at once.
    pub parallelism: Option<usize>,
    /// With a parallelism limit, the sweep's array jobs still queued or running: a new array
    /// starts after they end, so the limit holds for the sweep and not for each array.
    pub wait_for: Vec<String>,
    /// The trials left out, and why (finished, running, queued).
    pub left_out: Vec<(usize, String)>,
    pub max_array_size: usize,
    /// What could not be asked of the cluster (only in a dry run, which goes on without it).
    pub notes: Vec<String>,
}

impl Prepared {
    /// The `sbatch` arguments of array `index` of [`Prepared::arrays`], given the jobs of the
    /// arrays submitted before it by the same call (`earlier`).
    pub fn sbatch_args(&self, index: usize, earlier: &[String]) -> Vec<String> {
        let (offset, trials) = &self.arrays[index];
        let after: Vec<String> = if self.parallelism.is_some() { self.wait_for.iter().chain(earlier).cloned().collect() } else { Vec::new() };
        sbatch_args(&self.script_path, *offset, trials, self.parallelism, &after)
    }
}

/// Which trials of `plan` to submit (neither finished, nor running, nor queued in an earlier
/// submission) and how. `dry_run` goes on when the cluster cannot be asked. Two submits of one
/// sweep must not both send a trial: hold [`SweepDir::lock_submissions`] from this call until
/// [`submit_prepared`] has recorded the jobs.
pub fn prepare(plan: &SweepPlan, slurm: &SlurmPlan, invocation: &Invocation, dry_run: bool) -> Result<Prepared> {
    let mut notes = Vec::new();
    let mut ask = |result: Result<()>| -> Result<()> {
        match result {
            Err(e @ Error::Cluster { .. }) if dry_run => {
                notes.push(e.to_string());
                Ok(())
            }
            other => other,
        }
    };
    let submissions = plan.dir.read_submissions()?;
    let jobs: Vec<String> = submissions.iter().map(|s| s.job_id.clone()).collect();
    let mut tasks = Vec::new();
    ask(queue(&jobs).map(|listed| tasks = listed))?;
    let mut max = DEFAULT_MAX_ARRAY_SIZE;
    ask(max_array_size().map(|m| max = m))?;
    let mut to_submit = Vec::new();
    let mut left_out = Vec::new();
    for (trial, _) in &plan.trials {
        let folder = plan.trial_dir(trial.number);
        let active = tasks.iter().rev().find(|t| t.active() && trial_of(t, &submissions) == Some(trial.number));
        if TrialStatus::of(&folder) == TrialStatus::Complete {
            left_out.push((trial.number, "finished".to_string()));
        } else if let Some(Holder(holder)) = FolderLock::holder(&folder) {
            left_out.push((trial.number, format!("running ({holder})")));
        } else if let Some(task) = active {
            left_out.push((trial.number, format!("{} as Slurm job {}", task.state.to_lowercase(), task.id)));
        } else {
            to_submit.push(trial.number);
        }
    }
    let mut wait_for: Vec<String> = Vec::new();
    if slurm.array_parallelism.is_some() {
        for task in tasks.iter().filter(|t| t.active()) {
            if !wait_for.contains(&task.array_job) {
                wait_for.push(task.array_job.clone());
            }
        }
    }
    let root = std::path::absolute(plan.dir.root()).map_err(|e| Error::io(plan.dir.root(), e))?;
    let script_path = root.join(SLURM).join(SLURM_SCRIPT);
    let script = script::render(&plan.name, &root, slurm, invocation);
    let arrays = script::chunks(&to_submit, max);
    Ok(Prepared { script_path, script, arrays, parallelism: slurm.array_parallelism, wait_for, left_out, max_array_size: max, notes })
}

/// Writes the script and submits every array of `prepared`, recording each job as it is made.
/// Returns the jobs made, and the error that stopped it, if one did: the arrays submitted before
/// a failing `sbatch` stay queued and recorded.
pub fn submit_prepared(dir: &SweepDir, prepared: &Prepared) -> (Vec<Submission>, Option<Error>) {
    let mut made: Vec<Submission> = Vec::new();
    let result = (|| -> Result<()> {
        let folder = dir.path(SLURM);
        std::fs::create_dir_all(&folder).map_err(|e| Error::io(&folder, e))?;
        write_atomic(&prepared.script_path, prepared.script.as_bytes())?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&prepared.script_path, std::fs::Permissions::from_mode(0o755));
        }
        for (index, (offset, trials)) in prepared.arrays.iter().enumerate() {
            let earlier: Vec<String> = made.iter().map(|s| s.job_id.clone()).collect();
            let job_id = submit(&prepared.sbatch_args(index, &earlier))?;
            let submission = Submission { job_id, offset: *offset, trials: trials.clone(), submitted_at: timestamp(std::time::SystemTime::now()) };
            made.push(submission.clone());
            dir.record_submission(&submission)?;
        }
        Ok(())
    })();
    let error = result.err().map(|e| partly_submitted(e, &made));
    (made, error)
}

/// `error`, saying which trials were submitted before it (they are queued): exit code 7 alone
/// would otherwise read as "nothing was submitted".
pub fn partly_submitted(error: Error, made: &[Submission]) -> Error {
    if made.is_empty() {
        return error;
    }
    let trials: Vec<usize> = made.iter().flat_map(|s| s.trials.iter().copied()).collect();
    let jobs: Vec<&str> = made.iter().map(|s| s.job_id.as_str()).collect();
    let queued = format!(
        "; trials {} were submitted before it (Slurm array job(s) {}) and are queued: submitting the sweep again sends only the others",
        script::ranges(&trials),
        jobs.join(", ")
    );
    match error {
        Error::Cluster { command, message } => Error::Cluster { command, message: format!("{message}{queued}") },
        other => Error::Cluster { command: "submitting the sweep".into(), message: format!("{other}{queued}") },
    }
}

impl SweepDir {
    /// Holds the lock that makes one submit of this sweep at a time read the queue, submit
    /// and record its jobs, until the guard is dropped.
    pub fn lock_submissions(&self) -> Result<crate::run_dir::SharedFileLock> {
        let folder = self.path(SLURM);
        std::fs::create_dir_all(&folder).map_err(|e| Error::io(&folder, e))?;
        crate::run_dir::lock_shared_file(&self.path(SLURM_SUBMIT_LOCK), "slurm/jobs.csv")
    }

    /// What was submitted for this sweep, oldest first (none when it never went to Slurm).
    pub fn read_submissions(&self) -> Result<Vec<Submission>> {
        let path = self.path(SLURM_JOBS);
        if !path.is_file() {
            return Ok(Vec::new());
        }
        let malformed = |message: String| Error::run_dir(self.root(), format!("{SLURM_JOBS} is malformed: {message}"));
        let mut reader = csv::Reader::from_path(&path).map_err(|e| malformed(e.to_string()))?;
        let mut submissions = Vec::new();
        for record in reader.records() {
            let record = record.map_err(|e| malformed(e.to_string()))?;
            let field = |i: usize| record.get(i).unwrap_or_default().to_string();
            submissions.push(Submission {
                job_id: field(0),
                offset: field(1).parse().map_err(|_| malformed(format!("offset {:?}", field(1))))?,
                trials: script::parse_ranges(&field(2)).ok_or_else(|| malformed(format!("trials {:?}", field(2))))?,
                submitted_at: field(3),
            });
        }
        Ok(submissions)
    }

    /// Adds `submission` to `slurm/jobs.csv`.
    pub fn record_submission(&self, submission: &Submission) -> Result<()> {
        let mut all = self.read_submissions()?;
        all.push(submission.clone());
        let mut writer = csv::Writer::from_writer(Vec::new());
        let failed = |e: csv::Error| Error::run_dir(self.root(), format!("cannot write {SLURM_JOBS}: {e}"));
        writer.write_record(["job_id", "offset", "trials", "submitted_at"]).map_err(failed)?;
        for s in &all {
            writer.write_record([s.job_id.clone(), s.offset.to_string(), script::ranges(&s.trials), s.submitted_at.clone()]).map_err(failed)?;
        }
        let bytes = writer.into_inner().map_err(|e| Error::run_dir(self.root(), format!("cannot write {SLURM_JOBS}: {e}")))?;
        let dir = self.path(SLURM);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        write_atomic(&self.path(SLURM_JOBS), &bytes)
    }
}

/// The trial each listed task runs, from the submissions that made them.
pub fn trial_of(task: &Task, submissions: &[Submission]) -> Option<usize> {
    submissions.iter().find(|s| s.job_id == task.array_job).map(|s| task.index + s.offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submissions_are_recorded_and_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let sweep = SweepDir::new(dir.path());
        assert_eq!(sweep.read_submissions().unwrap(), vec![]);
        let first = Submission { job_id: "41".into(), offset: 0, trials: vec![1, 2, 3, 5], submitted_at: "2026-12-02T06:00:00Z".into() };
        let second = Submission { job_id: "57".into(), offset: 1000, trials: vec![1000, 1001], submitted_at: "2026-12-02T06:10:00Z".into() };
        sweep.record_submission(&first).unwrap();
        sweep.record_submission(&second).unwrap();
        assert_eq!(sweep.read_submissions().unwrap(), vec![first.clone(), second.clone()]);
        let task = Task { array_job: "57".into(), index: 1, id: "57_1".into(), state: "PENDING".into(), node: String::new(), reason: "Priority".into() };
        assert_eq!(trial_of(&task, &[first, second]), Some(1001));
        assert!(task.active());
        assert!(!Task { state: "TIMEOUT".into(), ..task }.active());
    }

    #[test]
    fn a_task_requeues_itself_not_its_array() {
        let some = |s: &str| Some(s.to_string());
        // the task that holds the array's own id: SLURM_JOB_ID alone would name the whole array
        assert_eq!(own_job(some("43"), some("43"), some("2")), some("43_2"));
        assert_eq!(own_job(some("44"), some("43"), some("1")), some("43_1"));
        assert_eq!(own_job(some("812"), None, None), some("812"));
        assert_eq!(own_job(some("812"), some(""), some("")), some("812"));
        assert_eq!(own_job(None, None, None), None);
    }

    #[test]
    fn sbatch_arguments_name_the_array_its_limit_and_its_offset() {
        let args = sbatch_args(Path::new("/s/slurm/trials.sbatch"), 0, &[1, 2, 3, 5], Some(2), &[]);
        assert_eq!(args, ["--parsable", "--array=1-3,5%2", "--export=ALL,BRASA_TRIAL_OFFSET=0", "/s/slurm/trials.sbatch"]);
        let args = sbatch_args(Path::new("t.sbatch"), 1000, &[1000, 1001], None, &[]);
        assert_eq!(args[1], "--array=0-1");
    }

    fn prepared(parallelism: Option<usize>, wait_for: &[&str]) -> Prepared {
        Prepared {
            script_path: "/s/slurm/trials.sbatch".into(),
            script: String::new(),
            arrays: script::chunks(&[1, 2, 3, 4, 5], 3),
            parallelism,
            wait_for: wait_for.iter().map(|j| j.to_string()).collect(),
            left_out: vec![],
            max_array_size: 3,
            notes: vec![],
        }
    }

    #[test]
    fn with_a_parallelism_limit_each_array_waits_for_the_sweeps_earlier_ones() {
        // %N holds within one array: chunks and resubmits would otherwise each run N at once
        let limited = prepared(Some(2), &["40"]);
        assert_eq!(limited.arrays, [(0, vec![1, 2]), (3, vec![3, 4, 5])]);
        assert_eq!(limited.sbatch_args(0, &[]), ["--parsable", "--array=1-2%2", "--export=ALL,BRASA_TRIAL_OFFSET=0", "--dependency=afterany:40", "/s/slurm/trials.sbatch"]);
        assert_eq!(limited.sbatch_args(1, &["41".into()])[3], "--dependency=afterany:40:41");
        assert_eq!(prepared(Some(2), &[]).sbatch_args(0, &[]).len(), 4, "nothing to wait for");
        // without a limit the arrays run side by side
        assert!(prepared(None, &["40"]).sbatch_args(1, &["41".into()]).iter().all(|a| !a.starts_with("--dependency")));
    }

    #[test]
    fn an_sbatch_failing_after_earlier_arrays_says_they_are_queued() {
        let failed = || Error::Cluster { command: "sbatch x".into(), message: "AssocMaxSubmitJobLimit".into() };
        assert_eq!(partly_submitted(failed(), &[]).to_string(), "sbatch x: AssocMaxSubmitJobLimit");
        let made = [Submission { job_id: "112".into(), offset: 0, trials: vec![1, 2], submitted_at: String::new() }];
        let error = partly_submitted(failed(), &made);
        assert_eq!(error.exit_code(), 7);
        assert!(error.to_string().starts_with("sbatch x: AssocMaxSubmitJobLimit; trials 1-2 were submitted before it (Slurm array job(s) 112) and are queued"), "{error}");
    }
}
