//! Resuming refuses what changed: a run folder holding an unfinished run is resumed only by the
//! same resolved spec, class list and data (paths, parts and pixels), unless `--force-resume`
//! names the risk; a finished run is never resumed, forced or not. `--out` never writes into a
//! folder of other files, but resumes a run stopped before it wrote its meta.json.

mod common;

use common::brasa::TestDir;
use common::{read, read_json};
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

#[test]
fn out_refuses_a_folder_of_other_files_but_resumes_a_run_stopped_before_its_meta() {
    let spec = TinySpec::new("resume", "data", 1);
    let dir = TestDir::new()
        .images("data", 6, 2, 16)
        .spec(&spec)
        .file("sweep.toml", format!("{spec}\n[sweep]\nmode = \"grid\"\n\"experiment.seed\" = [1]\n"))
        .file("mine/notes.txt", "my notes")
        .file("a-sweep/sweep.toml", "# a sweep\n")
        .file("a-sweep/report.md", "# the sweep's report\n");
    let user_spec = read(&dir.path().join("spec.toml"));

    // beside the user's own spec, in a folder of theirs, in a sweep folder: nothing is written
    let ran = dir.brasa(["run", "spec.toml", "--out", "."]).exits_with(5);
    assert!(ran.stderr.contains("is not empty and holds no brasa run") && ran.stderr.contains("spec.toml"), "{ran}");
    assert_eq!(read(&dir.path().join("spec.toml")), user_spec);
    assert!(!dir.path().join(".lock").exists(), "not even a lock");
    dir.brasa(["run", "spec.toml", "--out", "mine"]).stderr_contains("notes.txt").exits_with(5);
    dir.brasa(["run", "spec.toml", "--out", "a-sweep"]).stderr_contains("report.md").exits_with(5);
    assert_eq!(read(&dir.path().join("a-sweep/report.md")), "# the sweep's report\n");

    // a sweep into a run folder, or into a folder of the user's
    dir.brasa(["run", "spec.toml", "--out", "run", "--quiet"]).succeeds();
    dir.brasa(["run", "sweep.toml", "--out", "run"]).stderr_contains("holds no brasa sweep").exits_with(5);
    dir.brasa(["run", "sweep.toml", "--out", "mine", "--trial", "1"]).stderr_contains("holds no brasa sweep").exits_with(5);
    assert!(!dir.path().join("mine/trial-01").exists());

    // a run stopped before it wrote meta.json left its lock, its empty folders, its spec and
    // tables, and a temporary file: resumed
    let early = TestDir::new()
        .images("data", 6, 2, 16)
        .spec(&spec)
        .file("run/.lock", "brasa pid 1 on a node since 2026-01-01T00:00:00Z")
        .file("run/spec.toml", &user_spec)
        .file("run/split.csv", "path,class,split\n")
        .file("run/duplicates.csv", "")
        .file("run/.tmpAb12Cd", "");
    for folder in ["checkpoints", "charts"] {
        std::fs::create_dir_all(early.path().join("run").join(folder)).unwrap();
    }
    early.brasa(["run", "spec.toml", "--out", "run", "--quiet"]).succeeds();
    assert_eq!(read_json(&early.path().join("run/meta.json"))["status"], "complete");
}

/// A run interrupted after step 6 of its first epoch (9 steps an epoch), in folder `out`.
fn interrupted(dir: &TestDir, out: &str) {
    let ran = dir.brasa(["run", "spec.toml", "--out", out]).env("BRASA_INTERRUPT_AT", "step:6:term").output();
    assert_eq!(ran.status.code(), Some(130), "{ran}");
}

/// Files damaged from outside are refused by name, with the exit code of a damaged run folder
/// (5): a `steps.csv` missing rows up to the checkpoint (resumed, it would leave a gap in the
/// finished run's steps), and a missing optimizer checkpoint (said missing, not "written for
/// another model").
#[test]
fn a_resume_refuses_a_steps_csv_with_a_gap_and_says_a_missing_optimizer_state_is_missing() {
    let dir = TestDir::new().images("data", 16, 3, 20).spec(&TinySpec::new("damaged", "data", 2));
    interrupted(&dir, "cut");
    let steps = dir.path().join("cut/steps.csv");
    let kept: Vec<String> = read(&steps).lines().take(4).map(|l| format!("{l}\n")).collect();
    std::fs::write(&steps, kept.concat()).unwrap();
    let refused = dir.brasa(["run", "spec.toml", "--out", "cut"]).exits_with(5);
    assert!(refused.stderr.contains("steps.csv is damaged") && refused.stderr.contains("step 4 is missing"), "{refused}");

    interrupted(&dir, "optim");
    let state = read_json(&dir.path().join("optim/checkpoints/state.json"));
    let optimizer = state["last_optimizer"].as_str().unwrap().to_string();
    std::fs::remove_file(dir.path().join("optim/checkpoints").join(&optimizer)).unwrap();
    let refused = dir.brasa(["run", "spec.toml", "--out", "optim"]).exits_with(5);
    assert!(refused.stderr.contains(&format!("checkpoints/{optimizer} is missing")), "{refused}");
    assert!(!refused.stderr.contains("written for another model"), "{refused}");
}
