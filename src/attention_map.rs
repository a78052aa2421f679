//! One image's attention map: the data a model's forward pass yields (`model::attention`), the
//! run folder stores (`attention.json`) and the report draws. A leaf, so that neither the run
//! folder nor the report depends on the model code.

use serde::{Deserialize, Serialize};

/// [`AttentionMap::method`] of a ViT's map.
pub const ROLLOUT: &str = "rollout";
/// [`AttentionMap::method`] of a CvT's map.
pub const CLS_ATTENTION: &str = "cls-attention";
/// [`AttentionMap::method`] of a CvT without a cls token in its last stage.
pub const MEAN_ATTENTION: &str = "mean-attention";

/// One image's attention map on the model's token grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttentionMap {
    pub height: usize,
    pub width: usize,
    /// `height * width` raw values, row-major (not rescaled; see [`AttentionMap::normalized`]);
    /// NaN, written as `null`, reads back as NaN.
    #[serde(deserialize_with = "crate::nonfinite::f32s")]
    pub values: Vec<f32>,
    /// [`ROLLOUT`], [`CLS_ATTENTION`] or [`MEAN_ATTENTION`].
    pub method: String,
}

impl AttentionMap {
    /// The values rescaled to [0, 1] by this map's own minimum and maximum (all 0 for a constant
    /// map), for display.
    pub fn normalized(&self) -> Vec<f32> {
        let min = self.values.iter().copied().fold(f32::INFINITY, f32::min);
        let max = self.values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let range = max - min;
        self.values.iter().map(|v| if range > 0.0 { (v - min) / range } else { 0.0 }).collect()
    }
}
