//! The Hugging Face fixtures in `tests/fixtures/hf` (small random checkpoints, transformers'
//! outputs for them) and the comparisons the parity tests make with them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use brasa::model::hub::CheckpointFiles;
use brasa::model::pretrained::HfConfig;
use brasa::model::{self, Arch, Built, Model, Options, Request};
use brasa::train::Classifier;
use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};

/// The fixture folder `tests/fixtures/<name>`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// A tensor read from a safetensors fixture: shape and values (f32, or u8 widened to f32).
pub struct FixtureTensor {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

impl FixtureTensor {
    /// As a 4-d tensor (a batch of pixels, per-layer attention probabilities) on `device`.
    pub fn tensor(&self, device: &Device) -> Tensor<4> {
        let shape: [usize; 4] = self.shape.clone().try_into().unwrap();
        Tensor::from_data(TensorData::new(self.values.clone(), shape), device)
    }
}

/// Every tensor of a safetensors file, by name.
pub fn read_safetensors(path: &Path) -> HashMap<String, FixtureTensor> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    tensors
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let values = match view.dtype() {
                safetensors::Dtype::F32 => {
                    view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
                }
                safetensors::Dtype::U8 => view.data().iter().map(|&b| b as f32).collect(),
                other => panic!("{name}: unexpected dtype {other:?}"),
            };
            (name, FixtureTensor { shape: view.shape().to_vec(), values })
        })
        .collect()
}

/// The checkpoint in `dir`: the weights file `weights` and its `config.json`.
pub fn checkpoint(dir: &Path, weights: &str) -> CheckpointFiles {
    CheckpointFiles { weights: dir.join(weights), config: dir.join("config.json"), preprocessor: None }
}

/// The class names of the checkpoint in `dir`.
pub fn labels(dir: &Path) -> Vec<String> {
    HfConfig::read(&dir.join("config.json")).unwrap().labels
}

/// `arch` for `input`-pixel squares and `classes`, loaded from the checkpoint in `dir`.
pub fn build(arch: Arch, dir: &Path, weights: &str, classes: &[String], input: u32, device: &Device) -> Built {
    let files = checkpoint(dir, weights);
    let request = Request {
        arch,
        options: Options::default(),
        classes,
        input_size: (input, input),
        pretrained: Some((&files, "fixture")),
        freeze: &[],
        seed: 0,
    };
    model::build(&request, device).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

/// The checkpoint in `dir` (`model.safetensors`, its own labels) as `arch` for `input` px.
pub fn load(arch: Arch, dir: &Path, input: u32, device: &Device) -> Model {
    build(arch, dir, "model.safetensors", &labels(dir), input, device).model
}

/// The model's logits for `pixels`, in evaluation mode.
pub fn logits(model: &Model, pixels: Tensor<4>) -> Vec<f32> {
    let out = match model {
        Model::Cvt(m) => m.valid().logits(pixels),
        Model::Vit(m) => m.valid().logits(pixels),
    };
    out.into_data().convert::<f32>().try_into_vec::<f32>().unwrap()
}

/// The largest absolute difference between two equally long lists.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Every float parameter's values, in module order, read back from wherever the model lives.
pub fn weights(model: &Model) -> Vec<f32> {
    use burn::module::{ModuleVisitor, Param};
    #[derive(Default)]
    struct Values(Vec<f32>);
    impl ModuleVisitor for Values {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.extend(param.val().into_data().convert::<f32>().try_to_vec::<f32>().unwrap());
        }
    }
    let mut values = Values::default();
    match model {
        Model::Cvt(m) => m.visit(&mut values),
        Model::Vit(m) => m.visit(&mut values),
    }
    values.0
}

/// A fresh `arch` (no checkpoint) for `size`-pixel squares and three classes, built on `device`
/// from `seed`.
pub fn fresh(arch: Arch, size: u32, seed: u64, device: &Device) -> Model {
    let classes: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
    let request = Request { arch, options: Options::default(), classes: &classes, input_size: (size, size), pretrained: None, freeze: &[], seed };
    model::build(&request, device).unwrap_or_else(|e| panic!("{}: {e}", arch.name())).model
}
