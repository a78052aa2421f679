//! Image files that cannot be read: `data.unreadable = "error"` stops a run before training with
//! every such file listed, `"skip"` leaves them out (the split is then the one of the folder
//! without them) and says so in `split.csv`, `meta.json` and the report; `brasa predict` writes
//! a row per readable image.

mod common;

use common::brasa::TestDir;
use common::spec::TinySpec;
use common::{csv_rows, read, read_json};

/// Bad files: an empty `.jpg` among the training cats, a truncated PNG among the test owls.
const BAD: [&str; 2] = ["data/train/cat/empty.jpg", "data/test/owl/truncated.png"];

fn folder_with_bad_files() -> TestDir {
    let dir = TestDir::new().images("data", 8, 2, 16);
    let png = std::fs::read(dir.path().join("data/test/owl/owl_000.png")).unwrap();
    dir.file(BAD[0], b"").file(BAD[1], &png[..png.len() / 2]).spec(&TinySpec::new("bad", "data", 1).insert("train.max_steps", 2))
}

#[test]
fn unreadable_files_stop_the_run_with_the_full_list_and_the_hint() {
    let dir = folder_with_bad_files();
    let ran = dir.brasa(["run", "spec.toml", "--out", "run"]).exits_with(3);
    let err = &ran.stderr;
    assert!(err.contains("2 image file(s) of the dataset cannot be read (cat 1, owl 1)"), "{err}");
    assert!(err.contains("empty.jpg") && err.contains("truncated.png"), "{err}");
    assert!(err.contains("data.unreadable = \"skip\""), "{err}");
    assert!(err.contains("unreadable.txt"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let list = read(&dir.path().join("run/unreadable.txt"));
    assert_eq!(list.lines().count(), 2, "{list}");
    assert!(list.contains("empty.jpg: ") && list.contains("truncated.png: "), "{list}");
    assert!(!dir.path().join("run/meta.json").exists(), "nothing trained");
}

#[test]
fn skip_leaves_them_out_as_if_they_were_not_there_and_says_so() {
    let dir = folder_with_bad_files();
    let ran = dir.brasa(["run", "spec.toml", "--out", "skipped", "--set", "data.unreadable=skip"]).succeeds();
    assert!(ran.stderr.contains("data.unreadable = skip: leaving out 2 image file(s) that cannot be read (cat 1, owl 1)"), "{}", ran.stderr);

    let rows = csv_rows(&dir.path().join("skipped/split.csv"));
    let skipped: Vec<&Vec<String>> = rows.iter().filter(|r| r[2] == "skipped").collect();
    assert_eq!(skipped.len(), 2, "{rows:?}");
    assert!(skipped.iter().all(|r| r[3].is_empty() && r[4].is_empty()), "no size for a file that cannot be read: {skipped:?}");
    let meta = read_json(&dir.path().join("skipped/meta.json"));
    let unreadable = meta["unreadable"].as_array().unwrap();
    assert_eq!(unreadable.len(), 2);
    assert_eq!((unreadable[0]["class"].as_str(), unreadable[0]["folder"].as_str()), (Some("cat"), Some("train")));
    assert_eq!((unreadable[1]["class"].as_str(), unreadable[1]["folder"].as_str()), (Some("owl"), Some("test")));
    let report = read(&dir.path().join("skipped/report.md"));
    assert!(report.contains("2 image file(s) cannot be read and were left out"), "the data section says so");
    assert!(report.contains("cat 1, owl 1; 1 from the training folder, 1 from the test folder"), "and a finding");
    assert!(read(&dir.path().join("skipped/report.html")).contains("cannot be read and were left out"));

    // the same run on the folder without those files: the same split, the same predictions
    for bad in BAD {
        std::fs::remove_file(dir.path().join(bad)).unwrap();
    }
    dir.brasa(["run", "spec.toml", "--out", "clean"]).succeeds();
    let clean = csv_rows(&dir.path().join("clean/split.csv"));
    let kept: Vec<Vec<String>> = rows.into_iter().filter(|r| r[2] != "skipped").collect();
    assert_eq!(kept, clean);
    assert_eq!(read(&dir.path().join("skipped/test_predictions.csv")), read(&dir.path().join("clean/test_predictions.csv")));
}

#[test]
fn predict_writes_a_row_per_readable_image_and_fails_only_when_none_can_be_read() {
    let dir = folder_with_bad_files();
    dir.brasa(["run", "spec.toml", "--out", "run", "--set", "data.unreadable=skip", "--quiet"]).succeeds();
    let ran = dir.brasa(["predict", "--run", "run", "data/test/owl", "--quiet"]).succeeds();
    assert!(ran.stderr.contains("cannot read") && ran.stderr.contains("truncated.png"), "{}", ran.stderr);
    assert!(ran.stderr.contains("1 of 3 image(s) cannot be read"), "{}", ran.stderr);
    let lines: Vec<&str> = ran.stdout.lines().collect();
    assert_eq!(lines.len(), 1 + 2, "a header and the two readable owls:\n{}", ran.stdout);
    assert!(!ran.stdout.contains("truncated.png"));

    let ran = dir.brasa(["predict", "--run", "run", BAD[1], BAD[0], "--quiet"]).exits_with(3);
    assert!(ran.stderr.contains("none of the 2 image file(s) can be read"), "{}", ran.stderr);
    assert!(ran.stdout.is_empty());
}

#[test]
fn skipping_every_image_of_a_class_is_an_error_not_a_run_without_it() {
    let dir = TestDir::new().images("data", 8, 2, 16);
    let cats = dir.path().join("data/train/cat");
    for entry in std::fs::read_dir(&cats).unwrap() {
        std::fs::write(entry.unwrap().path(), b"").unwrap();
    }
    let dir = dir.spec(&TinySpec::new("bad", "data", 1).insert("train.max_steps", 2));
    let ran = dir.brasa(["run", "spec.toml", "--out", "run", "--set", "data.unreadable=skip"]).exits_with(3);
    let err = &ran.stderr;
    assert!(err.contains("class `cat` has no images left after data.unreadable = \"skip\" left out"), "{err}");
    assert!(!err.contains("panicked") && !dir.path().join("run/meta.json").exists(), "{err}");
}
