//! Sweeps on a real Slurm: a one-node cluster on localhost (`scripts/slurm/cluster.sh`), a
//! 3-trial sweep submitted with `--launcher slurm` (brasa submits and exits), one trial preempted
//! mid-training with `scancel --batch --signal=USR1` (it saves a checkpoint, requeues itself and
//! resumes), `brasa status` at three moments; the sweep then ends with the same `trials.csv` and
//! the same predictions, byte for byte, as the same sweep run with the local launcher.
//!
//! Without Slurm's commands this test says so and passes, unless `BRASA_REQUIRE_SLURM=1` (CI
//! sets it), where a cluster that cannot start fails it with the reason.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::brasa::{Ran, TestDir};
use common::spec::TinySpec;
use common::{csv_header, csv_rows, read, read_json, repo_path};

/// A one-node Slurm started for the test, stopped (by its daemons' pids) when dropped.
struct Cluster {
    dir: PathBuf,
    conf: PathBuf,
}

impl Cluster {
    fn start(dir: &Path) -> Result<Cluster, String> {
        if Command::new("sbatch").arg("--version").output().is_err() {
            return Err("Slurm's commands (sbatch) are not installed: `bash scripts/slurm/cluster.sh install`".into());
        }
        let out = Command::new("bash").arg(repo_path("scripts/slurm/cluster.sh")).arg("start").arg(dir).output().map_err(|e| e.to_string())?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(format!("scripts/slurm/cluster.sh start failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
        }
        let conf = stdout.lines().rev().find_map(|l| l.strip_prefix("export SLURM_CONF=")).ok_or_else(|| format!("no SLURM_CONF in:\n{stdout}"))?;
        Ok(Cluster { dir: dir.to_path_buf(), conf: PathBuf::from(conf.trim()) })
    }

    /// A Slurm client command with this cluster's configuration.
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command.env("SLURM_CONF", &self.conf);
        command
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(repo_path("scripts/slurm/cluster.sh")).arg("stop").arg(&self.dir).status();
    }
}

const EPOCHS: usize = 12;

fn spec() -> TinySpec {
    TinySpec::new("slurm-sweep", "data", EPOCHS)
        .set("train.batch_size", 4)
        .insert("sweep", toml::toml! { mode = "grid" "train.optimizer.lr" = [1e-3, 2e-3, 3e-3] })
        .insert("launcher", toml::toml! { name = "slurm" slurm = { cpus_per_task = 1, mem = "400M", time = "15:00", signal_before_limit_s = 30 } })
}

/// `brasa status` of the sweep folder `sweep`, printed with the moment it stands for.
fn status(dir: &TestDir, cluster: &Cluster, sweep: &str, moment: &str) -> Ran {
    let ran = dir.brasa(["status", sweep]).env("SLURM_CONF", &cluster.conf).succeeds();
    eprintln!("--- brasa status, {moment}:\n{}", ran.stdout);
    ran
}

/// Waits (at most `limit`) until `done` holds, calling it every half second.
fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "{what}: not after {} s", limit.as_secs());
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `trials.csv` without its wall-time column.
fn trials_without_wall_time(path: &Path) -> Vec<Vec<String>> {
    let wall = csv_header(path).iter().position(|h| h == "wall_seconds").expect("a wall_seconds column");
    let mut rows = vec![csv_header(path)];
    rows.extend(csv_rows(path));
    rows.into_iter().map(|mut row| {
        row.remove(wall);
        row
    }).collect()
}

#[test]
fn a_sweep_submitted_to_slurm_survives_a_preemption_and_ends_as_the_local_sweep() {
    let required = std::env::var("BRASA_REQUIRE_SLURM").is_ok_and(|v| v == "1");
    let scratch = tempfile::tempdir().unwrap();
    let cluster = match Cluster::start(scratch.path()) {
        Ok(cluster) => cluster,
        Err(why) if !required => {
            eprintln!("SKIPPED: no Slurm here ({why}); BRASA_REQUIRE_SLURM=1 makes this a failure");
            return;
        }
        Err(why) => panic!("Slurm could not be started: {why}"),
    };
    let dir = TestDir::new().images("data", 10, 3, 16).spec(&spec());

    // the reference: the same sweep with the local launcher, one thread per trial as in Slurm
    dir.brasa(["run", "spec.toml", "--launcher", "local", "--jobs", "2", "--threads", "2", "--out", "local"]).stdout_contains("(3 complete)").succeeds();

    dir.brasa(["validate", "spec.toml"]).stdout_contains("#   #SBATCH --cpus-per-task=1").stdout_contains("--signal=B:USR1@30").succeeds();
    let dry = dir.brasa(["run", "spec.toml", "--out", "sweep", "--dry-run"]).env("SLURM_CONF", &cluster.conf).succeeds();
    assert!(dry.stdout.contains("sbatch --parsable --array=1-3 --export=ALL,BRASA_TRIAL_OFFSET=0"), "{dry}");
    assert!(!dir.path().join("sweep/slurm/jobs.csv").exists(), "a dry run submits nothing");

    let submitted = dir.brasa(["run", "spec.toml", "--out", "sweep"]).env("SLURM_CONF", &cluster.conf).succeeds();
    eprintln!("--- brasa run spec.toml --out sweep (--launcher slurm from the spec):\n{}", submitted.stdout);
    let job = submitted.stdout.lines().find_map(|l| l.strip_prefix("submitted Slurm array job ")).and_then(|l| l.split(':').next()).expect("a job id").to_string();
    assert!(submitted.stdout.contains(&format!("submitted Slurm array job {job}: trials 1-3")), "{submitted}");
    assert!(read(&dir.path().join("sweep/slurm/jobs.csv")).contains(&format!("{job},0,1-3,")));
    status(&dir, &cluster, "sweep", "just after submission");
    // where squeue cannot be run, status says so instead of guessing
    let blind = dir.brasa(["status", "sweep"]).env("PATH", "/nonexistent").succeeds();
    assert!(blind.stdout.contains("the Slurm queue could not be read") && !blind.stdout.contains(" failed "), "{blind}");

    // submitting again while everything is queued or running submits nothing
    let again = dir.brasa(["run", "spec.toml", "--out", "sweep"]).env("SLURM_CONF", &cluster.conf).succeeds();
    assert!(again.stdout.contains("nothing to submit"), "{again}");

    // trial 2 one epoch in, then the time-limit signal, as Slurm sends it
    let trial2 = dir.path().join("sweep/trial-02");
    wait_until(Duration::from_secs(240), "trial 2 one epoch in", || {
        std::fs::read_to_string(trial2.join("checkpoints/state.json")).is_ok_and(|s| serde_json::from_str::<serde_json::Value>(&s).is_ok_and(|v| v["train"]["epochs_done"].as_u64() >= Some(1)))
    });
    let task = format!("{job}_2");
    let sent = cluster.command("scancel").args(["--batch", "--signal=USR1", &task]).output().unwrap();
    assert!(sent.status.success(), "scancel: {}", String::from_utf8_lossy(&sent.stderr));
    eprintln!("--- scancel --batch --signal=USR1 {task}");
    let log2 = dir.path().join("sweep/slurm/trial-02.log");
    wait_until(Duration::from_secs(60), "trial 2 requeued", || read_or_empty(&log2).contains("requeued Slurm job"));
    // its own task, not the array (one task's SLURM_JOB_ID is the array's id, which is every task)
    assert!(read(&log2).contains(&format!("requeued Slurm job {task};")), "{}", read(&log2));
    status(&dir, &cluster, "sweep", "after trial 2 was preempted");

    wait_until(Duration::from_secs(480), "every trial finished", || {
        let ran = dir.brasa(["status", "sweep"]).env("SLURM_CONF", &cluster.conf).succeeds();
        ran.stdout.contains("3 trial(s): 3 finished")
    });
    let last = status(&dir, &cluster, "sweep", "at the end");
    assert!(last.stdout.lines().filter(|l| l.contains(" finished ")).count() == 3, "{last}");

    let log = read(&log2);
    eprintln!("--- sweep/slurm/trial-02.log (the preempted trial):\n{log}");
    assert!(log.contains("restart 0)") && log.contains("restart 1)"), "the task ran twice, the second time after its requeue:\n{log}");
    assert!(log.contains("SIGUSR1: stopped after step"), "{log}");
    assert!(log.contains("resuming"), "{log}");
    let state = read_json(&trial2.join("meta.json"));
    assert_eq!(state["status"], "complete");

    // the sweep folder ends as the local sweep's
    assert_eq!(trials_without_wall_time(&dir.path().join("sweep/trials.csv")), trials_without_wall_time(&dir.path().join("local/trials.csv")));
    for trial in ["trial-01", "trial-02", "trial-03"] {
        for file in ["test_predictions.csv", "val_predictions.csv", "steps.csv"] {
            assert_eq!(read(&dir.path().join("sweep").join(trial).join(file)), read(&dir.path().join("local").join(trial).join(file)), "{trial}/{file}");
        }
    }
    assert!(dir.path().join("sweep/report.md").is_file(), "the sweep report, written by the trials as they ended");

    // finished: submitting again submits nothing, and there is nothing to cancel
    dir.brasa(["run", "spec.toml", "--out", "sweep"]).env("SLURM_CONF", &cluster.conf).stdout_contains("nothing to submit").succeeds();
    dir.brasa(["status", "sweep", "--cancel"]).env("SLURM_CONF", &cluster.conf).stdout_contains("nothing to cancel").succeeds();

    // a longer sweep, into a folder with a space and with an sbatch option holding one, sent by
    // two submits at once: one submits it, the other finds its trials queued
    let long = ["run", "spec.toml", "--out", "long run", "--set", "train.epochs=400", "--set", "launcher.slurm.extra_args=[\"--comment=a b\"]"];
    let (one, two) = std::thread::scope(|s| {
        let one = s.spawn(|| dir.brasa(long).env("SLURM_CONF", &cluster.conf).succeeds());
        let two = s.spawn(|| dir.brasa(long).env("SLURM_CONF", &cluster.conf).succeeds());
        (one.join().unwrap(), two.join().unwrap())
    });
    let (first, other) = if one.stdout.contains("submitted Slurm array job") { (one, two) } else { (two, one) };
    assert!(other.stdout.contains("nothing to submit") && !other.stdout.contains("submitted Slurm array job"), "{first}\n{other}");
    assert_eq!(read(&dir.path().join("long run/slurm/jobs.csv")).lines().count(), 2, "one array job recorded");
    let job = first.stdout.lines().find_map(|l| l.strip_prefix("submitted Slurm array job ")).and_then(|l| l.split(':').next()).expect("a job id").to_string();
    let comment = cluster.command("scontrol").args(["show", "job", &format!("{job}_1")]).output().unwrap();
    assert!(String::from_utf8_lossy(&comment.stdout).contains("Comment=a b"), "{}", String::from_utf8_lossy(&comment.stdout));
    // trial 1 stopped by SIGTERM without a requeue (a preemption): it saves a checkpoint and
    // exits 130, which Slurm calls FAILED, and brasa calls stopped; the rest are cancelled
    wait_until(Duration::from_secs(120), "the long sweep's trials 1 and 2 one epoch in", || {
        ["long run/trial-01", "long run/trial-02"].iter().all(|t| dir.path().join(t).join("checkpoints/state.json").is_file())
    });
    let sent = cluster.command("scancel").args(["--batch", "--signal=TERM", &format!("{job}_1")]).output().unwrap();
    assert!(sent.status.success(), "scancel: {}", String::from_utf8_lossy(&sent.stderr));
    wait_until(Duration::from_secs(60), "trial 1 stopped by SIGTERM", || {
        !dir.brasa(["status", "long run"]).env("SLURM_CONF", &cluster.conf).succeeds().stdout.lines().any(|l| l.starts_with("trial  1  running"))
    });
    dir.brasa(["status", "long run", "--cancel"]).env("SLURM_CONF", &cluster.conf).stdout_contains(format!("cancelled Slurm job(s) {job}")).succeeds();
    wait_until(Duration::from_secs(60), "the cancelled sweep settled", || {
        let ran = dir.brasa(["status", "long run"]).env("SLURM_CONF", &cluster.conf).succeeds();
        !ran.stdout.contains(" running ") && !ran.stdout.contains(" queued ")
    });
    let cancelled = status(&dir, &cluster, "long run", "after SIGTERM to trial 1 and --cancel");
    assert!(cancelled.stdout.contains("3 trial(s): 3 stopped"), "{cancelled}");
    assert!(cancelled.stdout.contains(&format!("SIGTERM: Slurm job {job}_1 ended FAILED after the trial saved a checkpoint (epoch ")), "{cancelled}");
    assert!(cancelled.stdout.contains(&format!("Slurm job {job}_2 was cancelled (epoch ")), "{cancelled}");
    assert!(read(&dir.path().join("long run/slurm/trial-02.log")).contains("SIGTERM: stopped after step"), "trial 2 saved a checkpoint as it was cancelled");
    // trials.csv and the report say what status says
    let rows = csv_rows(&dir.path().join("long run/trials.csv"));
    let status_column = csv_header(&dir.path().join("long run/trials.csv")).iter().position(|h| h == "status").unwrap();
    assert!(rows.iter().all(|r| r[status_column] == "stopped"), "{rows:?}");
    assert!(read(&dir.path().join("long run/report.md")).contains(" | stopped: "), "{}", read(&dir.path().join("long run/report.md")));
    let again = dir.brasa(long).env("SLURM_CONF", &cluster.conf).succeeds();
    assert!(again.stdout.contains(": trials 1-3"), "{again}");
    dir.brasa(["status", "long run", "--cancel"]).env("SLURM_CONF", &cluster.conf).stdout_contains("cancelled Slurm job(s)").succeeds();
    wait_until(Duration::from_secs(60), "the resubmitted sweep cancelled", || {
        let ran = dir.brasa(["status", "long run"]).env("SLURM_CONF", &cluster.conf).succeeds();
        !ran.stdout.contains(" running ") && !ran.stdout.contains(" queued ")
    });

    // jobs that fail before brasa starts (a setup line that fails): status, trials.csv and the
    // report all say failed, with the job's last line
    let broken = ["run", "spec.toml", "--out", "broken", "--set", "launcher.slurm.setup=[\"echo no-such-module >&2; exit 3\"]"];
    dir.brasa(broken).env("SLURM_CONF", &cluster.conf).stdout_contains("submitted Slurm array job").succeeds();
    wait_until(Duration::from_secs(60), "the broken sweep's jobs failed", || {
        dir.brasa(["status", "broken"]).env("SLURM_CONF", &cluster.conf).succeeds().stdout.contains("3 trial(s): 3 failed")
    });
    let trials = read(&dir.path().join("broken/trials.csv"));
    assert_eq!(trials.lines().filter(|l| l.contains(",failed,") && l.contains("before the trial started: no-such-module")).count(), 3, "{trials}");
    assert!(read(&dir.path().join("broken/report.md")).contains(" | failed: Slurm job "), "{}", read(&dir.path().join("broken/report.md")));
}

fn read_or_empty(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn without_slurm_the_launcher_says_what_is_missing() {
    let dir = TestDir::new().images("data", 4, 1, 16).spec(&spec()).file("one.toml", TinySpec::new("one", "data", 1).to_string());
    let ran = dir.brasa(["run", "spec.toml", "--out", "sweep"]).env("PATH", "/nonexistent").exits_with(7);
    assert!(ran.stderr.contains("is not on PATH") && ran.stderr.contains("login node"), "{ran}");
    dir.brasa(["run", "one.toml", "--launcher", "slurm"]).stderr_contains("has no [sweep]").exits_with(2);
    dir.brasa(["run", "spec.toml", "--jobs", "2"]).stderr_contains("array_parallelism").exits_with(2);
    dir.brasa(["validate", "spec.toml", "--set", "launcher.slurm.time=\"1h\""]).stderr_contains("launcher.slurm.time").exits_with(2);
    dir.brasa(["validate", "spec.toml", "--set", "launcher.name=\"pbs\""]).stderr_contains("launcher.name").exits_with(2);
}
