//! The TOML schema of an experiment spec: plain serde types, every field named as a user writes
//! it, defaults filled in, unknown keys rejected.
//!
//! This module only describes shape. It never touches the file system and never checks ranges
//! or cross-field rules: that is `plan`'s job, which turns a [`Spec`] into a validated `Plan`.

use std::collections::BTreeMap;

use figment::value::magic::RelativePathBuf;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One experiment, as written in TOML (after `extends`, environment and `--set` layering).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Handled by the loader before deserialising; kept here so the key is not "unknown".
    #[serde(default, skip_serializing)]
    pub extends: Option<String>,
    pub experiment: Experiment,
    pub data: Data,
    #[serde(default)]
    pub augment: Augment,
    #[serde(default)]
    pub preprocess: Preprocess,
    pub model: Model,
    #[serde(default)]
    pub train: Train,
    #[serde(default)]
    pub runtime: Runtime,
    #[serde(default)]
    pub report: Report,
    /// Where a sweep's trials run: on this machine, or as a Slurm job array. Not part of a
    /// run's resolved spec (a trial resumes under either launcher).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launcher: Option<Launcher>,
    /// Keys to vary across trials: each a dotted spec path ("train.optimizer.lr") with a list of
    /// values or a range, plus the sweep's own options (mode, repeats, trials, seed, jobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::sweep::json_schema")]
    pub sweep: Option<figment::value::Dict>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "default_seed")]
    pub seed: u64,
}

/// The architectures `model.arch` names (the `model` module's registry; tests/schema.rs keeps
/// the two equal).
pub const ARCH_NAMES: [&str; 7] = ["cvt-13", "cvt-21", "cvt-tiny", "vit-base-patch16-224", "vit-small-patch16-224", "vit-tiny-patch16-224", "vit-tiny"];

/// The JSON Schema of a spec file, from these types: every key with its type, default and doc
/// comment; unknown keys rejected. No table's keys are `required` (a file may be a base that
/// others `extends`; the loader checks presence on the merged spec); an augmentation step's are.
pub fn json_schema() -> String {
    let generator = schemars::generate::SchemaSettings::draft07().into_generator();
    let schema = generator.into_root_schema_for::<Spec>();
    let mut value = serde_json::to_value(&schema).expect("a schema is JSON");
    // (variants of a tagged or untagged enum, such as an augmentation step, keep theirs)
    fn drop_required(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                map.remove("required");
                for (key, child) in map.iter_mut() {
                    if key != "oneOf" && key != "anyOf" {
                        drop_required(child);
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(drop_required),
            _ => {}
        }
    }
    drop_required(&mut value);
    // TOML has no null: an optional key is just absent, so `Option`'s null alternative goes
    fn drop_null(value: &mut serde_json::Value) {
        use serde_json::Value;
        match value {
            Value::Object(map) => {
                if let Some(Value::Array(types)) = map.get_mut("type") {
                    types.retain(|t| t != "null");
                    if types.len() == 1 {
                        let only = types[0].clone();
                        map.insert("type".into(), only);
                    }
                }
                let nullable_ref = match map.get("anyOf") {
                    Some(Value::Array(options)) if options.len() == 2 && options[1] == serde_json::json!({"type": "null"}) => Some(options[0].clone()),
                    _ => None,
                };
                if let Some(Value::Object(inner)) = nullable_ref {
                    map.remove("anyOf");
                    for (k, v) in inner {
                        map.entry(k).or_insert(v);
                    }
                }
                map.values_mut().for_each(drop_null);
            }
            Value::Array(items) => items.iter_mut().for_each(drop_null),
            _ => {}
        }
    }
    drop_null(&mut value);
    if let Some(map) = value.as_object_mut() {
        map.insert("title".into(), "brasa experiment spec".into());
        map.insert("description".into(), "An experiment for `brasa run`: dataset and split, augmentation, model, training, runtime, report, sweep and launcher. Generated by `brasa schema`.".into());
    }
    let mut text = serde_json::to_string_pretty(&value).expect("a schema is JSON");
    text.push('\n');
    text
}

fn default_seed() -> u64 {
    42
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Data {
    /// The dataset folder; relative paths resolve against the spec file that sets it.
    #[serde(serialize_with = "RelativePathBuf::serialize_relative")]
    #[schemars(with = "String")]
    pub root: RelativePathBuf,
    #[serde(default)]
    pub layout: Layout,
    /// Folder (under `root`) holding the training images, one sub-folder per class.
    pub train: String,
    /// Folder (under `root`) holding the test images; no test evaluation when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<String>,
    /// Class names in label order; by default the sorted sub-folder names of `train`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<String>>,
    /// Where to download the dataset (a zip archive) when `root` does not exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Expected file count per split and class (`[data.expect.Training] glioma_tumor = 826`),
    /// checked before use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<BTreeMap<String, BTreeMap<String, usize>>>,
    #[serde(default)]
    pub split: Split,
    /// Where decoded images are kept while a run trains; the same numbers whichever is chosen.
    #[serde(default, skip_serializing_if = "Cache::is_auto")]
    pub cache: Cache,
    /// What an image file that cannot be read does to a run: stop it before training with the
    /// full list, or be left out (listed in the run folder and the report).
    #[serde(default, skip_serializing_if = "Unreadable::is_error")]
    pub unreadable: Unreadable,
}

/// `data.unreadable`: what to do with image files that cannot be read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Unreadable {
    /// Stop before training, listing every such file.
    #[default]
    Error,
    /// Leave them out of the run, and say so.
    Skip,
}

impl Unreadable {
    fn is_error(&self) -> bool {
        *self == Unreadable::Error
    }
}

/// `data.cache`: where decoded images are kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Cache {
    /// `memory` when the decoded images fit comfortably in the memory available, else `disk`.
    #[default]
    Auto,
    /// Every image decoded once per run and held in memory.
    Memory,
    /// Decoded once per dataset into the shared on-disk cache, read back as needed.
    Disk,
    /// Decoded again whenever it is needed; nothing kept.
    None,
}

impl Cache {
    fn is_auto(&self) -> bool {
        *self == Cache::Auto
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// `<root>/<split>/<class>/<image>`
    #[default]
    ImageFolder,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Split {
    /// Fraction of the training folder held out for validation.
    #[serde(default = "default_validation")]
    #[schemars(extend("exclusiveMinimum" = 0.0, "exclusiveMaximum" = 1.0))]
    pub validation: f64,
    #[serde(default = "default_true")]
    pub stratify: bool,
    /// Defaults to `experiment.seed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Keep every group of duplicate images (identical pixels or near-identical, as the dataset
    /// audit finds them) on one side of the train/validation split.
    #[serde(default)]
    pub group_duplicates: bool,
}

impl Default for Split {
    fn default() -> Self {
        Self { validation: default_validation(), stratify: true, seed: None, group_duplicates: false }
    }
}

fn default_validation() -> f64 {
    0.2
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Augment {
    #[serde(default)]
    pub mode: AugmentMode,
    /// Augmented copies of the training set (append mode: drawn once; online: redrawn each epoch);
    /// at least 1 when `chain` has ops (0 without a chain, the default of a spec with no `[augment]`).
    #[serde(default = "default_copies")]
    #[schemars(range(min = 0))]
    pub copies: usize,
    #[serde(default)]
    pub chain: Vec<AugmentOp>,
}

fn default_copies() -> usize {
    1
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AugmentMode {
    /// The clean set plus `copies` augmented copies drawn once, before training (the reference).
    #[default]
    Append,
    /// The clean set plus `copies` augmented copies redrawn every epoch.
    Online,
}

/// One augmentation step, with torchvision's semantics (PIL path).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum AugmentOp {
    Resize {
        size: Size,
        #[serde(default)]
        interpolation: Interpolation,
    },
    RandomRotation {
        /// A number `d` means uniform in [-d, d]; a pair means [min, max].
        degrees: Degrees,
        /// Fill value for the corners rotated in (0..255).
        #[serde(default)]
        fill: u8,
    },
    RandomResizedCrop {
        size: Size,
        #[serde(default = "default_crop_scale")]
        scale: [f64; 2],
        #[serde(default = "default_crop_ratio")]
        ratio: [f64; 2],
        #[serde(default)]
        interpolation: Interpolation,
    },
    HorizontalFlip {
        /// Probability of flipping an image.
        #[serde(default = "default_half")]
        #[schemars(range(min = 0.0, max = 1.0))]
        p: f64,
    },
    VerticalFlip {
        /// Probability of flipping an image.
        #[serde(default = "default_half")]
        #[schemars(range(min = 0.0, max = 1.0))]
        p: f64,
    },
    ColorJitter {
        /// Jitter factor drawn from [max(0, 1 - x), 1 + x] (0: none).
        #[serde(default)]
        #[schemars(range(min = 0.0))]
        brightness: f64,
        /// Jitter factor drawn from [max(0, 1 - x), 1 + x] (0: none).
        #[serde(default)]
        #[schemars(range(min = 0.0))]
        contrast: f64,
        /// Jitter factor drawn from [max(0, 1 - x), 1 + x] (0: none).
        #[serde(default)]
        #[schemars(range(min = 0.0))]
        saturation: f64,
    },
    /// Accepted only to explain, with a clear error, that normalisation is not a chain step.
    Normalize {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mean: Option<Vec<f64>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        std: Option<Vec<f64>>,
    },
}

fn default_crop_scale() -> [f64; 2] {
    [0.08, 1.0]
}

fn default_crop_ratio() -> [f64; 2] {
    [3.0 / 4.0, 4.0 / 3.0]
}

fn default_half() -> f64 {
    0.5
}

/// An image size: one number (`224`) or `[height, width]`.
///
/// For `resize`, one number means "shorter edge" (torchvision's `Resize(int)`); for crops it
/// means a square.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Size {
    Edge(#[schemars(range(min = 1))] u32),
    Exact([u32; 2]),
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Degrees {
    Symmetric(f64),
    Range([f64; 2]),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Interpolation {
    Nearest,
    #[default]
    Bilinear,
    Bicubic,
}

/// How every image becomes a model input. Either `preset = "hf"` (the checkpoint's image
/// processor, or the model family's) or explicit values.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Preprocess {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<PreprocessPreset>,
    /// Size every clean image is resized to (224x224 when unset and there is no preset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resize: Option<Size>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub center_crop: Option<Size>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interpolation: Option<Interpolation>,
    /// Per-channel mean and std, applied after pixels are scaled to 0..1 (0.5 when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<[f64; 3]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std: Option<[f64; 3]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PreprocessPreset {
    /// The Hugging Face image processor of `model.pretrained` (its
    /// `preprocessor_config.json`), or the model family's default processor.
    Hf,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Model {
    /// `cvt-13`, `cvt-21`, `cvt-tiny`, `vit-base-patch16-224`, `vit-small-patch16-224`,
    /// `vit-tiny-patch16-224` or `vit-tiny`.
    #[schemars(extend("enum" = ARCH_NAMES))]
    pub arch: String,
    /// Weights to start from: `hf:org/name[@revision]`, or a checkpoint file or folder
    /// (relative paths resolve against the spec file that sets them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pretrained: Option<String>,
    /// Parameter-path prefixes to freeze (`cvt.encoder.stages.0`), or `backbone` for
    /// everything but the classifier.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub freeze: Vec<String>,
    /// Stochastic-depth rate of the last stage (the architecture's default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0), extend("exclusiveMaximum" = 1.0))]
    pub drop_path_rate: Option<f64>,
    /// Dropout after attention and MLP projections (0 by default, like Hugging Face).
    #[serde(default)]
    #[schemars(range(min = 0.0), extend("exclusiveMaximum" = 1.0))]
    pub dropout: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Train {
    /// Passes over the training set.
    #[serde(default = "default_epochs")]
    #[schemars(range(min = 1))]
    pub epochs: usize,
    /// Images per optimizer step.
    #[serde(default = "default_batch_size")]
    #[schemars(range(min = 1))]
    pub batch_size: usize,
    /// Batch size for evaluation; defaults to twice `batch_size`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub eval_batch_size: Option<usize>,
    #[serde(default)]
    pub optimizer: Optimizer,
    #[serde(default)]
    pub schedule: Schedule,
    /// Clip the global gradient norm (all parameters together, like `clip_grad_norm_`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("exclusiveMinimum" = 0.0))]
    pub grad_clip: Option<f64>,
    /// Validation metric that picks the best checkpoint.
    #[serde(default)]
    pub select_best: SelectMetric,
    /// Stop after this many epochs without improvement of `select_best`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub early_stop_patience: Option<usize>,
    /// Stop after this many optimizer steps (the schedule ends there too), like the Trainer's
    /// `max_steps`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_steps: Option<usize>,
    /// Also save a checkpoint every this many steps in the middle of an epoch, so a run killed
    /// outright (`kill -9`, a lost node) loses at most that many steps. Signals always save one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub checkpoint_every_steps: Option<usize>,
}

impl Default for Train {
    fn default() -> Self {
        Self {
            epochs: default_epochs(),
            batch_size: default_batch_size(),
            eval_batch_size: None,
            optimizer: Optimizer::default(),
            schedule: Schedule::default(),
            grad_clip: None,
            select_best: SelectMetric::default(),
            early_stop_patience: None,
            max_steps: None,
            checkpoint_every_steps: None,
        }
    }
}

fn default_epochs() -> usize {
    10
}

fn default_batch_size() -> usize {
    16
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Optimizer {
    #[serde(default)]
    pub name: OptimizerName,
    /// Peak learning rate (after warm-up).
    #[serde(default = "default_lr")]
    #[schemars(extend("exclusiveMinimum" = 0.0))]
    pub lr: f64,
    #[serde(default = "default_betas")]
    pub betas: [f64; 2],
    /// PyTorch's default (burn's AdamW defaults to 1e-5).
    #[serde(default = "default_eps")]
    #[schemars(extend("exclusiveMinimum" = 0.0))]
    pub eps: f64,
    /// PyTorch's AdamW default (burn's defaults to 1e-4).
    #[serde(default = "default_weight_decay")]
    #[schemars(range(min = 0.0))]
    pub weight_decay: f64,
}

impl Default for Optimizer {
    fn default() -> Self {
        Self {
            name: OptimizerName::default(),
            lr: default_lr(),
            betas: default_betas(),
            eps: default_eps(),
            weight_decay: default_weight_decay(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerName {
    #[default]
    Adamw,
}

fn default_lr() -> f64 {
    2e-5
}

fn default_betas() -> [f64; 2] {
    [0.9, 0.999]
}

fn default_eps() -> f64 {
    1e-8
}

fn default_weight_decay() -> f64 {
    0.01
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    #[serde(default)]
    pub name: ScheduleName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_steps: Option<usize>,
    /// Warm-up as a fraction of all steps (instead of `warmup_steps`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0), extend("exclusiveMaximum" = 1.0))]
    pub warmup_ratio: Option<f64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleName {
    Constant,
    /// Linear decay to 0 at the last step (the Hugging Face Trainer's default).
    #[default]
    Linear,
    /// Cosine decay to 0 at the last step.
    Cosine,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SelectMetric {
    #[default]
    Accuracy,
    MacroF1,
    WeightedF1,
    Loss,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Runtime {
    #[serde(default)]
    pub backend: BackendName,
    /// Which GPU when there are several (0 = the first GPU adapter, or CUDA device 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<usize>,
    /// CPU threads; all cores when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub threads: Option<usize>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BackendName {
    /// The first real GPU adapter, else CUDA in a binary built with it where the machine runs it, else flex.
    #[default]
    Auto,
    Flex,
    Wgpu,
    Cuda,
}

/// `[launcher]`: where a sweep's trials run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Launcher {
    #[serde(default)]
    pub name: LauncherName,
    #[serde(default)]
    pub slurm: Slurm,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LauncherName {
    /// Trial processes on this machine, `--jobs` at a time.
    #[default]
    Local,
    /// One Slurm job array for the unfinished trials; `brasa run` submits it and exits.
    Slurm,
}

/// `[launcher.slurm]`: the job array's sbatch options.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Slurm {
    /// `--partition`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// `--time`, per trial, in Slurm's forms: `MM`, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM`, `D-HH:MM:SS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// `--cpus-per-task`; each trial then trains with that many threads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub cpus_per_task: Option<usize>,
    /// `--mem`, per trial, e.g. `"8G"` (without it Slurm may give a job the whole node's memory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem: Option<String>,
    /// GPUs per trial: `--gres=gpu:N`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub gpus: Option<usize>,
    /// Trials running at once: the array's `%N`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub array_parallelism: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraint: Option<String>,
    /// Raw sbatch options, one per item, e.g. `["--exclusive", "--nice=10"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_args: Vec<String>,
    /// Seconds before the time limit at which Slurm sends SIGUSR1: the trial saves a checkpoint
    /// and requeues itself.
    #[serde(default = "default_signal_before_limit_s")]
    #[schemars(range(min = 1, max = 65535))]
    pub signal_before_limit_s: u64,
    /// Shell lines run before brasa in each job (e.g. `module load cuda`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub setup: Vec<String>,
}

impl Default for Slurm {
    fn default() -> Self {
        Self {
            partition: None,
            time: None,
            cpus_per_task: None,
            mem: None,
            gpus: None,
            array_parallelism: None,
            account: None,
            qos: None,
            constraint: None,
            extra_args: Vec::new(),
            signal_before_limit_s: default_signal_before_limit_s(),
            setup: Vec::new(),
        }
    }
}

fn default_signal_before_limit_s() -> u64 {
    120
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Report {
    #[serde(default = "default_formats")]
    pub formats: Vec<ReportFormat>,
    /// Test images shown with their true and predicted labels.
    #[serde(default = "default_prediction_grid")]
    #[schemars(range(max = 100))]
    pub prediction_grid: usize,
    /// The most confident wrong test predictions shown as a gallery.
    #[serde(default = "default_mistakes")]
    #[schemars(range(max = 100))]
    pub mistakes: usize,
    /// Test images shown with the model's attention (ViT rollout, CvT last-stage cls attention).
    #[serde(default = "default_attention_maps")]
    #[schemars(range(max = 100))]
    pub attention_maps: usize,
    /// A folder of templates (`report.md.j2`, `report.html.j2`) replacing the built-in ones
    /// file by file; relative paths resolve against the spec file that sets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub templates: Option<String>,
    /// TensorBoard event files in the run folder's `tb/` (`tensorboard --logdir reports/`).
    /// Written into a resolved spec only when off, so the specs of runs and sweeps from before
    /// the key resolve as they did (a resume compares them, a sweep folder's name hashes one).
    #[serde(default = "default_tensorboard", skip_serializing_if = "is_true")]
    pub tensorboard: bool,
}

impl Default for Report {
    fn default() -> Self {
        Self {
            formats: default_formats(),
            prediction_grid: default_prediction_grid(),
            mistakes: default_mistakes(),
            attention_maps: default_attention_maps(),
            templates: None,
            tensorboard: default_tensorboard(),
        }
    }
}

fn default_tensorboard() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

fn default_mistakes() -> usize {
    10
}

fn default_attention_maps() -> usize {
    4
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReportFormat {
    Markdown,
    Html,
}

fn default_formats() -> Vec<ReportFormat> {
    vec![ReportFormat::Markdown, ReportFormat::Html]
}

fn default_prediction_grid() -> usize {
    15
}
