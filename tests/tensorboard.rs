//! TensorBoard event files: what TensorBoard's own `EventAccumulator` read in the events of the
//! fixture's runs (`tests/fixtures/tensorboard/expected.json`, written by `check.py` there) is
//! what brasa writes again from the same run folders, byte for byte and read back; and a run's
//! `tb/` says what its `steps.csv` and `epochs.csv` say, `brasa report` writes it again, and
//! `report.tensorboard = false` writes none.

mod common;

use std::path::Path;

use brasa::run_dir::RunDir;
use brasa::tensorboard::{self, Reading, proto};
use common::brasa::TestDir;
use common::spec::TinySpec;
use common::{csv_header, csv_rows, read_json, repo_path};
use serde_json::{Value, json};

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The one event file of the run folder `root`.
fn event_file(root: &Path) -> std::path::PathBuf {
    let files = tensorboard::event_files(root);
    assert_eq!(files.len(), 1, "{}: {files:?}", root.display());
    files[0].clone()
}

/// `reading` in the shape check.py writes what `EventAccumulator` read.
fn as_check_py_writes_it(reading: &Reading) -> Value {
    let experiment = reading.experiment.as_ref().expect("an experiment");
    let start = reading.session_start.as_ref().expect("a session start");
    let end = reading.session_end.as_ref().expect("a session end");
    let value = |v: &proto::HParamValue| match &v.kind {
        Some(proto::Kind::Number(n)) => json!(n),
        Some(proto::Kind::String(s)) => json!(s),
        Some(proto::Kind::Bool(b)) => json!(b),
        None => Value::Null,
    };
    json!({
        "scalar_tags": reading.tags,
        "tensor_tags": [tensorboard::EXPERIMENT_TAG, tensorboard::SESSION_START_TAG, tensorboard::SESSION_END_TAG],
        "scalars": reading.scalars.iter().map(|(tag, points)| {
            (tag.clone(), points.iter().map(|p| json!([p.step, p.wall_time, f64::from(p.value)])).collect::<Value>())
        }).collect::<serde_json::Map<_, _>>(),
        "experiment": {
            "name": experiment.name,
            "description": experiment.description,
            "time_created_secs": experiment.time_created_secs,
            "hparams": experiment.hparam_infos.iter().map(|h| json!([h.name, h.r#type, h.differs])).collect::<Value>(),
            "metrics": experiment.metric_infos.iter().map(|m| {
                let name = m.name.clone().unwrap_or_default();
                json!([name.group, name.tag, m.display_name, m.dataset_type])
            }).collect::<Value>(),
        },
        "session_start": {
            "hparams": start.hparams.iter().map(|(k, v)| (k.clone(), value(v))).collect::<serde_json::Map<_, _>>(),
            "group_name": start.group_name,
            "start_time_secs": start.start_time_secs,
        },
        "session_end": {"status": end.status, "end_time_secs": end.end_time_secs},
    })
}

/// JSON values equal but for the last bit of a float (serde_json parses floats fast, not always
/// to the nearest double; a value of another 32-bit float differs far more).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            (x - y).abs() <= 1e-15 * x.abs().max(y.abs())
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y)),
        (Value::Object(x), Value::Object(y)) => x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w))),
        _ => a == b,
    }
}

#[test]
fn brasa_writes_again_byte_for_byte_the_events_tensorboard_read_in_the_fixture() {
    let fixture = repo_path("tests/fixtures/tensorboard");
    let expected = read_json(&fixture.join("expected.json"));
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixture.join("sweep"), &dir.path().join("sweep"));
    for trial in ["trial-01", "trial-02"] {
        let committed = event_file(&fixture.join("sweep").join(trial));
        let root = dir.path().join("sweep").join(trial);
        std::fs::remove_dir_all(root.join("tb")).unwrap();
        let written = tensorboard::write(&RunDir::open(&root).unwrap()).unwrap().expect("report.tensorboard is on");
        assert_eq!(root.join(&written).file_name(), committed.file_name(), "{trial}");
        assert!(std::fs::read(root.join(&written)).unwrap() == std::fs::read(&committed).unwrap(), "{trial}: the events differ from those TensorBoard read (rerun make.py and check.py if the format changed on purpose)");
        let reading = tensorboard::read(&root.join(&written)).unwrap();
        assert_eq!(reading.file_version.as_deref(), Some("brain.Event:2"));
        let read = as_check_py_writes_it(&reading);
        assert!(same(&read, &expected[trial]), "{trial}: brasa's reading differs from EventAccumulator's:\n{read}\n{}", expected[trial]);
    }
}

/// `(step, value)` of each point of `tag`.
fn points(reading: &Reading, tag: &str) -> Vec<(i64, f32)> {
    reading.scalars.get(tag).unwrap_or_else(|| panic!("no tag {tag}: {:?}", reading.tags)).iter().map(|p| (p.step, p.value)).collect()
}

#[test]
fn a_run_writes_events_that_say_what_its_csv_files_say_and_report_writes_them_again() {
    let dir = TestDir::new().images("data", 6, 2, 16).spec(&TinySpec::new("tb", "data", 2));
    let report = toml::Value::Table(toml::from_str("tensorboard = false").unwrap());
    TinySpec::new("tb", "data", 2).insert("report", report).write(&dir.path().join("off.toml"));
    dir.brasa(["run", "spec.toml", "--out", "run", "--quiet"]).succeeds();
    let run = dir.path().join("run");
    let file = event_file(&run);
    let reading = tensorboard::read(&file).unwrap();

    let number = |text: &str| text.parse::<f64>().unwrap() as f32;
    let steps = csv_rows(&run.join("steps.csv"));
    for (tag, column) in [("train/loss", 2), ("train/lr", 3), ("train/grad_norm", 4)] {
        let from_csv: Vec<(i64, f32)> = steps.iter().map(|row| (row[0].parse().unwrap(), number(&row[column]))).collect();
        assert_eq!(points(&reading, tag), from_csv, "{tag} against steps.csv");
    }
    let header = csv_header(&run.join("epochs.csv"));
    let epochs = csv_rows(&run.join("epochs.csv"));
    for (column, name) in header.iter().enumerate().filter(|(_, h)| !["epoch", "best"].contains(&h.as_str())) {
        let from_csv: Vec<(i64, f32)> = epochs.iter().map(|row| (row[0].parse().unwrap(), number(&row[column]))).collect();
        assert_eq!(points(&reading, &format!("epoch/{name}")), from_csv, "epoch/{name} against epochs.csv");
    }
    let walls: Vec<f64> = reading.scalars["train/loss"].iter().map(|p| p.wall_time).collect();
    assert!(walls.windows(2).all(|w| w[0] <= w[1]), "the steps' wall times run forward: {walls:?}");

    let meta = read_json(&run.join("meta.json"));
    let best = meta["best_epoch"].as_i64().unwrap();
    let best_row = epochs.iter().find(|row| row[0] == best.to_string()).unwrap();
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    assert_eq!(points(&reading, "final/val_accuracy"), [(best, number(&best_row[column("val_accuracy")]))]);
    assert_eq!(points(&reading, "final/val_loss"), [(best, number(&best_row[column("val_loss")]))]);
    let test_accuracy = csv_rows(&run.join("test_report.csv")).into_iter().find(|row| row[0] == "accuracy").unwrap()[3].parse::<f32>().unwrap();
    let (_, tensorboard_accuracy) = points(&reading, "final/test_accuracy")[0];
    assert!((tensorboard_accuracy - test_accuracy).abs() < 1e-4, "final/test_accuracy {tensorboard_accuracy} against test_report.csv's {test_accuracy}");

    let start = reading.session_start.as_ref().expect("the HParams session start");
    assert_eq!(start.hparams["train.optimizer.lr"].kind, Some(proto::Kind::Number(0.002)));
    assert_eq!(start.hparams["model.arch"].kind, Some(proto::Kind::String("cvt-tiny".into())));
    assert_eq!(start.hparams["train.batch_size"].kind, Some(proto::Kind::Number(8.0)));
    assert!(!start.hparams.contains_key("runtime.threads") && !start.hparams.contains_key("data.root"), "{:?}", start.hparams.keys());
    assert_eq!(reading.session_end.as_ref().map(|e| e.status), Some(proto::SessionStatus::Success as i32));
    let experiment = reading.experiment.as_ref().expect("the HParams experiment");
    assert_eq!(experiment.hparam_infos.len(), start.hparams.len());
    assert!(experiment.hparam_infos.iter().all(|h| !h.differs), "a run of no sweep varies nothing");

    // `brasa report` writes the same events again from the folder's files
    let bytes = std::fs::read(&file).unwrap();
    std::fs::remove_dir_all(run.join("tb")).unwrap();
    dir.brasa(["report", "run"]).stdout_contains("/tb/events.out.tfevents.").succeeds();
    assert!(std::fs::read(&file).unwrap() == bytes, "brasa report wrote other events");

    dir.brasa(["run", "off.toml", "--out", "off", "--quiet"]).succeeds();
    dir.brasa(["report", "off"]).succeeds();
    assert!(!dir.path().join("off/tb").exists(), "report.tensorboard = false writes no tb/");
}
