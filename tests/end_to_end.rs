//! `brasa run` end to end on small image folders the tests write: every artifact and its
//! columns, `brasa report` rebuilding the same report, downloading the data from a local HTTP
//! server, and resuming a killed run.

mod common;

use std::io::Write;
use std::path::Path;

use common::brasa::TestDir;
use common::images::{self, CLASSES};
use common::spec::TinySpec;
use common::{csv_header, csv_rows, read, read_json};

#[test]
fn run_writes_every_artifact_and_report_rebuilds_it() {
    let dir = TestDir::new().images("data", 12, 4, 20).spec(&TinySpec::new("tiny", "data", 2));
    let ran = dir
        .brasa(["run", "spec.toml", "--out", "run"])
        .stdout_contains("test accuracy:")
        .stderr_contains("epoch  2/2")
        .succeeds();
    let log = &ran.stderr;
    let logged = |tokens: &[&str]| log.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == tokens);
    assert!(logged(&["cat", "9", "3", "4"]) && logged(&["total", "27", "9", "12"]), "split counts are logged:\n{log}");

    let run = dir.path().join("run");
    for file in [
        "spec.toml", "meta.json", "split.csv", "epochs.csv", "steps.csv", "val_predictions.csv", "test_predictions.csv",
        "val_report.csv", "test_report.csv", "confusion_val.csv", "confusion_test.csv", "checkpoints/state.json",
        "charts/class_distribution_train.svg", "charts/class_distribution_val.svg", "charts/class_distribution_test.svg",
        "charts/loss.svg", "charts/metrics.svg", "charts/learning_rate.svg", "charts/grad_norm.svg",
        "charts/confusion_test.svg", "charts/confusion_val.svg", "charts/predictions_test.svg", "report.md", "report.html",
        "duplicates.csv", "attention.json", "charts/attention_test.svg", "charts/mistakes_test.svg",
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

    let meta = read_json(&run.join("meta.json"));
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

    assert_eq!(csv_header(&run.join("split.csv")), ["path", "class", "split", "width", "height"]);
    let sizes: Vec<(String, String)> = csv_rows(&run.join("split.csv")).into_iter().map(|r| (r[3].clone(), r[4].clone())).collect();
    assert_eq!(sizes.len(), 48);
    assert!(sizes.iter().all(|(w, h)| ["20", "21", "22"].contains(&w.as_str()) && h == "20"), "{sizes:?}");
    assert_eq!(csv_header(&run.join("duplicates.csv")), ["group", "kind", "split", "class", "path"]);
    let attention = read_json(&run.join("attention.json"));
    let maps = attention.as_array().unwrap();
    assert_eq!(maps.len(), 4, "[report] attention_maps defaults to 4");
    for entry in maps {
        let map = &entry["map"];
        assert_eq!(map["method"], "cls-attention");
        let cells = map["height"].as_u64().unwrap() * map["width"].as_u64().unwrap();
        assert_eq!(map["values"].as_array().unwrap().len() as u64, cells);
        assert!(CLASSES.contains(&entry["label"].as_str().unwrap()) && CLASSES.contains(&entry["prediction"].as_str().unwrap()));
    }

    let report = read(&run.join("report.md"));
    for section in [
        "# tiny", "## Findings", "## Results", "## Data", "## Dataset audit", "## Training", "## Validation classification report",
        "## Test classification report", "## Test predictions", "## Most confident mistakes", "## Attention maps", "charts/confusion_test.svg",
        "charts/class_distribution_test.svg", "Row-normalised", "| train | 27 | 3 | 20 / 21 / 22 | 20 / 20 / 20 |",
    ] {
        assert!(report.contains(section), "report.md lacks {section}:\n{report}");
    }
    // every chart the markdown links is there, relative to the run folder
    for link in report.split("](").skip(1).filter_map(|rest| rest.split(')').next()).filter(|l| l.starts_with("charts/")) {
        assert!(run.join(link).is_file(), "report.md links {link}, which is missing");
    }

    // `brasa report` rebuilds the same documents and charts from the folder alone
    let rebuilt_files = ["report.md", "report.html", "charts/loss.svg", "charts/confusion_test.svg", "charts/class_distribution_train.svg", "charts/predictions_test.svg"];
    let before: Vec<String> = rebuilt_files.iter().map(|f| read(&run.join(f))).collect();
    for file in rebuilt_files {
        std::fs::remove_file(run.join(file)).unwrap();
    }
    dir.brasa(["report", "run"]).succeeds();
    let after: Vec<String> = rebuilt_files.iter().map(|f| read(&run.join(f))).collect();
    assert!(before == after, "brasa report rebuilt different files");

    // a finished run is not silently overwritten
    dir.brasa(["run", "spec.toml", "--out", "run"]).stderr_contains("holds a finished run").fails();
}

#[test]
fn corrupt_image_is_an_error_naming_the_file() {
    let dir = TestDir::new()
        .images("data", 6, 2, 16)
        .file("data/train/dog/broken.jpg", "this is not a jpeg")
        .spec(&TinySpec::new("broken", "data", 1));
    let ran = dir.brasa(["run", "spec.toml", "--out", "run", "--quiet"]).stderr_contains("broken.jpg").fails();
    assert!(!ran.stderr.contains("panicked"), "{}", ran.stderr);
}

#[test]
fn report_on_a_folder_that_is_not_a_run_is_an_error() {
    TestDir::new().brasa(["report", "."]).stderr_contains("not a brasa run folder").fails();
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
    let source = TestDir::new().images("dataset", 8, 2, 16);
    let port = common::http::serve(vec![("/archive.zip".into(), zip_folder(&source.path().join("dataset"), "dataset-master"))], &[]);

    let spec = TinySpec::new("fetched", "downloads/tiny", 1)
        .insert("data.source", format!("http://127.0.0.1:{port}/archive.zip"))
        .insert("data.expect", toml::toml! { train = { cat = 8, dog = 8, owl = 8 } test = { cat = 2 } });
    let dir = TestDir::new().spec(&spec);

    // validate does not download, it says what run will do
    dir.brasa(["validate", "spec.toml"]).stdout_contains("`brasa run` downloads it").succeeds();
    assert!(!dir.path().join("downloads/tiny").exists());

    dir.brasa(["run", "spec.toml", "--out", "run"]).stderr_contains("downloading").succeeds();
    let root = dir.path().join("downloads/tiny");
    assert!(root.join("train/cat/cat_000.png").is_file(), "the archive's top folder is stripped");
    assert_eq!(std::fs::read_dir(root.join("test/owl")).unwrap().count(), 2);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("downloads")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1, "no temporary files are left: {leftovers:?}");

    // counts that do not match data.expect are an error naming the class
    spec.clone().set("data.expect.train.dog", 9).write(&dir.path().join("spec.toml"));
    dir.brasa(["run", "spec.toml", "--out", "run2"]).stderr_contains("train/dog: 8 images, expected 9").fails();

    // a URL that fails is an error naming it, and leaves no data folder behind
    let bad = spec.set("data.source", format!("http://127.0.0.1:{port}/missing.zip")).set("data.root", "downloads/other");
    bad.write(&dir.path().join("spec.toml"));
    let err = dir.brasa(["run", "spec.toml", "--out", "run3"]).fails().stderr;
    assert!(err.contains("download of http://127.0.0.1") && err.contains("missing.zip"), "{err}");
    assert!(!dir.path().join("downloads/other").exists());
}

#[test]
fn killed_run_resumes_from_its_last_epoch_and_matches_an_uninterrupted_run() {
    let epochs = 12;
    let dir = TestDir::new().images("data", 16, 3, 24).spec(&TinySpec::new("resume", "data", epochs));

    let state = dir.path().join("killed/checkpoints/state.json");
    dir.brasa(["run", "spec.toml", "--out", "killed", "--quiet"]).kill_once_written(&state);
    assert_eq!(read_json(&dir.path().join("killed/meta.json"))["status"], "running");
    let done = read_json(&state)["train"]["epochs_done"].as_u64().unwrap();
    assert!((1..epochs as u64).contains(&done), "interrupted after epoch {done}");

    dir.brasa(["run", "spec.toml", "--out", "killed"]).stderr_contains(format!("resuming after epoch {done}")).succeeds();
    let epochs_rows = csv_rows(&dir.path().join("killed/epochs.csv"));
    let numbers: Vec<usize> = epochs_rows.iter().map(|r| r[0].parse().unwrap()).collect();
    assert_eq!(numbers, (1..=epochs).collect::<Vec<_>>());
    let steps: Vec<usize> = csv_rows(&dir.path().join("killed/steps.csv")).iter().map(|r| r[0].parse().unwrap()).collect();
    assert_eq!(steps, (1..=steps.len()).collect::<Vec<_>>());
    assert_eq!(read_json(&dir.path().join("killed/meta.json"))["resumed"], 1);

    // the same spec run without interruption gives the same predictions
    dir.brasa(["run", "spec.toml", "--out", "straight", "--quiet"]).succeeds();
    assert_eq!(
        read(&dir.path().join("killed/test_predictions.csv")),
        read(&dir.path().join("straight/test_predictions.csv")),
        "a resumed run must end where an uninterrupted one does"
    );
}

#[test]
fn validation_results_are_the_best_epochs_own_and_a_second_pass_gives_the_same() {
    let dir = TestDir::new().images("data", 12, 4, 20).spec(&TinySpec::new("kept", "data", 3).insert("train.eval_batch_size", 4));
    dir.brasa(["run", "spec.toml", "--out", "straight", "--quiet"]).succeeds();
    let run = dir.path().join("straight");
    // the best epoch's validation predictions are kept beside its checkpoint, and only those
    let best = read_json(&run.join("meta.json"))["best_epoch"].as_u64().unwrap() as usize;
    let kept = |run: &Path| -> Vec<String> {
        let mut files: Vec<String> = std::fs::read_dir(run.join("checkpoints"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|f| f.ends_with(".val.json"))
            .collect();
        files.sort();
        files
    };
    assert_eq!(kept(&run), [format!("epoch-{best:04}.val.json")]);
    // val_predictions.csv is what that epoch's validation found
    let rows = csv_rows(&run.join("val_predictions.csv"));
    let accuracy = rows.iter().filter(|r| r[1] == r[2]).count() as f64 / rows.len() as f64;
    let header = common::csv_header(&run.join("epochs.csv"));
    let column = header.iter().position(|h| h == "val_accuracy").unwrap();
    let epoch_row = &csv_rows(&run.join("epochs.csv"))[best - 1];
    assert!((epoch_row[column].parse::<f64>().unwrap() - accuracy).abs() < 1e-9, "{epoch_row:?} against {accuracy}");

    // killed in its final evaluation and its kept predictions lost, a run validates the best
    // checkpoint again when resumed, and finds the same
    let killed = dir.brasa(["run", "spec.toml", "--out", "again"]).env("BRASA_INTERRUPT_AT", "test (best):1:kill").output();
    assert!(!killed.status.success(), "{killed}");
    let again = dir.path().join("again");
    for file in kept(&again) {
        std::fs::remove_file(again.join("checkpoints").join(file)).unwrap();
    }
    dir.brasa(["run", "spec.toml", "--out", "again"]).stderr_contains("validating the best checkpoint again").succeeds();
    for file in ["val_predictions.csv", "val_report.csv", "confusion_val.csv", "test_predictions.csv"] {
        assert_eq!(read(&again.join(file)), read(&run.join(file)), "{file}");
    }
}

#[test]
fn templates_can_be_replaced_and_a_missing_variable_is_named() {
    let dir = TestDir::new()
        .images("data", 6, 2, 16)
        .file("my-templates/report.md.j2", "# custom {{ meta.experiment }}: {{ findings | length }} finding(s)\n")
        .spec(&TinySpec::new("custom", "data", 1).insert("report", toml::toml! { templates = "my-templates" }));
    let template = dir.path().join("my-templates/report.md.j2");
    dir.brasa(["run", "spec.toml", "--out", "run"]).succeeds();
    let report = read(&dir.path().join("run/report.md"));
    assert!(report.starts_with("# custom custom: "), "{report}");
    // the HTML template was not replaced: the built-in one rendered
    assert!(read(&dir.path().join("run/report.html")).contains("<h2 id=\"findings\">"));

    std::fs::write(&template, "# {{ meta.experiment }}\n{{ meta.no_such_thing }}\n").unwrap();
    let err = dir.brasa(["report", "run"]).fails().stderr;
    assert!(err.contains("my-templates/report.md.j2") && err.contains("`meta.no_such_thing` is not defined"), "{err}");

    std::fs::write(&template, "{% for part in parts %}{{ part.no_such_field }}{% endfor %}\n").unwrap();
    let err = dir.brasa(["report", "run"]).output().stderr;
    assert!(err.contains("my-templates/report.md.j2, line 1") && err.contains("`part.no_such_field` is not defined"), "{err}");

    // a templates folder that does not exist is a spec error naming the key
    TinySpec::new("custom", "data", 1).insert("report", toml::toml! { templates = "nowhere" }).write(&dir.path().join("bad.toml"));
    let err = dir.brasa(["validate", "bad.toml"]).output().stderr;
    assert!(err.contains("report.templates") && err.contains("is not a folder"), "{err}");
}

#[test]
fn duplicates_are_found_kept_on_one_side_and_leak_free_metrics_reported() {
    let dir = TestDir::new().spec(&TinySpec::new("dups", "data", 1).insert("data.split.group_duplicates", true));
    let data = dir.path().join("data");
    images::distinct_folder(&data, 12, 4);
    // the same pictures under other names: three training images copied into the test folder,
    // and a group of three inside the training folder (re-encoded: identical pixels, other bytes)
    for (i, class) in CLASSES.iter().enumerate() {
        let from = data.join(format!("train/{class}/{class}_{:03}.png", i + 1));
        assert!(from.is_file());
        std::fs::copy(&from, data.join(format!("test/{class}/copy_of_train.png"))).unwrap();
    }
    let source = image::open(data.join("train/cat/cat_005.png")).unwrap();
    for name in ["again_a.png", "again_b.png"] {
        source.save(data.join("train/cat").join(name)).unwrap();
    }
    dir.brasa(["run", "spec.toml", "--out", "run"]).stderr_contains("data.split.group_duplicates moved").succeeds();

    let run = dir.path().join("run");
    let rows = csv_rows(&run.join("duplicates.csv"));
    let side: std::collections::HashMap<String, String> =
        csv_rows(&run.join("split.csv")).into_iter().map(|r| (r[0].clone(), r[2].clone())).collect();
    let mut groups: std::collections::BTreeMap<String, Vec<&Vec<String>>> = Default::default();
    for row in &rows {
        groups.entry(row[0].clone()).or_default().push(row);
        let absolute = data.join(&row[4]);
        assert_eq!(side.get(&absolute.display().to_string()), Some(&row[2]), "split of {} agrees with split.csv", row[4]);
    }
    let exact: Vec<&Vec<&Vec<String>>> = groups.values().filter(|g| g[0][1] == "exact").collect();
    assert!(exact.iter().any(|g| g.len() == 3 && g.iter().any(|r| r[4] == "train/cat/again_a.png")), "{rows:?}");
    for class in CLASSES {
        let copy = format!("test/{class}/copy_of_train.png");
        assert!(exact.iter().any(|g| g.len() == 2 && g.iter().any(|r| r[4] == copy && r[2] == "test")), "{copy} pairs with its original: {rows:?}");
    }
    // group_duplicates: no group has members on both sides of train / validation
    for members in groups.values() {
        let sides: std::collections::BTreeSet<&str> = members.iter().map(|r| r[2].as_str()).filter(|s| *s != "test").collect();
        assert!(sides.len() <= 1, "a group spans train and validation: {members:?}");
    }

    let report = read(&run.join("report.md"));
    assert!(report.contains("| Test, leak-free |"), "{report}");
    assert!(report.contains("## Test classification report, leak-free"));
    assert!(report.contains("have an exact or near duplicate among the training/validation images"), "{report}");
    assert!(report.contains("([Dataset audit](#dataset-audit))"));
    assert!(report.contains("![The largest duplicate groups](charts/duplicates.svg)"));
    let sheet = read(&run.join("charts/duplicates.svg"));
    assert!(sheet.matches("<image ").count() >= 6 && sheet.contains("group 1 (exact)"), "{sheet:.300}");
}

#[test]
fn grouping_that_empties_a_part_is_a_clear_error() {
    // the striped test pictures all look alike: one near-duplicate group holds every image
    let dir = TestDir::new()
        .images("data", 6, 2, 20)
        .spec(&TinySpec::new("grouped", "data", 1).insert("data.split.group_duplicates", true));
    dir.brasa(["run", "spec.toml", "--out", "run"]).stderr_contains("data.split.group_duplicates leaves the validation part empty").fails();
    assert!(!dir.path().join("run").exists(), "nothing is written before the data is usable");
}
