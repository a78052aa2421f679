//! `[preprocess]` → [`PreprocessPlan`]: how a decoded image becomes a clean model input, either
//! as written or taken from a pretrained checkpoint's image processor (`preset = "hf"`).

use super::check::Checker;
use super::model::ModelPlan;
use super::sizes::{crop_size, interpolation, resize_to};
use crate::augment::ResizeTo;
use crate::data::images::Recipe;
use crate::data::tensor::Normalize;
use crate::model::pretrained::Processor;
use crate::spec::schema::{self, Size};

#[derive(Debug, Clone)]
pub struct PreprocessPlan {
    /// How a decoded image becomes a clean model input.
    pub recipe: Recipe,
    pub normalize: Normalize,
    /// `(height, width)` of every model input.
    pub input_size: (u32, u32),
    /// `Some(where the values came from)` for `preset = "hf"`.
    pub preset: Option<String>,
}

impl PreprocessPlan {
    pub(super) fn from_processor(processor: &Processor, origin: String) -> Self {
        Self {
            recipe: Recipe { resize: Some((processor.resize, processor.interpolation)), center_crop: processor.center_crop },
            normalize: Normalize { mean: processor.mean.map(|v| v as f32), std: processor.std.map(|v| v as f32) },
            input_size: processor.input_size().unwrap_or((224, 224)),
            preset: Some(origin),
        }
    }
}

pub(super) fn resolve_preprocess(check: &mut Checker, pre: &schema::Preprocess, model: &ModelPlan) -> PreprocessPlan {
    if pre.preset == Some(schema::PreprocessPreset::Hf) {
        let explicit = [
            ("preprocess.resize", pre.resize.is_some()),
            ("preprocess.center_crop", pre.center_crop.is_some()),
            ("preprocess.interpolation", pre.interpolation.is_some()),
            ("preprocess.mean", pre.mean.is_some()),
            ("preprocess.std", pre.std.is_some()),
        ];
        for (key, set) in explicit {
            if set {
                check.fail(key, None, "preprocess.preset = \"hf\" takes every preprocessing value from the image processor; remove this key or the preset");
            }
        }
        let files = model.pretrained.as_ref().and_then(|p| p.files.as_ref());
        let (processor, origin) = match (files, &model.pretrained) {
            (Some(files), _) => match Processor::for_checkpoint(files, model.arch.family()) {
                Ok(found) => found,
                Err(e) => {
                    check.fail("model.pretrained", None, e.to_string());
                    (Processor::family_default(model.arch.family()), String::new())
                }
            },
            (None, Some(p)) => (
                Processor::family_default(model.arch.family()),
                format!(
                    "preset hf: {} family defaults until {} is downloaded (then its preprocessor_config.json)",
                    model.arch.family().name(),
                    p.locator.describe()
                ),
            ),
            (None, None) => (
                Processor::family_default(model.arch.family()),
                format!("preset hf: {} family defaults (no model.pretrained)", model.arch.family().name()),
            ),
        };
        return PreprocessPlan::from_processor(&processor, origin);
    }
    let resize = resize_to(check, "preprocess.resize", pre.resize.unwrap_or(Size::Exact([224, 224])));
    let center_crop = pre.center_crop.map(|size| crop_size(check, "preprocess.center_crop", size));
    if let Some((crop_h, crop_w)) = center_crop {
        // a crop reaching past the resized image would pad it with black borders
        let too_large = match resize {
            ResizeTo::Exact { height, width } => (crop_h > height || crop_w > width).then(|| format!("{height}x{width}")),
            ResizeTo::ShorterEdge(edge) => (crop_h > edge || crop_w > edge).then(|| format!("{edge} on the shorter edge")),
        };
        if let Some(resized) = too_large {
            check.fail(
                "preprocess.center_crop",
                Some(format!("[{crop_h}, {crop_w}]")),
                format!("is larger than the resized image ({resized}, preprocess.resize): the crop would pad images with black borders; crop at most the resized size"),
            );
        }
    }
    let input_size = match (center_crop, resize.fixed_size()) {
        (Some(crop), _) => crop,
        (None, Some(size)) => size,
        (None, None) => {
            check.fail(
                "preprocess.resize",
                pre.resize.map(|r| match r {
                    Size::Edge(edge) => edge.to_string(),
                    Size::Exact([h, w]) => format!("[{h}, {w}]"),
                }),
                "a single number resizes the shorter edge, so images of other shapes would differ in size; give [height, width] or add preprocess.center_crop",
            );
            (1, 1)
        }
    };
    let std = pre.std.unwrap_or([0.5; 3]);
    for (c, &value) in std.iter().enumerate() {
        // in f32, as the pixels are normalised: a tiny std divides to infinity
        if !(value.is_finite() && value as f32 >= 1e-6) {
            check.fail(&format!("preprocess.std[{c}]"), Some(value.to_string()), "must be a positive number (at least 1e-6)");
        }
    }
    let mut means_fit = true;
    for (c, &value) in pre.mean.unwrap_or([0.5; 3]).iter().enumerate() {
        if !(value as f32).is_finite() {
            means_fit = false;
            check.fail(&format!("preprocess.mean[{c}]"), Some(super::check::number(value)), "must be a number that fits in f32 (magnitude below 3.4e38)");
        }
    }
    // pixels are in [0, 1] before normalising: a mean far outside it, or a tiny std, gives
    // inputs the model's f32 arithmetic overflows on (NaN at the first step, blamed on the lr)
    if means_fit && check.issues.iter().all(|issue| !issue.key.starts_with("preprocess.std")) {
        let mean = pre.mean.unwrap_or([0.5; 3]);
        for c in 0..3 {
            let (lo, hi) = ((0.0 - mean[c]) / std[c], (1.0 - mean[c]) / std[c]);
            if lo.abs().max(hi.abs()) > MAX_NORMALISED {
                check.fail(
                    &format!("preprocess.std[{c}]"),
                    Some(super::check::number(std[c])),
                    format!(
                        "with preprocess.mean[{c}] = {} normalises pixels (0 to 1) to {lo:.3e} .. {hi:.3e}, beyond ±{MAX_NORMALISED:e}: training would overflow f32; pixels are in [0, 1] before (x - mean) / std, so mean is usually in [0, 1] and std near 0.1 to 1",
                        super::check::number(mean[c]),
                    ),
                );
            }
        }
    }
    PreprocessPlan {
        recipe: Recipe { resize: Some((resize, interpolation(pre.interpolation.unwrap_or_default()))), center_crop },
        normalize: Normalize { mean: pre.mean.unwrap_or([0.5; 3]).map(|v| v as f32), std: std.map(|v| v as f32) },
        input_size,
        preset: None,
    }
}


/// The largest magnitude a normalised pixel may reach: far beyond any sensible mean and std
/// (ImageNet's give about ±2.6), well below where a network's f32 sums overflow.
const MAX_NORMALISED: f64 = 1e6;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::check::testing::{REQUIRED, resolve};
    use crate::plan::model::resolve_model;

    fn preprocess(section: &str) -> (PreprocessPlan, Vec<String>) {
        let text = format!("{REQUIRED}[model]\narch = \"cvt-tiny\"\n[preprocess]\n{section}");
        resolve(&text, |check| {
            let spec = check.loaded.spec.clone();
            let model = resolve_model(check, &spec.model, None);
            resolve_preprocess(check, &spec.preprocess, &model)
        })
    }

    #[test]
    fn explicit_values_give_the_recipe_and_input_size() {
        let (plan, issues) = preprocess("resize = 40\ncenter_crop = [32, 30]\nmean = [0.1, 0.2, 0.3]\n");
        assert!(issues.is_empty(), "{issues:?}");
        assert_eq!(plan.input_size, (32, 30));
        assert_eq!(plan.recipe.center_crop, Some((32, 30)));
        assert_eq!(plan.normalize.mean, [0.1, 0.2, 0.3]);
        assert_eq!(plan.preset, None);
    }

    #[test]
    fn bad_values_and_a_preset_beside_explicit_values_are_named() {
        let (_, issues) = preprocess("resize = 40\nstd = [0.5, 0.0, 0.5]\n");
        assert_eq!(issues, ["preprocess.resize", "preprocess.std[1]"], "a single edge without a crop gives images of many shapes");
        let (_, issues) = preprocess("resize = [32, 32]\nmean = [nan, 0.5, inf]\nstd = [1e-300, 0.5, 0.5]\n");
        assert_eq!(issues, ["preprocess.std[0]", "preprocess.mean[0]", "preprocess.mean[2]"], "not finite, or 0 in f32");
        let (_, issues) = preprocess("resize = [32, 32]\nmean = [3e38, 0.5, 0.5]\nstd = [1e-6, 0.5, 0.5]\n");
        assert_eq!(issues, ["preprocess.std[0]"], "normalised pixels far beyond f32's safe range");
        let (_, issues) = preprocess("resize = [32, 32]\nmean = [0.485, 0.456, 0.406]\nstd = [0.229, 0.224, 0.225]\n");
        assert!(issues.is_empty(), "ImageNet's statistics: {issues:?}");
        let (_, issues) = preprocess("resize = [32, 32]\ncenter_crop = [40, 32]\n");
        assert_eq!(issues, ["preprocess.center_crop"], "a crop larger than the resize");
        let (_, issues) = preprocess("resize = 32\ncenter_crop = 33\n");
        assert_eq!(issues, ["preprocess.center_crop"], "a crop larger than the shorter edge");
        let (_, issues) = preprocess("resize = 32\ncenter_crop = 32\n");
        assert!(issues.is_empty(), "{issues:?}");
        let (plan, issues) = preprocess("preset = \"hf\"\nresize = [32, 32]\n");
        assert_eq!(issues, ["preprocess.resize"]);
        assert!(plan.preset.unwrap().contains("family defaults"));
    }
}
