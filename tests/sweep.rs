//! Sweeps end to end on a tiny synthetic folder: trials, trials.csv, the sweep report, resume
//! (finished trials skipped), a failing trial recorded while the sweep goes on, `--trial`,
//! `--dry-run`, and `brasa compare`.

mod common;

use std::path::Path;

use common::{assert_success, brasa, csv_header, csv_rows, stderr, stdout, tiny_spec, write_image_folder};

fn sweep_spec(lrs: &str) -> String {
    format!("{}\n[sweep]\nmode = \"grid\"\n\"train.optimizer.lr\" = {lrs}\n", tiny_spec("tiny-sweep", "data", 2))
}

fn sweep_dir(dir: &Path) -> std::path::PathBuf {
    let parent = dir.join("reports/tiny-sweep");
    let entry = std::fs::read_dir(&parent).unwrap().next().unwrap().unwrap();
    assert!(entry.file_name().to_string_lossy().starts_with("sweep-"));
    entry.path()
}

#[test]
fn a_grid_sweep_runs_resumes_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    write_image_folder(&dir.path().join("data"), 10, 3, 16);
    std::fs::write(dir.path().join("spec.toml"), sweep_spec("[1e-3, 3e-3, 1e30]")).unwrap();

    let output = brasa().current_dir(dir.path()).args(["run", "spec.toml", "--dry-run"]).output().unwrap();
    assert_success(&output);
    let listing = stdout(&output);
    assert!(listing.contains("sweep of 3 trial(s)") && listing.contains("trial  2: train.optimizer.lr=0.003"), "{listing}");

    // trial 1 alone, as a cluster job would run it
    let output = brasa().current_dir(dir.path()).args(["run", "spec.toml", "--trial", "1", "--quiet"]).output().unwrap();
    assert_success(&output);
    let sweep = sweep_dir(dir.path());
    assert!(sweep.join("trial-01/report.md").is_file());

    // the whole sweep: trial 1 is skipped, trial 3 diverges and is recorded, the sweep goes on
    let output = brasa().current_dir(dir.path()).args(["run", "spec.toml", "--jobs", "2"]).output().unwrap();
    assert!(!output.status.success(), "a failed trial makes the sweep exit non-zero");
    let log = stderr(&output);
    assert!(log.contains("trial  1: complete, skipped"), "{log}");
    assert!(log.contains("trial  3: FAILED"), "{log}");
    assert!(log.contains("1 of 3 trials did not complete"), "{log}");

    let header = csv_header(&sweep.join("trials.csv"));
    for column in ["trial", "overrides", "train.optimizer.lr", "status", "best_epoch", "val_accuracy", "test_accuracy", "wall_seconds", "error"] {
        assert!(header.iter().any(|h| h == column), "trials.csv lacks {column}: {header:?}");
    }
    let rows = csv_rows(&sweep.join("trials.csv"));
    let status = header.iter().position(|h| h == "status").unwrap();
    let error = header.iter().position(|h| h == "error").unwrap();
    assert_eq!(rows.iter().map(|r| r[status].as_str()).collect::<Vec<_>>(), ["complete", "complete", "failed"]);
    assert!(rows[2][error].contains("the loss became"), "{:?}", rows[2]);

    let report = std::fs::read_to_string(sweep.join("report.md")).unwrap();
    assert!(report.contains("**Best trial:**") && report.contains("ranked by validation accuracy"), "{report}");
    assert!(report.contains("## The best two trials, compared on the test set") && report.contains("McNemar"), "{report}");
    assert!(sweep.join("charts/train_optimizer_lr.svg").is_file() && sweep.join("charts/val_curves.svg").is_file());

    // again: the finished trials are skipped, the failed one is retried
    let output = brasa().current_dir(dir.path()).args(["run", "spec.toml"]).output().unwrap();
    let log = stderr(&output);
    assert!(log.contains("trial  1: complete, skipped") && log.contains("trial  2: complete, skipped"), "{log}");
    assert!(log.contains("1 of 3 trial(s) to run"), "{log}");

    // --trial on a finished trial says so and succeeds
    let output = brasa().current_dir(dir.path()).args(["run", "spec.toml", "--trial", "2"]).output().unwrap();
    assert_success(&output);
    assert!(stdout(&output).contains("already complete"), "{}", stdout(&output));

    // brasa compare on two trials
    let output = brasa()
        .current_dir(&sweep)
        .args(["compare", "trial-01", "trial-02"])
        .output()
        .unwrap();
    assert_success(&output);
    let text = stdout(&output);
    assert!(text.contains("**Verdict.**") && text.contains("significant at 0.05") && text.contains("| class | recall"), "{text}");
}

#[test]
fn sweep_mistakes_name_the_trial_and_key() {
    let dir = tempfile::tempdir().unwrap();
    write_image_folder(&dir.path().join("data"), 4, 2, 16);
    let spec = format!("{}\n[sweep]\n\"train.optimizer.lrr\" = [1e-3]\n", tiny_spec("bad-sweep", "data", 1));
    std::fs::write(dir.path().join("spec.toml"), spec).unwrap();
    let output = brasa().current_dir(dir.path()).args(["run", "spec.toml", "--dry-run"]).output().unwrap();
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("`train.optimizer.lrr`: unknown key") && err.contains("in trial 1"), "{err}");

    std::fs::write(dir.path().join("spec.toml"), format!("{}\n[sweep]\nmdoe = \"grid\"\n", tiny_spec("bad-sweep", "data", 1))).unwrap();
    let output = brasa().current_dir(dir.path()).args(["validate", "spec.toml"]).output().unwrap();
    assert!(!output.status.success());
    assert!(stderr(&output).contains("did you mean `sweep.mode`?"), "{}", stderr(&output));
}

#[test]
fn compare_refuses_runs_with_different_test_sets() {
    let dir = tempfile::tempdir().unwrap();
    write_image_folder(&dir.path().join("data"), 6, 2, 16);
    write_image_folder(&dir.path().join("other"), 6, 3, 16);
    std::fs::write(dir.path().join("a.toml"), tiny_spec("a", "data", 1)).unwrap();
    std::fs::write(dir.path().join("b.toml"), tiny_spec("b", "other", 1)).unwrap();
    for (spec, out) in [("a.toml", "run-a"), ("b.toml", "run-b")] {
        assert_success(&brasa().current_dir(dir.path()).args(["run", spec, "--out", out, "--quiet"]).output().unwrap());
    }
    let output = brasa().current_dir(dir.path()).args(["compare", "run-a", "run-b"]).output().unwrap();
    assert!(!output.status.success());
    assert!(stderr(&output).contains("were tested on different images"), "{}", stderr(&output));
}
