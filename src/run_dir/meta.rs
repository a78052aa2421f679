//! `meta.json`: what ran, where, when, and how it ended.

use serde::{Deserialize, Serialize};

use super::RunDir;
use crate::error::{Error, Result};

use super::META;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Running,
    Complete,
    Failed,
}

/// Per-class image counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub train: Vec<usize>,
    pub val: Vec<usize>,
    pub test: Vec<usize>,
}

/// `meta.json`: what ran, where, when, and how it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    pub experiment: String,
    pub description: String,
    pub run_id: String,
    pub status: Status,
    #[serde(default)]
    pub error: Option<String>,
    pub brasa_version: String,
    pub git_commit: String,
    pub burn_version: String,
    pub backend: String,
    /// The device chosen (adapter, driver, API) and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<crate::backend::DeviceInfo>,
    /// The most GPU memory the allocator held during training (sampled), where the backend tells.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_memory_peak_bytes: Option<u64>,
    pub threads: usize,
    pub seed: u64,
    pub spec_file: String,
    pub data_root: String,
    pub started_at: String,
    #[serde(default)]
    pub finished_at: Option<String>,
    #[serde(default)]
    pub wall_seconds: Option<f64>,
    pub classes: Vec<String>,
    pub counts: Counts,
    /// A fingerprint of the run's images, classes and split (see `runner::resume`), so a resume
    /// with other data is refused; absent in run folders of brasa before 0.3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_fingerprint: Option<String>,
    /// Files in the dataset folders that are not images.
    pub skipped_files: Vec<String>,
    /// Image files left out because they cannot be read (`data.unreadable = "skip"`).
    #[serde(default)]
    pub unreadable: Vec<UnreadableFile>,
    pub model: ModelMeta,
    #[serde(default)]
    pub preprocess: Option<PreprocessMeta>,
    pub train: TrainMeta,
    #[serde(default)]
    pub report: ReportMeta,
    #[serde(default)]
    pub best_epoch: Option<usize>,
    #[serde(default)]
    pub epochs_run: usize,
    #[serde(default)]
    pub stopped_early: bool,
    /// Times this run was resumed after an interruption.
    #[serde(default)]
    pub resumed: usize,
}

/// An image file a run left out because it cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnreadableFile {
    pub path: String,
    pub class: String,
    /// `train` for the training folder (before the split), `test` for the test folder.
    pub folder: String,
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMeta {
    pub arch: String,
    pub parameters: usize,
    /// Parameters kept fixed (`model.freeze`).
    #[serde(default)]
    pub frozen: usize,
    pub input_size: [u32; 2],
    /// The spec's `model.pretrained`.
    #[serde(default)]
    pub pretrained: Option<String>,
    /// Every architecture hyperparameter (`model::ArchConfig`), so the run folder alone can
    /// rebuild the model.
    #[serde(default)]
    pub config: serde_json::Value,
    /// What importing the pretrained checkpoint did (`model::ImportReport`).
    #[serde(default)]
    pub import: Option<serde_json::Value>,
    /// Things worth knowing about how the model was built.
    #[serde(default)]
    pub notes: Vec<String>,
}

/// How every image became a model input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreprocessMeta {
    pub recipe: crate::data::images::Recipe,
    pub normalize: crate::data::tensor::Normalize,
    /// Where `preset = "hf"` took the values from.
    #[serde(default)]
    pub preset: Option<String>,
}

/// What the report of this run shows (from the spec's `[report]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportMeta {
    pub markdown: bool,
    pub html: bool,
    /// Test images drawn with their true and predicted labels.
    pub prediction_grid: usize,
    /// The most confident mistakes shown.
    #[serde(default)]
    pub mistakes: usize,
    /// Test images shown with attention maps (`attention.json`).
    #[serde(default)]
    pub attention_maps: usize,
    /// A folder of templates replacing the built-in ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub templates: Option<String>,
    /// TensorBoard event files in `tb/` (run folders from before them: written too).
    #[serde(default = "yes")]
    pub tensorboard: bool,
}

fn yes() -> bool {
    true
}

impl Default for ReportMeta {
    fn default() -> Self {
        Self { markdown: true, html: true, prediction_grid: 15, mistakes: 10, attention_maps: 4, templates: None, tensorboard: true }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainMeta {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub weight_decay: f64,
    pub schedule: String,
    pub warmup_steps: usize,
    pub grad_clip: Option<f64>,
    pub select_best: String,
    pub augment_mode: String,
    pub augment_copies: usize,
    pub samples_per_epoch: usize,
    pub steps_per_epoch: usize,
}

impl RunDir {
    pub fn write_meta(&self, meta: &Meta) -> Result<()> {
        let json = serde_json::to_string_pretty(meta).expect("meta serialises");
        self.write(META, json.as_bytes())
    }

    pub fn read_meta(&self) -> Result<Meta> {
        serde_json::from_str(&self.read_to_string(META)?)
            .map_err(|e| Error::run_dir(&self.root, format!("{META} is malformed: {e}")))
    }
}
