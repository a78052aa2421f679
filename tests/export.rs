//! `brasa export --format hf`: what transformers loaded, recorded by
//! tests/fixtures/export/generate.py (two brasa runs exported and read back with
//! `AutoModelForImageClassification`, `AutoImageProcessor` and `pipeline`), checked against what the
//! export writes today, what brasa reads back from it, and the run it came from.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use brasa::predict::{Predictor, collect_images};
use brasa::progress::Progress;
use burn::tensor::Device;
use common::brasa::{Brasa, TestDir};
use common::hf::{fixture, max_abs_diff, read_safetensors};

/// Every tensor of a safetensors file: dtype, shape and bytes by name, and its metadata.
fn tensors(path: &Path) -> (BTreeMap<String, (String, Vec<usize>, Vec<u8>)>, Option<std::collections::HashMap<String, String>>) {
    let bytes = std::fs::read(path).unwrap();
    let (_, metadata) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let map = file.tensors().into_iter().map(|(n, v)| (n, (format!("{:?}", v.dtype()), v.shape().to_vec(), v.data().to_vec()))).collect();
    (map, metadata.metadata().clone())
}

fn json(path: &Path) -> serde_json::Value {
    let mut value = common::read_json(path);
    value.as_object_mut().unwrap().remove("exported_by");
    value
}

fn images() -> Vec<std::path::PathBuf> {
    let listed: Vec<serde_json::Value> = serde_json::from_str(&common::read(&fixture("hf/preprocess/images.json"))).unwrap();
    listed.iter().map(|i| common::real_data().join(i["path"].as_str().unwrap())).collect()
}

#[test]
fn the_export_is_what_transformers_loaded() {
    for name in ["cvt", "vit"] {
        let committed = fixture("export").join(format!("{name}-hf"));
        let dir = TestDir::new();
        let out = dir.path().join("exported");
        dir.brasa(["export".as_ref(), fixture("export").join(format!("{name}-run")).as_os_str(), out.as_os_str()]).stderr_contains("model.safetensors").succeeds();
        for file in ["config.json", "preprocessor_config.json"] {
            assert_eq!(json(&out.join(file)), json(&committed.join(file)), "{name}: {file} differs from the one transformers loaded");
        }
        let (ours, metadata) = tensors(&out.join("model.safetensors"));
        let (theirs, _) = tensors(&committed.join("model.safetensors"));
        assert_eq!(metadata.unwrap().get("format").map(String::as_str), Some("pt"), "transformers requires format = pt");
        assert_eq!(ours.keys().collect::<Vec<_>>(), theirs.keys().collect::<Vec<_>>(), "{name}: tensor names");
        assert!(ours == theirs, "{name}: tensor values differ from the committed export");
        let card = common::read(&out.join("README.md"));
        for section in ["pipeline_tag: image-classification", "## Results", "| validation |", "| test |", "95% CI", "## Data", "## Training recipe", "## Findings"] {
            assert!(card.contains(section), "{name}: the model card lacks {section:?}:\n{card}");
        }
        assert!(!card.contains("](#"), "the card has no links into a report it lacks");

        // what transformers made of the committed export
        let expected = common::read_json(&fixture("export").join(format!("{name}-expected.json")));
        for key in ["missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"] {
            assert_eq!(expected["loading_info"][key], serde_json::json!([]), "{name}: transformers reported {key}");
        }
        println!("{name}: transformers loaded the export with {} (no missing, unexpected or mismatched keys)", expected["processor"]);
    }
}

#[test]
fn brasa_reads_the_export_with_transformers_logits_and_pipeline_classes() {
    let device = Device::flex();
    let paths = collect_images(&images()).unwrap();
    for name in ["cvt", "vit"] {
        let export = fixture("export").join(format!("{name}-hf"));
        let expected = read_safetensors(&fixture("export").join(format!("{name}-expected.safetensors")));
        let predictor = Predictor::from_pretrained(export.to_str().unwrap(), &device, &Progress::hidden()).unwrap();
        // the same pixels through both models: the weights, names and config mean the same
        let logits: Vec<f32> = predictor.logits(expected["pixel_values"].tensor(&device)).into_data().try_to_vec::<f32>().unwrap();
        let diff = max_abs_diff(&logits, &expected["logits"].values);
        println!("{name}: max |brasa - transformers| logits on transformers' pixel_values = {diff:.2e}");
        assert!(diff <= 1e-4, "{name}: {diff}");

        // each tool's own preprocessing: the same top class as transformers' pipeline
        let predicted = predictor.predict(&paths, 8, &device, &Progress::hidden()).unwrap();
        let pipeline = common::read_json(&fixture("export").join(format!("{name}-expected.json")));
        for (i, probs) in predicted.probabilities.iter().enumerate() {
            let top = brasa::metrics::argmax(probs);
            let theirs = &pipeline["pipeline"][i];
            println!("{name} image {i}: brasa {} {:.4}, pipeline {} {:.4}", predictor.classes[top], probs[top], theirs["label"], theirs["score"]);
            assert_eq!(predictor.classes[top], theirs["label"].as_str().unwrap(), "{name} image {i}");
            assert!((probs[top] as f64 - theirs["score"].as_f64().unwrap()).abs() < 0.02, "{name} image {i}: scores far apart");
        }
    }
}

#[test]
fn predict_with_the_export_equals_predict_with_the_run() {
    let device = Device::flex();
    let paths = collect_images(&images()).unwrap();
    for name in ["cvt", "vit"] {
        let run = Predictor::from_run(&fixture("export").join(format!("{name}-run")), false, &device).unwrap();
        let export = Predictor::from_pretrained(fixture("export").join(format!("{name}-hf")).to_str().unwrap(), &device, &Progress::hidden()).unwrap();
        let a = run.predict(&paths, 8, &device, &Progress::hidden()).unwrap();
        let b = export.predict(&paths, 8, &device, &Progress::hidden()).unwrap();
        assert_eq!(run.classes, export.classes);
        let diff = max_abs_diff(&a.logits.concat(), &b.logits.concat());
        println!("{name}: max |predict --run - predict --pretrained export| = {diff:.2e}");
        assert!(diff == 0.0, "{name}: the round trip changed the logits by {diff}");
    }
}

#[test]
fn export_refuses_what_it_should_not_replace_or_cannot_read() {
    let dir = TestDir::new().file("taken/notes.txt", "mine");
    let run = fixture("export/vit-run");
    // not "pass --force": --force would refuse it too
    dir.brasa(["export".as_ref(), run.as_os_str(), "taken".as_ref()]).stderr_contains("not an earlier export (it has no config.json; it holds `notes.txt`)").exits_with(2);
    dir.brasa(["export".as_ref(), run.as_os_str(), "taken".as_ref(), "--force".as_ref()]).stderr_contains("not an earlier export").exits_with(2);
    assert_eq!(common::read(&dir.path().join("taken/notes.txt")), "mine");
    // a folder that merely holds a config.json (a project, a transformers save_pretrained) is not ours
    let dir = dir.file("project/config.json", r#"{"db": "prod"}"#).file("project/src/main.py", "important").file("hf/config.json", r#"{"model_type": "vit"}"#);
    for folder in ["project", "hf"] {
        dir.brasa(["export".as_ref(), run.as_os_str(), folder.as_ref(), "--force".as_ref()]).stderr_contains("not an earlier export").stderr_contains(folder).exits_with(2);
    }
    assert_eq!(common::read(&dir.path().join("project/src/main.py")), "important", "--force left the project alone");
    assert_eq!(common::read(&dir.path().join("hf/config.json")), r#"{"model_type": "vit"}"#);
    // an earlier export is replaced whole
    dir.brasa(["export".as_ref(), run.as_os_str(), "out".as_ref()]).succeeds();
    dir.brasa(["export".as_ref(), run.as_os_str(), "out".as_ref(), "--force".as_ref(), "--checkpoint".as_ref(), "last".as_ref()]).succeeds();
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with('.') || n.contains("old")).collect();
    assert!(left.is_empty(), "nothing of the staging is left behind: {left:?}");
    // `.` and `DIR/.` name an empty folder: the export goes into it, and nothing is left beside it
    for folder in ["here", "there"] {
        std::fs::create_dir(dir.path().join(folder)).unwrap();
    }
    Brasa::new(&dir.path().join("here"), ["export".as_ref(), run.as_os_str(), ".".as_ref()]).succeeds();
    dir.brasa(["export".as_ref(), run.as_os_str(), "there/.".as_ref()]).succeeds();
    for folder in ["here", "there"] {
        assert!(dir.path().join(folder).join("model.safetensors").is_file(), "{folder} received the export");
        let left: Vec<_> = std::fs::read_dir(dir.path().join(folder)).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with('.')).collect();
        assert!(left.is_empty(), "nothing of the staging is left in {folder}: {left:?}");
    }
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with('.') || n.contains("old")).collect();
    assert!(left.is_empty(), "nothing of the staging is left beside them: {left:?}");
    // an earlier export, without --force, is where "pass --force" is the way
    dir.brasa(["export".as_ref(), run.as_os_str(), "out".as_ref()]).stderr_contains("an earlier export); pass --force").exits_with(2);
    // a folder that is not a run
    dir.brasa(["export", "taken", "elsewhere"]).stderr_contains("taken").fails();
    assert!(!dir.path().join("elsewhere").exists());
}

/// What a killed export leaves (its staging folder, inside an empty OUT_DIR or beside a new
/// one) blocks nothing: the next export removes it, and a live export's or a stranger's stays.
#[test]
fn staging_folders_of_killed_exports_are_removed_by_the_next_export() {
    // no process has the largest pid: these exports were killed
    let gone = format!("brasa-{}", i32::MAX);
    let dir = TestDir::new()
        .file(&format!("empty/.empty.{gone}.Ab12Cd/config.json"), "{}")
        .file(&format!(".new.{gone}.Xy34Zw/model.safetensors"), "partial")
        .file(&format!(".new.{gone}.Mine00/notes.txt"), "mine");
    let run = fixture("export/vit-run");
    dir.brasa(["export".as_ref(), run.as_os_str(), "empty".as_ref()]).stderr_contains("staging folder of an interrupted export").succeeds();
    let hidden = |folder: &std::path::Path| -> Vec<String> {
        std::fs::read_dir(folder).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with('.')).collect()
    };
    assert!(hidden(&dir.path().join("empty")).is_empty(), "{:?}", hidden(&dir.path().join("empty")));
    assert!(dir.path().join("empty/model.safetensors").is_file());
    dir.brasa(["export".as_ref(), run.as_os_str(), "new".as_ref()]).succeeds();
    assert_eq!(hidden(dir.path()), [format!(".new.{gone}.Mine00")], "only the folder holding a file no export writes is left");
}

#[test]
fn a_cvt_too_shallow_for_transformers_is_deepened_by_exact_identities() {
    use common::spec::TinySpec;
    // cvt-tiny's last stage has 2 layers: transformers' CvtStage cannot build it (IndexError)
    let dir = TestDir::new().images("data", 4, 2, 20).spec(&TinySpec::new("tiny", "data", 1));
    dir.brasa(["run", "spec.toml", "--out", "run", "--quiet"]).succeeds();
    dir.brasa(["export", "run", "hf"]).succeeds();
    let config = common::read_json(&dir.path().join("hf/config.json"));
    assert_eq!(config["depth"], serde_json::json!([1, 2, 3]), "{config}");
    let (tensors, _) = tensors(&dir.path().join("hf/model.safetensors"));
    let added = "cvt.encoder.stages.2.layers.2.";
    assert!(tensors.keys().any(|k| k.starts_with(added)), "the identity layer is written");
    for leaf in ["attention.output.dense.weight", "output.dense.bias"] {
        assert!(tensors[&format!("{added}{leaf}")].2.iter().all(|b| *b == 0), "{leaf} is zero");
    }
    assert!(common::read(&dir.path().join("hf/README.md")).contains("exact identities"));
    let device = Device::flex();
    let paths = collect_images(&[dir.path().join("data/test")]).unwrap();
    let run = Predictor::from_run(&dir.path().join("run"), false, &device).unwrap();
    let export = Predictor::from_pretrained(dir.path().join("hf").to_str().unwrap(), &device, &Progress::hidden()).unwrap();
    let a = run.predict(&paths, 8, &device, &Progress::hidden()).unwrap();
    let b = export.predict(&paths, 8, &device, &Progress::hidden()).unwrap();
    let diff = max_abs_diff(&a.logits.concat(), &b.logits.concat());
    println!("cvt-tiny exported with an identity layer: max |run - export| logits = {diff:.2e} over {} images", paths.len());
    assert!(diff == 0.0, "{diff}");
}

#[test]
fn the_card_of_an_interrupted_run_takes_its_epochs_from_the_checkpoint_state() {
    // an interrupted run: meta.json's epoch counts are never filled in, state.json has them
    let dir = TestDir::new();
    let run = dir.path().join("int");
    for sub in ["", "checkpoints"] {
        std::fs::create_dir_all(run.join(sub)).unwrap();
        for entry in std::fs::read_dir(fixture("export/vit-run").join(sub)).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_file() {
                std::fs::copy(entry.path(), run.join(sub).join(entry.file_name())).unwrap();
            }
        }
    }
    let mut meta = common::read_json(&run.join("meta.json"));
    meta["epochs_run"] = serde_json::json!(0);
    meta["best_epoch"] = serde_json::Value::Null;
    meta["train"]["epochs"] = serde_json::json!(400);
    std::fs::write(run.join("meta.json"), meta.to_string()).unwrap();
    for which in ["best", "last"] {
        dir.brasa(["export", "int", which, "--checkpoint", which]).succeeds();
        let card = common::read(&dir.path().join(which).join("README.md"));
        for expected in ["epochs: 1 run of 400", "did not finish", if which == "best" { "the best epoch (1," } else { "the last checkpoint (epoch 1 of 400)" }] {
            assert!(card.contains(expected), "{which}: the card lacks {expected:?}:\n{card}");
        }
    }
}
