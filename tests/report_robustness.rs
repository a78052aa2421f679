//! The reporting side on runs that went wrong: a model whose outputs are not numbers, a run
//! killed part way, a sweep followed during its first trial, run folders that lack files. Each
//! test drives the CLI end to end on the tiny synthetic runs of `tests/common`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::brasa::TestDir;
use common::spec::TinySpec;
use serde_json::Value;

/// `runs.csv` as maps from column to value, in row order.
fn runs_csv(path: &Path) -> Vec<BTreeMap<String, String>> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_string).collect();
    reader.records().map(|r| header.iter().cloned().zip(r.unwrap().iter().map(str::to_string)).collect()).collect()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A tiny spec `spec.toml` of `epochs` epochs on a small image folder.
fn tiny(name: &str, epochs: usize) -> TestDir {
    TestDir::new().images("data", 6, 2, 16).spec(&TinySpec::new(name, "data", epochs))
}

/// A run that trained (1 epoch) with attention maps, into `reports/r1`.
fn trained() -> TestDir {
    let dir = tiny("tiny", 1);
    dir.brasa(["run", "spec.toml", "--set", "report.attention_maps=2", "--out", "reports/r1"]).succeeds();
    dir
}

#[test]
fn files_with_nan_written_as_null_are_read_back_and_the_report_is_rebuilt() {
    let dir = trained();
    let run = dir.path().join("reports/r1");
    // what a model whose outputs went NaN writes: serde_json's null in place of each number
    let attention = run.join("attention.json");
    let mut entries: Value = serde_json::from_str(&read(&attention)).unwrap();
    for entry in entries.as_array_mut().unwrap() {
        for value in entry["map"]["values"].as_array_mut().unwrap() {
            *value = Value::Null;
        }
    }
    std::fs::write(&attention, serde_json::to_string(&entries).unwrap()).unwrap();
    let summary = run.join("summary.json");
    let text = read(&summary);
    let mut json: Value = serde_json::from_str(&text).unwrap();
    json["parts"][0]["macro_f1"]["low"] = Value::Null;
    std::fs::write(&summary, serde_json::to_string(&json).unwrap()).unwrap();
    std::fs::remove_file(run.join("report.md")).unwrap();
    dir.brasa(["report", "reports/r1"]).succeeds();
    assert!(run.join("report.md").is_file());
    dir.brasa(["index"]).succeeds();
}

/// The probe's divergence: a learning rate so high that the weights are not numbers after the
/// only step, while that step's training loss was still finite.
fn diverging(dir: &TestDir, out: &str) -> common::brasa::Ran {
    dir.brasa(["run", "spec.toml", "--set", "train.optimizer.lr=1e10", "--set", "train.max_steps=1", "--unset", "train.grad_clip", "--unset", "train.schedule", "--out", out])
        .output()
}

#[test]
fn a_model_whose_outputs_are_not_numbers_fails_as_diverged_instead_of_scoring_class_zero() {
    let dir = tiny("nan", 1);
    let ran = diverging(&dir, "reports/nan");
    assert_eq!(ran.status.code(), Some(4), "a diverged run exits 4\n{ran}");
    assert!(ran.stderr.contains("lower train.optimizer.lr"), "{ran}");
    assert!(!dir.path().join("reports/nan/test_predictions.csv").exists(), "no scores of a NaN model");
    let meta: Value = serde_json::from_str(&read(&dir.path().join("reports/nan/meta.json"))).unwrap();
    assert_eq!(meta["status"], "failed");
}

/// A run of many epochs killed once its first checkpoint is written, at `reports/killed`.
fn killed() -> TestDir {
    let dir = tiny("killed", 400);
    dir.brasa(["run", "spec.toml", "--out", "reports/killed"]).kill_once_written(&dir.path().join("reports/killed/checkpoints/state.json"));
    dir
}

#[test]
fn brasa_report_on_a_killed_run_leaves_it_unfinished_in_the_index_not_running() {
    let dir = killed();
    dir.brasa(["index"]).succeeds();
    assert_eq!(runs_csv(&dir.path().join("reports/runs.csv"))[0]["status"], "unfinished");
    dir.brasa(["report", "reports/killed"]).succeeds();
    assert_eq!(runs_csv(&dir.path().join("reports/runs.csv"))[0]["status"], "unfinished", "the report's own lock is not a running run");
}

#[test]
fn the_report_of_a_killed_or_failed_run_claims_no_checks_it_never_made() {
    let dir = killed();
    dir.brasa(["report", "reports/killed"]).succeeds();
    for file in ["report.md", "report.html"] {
        let text = read(&dir.path().join("reports/killed").join(file));
        assert!(!text.contains("Nothing unusual"), "{file}: {text}");
        assert!(!text.contains("(running"), "{file}: a dead run is not running");
        assert!(text.contains("(unfinished"), "{file}");
    }
    // what a run that diverged after its first epoch leaves in meta.json
    let meta_path = dir.path().join("reports/killed/meta.json");
    let mut meta: Value = serde_json::from_str(&read(&meta_path)).unwrap();
    meta["status"] = "failed".into();
    meta["error"] = "training failed: the loss became NaN at step 6 (epoch 2)".into();
    std::fs::write(&meta_path, serde_json::to_string(&meta).unwrap()).unwrap();
    dir.brasa(["report", "reports/killed"]).succeeds();
    let text = read(&dir.path().join("reports/killed/report.md"));
    assert!(text.contains("This run failed") && !text.contains("Nothing unusual"), "{text}");
}

#[test]
fn brasa_status_follows_a_local_sweep_during_its_first_trial() {
    let dir = tiny("slow-sweep", 40);
    let sweep: toml::Value = toml::from_str("mode = \"grid\"\njobs = 1\n\"train.optimizer.lr\" = [1e-3, 2e-3]").unwrap();
    TinySpec::new("slow-sweep", "data", 40).insert("sweep", sweep).write(&dir.path().join("sweep.toml"));
    let mut sweep = dir.brasa(["run", "sweep.toml", "--out", "sw"]).spawn();
    let started = std::time::Instant::now();
    while !dir.path().join("sw/trial-01/meta.json").is_file() {
        assert!(started.elapsed().as_secs() < 120, "trial 1 never started");
        assert!(sweep.try_wait().unwrap().is_none(), "the sweep ended before trial 1 wrote its meta.json");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let status = dir.brasa(["status", "sw"]).output();
    let first_trial_running = dir.path().join("sw/trial-02").exists();
    sweep.wait().unwrap();
    assert!(status.status.success(), "status during trial 1\n{status}");
    assert!(status.stdout.contains("2 trial(s)"), "{status}");
    assert!(first_trial_running || status.stdout.contains("trial  2  not"), "{status}");
}

#[test]
fn the_index_shows_how_far_an_unfinished_run_got_from_its_epochs_csv() {
    let dir = killed();
    dir.brasa(["index"]).succeeds();
    let row = &runs_csv(&dir.path().join("reports/runs.csv"))[0];
    assert_eq!(row["status"], "unfinished");
    assert!(row["epochs_run"].parse::<usize>().unwrap() >= 1, "{row:?}");
    assert!(!row["best_epoch"].is_empty() && !row["val_accuracy"].is_empty() && !row["val_loss"].is_empty(), "{row:?}");
}

#[test]
fn a_complete_run_missing_files_is_indexed_with_a_warning_naming_them() {
    let dir = trained();
    let run = dir.path().join("reports/r1");
    std::fs::remove_file(run.join("steps.csv")).unwrap();
    std::fs::remove_file(run.join("summary.json")).unwrap();
    let ran = dir.brasa(["index"]).succeeds();
    let row = &runs_csv(&dir.path().join("reports/runs.csv"))[0];
    assert!(!row["test_accuracy"].is_empty() || ran.stderr.contains("steps.csv"), "the test score is kept or its loss explained\n{ran}\n{row:?}");
}

#[test]
fn compare_names_two_runs_of_one_experiment_and_folder_name_apart() {
    let dir = tiny("tiny", 1);
    dir.brasa(["run", "spec.toml", "--out", "reports/a/r1"]).succeeds();
    dir.brasa(["run", "spec.toml", "--set", "experiment.seed=8", "--out", "reports/b/r1"]).succeeds();
    dir.brasa(["compare", "reports/a/r1", "reports/b/r1"]).stdout_contains("`b/r1` against the baseline `a/r1`").succeeds();
}

#[test]
fn a_templates_folder_that_is_gone_is_an_error_not_the_built_in_report() {
    let dir = tiny("tiny", 1).file("tpl/report.md.j2", "# custom {{ meta.experiment }}\n");
    dir.brasa(["run", "spec.toml", "--set", "report.templates=\"tpl\"", "--out", "reports/r1"]).succeeds();
    assert!(read(&dir.path().join("reports/r1/report.md")).starts_with("# custom"));
    std::fs::rename(dir.path().join("tpl"), dir.path().join("tpl-gone")).unwrap();
    dir.brasa(["report", "reports/r1"]).stderr_contains("tpl").exits_with(6);
    assert!(read(&dir.path().join("reports/r1/report.md")).starts_with("# custom"), "the custom report is kept");
}

#[test]
fn brasa_report_without_spec_toml_fails_before_it_rewrites_anything() {
    let dir = trained();
    let run = dir.path().join("reports/r1");
    std::fs::remove_file(run.join("spec.toml")).unwrap();
    std::fs::remove_file(run.join("report.md")).unwrap();
    dir.brasa(["report", "reports/r1"]).stderr_contains("spec.toml").exits_with(5);
    assert!(!run.join("report.md").exists(), "nothing was written");
}

fn copy_dir(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp").arg("-r").arg(from).arg(to).status().unwrap();
    assert!(status.success());
}

#[test]
fn the_index_follows_a_linked_run_folder_and_names_one_it_cannot_read() {
    let dir = trained();
    let reports = dir.path().join("reports");
    std::fs::create_dir(dir.path().join("elsewhere")).unwrap();
    copy_dir(&reports.join("r1"), &dir.path().join("elsewhere/ext"));
    std::os::unix::fs::symlink("../elsewhere/ext", reports.join("linked")).unwrap();
    // a link to a folder it is in must not be walked forever
    std::os::unix::fs::symlink(".", reports.join("loop")).unwrap();
    std::fs::create_dir_all(reports.join("metadir/meta.json")).unwrap();
    let ran = dir.brasa(["index"]).stdout_contains("2 run(s)").succeeds();
    assert!(ran.stderr.contains("metadir") && ran.stderr.contains("is not listed"), "{ran}");
    let runs: Vec<String> = runs_csv(&reports.join("runs.csv")).iter().map(|r| r["run"].clone()).collect();
    assert_eq!(runs, ["linked", "r1"]);
}

#[test]
fn brasa_index_of_a_run_folder_refuses_clearly_and_writes_nothing_there() {
    let dir = trained();
    dir.brasa(["index", "reports/r1"]).stderr_contains("is a run folder").exits_with(5);
    assert!(!dir.path().join("reports/r1/index.html").exists() && !dir.path().join("reports/r1/runs.csv").exists());
}

#[test]
fn brasa_index_replaces_neither_file_when_it_cannot_write_one() {
    let dir = trained();
    let reports = dir.path().join("reports");
    std::fs::write(reports.join("runs.csv"), "an older index\n").unwrap();
    std::fs::remove_file(reports.join("index.html")).unwrap();
    std::fs::create_dir_all(reports.join("index.html/x")).unwrap();
    dir.brasa(["index"]).stderr_contains("index.html").exits_with(5);
    assert_eq!(read(&reports.join("runs.csv")), "an older index\n", "runs.csv is left as it was");
}

#[test]
fn a_class_name_with_a_bar_or_html_stays_in_its_markdown_table_cell() {
    let dir = tiny("tiny", 1);
    for part in ["train", "test"] {
        std::fs::rename(dir.path().join("data").join(part).join("cat"), dir.path().join("data").join(part).join("c|<b>at")).unwrap();
    }
    dir.brasa(["run", "spec.toml", "--out", "reports/r1"]).succeeds();
    let report = read(&dir.path().join("reports/r1/report.md"));
    assert!(report.contains("| c\\|&lt;b&gt;at | "), "{report}");
    // outside code spans no raw HTML, and no bar that is not escaped inside one
    let outside_code = |line: &str| line.split('`').step_by(2).collect::<String>();
    assert!(report.lines().filter(|l| l.starts_with('|')).all(|l| !outside_code(l).contains("<b>") && !l.contains("c|")), "{report}");
}

#[test]
fn a_sweep_report_links_the_trial_reports_that_were_written() {
    let dir = tiny("tiny", 1);
    let sweep: toml::Value = toml::from_str("mode = \"grid\"\n\"train.optimizer.lr\" = [1e-3, 2e-3]").unwrap();
    let report: toml::Value = toml::from_str("formats = [\"html\"]").unwrap();
    TinySpec::new("html-sweep", "data", 1).insert("sweep", sweep).insert("report", report).write(&dir.path().join("sweep.toml"));
    dir.brasa(["run", "sweep.toml", "--out", "sw"]).succeeds();
    let text = read(&dir.path().join("sw/report.md"));
    assert!(text.contains("(trial-01/report.html)") && !text.contains("/report.md)"), "{text}");
}

#[test]
fn bench_times_the_spec_model_and_refuses_a_limit_of_zero() {
    let dir = trained();
    let meta: Value = serde_json::from_str(&read(&dir.path().join("reports/r1/meta.json"))).unwrap();
    let ran = dir.brasa(["bench", "spec.toml", "--what", "infer", "--steps", "1", "--warmup", "0", "--json"]).succeeds();
    let bench: Value = serde_json::from_str(&ran.stdout).unwrap_or_else(|e| panic!("{e}\n{ran}"));
    assert_eq!(bench["parameters"], meta["model"]["parameters"]);
    dir.brasa(["bench", "spec.toml", "--what", "data", "--limit", "0"]).stderr_contains("--limit").exits_with(2);
}

/// Killed (`kill -9`, a lost node) in its first epoch, a run has no `epochs.csv` yet: its report
/// is the unfinished one a signal would give, not an error; and what a killed `brasa report`
/// leaves (its temporary files) goes with the next one.
#[test]
fn a_run_killed_in_its_first_epoch_gets_an_unfinished_report_and_report_debris_is_removed() {
    let dir = tiny("first", 3);
    let ran = dir.brasa(["run", "spec.toml", "--out", "reports/first"]).env("BRASA_INTERRUPT_AT", "step:1:kill").output();
    assert!(!ran.status.success(), "{ran}");
    assert!(!dir.path().join("reports/first/epochs.csv").exists(), "killed before its first epoch's end");
    dir.brasa(["report", "reports/first"]).succeeds();
    let text = read(&dir.path().join("reports/first/report.md"));
    assert!(text.contains("(unfinished"), "{text}");
    // what a `brasa report` killed while writing leaves
    for debris in ["reports/first/.tmpAb12Cd", "reports/first/charts/.tmpXy34Zw"] {
        std::fs::write(dir.path().join(debris), "half a chart").unwrap();
    }
    dir.brasa(["report", "reports/first"]).stderr_contains("removed 2 file(s)").succeeds();
    for debris in ["reports/first/.tmpAb12Cd", "reports/first/charts/.tmpXy34Zw"] {
        assert!(!dir.path().join(debris).exists(), "{debris}");
    }
    // and the run resumes to the end
    dir.brasa(["run", "spec.toml", "--out", "reports/first", "--quiet"]).succeeds();
}
