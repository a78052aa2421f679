//! `[augment]` → [`AugmentPlan`]: the chain of random transforms and how its outputs join the
//! training set.

use super::check::Checker;
use super::sizes::{crop_size, interpolation, resize_to};
use crate::augment::{Chain, Op};
use crate::data::images::Recipe;
use crate::data::loader::AugmentMode;
use crate::spec::schema::{self, AugmentOp, Degrees};

#[derive(Debug, Clone)]
pub struct AugmentPlan {
    pub mode: AugmentMode,
    pub copies: usize,
    pub chain: Chain,
}

impl AugmentPlan {
    /// How a decoded image becomes an augmentation source (the chain's leading resize, if any).
    pub fn source_recipe(&self) -> Recipe {
        Recipe { resize: self.chain.leading_resize(), center_crop: None }
    }
}

/// Why `chain` cannot feed a model whose inputs are `input_size`, if it cannot.
pub(super) fn chain_size_problem(chain: &Chain, input_size: (u32, u32)) -> Option<String> {
    if chain.ops.is_empty() {
        return None;
    }
    match chain.output_size(None) {
        Some(size) if size == input_size => None,
        Some((h, w)) => Some(format!(
            "the chain produces {h}x{w} images but the model input (preprocess) is {}x{}; end the chain with a resize or random_resized_crop of that size",
            input_size.0, input_size.1
        )),
        None => Some("the chain's output size depends on each image; end it with a resize to [height, width] or a random_resized_crop".into()),
    }
}

pub(super) fn resolve_augment(check: &mut Checker, aug: &schema::Augment, input_size: (u32, u32)) -> AugmentPlan {
    let mut ops = Vec::new();
    for (i, op) in aug.chain.iter().enumerate() {
        let key = |field: &str| format!("augment.chain[{i}].{field}");
        let resolved = match op {
            AugmentOp::Resize { size, interpolation: interp } => {
                Some(Op::Resize { to: resize_to(check, &key("size"), *size), interpolation: interpolation(*interp) })
            }
            AugmentOp::RandomRotation { degrees, fill } => {
                let range = match *degrees {
                    Degrees::Symmetric(d) => {
                        check.range(&key("degrees"), d, 0.0, 360.0, true, true);
                        (-d, d)
                    }
                    Degrees::Range([lo, hi]) => {
                        if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
                            check.fail(&key("degrees"), Some(format!("[{lo}, {hi}]")), "must be [min, max] with min <= max");
                        }
                        (lo, hi)
                    }
                };
                Some(Op::Rotate { degrees: range, fill: *fill })
            }
            AugmentOp::RandomResizedCrop { size, scale, ratio, interpolation: interp } => {
                if !(scale[0] > 0.0 && scale[0] <= scale[1] && scale[1] <= 1.0) {
                    check.fail(&key("scale"), Some(format!("[{}, {}]", scale[0], scale[1])), "must be [min, max] with 0 < min <= max <= 1");
                }
                if !(ratio[0] > 0.0 && ratio[0] <= ratio[1] && ratio[1].is_finite()) {
                    check.fail(&key("ratio"), Some(format!("[{}, {}]", ratio[0], ratio[1])), "must be [min, max] with 0 < min <= max");
                }
                Some(Op::ResizedCrop {
                    size: crop_size(check, &key("size"), *size),
                    scale: (scale[0], scale[1]),
                    ratio: (ratio[0], ratio[1]),
                    interpolation: interpolation(*interp),
                })
            }
            AugmentOp::HorizontalFlip { p } => {
                check.range(&key("p"), *p, 0.0, 1.0, true, true);
                Some(Op::HorizontalFlip { p: *p })
            }
            AugmentOp::VerticalFlip { p } => {
                check.range(&key("p"), *p, 0.0, 1.0, true, true);
                Some(Op::VerticalFlip { p: *p })
            }
            AugmentOp::ColorJitter { brightness, contrast, saturation } => {
                let mut factor = |field: &str, value: f64| {
                    check.range(&key(field), value, 0.0, f64::INFINITY, true, false);
                    // torchvision: a strength v means a factor uniform in [max(0, 1 - v), 1 + v];
                    // strength 0 leaves the property alone.
                    (value > 0.0).then(|| ((1.0 - value).max(0.0), 1.0 + value))
                };
                Some(Op::ColorJitter {
                    brightness: factor("brightness", *brightness),
                    contrast: factor("contrast", *contrast),
                    saturation: factor("saturation", *saturation),
                })
            }
            AugmentOp::Normalize { .. } => {
                check.fail(
                    &format!("augment.chain[{i}].op"),
                    Some("\"normalize\"".into()),
                    "normalisation is not an augmentation step: every image (clean or augmented) is scaled to 0..1 and normalised with preprocess.mean / preprocess.std; remove this op",
                );
                None
            }
        };
        ops.extend(resolved);
    }
    let chain = Chain { ops };
    if !chain.ops.is_empty() && aug.copies == 0 {
        check.fail("augment.copies", Some("0".into()), "must be at least 1 when augment.chain has ops (or remove the chain)");
    }
    if let Some(problem) = chain_size_problem(&chain, input_size) {
        check.fail("augment.chain", None, problem);
    }
    AugmentPlan { mode: aug.mode.into(), copies: aug.copies, chain }
}


impl From<schema::AugmentMode> for AugmentMode {
    fn from(mode: schema::AugmentMode) -> Self {
        match mode {
            schema::AugmentMode::Append => AugmentMode::Append,
            schema::AugmentMode::Online => AugmentMode::Online,
        }
    }
}

impl AugmentPlan {
    /// Copies of each training image the chain adds per epoch (none without a chain).
    pub fn effective_copies(&self) -> usize {
        if self.chain.ops.is_empty() { 0 } else { self.copies }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::check::testing::{REQUIRED, resolve};

    fn augment(chain: &str, copies: usize, input: (u32, u32)) -> (AugmentPlan, Vec<String>) {
        let text = format!("{REQUIRED}[model]\narch = \"cvt-tiny\"\n[augment]\ncopies = {copies}\nchain = [{chain}]\n");
        resolve(&text, |check| resolve_augment(check, &check.loaded.spec.augment.clone(), input))
    }

    #[test]
    fn a_chain_resolves_to_torchvision_factors_and_fits_the_input() {
        let (plan, issues) = augment(r#"{ op = "resize", size = [40, 40] }, { op = "color_jitter", brightness = 0.2 }, { op = "random_resized_crop", size = 32 }"#, 2, (32, 32));
        assert!(issues.is_empty(), "{issues:?}");
        assert_eq!(plan.effective_copies(), 2);
        assert!(matches!(plan.chain.ops[1], Op::ColorJitter { brightness: Some((lo, hi)), contrast: None, saturation: None } if (lo - 0.8).abs() < 1e-12 && (hi - 1.2).abs() < 1e-12));
        assert_eq!(plan.source_recipe().resize.map(|(to, _)| to), Some(crate::augment::ResizeTo::Exact { height: 40, width: 40 }));
    }

    #[test]
    fn a_chain_of_the_wrong_size_a_normalize_op_and_no_copies_are_named() {
        let (_, issues) = augment(r#"{ op = "normalize" }, { op = "random_resized_crop", size = 16 }"#, 0, (32, 32));
        assert_eq!(issues, ["augment.chain[0].op", "augment.copies", "augment.chain"]);
        let (plan, issues) = augment("", 0, (32, 32));
        assert!(issues.is_empty() && plan.effective_copies() == 0, "no chain, no copies: {issues:?}");
    }
}
