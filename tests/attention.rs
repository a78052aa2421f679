//! Attention maps against Hugging Face transformers: per-layer attention probabilities of the
//! small random CvT and ViT checkpoints, and the maps computed from them (CvT last-stage cls
//! attention, ViT rollout) with the recipe documented in src/model/attention.rs, which
//! tests/fixtures/hf/generate.py reimplements in numpy. Plus: every architecture gives maps of
//! the right shape at any input size.

mod common;

use std::collections::HashMap;
use std::time::Instant;

use brasa::model::attention::{self, AttentionMap, Attentions, CLS_ATTENTION, ROLLOUT};
use brasa::model::{Arch, ArchConfig, Model};
use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};
use common::hf::{self, FixtureTensor, fixture, max_abs_diff, read_safetensors};

/// Attention probabilities and maps must match transformers' within this (max abs).
const TOLERANCE: f32 = 1e-5;

/// On flex, as the fixtures were compared.
fn tensor(fixture: &FixtureTensor) -> Tensor<4> {
    fixture.tensor(&Device::flex())
}

fn values<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor.into_data().try_into_vec().unwrap()
}

/// The fixture's per-layer probabilities `attentions{suffix}.0`, `.1`, ...
fn layers(fixture: &HashMap<String, FixtureTensor>, suffix: &str) -> Vec<Tensor<4>> {
    (0..).map_while(|i| fixture.get(&format!("attentions{suffix}.{i}")).map(tensor)).collect()
}

/// Compares our probabilities layer by layer and returns the largest difference.
fn compare_layers(name: &str, ours: &Attentions, theirs: &[Tensor<4>]) -> f32 {
    assert_eq!(ours.probs.len(), theirs.len(), "{name}: layer count");
    let mut worst = 0f32;
    for (i, (a, b)) in ours.probs.iter().zip(theirs).enumerate() {
        assert_eq!(a.dims(), b.dims(), "{name} layer {i}");
        let diff = max_abs_diff(&values(a.clone()), &values(b.clone()));
        println!("{name} layer {i} {:?}: max |brasa - transformers| = {diff:.2e}", a.dims());
        worst = worst.max(diff);
    }
    worst
}

/// Compares maps with the fixture's `[batch, height, width]` tensor.
fn compare_maps(name: &str, maps: &[AttentionMap], expected: &FixtureTensor, method: &str) -> f32 {
    let [batch, height, width]: [usize; 3] = expected.shape.clone().try_into().unwrap();
    assert_eq!(maps.len(), batch, "{name}");
    assert!(maps.iter().all(|m| (m.height, m.width, m.method.as_str()) == (height, width, method)), "{name}: {maps:?}");
    let ours: Vec<f32> = maps.iter().flat_map(|m| m.values.iter().copied()).collect();
    let diff = max_abs_diff(&ours, &expected.values);
    println!("{name} {method} map [{batch}, {height}, {width}]: max diff = {diff:.2e}");
    diff
}

#[test]
fn cvt_last_stage_attention_and_cls_maps_match_transformers() {
    let dir = fixture("hf/cvt-small");
    let parity = read_safetensors(&dir.join("parity.safetensors"));
    let fixture = read_safetensors(&dir.join("attention.safetensors"));
    let model = hf::load(Arch::Cvt13, &dir, 64, &Device::flex());
    let Model::Cvt(cvt) = &model else { panic!("a CvT") };
    let cvt = cvt.valid();
    for (suffix, pixels) in [("", &parity["pixel_values"]), ("_96x64", &fixture["pixel_values_96x64"])] {
        let name = format!("cvt-small{suffix}");
        let (logits, ours) = cvt.forward_with_attention(tensor(pixels));
        assert_eq!(values(logits), values(cvt.forward(tensor(pixels))), "{name}: the logits of both paths");
        assert!(ours.cls_token);
        let theirs = layers(&fixture, suffix);
        let diff = compare_layers(&name, &ours, &theirs);
        assert!(diff < TOLERANCE, "{name}: attention probabilities differ by {diff}");

        let expected = &fixture[&format!("map{suffix}")];
        assert_eq!(ours.key_grid[..], expected.shape[1..], "{name}: the key grid");
        let maps = attention::attention_maps(&model, tensor(pixels)).unwrap();
        let diff = compare_maps(&name, &maps, expected, CLS_ATTENTION);
        assert!(diff < TOLERANCE, "{name}: maps differ by {diff}");
        // the recipe alone, on transformers' own probabilities
        let recipe = attention::cls_attention(theirs.last().unwrap().clone(), ours.key_grid);
        let diff = compare_maps(&format!("{name} (recipe on transformers' probabilities)"), &recipe, expected, CLS_ATTENTION);
        assert!(diff < 1e-6, "{name}: the recipe differs by {diff}");
    }
}

#[test]
fn vit_attention_and_rollout_match_transformers() {
    let dir = fixture("hf/vit-small");
    let parity = read_safetensors(&dir.join("parity.safetensors"));
    let fixture = read_safetensors(&dir.join("attention.safetensors"));
    for (suffix, input, pixels) in [("", 32, "pixel_values"), ("_48", 48, "pixel_values_48")] {
        let name = format!("vit-small{suffix}");
        let model = hf::load(Arch::VitTiny, &dir, input, &Device::flex());
        let Model::Vit(vit) = &model else { panic!("a ViT") };
        let vit = vit.valid();
        let pixels = &parity[pixels];
        let (logits, ours) = vit.forward_with_attention(tensor(pixels));
        assert_eq!(values(logits), values(vit.forward(tensor(pixels))), "{name}: the logits of both paths");
        let grid = input as usize / 8;
        assert_eq!((ours.key_grid, ours.cls_token), ([grid, grid], true));
        let theirs = layers(&fixture, suffix);
        let diff = compare_layers(&name, &ours, &theirs);
        assert!(diff < TOLERANCE, "{name}: attention probabilities differ by {diff}");

        let expected = &fixture[&format!("map{suffix}")];
        let maps = attention::attention_maps(&model, tensor(pixels)).unwrap();
        let diff = compare_maps(&name, &maps, expected, ROLLOUT);
        assert!(diff < TOLERANCE, "{name}: maps differ by {diff}");
        let recipe = attention::rollout(&theirs, [grid, grid]);
        let diff = compare_maps(&format!("{name} (recipe on transformers' probabilities)"), &recipe, expected, ROLLOUT);
        assert!(diff < 1e-6, "{name}: the recipe differs by {diff}");
    }
}

/// The map's grid for `arch` at `height × width` pixels.
fn expected_grid(arch: Arch, height: usize, width: usize) -> [usize; 2] {
    let conv = |size: usize, kernel: usize, stride: usize, padding: usize| (size + 2 * padding - kernel) / stride + 1;
    match arch.patch_size() {
        Some(patch) => [height / patch, width / patch],
        // patch embeddings 7/4/2, 3/2/1, 3/2/1, then the stride-2 key projection 3/2/1
        None => [height, width].map(|s| conv(conv(conv(conv(s, 7, 4, 2), 3, 2, 1), 3, 2, 1), 3, 2, 1)),
    }
}

#[test]
fn every_architecture_gives_one_map_per_image_at_any_input_size() {
    let device = Device::flex();
    for arch in Arch::ALL {
        // CvT takes any size (a non-square one here); ViT square multiples of its patch
        let (height, width) = match arch.patch_size() {
            None => (96, 64),
            Some(patch) => (4 * patch, 4 * patch),
        };
        let model = ArchConfig::for_arch(arch, 3, (width as u32, height as u32)).init(&device);
        let pixels = Tensor::<4>::random([2, 3, height, width], Distribution::Normal(0.0, 1.0), &device);
        let maps = attention::attention_maps(&model, pixels).unwrap();
        let [h, w] = expected_grid(arch, height, width);
        let method = if arch.patch_size().is_some() { ROLLOUT } else { CLS_ATTENTION };
        assert_eq!(maps.len(), 2, "{}", arch.name());
        for map in &maps {
            assert_eq!((map.height, map.width, map.method.as_str(), map.values.len()), (h, w, method, h * w), "{}", arch.name());
            let total: f32 = map.values.iter().sum();
            assert!(map.values.iter().all(|v| v.is_finite() && *v >= 0.0) && total <= 1.0 + 1e-5, "{}: {map:?}", arch.name());
        }
        println!("{}: {h}x{w} {method} maps for {height}x{width} px", arch.name());
    }
}

/// Rough CPU cost: `cargo test --release --test attention -- --ignored --nocapture`.
#[test]
#[ignore]
fn time_maps_of_eight_images() {
    let device = Device::flex();
    for (arch, size) in [(Arch::CvtTiny, 96), (Arch::VitTiny, 96)] {
        let model = ArchConfig::for_arch(arch, 4, (size as u32, size as u32)).init(&device);
        let pixels = Tensor::<4>::random([8, 3, size, size], Distribution::Normal(0.0, 1.0), &device);
        attention::attention_maps(&model, pixels.clone()).unwrap(); // warm-up
        let runs = 5;
        let start = Instant::now();
        for _ in 0..runs {
            attention::attention_maps(&model, pixels.clone()).unwrap();
        }
        let per_run = start.elapsed().as_secs_f64() / runs as f64;
        println!("{} at {size} px: {:.1} ms for 8 images ({runs} runs)", arch.name(), per_run * 1e3);
    }
}
