//! timm's ViT checkpoints (the `timm/vit_*` repositories): `config.json` with `architecture`,
//! `model_args` and `pretrained_cfg` → a [`VitConfig`] and the image processor timm's own eval
//! transform (`transforms_imagenet_eval`) applies.
//!
//! The architecture name gives the size (`vit_base_patch16_224`: width 768, 12 layers, 12 heads,
//! patch 16, 224 px); `model_args`, which `timm.models.push_to_hf_hub` writes when a model was
//! created with overrides, take precedence. LayerNorm ε is timm's 1e-6.

use serde_json::Value;

use super::pretrained::Processor;
use super::vit::VitConfig;
use crate::augment::{Interpolation, ResizeTo};

/// timm's `DEFAULT_CROP_PCT`.
const DEFAULT_CROP_PCT: f64 = 0.875;
const IMAGENET_MEAN: [f64; 3] = [0.485, 0.456, 0.406];
const IMAGENET_STD: [f64; 3] = [0.229, 0.224, 0.225];

/// `(width, depth, heads)` of timm's named ViT sizes.
fn size(name: &str) -> Option<(usize, usize, usize)> {
    Some(match name {
        "tiny" => (192, 12, 3),
        "small" => (384, 12, 6),
        "base" => (768, 12, 12),
        "large" => (1024, 24, 16),
        "huge" => (1280, 32, 16),
        _ => return None,
    })
}

/// `(size, patch, image)` of a plain `vit_<size>_patch<P>_<IMG>` name (a `.tag` suffix allowed).
fn parse_name(architecture: &str) -> Option<(&str, usize, usize)> {
    let base = architecture.split('.').next()?;
    let parts: Vec<&str> = base.split('_').collect();
    match parts.as_slice() {
        ["vit", size_name, patch, image] => {
            let patch = patch.strip_prefix("patch")?.parse().ok()?;
            Some((size_name, patch, image.parse().ok()?))
        }
        _ => None,
    }
}

/// The ViT a timm `config.json` describes, with `num_labels` outputs.
pub fn vit_config(raw: &Value, num_labels: usize) -> Result<VitConfig, String> {
    let architecture = raw["architecture"].as_str().unwrap_or_default();
    let args = raw.get("model_args").cloned().unwrap_or(Value::Null);
    let named = parse_name(architecture);
    let named_size = named.and_then(|(s, _, _)| size(s));
    let int = |key: &str| args.get(key).and_then(Value::as_u64).map(|v| v as usize);
    for (key, plain) in [
        ("class_token", Value::Bool(true)),
        ("no_embed_class", Value::Bool(false)),
        ("pre_norm", Value::Bool(false)),
        ("qk_norm", Value::Bool(false)),
        ("global_pool", Value::String("token".into())),
        ("reg_tokens", Value::from(0)),
    ] {
        if let Some(value) = args.get(key)
            && *value != plain
        {
            return Err(format!("model_args.{key} = {value} is not supported (brasa's ViT has {key} = {plain})"));
        }
    }
    if args.get("init_values").is_some_and(|v| !v.is_null()) {
        return Err("model_args.init_values (layer scale) is not supported".into());
    }
    if args.get("fc_norm").is_some_and(|v| v.as_bool() == Some(true)) {
        return Err("model_args.fc_norm = true is not supported".into());
    }
    let unknown = || {
        format!(
            "architecture {architecture:?} is not a plain timm ViT brasa knows (vit_{{tiny,small,base,large,huge}}_patch<P>_<size>) and model_args does not give embed_dim, depth and num_heads"
        )
    };
    let (hidden, depth, heads) = match (int("embed_dim"), int("depth"), int("num_heads"), named_size) {
        (Some(w), Some(d), Some(h), _) => (w, d, h),
        (w, d, h, Some((nw, nd, nh))) => (w.unwrap_or(nw), d.unwrap_or(nd), h.unwrap_or(nh)),
        _ => return Err(unknown()),
    };
    let patch = int("patch_size").or(named.map(|(_, p, _)| p)).ok_or_else(unknown)?;
    let input = raw["pretrained_cfg"]["input_size"].as_array().and_then(|a| a.get(1)).and_then(Value::as_u64).map(|v| v as usize);
    // `img_size` is a number or `[height, width]` (square: brasa's ViT takes square inputs)
    let img_size = match args.get("img_size") {
        Some(Value::Array(hw)) => match hw.as_slice() {
            [h, w] if h == w => h.as_u64().map(|v| v as usize),
            _ => return Err(format!("model_args.img_size = {}: brasa's ViT needs a square input", args["img_size"])),
        },
        _ => int("img_size"),
    };
    let image = img_size.or(input).or(named.map(|(_, _, i)| i)).ok_or_else(unknown)?;
    let mlp_ratio = args.get("mlp_ratio").and_then(Value::as_f64).unwrap_or(4.0);
    let qkv_bias = args.get("qkv_bias").and_then(Value::as_bool).unwrap_or(true);
    if heads == 0 || !hidden.is_multiple_of(heads) {
        return Err(format!("embed_dim {hidden} is not divisible by num_heads {heads}"));
    }
    Ok(VitConfig {
        num_channels: int("in_chans").unwrap_or(3),
        num_labels,
        hidden_size: hidden,
        num_hidden_layers: depth,
        num_attention_heads: heads,
        intermediate_size: (hidden as f64 * mlp_ratio) as usize,
        hidden_dropout_prob: 0.0,
        attention_probs_dropout_prob: 0.0,
        layer_norm_eps: 1e-6,
        image_size: image,
        patch_size: patch,
        qkv_bias,
        initializer_range: 0.02,
    })
}

/// Labels of a timm config: `label_names`, else `LABEL_i` for `num_classes`.
pub fn labels(raw: &Value) -> Vec<String> {
    if let Some(names) = raw["label_names"].as_array() {
        return names.iter().map(|n| n.as_str().unwrap_or_default().to_string()).collect();
    }
    let n = raw["num_classes"].as_u64().or(raw["pretrained_cfg"]["num_classes"].as_u64()).unwrap_or(1000) as usize;
    (0..n).map(|i| format!("LABEL_{i}")).collect()
}

/// What timm's eval transform does with the checkpoint's `pretrained_cfg`: resize by
/// `1 / crop_pct` (the shorter edge for a square input, `crop_mode = "center"`; both edges for
/// `"squash"`), centre-crop to `input_size`, normalise with its mean and std.
pub fn processor(raw: &Value) -> Result<Processor, String> {
    let cfg = &raw["pretrained_cfg"];
    let input = cfg["input_size"].as_array().map(|a| a.iter().filter_map(Value::as_u64).map(|v| v as u32).collect::<Vec<_>>());
    let (height, width) = match input.as_deref() {
        Some([_, h, w]) => (*h, *w),
        None => {
            let side = vit_config(raw, 1)?.image_size as u32;
            (side, side)
        }
        Some(other) => return Err(format!("pretrained_cfg.input_size = {other:?}: expected [channels, height, width]")),
    };
    let crop_pct = cfg["crop_pct"].as_f64().unwrap_or(DEFAULT_CROP_PCT);
    if !(crop_pct > 0.0 && crop_pct <= 1.0) {
        return Err(format!("pretrained_cfg.crop_pct = {crop_pct} must be in (0, 1]"));
    }
    let interpolation = match cfg["interpolation"].as_str().unwrap_or("bilinear") {
        "bilinear" => Interpolation::Bilinear,
        "bicubic" => Interpolation::Bicubic,
        "nearest" => Interpolation::Nearest,
        other => return Err(format!("pretrained_cfg.interpolation = {other:?} is not supported (bilinear, bicubic, nearest are)")),
    };
    let (scale_h, scale_w) = ((height as f64 / crop_pct).floor() as u32, (width as f64 / crop_pct).floor() as u32);
    let resize = match cfg["crop_mode"].as_str().unwrap_or("center") {
        "squash" => ResizeTo::Exact { height: scale_h, width: scale_w },
        "center" if scale_h == scale_w => ResizeTo::ShorterEdge(scale_h),
        "center" => return Err(format!("pretrained_cfg.input_size {height}x{width} is not square; timm's ResizeKeepRatio is not supported")),
        other => return Err(format!("pretrained_cfg.crop_mode = {other:?} is not supported (center and squash are)")),
    };
    let triple = |key: &str, default: [f64; 3]| {
        super::pretrained::three_numbers(cfg.get(key), default).map_err(|value| format!("pretrained_cfg.{key} = {value}: expected three numbers"))
    };
    Ok(Processor {
        resize,
        center_crop: Some((height, width)),
        interpolation,
        mean: triple("mean", IMAGENET_MEAN)?,
        std: triple("std", IMAGENET_STD)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_sizes_give_the_architecture() {
        let raw = serde_json::json!({"architecture": "vit_base_patch16_224.augreg2_in21k_ft_in1k", "num_classes": 1000});
        let c = vit_config(&raw, 4).unwrap();
        assert_eq!((c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.intermediate_size), (768, 12, 12, 3072));
        assert_eq!((c.patch_size, c.image_size, c.layer_norm_eps), (16, 224, 1e-6));
        let small = vit_config(&serde_json::json!({"architecture": "vit_small_patch32_384"}), 2).unwrap();
        assert_eq!((small.hidden_size, small.num_attention_heads, small.patch_size, small.image_size), (384, 6, 32, 384));
    }

    #[test]
    fn model_args_override_and_unsupported_options() {
        let raw = serde_json::json!({"architecture": "vit_tiny_patch16_224",
            "model_args": {"img_size": [32, 32], "patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 4, "mlp_ratio": 2.0}});
        let c = vit_config(&raw, 3).unwrap();
        assert_eq!((c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.intermediate_size, c.patch_size, c.image_size), (32, 2, 4, 64, 8, 32));
        let pooled = serde_json::json!({"architecture": "vit_base_patch16_224", "model_args": {"global_pool": "avg"}});
        assert!(vit_config(&pooled, 2).unwrap_err().contains("global_pool"));
        let clip = serde_json::json!({"architecture": "vit_base_patch16_clip_224"});
        assert!(vit_config(&clip, 2).unwrap_err().contains("not a plain timm ViT"));
    }

    #[test]
    fn pretrained_cfg_becomes_the_eval_transform() {
        let raw = serde_json::json!({"architecture": "vit_base_patch16_224", "pretrained_cfg": {
            "input_size": [3, 224, 224], "interpolation": "bicubic", "crop_pct": 0.9, "crop_mode": "center",
            "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}});
        let p = processor(&raw).unwrap();
        assert_eq!(p.resize, ResizeTo::ShorterEdge(248));
        assert_eq!(p.center_crop, Some((224, 224)));
        assert_eq!((p.interpolation, p.mean, p.std), (Interpolation::Bicubic, [0.5; 3], [0.5; 3]));
        let squash = serde_json::json!({"pretrained_cfg": {"input_size": [3, 32, 32], "crop_pct": 1.0, "crop_mode": "squash"}});
        assert_eq!(processor(&squash).unwrap().resize, ResizeTo::Exact { height: 32, width: 32 });
        let border = serde_json::json!({"pretrained_cfg": {"input_size": [3, 32, 32], "crop_mode": "border"}});
        assert!(processor(&border).unwrap_err().contains("crop_mode"));
        assert_eq!(labels(&serde_json::json!({"num_classes": 2})), ["LABEL_0", "LABEL_1"]);
        assert_eq!(labels(&serde_json::json!({"label_names": ["a", "b"]})), ["a", "b"]);
    }
}
