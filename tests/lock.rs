//! One owner per run folder: a second process on a run folder that is being worked in says who
//! holds it and trains nothing (or writes no report); a sweep skips the trials another process is running; the lock of
//! a killed process is taken over (a trial keeping its lock when its sweep is killed: `run_dir::lock`'s unit test).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::brasa::TestDir;
use common::spec::TinySpec;
use common::{csv_header, csv_rows, read};

/// Waits until `file` exists and contains `text`.
fn wait_for(file: &Path, text: &str) {
    let started = Instant::now();
    while !std::fs::read_to_string(file).is_ok_and(|t| t.contains(text)) {
        assert!(started.elapsed() < Duration::from_secs(120), "no {text:?} in {} after 2 minutes", file.display());
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_second_run_on_a_busy_folder_says_who_holds_it_and_a_killed_runs_lock_is_taken_over() {
    // long enough (seconds) to be still running while the second run and the report are refused
    let dir = TestDir::new().images("data", 6, 2, 16).spec(&TinySpec::new("tiny", "data", 150));
    let mut first = dir.brasa(["run", "spec.toml", "--out", "run", "--quiet"]).spawn();
    let run = dir.path().join("run");
    wait_for(&run.join(".lock"), &format!("brasa pid {} on ", first.id()));
    wait_for(&run.join("meta.json"), "\"status\"");

    let second = dir.brasa(["run", "spec.toml", "--out", "run"]).exits_with(5);
    assert!(second.stderr.contains(&format!("is in use by brasa pid {} on", first.id())), "{second}");
    assert!(second.stderr.contains("another --out"), "{second}");
    // nor does `brasa report` write the unfinished run's report (refused at once; whether the
    // files exist afterwards depends on the first run, which may have finished meanwhile)
    let report = dir.brasa(["report", "run"]).exits_with(5);
    assert!(report.stderr.contains(&format!("is in use by brasa pid {} on", first.id())), "{report}");

    first.kill().unwrap(); // kill -9: the lock goes with the process
    first.wait().unwrap();
    let third = dir.brasa(["run", "spec.toml", "--out", "run"]).succeeds();
    assert!(!third.stderr.contains("is in use by"), "{third}");
    assert!(read(&run.join("meta.json")).contains("\"complete\""));
}

fn sweep_dir(root: &Path) -> PathBuf {
    let parent = root.join("reports/tiny-sweep");
    let started = Instant::now();
    loop {
        if let Some(entry) = std::fs::read_dir(&parent).ok().and_then(|mut d| d.next()) {
            return entry.unwrap().path();
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no sweep folder");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_second_sweep_on_the_same_folder_skips_the_trials_another_process_runs() {
    let spec = TinySpec::new("tiny-sweep", "data", 30).insert("sweep", toml::toml! { mode = "grid" "train.optimizer.lr" = [1e-3, 2e-3] });
    let dir = TestDir::new().images("data", 6, 2, 16).spec(&spec);
    let mut first = dir.brasa(["run", "spec.toml", "--jobs", "1"]).spawn();
    let sweep = sweep_dir(dir.path());
    wait_for(&sweep.join("trial-01/.lock"), &format!("brasa pid {} on ", first.id()));

    // the second sweep finds trial 1 taken and runs trial 2; the first then finds trial 2 done
    let second = dir.brasa(["run", "spec.toml", "--jobs", "1"]).succeeds();
    assert!(second.stderr.contains(&format!("trial  1: running in another process (brasa pid {} on", first.id())), "{second}");
    // (trial 1 may have finished meanwhile)
    assert!(second.stdout.contains("(1 complete, 1 running in another process)") || second.stdout.contains("(2 complete)"), "{second}");
    assert!(first.wait().unwrap().success(), "the first sweep ends well too");

    let header = csv_header(&sweep.join("trials.csv"));
    let status = header.iter().position(|h| h == "status").unwrap();
    let rows = csv_rows(&sweep.join("trials.csv"));
    assert_eq!(rows.iter().map(|r| r[status].as_str()).collect::<Vec<_>>(), ["complete", "complete"]);
    // each trial trained once: one epoch row per epoch
    for trial in ["trial-01", "trial-02"] {
        assert_eq!(csv_rows(&sweep.join(trial).join("epochs.csv")).len(), 30, "{trial}");
    }
}

