//! `brasa run` end to end on small image folders the tests write: every artifact and its
//! columns, `brasa report` rebuilding the same report, downloading the data from a local HTTP
//! server, and resuming a killed run.

mod common;

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{CLASSES, assert_success, csv_header, csv_rows, run_in, stderr, stdout, tiny_spec, write_image_folder};

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn run_writes_every_artifact_and_report_rebuilds_it() {
    let dir = tempfile::tempdir().unwrap();
    write_image_folder(&dir.path().join("data"), 12, 4, 20);
    std::fs::write(dir.path().join("spec.toml"), tiny_spec("tiny", "data", 2)).unwrap();
    let output = run_in(dir.path(), &["run", "spec.toml", "--out", "run"]);
    assert_success(&output);
    let summary = stdout(&output);
    assert!(summary.contains("test accuracy:"), "{summary}");
    let log = stderr(&output);
    assert!(log.contains("epoch  2/2"), "{log}");
    let logged = |tokens: &[&str]| log.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == tokens);
    assert!(logged(&["cat", "9", "3", "4"]) && logged(&["total", "27", "9", "12"]), "split counts are logged:\n{log}");

    let run = dir.path().join("run");
    for file in [
        "spec.toml", "meta.json", "split.csv", "epochs.csv", "steps.csv", "val_predictions.csv", "test_predictions.csv",
        "val_report.csv", "test_report.csv", "confusion_val.csv", "confusion_test.csv", "checkpoints/state.json",
        "charts/class_distribution.svg", "charts/loss.svg", "charts/metrics.svg", "charts/learning_rate.svg",
        "charts/confusion_test.svg", "charts/confusion_val.svg", "report.md", "report.html",
    ] {
        assert!(run.join(file).is_file(), "missing {file}");
    }
    let checkpoints: Vec<String> = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(checkpoints.iter().any(|f| f.ends_with(".bpk")), "{checkpoints:?}");

    // the resolved spec is written back and loads again
    let spec: toml::Table = toml::from_str(&read(&run.join("spec.toml"))).unwrap();
    assert_eq!(spec["experiment"]["name"].as_str(), Some("tiny"));

    let meta: serde_json::Value = serde_json::from_str(&read(&run.join("meta.json"))).unwrap();
    for key in ["brasa_version", "git_commit", "burn_version", "backend", "threads", "seed", "started_at", "finished_at"] {
        assert!(!meta[key].is_null(), "meta.json lacks {key}: {meta}");
    }
    assert_eq!(meta["status"], "complete");
    assert_eq!(meta["backend"], "flex");
    assert_eq!(meta["seed"], 7);
    assert_eq!(meta["classes"], serde_json::json!(CLASSES));

    let epochs_header = csv_header(&run.join("epochs.csv"));
    for column in ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_macro_f1", "val_weighted_f1", "val_recall_cat", "val_recall_owl", "lr", "seconds", "best"] {
        assert!(epochs_header.iter().any(|h| h == column), "epochs.csv lacks {column}: {epochs_header:?}");
    }
    assert_eq!(csv_rows(&run.join("epochs.csv")).len(), 2);
    assert_eq!(csv_header(&run.join("steps.csv")), ["step", "epoch", "loss", "lr", "grad_norm"]);
    // 27 training images + 27 augmented copies in batches of 8: 7 steps per epoch
    let steps = csv_rows(&run.join("steps.csv"));
    assert_eq!(steps.len(), 14);
    assert_eq!(steps.last().unwrap()[0], "14");

    for part in ["val", "test"] {
        let file = run.join(format!("{part}_predictions.csv"));
        assert_eq!(csv_header(&file), ["path", "label", "prediction", "cat", "dog", "owl"]);
        let rows = csv_rows(&file);
        assert_eq!(rows.len(), if part == "val" { 9 } else { 12 });
        for row in &rows {
            let total: f64 = row[3..].iter().map(|p| p.parse::<f64>().unwrap()).sum();
            assert!((total - 1.0).abs() < 1e-4, "probabilities sum to {total}");
            assert!(CLASSES.contains(&row[1].as_str()) && CLASSES.contains(&row[2].as_str()));
        }
    }
    assert_eq!(csv_header(&run.join("test_report.csv")), ["class", "precision", "recall", "f1-score", "support"]);
    let report_rows: Vec<String> = csv_rows(&run.join("test_report.csv")).into_iter().map(|r| r[0].clone()).collect();
    assert_eq!(report_rows, ["cat", "dog", "owl", "accuracy", "macro avg", "weighted avg"]);
    assert_eq!(csv_header(&run.join("confusion_test.csv")), ["true\\predicted", "cat", "dog", "owl"]);
    let confusion = csv_rows(&run.join("confusion_test.csv"));
    let total: usize = confusion.iter().flat_map(|r| r[1..].iter()).map(|c| c.parse::<usize>().unwrap()).sum();
    assert_eq!(total, 12);

    let report = read(&run.join("report.md"));
    for section in ["# tiny", "## Results", "## Data", "## Training", "## Test classification report", "charts/confusion_test.svg"] {
        assert!(report.contains(section), "report.md lacks {section}");
    }

    // `brasa report` rebuilds the same documents and charts from the folder alone
    let rebuilt_files = ["report.md", "report.html", "charts/loss.svg", "charts/confusion_test.svg", "charts/class_distribution.svg"];
    let before: Vec<String> = rebuilt_files.iter().map(|f| read(&run.join(f))).collect();
    for file in rebuilt_files {
        std::fs::remove_file(run.join(file)).unwrap();
    }
    let output = run_in(dir.path(), &["report", "run"]);
    assert_success(&output);
    let after: Vec<String> = rebuilt_files.iter().map(|f| read(&run.join(f))).collect();
    assert!(before == after, "brasa report rebuilt different files");

    // a finished run is not silently overwritten
    let output = run_in(dir.path(), &["run", "spec.toml", "--out", "run"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("holds a finished run"), "{}", stderr(&output));
}

#[test]
fn corrupt_image_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    write_image_folder(&dir.path().join("data"), 6, 2, 16);
    std::fs::write(dir.path().join("data/train/dog/broken.jpg"), b"this is not a jpeg").unwrap();
    std::fs::write(dir.path().join("spec.toml"), tiny_spec("broken", "data", 1)).unwrap();
    let output = run_in(dir.path(), &["run", "spec.toml", "--out", "run", "--quiet"]);
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("broken.jpg"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn report_on_a_folder_that_is_not_a_run_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_in(dir.path(), &["report", "."]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("not a brasa run folder"), "{}", stderr(&output));
}

/// Serves `body` for `GET /archive.zip` and 404 for anything else, until the test ends.
fn serve(body: Vec<u8>) -> u16 {
    common::serve_http(move |request| {
        let found = request.starts_with("GET /archive.zip ");
        let (status, payload): (&str, &[u8]) = if found { ("200 OK", &body) } else { ("404 Not Found", b"not here") };
        let mut response = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/zip\r\nConnection: close\r\n\r\n",
            payload.len()
        )
        .into_bytes();
        response.extend_from_slice(payload);
        response
    })
}

/// A zip of `folder` with every entry under `top/`, as GitHub archives are laid out.
fn zip_folder(folder: &Path, top: &str) -> Vec<u8> {
    let mut buffer = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut buffer);
        let options = zip::write::SimpleFileOptions::default();
        zip.add_directory(format!("{top}/"), options).unwrap();
        for entry in walkdir::WalkDir::new(folder).sort_by_file_name() {
            let entry = entry.unwrap();
            let relative = entry.path().strip_prefix(folder).unwrap();
            if relative.as_os_str().is_empty() {
                continue;
            }
            let name = format!("{top}/{}", relative.display());
            if entry.file_type().is_dir() {
                zip.add_directory(format!("{name}/"), options).unwrap();
            } else {
                zip.start_file(name, options).unwrap();
                zip.write_all(&std::fs::read(entry.path()).unwrap()).unwrap();
            }
        }
        zip.finish().unwrap();
    }
    buffer.into_inner()
}

#[test]
fn missing_data_is_downloaded_extracted_and_checked() {
    let source = tempfile::tempdir().unwrap();
    write_image_folder(source.path(), 8, 2, 16);
    let port = serve(zip_folder(source.path(), "dataset-master"));

    let dir = tempfile::tempdir().unwrap();
    let expect = "\n[data.expect.train]\ncat = 8\ndog = 8\nowl = 8\n[data.expect.test]\ncat = 2\n";
    let spec = tiny_spec("fetched", "downloads/tiny", 1).replace(
        "test = \"test\"\n",
        &format!("test = \"test\"\nsource = \"http://127.0.0.1:{port}/archive.zip\"\n{expect}"),
    );
    std::fs::write(dir.path().join("spec.toml"), &spec).unwrap();

    // validate does not download, it says what run will do
    let output = run_in(dir.path(), &["validate", "spec.toml"]);
    assert_success(&output);
    assert!(stdout(&output).contains("`brasa run` downloads it"), "{}", stdout(&output));
    assert!(!dir.path().join("downloads/tiny").exists());

    let output = run_in(dir.path(), &["run", "spec.toml", "--out", "run"]);
    assert_success(&output);
    assert!(stderr(&output).contains("downloading"), "{}", stderr(&output));
    let root = dir.path().join("downloads/tiny");
    assert!(root.join("train/cat/cat_000.png").is_file(), "the archive's top folder is stripped");
    assert_eq!(std::fs::read_dir(root.join("test/owl")).unwrap().count(), 2);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("downloads")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1, "no temporary files are left: {leftovers:?}");

    // counts that do not match data.expect are an error naming the class
    std::fs::write(dir.path().join("spec.toml"), spec.replace("dog = 8", "dog = 9")).unwrap();
    let output = run_in(dir.path(), &["run", "spec.toml", "--out", "run2"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("train/dog: 8 images, expected 9"), "{}", stderr(&output));

    // a URL that fails is an error naming it, and leaves no data folder behind
    let bad = spec.replace("/archive.zip", "/missing.zip").replace("downloads/tiny", "downloads/other");
    std::fs::write(dir.path().join("spec.toml"), bad).unwrap();
    let output = run_in(dir.path(), &["run", "spec.toml", "--out", "run3"]);
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("download of http://127.0.0.1") && err.contains("missing.zip"), "{err}");
    assert!(!dir.path().join("downloads/other").exists());
}

#[test]
fn killed_run_resumes_from_its_last_epoch_and_matches_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    write_image_folder(&dir.path().join("data"), 16, 3, 24);
    let epochs = 12;
    std::fs::write(dir.path().join("spec.toml"), tiny_spec("resume", "data", epochs)).unwrap();

    let mut child = common::brasa()
        .current_dir(dir.path())
        .args(["run", "spec.toml", "--out", "killed", "--quiet"])
        .spawn()
        .unwrap();
    let state = dir.path().join("killed/checkpoints/state.json");
    let started = Instant::now();
    while !state.exists() {
        assert!(started.elapsed() < Duration::from_secs(120), "no checkpoint after 2 minutes");
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be interrupted");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let meta: serde_json::Value = serde_json::from_str(&read(&dir.path().join("killed/meta.json"))).unwrap();
    assert_eq!(meta["status"], "running");
    let done: serde_json::Value = serde_json::from_str(&read(&state)).unwrap();
    let done = done["train"]["epochs_done"].as_u64().unwrap();
    assert!((1..epochs as u64).contains(&done), "interrupted after epoch {done}");

    let output = run_in(dir.path(), &["run", "spec.toml", "--out", "killed"]);
    assert_success(&output);
    assert!(stderr(&output).contains(&format!("resuming after epoch {done}")), "{}", stderr(&output));
    let epochs_rows = csv_rows(&dir.path().join("killed/epochs.csv"));
    let numbers: Vec<usize> = epochs_rows.iter().map(|r| r[0].parse().unwrap()).collect();
    assert_eq!(numbers, (1..=epochs).collect::<Vec<_>>());
    let steps: Vec<usize> = csv_rows(&dir.path().join("killed/steps.csv")).iter().map(|r| r[0].parse().unwrap()).collect();
    assert_eq!(steps, (1..=steps.len()).collect::<Vec<_>>());
    let meta: serde_json::Value = serde_json::from_str(&read(&dir.path().join("killed/meta.json"))).unwrap();
    assert_eq!(meta["resumed"], 1);

    // the same spec run without interruption gives the same predictions
    let output = run_in(dir.path(), &["run", "spec.toml", "--out", "straight", "--quiet"]);
    assert_success(&output);
    assert_eq!(
        read(&dir.path().join("killed/test_predictions.csv")),
        read(&dir.path().join("straight/test_predictions.csv")),
        "a resumed run must end where an uninterrupted one does"
    );
}
