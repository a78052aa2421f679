//! Spec → Plan: every value range-checked, every path made concrete, every name resolved to a
//! typed choice. After this point nothing holds an unchecked string; everything downstream
//! (data, model, training, report) works from the [`Plan`] only.
//!
//! All problems are collected and reported together, each naming the file, key and value.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::augment::{Chain, Interpolation, Op, ResizeTo};
use crate::backend::Backend;
use crate::data::images::Recipe;
use crate::data::loader::AugmentMode;
use crate::data::tensor::Normalize;
use crate::data::{Layout, SplitRule};
use crate::error::Result;
use crate::model::hub::{CheckpointFiles, Locator};
use crate::model::pretrained::Processor;
use crate::model::{Arch, Options};
use crate::progress::Progress;
use crate::spec::schema::{self, AugmentOp, Degrees, Size};
use crate::spec::{LoadedSpec, SpecError, SpecIssue, closest};
use crate::train::Select;
use crate::train::schedule::Shape;

/// A validated experiment, ready to run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub spec_file: PathBuf,
    /// The fully resolved spec, as TOML (written to the run folder as `spec.toml`).
    pub resolved_toml: String,
    pub name: String,
    pub description: String,
    pub seed: u64,
    pub data: DataPlan,
    pub preprocess: PreprocessPlan,
    pub augment: AugmentPlan,
    pub model: ModelPlan,
    pub train: TrainPlan,
    pub runtime: RuntimePlan,
    pub report: ReportPlan,
}

#[derive(Debug, Clone)]
pub struct DataPlan {
    pub layout: Layout,
    pub split: SplitRule,
    /// Zip archive to download when `layout.root` does not exist.
    pub source: Option<String>,
    pub expect: Option<BTreeMap<String, BTreeMap<String, usize>>>,
}

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
    fn from_processor(processor: &Processor, origin: String) -> Self {
        Self {
            recipe: Recipe { resize: Some((processor.resize, processor.interpolation)), center_crop: processor.center_crop },
            normalize: Normalize { mean: processor.mean.map(|v| v as f32), std: processor.std.map(|v| v as f32) },
            input_size: processor.input_size().unwrap_or((224, 224)),
            preset: Some(origin),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ModelPlan {
    pub arch: Arch,
    pub options: Options,
    pub pretrained: Option<PretrainedPlan>,
    /// Parameter-path prefixes to freeze.
    pub freeze: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct PretrainedPlan {
    pub locator: Locator,
    /// The checkpoint's files when they are on disk (`None`: to be downloaded by `run`).
    pub files: Option<CheckpointFiles>,
}

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

#[derive(Debug, Clone)]
pub struct TrainPlan {
    pub epochs: usize,
    pub batch_size: usize,
    pub eval_batch_size: usize,
    pub lr: f64,
    pub betas: (f64, f64),
    pub eps: f64,
    pub weight_decay: f64,
    pub schedule: Shape,
    pub warmup: Warmup,
    pub grad_clip: Option<f64>,
    pub select: Select,
    pub patience: Option<usize>,
    pub max_steps: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Warmup {
    Steps(usize),
    Ratio(f64),
}

impl Warmup {
    pub fn steps(self, total_steps: usize) -> usize {
        match self {
            Warmup::Steps(steps) => steps,
            // transformers: math.ceil(total_steps * warmup_ratio)
            Warmup::Ratio(ratio) => (total_steps as f64 * ratio).ceil() as usize,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct RuntimePlan {
    pub backend: Backend,
    /// `runtime.device`: which GPU.
    pub device: Option<usize>,
    pub threads: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct ReportPlan {
    pub markdown: bool,
    pub html: bool,
    pub prediction_grid: usize,
    pub mistakes: usize,
    pub attention_maps: usize,
    /// A folder of templates replacing the built-in ones, absolute.
    pub templates: Option<PathBuf>,
}

/// Collects issues while resolving, each located through the loaded spec's provenance.
struct Checker<'a> {
    loaded: &'a LoadedSpec,
    issues: Vec<SpecIssue>,
}

impl Checker<'_> {
    fn fail(&mut self, key: &str, value: impl Into<Option<String>>, message: impl Into<String>) {
        let origin_key = key.split('[').next().unwrap_or(key);
        self.issues.push(SpecIssue {
            origin: self.loaded.origin(origin_key),
            key: key.to_string(),
            value: value.into(),
            message: message.into(),
            hint: None,
        });
    }

    fn fail_with_hint(&mut self, key: &str, value: String, message: impl Into<String>, hint: Option<String>) {
        self.fail(key, Some(value), message);
        if let Some(last) = self.issues.last_mut() {
            last.hint = hint;
        }
    }

    /// `lo < value < hi` (or `<=` where `inclusive`).
    fn range(&mut self, key: &str, value: f64, lo: f64, hi: f64, lo_inclusive: bool, hi_inclusive: bool) {
        let above = if lo_inclusive { value >= lo } else { value > lo };
        let below = if hi_inclusive { value <= hi } else { value < hi };
        if !(value.is_finite() && above && below) {
            let (open, close) = (if lo_inclusive { "[" } else { "(" }, if hi_inclusive { "]" } else { ")" });
            let hi_text = if hi.is_infinite() { "∞".to_string() } else { hi.to_string() };
            self.fail(key, Some(value.to_string()), format!("must be in {open}{lo}, {hi_text}{close}"));
        }
    }

    fn positive(&mut self, key: &str, value: usize) {
        if value == 0 {
            self.fail(key, Some("0".into()), "must be at least 1");
        }
    }
}

impl Plan {
    /// Validates `loaded` and resolves it into a plan.
    pub fn resolve(loaded: &LoadedSpec) -> Result<Self, SpecError> {
        let spec = &loaded.spec;
        let mut check = Checker { loaded, issues: Vec::new() };

        let name = spec.experiment.name.clone();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) || name.starts_with('.') {
            check.fail("experiment.name", Some(format!("{name:?}")), "must be a folder-safe name: letters, digits, '-', '_', '.'");
        }

        let data = resolve_data(&mut check, &spec.data, spec.experiment.seed);
        let model = resolve_model(&mut check, &spec.model);
        let preprocess = resolve_preprocess(&mut check, &spec.preprocess, &model);
        let augment = resolve_augment(&mut check, &spec.augment, preprocess.input_size);
        if let Some(patch) = model.arch.patch_size()
            && model.pretrained.is_none()
            && (preprocess.input_size.0 != preprocess.input_size.1 || !(preprocess.input_size.0 as usize).is_multiple_of(patch))
        {
            check.fail(
                "preprocess",
                None,
                format!(
                    "{} needs square inputs whose side is a multiple of its patch size {patch}; preprocessing gives {}x{}",
                    model.arch.name(),
                    preprocess.input_size.0,
                    preprocess.input_size.1
                ),
            );
        }
        let train = resolve_train(&mut check, &spec.train);
        let backend = match spec.runtime.backend {
            schema::BackendName::Auto => Backend::Auto,
            schema::BackendName::Flex => Backend::Flex,
            schema::BackendName::Wgpu => Backend::Wgpu,
            schema::BackendName::Cuda => Backend::Cuda,
        };
        if let Some(threads) = spec.runtime.threads {
            check.positive("runtime.threads", threads);
        }
        for (key, value) in [
            ("report.prediction_grid", spec.report.prediction_grid),
            ("report.mistakes", spec.report.mistakes),
            ("report.attention_maps", spec.report.attention_maps),
        ] {
            if value > 100 {
                check.fail(key, Some(value.to_string()), "must be at most 100");
            }
        }
        let templates = spec.report.templates.as_ref().and_then(|value| {
            let base = check.loaded.base_dir("report.templates").unwrap_or_default();
            let dir = normalize(&base.join(value));
            if dir.is_dir() {
                Some(dir)
            } else {
                check.fail("report.templates", Some(format!("{value:?}")), format!("{} is not a folder", crate::fmt::display_path(&dir)));
                None
            }
        });

        if !check.issues.is_empty() {
            return Err(SpecError { issues: check.issues });
        }
        let mut resolved = spec.clone();
        resolved.data.root = data.layout.root.clone().into();
        // a plan is one run: the sweep that may have produced it is not part of its spec
        resolved.sweep = None;
        let resolved_toml = toml::to_string(&resolved).map_err(|e| {
            SpecError::single(SpecIssue {
                origin: crate::fmt::display_path(&loaded.file),
                key: String::new(),
                value: None,
                message: format!("cannot write the resolved spec back as TOML: {e}"),
                hint: None,
            })
        })?;
        Ok(Self {
            spec_file: loaded.file.clone(),
            resolved_toml,
            name,
            description: spec.experiment.description.clone(),
            seed: spec.experiment.seed,
            data,
            preprocess,
            augment,
            model,
            train,
            runtime: RuntimePlan { backend, device: spec.runtime.device, threads: spec.runtime.threads },
            report: ReportPlan {
                markdown: spec.report.formats.contains(&schema::ReportFormat::Markdown),
                html: spec.report.formats.contains(&schema::ReportFormat::Html),
                prediction_grid: spec.report.prediction_grid,
                mistakes: spec.report.mistakes,
                attention_maps: spec.report.attention_maps,
                templates,
            },
        })
    }
}

impl Plan {
    /// Makes sure the pretrained checkpoint is on disk (downloading it from the Hub when it is
    /// neither local nor cached), and takes the preprocessing of `preset = "hf"` from it.
    pub fn fetch_checkpoint(&mut self, progress: &Progress) -> Result<()> {
        let Some(pretrained) = &mut self.model.pretrained else {
            return Ok(());
        };
        if pretrained.files.is_some() {
            return Ok(());
        }
        progress.log(format!("pretrained: fetching {}", pretrained.locator.describe()));
        let files = pretrained.locator.fetch(progress)?;
        if self.preprocess.preset.is_some() {
            let (processor, origin) = checkpoint_processor(&files, self.model.arch)?;
            self.preprocess = PreprocessPlan::from_processor(&processor, origin);
            if let Some(problem) = chain_size_problem(&self.augment.chain, self.preprocess.input_size) {
                return Err(crate::error::Error::Model(format!("augment.chain: {problem}")));
            }
        }
        pretrained.files = Some(files);
        Ok(())
    }
}

/// The image processor of a checkpoint on disk (its `preprocessor_config.json`, or the family
/// default) and a note of where it came from.
fn checkpoint_processor(files: &CheckpointFiles, arch: Arch) -> Result<(Processor, String)> {
    match &files.preprocessor {
        Some(path) => Ok((Processor::read(path, arch.family())?, format!("preset hf: {}", path.display()))),
        None => Ok((
            Processor::family_default(arch.family()),
            format!("preset hf: {} has no preprocessor_config.json; {} family defaults", files.config.parent().unwrap_or(&files.config).display(), arch.family().name()),
        )),
    }
}

fn resolve_data(check: &mut Checker, data: &schema::Data, seed: u64) -> DataPlan {
    let root = normalize(&data.root.relative());
    if let Some(source) = &data.source
        && !(source.starts_with("http://") || source.starts_with("https://"))
    {
        check.fail("data.source", Some(format!("{source:?}")), "must be an http:// or https:// URL of a zip archive");
    }
    if !root.is_dir() && data.source.is_none() {
        let what = if root.exists() { "is not a folder" } else { "does not exist" };
        check.fail(
            "data.root",
            Some(format!("{:?}", data.root.original().display().to_string())),
            format!("{} {what} (set data.source to download it)", root.display()),
        );
    }
    for (key, folder) in [("data.train", Some(&data.train)), ("data.test", data.test.as_ref())] {
        if let Some(folder) = folder
            && (folder.is_empty() || folder.contains(".."))
        {
            check.fail(key, Some(format!("{folder:?}")), "must name a folder inside data.root");
        }
    }
    if let Some(classes) = &data.classes {
        let mut seen = std::collections::HashSet::new();
        if classes.is_empty() {
            check.fail("data.classes", Some("[]".into()), "must list at least one class (or be left out)");
        }
        for class in classes {
            if class.is_empty() || !seen.insert(class) {
                check.fail("data.classes", Some(format!("{class:?}")), "class names must be non-empty and unique");
            }
        }
    }
    check.range("data.split.validation", data.split.validation, 0.0, 1.0, false, false);
    DataPlan {
        layout: Layout { root, train: data.train.clone(), test: data.test.clone(), classes: data.classes.clone() },
        split: SplitRule {
            validation: data.split.validation,
            stratify: data.split.stratify,
            seed: data.split.seed.unwrap_or(seed),
            group_duplicates: data.split.group_duplicates,
        },
        source: data.source.clone(),
        expect: data.expect.clone(),
    }
}

/// An absolute path with `.` and `..` removed lexically (symlinks are kept as written).
fn normalize(path: &std::path::Path) -> PathBuf {
    use std::path::Component;
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for component in absolute.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn interpolation(value: schema::Interpolation) -> Interpolation {
    match value {
        schema::Interpolation::Nearest => Interpolation::Nearest,
        schema::Interpolation::Bilinear => Interpolation::Bilinear,
        schema::Interpolation::Bicubic => Interpolation::Bicubic,
    }
}

/// A size as a resize target (one number = shorter edge).
fn resize_to(check: &mut Checker, key: &str, size: Size) -> ResizeTo {
    match size {
        Size::Edge(edge) => {
            check.positive(key, edge as usize);
            ResizeTo::ShorterEdge(edge)
        }
        Size::Exact([height, width]) => {
            if height == 0 || width == 0 {
                check.fail(key, Some(format!("[{height}, {width}]")), "sizes must be at least 1");
            }
            ResizeTo::Exact { height, width }
        }
    }
}

/// A size as a crop (one number = square).
fn crop_size(check: &mut Checker, key: &str, size: Size) -> (u32, u32) {
    let (height, width) = match size {
        Size::Edge(edge) => (edge, edge),
        Size::Exact([height, width]) => (height, width),
    };
    if height == 0 || width == 0 {
        check.fail(key, Some(format!("[{height}, {width}]")), "sizes must be at least 1");
    }
    (height, width)
}

fn resolve_preprocess(check: &mut Checker, pre: &schema::Preprocess, model: &ModelPlan) -> PreprocessPlan {
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
            (Some(files), _) => match checkpoint_processor(files, model.arch) {
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
    let input_size = match (center_crop, resize.fixed_size()) {
        (Some(crop), _) => crop,
        (None, Some(size)) => size,
        (None, None) => {
            check.fail(
                "preprocess.resize",
                pre.resize.map(|r| format!("{r:?}")),
                "a single number resizes the shorter edge, so images of other shapes would differ in size; give [height, width] or add preprocess.center_crop",
            );
            (1, 1)
        }
    };
    let std = pre.std.unwrap_or([0.5; 3]);
    for (c, &value) in std.iter().enumerate() {
        if !(value.is_finite() && value > 0.0) {
            check.fail(&format!("preprocess.std[{c}]"), Some(value.to_string()), "must be positive");
        }
    }
    PreprocessPlan {
        recipe: Recipe { resize: Some((resize, interpolation(pre.interpolation.unwrap_or_default()))), center_crop },
        normalize: Normalize { mean: pre.mean.unwrap_or([0.5; 3]).map(|v| v as f32), std: std.map(|v| v as f32) },
        input_size,
        preset: None,
    }
}

/// Why `chain` cannot feed a model whose inputs are `input_size`, if it cannot.
fn chain_size_problem(chain: &Chain, input_size: (u32, u32)) -> Option<String> {
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

fn resolve_augment(check: &mut Checker, aug: &schema::Augment, input_size: (u32, u32)) -> AugmentPlan {
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
    let mode = match aug.mode {
        schema::AugmentMode::Append => AugmentMode::Append,
        schema::AugmentMode::Online => AugmentMode::Online,
    };
    AugmentPlan { mode, copies: aug.copies, chain }
}

fn resolve_model(check: &mut Checker, model: &schema::Model) -> ModelPlan {
    let arch = Arch::parse(&model.arch).unwrap_or_else(|| {
        let names = Arch::names();
        let hint = closest(&model.arch, names.iter().copied()).map(|best| format!("did you mean {best:?}?"));
        check.fail_with_hint(
            "model.arch",
            format!("{:?}", model.arch),
            format!("unknown architecture; expected one of: {}", names.join(", ")),
            hint,
        );
        Arch::CvtTiny
    });
    if let Some(rate) = model.drop_path_rate {
        check.range("model.drop_path_rate", rate, 0.0, 1.0, true, false);
    }
    check.range("model.dropout", model.dropout, 0.0, 1.0, true, false);
    let pretrained = model.pretrained.as_ref().and_then(|value| {
        let base = check.loaded.base_dir("model.pretrained");
        match Locator::parse(value, base.as_deref()) {
            Err(message) => {
                check.fail("model.pretrained", Some(format!("{value:?}")), message);
                None
            }
            Ok(locator) => match locator.find_local() {
                Ok(files) => Some(PretrainedPlan { locator, files }),
                Err(e) => {
                    check.fail("model.pretrained", Some(format!("{value:?}")), e.to_string());
                    None
                }
            },
        }
    });
    for prefix in &model.freeze {
        if prefix.is_empty() || prefix.starts_with('.') || prefix.ends_with('.') {
            check.fail("model.freeze", Some(format!("{prefix:?}")), "must be a dotted parameter-path prefix (e.g. \"cvt.encoder.stages.0\") or \"backbone\"");
        }
    }
    ModelPlan {
        arch,
        options: Options { drop_path_rate: model.drop_path_rate, dropout: model.dropout },
        pretrained,
        freeze: model.freeze.clone(),
    }
}

fn resolve_train(check: &mut Checker, train: &schema::Train) -> TrainPlan {
    check.positive("train.epochs", train.epochs);
    check.positive("train.batch_size", train.batch_size);
    if let Some(eval) = train.eval_batch_size {
        check.positive("train.eval_batch_size", eval);
    }
    let opt = &train.optimizer;
    check.range("train.optimizer.lr", opt.lr, 0.0, f64::INFINITY, false, false);
    check.range("train.optimizer.betas[0]", opt.betas[0], 0.0, 1.0, true, false);
    check.range("train.optimizer.betas[1]", opt.betas[1], 0.0, 1.0, true, false);
    check.range("train.optimizer.eps", opt.eps, 0.0, f64::INFINITY, false, false);
    check.range("train.optimizer.weight_decay", opt.weight_decay, 0.0, f64::INFINITY, true, false);
    let warmup = match (train.schedule.warmup_steps, train.schedule.warmup_ratio) {
        (Some(_), Some(_)) => {
            check.fail("train.schedule.warmup_ratio", None, "set either warmup_steps or warmup_ratio, not both");
            Warmup::Steps(0)
        }
        (Some(steps), None) => Warmup::Steps(steps),
        (None, Some(ratio)) => {
            check.range("train.schedule.warmup_ratio", ratio, 0.0, 1.0, true, false);
            Warmup::Ratio(ratio)
        }
        (None, None) => Warmup::Steps(0),
    };
    if let Some(clip) = train.grad_clip {
        check.range("train.grad_clip", clip, 0.0, f64::INFINITY, false, false);
    }
    if let Some(patience) = train.early_stop_patience {
        check.positive("train.early_stop_patience", patience);
    }
    if let Some(steps) = train.max_steps {
        check.positive("train.max_steps", steps);
    }
    TrainPlan {
        epochs: train.epochs,
        batch_size: train.batch_size,
        eval_batch_size: train.eval_batch_size.unwrap_or(train.batch_size * 2),
        lr: opt.lr,
        betas: (opt.betas[0], opt.betas[1]),
        eps: opt.eps,
        weight_decay: opt.weight_decay,
        schedule: match train.schedule.name {
            schema::ScheduleName::Constant => Shape::Constant,
            schema::ScheduleName::Linear => Shape::Linear,
            schema::ScheduleName::Cosine => Shape::Cosine,
        },
        warmup,
        grad_clip: train.grad_clip,
        select: match train.select_best {
            schema::SelectMetric::Accuracy => Select::Accuracy,
            schema::SelectMetric::MacroF1 => Select::MacroF1,
            schema::SelectMetric::WeightedF1 => Select::WeightedF1,
            schema::SelectMetric::Loss => Select::Loss,
        },
        patience: train.early_stop_patience,
        max_steps: train.max_steps,
    }
}
