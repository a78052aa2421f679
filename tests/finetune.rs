//! The reference's fine-tuning experiments run for a few steps on fixture weights, `brasa
//! predict` with a run and with checkpoints from the Hugging Face cache or a (local) Hub.

mod common;

use std::path::Path;

use common::{assert_success, brasa, csv_header, csv_rows, fixture, stderr, stdout, write_image_folder};

fn repo(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path).display().to_string()
}

/// Runs `experiment` for two steps on a tiny synthetic folder with the fixture checkpoint `weights`.
fn finetune(dir: &Path, experiment: &str, weights: &str) -> std::process::Output {
    brasa()
        .current_dir(dir)
        .args(["run", &repo(experiment), "--out", "run"])
        .args(["--set", &format!("model.pretrained={:?}", fixture(weights).display().to_string())])
        .args(["--set", &format!("data.root={:?}", dir.join("data").display().to_string())])
        .args(["--set", "data.train=\"train\"", "--set", "data.test=\"test\""])
        .args(["--set", "train.max_steps=2", "--set", "train.batch_size=4", "--set", "train.eval_batch_size=8"])
        .output()
        .unwrap()
}

#[test]
fn cvt13_finetune_runs_on_fixture_weights_and_predicts() {
    let dir = tempfile::tempdir().unwrap();
    write_image_folder(&dir.path().join("data"), 6, 2, 20);
    let output = finetune(dir.path(), "experiments/cvt13-finetune.toml", "hf/cvt-small");
    assert_success(&output);
    let log = stderr(&output);
    // the fixture has 4 labels, the data 3 classes: a new classifier
    assert!(
        log.contains("loaded 201 tensors; new 2 (classifier.bias, classifier.weight); ignored 20 (classifier.bias, num_batches_tracked x18, classifier.weight)"),
        "{log}"
    );
    assert!(log.contains("classifier is replaced"), "{log}");
    let run = dir.path().join("run");
    assert_eq!(csv_rows(&run.join("steps.csv")).len(), 2);
    let meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["model"]["import"]["new"], serde_json::json!(["classifier.bias", "classifier.weight"]));
    assert_eq!(meta["model"]["config"]["family"], "cvt");
    assert_eq!(meta["model"]["config"]["embed_dim"], serde_json::json!([16, 32, 48]));
    assert_eq!(meta["preprocess"]["recipe"]["center_crop"], serde_json::json!([224, 224]));

    // brasa predict with the run's best checkpoint
    let output = brasa().current_dir(dir.path()).args(["predict", "--run", "run", "data/test", "--quiet"]).output().unwrap();
    assert_success(&output);
    let csv = stdout(&output);
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("path,predicted,cat,dog,owl"));
    assert_eq!(lines.count(), 6);
    let output = brasa()
        .current_dir(dir.path())
        .args(["predict", "--run", "run", "data/test/cat", "--out", "cats.csv", "--quiet"])
        .output()
        .unwrap();
    assert_success(&output);
    assert_eq!(csv_header(&dir.path().join("cats.csv")), ["path", "predicted", "cat", "dog", "owl"]);
    assert_eq!(csv_rows(&dir.path().join("cats.csv")).len(), 2);
}

#[test]
fn vit_b16_finetune_runs_on_fixture_weights() {
    let dir = tempfile::tempdir().unwrap();
    write_image_folder(&dir.path().join("data"), 6, 2, 20);
    let output = finetune(dir.path(), "experiments/vit-b16-finetune.toml", "hf/vit-small");
    assert_success(&output);
    let log = stderr(&output);
    // same labels (cat, dog, owl): every tensor is loaded, the positions are interpolated to 224
    assert!(log.contains("loaded 40 tensors; new 0; ignored 0"), "{log}");
    assert!(log.contains("position embeddings interpolated from 32x32 to 224x224"), "{log}");
    assert_eq!(csv_rows(&dir.path().join("run/steps.csv")).len(), 2);
}

#[test]
fn unreadable_images_and_missing_inputs_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("broken.png"), b"not a png").unwrap();
    let weights = fixture("hf/vit-small").display().to_string();
    let output = brasa().current_dir(dir.path()).args(["predict", "--pretrained", &weights, "broken.png"]).output().unwrap();
    assert!(!output.status.success());
    assert!(stderr(&output).contains("broken.png"), "{}", stderr(&output));
    let output = brasa().current_dir(dir.path()).args(["predict", "--pretrained", &weights, "nowhere"]).output().unwrap();
    assert!(stderr(&output).contains("nowhere does not exist"), "{}", stderr(&output));
}

fn one_image(dir: &Path) -> String {
    write_image_folder(&dir.join("images"), 1, 0, 16);
    "images/train/cat/cat_000.png".into()
}

#[test]
fn hub_ids_resolve_from_the_local_cache_and_respect_offline_mode() {
    let dir = tempfile::tempdir().unwrap();
    let image = one_image(dir.path());
    let cache = dir.path().join("cache");
    let snapshot = cache.join("models--brasa--vit-small/snapshots/0123abcd");
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(cache.join("models--brasa--vit-small/refs")).unwrap();
    std::fs::write(cache.join("models--brasa--vit-small/refs/main"), "0123abcd").unwrap();
    for file in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture("hf/vit-small").join(file), snapshot.join(file)).unwrap();
    }
    let output = brasa()
        .current_dir(dir.path())
        .env("HF_HUB_CACHE", &cache)
        .env("HF_HUB_OFFLINE", "1")
        .args(["predict", "--pretrained", "hf:brasa/vit-small", &image])
        .output()
        .unwrap();
    assert_success(&output);
    assert!(stdout(&output).starts_with("path,predicted,cat,dog,owl\n"), "{}", stdout(&output));

    let output = brasa()
        .current_dir(dir.path())
        .env("HF_HUB_CACHE", &cache)
        .env("HF_HUB_OFFLINE", "1")
        .args(["predict", "--pretrained", "hf:brasa/missing", &image])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(stderr(&output).contains("hf:brasa/missing is not in the Hugging Face cache") && stderr(&output).contains("HF_HUB_OFFLINE"), "{}", stderr(&output));
}

/// A minimal Hugging Face Hub: `GET /<repo>/resolve/<revision>/<file>` with the headers hf-hub
/// reads (`etag`, `x-repo-commit`, `Content-Range` for range requests).
fn serve_hub(files: Vec<(String, Vec<u8>)>) -> u16 {
    common::serve_http(move |request| {
        let target = request.split_whitespace().nth(1).unwrap_or("");
        let lower = request.to_ascii_lowercase();
        let range_start = lower
            .lines()
            .find_map(|l| l.strip_prefix("range: bytes="))
            .and_then(|r| r.split('-').next().and_then(|s| s.trim().parse::<usize>().ok()));
        let metadata_probe = lower.contains("range: bytes=0-0");
        match files.iter().find(|(name, _)| target == format!("/brasa/vit-small/resolve/main/{name}")) {
            None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
            Some((name, body)) => {
                let start = range_start.unwrap_or(0).min(body.len());
                let end = if metadata_probe { 1.min(body.len()) } else { body.len() };
                let part = &body[start..end];
                let mut response = format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{}/{}\r\netag: \"etag-{name}\"\r\nx-repo-commit: feedc0de\r\nConnection: close\r\n\r\n",
                    part.len(),
                    end.saturating_sub(1),
                    body.len()
                )
                .into_bytes();
                response.extend_from_slice(part);
                response
            }
        }
    })
}

#[test]
fn hub_ids_download_into_the_cache_from_the_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let image = one_image(dir.path());
    let files: Vec<(String, Vec<u8>)> = ["config.json", "model.safetensors"]
        .iter()
        .map(|f| (f.to_string(), std::fs::read(fixture("hf/vit-small").join(f)).unwrap()))
        .collect();
    let port = serve_hub(files);
    let cache = dir.path().join("cache");
    let output = brasa()
        .current_dir(dir.path())
        .env("HF_HUB_CACHE", &cache)
        .env("HF_ENDPOINT", format!("http://127.0.0.1:{port}"))
        .env_remove("HF_HUB_OFFLINE")
        .args(["predict", "--pretrained", "hf:brasa/vit-small", &image])
        .output()
        .unwrap();
    assert_success(&output);
    assert!(stdout(&output).starts_with("path,predicted,cat,dog,owl\n"), "{}", stdout(&output));
    let snapshot = cache.join("models--brasa--vit-small/snapshots/feedc0de");
    assert!(snapshot.join("model.safetensors").exists() && snapshot.join("config.json").exists());
    assert_eq!(std::fs::read_to_string(cache.join("models--brasa--vit-small/refs/main")).unwrap().trim(), "feedc0de");
}
