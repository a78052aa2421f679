//! The run folder: the one place that knows its file names and CSV columns.
//!
//! ```text
//! reports/<experiment>/<run-id>/
//!   spec.toml  meta.json  split.csv  epochs.csv  steps.csv
//!   val_predictions.csv  test_predictions.csv  val_report.csv  test_report.csv
//!   confusion_val.csv  confusion_test.csv  checkpoints/  charts/*.svg  report.md  report.html
//! ```
//!
//! Every file is written atomically (a temporary file renamed into place), so a killed run
//! leaves each file either whole or absent, and `checkpoints/state.json` says which epoch the
//! run can resume from.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::atomic_file::write_atomic;
use crate::error::{Error, Result};
use crate::metrics::Scores;

pub const SPEC: &str = "spec.toml";
pub const META: &str = "meta.json";
pub const SPLIT: &str = "split.csv";
pub const EPOCHS: &str = "epochs.csv";
pub const STEPS: &str = "steps.csv";
pub const CHECKPOINTS: &str = "checkpoints";
pub const STATE: &str = "checkpoints/state.json";
pub const CHARTS: &str = "charts";
pub const REPORT_MD: &str = "report.md";
pub const REPORT_HTML: &str = "report.html";
/// Groups of duplicate images among the run's images (the dataset audit's format).
pub const DUPLICATES: &str = "duplicates.csv";
/// Attention maps of a few test images, for the report.
pub const ATTENTION: &str = "attention.json";

/// The evaluated parts of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    Train,
    Val,
    Test,
}

impl Part {
    pub fn name(self) -> &'static str {
        match self {
            Part::Train => "train",
            Part::Val => "val",
            Part::Test => "test",
        }
    }

    pub fn predictions_file(self) -> String {
        format!("{}_predictions.csv", self.name())
    }

    pub fn report_file(self) -> String {
        format!("{}_report.csv", self.name())
    }

    pub fn confusion_file(self) -> String {
        format!("confusion_{}.csv", self.name())
    }
}

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
    /// Files in the dataset folders that are not images.
    pub skipped_files: Vec<String>,
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
}

impl Default for ReportMeta {
    fn default() -> Self {
        Self { markdown: true, html: true, prediction_grid: 15, mistakes: 10, attention_maps: 4, templates: None }
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

/// One row of `epochs.csv`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochRow {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub val_loss: f64,
    pub val_accuracy: f64,
    pub val_macro_f1: f64,
    pub val_weighted_f1: f64,
    pub val_macro_recall: f64,
    /// Recall of each class, in class order (`val_recall_<class>` columns).
    pub val_recall: Vec<f64>,
    pub lr: f64,
    pub seconds: f64,
    pub best: bool,
}

/// One row of `steps.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRow {
    pub step: usize,
    pub epoch: usize,
    pub loss: f64,
    pub lr: f64,
    pub grad_norm: f64,
}

/// One row of a predictions file.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictionRow {
    pub path: String,
    pub label: usize,
    pub prediction: usize,
    pub probabilities: Vec<f32>,
}

/// One row of `split.csv`: where each image of the dataset went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitRow {
    pub path: String,
    pub class: String,
    pub split: Part,
    /// The file's size as stored (absent in run folders of brasa before 0.2 and before decoding).
    #[serde(default)]
    pub width: Option<u32>,
    #[serde(default)]
    pub height: Option<u32>,
}

/// One row of `duplicates.csv`: a file of a duplicate group (`kind` is `exact` or `near`),
/// `split` its part of the run (`train`, `val`, `test`), `path` relative to the data root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuplicateRow {
    pub group: usize,
    pub kind: String,
    pub split: String,
    pub class: String,
    pub path: String,
}

/// One entry of `attention.json`: a test image, its classes and the map of where the model looked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttentionEntry {
    pub path: String,
    pub label: String,
    pub prediction: String,
    pub map: crate::attention_map::AttentionMap,
}

/// Resume point saved with every epoch's checkpoint; `S` is the trainer's own state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint<S> {
    pub train: S,
    /// File names under `checkpoints/`.
    pub last_model: String,
    pub last_optimizer: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_model: Option<String>,
}

/// A run folder on disk.
#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// Creates (or reopens) the folder `root`.
    pub fn create(root: &Path) -> Result<Self> {
        for dir in [root.to_path_buf(), root.join(CHECKPOINTS), root.join(CHARTS)] {
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        Ok(Self { root: root.to_path_buf() })
    }

    /// Opens an existing run folder for reading.
    pub fn open(root: &Path) -> Result<Self> {
        if !root.join(META).is_file() {
            return Err(Error::run_dir(root, format!("no {META}: not a brasa run folder")));
        }
        Ok(Self { root: root.to_path_buf() })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Writes `bytes` to `name` atomically.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        write_atomic(&self.path(name), bytes)
    }

    pub fn read_to_string(&self, name: &str) -> Result<String> {
        let path = self.path(name);
        std::fs::read_to_string(&path).map_err(|e| Error::run_dir(&self.root, format!("cannot read {name}: {e}")))
    }

    pub fn write_meta(&self, meta: &Meta) -> Result<()> {
        let json = serde_json::to_string_pretty(meta).expect("meta serialises");
        self.write(META, json.as_bytes())
    }

    pub fn read_meta(&self) -> Result<Meta> {
        serde_json::from_str(&self.read_to_string(META)?)
            .map_err(|e| Error::run_dir(&self.root, format!("{META} is malformed: {e}")))
    }

    pub fn write_checkpoint_state<S: Serialize>(&self, checkpoint: &Checkpoint<S>) -> Result<()> {
        let json = serde_json::to_string_pretty(checkpoint).expect("state serialises");
        self.write(STATE, json.as_bytes())
    }

    pub fn read_checkpoint_state<S: serde::de::DeserializeOwned>(&self) -> Result<Option<Checkpoint<S>>> {
        if !self.path(STATE).is_file() {
            return Ok(None);
        }
        serde_json::from_str(&self.read_to_string(STATE)?)
            .map(Some)
            .map_err(|e| Error::run_dir(&self.root, format!("{STATE} is malformed: {e}")))
    }

    /// Removes checkpoint files that `checkpoint` no longer refers to.
    pub fn prune_checkpoints<S>(&self, checkpoint: &Checkpoint<S>) -> Result<()> {
        let keep = [Some(&checkpoint.last_model), Some(&checkpoint.last_optimizer), checkpoint.best_model.as_ref()];
        let dir = self.path(CHECKPOINTS);
        for entry in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
            let entry = entry.map_err(|e| Error::io(&dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".bpk") && !keep.iter().flatten().any(|k| **k == name) {
                std::fs::remove_file(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
            }
        }
        Ok(())
    }

    pub fn write_split(&self, rows: &[SplitRow]) -> Result<()> {
        self.write_csv(SPLIT, |w| {
            for row in rows {
                w.serialize(row)?;
            }
            Ok(())
        })
    }

    pub fn read_split(&self) -> Result<Vec<SplitRow>> {
        self.read_csv(SPLIT, |r| r.deserialize().collect())
    }

    pub fn write_duplicates(&self, rows: &[DuplicateRow]) -> Result<()> {
        self.write_csv(DUPLICATES, |w| {
            if rows.is_empty() {
                w.write_record(["group", "kind", "split", "class", "path"])?;
            }
            for row in rows {
                w.serialize(row)?;
            }
            Ok(())
        })
    }

    /// The attention maps of the run, `None` for a run folder without them.
    pub fn read_attention(&self) -> Result<Option<Vec<AttentionEntry>>> {
        if !self.path(ATTENTION).is_file() {
            return Ok(None);
        }
        serde_json::from_str(&self.read_to_string(ATTENTION)?)
            .map(Some)
            .map_err(|e| Error::run_dir(&self.root, format!("{ATTENTION} is malformed: {e}")))
    }

    /// The duplicate groups of the run, `None` for a run folder without the file.
    pub fn read_duplicates(&self) -> Result<Option<Vec<DuplicateRow>>> {
        if !self.path(DUPLICATES).is_file() {
            return Ok(None);
        }
        self.read_csv(DUPLICATES, |r| r.deserialize().collect()).map(Some)
    }

    pub fn write_epochs(&self, rows: &[EpochRow], classes: &[String]) -> Result<()> {
        self.write_csv(EPOCHS, |w| {
            let mut header: Vec<String> = [
                "epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_macro_f1",
                "val_weighted_f1", "val_macro_recall",
            ]
            .map(String::from)
            .to_vec();
            header.extend(classes.iter().map(|c| format!("val_recall_{c}")));
            header.extend(["lr", "seconds", "best"].map(String::from));
            w.write_record(&header)?;
            for row in rows {
                let mut record = vec![
                    row.epoch.to_string(),
                    row.train_loss.to_string(),
                    row.train_accuracy.to_string(),
                    row.val_loss.to_string(),
                    row.val_accuracy.to_string(),
                    row.val_macro_f1.to_string(),
                    row.val_weighted_f1.to_string(),
                    row.val_macro_recall.to_string(),
                ];
                record.extend(row.val_recall.iter().map(f64::to_string));
                record.extend([row.lr.to_string(), row.seconds.to_string(), row.best.to_string()]);
                w.write_record(&record)?;
            }
            Ok(())
        })
    }

    pub fn read_epochs(&self) -> Result<Vec<EpochRow>> {
        self.read_csv(EPOCHS, |r| {
            let headers = r.headers()?.clone();
            let recalls: Vec<usize> =
                headers.iter().enumerate().filter(|(_, h)| h.starts_with("val_recall_")).map(|(i, _)| i).collect();
            let column = |name: &str| headers.iter().position(|h| h == name);
            let mut rows = Vec::new();
            for record in r.records() {
                let record = record?;
                let field = |name: &str| -> std::result::Result<f64, csv::Error> {
                    let index = column(name).ok_or_else(|| csv_error(format!("column {name} is missing")))?;
                    parse_field(&record, index)
                };
                rows.push(EpochRow {
                    epoch: field("epoch")? as usize,
                    train_loss: field("train_loss")?,
                    train_accuracy: field("train_accuracy")?,
                    val_loss: field("val_loss")?,
                    val_accuracy: field("val_accuracy")?,
                    val_macro_f1: field("val_macro_f1")?,
                    val_weighted_f1: field("val_weighted_f1")?,
                    val_macro_recall: field("val_macro_recall")?,
                    val_recall: recalls.iter().map(|&i| parse_field(&record, i)).collect::<std::result::Result<_, _>>()?,
                    lr: field("lr")?,
                    seconds: field("seconds")?,
                    best: column("best").and_then(|i| record.get(i)) == Some("true"),
                });
            }
            Ok(rows)
        })
    }

    pub fn write_steps(&self, rows: &[StepRow]) -> Result<()> {
        self.write_csv(STEPS, |w| {
            for row in rows {
                w.serialize(row)?;
            }
            Ok(())
        })
    }

    pub fn read_steps(&self) -> Result<Vec<StepRow>> {
        self.read_csv(STEPS, |r| r.deserialize().collect())
    }

    /// `path, label, prediction, <one probability column per class>`; labels as class names.
    pub fn write_predictions(&self, part: Part, rows: &[PredictionRow], classes: &[String]) -> Result<()> {
        self.write_csv(&part.predictions_file(), |w| {
            let mut header = vec!["path".to_string(), "label".into(), "prediction".into()];
            header.extend(classes.iter().cloned());
            w.write_record(&header)?;
            for row in rows {
                let mut record = vec![row.path.clone(), classes[row.label].clone(), classes[row.prediction].clone()];
                record.extend(row.probabilities.iter().map(|p| format!("{p:.6}")));
                w.write_record(&record)?;
            }
            Ok(())
        })
    }

    pub fn read_predictions(&self, part: Part, classes: &[String]) -> Result<Vec<PredictionRow>> {
        self.read_csv(&part.predictions_file(), |r| {
            let class_id = |name: &str| {
                classes.iter().position(|c| c == name).ok_or_else(|| csv_error(format!("unknown class {name:?}")))
            };
            let mut rows = Vec::new();
            for record in r.records() {
                let record = record?;
                let probabilities = (0..classes.len())
                    .map(|c| parse_field(&record, 3 + c).map(|p| p as f32))
                    .collect::<std::result::Result<_, _>>()?;
                rows.push(PredictionRow {
                    path: record.get(0).unwrap_or_default().to_string(),
                    label: class_id(record.get(1).unwrap_or_default())?,
                    prediction: class_id(record.get(2).unwrap_or_default())?,
                    probabilities,
                });
            }
            Ok(rows)
        })
    }

    /// scikit-learn's `classification_report` as CSV: a row per class, then accuracy, macro
    /// avg and weighted avg (accuracy fills only `f1-score` and `support`, as sklearn prints it).
    pub fn write_classification_report(&self, part: Part, report: &Scores, classes: &[String]) -> Result<()> {
        self.write_csv(&part.report_file(), |w| {
            w.write_record(["class", "precision", "recall", "f1-score", "support"])?;
            let row = |name: &str, s: &crate::metrics::ClassScores| {
                [name.to_string(), format!("{:.4}", s.precision), format!("{:.4}", s.recall), format!("{:.4}", s.f1), s.support.to_string()]
            };
            for (class, scores) in classes.iter().zip(&report.per_class) {
                w.write_record(row(class, scores))?;
            }
            let total = report.weighted_avg.support;
            w.write_record(["accuracy".to_string(), String::new(), String::new(), format!("{:.4}", report.accuracy), total.to_string()])?;
            w.write_record(row("macro avg", &report.macro_avg))?;
            w.write_record(row("weighted avg", &report.weighted_avg))?;
            Ok(())
        })
    }

    /// Rows: true class; columns: predicted class.
    pub fn write_confusion(&self, part: Part, report: &Scores, classes: &[String]) -> Result<()> {
        self.write_csv(&part.confusion_file(), |w| {
            let mut header = vec!["true\\predicted".to_string()];
            header.extend(classes.iter().cloned());
            w.write_record(&header)?;
            for (class, row) in classes.iter().zip(&report.confusion) {
                let mut record = vec![class.clone()];
                record.extend(row.iter().map(usize::to_string));
                w.write_record(&record)?;
            }
            Ok(())
        })
    }

    fn write_csv(
        &self,
        name: &str,
        fill: impl FnOnce(&mut csv::Writer<&mut Vec<u8>>) -> std::result::Result<(), csv::Error>,
    ) -> Result<()> {
        let mut buffer = Vec::new();
        {
            let mut writer = csv::Writer::from_writer(&mut buffer);
            fill(&mut writer).map_err(|e| Error::run_dir(&self.root, format!("cannot write {name}: {e}")))?;
            writer.flush().map_err(|e| Error::io(self.path(name), e))?;
        }
        self.write(name, &buffer)
    }

    fn read_csv<T>(
        &self,
        name: &str,
        parse: impl FnOnce(&mut csv::Reader<std::fs::File>) -> std::result::Result<T, csv::Error>,
    ) -> Result<T> {
        let path = self.path(name);
        let mut reader = csv::Reader::from_path(&path)
            .map_err(|e| Error::run_dir(&self.root, format!("cannot read {name}: {e}")))?;
        parse(&mut reader).map_err(|e| Error::run_dir(&self.root, format!("{name} is malformed: {e}")))
    }
}

fn csv_error(message: String) -> csv::Error {
    csv::Error::from(std::io::Error::new(std::io::ErrorKind::InvalidData, message))
}

fn parse_field(record: &csv::StringRecord, index: usize) -> std::result::Result<f64, csv::Error> {
    let text = record.get(index).ok_or_else(|| csv_error(format!("column {index} is missing")))?;
    text.parse().map_err(|_| csv_error(format!("{text:?} is not a number")))
}
