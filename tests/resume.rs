//! Resuming refuses what changed: a run folder holding an unfinished run is resumed only by the
//! same resolved spec, class list and data (paths, parts and pixels), unless `--force-resume`
//! names the risk; a finished run is never resumed, forced or not.

mod common;

use common::brasa::TestDir;
use common::read_json;
use common::spec::TinySpec;

/// Marks the finished run in `run` as interrupted, as a killed run leaves its folder.
fn unfinish(dir: &TestDir, run: &str) {
    let path = dir.path().join(run).join("meta.json");
    let mut meta = read_json(&path);
    meta["status"] = "running".into();
    std::fs::write(&path, serde_json::to_string_pretty(&meta).unwrap()).unwrap();
}

#[test]
fn a_resume_with_another_spec_classes_or_data_says_what_differs_and_force_resume_goes_on() {
    let dir = TestDir::new().images("data", 6, 2, 16).spec(&TinySpec::new("resume", "data", 1));
    dir.brasa(["run", "spec.toml", "--out", "run", "--quiet"]).succeeds();
    assert!(read_json(&dir.path().join("run/meta.json"))["data_fingerprint"].is_string());
    // a finished run: never resumed, forced or not
    dir.brasa(["run", "spec.toml", "--out", "run", "--force-resume"]).stderr_contains("holds a finished run").exits_with(5);
    unfinish(&dir, "run");

    // another value of a key
    let ran = dir.brasa(["run", "spec.toml", "--out", "run", "--set", "train.optimizer.lr=0.003"]).exits_with(5);
    assert!(ran.stderr.contains("holds an unfinished run of a different spec or data"), "{}", ran.stderr);
    assert!(ran.stderr.contains("train.optimizer.lr: 0.002 → 0.003"), "{}", ran.stderr);
    assert!(ran.stderr.contains("--force-resume"), "{}", ran.stderr);
    // the runtime is not part of a run's identity
    dir.brasa(["validate", "spec.toml", "--set", "runtime.threads=1"]).succeeds();

    // a file more in the training folder
    let png = std::fs::read(dir.path().join("data/train/cat/cat_000.png")).unwrap();
    let extra = dir.path().join("data/train/cat/extra.png");
    std::fs::write(&extra, &png).unwrap();
    dir.brasa(["run", "spec.toml", "--out", "run"]).stderr_contains("data: 1 image(s) added, e.g. ").stderr_contains("extra.png").exits_with(5);
    std::fs::remove_file(&extra).unwrap();

    // another class
    std::fs::create_dir_all(dir.path().join("data/train/yak")).unwrap();
    for i in 0..4 {
        std::fs::write(dir.path().join(format!("data/train/yak/{i}.png")), &png).unwrap();
    }
    dir.brasa(["run", "spec.toml", "--out", "run"]).stderr_contains("classes: [cat, dog, owl] → [cat, dog, owl, yak]").exits_with(5);
    std::fs::remove_dir_all(dir.path().join("data/train/yak")).unwrap();

    // the same files with other pixels
    let dog = std::fs::read(dir.path().join("data/train/dog/dog_001.png")).unwrap();
    std::fs::write(dir.path().join("data/train/cat/cat_001.png"), &dog).unwrap();
    dir.brasa(["run", "spec.toml", "--out", "run"]).stderr_contains("the pixels of some changed").exits_with(5);
    assert_eq!(read_json(&dir.path().join("run/meta.json"))["status"], "running", "a refused resume leaves the folder as it was");

    // forced: said, and done
    let ran = dir.brasa(["run", "spec.toml", "--out", "run", "--force-resume"]).succeeds();
    assert!(ran.stderr.contains("warning: --force-resume: resuming") && ran.stderr.contains("the pixels of some changed"), "{}", ran.stderr);
    assert_eq!(read_json(&dir.path().join("run/meta.json"))["status"], "complete");
}
