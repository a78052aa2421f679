//! Checkpoints saved the ways people save them: transformers 5's in-memory module names
//! (`torch.save(model.state_dict())`, `safetensors.torch.save_file`) and timm's ViT (fused qkv,
//! its `config.json` with `model_args` and `pretrained_cfg`), recognised from their tensor names
//! and loaded with the logits of the tool that wrote them. Fixtures: tests/fixtures/layouts
//! (its generate.py, with transformers 5.24 and timm 1.0.31).

mod common;

use std::path::Path;

use brasa::data::images::{Recipe, read_rgb};
use brasa::model::hub::{CheckpointFiles, Locator};
use brasa::model::pretrained::{Family, HfConfig, Processor};
use brasa::model::{self, Arch, Options, Request};
use burn::tensor::Device;
use common::hf::{fixture, labels, logits, max_abs_diff, read_safetensors};

fn files(dir: &Path, weights: &str) -> CheckpointFiles {
    CheckpointFiles { weights: dir.join(weights), config: dir.join("config.json"), preprocessor: None }
}

fn logits_of(arch: Arch, files: &CheckpointFiles, classes: &[String], input: u32, pixels: &common::hf::FixtureTensor) -> (Vec<f32>, brasa::model::ImportReport) {
    let request = Request { arch, options: Options::default(), classes, input_size: (input, input), pretrained: Some((files, "fixture")), freeze: &[], seed: 0 };
    let built = model::build(&request, &Device::flex()).unwrap_or_else(|e| panic!("{}: {e}", files.weights.display()));
    (logits(&built.model, pixels.tensor(&Device::flex())), built.import.unwrap())
}

#[test]
fn transformers5_state_dicts_load_with_transformers_logits() {
    for (name, arch, input, weights) in [
        ("vit-small", Arch::VitTiny, 32, vec!["state_dict.bin", "state_dict.safetensors"]),
        ("cvt-small", Arch::Cvt13, 64, vec!["state_dict.safetensors"]),
    ] {
        let dir = fixture("layouts/transformers5").join(name);
        let parity = read_safetensors(&fixture("hf").join(name).join("parity.safetensors"));
        let classes = labels(&dir);
        for weights in weights {
            let (ours, import) = logits_of(arch, &files(&dir, weights), &classes, input, &parity["pixel_values"]);
            let diff = max_abs_diff(&ours, &parity["logits"].values);
            println!("{name} {weights} ({}): max |brasa - transformers| = {diff:.2e}", import.layout);
            assert!(diff < 1e-4, "{name} {weights}: {diff}");
            assert!(import.new.is_empty(), "{:?}", import.new);
            if name == "vit-small" {
                assert!(import.layout.contains("transformers 5"), "{}", import.layout);
            }
        }
    }
}

#[test]
fn timm_vit_loads_with_timm_logits_and_preprocessing() {
    let dir = fixture("layouts/timm/vit-small");
    let config = HfConfig::read(&dir.join("config.json")).unwrap();
    assert_eq!((config.family, config.labels.clone()), (Family::Vit, vec!["cat".to_string(), "dog".into(), "owl".into()]));
    let parity = read_safetensors(&dir.join("parity.safetensors"));
    let (ours, import) = logits_of(Arch::VitTiny, &files(&dir, "model.safetensors"), &config.labels, 32, &parity["pixel_values"]);
    let diff = max_abs_diff(&ours, &parity["logits"].values);
    println!("timm vit-small ({}): max |brasa - timm| = {diff:.2e}; loaded {} tensors", import.layout, import.loaded.len());
    assert!(diff < 1e-4, "{diff}");
    assert!(import.ignored.is_empty() && import.new.is_empty(), "{:?} {:?}", import.ignored, import.new);

    // timm's pretrained_cfg is the `hf` preset: Resize(35, bicubic) of the shorter edge, centre crop 32
    let located = Locator::parse(dir.to_str().unwrap(), None).unwrap().find_local().unwrap().unwrap();
    let (processor, origin) = Processor::for_checkpoint(&located, Family::Vit).unwrap();
    assert!(origin.contains("timm pretrained_cfg"), "{origin}");
    let expected = read_safetensors(&dir.join("pixels.safetensors"));
    let images: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(fixture("hf/preprocess/images.json")).unwrap()).unwrap();
    let recipe = Recipe { resize: Some((processor.resize, processor.interpolation)), center_crop: processor.center_crop };
    let plane = 3 * 32 * 32;
    for (i, image) in images.iter().enumerate() {
        let ours = recipe.apply(read_rgb(&common::real_data().join(image["path"].as_str().unwrap())).unwrap());
        assert_eq!(ours.dimensions(), (32, 32));
        let theirs = &expected["levels"].values[i * plane..(i + 1) * plane];
        let worst = theirs
            .chunks(32 * 32)
            .enumerate()
            .flat_map(|(c, channel)| channel.iter().enumerate().map(move |(k, level)| (c, k, *level)))
            .map(|(c, k, level)| (ours.as_raw()[k * 3 + c] as f32 - level).abs())
            .fold(0f32, f32::max);
        println!("timm eval transform, image {i}: max {worst} uint8 level(s) from timm");
        assert!(worst <= 1.0, "image {i}: {worst}");
    }
}

#[test]
fn a_checkpoint_in_no_known_layout_says_what_is_recognised() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("hf/vit-small/config.json"), dir.path().join("config.json")).unwrap();
    // the vit-small weights under names no tool writes
    let source = std::fs::read(fixture("hf/vit-small/model.safetensors")).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&source).unwrap();
    let renamed: Vec<(String, safetensors::tensor::TensorView)> =
        tensors.tensors().into_iter().map(|(name, view)| (name.replace("vit.", "backbone."), view)).collect();
    std::fs::write(dir.path().join("model.safetensors"), safetensors::tensor::serialize(renamed, None).unwrap()).unwrap();
    let classes = labels(dir.path());
    let files = files(dir.path(), "model.safetensors");
    let request = Request { arch: Arch::VitTiny, options: Options::default(), classes: &classes, input_size: (32, 32), pretrained: Some((&files, "x")), freeze: &[], seed: 0 };
    let err = model::build(&request, &Device::flex()).err().expect("an unknown layout").to_string();
    println!("{err}");
    assert!(err.contains("in no checkpoint layout") && err.contains("timm") && err.contains("transformers 5"), "{err}");
    assert!(err.contains("backbone.embeddings"), "names the first unrecognised tensors: {err}");
}
