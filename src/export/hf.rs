//! The three machine-read files of a Hugging Face export: `config.json` (transformers'
//! `CvtConfig` / `ViTConfig` fields, which brasa's configurations mirror, plus the labels),
//! `preprocessor_config.json` (an image processor doing what the run's preprocessing does) and
//! `model.safetensors` (the Hub tensor names, `format = "pt"` metadata).

use std::collections::HashMap;

use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot};
use burn::store::burn_pack::{DType, Tensor as PackTensor};
use serde_json::{Value, json};

use crate::augment::{Interpolation, ResizeTo};
use crate::model::{ArchConfig, Model};
use crate::run_dir::PreprocessMeta;

/// Layers each CvT stage gets in the export: its own, or `stage + 1` when it has fewer.
///
/// transformers' `CvtStage` indexes a `depth[stage]`-long list with the stage number, so it cannot
/// build a CvT whose stage `s` has `s` layers or fewer (an `IndexError`; cvt-tiny's last stage has
/// 2). Such a stage is exported with identity layers appended (see [`weights`]), which leave the
/// logits exactly as they were.
pub fn transformers_depths(depth: &[usize]) -> Vec<usize> {
    depth.iter().enumerate().map(|(stage, &d)| if stage > 0 { d.max(stage + 1) } else { d }).collect()
}

/// `config.json` for `config` classifying `classes`.
pub fn config_json(config: &ArchConfig, classes: &[String]) -> Value {
    let (mut value, extra) = match config {
        ArchConfig::Cvt(c) => (
            {
                let mut c = c.clone();
                c.depth = transformers_depths(&c.depth);
                serde_json::to_value(c).expect("configs serialise")
            },
            json!({
                "model_type": "cvt",
                "architectures": ["CvtForImageClassification"],
                "qkv_projection_method": vec!["dw_bn"; c.stages()],
                // not read by CvtForImageClassification (its LayerNorms use PyTorch's 1e-5), kept
                // at transformers' default so the config reads as theirs
                "layer_norm_eps": 1e-12,
            }),
        ),
        ArchConfig::Vit(c) => (
            serde_json::to_value(c).expect("configs serialise"),
            json!({
                "model_type": "vit",
                "architectures": ["ViTForImageClassification"],
                "hidden_act": "gelu",
                "encoder_stride": c.patch_size,
            }),
        ),
    };
    let object = value.as_object_mut().expect("configs are objects");
    object.remove("num_labels");
    object.extend(extra.as_object().expect("an object").clone());
    let id2label: serde_json::Map<String, Value> = classes.iter().enumerate().map(|(i, c)| (i.to_string(), json!(c))).collect();
    let label2id: serde_json::Map<String, Value> = classes.iter().enumerate().map(|(i, c)| (c.clone(), json!(i))).collect();
    object.insert("id2label".into(), Value::Object(id2label));
    object.insert("label2id".into(), Value::Object(label2id));
    object.insert("problem_type".into(), json!("single_label_classification"));
    object.insert("dtype".into(), json!("float32"));
    object.insert("exported_by".into(), json!(format!("brasa {}", crate::build_info::BRASA_VERSION)));
    Value::Object(sorted(object.clone()))
}

fn sorted(map: serde_json::Map<String, Value>) -> serde_json::Map<String, Value> {
    let mut pairs: Vec<(String, Value)> = map.into_iter().collect();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    pairs.into_iter().collect()
}

/// The shortest decimal that reads back as `v` in f32 (0.485, not 0.48500001430511475).
fn short(v: f32) -> Value {
    json!(format!("{v}").parse::<f64>().expect("a float prints as a float"))
}

/// `preprocessor_config.json`: the image processor that turns an image into what the run fed
/// its model. An exact resize is `ViTImageProcessor`'s; a shorter-edge resize or a centre crop
/// is `CLIPImageProcessor`'s (`size.shortest_edge` / `size.{height,width}` then `crop_size`).
pub fn preprocessor_json(pre: &PreprocessMeta) -> Result<Value, String> {
    let Some((resize, interpolation)) = pre.recipe.resize else {
        return Err("the run's preprocessing does not resize; a Hugging Face image processor needs a resize to one size".into());
    };
    let resample = match interpolation {
        Interpolation::Nearest => 0,
        Interpolation::Bilinear => 2,
        Interpolation::Bicubic => 3,
    };
    let size = match resize {
        ResizeTo::Exact { height, width } => json!({"height": height, "width": width}),
        ResizeTo::ShorterEdge(edge) => json!({"shortest_edge": edge}),
    };
    let mut value = json!({
        "do_resize": true,
        "size": size,
        "resample": resample,
        "do_rescale": true,
        "rescale_factor": 1.0 / 255.0,
        "do_normalize": true,
        "image_mean": pre.normalize.mean.map(short),
        "image_std": pre.normalize.std.map(short),
    });
    let object = value.as_object_mut().expect("an object");
    match (resize, pre.recipe.center_crop) {
        (ResizeTo::Exact { .. }, None) => {
            object.insert("image_processor_type".into(), json!("ViTImageProcessor"));
        }
        (ResizeTo::ShorterEdge(_), None) => {
            return Err("the run resizes the shorter edge without a centre crop, so its inputs differ in shape; no image processor gives that".into());
        }
        (_, Some((height, width))) => {
            object.insert("image_processor_type".into(), json!("CLIPImageProcessor"));
            object.insert("do_center_crop".into(), json!(true));
            object.insert("crop_size".into(), json!({"height": height, "width": width}));
            object.insert("do_convert_rgb".into(), json!(true));
        }
    }
    Ok(Value::Object(sorted(object.clone())))
}

/// A serialised `model.safetensors` and how many tensors it holds.
pub struct Weights {
    pub bytes: Vec<u8>,
    pub tensors: usize,
}

/// The model's tensors under transformers' names (Linear weights transposed back, gamma/beta
/// named weight/bias, by burn-store's PyTorch adapter), with the `num_batches_tracked` counter
/// PyTorch's BatchNorm keeps (brasa does not count batches: 0) and the `format = "pt"` metadata
/// transformers requires. A CvT stage too shallow for transformers ([`transformers_depths`]) gets
/// copies of its last layer with both output projections (attention and MLP) zero: each adds zero
/// to its residual stream, an exact identity.
pub fn weights(model: &Model) -> Result<Weights, String> {
    let adapter = || Some(Box::new(BurnToPyTorchAdapter) as Box<dyn burn::store::ModuleAdapter>);
    let tensors: Vec<PackTensor> = match model {
        Model::Cvt(m) => m.collect(None, adapter(), false),
        Model::Vit(m) => m.collect(None, adapter(), false),
    };
    let mut named: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = Vec::with_capacity(tensors.len());
    for tensor in tensors {
        let dtype = match tensor.dtype {
            DType::F32 => safetensors::Dtype::F32,
            DType::F16 => safetensors::Dtype::F16,
            DType::BF16 => safetensors::Dtype::BF16,
            DType::F64 => safetensors::Dtype::F64,
            other => return Err(format!("{} has dtype {other:?}, which the export does not write", tensor.name)),
        };
        let shape: Vec<usize> = tensor.shape.iter().copied().collect();
        let name = tensor.name.clone();
        let bytes = tensor.into_bytes().map_err(|e| format!("cannot read {name}: {e}"))?;
        if let Some(prefix) = name.strip_suffix(".running_mean") {
            named.push((format!("{prefix}.num_batches_tracked"), safetensors::Dtype::I64, Vec::new(), 0i64.to_le_bytes().to_vec()));
        }
        named.push((name, dtype, shape, bytes.to_vec()));
    }
    if let Model::Cvt(m) = model {
        let depth: Vec<usize> = m.cvt.encoder.stages.iter().map(|s| s.layers.len()).collect();
        for (stage, (&have, want)) in depth.iter().zip(transformers_depths(&depth)).enumerate() {
            let last = format!("cvt.encoder.stages.{stage}.layers.{}.", have - 1);
            let template: Vec<_> = named.iter().filter(|(n, ..)| n.starts_with(&last)).cloned().collect();
            for layer in have..want {
                let prefix = format!("cvt.encoder.stages.{stage}.layers.{layer}.");
                for (name, dtype, shape, bytes) in &template {
                    let leaf = &name[last.len()..];
                    let zero = ["attention.output.dense.weight", "attention.output.dense.bias", "output.dense.weight", "output.dense.bias"].contains(&leaf);
                    named.push((format!("{prefix}{leaf}"), *dtype, shape.clone(), if zero { vec![0; bytes.len()] } else { bytes.clone() }));
                }
            }
        }
    }
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let views: Vec<(String, safetensors::tensor::TensorView)> = named
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes).map(|v| (name.clone(), v)).map_err(|e| format!("{name}: {e}"))
        })
        .collect::<Result<_, _>>()?;
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    let bytes = safetensors::tensor::serialize(views, Some(metadata)).map_err(|e| e.to_string())?;
    Ok(Weights { bytes, tensors: named.len() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::images::Recipe;
    use crate::data::tensor::Normalize;

    fn pre(resize: Option<(ResizeTo, Interpolation)>, center_crop: Option<(u32, u32)>) -> PreprocessMeta {
        PreprocessMeta { recipe: Recipe { resize, center_crop }, normalize: Normalize { mean: [0.485, 0.456, 0.406], std: [0.5; 3] }, preset: None }
    }

    #[test]
    fn shallow_cvt_stages_are_deepened_for_transformers() {
        assert_eq!(transformers_depths(&[1, 2, 2]), [1, 2, 3]);
        assert_eq!(transformers_depths(&[1, 2, 10]), [1, 2, 10]);
        assert_eq!(transformers_depths(&[1, 1, 1]), [1, 2, 3]);
    }

    #[test]
    fn preprocessing_becomes_an_image_processor_brasa_reads_back() {
        use crate::model::pretrained::Processor;
        use crate::model::Family;
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            pre(Some((ResizeTo::Exact { height: 96, width: 96 }, Interpolation::Bilinear)), None),
            pre(Some((ResizeTo::ShorterEdge(256), Interpolation::Bicubic)), Some((224, 224))),
            pre(Some((ResizeTo::Exact { height: 80, width: 80 }, Interpolation::Nearest)), Some((64, 64))),
        ];
        for case in cases {
            let json = preprocessor_json(&case).unwrap();
            let path = dir.path().join("p.json");
            std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
            let back = Processor::read(&path, Family::Vit).unwrap();
            assert_eq!((back.resize, back.interpolation, back.center_crop), (case.recipe.resize.unwrap().0, case.recipe.resize.unwrap().1, case.recipe.center_crop), "{json}");
            assert_eq!(back.mean, [0.485, 0.456, 0.406]);
        }
        assert!(preprocessor_json(&pre(None, None)).unwrap_err().contains("does not resize"));
        assert!(preprocessor_json(&pre(Some((ResizeTo::ShorterEdge(9), Interpolation::Bilinear)), None)).is_err());
    }
}
