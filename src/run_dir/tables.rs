//! The run folder's CSV tables: their rows and columns, written and read back.

use serde::{Deserialize, Serialize};

use super::RunDir;
use crate::error::Result;

use super::{DUPLICATES, EPOCHS, Part, SPLIT, STEPS};
use crate::metrics::{ClassScores, Scores};

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

/// Where an image of `split.csv` went: a part of the run, or left out because it cannot be
/// read (`skipped`, with no size).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    Train,
    Val,
    Test,
    Skipped,
}

impl From<Part> for Placement {
    fn from(part: Part) -> Self {
        match part {
            Part::Train => Placement::Train,
            Part::Val => Placement::Val,
            Part::Test => Placement::Test,
        }
    }
}

/// One row of `split.csv`: where each image of the dataset went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitRow {
    pub path: String,
    pub class: String,
    pub split: Placement,
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

impl RunDir {
    /// `rows` under a header of their field names (none for no rows).
    fn write_rows<T: Serialize>(&self, name: &str, rows: &[T]) -> Result<()> {
        self.write_csv(name, |w| rows.iter().try_for_each(|row| w.serialize(row)))
    }

    pub fn write_split(&self, rows: &[SplitRow]) -> Result<()> {
        self.write_rows(SPLIT, rows)
    }

    pub fn read_split(&self) -> Result<Vec<SplitRow>> {
        self.read_csv(SPLIT, |r| r.deserialize().collect())
    }

    pub fn write_duplicates(&self, rows: &[DuplicateRow]) -> Result<()> {
        if rows.is_empty() {
            // the header alone, so the file always says what it would hold
            return self.write_csv(DUPLICATES, |w| w.write_record(["group", "kind", "split", "class", "path"]));
        }
        self.write_rows(DUPLICATES, rows)
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

    /// `epochs.csv` and `steps.csv`, what the report and TensorBoard draw. A run that never
    /// finished (killed in its first epoch, before either was first written) has none yet, and
    /// they read as empty: it is unfinished with no epoch, as a run stopped by a signal then is.
    /// A `finished` run without them is damaged, and said so.
    pub fn read_training(&self, finished: bool) -> Result<(Vec<EpochRow>, Vec<StepRow>)> {
        let missing = |file: &str| !finished && !self.path(file).exists();
        let epochs = if missing(EPOCHS) { Vec::new() } else { self.read_epochs()? };
        let steps = if missing(STEPS) { Vec::new() } else { self.read_steps()? };
        Ok((epochs, steps))
    }

    pub fn write_steps(&self, rows: &[StepRow]) -> Result<()> {
        self.write_rows(STEPS, rows)
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
            let row = |name: &str, s: &ClassScores| {
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
}

fn csv_error(message: String) -> csv::Error {
    csv::Error::from(std::io::Error::new(std::io::ErrorKind::InvalidData, message))
}

fn parse_field(record: &csv::StringRecord, index: usize) -> std::result::Result<f64, csv::Error> {
    let text = record.get(index).ok_or_else(|| csv_error(format!("column {index} is missing")))?;
    text.parse().map_err(|_| csv_error(format!("{text:?} is not a number")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes() -> Vec<String> {
        vec!["cat".into(), "dog".into()]
    }

    #[test]
    fn every_table_reads_back_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::create(dir.path()).unwrap();
        let epochs = vec![EpochRow { epoch: 1, train_loss: 0.5, val_recall: vec![0.25, 1.0], lr: 2e-5, seconds: 1.5, best: true, ..Default::default() }];
        run.write_epochs(&epochs, &classes()).unwrap();
        assert_eq!(run.read_epochs().unwrap(), epochs);
        let steps = vec![StepRow { step: 3, epoch: 1, loss: 0.75, lr: 1e-4, grad_norm: 2.5 }];
        run.write_steps(&steps).unwrap();
        assert_eq!(run.read_steps().unwrap(), steps);
        let split = vec![SplitRow { path: "a, b.png".into(), class: "dog".into(), split: Placement::Val, width: Some(3), height: None }];
        run.write_split(&split).unwrap();
        assert_eq!(run.read_split().unwrap(), split);
        let predictions = vec![PredictionRow { path: "x.png".into(), label: 1, prediction: 0, probabilities: vec![0.75, 0.25] }];
        run.write_predictions(Part::Test, &predictions, &classes()).unwrap();
        assert_eq!(run.read_predictions(Part::Test, &classes()).unwrap(), predictions);
        let duplicates = vec![DuplicateRow { group: 0, kind: "exact".into(), split: "train".into(), class: "cat".into(), path: "c/1.png".into() }];
        run.write_duplicates(&duplicates).unwrap();
        assert_eq!(run.read_duplicates().unwrap(), Some(duplicates));
        run.write_duplicates(&[]).unwrap();
        assert_eq!(run.read_duplicates().unwrap(), Some(vec![]));
    }

    #[test]
    fn a_malformed_table_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::create(dir.path()).unwrap();
        run.write(EPOCHS, b"epoch,train_loss\n1,abc\n").unwrap();
        let error = run.read_epochs().unwrap_err().to_string();
        assert!(error.contains("epochs.csv is malformed"), "{error}");
    }
}
