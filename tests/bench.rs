//! `brasa bench`: one JSON line with the machine, device and the three measurements; bad options
//! are errors.

mod common;

use common::{assert_success, run_in, stderr, stdout, tiny_spec, write_image_folder};

#[test]
fn bench_prints_one_json_line_with_every_measurement() {
    let dir = tempfile::tempdir().unwrap();
    write_image_folder(&dir.path().join("data"), 4, 1, 20);
    std::fs::write(dir.path().join("spec.toml"), tiny_spec("bench", "data", 1)).unwrap();
    let output = run_in(dir.path(), &["bench", "spec.toml", "--json", "--backend", "flex", "--threads", "1", "--steps", "2", "--warmup", "1"]);
    assert_success(&output);
    let text = stdout(&output);
    assert_eq!(text.lines().count(), 1, "{text}");
    let result: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(result["device"]["backend"], "flex");
    assert_eq!((result["model"].as_str(), result["batch"].as_u64(), &result["image_size"]), (Some("cvt-tiny"), Some(8), &serde_json::json!([16, 16])));
    assert_eq!(result["machine"]["threads"], 1);
    for what in ["train", "infer"] {
        assert_eq!(result[what]["steps"], 2, "{what}");
        assert!(result[what]["samples_per_s"].as_f64().unwrap() > 0.0, "{what}");
    }
    assert_eq!(result["data"]["images"], 12, "the training folder's images (3 classes × 4)");
    assert!(result["data"]["full_per_s"].as_f64().unwrap() > 0.0);
    assert!(result["parameters"].as_u64().unwrap() > 100_000);
    assert!(result["peak_rss_bytes"].as_u64().unwrap() > 0);

    let output = run_in(dir.path(), &["bench", "spec.toml", "--what", "train,fly"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("--what \"fly\""), "{}", stderr(&output));
    let output = run_in(dir.path(), &["bench", "spec.toml", "--steps", "0"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("--steps must be at least 1"), "{}", stderr(&output));
}
