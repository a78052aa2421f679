//! Each kind of failure exits with its documented code (README, "Commands"), so scripts and
//! cluster jobs can tell a bad spec from bad data, a failed training or a failed report.

mod common;

use common::brasa::TestDir;
use common::spec::TinySpec;

#[test]
fn usage_and_spec_errors_exit_2() {
    let dir = TestDir::new().images("data", 4, 1, 16).spec(&TinySpec::new("codes", "data", 1));
    dir.brasa(["run", "spec.toml", "--threads", "0"]).stderr_contains("--threads must be at least 1").exits_with(2);
    dir.brasa(["run", "spec.toml", "--jobs", "2"]).stderr_contains("--jobs applies to sweeps").exits_with(2);
    dir.brasa(["validate", "spec.toml", "--set", "train.epochz=3"]).stderr_contains("train.epochz").exits_with(2);
    dir.brasa(["run", "spec.toml", "--set", "train.batch_size=0"]).stderr_contains("train.batch_size").exits_with(2);
    dir.brasa(["run", "--no-such-flag"]).exits_with(2);
}

#[test]
fn data_errors_exit_3() {
    let dir = TestDir::new()
        .images("data", 6, 2, 16)
        .file("data/train/dog/broken.jpg", "this is not a jpeg")
        .spec(&TinySpec::new("codes", "data", 1));
    dir.brasa(["run", "spec.toml", "--out", "run", "--quiet"]).stderr_contains("broken.jpg").exits_with(3);

    // the striped pictures all look alike: one duplicate group would take every image
    let dir = TestDir::new().images("data", 6, 2, 20).spec(&TinySpec::new("codes", "data", 1).insert("data.split.group_duplicates", true));
    dir.brasa(["run", "spec.toml", "--out", "run"]).stderr_contains("leaves the validation part empty").exits_with(3);
}

#[test]
fn a_diverged_training_and_failed_trials_exit_4() {
    let spec = TinySpec::new("codes", "data", 1).set("train.optimizer.lr", 1e30);
    let dir = TestDir::new().images("data", 6, 2, 16).spec(&spec);
    dir.brasa(["run", "spec.toml", "--out", "run", "--quiet"]).stderr_contains("the loss became").exits_with(4);

    let sweep = format!("{spec}\n[sweep]\nmode = \"grid\"\n\"experiment.seed\" = [1]\n");
    let dir = TestDir::new().images("data", 6, 2, 16).file("spec.toml", sweep);
    dir.brasa(["run", "spec.toml", "--quiet"]).stderr_contains("1 of 1 trials did not complete").exits_with(4);
}

#[test]
fn folder_errors_exit_5() {
    TestDir::new().brasa(["report", "."]).stderr_contains("not a brasa run folder").exits_with(5);
}

#[test]
fn a_report_failing_after_training_exits_6_and_keeps_the_run() {
    let dir = TestDir::new()
        .images("data", 6, 2, 16)
        .file("my-templates/report.md.j2", "{{ meta.no_such_thing }}\n")
        .spec(&TinySpec::new("codes", "data", 1).insert("report", toml::toml! { templates = "my-templates" }));
    let ran = dir.brasa(["run", "spec.toml", "--out", "run", "--quiet"]).stderr_contains("training finished but the report could not be written").exits_with(6);
    assert!(ran.stderr.contains("meta.no_such_thing"), "the report's own error is named\n{ran}");
    assert!(dir.path().join("run/test_predictions.csv").is_file(), "the trained run's files are kept");
}
