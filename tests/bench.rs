//! `brasa bench`: one JSON line with the machine, device and the three measurements; bad options
//! are errors.

mod common;

use common::brasa::TestDir;
use common::spec::TinySpec;

#[test]
fn bench_prints_one_json_line_with_every_measurement() {
    let dir = TestDir::new().images("data", 4, 1, 20).spec(&TinySpec::new("bench", "data", 1));
    let text = dir
        .brasa(["bench", "spec.toml", "--json", "--backend", "flex", "--threads", "1", "--steps", "2", "--warmup", "1"])
        .succeeds()
        .stdout;
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

    dir.brasa(["bench", "spec.toml", "--what", "train,fly"]).stderr_contains("--what \"fly\"").fails();
    dir.brasa(["bench", "spec.toml", "--steps", "0"]).stderr_contains("--steps must be at least 1").fails();
}
