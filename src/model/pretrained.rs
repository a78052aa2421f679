//! Hugging Face checkpoints: `config.json` → architecture, `preprocessor_config.json` →
//! preprocessing, and weights (`model.safetensors` or `pytorch_model.bin`, whole or in shards
//! listed by an `*.index.json`, in any float dtype) → a burn module, with an exact account of
//! what was loaded, what is new and what was ignored.

use std::path::Path;

use burn::module::Module;
use burn::store::burn_pack::Tensor as PackTensor;
use burn::store::{ApplyResult, FloatCastAdapter, ModuleAdapter, ModuleSnapshot, ModuleStore, PathFilter, PyTorchToBurnAdapter, PytorchStore, SafetensorsStore};
use burn::tensor::DType;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::cvt::CvtConfig;
use super::hub::CheckpointFiles;
use super::layout::{self, Layout};
use super::vit::VitConfig;
use crate::augment::{Interpolation, ResizeTo};
use crate::error::{Error, Result};

/// Model families brasa implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    Cvt,
    Vit,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Cvt => "cvt",
            Family::Vit => "vit",
        }
    }
}

/// Who wrote a checkpoint's `config.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigKind {
    /// transformers (`model_type`, `id2label`, …).
    Transformers,
    /// timm (`architecture`, `model_args`, `pretrained_cfg`).
    Timm,
}

/// A checkpoint's `config.json`.
#[derive(Debug, Clone)]
pub struct HfConfig {
    pub family: Family,
    pub kind: ConfigKind,
    /// `id2label` in id order (`LABEL_0`, ... when the config has none).
    pub labels: Vec<String>,
    raw: Value,
    path: String,
}

impl HfConfig {
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let raw: Value = serde_json::from_str(&text)
            .map_err(|e| Error::Model(format!("{}: not valid JSON: {e}", path.display())))?;
        let path = path.display().to_string();
        if raw.get("model_type").is_none()
            && let Some(architecture) = raw["architecture"].as_str()
        {
            if !architecture.starts_with("vit_") {
                return Err(Error::Model(format!("{path}: timm architecture {architecture:?} is not supported (brasa reads timm's vit_* models)")));
            }
            let labels = super::timm::labels(&raw);
            return Ok(Self { family: Family::Vit, kind: ConfigKind::Timm, labels, raw, path });
        }
        let family = match raw["model_type"].as_str() {
            Some("cvt") => Family::Cvt,
            Some("vit") => Family::Vit,
            Some(other) => {
                return Err(Error::Model(format!("{path}: model_type {other:?} is not supported (brasa knows cvt and vit)")));
            }
            None => return Err(Error::Model(format!("{path}: no model_type (transformers) or architecture (timm)"))),
        };
        let labels = match raw["id2label"].as_object() {
            Some(map) => {
                let mut pairs: Vec<(usize, String)> = map
                    .iter()
                    .map(|(k, v)| {
                        let id = k.parse::<usize>().map_err(|_| format!("id2label has a non-numeric id {k:?}"))?;
                        // a number or null would become an empty or made-up class name
                        let label = v.as_str().ok_or_else(|| format!("id2label.{k:?} = {v}: expected a class name (a string)"))?;
                        Ok((id, label.to_string()))
                    })
                    .collect::<std::result::Result<_, String>>()
                    .map_err(|e| Error::Model(format!("{path}: {e}")))?;
                pairs.sort();
                if pairs.iter().enumerate().any(|(i, (id, _))| *id != i) {
                    return Err(Error::Model(format!("{path}: id2label ids are not 0..n")));
                }
                pairs.into_iter().map(|(_, label)| label).collect()
            }
            None => {
                let n = raw["num_labels"].as_u64().unwrap_or(2) as usize;
                (0..n).map(|i| format!("LABEL_{i}")).collect()
            }
        };
        Ok(Self { family, kind: ConfigKind::Transformers, labels, raw, path })
    }

    /// The architecture this config describes, with `num_labels` outputs.
    pub fn arch_config(&self, num_labels: usize) -> Result<super::ArchConfig> {
        Ok(match self.family {
            Family::Cvt => super::ArchConfig::Cvt(self.cvt(num_labels)?),
            Family::Vit => super::ArchConfig::Vit(self.vit(num_labels)?),
        })
    }

    fn list<T: serde::de::DeserializeOwned + Clone>(&self, key: &str, default: &[T]) -> Result<Vec<T>> {
        match self.raw.get(key) {
            None | Some(Value::Null) => Ok(default.to_vec()),
            Some(value) => serde_json::from_value(value.clone())
                .map_err(|e| Error::Model(format!("{}: `{key}` = {value}: {e}", self.path))),
        }
    }

    fn scalar<T: serde::de::DeserializeOwned>(&self, key: &str, default: T) -> Result<T> {
        match self.raw.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(value) => serde_json::from_value(value.clone())
                .map_err(|e| Error::Model(format!("{}: `{key}` = {value}: {e}", self.path))),
        }
    }

    /// brasa feeds every model RGB images.
    fn three_channels(&self, channels: usize) -> Result<()> {
        if channels == 3 {
            return Ok(());
        }
        Err(Error::Model(format!("{}: `num_channels` = {channels} is not supported: brasa feeds models RGB images (3 channels)", self.path)))
    }

    /// The CvT architecture this config describes, with `num_labels` outputs.
    pub fn cvt(&self, num_labels: usize) -> Result<CvtConfig> {
        let d = CvtConfig::cvt13(num_labels);
        let methods: Vec<String> = self.list("qkv_projection_method", &["dw_bn".to_string()])?;
        if let Some(other) = methods.iter().find(|m| *m != "dw_bn") {
            return Err(Error::Model(format!("{}: qkv_projection_method {other:?} is not supported (only dw_bn)", self.path)));
        }
        let config = CvtConfig {
            num_channels: self.scalar("num_channels", d.num_channels)?,
            num_labels,
            patch_sizes: self.list("patch_sizes", &d.patch_sizes)?,
            patch_stride: self.list("patch_stride", &d.patch_stride)?,
            patch_padding: self.list("patch_padding", &d.patch_padding)?,
            embed_dim: self.list("embed_dim", &d.embed_dim)?,
            num_heads: self.list("num_heads", &d.num_heads)?,
            depth: self.list("depth", &d.depth)?,
            mlp_ratio: self.list("mlp_ratio", &d.mlp_ratio)?,
            attention_drop_rate: self.list("attention_drop_rate", &d.attention_drop_rate)?,
            drop_rate: self.list("drop_rate", &d.drop_rate)?,
            drop_path_rate: self.list("drop_path_rate", &d.drop_path_rate)?,
            qkv_bias: self.list("qkv_bias", &d.qkv_bias)?,
            cls_token: self.list("cls_token", &d.cls_token)?,
            kernel_qkv: self.list("kernel_qkv", &d.kernel_qkv)?,
            padding_kv: self.list("padding_kv", &d.padding_kv)?,
            stride_kv: self.list("stride_kv", &d.stride_kv)?,
            padding_q: self.list("padding_q", &d.padding_q)?,
            stride_q: self.list("stride_q", &d.stride_q)?,
            initializer_range: self.scalar("initializer_range", d.initializer_range)?,
        };
        self.three_channels(config.num_channels)?;
        let stages = config.depth.len();
        let lengths = [
            config.patch_sizes.len(), config.patch_stride.len(), config.patch_padding.len(), config.embed_dim.len(),
            config.num_heads.len(), config.mlp_ratio.len(), config.drop_path_rate.len(), config.qkv_bias.len(),
            config.cls_token.len(), config.kernel_qkv.len(), config.padding_kv.len(), config.stride_kv.len(),
            config.padding_q.len(), config.stride_q.len(), config.drop_rate.len(), config.attention_drop_rate.len(),
        ];
        if stages == 0 || lengths.iter().any(|&l| l != stages) {
            return Err(Error::Model(format!("{}: the per-stage lists must all have {stages} entries", self.path)));
        }
        if config.embed_dim.iter().zip(&config.num_heads).any(|(d, h)| *h == 0 || d % h != 0) {
            return Err(Error::Model(format!("{}: embed_dim must be divisible by num_heads in every stage", self.path)));
        }
        Ok(config)
    }

    /// The ViT architecture this config describes, with `num_labels` outputs.
    pub fn vit(&self, num_labels: usize) -> Result<VitConfig> {
        if self.kind == ConfigKind::Timm {
            return super::timm::vit_config(&self.raw, num_labels).map_err(|e| Error::Model(format!("{}: {e}", self.path)));
        }
        let d = VitConfig::base_patch16_224(num_labels);
        let activation: String = self.scalar("hidden_act", "gelu".to_string())?;
        if activation != "gelu" {
            return Err(Error::Model(format!("{}: hidden_act {activation:?} is not supported (only the exact gelu)", self.path)));
        }
        let config = VitConfig {
            num_channels: self.scalar("num_channels", d.num_channels)?,
            num_labels,
            hidden_size: self.scalar("hidden_size", d.hidden_size)?,
            num_hidden_layers: self.scalar("num_hidden_layers", d.num_hidden_layers)?,
            num_attention_heads: self.scalar("num_attention_heads", d.num_attention_heads)?,
            intermediate_size: self.scalar("intermediate_size", d.intermediate_size)?,
            hidden_dropout_prob: self.scalar("hidden_dropout_prob", d.hidden_dropout_prob)?,
            attention_probs_dropout_prob: self.scalar("attention_probs_dropout_prob", d.attention_probs_dropout_prob)?,
            layer_norm_eps: self.scalar("layer_norm_eps", d.layer_norm_eps)?,
            image_size: self.scalar("image_size", d.image_size)?,
            patch_size: self.scalar("patch_size", d.patch_size)?,
            qkv_bias: self.scalar("qkv_bias", d.qkv_bias)?,
            initializer_range: self.scalar("initializer_range", d.initializer_range)?,
        };
        self.three_channels(config.num_channels)?;
        if config.num_attention_heads == 0 || !config.hidden_size.is_multiple_of(config.num_attention_heads) {
            return Err(Error::Model(format!("{}: hidden_size must be divisible by num_attention_heads", self.path)));
        }
        Ok(config)
    }
}

/// What a Hugging Face image processor does, in brasa's terms.
#[derive(Debug, Clone, PartialEq)]
pub struct Processor {
    pub resize: ResizeTo,
    pub center_crop: Option<(u32, u32)>,
    pub interpolation: Interpolation,
    pub mean: [f64; 3],
    pub std: [f64; 3],
}

const IMAGENET_MEAN: [f64; 3] = [0.485, 0.456, 0.406];
const IMAGENET_STD: [f64; 3] = [0.229, 0.224, 0.225];

impl Processor {
    /// The default image processor of a family: CvT checkpoints use the ConvNext processor
    /// (shorter edge 224 / crop_pct 0.875 = 256, centre crop 224, bicubic, ImageNet statistics);
    /// ViT resizes to 224×224 (bilinear) with mean and std 0.5.
    pub fn family_default(family: Family) -> Self {
        match family {
            Family::Cvt => Self {
                resize: ResizeTo::ShorterEdge(256),
                center_crop: Some((224, 224)),
                interpolation: Interpolation::Bicubic,
                mean: IMAGENET_MEAN,
                std: IMAGENET_STD,
            },
            Family::Vit => Self {
                resize: ResizeTo::Exact { height: 224, width: 224 },
                center_crop: None,
                interpolation: Interpolation::Bilinear,
                mean: [0.5; 3],
                std: [0.5; 3],
            },
        }
    }

    /// The same processor for inputs of `size` `(height, width)` instead of its own (a
    /// shorter-edge resize before a centre crop scaled alike); itself for `None`.
    pub fn sized_to(mut self, size: Option<(u32, u32)>) -> Self {
        let (Some((height, width)), Some((own_height, _))) = (size, self.input_size()) else { return self };
        self.resize = match self.resize {
            ResizeTo::ShorterEdge(edge) => ResizeTo::ShorterEdge((edge as u64 * height as u64 / own_height.max(1) as u64) as u32),
            ResizeTo::Exact { .. } => ResizeTo::Exact { height, width },
        };
        if self.center_crop.is_some() {
            self.center_crop = Some((height, width));
        }
        self
    }

    /// Reads a `preprocessor_config.json` (ConvNext-style `shortest_edge` + `crop_pct`, or
    /// ViT-style `{height, width}` / a single size).
    pub fn read(path: &Path, family: Family) -> Result<Self> {
        let fail = |message: String| Error::Model(format!("{}: {message}", path.display()));
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let raw: Value = serde_json::from_str(&text).map_err(|e| fail(format!("not valid JSON: {e}")))?;
        let mut processor = Self::family_default(family);
        let flag = |key: &str| raw.get(key).and_then(Value::as_bool).unwrap_or(true);
        if flag("do_rescale") {
            let factor = raw.get("rescale_factor").and_then(Value::as_f64).unwrap_or(1.0 / 255.0);
            if (factor - 1.0 / 255.0).abs() > 1e-9 {
                return Err(fail(format!("rescale_factor {factor} is not supported (brasa always scales by 1/255)")));
            }
        } else {
            return Err(fail("do_rescale = false is not supported (brasa always scales pixels to 0..1)".into()));
        }
        if let Some(code) = raw.get("resample").and_then(Value::as_u64) {
            processor.interpolation = match code {
                0 => Interpolation::Nearest,
                2 => Interpolation::Bilinear,
                3 => Interpolation::Bicubic,
                other => return Err(fail(format!("resample = {other} (a PIL filter brasa does not implement; 0, 2 and 3 are)"))),
            };
        }
        if flag("do_normalize") {
            let triple = |key: &str, default: [f64; 3]| three_numbers(raw.get(key), default).map_err(|value| fail(format!("`{key}` = {value}: expected three numbers")));
            processor.mean = triple("image_mean", processor.mean)?;
            processor.std = triple("image_std", processor.std)?;
        } else {
            processor.mean = [0.0; 3];
            processor.std = [1.0; 3];
        }
        if !flag("do_resize") {
            return Err(fail("do_resize = false is not supported (every model input needs one size)".into()));
        }
        // transformers' ConvNextImageProcessor (CvT's, named by the file or else by the model):
        // an integer `size` is a shorter edge (`get_size_dict(size, default_to_square=False)`),
        // and `crop_pct` defaults to 224 / 256; ViTImageProcessor's integer size is a square
        let named = ["image_processor_type", "feature_extractor_type"].iter().find_map(|key| raw.get(*key).and_then(Value::as_str));
        let convnext = named.map_or(family == Family::Cvt, |name| name.starts_with("ConvNext"));
        let size = match raw.get("size") {
            Some(Value::Number(edge)) if convnext => Some(serde_json::json!({ "shortest_edge": edge })),
            other => other.cloned(),
        };
        let as_u32 = |v: &Value| v.as_u64().map(|n| n as u32);
        let default_pct = named.is_some_and(|name| name.starts_with("ConvNext")).then_some(224.0 / 256.0);
        let crop_pct = raw.get("crop_pct").and_then(Value::as_f64).or(default_pct);
        match size.as_ref() {
            Some(Value::Object(map)) if map.contains_key("shortest_edge") => {
                let edge = map.get("shortest_edge").and_then(as_u32).ok_or_else(|| fail("size.shortest_edge must be a number".into()))?;
                match crop_pct {
                    // transformers' ConvNext processor: below 384 px, resize the shorter edge to
                    // edge / crop_pct and centre-crop edge x edge; above, resize to a square.
                    Some(pct) if edge < 384 => {
                        processor.resize = ResizeTo::ShorterEdge((edge as f64 / pct) as u32);
                        processor.center_crop = Some((edge, edge));
                    }
                    Some(_) => {
                        processor.resize = ResizeTo::Exact { height: edge, width: edge };
                        processor.center_crop = None;
                    }
                    None => {
                        processor.resize = ResizeTo::ShorterEdge(edge);
                        // `crop_size` counts only while `do_center_crop` is on
                        let crop = raw.get("crop_size").filter(|_| flag("do_center_crop"));
                        processor.center_crop = match crop {
                            Some(Value::Object(c)) => Some((
                                c.get("height").and_then(as_u32).unwrap_or(edge),
                                c.get("width").and_then(as_u32).unwrap_or(edge),
                            )),
                            Some(v) => v.as_u64().map(|n| (n as u32, n as u32)),
                            None => None,
                        };
                        if processor.center_crop.is_none() {
                            return Err(fail("size.shortest_edge without crop_pct or a centre crop (crop_size with do_center_crop) gives images of different shapes".into()));
                        }
                    }
                }
            }
            Some(Value::Object(map)) => {
                let height = map.get("height").and_then(as_u32).ok_or_else(|| fail("size needs height and width".into()))?;
                let width = map.get("width").and_then(as_u32).ok_or_else(|| fail("size needs height and width".into()))?;
                processor.resize = ResizeTo::Exact { height, width };
                processor.center_crop = None;
            }
            Some(value) => {
                let edge = as_u32(value).ok_or_else(|| fail(format!("size = {value} is not understood")))?;
                processor.resize = ResizeTo::Exact { height: edge, width: edge };
                processor.center_crop = None;
            }
            None => {}
        }
        if flag("do_center_crop") && processor.center_crop.is_none()
            && let Some(crop) = raw.get("crop_size")
        {
            let (h, w) = match crop {
                Value::Object(c) => (c.get("height").and_then(as_u32), c.get("width").and_then(as_u32)),
                v => (as_u32(v), as_u32(v)),
            };
            if let (Some(h), Some(w)) = (h, w) {
                processor.center_crop = Some((h, w));
            }
        }
        let zero_resize = match processor.resize {
            ResizeTo::ShorterEdge(edge) => edge == 0,
            ResizeTo::Exact { height, width } => height == 0 || width == 0,
        };
        if zero_resize || processor.center_crop.is_some_and(|(h, w)| h == 0 || w == 0) {
            return Err(fail("`size` or `crop_size` gives a side of 0 pixels".into()));
        }
        Ok(processor)
    }

    /// The model input size `(height, width)`.
    pub fn input_size(&self) -> Option<(u32, u32)> {
        self.center_crop.or(self.resize.fixed_size())
    }

    /// The image processor of a checkpoint on disk and a note of where it came from: its
    /// `preprocessor_config.json`; else, for a timm checkpoint, its `pretrained_cfg`; else the
    /// family's default.
    pub fn for_checkpoint(files: &CheckpointFiles, family: Family) -> Result<(Self, String)> {
        if let Some(path) = &files.preprocessor {
            return Ok((Self::read(path, family)?, format!("preset hf: {}", path.display())));
        }
        let config = HfConfig::read(&files.config)?;
        if config.kind == ConfigKind::Timm {
            let processor = super::timm::processor(&config.raw).map_err(|e| Error::Model(format!("{}: {e}", config.path)))?;
            return Ok((processor, format!("preset hf: timm pretrained_cfg of {}", config.path)));
        }
        let folder = files.config.parent().unwrap_or(&files.config).display();
        Ok((Self::family_default(family), format!("preset hf: {folder} has no preprocessor_config.json; {} family defaults", family.name())))
    }
}

/// A per-channel triple (mean, std) of a processor config: `default` when absent or null; the
/// value itself as the error when it is not three numbers.
pub(super) fn three_numbers(value: Option<&Value>, default: [f64; 3]) -> std::result::Result<[f64; 3], Value> {
    match value {
        None | Some(Value::Null) => Ok(default),
        Some(value) => serde_json::from_value::<Vec<f64>>(value.clone()).ok().and_then(|v| <[f64; 3]>::try_from(v).ok()).ok_or_else(|| value.clone()),
    }
}

/// What importing a checkpoint did, tensor by tensor (parameter paths in burn's naming).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImportReport {
    pub source: String,
    pub file: String,
    /// The tensor naming the checkpoint uses (see `layout`).
    #[serde(default)]
    pub layout: String,
    /// Parameters set from the checkpoint.
    pub loaded: Vec<String>,
    /// Parameters left at their fresh initialisation (a replaced classifier).
    pub new: Vec<String>,
    /// Checkpoint tensors with no parameter to go to (e.g. BatchNorm `num_batches_tracked`).
    pub ignored: Vec<String>,
}

impl ImportReport {
    /// One log line: counts, the names of what is new, and what was ignored (names repeated
    /// across layers, like `num_batches_tracked`, grouped). The full lists go to `meta.json`.
    pub fn summary(&self) -> String {
        let mut by_leaf: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
        for name in &self.ignored {
            by_leaf.entry(name.rsplit('.').next().unwrap_or(name)).or_default().push(name);
        }
        let ignored: Vec<String> = by_leaf
            .iter()
            .flat_map(|(leaf, names)| match names.len() {
                n if n > 3 => vec![format!("{leaf} x{n}")],
                _ => names.iter().map(|n| n.to_string()).collect(),
            })
            .collect();
        format!(
            "pretrained {} ({}, {}): loaded {} tensors; new {}{}; ignored {}{}",
            self.source,
            self.file,
            self.layout,
            self.loaded.len(),
            self.new.len(),
            if self.new.is_empty() { String::new() } else { format!(" ({})", self.new.join(", ")) },
            self.ignored.len(),
            if ignored.is_empty() { String::new() } else { format!(" ({})", ignored.join(", ")) },
        )
    }
}

/// Loads a checkpoint file of a `family` model into `model`: any layout [`layout`] recognises,
/// translated to the Hub names brasa's modules mirror, then Linear weights transposed and norm
/// weight/bias mapped to gamma/beta by burn-store's PyTorch adapter. With
/// `replace_classifier`, `classifier.*` keeps its fresh initialisation (transformers'
/// `ignore_mismatched_sizes` for a different class count). A base model's checkpoint (no
/// head: [`Layout::Base`]) leaves the head fresh whatever `replace_classifier` says; the
/// report's `new` lists it.
///
/// A checkpoint that does not fit — no known layout, a shape mismatch, or a parameter the file
/// lacks — is an error listing the first offending keys.
pub fn import<M: Module + ModuleSnapshot>(model: &mut M, weights: &Path, family: Family, source: &str, replace_classifier: bool) -> Result<ImportReport> {
    fn not_classifier(path: &str, _container: &str) -> bool {
        !(path == "classifier" || path.starts_with("classifier."))
    }
    let filter = if replace_classifier { PathFilter::new().with_predicate(not_classifier) } else { PathFilter::all() };
    let tensors = layout::strip_data_parallel(read_tensors(weights)?);
    let names = layout::names(&tensors);
    let Some(found) = layout::detect(&names, family) else {
        let known: Vec<&str> = Layout::ALL.iter().map(|l| l.describe()).collect();
        return Err(Error::Model(format!(
            "{} is in no checkpoint layout brasa reads for a {} model ({} tensors); brasa recognises:\n  {}\nits first unrecognised tensors: {}",
            weights.display(),
            family.name(),
            names.len(),
            known.join("\n  "),
            layout::unrecognised(&names, 8).join(", ")
        )));
    };
    if found == Layout::Timm
        && let Some(what) = layout::timm_unsupported(&names)
    {
        return Err(Error::Model(format!("{} is a timm ViT with {what}, which brasa's ViT does not implement", weights.display())));
    }
    let tensors = layout::to_hub(tensors, found).map_err(|e| Error::Model(format!("cannot load {}: {e}", weights.display())))?;
    // half-precision (and f64) checkpoints are common on the Hub; brasa's parameters are f32,
    // as transformers upcasts them on load
    let adapter = PyTorchToBurnAdapter.chain(FloatCastAdapter::to(DType::F32));
    let result: ApplyResult = model.apply(tensors, Some(filter), Some(Box::new(adapter)), false);
    if !result.errors.is_empty() {
        let first: Vec<String> = result.errors.iter().take(5).map(ToString::to_string).collect();
        return Err(Error::Model(format!(
            "{} does not fit the architecture ({} mismatches), e.g.:\n  {}",
            weights.display(),
            result.errors.len(),
            first.join("\n  ")
        )));
    }
    // a base model's head is missing by design: it starts fresh
    let head = found.new_head(family);
    let (fresh, missing): (Vec<String>, Vec<String>) = result.missing.iter().map(|(path, _)| path.clone()).partition(|path| {
        head.iter().any(|module| path.strip_prefix(module).is_some_and(|rest| rest.starts_with('.')))
    });
    if !missing.is_empty() {
        let first: Vec<&str> = missing.iter().take(5).map(String::as_str).collect();
        let unused: Vec<&str> = result.unused.iter().take(5).map(String::as_str).collect();
        return Err(Error::Model(format!(
            "{} ({}) lacks {} parameters of the architecture, e.g. {}; its unused tensors include {}",
            weights.display(),
            found.describe(),
            missing.len(),
            first.join(", "),
            if unused.is_empty() { "none".to_string() } else { unused.join(", ") }
        )));
    }
    // The checkpoint's own classifier, when replaced, is as unused as `num_batches_tracked`.
    let mut ignored = result.unused;
    ignored.extend(result.skipped.iter().cloned());
    ignored.sort();
    let mut new = result.skipped;
    new.extend(fresh);
    new.sort();
    Ok(ImportReport { source: source.to_string(), file: weights.display().to_string(), layout: found.describe().to_string(), loaded: result.applied, new, ignored })
}

/// Every tensor of a checkpoint: a safetensors file or a PyTorch pickle (told apart by their
/// contents, whatever the file's name), or a sharded checkpoint's `*.index.json`, whose
/// `weight_map` names the shard files beside it.
fn read_tensors(weights: &Path) -> Result<Vec<PackTensor>> {
    if weights.to_string_lossy().ends_with(".index.json") {
        let mut tensors = Vec::new();
        for shard in super::hub::shards(weights)? {
            tensors.extend(read_file(&shard)?);
        }
        return Ok(tensors);
    }
    read_file(weights)
}

fn read_file(weights: &Path) -> Result<Vec<PackTensor>> {
    let fail = |message: String| Error::Model(format!("cannot load {}: {message}", weights.display()));
    let mut head = [0u8; 9];
    let read = std::fs::File::open(weights).and_then(|mut f| std::io::Read::read(&mut f, &mut head)).map_err(|e| fail(e.to_string()))?;
    if read == 9 && head[8] == b'{' {
        // safetensors: an 8-byte header length, then the JSON header
        let mut store = SafetensorsStore::from_file(weights);
        store.get_all_tensors().map(layout::from_map).map_err(|e| fail(e.to_string()))
    } else if head.starts_with(b"PK\x03\x04") || head[0] == 0x80 {
        // torch.save: a zip archive, or (before PyTorch 1.6) a bare pickle
        let mut store = PytorchStore::from_file(weights);
        store.get_all_tensors().map(layout::from_map).map_err(|e| fail(e.to_string()))
    } else {
        Err(fail("neither a safetensors file nor a PyTorch checkpoint (torch.save)".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, json: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, json).unwrap();
        path
    }

    #[test]
    fn convnext_processor_resizes_the_short_edge_then_crops() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "p.json",
            r#"{"crop_pct": 0.875, "do_normalize": true, "do_rescale": true, "do_resize": true,
                "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225],
                "resample": 3, "rescale_factor": 0.00392156862745098, "size": {"shortest_edge": 224}}"#,
        );
        let p = Processor::read(&path, Family::Cvt).unwrap();
        assert_eq!(p, Processor::family_default(Family::Cvt));
        assert_eq!(p.input_size(), Some((224, 224)));
    }

    #[test]
    fn a_legacy_convnext_processor_reads_an_integer_size_as_the_shorter_edge() {
        let dir = tempfile::tempdir().unwrap();
        // microsoft/cvt-13's own preprocessor_config.json, byte for byte
        let cvt13 = write(
            dir.path(),
            "cvt13.json",
            r#"{"crop_pct":0.875,"do_normalize":true,"do_resize":true,"feature_extractor_type":"ConvNextFeatureExtractor","image_mean":[0.485,0.456,0.406],"image_std":[0.229,0.224,0.225],"resample":3,"size":224}"#,
        );
        assert_eq!(Processor::read(&cvt13, Family::Cvt).unwrap(), Processor::family_default(Family::Cvt));
        // transformers: shortest_edge 40 → shorter edge int(40 / 0.875) = 45, centre crop 40
        let small = write(dir.path(), "small.json", r#"{"crop_pct": 0.875, "image_processor_type": "ConvNextImageProcessor", "size": 40}"#);
        let p = Processor::read(&small, Family::Vit).unwrap();
        assert_eq!((p.resize, p.center_crop), (ResizeTo::ShorterEdge(45), Some((40, 40))));
        // ConvNext's crop_pct defaults to 224 / 256; 384 and up is a square resize
        let unnamed_pct = write(dir.path(), "pct.json", r#"{"image_processor_type": "ConvNextImageProcessor", "size": 64}"#);
        assert_eq!(Processor::read(&unnamed_pct, Family::Cvt).unwrap().resize, ResizeTo::ShorterEdge(73));
        let large = write(dir.path(), "large.json", r#"{"crop_pct": 0.875, "feature_extractor_type": "ConvNextFeatureExtractor", "size": 384}"#);
        let p = Processor::read(&large, Family::Cvt).unwrap();
        assert_eq!((p.resize, p.center_crop), (ResizeTo::Exact { height: 384, width: 384 }, None));
        // ViTImageProcessor's integer size stays a square
        let vit = write(dir.path(), "vit.json", r#"{"image_processor_type": "ViTImageProcessor", "size": 40}"#);
        assert_eq!(Processor::read(&vit, Family::Cvt).unwrap().resize, ResizeTo::Exact { height: 40, width: 40 });
    }

    #[test]
    fn do_center_crop_false_turns_crop_size_off() {
        let dir = tempfile::tempdir().unwrap();
        let on = write(dir.path(), "on.json", r#"{"crop_size": {"height": 32, "width": 32}, "image_processor_type": "CLIPImageProcessor", "size": {"shortest_edge": 40}}"#);
        assert_eq!(Processor::read(&on, Family::Cvt).unwrap().center_crop, Some((32, 32)));
        let off = write(dir.path(), "off.json", r#"{"do_center_crop": false, "crop_size": {"height": 32, "width": 32}, "image_processor_type": "CLIPImageProcessor", "size": {"shortest_edge": 40}}"#);
        let err = Processor::read(&off, Family::Cvt).unwrap_err().to_string();
        assert!(err.contains("off.json") && err.contains("different shapes"), "{err}");
    }

    #[test]
    fn id2label_values_must_be_class_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "config.json", r#"{"model_type": "vit", "id2label": {"0": "a", "1": 1, "2": null}}"#);
        let err = HfConfig::read(&path).unwrap_err().to_string();
        assert!(err.contains("config.json") && err.contains(r#"id2label."1" = 1"#), "{err}");
    }

    #[test]
    fn vit_processor_and_unsupported_options() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "p.json", r#"{"size": {"height": 384, "width": 384}, "resample": 2, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}"#);
        let p = Processor::read(&path, Family::Vit).unwrap();
        assert_eq!(p.resize, ResizeTo::Exact { height: 384, width: 384 });
        let legacy = write(dir.path(), "legacy.json", r#"{"size": 224}"#);
        assert_eq!(Processor::read(&legacy, Family::Vit).unwrap(), Processor::family_default(Family::Vit));
        let lanczos = write(dir.path(), "l.json", r#"{"resample": 1}"#);
        assert!(Processor::read(&lanczos, Family::Vit).unwrap_err().to_string().contains("resample = 1"));
    }

    #[test]
    fn config_json_gives_architecture_and_labels() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "config.json",
            r#"{"model_type": "cvt", "embed_dim": [16, 32, 48], "depth": [1, 2, 3], "num_heads": [1, 2, 3],
                "id2label": {"1": "b", "0": "a"}}"#,
        );
        let config = HfConfig::read(&path).unwrap();
        assert_eq!(config.family, Family::Cvt);
        assert_eq!(config.labels, ["a", "b"]);
        let cvt = config.cvt(2).unwrap();
        assert_eq!((cvt.embed_dim, cvt.depth, cvt.num_labels), (vec![16, 32, 48], vec![1, 2, 3], 2));
        let bad = write(dir.path(), "bad.json", r#"{"model_type": "cvt", "embed_dim": [16, 32]}"#);
        assert!(HfConfig::read(&bad).unwrap().cvt(2).unwrap_err().to_string().contains("per-stage lists"));
        let other = write(dir.path(), "other.json", r#"{"model_type": "resnet"}"#);
        assert!(HfConfig::read(&other).unwrap_err().to_string().contains("resnet"));
    }
}
