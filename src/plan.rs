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
use crate::model::{Arch, ModelSpec, Options};
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
    pub model: ModelSpec,
    pub pretrained: Option<String>,
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

#[derive(Debug, Clone, Copy)]
pub struct PreprocessPlan {
    /// How a decoded image becomes a clean model input.
    pub recipe: Recipe,
    pub normalize: Normalize,
    /// `(height, width)` of every model input.
    pub input_size: (u32, u32),
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
    pub threads: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct ReportPlan {
    pub markdown: bool,
    pub html: bool,
    pub prediction_grid: usize,
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
        let preprocess = resolve_preprocess(&mut check, &spec.preprocess);
        let augment = resolve_augment(&mut check, &spec.augment, preprocess.input_size);
        let model = resolve_model(&mut check, &spec.model);
        if let Some(pretrained) = &spec.model.pretrained
            && pretrained.trim().is_empty()
        {
            check.fail("model.pretrained", Some("\"\"".into()), "must be `hf:org/name` or a path");
        }
        let train = resolve_train(&mut check, &spec.train);
        let backend = match spec.runtime.backend {
            schema::BackendName::Flex => Backend::Flex,
            schema::BackendName::Wgpu => Backend::Wgpu,
            schema::BackendName::Cuda => Backend::Cuda,
        };
        if let Some(threads) = spec.runtime.threads {
            check.positive("runtime.threads", threads);
        }
        if spec.report.prediction_grid > 100 {
            check.fail("report.prediction_grid", Some(spec.report.prediction_grid.to_string()), "must be at most 100");
        }

        if !check.issues.is_empty() {
            return Err(SpecError { issues: check.issues });
        }
        let mut resolved = spec.clone();
        resolved.data.root = data.layout.root.clone().into();
        let resolved_toml = toml::to_string(&resolved).map_err(|e| {
            SpecError::single(SpecIssue {
                origin: crate::spec::display_path(&loaded.file),
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
            pretrained: spec.model.pretrained.clone(),
            train,
            runtime: RuntimePlan { backend, threads: spec.runtime.threads },
            report: ReportPlan {
                markdown: spec.report.formats.contains(&schema::ReportFormat::Markdown),
                html: spec.report.formats.contains(&schema::ReportFormat::Html),
                prediction_grid: spec.report.prediction_grid,
            },
        })
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
        split: SplitRule { validation: data.split.validation, stratify: data.split.stratify, seed: data.split.seed.unwrap_or(seed) },
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

fn resolve_preprocess(check: &mut Checker, pre: &schema::Preprocess) -> PreprocessPlan {
    let resize = resize_to(check, "preprocess.resize", pre.resize);
    let center_crop = pre.center_crop.map(|size| crop_size(check, "preprocess.center_crop", size));
    let input_size = match (center_crop, resize.fixed_size()) {
        (Some(crop), _) => crop,
        (None, Some(size)) => size,
        (None, None) => {
            check.fail(
                "preprocess.resize",
                Some(format!("{pre_resize:?}", pre_resize = pre.resize)),
                "a single number resizes the shorter edge, so images of other shapes would differ in size; give [height, width] or add preprocess.center_crop",
            );
            (1, 1)
        }
    };
    for (c, &std) in pre.std.iter().enumerate() {
        if !(std.is_finite() && std > 0.0) {
            check.fail(&format!("preprocess.std[{c}]"), Some(std.to_string()), "must be positive");
        }
    }
    PreprocessPlan {
        recipe: Recipe { resize: Some((resize, interpolation(pre.interpolation))), center_crop },
        normalize: Normalize { mean: pre.mean.map(|v| v as f32), std: pre.std.map(|v| v as f32) },
        input_size,
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
    if !chain.ops.is_empty() {
        if aug.copies == 0 {
            check.fail("augment.copies", Some("0".into()), "must be at least 1 when augment.chain has ops (or remove the chain)");
        }
        match chain.output_size(None) {
            Some(size) if size == input_size => {}
            Some((h, w)) => check.fail(
                "augment.chain",
                None,
                format!(
                    "the chain produces {h}x{w} images but the model input (preprocess) is {}x{}; end the chain with a resize or random_resized_crop of that size",
                    input_size.0, input_size.1
                ),
            ),
            None => check.fail(
                "augment.chain",
                None,
                "the chain's output size depends on each image; end it with a resize to [height, width] or a random_resized_crop",
            ),
        }
    }
    let mode = match aug.mode {
        schema::AugmentMode::Append => AugmentMode::Append,
        schema::AugmentMode::Online => AugmentMode::Online,
    };
    AugmentPlan { mode, copies: aug.copies, chain }
}

fn resolve_model(check: &mut Checker, model: &schema::Model) -> ModelSpec {
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
    ModelSpec { arch, options: Options { drop_path_rate: model.drop_path_rate, dropout: model.dropout } }
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
    }
}
