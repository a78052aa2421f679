//! Checkpoint layouts: the tensor naming schemes brasa reads, recognised from the names alone,
//! and their translation to the one brasa's modules mirror — the Hub layout, the names
//! transformers 4 uses and `save_pretrained` writes.
//!
//! - [`Layout::Hub`] — `vit.encoder.layer.N.attention.attention.query.weight`,
//!   `cvt.encoder.stages.N.…` — used as is.
//! - [`Layout::Transformers5`] — the module names transformers 5 uses in memory, which a
//!   `torch.save(model.state_dict())` or `safetensors.torch.save_file` keeps
//!   (`vit.layers.N.attention.q_proj`, `mlp.fc1`, …; transformers converts them on
//!   `save_pretrained`, so the Hub layout stays what it writes). CvT's names did not change.
//! - [`Layout::Timm`] — timm's `VisionTransformer` (`blocks.N.attn.qkv`, fused query/key/value,
//!   `patch_embed.proj`, `pos_embed`, `head`).
//! - [`Layout::Base`] — a base model without its classification head (`ViTModel`, `CvtModel`:
//!   `embeddings.…`, `encoder.layer.N.…`, `encoder.stages.N.…`), as e.g.
//!   `google/vit-base-patch16-224-in21k` ships: the Hub names without their `vit.`/`cvt.`
//!   prefix; the head ([`Layout::new_head`]) starts fresh.
//!
//! A `module.` prefix (a model saved from `nn.DataParallel`) is dropped first.

use std::collections::BTreeMap;

use burn::store::burn_pack::{Bytes, Tensor as PackTensor};

use super::pretrained::Family;

/// A naming scheme of checkpoint tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Hub,
    Transformers5,
    Timm,
    Base,
}

impl Layout {
    pub fn describe(self) -> &'static str {
        match self {
            Layout::Hub => "Hugging Face Hub layout (transformers 4 names, as save_pretrained writes them)",
            Layout::Transformers5 => "transformers 5 module names (a state_dict saved with torch.save or safetensors)",
            Layout::Timm => "timm VisionTransformer names (blocks.N.attn.qkv, ...)",
            Layout::Base => "a base model without classification head (ViTModel / CvtModel: embeddings., encoder., ...)",
        }
    }

    /// Every layout brasa reads, for error messages.
    pub const ALL: [Layout; 4] = [Layout::Hub, Layout::Transformers5, Layout::Timm, Layout::Base];

    /// The top-level modules of a `family` classifier that a checkpoint in this layout lacks by
    /// design (they start fresh): a base model's classification head.
    pub fn new_head(self, family: Family) -> &'static [&'static str] {
        match (self, family) {
            (Layout::Base, Family::Cvt) => &["classifier", "layernorm"],
            (Layout::Base, Family::Vit) => &["classifier"],
            _ => &[],
        }
    }
}

/// timm keys of `VisionTransformer` options brasa's ViT does not implement.
const TIMM_UNSUPPORTED: [(&str, &str); 6] = [
    ("fc_norm.", "global average pooling (global_pool = \"avg\", fc_norm)"),
    (".ls1.", "layer scale (init_values)"),
    ("reg_token", "register tokens"),
    ("norm_pre.", "a pre-norm (pre_norm = true)"),
    (".q_norm.", "query/key normalisation (qk_norm)"),
    ("attn_pool.", "attention pooling (global_pool = \"map\")"),
];

/// Which layout `names` (a checkpoint's tensor names) are in, for a model of `family`; `None`
/// when none fits.
pub fn detect(names: &[&str], family: Family) -> Option<Layout> {
    let any = |prefix: &str| names.iter().any(|n| n.starts_with(prefix));
    match family {
        Family::Cvt if any("cvt.encoder.stages.") => Some(Layout::Hub),
        Family::Vit if any("vit.encoder.layer.") || any("vit.embeddings.") && !any("vit.layers.") => Some(Layout::Hub),
        Family::Vit if any("vit.layers.") => Some(Layout::Transformers5),
        Family::Vit if any("blocks.0.attn.qkv.") && any("patch_embed.proj.") => Some(Layout::Timm),
        Family::Cvt if any("encoder.stages.") => Some(Layout::Base),
        Family::Vit if any("encoder.layer.") && any("embeddings.patch_embeddings.") => Some(Layout::Base),
        _ => None,
    }
}

/// The names of a checkpoint with a `module.` prefix on every one dropped (`nn.DataParallel`).
pub fn strip_data_parallel(tensors: Vec<PackTensor>) -> Vec<PackTensor> {
    if !tensors.is_empty() && tensors.iter().all(|t| t.name.starts_with("module.")) {
        return tensors
            .into_iter()
            .map(|mut t| {
                t.name = t.name["module.".len()..].to_string();
                t
            })
            .collect();
    }
    tensors
}

/// A timm feature brasa's ViT lacks, if the checkpoint uses one.
pub fn timm_unsupported(names: &[&str]) -> Option<&'static str> {
    TIMM_UNSUPPORTED.iter().find(|(key, _)| names.iter().any(|n| n.contains(key))).map(|(_, what)| *what)
}

/// The Hub name of a transformers-5 ViT tensor (the inverse of transformers 5's
/// `conversion_mapping` for `ViTModel`); other names pass through.
pub fn transformers5_to_hub(name: &str) -> String {
    let Some(rest) = name.strip_prefix("vit.layers.") else { return name.to_string() };
    let (layer, tail) = rest.split_once('.').unwrap_or((rest, ""));
    let renames = [
        ("attention.q_proj.", "attention.attention.query."),
        ("attention.k_proj.", "attention.attention.key."),
        ("attention.v_proj.", "attention.attention.value."),
        ("attention.o_proj.", "attention.output.dense."),
        ("mlp.fc1.", "intermediate.dense."),
        ("mlp.fc2.", "output.dense."),
    ];
    let tail = renames
        .iter()
        .find_map(|(from, to)| tail.strip_prefix(from).map(|leaf| format!("{to}{leaf}")))
        .unwrap_or_else(|| tail.to_string());
    format!("vit.encoder.layer.{layer}.{tail}")
}

/// The Hub names of a timm ViT tensor: one name, three for the fused `qkv` (split along its
/// first axis into query, key and value), or none for a name with no counterpart.
fn timm_to_hub(name: &str) -> Vec<String> {
    let fixed = match name {
        "cls_token" => Some("vit.embeddings.cls_token"),
        "pos_embed" => Some("vit.embeddings.position_embeddings"),
        "patch_embed.proj.weight" => Some("vit.embeddings.patch_embeddings.projection.weight"),
        "patch_embed.proj.bias" => Some("vit.embeddings.patch_embeddings.projection.bias"),
        "norm.weight" => Some("vit.layernorm.weight"),
        "norm.bias" => Some("vit.layernorm.bias"),
        "head.weight" => Some("classifier.weight"),
        "head.bias" => Some("classifier.bias"),
        _ => None,
    };
    if let Some(fixed) = fixed {
        return vec![fixed.to_string()];
    }
    let Some(rest) = name.strip_prefix("blocks.") else { return Vec::new() };
    let Some((layer, tail)) = rest.split_once('.') else { return Vec::new() };
    let prefix = format!("vit.encoder.layer.{layer}");
    if let Some(leaf) = tail.strip_prefix("attn.qkv.") {
        return ["query", "key", "value"].iter().map(|p| format!("{prefix}.attention.attention.{p}.{leaf}")).collect();
    }
    let renames = [
        ("norm1.", "layernorm_before."),
        ("norm2.", "layernorm_after."),
        ("attn.proj.", "attention.output.dense."),
        ("mlp.fc1.", "intermediate.dense."),
        ("mlp.fc2.", "output.dense."),
    ];
    renames
        .iter()
        .find_map(|(from, to)| tail.strip_prefix(from).map(|leaf| vec![format!("{prefix}.{to}{leaf}")]))
        .unwrap_or_default()
}

/// The checkpoint's tensors under their Hub names. Tensors with no counterpart keep their name
/// (they end up among the ignored ones). An error names a tensor that cannot be translated.
pub fn to_hub(tensors: Vec<PackTensor>, layout: Layout) -> Result<Vec<PackTensor>, String> {
    match layout {
        Layout::Hub => Ok(tensors),
        Layout::Base => {
            // the base model's own pooler (ViTModel's) has no counterpart and stays ignored
            let prefix = if tensors.iter().any(|t| t.name.starts_with("encoder.stages.")) { "cvt." } else { "vit." };
            Ok(tensors
                .into_iter()
                .map(|mut t| {
                    if !t.name.starts_with("pooler.") {
                        t.name = format!("{prefix}{}", t.name);
                    }
                    t
                })
                .collect())
        }
        Layout::Transformers5 => Ok(tensors
            .into_iter()
            .map(|mut t| {
                t.name = transformers5_to_hub(&t.name);
                t
            })
            .collect()),
        Layout::Timm => {
            let mut out = Vec::with_capacity(tensors.len() + 2 * tensors.len() / 6);
            for tensor in tensors {
                let names = timm_to_hub(&tensor.name);
                match names.len() {
                    0 => out.push(tensor),
                    1 => {
                        let mut tensor = tensor;
                        tensor.name = names[0].clone();
                        out.push(tensor);
                    }
                    _ => out.extend(split_first_axis(tensor, &names)?),
                }
            }
            Ok(out)
        }
    }
}

/// Splits a tensor into `names.len()` equal parts along its first axis (contiguous in row-major
/// storage, so a byte split).
fn split_first_axis(tensor: PackTensor, names: &[String]) -> Result<Vec<PackTensor>, String> {
    let parts = names.len();
    let shape: Vec<usize> = tensor.shape.iter().copied().collect();
    let name = tensor.name.clone();
    if shape.is_empty() || !shape[0].is_multiple_of(parts) {
        return Err(format!("{name} has shape {shape:?}; its first axis must split in {parts}"));
    }
    let dtype = tensor.dtype;
    let bytes = tensor.into_bytes().map_err(|e| format!("cannot read {name}: {e}"))?;
    let chunk = bytes.len() / parts;
    let mut part_shape = shape.clone();
    part_shape[0] /= parts;
    Ok(names
        .iter()
        .enumerate()
        .map(|(i, part)| {
            let slice = bytes[i * chunk..(i + 1) * chunk].to_vec();
            PackTensor::new(part.clone(), dtype, part_shape.clone(), None, Bytes::from_bytes_vec(slice))
        })
        .collect())
}

/// The first tensor names of a checkpoint that no layout explains, for an error message.
pub fn unrecognised(names: &[&str], count: usize) -> Vec<String> {
    let known_roots = ["vit.", "cvt.", "classifier.", "layernorm.", "blocks.", "patch_embed.", "pos_embed", "cls_token", "norm.", "head."];
    let mut odd: Vec<String> = names.iter().filter(|n| !known_roots.iter().any(|r| n.starts_with(r))).map(|n| n.to_string()).collect();
    if odd.is_empty() {
        odd = names.iter().map(|n| n.to_string()).collect();
    }
    odd.sort();
    odd.truncate(count);
    odd
}

/// Tensor names of a checkpoint, sorted.
pub fn names(tensors: &[PackTensor]) -> Vec<&str> {
    let mut names: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
    names.sort_unstable();
    names
}

/// The tensors of a map (as burn's stores give them), in name order.
pub fn from_map(map: &BTreeMap<String, PackTensor>) -> Vec<PackTensor> {
    map.values().cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::store::burn_pack::DType;

    fn tensor(name: &str, shape: &[usize], values: &[f32]) -> PackTensor {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        PackTensor::new(name.to_string(), DType::F32, shape.to_vec(), None, Bytes::from_bytes_vec(bytes))
    }

    #[test]
    fn layouts_are_recognised_from_names() {
        assert_eq!(detect(&["vit.encoder.layer.0.attention.attention.query.weight"], Family::Vit), Some(Layout::Hub));
        assert_eq!(detect(&["vit.layers.0.attention.q_proj.weight", "vit.embeddings.cls_token"], Family::Vit), Some(Layout::Transformers5));
        assert_eq!(detect(&["blocks.0.attn.qkv.weight", "patch_embed.proj.weight"], Family::Vit), Some(Layout::Timm));
        assert_eq!(detect(&["cvt.encoder.stages.0.embedding.x"], Family::Cvt), Some(Layout::Hub));
        assert_eq!(detect(&["encoder.layer.0.x"], Family::Vit), None);
        assert_eq!(detect(&["embeddings.patch_embeddings.projection.weight", "encoder.layer.0.x"], Family::Vit), Some(Layout::Base));
        assert_eq!(detect(&["encoder.stages.0.embedding.x"], Family::Cvt), Some(Layout::Base));
        assert_eq!(Layout::Base.new_head(Family::Cvt), ["classifier", "layernorm"]);
        assert!(Layout::Hub.new_head(Family::Vit).is_empty());
        assert_eq!(detect(&["blocks.0.attn.qkv.weight", "patch_embed.proj.weight"], Family::Cvt), None);
    }

    #[test]
    fn transformers5_names_map_back_to_the_hub_ones() {
        let cases = [
            ("vit.layers.3.attention.q_proj.weight", "vit.encoder.layer.3.attention.attention.query.weight"),
            ("vit.layers.3.attention.k_proj.bias", "vit.encoder.layer.3.attention.attention.key.bias"),
            ("vit.layers.3.attention.v_proj.weight", "vit.encoder.layer.3.attention.attention.value.weight"),
            ("vit.layers.3.attention.o_proj.weight", "vit.encoder.layer.3.attention.output.dense.weight"),
            ("vit.layers.11.mlp.fc1.bias", "vit.encoder.layer.11.intermediate.dense.bias"),
            ("vit.layers.11.mlp.fc2.weight", "vit.encoder.layer.11.output.dense.weight"),
            ("vit.layers.0.layernorm_before.weight", "vit.encoder.layer.0.layernorm_before.weight"),
            ("vit.embeddings.cls_token", "vit.embeddings.cls_token"),
            ("classifier.weight", "classifier.weight"),
        ];
        for (from, to) in cases {
            assert_eq!(transformers5_to_hub(from), to);
        }
    }

    #[test]
    fn timm_fused_qkv_splits_into_query_key_value() {
        let qkv = tensor("blocks.1.attn.qkv.weight", &[6, 1], &[1., 2., 3., 4., 5., 6.]);
        let bias = tensor("blocks.1.attn.qkv.bias", &[3], &[7., 8., 9.]);
        let out = to_hub(vec![qkv, bias, tensor("pos_embed", &[1], &[0.])], Layout::Timm).unwrap();
        let got: Vec<(String, Vec<usize>, Vec<f32>)> = out
            .into_iter()
            .map(|t| {
                let shape = t.shape.iter().copied().collect();
                let name = t.name.clone();
                let bytes = t.into_bytes().unwrap();
                (name, shape, bytes.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect())
            })
            .collect();
        let p = "vit.encoder.layer.1.attention.attention";
        assert_eq!(got[0], (format!("{p}.query.weight"), vec![2, 1], vec![1., 2.]));
        assert_eq!(got[1], (format!("{p}.key.weight"), vec![2, 1], vec![3., 4.]));
        assert_eq!(got[2], (format!("{p}.value.weight"), vec![2, 1], vec![5., 6.]));
        assert_eq!(got[4].0, format!("{p}.key.bias"));
        assert_eq!(got[4].2, vec![8.]);
        assert_eq!(got[6].0, "vit.embeddings.position_embeddings");
        let odd = to_hub(vec![tensor("blocks.0.attn.qkv.weight", &[4, 1], &[0.; 4])], Layout::Timm);
        assert!(odd.unwrap_err().contains("split in 3"));
    }

    #[test]
    fn timm_names_and_unsupported_options() {
        assert_eq!(timm_to_hub("blocks.2.norm1.bias"), ["vit.encoder.layer.2.layernorm_before.bias"]);
        assert_eq!(timm_to_hub("blocks.2.attn.proj.weight"), ["vit.encoder.layer.2.attention.output.dense.weight"]);
        assert_eq!(timm_to_hub("head.weight"), ["classifier.weight"]);
        assert!(timm_to_hub("fc_norm.weight").is_empty());
        assert_eq!(timm_unsupported(&["blocks.0.ls1.gamma"]), Some("layer scale (init_values)"));
        assert_eq!(timm_unsupported(&["blocks.0.norm1.weight"]), None);
        let stripped = strip_data_parallel(vec![tensor("module.head.bias", &[1], &[0.])]);
        assert_eq!(stripped[0].name, "head.bias");
    }
}
