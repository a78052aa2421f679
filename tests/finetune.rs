//! The reference's fine-tuning experiments run for a few steps on fixture weights, `brasa
//! predict` with a run and with checkpoints from the Hugging Face cache or a (local) Hub.

mod common;

use common::brasa::{Brasa, TestDir};
use common::hf::fixture;
use common::{csv_header, csv_rows, read_json, repo_path};

/// `experiment` for two steps with the fixture checkpoint `weights` on `dir`'s `data` folder.
fn finetune(dir: &TestDir, experiment: &str, weights: &str) -> Brasa {
    let quoted = |path: std::path::PathBuf| format!("{:?}", path.display().to_string());
    dir.brasa(["run", &repo_path(experiment).display().to_string(), "--out", "run"]).args([
        "--set", &format!("model.pretrained={}", quoted(fixture(weights))),
        "--set", &format!("data.root={}", quoted(dir.path().join("data"))),
        "--set", "data.train=\"train\"", "--set", "data.test=\"test\"",
        "--set", "train.max_steps=2", "--set", "train.batch_size=4", "--set", "train.eval_batch_size=8",
    ])
}

#[test]
fn cvt13_finetune_runs_on_fixture_weights_and_predicts() {
    let dir = TestDir::new().images("data", 6, 2, 20);
    finetune(&dir, "experiments/cvt13-finetune.toml", "hf/cvt-small")
        // the fixture has 4 labels, the data 3 classes: a new classifier
        .stderr_contains("loaded 201 tensors; new 2 (classifier.bias, classifier.weight); ignored 20 (classifier.bias, num_batches_tracked x18, classifier.weight)")
        .stderr_contains("classifier is replaced")
        .succeeds();
    let run = dir.path().join("run");
    assert_eq!(csv_rows(&run.join("steps.csv")).len(), 2);
    let meta = read_json(&run.join("meta.json"));
    assert_eq!(meta["model"]["import"]["new"], serde_json::json!(["classifier.bias", "classifier.weight"]));
    assert_eq!(meta["model"]["config"]["family"], "cvt");
    assert_eq!(meta["model"]["config"]["embed_dim"], serde_json::json!([16, 32, 48]));
    assert_eq!(meta["preprocess"]["recipe"]["center_crop"], serde_json::json!([224, 224]));

    // brasa predict with the run's best checkpoint
    let csv = dir.brasa(["predict", "--run", "run", "data/test", "--quiet"]).succeeds().stdout;
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("path,predicted,cat,dog,owl"));
    assert_eq!(lines.count(), 6);
    dir.brasa(["predict", "--run", "run", "data/test/cat", "--out", "cats.csv", "--quiet"]).succeeds();
    assert_eq!(csv_header(&dir.path().join("cats.csv")), ["path", "predicted", "cat", "dog", "owl"]);
    assert_eq!(csv_rows(&dir.path().join("cats.csv")).len(), 2);
}

#[test]
fn vit_b16_finetune_runs_on_fixture_weights() {
    let dir = TestDir::new().images("data", 6, 2, 20);
    finetune(&dir, "experiments/vit-b16-finetune.toml", "hf/vit-small")
        // same labels (cat, dog, owl): every tensor is loaded, the positions are interpolated to 224
        .stderr_contains("loaded 40 tensors; new 0; ignored 0")
        .stderr_contains("position embeddings interpolated from 32x32 to 224x224")
        .succeeds();
    assert_eq!(csv_rows(&dir.path().join("run/steps.csv")).len(), 2);
}

#[test]
fn unreadable_images_and_missing_inputs_are_errors() {
    let dir = TestDir::new().file("broken.png", "not a png");
    let weights = fixture("hf/vit-small").display().to_string();
    dir.brasa(["predict", "--pretrained", &weights, "broken.png"]).stderr_contains("broken.png").fails();
    dir.brasa(["predict", "--pretrained", &weights, "nowhere"]).stderr_contains("nowhere does not exist").output();
}

/// A folder with one picture, `IMAGE`.
fn one_image() -> TestDir {
    TestDir::new().images("images", 1, 0, 16)
}

const IMAGE: &str = "images/train/cat/cat_000.png";

#[test]
fn hub_ids_resolve_from_the_local_cache_and_respect_offline_mode() {
    let dir = one_image();
    let cache = dir.path().join("cache");
    let snapshot = cache.join("models--brasa--vit-small/snapshots/0123abcd");
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(cache.join("models--brasa--vit-small/refs")).unwrap();
    std::fs::write(cache.join("models--brasa--vit-small/refs/main"), "0123abcd").unwrap();
    for file in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture("hf/vit-small").join(file), snapshot.join(file)).unwrap();
    }
    let offline = |model: &str| {
        dir.brasa(["predict", "--pretrained", model, IMAGE]).env("HF_HUB_CACHE", &cache).env("HF_HUB_OFFLINE", "1")
    };
    let printed = offline("hf:brasa/vit-small").succeeds().stdout;
    assert!(printed.starts_with("path,predicted,cat,dog,owl\n"), "{printed}");

    offline("hf:brasa/missing")
        .stderr_contains("hf:brasa/missing is not in the Hugging Face cache")
        .stderr_contains("HF_HUB_OFFLINE")
        .fails();
}
#[test]
fn hub_ids_download_into_the_cache_from_the_endpoint() {
    let dir = one_image();
    // a minimal Hub: `/<repo>/resolve/<revision>/<file>` with the commit header hf-hub reads
    let files = ["config.json", "model.safetensors"]
        .map(|f| (format!("/brasa/vit-small/resolve/main/{f}"), std::fs::read(fixture("hf/vit-small").join(f)).unwrap()));
    let port = common::http::serve(files.into(), &[("x-repo-commit", "feedc0de")]);
    let cache = dir.path().join("cache");
    let printed = dir
        .brasa(["predict", "--pretrained", "hf:brasa/vit-small", IMAGE])
        .env("HF_HUB_CACHE", &cache)
        .env("HF_ENDPOINT", format!("http://127.0.0.1:{port}"))
        .env_remove("HF_HUB_OFFLINE")
        .succeeds()
        .stdout;
    assert!(printed.starts_with("path,predicted,cat,dog,owl\n"), "{printed}");
    let snapshot = cache.join("models--brasa--vit-small/snapshots/feedc0de");
    assert!(snapshot.join("model.safetensors").exists() && snapshot.join("config.json").exists());
    assert_eq!(std::fs::read_to_string(cache.join("models--brasa--vit-small/refs/main")).unwrap().trim(), "feedc0de");
}
