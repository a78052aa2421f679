//! The evaluated parts (validation, test, and the test part without leaked images): scores with
//! bootstrap intervals, classification report, confusion matrix — read from the predictions files.

use std::collections::HashSet;
use std::path::Path;

use serde::Serialize;

use super::{Chart, charts, galleries};
use crate::error::Result;
use crate::metrics::{ClassScores, Scores};
use crate::run_dir::{self, Meta, Part, RunDir};
use crate::stats::{self, Metric};

#[derive(Serialize)]
pub struct ScoreRow {
    pub name: String,
    pub precision: String,
    pub recall: String,
    pub f1: String,
    pub support: usize,
}

#[derive(Serialize)]
pub struct PartReport {
    pub part: Part,
    pub title: &'static str,
    /// Anchor of its section.
    pub anchor: &'static str,
    pub accuracy: String,
    #[serde(skip)]
    pub accuracy_interval: stats::Interval,
    /// 95% bootstrap intervals, `[low, high]`.
    pub accuracy_ci: String,
    #[serde(skip)]
    pub macro_f1_interval: stats::Interval,
    pub macro_f1_ci: String,
    pub weighted_f1_ci: String,
    pub total: usize,
    pub rows: Vec<ScoreRow>,
    pub macro_avg: ScoreRow,
    pub weighted_avg: ScoreRow,
    pub confusion_header: Vec<String>,
    pub confusion_rows: Vec<Vec<String>>,
    /// Row-normalised: each row sums to 100%.
    pub confusion_percent_rows: Vec<Vec<String>>,
    /// `None` for the leak-free subset, whose matrix is only tabulated.
    pub confusion_chart: Option<Chart>,
}

fn score_row(name: &str, s: &ClassScores) -> ScoreRow {
    ScoreRow {
        name: name.to_string(),
        precision: format!("{:.4}", s.precision),
        recall: format!("{:.4}", s.recall),
        f1: format!("{:.4}", s.f1),
        support: s.support,
    }
}

pub fn part_report(part: Part, report: &Scores, classes: &[String], truth: &[usize], predicted: &[usize], seed: u64, confusion_chart: Option<Chart>) -> PartReport {
    let interval = |metric: Metric| stats::metric_interval(truth, predicted, classes.len(), metric, seed);
    let format = |i: stats::Interval| format!("[{:.4}, {:.4}]", i.low, i.high);
    let ci = |metric: Metric| format(interval(metric));
    // the findings use the accuracy interval too: bootstrap it once
    let accuracy_interval = interval(Metric::Accuracy);
    let macro_f1_interval = interval(Metric::MacroF1);
    let mut confusion_header = vec!["true \\ predicted".to_string()];
    confusion_header.extend(classes.iter().cloned());
    PartReport {
        part,
        title: match part {
            Part::Train => "Training",
            Part::Val => "Validation",
            Part::Test => "Test",
        },
        anchor: match part {
            Part::Train => "training",
            Part::Val => "validation-classification-report",
            Part::Test => "test-classification-report",
        },
        accuracy: format!("{:.4}", report.accuracy),
        accuracy_interval,
        accuracy_ci: format(accuracy_interval),
        macro_f1_interval,
        macro_f1_ci: format(macro_f1_interval),
        weighted_f1_ci: ci(Metric::WeightedF1),
        total: report.weighted_avg.support,
        rows: classes.iter().zip(&report.per_class).map(|(c, s)| score_row(c, s)).collect(),
        macro_avg: score_row("macro avg", &report.macro_avg),
        weighted_avg: score_row("weighted avg", &report.weighted_avg),
        confusion_header,
        confusion_rows: classes
            .iter()
            .zip(&report.confusion)
            .map(|(c, row)| std::iter::once(c.clone()).chain(row.iter().map(usize::to_string)).collect())
            .collect(),
        confusion_percent_rows: classes
            .iter()
            .zip(&report.confusion)
            .map(|(c, row)| {
                let total = row.iter().sum::<usize>().max(1) as f64;
                std::iter::once(c.clone()).chain(row.iter().map(|&n| format!("{:.1}%", 100.0 * n as f64 / total))).collect()
            })
            .collect(),
        confusion_chart,
    }
}

/// What reading the predictions files gives the report.
pub struct Parts {
    pub parts: Vec<PartReport>,
    /// The test part on the images without a duplicate on the training side, when some leak.
    pub leak_free: Option<PartReport>,
    /// `(part, true labels, predictions)` of each part found, for the findings.
    pub labels: Vec<(Part, Vec<usize>, Vec<usize>)>,
    pub galleries: galleries::TestGalleries,
}

/// Every evaluated part of `run`; `leaked` are the test images (relative to the data root) with a
/// duplicate on the training side.
pub fn read(run: &RunDir, meta: &Meta, leaked: Option<&HashSet<String>>, galleries: bool) -> Result<Parts> {
    let classes = &meta.classes;
    let data_root = Path::new(&meta.data_root);
    let relative = |path: &str| crate::fmt::relative(data_root, Path::new(path));
    let mut found = Parts { parts: Vec::new(), leak_free: None, labels: Vec::new(), galleries: galleries::TestGalleries::default() };
    for part in [Part::Val, Part::Test] {
        if !run.path(&part.predictions_file()).is_file() {
            continue;
        }
        let predictions = run.read_predictions(part, classes)?;
        if part == Part::Test && galleries {
            found.galleries = galleries::test_galleries(&predictions, meta);
        }
        let labels: Vec<usize> = predictions.iter().map(|p| p.label).collect();
        let predicted: Vec<usize> = predictions.iter().map(|p| p.prediction).collect();
        let report = Scores::new(&labels, &predicted, classes.len());
        let title = format!("Confusion matrix ({}, best epoch)", if part == Part::Test { "test" } else { "validation" });
        let chart = Chart { title: title.clone(), file: run_dir::chart(&format!("confusion_{}", part.name())), svg: charts::confusion(&title, classes, &report.confusion)? };
        found.parts.push(part_report(part, &report, classes, &labels, &predicted, meta.seed, Some(chart)));
        if let Some(leaked) = leaked.filter(|l| part == Part::Test && !l.is_empty()) {
            let keep: Vec<usize> = (0..predictions.len()).filter(|&i| !leaked.contains(&relative(&predictions[i].path))).collect();
            if !keep.is_empty() {
                let t: Vec<usize> = keep.iter().map(|&i| labels[i]).collect();
                let p: Vec<usize> = keep.iter().map(|&i| predicted[i]).collect();
                let report = Scores::new(&t, &p, classes.len());
                let mut free = part_report(part, &report, classes, &t, &p, meta.seed, None);
                free.title = "Test, leak-free";
                found.leak_free = Some(free);
            }
        }
        found.labels.push((part, labels, predicted));
    }
    Ok(found)
}
