//! Stop at any moment, resume at the same step: a run interrupted by a signal (it finishes the
//! step and saves a mid-epoch checkpoint) or killed outright (`kill -9`: it resumes from its last
//! checkpoint) — in a training step, in validation, in the final evaluation, while a checkpoint or
//! the report is written — and then resumed by the same command, ends with the files of a run
//! never interrupted, byte for byte.
//!
//! The points are drawn at random (seeded, printed; `BRASA_TEST_SEED` picks another draw) and
//! reached through the test hook `BRASA_INTERRUPT_AT` (the process sends itself the signal there),
//! plus one SIGINT sent from outside.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::brasa::TestDir;
use common::images::Rng;
use common::spec::TinySpec;
use common::{csv_rows, read, read_json};

/// 3 epochs of 9 steps: 36 training images and their augmented copies, batches of 8; the 12
/// validation images in 3 batches.
const EPOCHS: usize = 3;
const STEPS_PER_EPOCH: usize = 9;

fn spec() -> TinySpec {
    TinySpec::new("interrupt", "data", EPOCHS).insert("train.eval_batch_size", 4)
}

/// The files that must not differ from the uninterrupted run's: the predictions and the
/// per-step and per-epoch numbers (`epochs.csv` without its `seconds` column).
fn compare(dir: &Path, reference: &str, run: &str, point: &str) {
    for file in ["test_predictions.csv", "val_predictions.csv", "steps.csv", "test_report.csv", "confusion_test.csv"] {
        assert_eq!(read(&dir.join(run).join(file)), read(&dir.join(reference).join(file)), "{point}: {file} differs from the uninterrupted run's");
    }
    let without_seconds = |run: &str| -> Vec<Vec<String>> {
        let path = dir.join(run).join("epochs.csv");
        let header = common::csv_header(&path);
        let seconds = header.iter().position(|h| h == "seconds").expect("a seconds column");
        csv_rows(&path).into_iter().map(|mut row| {
            row.remove(seconds);
            row
        }).collect()
    };
    assert_eq!(without_seconds(run), without_seconds(reference), "{point}: epochs.csv differs");
    let meta = read_json(&dir.join(run).join("meta.json"));
    assert_eq!(meta["status"], "complete", "{point}");
    // TensorBoard's events: what the folder's files make, with the uninterrupted run's numbers
    let events = |run: &str| {
        let files = brasa::tensorboard::event_files(&dir.join(run));
        assert_eq!(files.len(), 1, "{point}: {files:?}");
        let folder = brasa::run_dir::RunDir::open(&dir.join(run)).unwrap();
        let made = brasa::tensorboard::encode(&folder, &folder.read_meta().unwrap()).unwrap();
        assert!(std::fs::read(&files[0]).unwrap() == made, "{point}: {run}'s events are not what its files make");
        let mut scalars = brasa::tensorboard::read(&files[0]).unwrap().scalars;
        scalars.remove("epoch/seconds");
        scalars.into_iter().map(|(tag, points)| (tag, points.into_iter().map(|p| (p.step, p.value)).collect::<Vec<_>>())).collect::<Vec<_>>()
    };
    assert_eq!(events(run), events(reference), "{point}: the TensorBoard scalars differ");
    assert!(dir.join(run).join("report.md").is_file() && dir.join(run).join("report.html").is_file(), "{point}: the report");
}

#[test]
fn interrupted_anywhere_and_resumed_a_run_ends_byte_for_byte_as_an_uninterrupted_one() {
    let dir = TestDir::new().images("data", 16, 3, 20).spec(&spec());
    spec().insert("train.checkpoint_every_steps", 4).write(&dir.path().join("periodic.toml"));
    dir.brasa(["run", "spec.toml", "--out", "reference", "--quiet"]).succeeds();
    assert_eq!(csv_rows(&dir.path().join("reference/steps.csv")).len(), EPOCHS * STEPS_PER_EPOCH);

    let seed: u64 = std::env::var("BRASA_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20261128);
    let mut rng = Rng::new(seed);
    let total = (EPOCHS * STEPS_PER_EPOCH) as u32;
    let mut step = |lo: u32, hi: u32| lo + rng.below(hi - lo + 1);
    // (spec, point, whether the signal is caught: the run then says where it stopped)
    let points: Vec<(&str, String, bool)> = vec![
        ("spec.toml", format!("step:{}:int", step(1, STEPS_PER_EPOCH as u32 - 1)), true),
        ("spec.toml", format!("step:{}:term", step(STEPS_PER_EPOCH as u32 + 1, total - 1)), true),
        ("spec.toml", format!("step:{}:usr1", step(1, total - 1)), true),
        ("spec.toml", format!("step:{}:int", STEPS_PER_EPOCH * 2), true),
        ("spec.toml", format!("validating:{}:term", step(1, 3)), true),
        ("spec.toml", format!("step:{}:int2", step(STEPS_PER_EPOCH as u32 + 1, total - 1)), false),
        ("periodic.toml", format!("step:{}:kill", step(5, total - 1)), false),
        ("periodic.toml", format!("checkpoint:{}:kill", 4 * step(1, (total - 1) / 4)), false),
        ("periodic.toml", format!("step:{}:int", step(1, total - 1)), true),
        ("spec.toml", "test (best):1:int".to_string(), false),
        ("spec.toml", "test (best):1:kill".to_string(), false),
        ("spec.toml", format!("report:{}:term", step(1, 2)), false),
    ];
    eprintln!("interruption points (BRASA_TEST_SEED={seed}):");
    for (k, (spec, point, caught)) in points.iter().enumerate() {
        eprintln!("  {k:>2}. {spec} {point}");
        let out = format!("run{k}");
        let reference = if *spec == "periodic.toml" { "periodic" } else { "reference" };
        if reference == "periodic" && !dir.path().join("periodic").exists() {
            dir.brasa(["run", "periodic.toml", "--out", "periodic", "--quiet"]).succeeds();
            compare(dir.path(), "reference", "periodic", "checkpoint_every_steps changes nothing");
        }
        let ran = dir.brasa(["run", spec, "--out", &out]).env("BRASA_INTERRUPT_AT", point).output();
        assert!(!ran.status.success(), "{point}: the run was not interrupted\n{ran}");
        assert!(!ran.stderr.contains("panicked"), "{point}\n{ran}");
        if point.ends_with(":kill") {
            #[cfg(unix)]
            assert_eq!(std::os::unix::process::ExitStatusExt::signal(&ran.status), Some(9), "{point}\n{ran}");
        } else {
            assert_eq!(ran.status.code(), Some(130), "{point}\n{ran}");
        }
        if *caught {
            let stopped_at = point.split(':').nth(1).unwrap();
            if point.starts_with("step:") {
                assert!(ran.stderr.contains(&format!("stopped after step {stopped_at} ")), "{point}\n{ran}");
            }
            assert!(ran.stderr.contains("the same command resumes it at step"), "{point}\n{ran}");
            assert!(ran.stderr.contains(&format!("brasa run {spec} --out {out}")), "the resume command: {point}\n{ran}");
            let state = read_json(&dir.path().join(&out).join("checkpoints/state.json"));
            if point.starts_with("step:") {
                assert_eq!(state["train"]["step"].as_u64(), stopped_at.parse().ok(), "{point}: the checkpoint is of the step it stopped after");
            }
            assert_eq!(read_json(&dir.path().join(&out).join("meta.json"))["status"], "running", "{point}: an interrupted run is not failed");
        }
        let resumed = dir.brasa(["run", spec, "--out", &out]).succeeds();
        assert!(!resumed.stderr.contains("panicked"), "{point}\n{resumed}");
        compare(dir.path(), reference, &out, point);
    }
}

#[test]
fn a_sigint_from_outside_saves_a_checkpoint_mid_epoch_and_the_run_resumes_from_it() {
    // one long epoch, checkpointed every step, so the signal lands in its middle
    let long = TinySpec::new("outside", "data", 1).set("train.batch_size", 2).insert("train.checkpoint_every_steps", 1);
    let dir = TestDir::new().images("data", 24, 2, 20).spec(&long);
    dir.brasa(["run", "spec.toml", "--out", "reference", "--quiet"]).succeeds();

    let child = dir.brasa(["run", "spec.toml", "--out", "run"]).spawn_piped();
    let steps = dir.path().join("run/steps.csv");
    let started = Instant::now();
    while !steps.exists() {
        assert!(started.elapsed() < Duration::from_secs(120), "no steps.csv after 2 minutes");
        std::thread::sleep(Duration::from_millis(2));
    }
    #[cfg(unix)]
    {
        let sent = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
        assert!(sent.success());
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(130) {
        assert!(stderr.contains("SIGINT: stopped after step"), "{stderr}");
        let state = read_json(&dir.path().join("run/checkpoints/state.json"));
        assert!(state["train"]["partial"].is_object() || state["train"]["epochs_done"] == 1, "{state}");
        dir.brasa(["run", "spec.toml", "--out", "run"]).stderr_contains("resuming").succeeds();
    } else {
        // the run was faster than the signal: nothing to resume, but nothing lost either
        assert!(out.status.success(), "{stderr}");
    }
    compare(dir.path(), "reference", "run", "SIGINT from outside");
}

#[test]
fn ctrl_c_on_a_sweep_stops_its_trials_at_a_checkpoint_and_the_same_command_finishes_them() {
    let spec = TinySpec::new("sweep-stop", "data", 2)
        .set("train.batch_size", 2)
        .insert("sweep", toml::toml! { mode = "grid" "train.optimizer.lr" = [1e-3, 2e-3] });
    let dir = TestDir::new().images("data", 12, 2, 20).spec(&spec);
    // the same trials, never interrupted
    let reference = dir.brasa(["run", "spec.toml", "--jobs", "1", "--out", "reference"]).succeeds();
    assert!(reference.stdout.contains("(2 complete)"), "{reference}");

    let child = dir.brasa(["run", "spec.toml", "--jobs", "1", "--out", "stopped"]).spawn_piped();
    let steps = dir.path().join("stopped/trial-01/steps.csv");
    let log = dir.path().join("stopped/trial-01/log.txt");
    let started = Instant::now();
    // the trial's first epoch under way (its log says so), then Ctrl-C to the sweep alone
    while !std::fs::read_to_string(&log).is_ok_and(|l| l.contains("training cvt-tiny")) {
        assert!(started.elapsed() < Duration::from_secs(120), "trial 1 did not start training");
        std::thread::sleep(Duration::from_millis(2));
    }
    let sent = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(sent.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("SIGINT: launching no more trials; waiting for the 1 running to save a checkpoint"), "{stderr}");
    assert!(stderr.contains("SIGINT: stopped the sweep; 1 running trial(s) saved a checkpoint"), "{stderr}");
    assert!(!dir.path().join("stopped/trial-02").join("meta.json").exists(), "trial 2 was not started");
    let trial_log = read(&log);
    assert!(trial_log.contains("SIGINT: stopped after step") || trial_log.contains("SIGINT: finishing"), "{trial_log}");
    assert!(steps.exists() || dir.path().join("stopped/trial-01/checkpoints/state.json").exists());

    let resumed = dir.brasa(["run", "spec.toml", "--jobs", "1", "--out", "stopped"]).succeeds();
    assert!(resumed.stdout.contains("(2 complete)"), "{resumed}");
    for trial in ["trial-01", "trial-02"] {
        for file in ["test_predictions.csv", "steps.csv"] {
            assert_eq!(read(&dir.path().join("stopped").join(trial).join(file)), read(&dir.path().join("reference").join(trial).join(file)), "{trial}/{file}");
        }
    }
}

/// A signal before training (the data decoded, the model built) stops at once — the documented
/// 130 with a message, not death by the signal — and a run given no `--out` leaves no folder
/// holding only its lock; the same command then runs it whole.
#[test]
fn a_signal_before_training_exits_with_130_and_leaves_no_empty_run_folder() {
    let dir = TestDir::new().images("data", 4, 2, 20).spec(&TinySpec::new("early", "data", 1));
    for (signal, name) in [("int", "SIGINT"), ("term", "SIGTERM"), ("usr1", "SIGUSR1")] {
        let ran = dir.brasa(["run", "spec.toml", "--quiet"]).env("BRASA_INTERRUPT_AT", format!("prepare:1:{signal}")).output();
        assert_eq!(ran.status.code(), Some(130), "{signal}: the documented exit code, not death by the signal\n{ran}");
        assert!(ran.stderr.contains(&format!("{name}: stopping now")), "{signal}\n{ran}");
        let left: Vec<_> = std::fs::read_dir(dir.path().join("reports/early")).map(|e| e.map(|e| e.unwrap().path()).collect()).unwrap_or_default();
        assert!(left.is_empty(), "{signal}: a folder with only its lock is left: {left:?}");
    }
    // with --out, the folder is the user's: kept, and the same command runs it to the end
    let ran = dir.brasa(["run", "spec.toml", "--out", "named", "--quiet"]).env("BRASA_INTERRUPT_AT", "prepare:1:term").output();
    assert_eq!(ran.status.code(), Some(130), "{ran}");
    dir.brasa(["run", "spec.toml", "--out", "named", "--quiet"]).succeeds();
    assert_eq!(read_json(&dir.path().join("named/meta.json"))["status"], "complete");
}
