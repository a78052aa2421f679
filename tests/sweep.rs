//! Sweeps end to end on a tiny synthetic folder: trials, trials.csv, the sweep report, resume
//! (finished trials skipped), a failing trial recorded while the sweep goes on, `--trial`,
//! `--dry-run`, and `brasa compare`.

mod common;

use std::path::Path;

use common::brasa::{Brasa, TestDir};
use common::spec::TinySpec;
use common::{csv_header, csv_rows, read};

fn sweep_dir(dir: &Path) -> std::path::PathBuf {
    let parent = dir.join("reports/tiny-sweep");
    let entry = std::fs::read_dir(&parent).unwrap().next().unwrap().unwrap();
    assert!(entry.file_name().to_string_lossy().starts_with("sweep-"));
    entry.path()
}

#[test]
fn a_grid_sweep_runs_resumes_and_reports() {
    let spec = TinySpec::new("tiny-sweep", "data", 2)
        .insert("sweep", toml::toml! { mode = "grid" "train.optimizer.lr" = [1e-3, 3e-3, 1e30] });
    let dir = TestDir::new().images("data", 10, 3, 16).spec(&spec);

    let listing = dir.brasa(["run", "spec.toml", "--dry-run"]).succeeds().stdout;
    assert!(listing.contains("sweep of 3 trial(s)") && listing.contains("trial  2: train.optimizer.lr=0.003"), "{listing}");

    // trial 1 alone, as a cluster job would run it
    dir.brasa(["run", "spec.toml", "--trial", "1", "--quiet"]).succeeds();
    let sweep = sweep_dir(dir.path());
    assert!(sweep.join("trial-01/report.md").is_file());

    // the whole sweep: trial 1 is skipped, trial 3 diverges and is recorded, the sweep goes on
    // (a failed trial makes the sweep exit non-zero)
    dir.brasa(["run", "spec.toml", "--jobs", "2"])
        .stderr_contains("trial  1: complete, skipped")
        .stderr_contains("trial  3: FAILED")
        .stderr_contains("1 of 3 trials did not complete")
        .fails();

    let header = csv_header(&sweep.join("trials.csv"));
    for column in ["trial", "overrides", "train.optimizer.lr", "status", "best_epoch", "val_accuracy", "test_accuracy", "wall_seconds", "error"] {
        assert!(header.iter().any(|h| h == column), "trials.csv lacks {column}: {header:?}");
    }
    let rows = csv_rows(&sweep.join("trials.csv"));
    let status = header.iter().position(|h| h == "status").unwrap();
    let error = header.iter().position(|h| h == "error").unwrap();
    assert_eq!(rows.iter().map(|r| r[status].as_str()).collect::<Vec<_>>(), ["complete", "complete", "failed"]);
    assert!(rows[2][error].contains("the loss became"), "{:?}", rows[2]);

    let report = read(&sweep.join("report.md"));
    assert!(report.contains("**Best trial:**") && report.contains("ranked by validation accuracy"), "{report}");
    assert!(report.contains("## The best two trials, compared on the test set") && report.contains("McNemar"), "{report}");
    assert!(sweep.join("charts/train_optimizer_lr.svg").is_file() && sweep.join("charts/val_curves.svg").is_file());

    // again: the finished trials are skipped, the failed one is retried
    let log = dir.brasa(["run", "spec.toml"]).output().stderr;
    assert!(log.contains("trial  1: complete, skipped") && log.contains("trial  2: complete, skipped"), "{log}");
    assert!(log.contains("1 of 3 trial(s) to run"), "{log}");

    // --trial on a finished trial says so and succeeds
    dir.brasa(["run", "spec.toml", "--trial", "2"]).stdout_contains("already complete").succeeds();

    // brasa compare on two trials
    let text = Brasa::new(&sweep, ["compare", "trial-01", "trial-02"]).succeeds().stdout;
    assert!(text.contains("**Verdict.**") && text.contains("significant at 0.05") && text.contains("| class | recall"), "{text}");
}

#[test]
fn sweep_mistakes_name_the_trial_and_key() {
    let spec = TinySpec::new("bad-sweep", "data", 1);
    let dir = TestDir::new().images("data", 4, 2, 16).spec(&spec.clone().insert("sweep", toml::toml! { "train.optimizer.lrr" = [1e-3] }));
    let err = dir.brasa(["run", "spec.toml", "--dry-run"]).fails().stderr;
    assert!(err.contains("`train.optimizer.lrr`: unknown key") && err.contains("in trial 1"), "{err}");

    spec.insert("sweep", toml::toml! { mdoe = "grid" }).write(&dir.path().join("spec.toml"));
    dir.brasa(["validate", "spec.toml"]).stderr_contains("did you mean `sweep.mode`?").fails();
}

#[test]
fn compare_refuses_runs_with_different_test_sets() {
    let dir = TestDir::new()
        .images("data", 6, 2, 16)
        .images("other", 6, 3, 16)
        .file("a.toml", TinySpec::new("a", "data", 1).to_string())
        .file("b.toml", TinySpec::new("b", "other", 1).to_string());
    for (spec, out) in [("a.toml", "run-a"), ("b.toml", "run-b")] {
        dir.brasa(["run", spec, "--out", out, "--quiet"]).succeeds();
    }
    dir.brasa(["compare", "run-a", "run-b"]).stderr_contains("were tested on different images").fails();

    // the same images under another root (a copy, a mount elsewhere) pair by their path in it
    let moved = dir.path().join("moved");
    std::fs::create_dir(&moved).unwrap();
    for entry in walkdir::WalkDir::new(dir.path().join("data")).min_depth(1) {
        let entry = entry.unwrap();
        let to = moved.join(entry.path().strip_prefix(dir.path().join("data")).unwrap());
        if entry.file_type().is_dir() { std::fs::create_dir_all(&to).unwrap() } else { std::fs::copy(entry.path(), &to).unwrap(); }
    }
    TinySpec::new("a", "moved", 1).write(&dir.path().join("moved.toml"));
    dir.brasa(["run", "moved.toml", "--out", "run-moved", "--quiet"]).succeeds();
    let text = dir.brasa(["compare", "run-a", "run-moved"]).succeeds().stdout;
    assert!(text.contains("on the same 6 test images"), "{text}");
}

#[test]
fn an_edited_sweep_is_refused_in_the_folder_of_the_first_and_leaves_it_as_it_was() {
    let spec = TinySpec::new("tiny-sweep", "data", 1);
    let sweep = |values: &str| format!("{spec}\n[sweep]\nmode = \"grid\"\n\"train.optimizer.lr\" = [{values}]\n");
    let dir = TestDir::new()
        .images("data", 6, 2, 16)
        .file("first.toml", sweep("1e-3, 2e-3"))
        .file("edited.toml", sweep("1e-3, 3e-3"))
        .file("reordered.toml", sweep("2e-3, 1e-3"));
    dir.brasa(["run", "first.toml", "--out", "sw", "--quiet"]).succeeds();
    let sw = dir.path().join("sw");
    let (sweep_toml, trials_csv) = (read(&sw.join("sweep.toml")), read(&sw.join("trials.csv")));

    // trial 2 ran with 0.002: the edited sweep would list its results under 0.003
    let ran = dir.brasa(["run", "edited.toml", "--out", "sw"]).exits_with(5);
    assert!(ran.stderr.contains("trial-02 (trial 2 is now train.optimizer.lr=0.003): train.optimizer.lr: 0.002 → 0.003"), "{ran}");
    assert!(!ran.stderr.contains("trial-01 ("), "trial 1 is the same in both\n{ran}");
    assert!(ran.stderr.contains("another --out") && !ran.stderr.contains("complete, skipped"), "{ran}");
    assert_eq!((read(&sw.join("sweep.toml")), read(&sw.join("trials.csv"))), (sweep_toml.clone(), trials_csv.clone()), "the folder is left as it was");
    // one trial alone is refused the same way
    dir.brasa(["run", "edited.toml", "--out", "sw", "--trial", "1"]).stderr_contains("trial-02 (trial 2").exits_with(5);

    // the same values in another order would swap the trials' labels
    let ran = dir.brasa(["run", "reordered.toml", "--out", "sw"]).exits_with(5);
    assert!(ran.stderr.contains("trial-01 (") && ran.stderr.contains("trial-02 ("), "{ran}");
    assert_eq!(read(&sw.join("sweep.toml")), sweep_toml);

    // the sweep as it was still resumes
    dir.brasa(["run", "first.toml", "--out", "sw"]).stderr_contains("trial  2: complete, skipped").succeeds();
}

#[test]
fn a_held_trials_lock_is_waited_for_a_bounded_time_naming_its_holder_and_stale_temporary_files_go() {
    let spec = TinySpec::new("tiny-sweep", "data", 1).insert("sweep", toml::toml! { mode = "grid" "train.optimizer.lr" = [1e-3] });
    let dir = TestDir::new().images("data", 6, 2, 16).spec(&spec);
    dir.brasa(["run", "spec.toml", "--trial", "1", "--quiet"]).succeeds();
    let sweep = sweep_dir(dir.path());

    // a killed writer's temporary file, a minute old, and a fresh one (a live writer's, perhaps)
    let old = sweep.join(".tmpAb12Cd");
    let fresh = sweep.join(".tmpZz98Yy");
    std::fs::write(&old, b"half a trials.csv").unwrap();
    std::fs::write(&fresh, b"being written").unwrap();
    let minutes_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(120);
    std::fs::File::options().write(true).open(&old).unwrap().set_modified(minutes_ago).unwrap();

    // another process holds the lock (a `brasa status` stopped with Ctrl-Z): no endless wait
    let held = std::fs::File::options().read(true).write(true).open(sweep.join(".trials.lock")).unwrap();
    held.lock().unwrap();
    dir.brasa(["run", "spec.toml"])
        .env("BRASA_LOCK_WAIT_SECS", "1")
        .stderr_contains("waiting for")
        .stderr_contains("for more than 1 s, so trials.csv was not rewritten")
        .exits_with(5);
    drop(held);
    dir.brasa(["run", "spec.toml"]).stderr_contains("trial  1: complete, skipped").succeeds();
    assert!(!old.exists() && fresh.exists());
}
