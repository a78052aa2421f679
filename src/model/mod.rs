//! Models: the registry of architectures a spec can name, their concrete configurations, and
//! building one — from scratch, or from a Hugging Face checkpoint — and reading attention maps
//! out of one.

pub mod attention;
pub mod cvt;
pub mod hub;
pub mod layout;
pub mod norm;
pub mod params;
pub mod pretrained;
pub mod timm;
pub mod vit;

use std::path::Path;

use burn::module::{Module, ParamGroup};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

pub use attention::{AttentionMap, attention_maps};
pub use cvt::{CvtConfig, CvtForImageClassification};
pub use pretrained::{Family, ImportReport};
pub use vit::{ViTForImageClassification, VitConfig};

use crate::error::{Error, Result};


/// A model that maps images `[batch, 3, height, width]` to class logits `[batch, classes]`; what
/// `train` trains and evaluates, generically. `Sync`, as evaluation runs a batch on a thread of
/// the pool (`backend::on_pool`) while the model stays with the caller.
pub trait Classifier: burn::module::Module + Sync {
    fn logits(&self, pixels: Tensor<4>) -> Tensor<2>;
}

/// An architecture a spec can name in `model.arch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    Cvt13,
    Cvt21,
    CvtTiny,
    VitBasePatch16,
    VitSmallPatch16,
    VitTinyPatch16,
    VitTiny,
}

impl Arch {
    pub const ALL: [Arch; 7] = [
        Arch::Cvt13,
        Arch::Cvt21,
        Arch::CvtTiny,
        Arch::VitBasePatch16,
        Arch::VitSmallPatch16,
        Arch::VitTinyPatch16,
        Arch::VitTiny,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Arch::Cvt13 => "cvt-13",
            Arch::Cvt21 => "cvt-21",
            Arch::CvtTiny => "cvt-tiny",
            Arch::VitBasePatch16 => "vit-base-patch16-224",
            Arch::VitSmallPatch16 => "vit-small-patch16-224",
            Arch::VitTinyPatch16 => "vit-tiny-patch16-224",
            Arch::VitTiny => "vit-tiny",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    pub fn names() -> Vec<&'static str> {
        Self::ALL.iter().map(|a| a.name()).collect()
    }

    pub fn family(self) -> Family {
        match self {
            Arch::Cvt13 | Arch::Cvt21 | Arch::CvtTiny => Family::Cvt,
            _ => Family::Vit,
        }
    }

    /// The patch size a ViT needs the input size to be a multiple of.
    pub fn patch_size(self) -> Option<usize> {
        match self {
            Arch::VitTiny => Some(8),
            a if a.family() == Family::Vit => Some(16),
            _ => None,
        }
    }
}

/// Options a spec may set on top of an architecture's (or a checkpoint's) configuration.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Options {
    /// Stochastic depth of the last CvT stage.
    pub drop_path_rate: Option<f64>,
    /// Dropout after projections and in the MLP.
    pub dropout: f64,
}

/// Every hyperparameter of a concrete model (saved in each run's `meta.json`, so a run folder
/// can rebuild its model without the checkpoint it started from).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "family", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)] // a handful exist per process; boxing buys nothing
pub enum ArchConfig {
    Cvt(CvtConfig),
    Vit(VitConfig),
}

impl ArchConfig {
    /// The named architecture's defaults for `num_labels` classes and `input_size` images.
    pub fn for_arch(arch: Arch, num_labels: usize, input_size: (u32, u32)) -> Self {
        match arch {
            Arch::Cvt13 => Self::Cvt(CvtConfig::cvt13(num_labels)),
            Arch::Cvt21 => Self::Cvt(CvtConfig::cvt21(num_labels)),
            Arch::CvtTiny => Self::Cvt(CvtConfig::tiny(num_labels)),
            Arch::VitBasePatch16 => Self::Vit(VitConfig { image_size: input_size.0 as usize, ..VitConfig::base_patch16_224(num_labels) }),
            Arch::VitSmallPatch16 => Self::Vit(VitConfig { image_size: input_size.0 as usize, ..VitConfig::small_patch16_224(num_labels) }),
            Arch::VitTinyPatch16 => Self::Vit(VitConfig { image_size: input_size.0 as usize, ..VitConfig::tiny_patch16_224(num_labels) }),
            Arch::VitTiny => Self::Vit(VitConfig::tiny_patch8(num_labels, input_size.0 as usize)),
        }
    }

    pub fn family(&self) -> Family {
        match self {
            Self::Cvt(_) => Family::Cvt,
            Self::Vit(_) => Family::Vit,
        }
    }

    pub fn num_labels(&self) -> usize {
        match self {
            Self::Cvt(c) => c.num_labels,
            Self::Vit(c) => c.num_labels,
        }
    }

    /// Applies the spec's dropout / drop-path options.
    pub fn with_options(mut self, options: &Options) -> Self {
        match &mut self {
            Self::Cvt(c) => {
                if let Some(rate) = options.drop_path_rate {
                    *c.drop_path_rate.last_mut().expect("stages") = rate;
                }
                if options.dropout > 0.0 {
                    c.drop_rate = vec![options.dropout; c.stages()];
                }
            }
            Self::Vit(c) => {
                if options.dropout > 0.0 {
                    c.hidden_dropout_prob = options.dropout;
                }
            }
        }
        self
    }

    /// Whether images of `height × width` pixels fit the architecture: a ViT needs square
    /// inputs whose side is a multiple of its patch size; each CvT convolution (a stage's patch
    /// embedding, its query/key/value projections) needs its input, padded, at least its kernel.
    /// The error says why, for a message that names where the size came from.
    pub fn check_input(&self, (height, width): (u32, u32)) -> std::result::Result<(), String> {
        match self {
            Self::Vit(c) => {
                let patch = c.patch_size;
                if height != width || height == 0 || !(height as usize).is_multiple_of(patch) {
                    return Err(format!("a ViT with patch size {patch} needs square inputs whose side is a multiple of it; the input is {height}x{width}"));
                }
            }
            Self::Cvt(c) => {
                let (mut h, mut w) = (height as usize, width as usize);
                let fits = |n: usize, kernel: usize, padding: usize| n + 2 * padding >= kernel && n > 0;
                for stage in 0..c.stages() {
                    let (kernel, stride, padding) = (c.patch_sizes[stage], c.patch_stride[stage].max(1), c.patch_padding[stage]);
                    if !(fits(h, kernel, padding) && fits(w, kernel, padding)) {
                        return Err(format!(
                            "a {height}x{width} input is too small for this CvT: stage {stage}'s patch embedding ({kernel}x{kernel} kernel, padding {padding}) cannot take its {h}x{w} input"
                        ));
                    }
                    (h, w) = ((h + 2 * padding - kernel) / stride + 1, (w + 2 * padding - kernel) / stride + 1);
                    let (kernel, padding) = (c.kernel_qkv[stage], c.padding_kv[stage].min(c.padding_q[stage]));
                    if !(fits(h, kernel, padding) && fits(w, kernel, padding)) {
                        return Err(format!(
                            "a {height}x{width} input is too small for this CvT: stage {stage}'s query/key/value projections ({kernel}x{kernel} kernel) get a {h}x{w} token grid"
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    pub fn init(&self, device: &Device) -> Model {
        match self {
            Self::Cvt(c) => Model::Cvt(c.init(device)),
            Self::Vit(c) => Model::Vit(c.init(device)),
        }
    }
}

/// A built model of one of the families.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one or two exist per process; boxing buys nothing
pub enum Model {
    Cvt(CvtForImageClassification),
    Vit(ViTForImageClassification),
}

impl Model {
    /// Parameters as PyTorch counts them (BatchNorm running statistics are not parameters).
    pub fn num_params(&self) -> usize {
        match self {
            Model::Cvt(m) => params::count(m),
            Model::Vit(m) => params::count(m),
        }
    }

    /// Initialises every parameter not initialised yet (burn draws them lazily, at first use),
    /// in module order, from the device's generator.
    fn draw_fresh_parameters(&self) {
        match self {
            Model::Cvt(m) => params::initialize(m),
            Model::Vit(m) => params::initialize(m),
        }
    }

    /// The model on `device`, with its own autodiff graph; frozen parameters stay frozen.
    fn fork(self, device: &Device) -> Self {
        match self {
            Model::Cvt(m) => Model::Cvt(m.fork(device)),
            Model::Vit(m) => Model::Vit(m.fork(device)),
        }
    }
}

/// What to build.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub arch: Arch,
    pub options: Options,
    pub classes: &'a [String],
    pub input_size: (u32, u32),
    /// A checkpoint to start from, and how the spec named it.
    pub pretrained: Option<(&'a hub::CheckpointFiles, &'a str)>,
    /// Parameter path prefixes to freeze (`backbone`: everything but the classifier).
    pub freeze: &'a [String],
    /// What fresh parameters are drawn from (the experiment's seed).
    pub seed: u64,
}

/// A model ready to train, with its configuration and what importing weights did.
pub struct Built {
    pub model: Model,
    pub config: ArchConfig,
    pub import: Option<ImportReport>,
    /// Things the user should know (e.g. the checkpoint's labels differ from the classes).
    pub notes: Vec<String>,
    /// Number of parameters frozen.
    pub frozen: usize,
}

/// Builds the model `request` describes on `device`.
///
/// The model is made on flex and moved to `device` at the end: fresh parameters are drawn from
/// flex's generator seeded with `request.seed`, all at once and in module order, so a spec and
/// seed give the same initial weights on every backend (burn's GPU backends draw from other
/// generators) and nothing that touches a parameter first (resizing ViT position embeddings, the
/// first forward pass) changes what is drawn. Imported weights are never drawn. flex's generator
/// is global to the process: builds take turns, but other random draws on flex made by other
/// threads while a model is built would change its weights.
pub fn build(request: &Request, device: &Device) -> Result<Built> {
    let host = if device.is_autodiff() { Device::flex().autodiff() } else { Device::flex() };
    let mut built = build_on(request, &host)?;
    if &host != device {
        built.model = built.model.fork(device);
    }
    Ok(built)
}

fn build_on(request: &Request, device: &Device) -> Result<Built> {
    let num_classes = request.classes.len();
    let mut notes = Vec::new();
    let (config, checkpoint) = match request.pretrained {
        None => (ArchConfig::for_arch(request.arch, num_classes, request.input_size), None),
        Some((files, source)) => {
            let hf = pretrained::HfConfig::read(&files.config)?;
            if hf.family != request.arch.family() {
                return Err(Error::Model(format!(
                    "model.arch = {:?} is a {} but {source} is a {} checkpoint",
                    request.arch.name(),
                    request.arch.family().name(),
                    hf.family.name()
                )));
            }
            let config = hf.arch_config(num_classes)?;
            let replace = hf.labels.len() != num_classes;
            if replace {
                notes.push(format!(
                    "{source} classifies {} labels; its classifier is replaced by a new one for the {num_classes} classes",
                    hf.labels.len()
                ));
            } else if hf.labels != request.classes {
                notes.push(format!(
                    "{source}'s labels {:?} differ from the classes {:?}; the classifier is kept (same size) and fine-tuned",
                    hf.labels, request.classes
                ));
            }
            (config, Some((files, source, replace)))
        }
    };
    let config = config.with_options(&request.options);
    config.check_input(request.input_size).map_err(Error::Model)?;
    let mut model = config.init(device);
    let mut import = None;
    if let Some((files, source, replace)) = checkpoint {
        let report = match &mut model {
            Model::Cvt(m) => pretrained::import(m, &files.weights, Family::Cvt, source, replace)?,
            Model::Vit(m) => pretrained::import(m, &files.weights, Family::Vit, source, replace)?,
        };
        if !replace && !report.new.is_empty() {
            // a base model: whatever its config's labels say, the head is new
            notes.retain(|n| !n.contains("the classifier is kept"));
            notes.push(format!("{source} has no classification head ({}); a new one is trained for the {num_classes} classes", report.new.join(", ")));
        }
        import = Some(report);
    }
    {
        // flex's generator is the process's: one build draws at a time
        static DRAWING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _drawing = DRAWING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        device.seed(request.seed);
        model.draw_fresh_parameters();
    }
    // ViT position embeddings follow the input size.
    let (model, config) = match (model, config) {
        (Model::Vit(m), ArchConfig::Vit(mut c)) => {
            let size = request.input_size.0 as usize;
            if size != c.image_size {
                notes.push(format!("position embeddings interpolated from {0}x{0} to {1}x{1} pixels", c.image_size, size));
            }
            let m = m.resize_position_embeddings(size);
            c.image_size = size;
            (Model::Vit(m), ArchConfig::Vit(c))
        }
        other => other,
    };
    let (model, frozen) = freeze(model, request.freeze)?;
    Ok(Built { model, config, import, notes, frozen })
}

/// Freezes every parameter under the given path prefixes; a prefix that names nothing is an
/// error listing the top-level modules.
fn freeze(model: Model, prefixes: &[String]) -> Result<(Model, usize)> {
    if prefixes.is_empty() {
        return Ok((model, 0));
    }
    let ids = frozen_ids(&model, prefixes)?;
    let count = ids.len();
    let group = ParamGroup::from_ids(ids);
    let model = match model {
        Model::Cvt(m) => Model::Cvt(m.freeze_group(group)),
        Model::Vit(m) => Model::Vit(m.freeze_group(group)),
    };
    Ok((model, count))
}

/// Checks `model.freeze` against the parameter paths of the model `config` builds (before any
/// data is read: `brasa validate` and the plan's checks). Building allocates no weights: burn
/// initialises a parameter when it is first read, and only the paths are read here.
pub fn check_freeze(config: &ArchConfig, prefixes: &[String]) -> Result<()> {
    if prefixes.is_empty() {
        return Ok(());
    }
    frozen_ids(&config.init(&Device::flex()), prefixes).map(|_| ())
}

/// The parameters under the given path prefixes (`backbone`: all but the classifier's); a
/// prefix that names nothing is an error listing the top-level modules.
fn frozen_ids(model: &Model, prefixes: &[String]) -> Result<Vec<burn::module::ParamId>> {
    let params = match model {
        Model::Cvt(m) => params::named_params(m),
        Model::Vit(m) => params::named_params(m),
    };
    let mut ids = Vec::new();
    for prefix in prefixes {
        let matched: Vec<_> = params
            .iter()
            .filter(|p| if prefix == "backbone" { !p.is_under("classifier") } else { p.is_under(prefix) })
            .map(|p| p.id)
            .collect();
        if matched.is_empty() {
            let mut tops: Vec<String> = params.iter().map(|p| p.path.split('.').take(3).collect::<Vec<_>>().join(".")).collect();
            tops.dedup();
            return Err(Error::Model(format!(
                "model.freeze: {prefix:?} names no parameter; paths start with e.g. {}",
                tops.iter().take(6).cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        ids.extend(matched);
    }
    Ok(ids)
}

/// Saves a module's weights, BatchNorm running statistics included, as a burnpack file
/// (written atomically; parameter ids kept, so optimizer state saved beside it still matches).
pub fn save<M: Module>(model: &M, path: &Path) -> std::result::Result<(), String> {
    // `valid()` folds pending running-statistics updates into the module first: without it a
    // record would hold the statistics of the last `valid()` call.
    model.valid().into_record().save(path).map_err(|e| e.to_string())
}

/// Loads weights saved by [`save`] into `model` (which must have the same architecture).
///
/// The file is read whole first: burn's file reader reads tensors lazily, when they are first
/// used, and a live run deletes or replaces its older checkpoints (`brasa predict --run` on a run
/// still training would then fail inside a kernel). Read at once, the weights are the file as
/// it was opened, whatever happens to it afterwards.
pub fn load<M: Module>(model: M, path: &Path) -> std::result::Result<M, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let record = burn::store::ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes)).map_err(|e| e.to_string())?;
    model.try_load_record(record).map_err(|e| e.to_string())
}

impl Classifier for CvtForImageClassification {
    fn logits(&self, pixels: Tensor<4>) -> Tensor<2> {
        self.forward(pixels)
    }
}

impl Classifier for ViTForImageClassification {
    fn logits(&self, pixels: Tensor<4>) -> Tensor<2> {
        self.forward(pixels)
    }
}

/// A model that can show where it looked: [`attention_maps`] for a concrete model type.
pub trait Attending: Clone {
    fn into_model(self) -> Model;

    /// One map per image of `pixels` (normalised model inputs on a plain device).
    fn attention_maps(&self, pixels: Tensor<4>) -> Result<Vec<AttentionMap>> {
        attention_maps(&self.clone().into_model(), pixels)
    }
}

impl Attending for CvtForImageClassification {
    fn into_model(self) -> Model {
        Model::Cvt(self)
    }
}

impl Attending for ViTForImageClassification {
    fn into_model(self) -> Model {
        Model::Vit(self)
    }
}
