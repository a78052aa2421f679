//! The report: charts and documents rendered from the files of a run folder alone — never from
//! the trainer's memory — so `brasa report RUN_DIR` rebuilds exactly what `brasa run` wrote.

pub mod attention;
pub mod charts;
pub mod grid;
pub mod sweep;

use minijinja::{Environment, UndefinedBehavior, Value};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::metrics::{ClassScores, Report};
use crate::run_dir::{self, EpochRow, Meta, Part, RunDir};
use crate::stats::{self, Metric};

const MARKDOWN_TEMPLATE: &str = include_str!("../../templates/report.md.j2");
const HTML_TEMPLATE: &str = include_str!("../../templates/report.html.j2");

/// The files a rendering wrote, relative to the run folder.
#[derive(Debug, Clone, Default)]
pub struct Rendered {
    pub files: Vec<String>,
}

#[derive(Serialize)]
struct Chart {
    title: String,
    file: String,
    /// The SVG markup without its XML declaration, for inlining in HTML.
    svg: String,
}

/// Everything the templates can use.
#[derive(Serialize)]
struct Context<'a> {
    meta: &'a Meta,
    wall_time: Option<String>,
    counts: Vec<CountRow>,
    totals: [usize; 3],
    epochs: Vec<EpochLine>,
    best: Option<EpochLine>,
    parts: Vec<PartReport>,
    charts: Vec<Chart>,
    /// The prediction grid, or why it is missing.
    grid: Option<Chart>,
    grid_note: Option<String>,
}

#[derive(Serialize)]
struct ScoreRow {
    name: String,
    precision: String,
    recall: String,
    f1: String,
    support: usize,
}

#[derive(Serialize)]
struct PartReport {
    part: &'static str,
    title: &'static str,
    accuracy: String,
    /// 95% bootstrap intervals, `[low, high]`.
    accuracy_ci: String,
    macro_f1_ci: String,
    weighted_f1_ci: String,
    total: usize,
    rows: Vec<ScoreRow>,
    macro_avg: ScoreRow,
    weighted_avg: ScoreRow,
    confusion_header: Vec<String>,
    confusion_rows: Vec<Vec<String>>,
    chart: String,
}

#[derive(Serialize)]
struct EpochLine {
    epoch: usize,
    train_loss: String,
    train_accuracy: String,
    val_loss: String,
    val_accuracy: String,
    val_macro_f1: String,
    val_macro_recall: String,
    lr: String,
    seconds: String,
    best: bool,
}

#[derive(Serialize)]
struct CountRow {
    class: String,
    train: usize,
    val: usize,
    test: usize,
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

fn part_report(part: Part, report: &Report, classes: &[String], truth: &[usize], predicted: &[usize], seed: u64) -> PartReport {
    let ci = |metric: Metric| {
        let i = stats::metric_interval(truth, predicted, classes.len(), metric, seed);
        format!("[{:.4}, {:.4}]", i.low, i.high)
    };
    let mut confusion_header = vec!["true \\ predicted".to_string()];
    confusion_header.extend(classes.iter().cloned());
    PartReport {
        part: part.name(),
        title: match part {
            Part::Train => "Training",
            Part::Val => "Validation",
            Part::Test => "Test",
        },
        accuracy: format!("{:.4}", report.accuracy),
        accuracy_ci: ci(Metric::Accuracy),
        macro_f1_ci: ci(Metric::MacroF1),
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
        chart: format!("charts/confusion_{}.svg", part.name()),
    }
}

fn epoch_line(e: &EpochRow) -> EpochLine {
    EpochLine {
        epoch: e.epoch,
        train_loss: format!("{:.4}", e.train_loss),
        train_accuracy: format!("{:.4}", e.train_accuracy),
        val_loss: format!("{:.4}", e.val_loss),
        val_accuracy: format!("{:.4}", e.val_accuracy),
        val_macro_f1: format!("{:.4}", e.val_macro_f1),
        val_macro_recall: format!("{:.4}", e.val_macro_recall),
        lr: format!("{:.3e}", e.lr),
        seconds: format!("{:.1}", e.seconds),
        best: e.best,
    }
}

/// Human-readable duration: `1 h 02 min`, `7 min 31 s`, `12.4 s`.
pub fn format_duration(seconds: f64) -> String {
    let s = seconds.round() as u64;
    if s >= 3600 {
        format!("{} h {:02} min", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        format!("{seconds:.1} s")
    }
}

/// Draws the charts and renders the documents of the run in `run` (the formats its meta names).
pub fn render(run: &RunDir) -> Result<Rendered> {
    let meta: Meta = run.read_meta()?;
    let classes = &meta.classes;
    let epochs = run.read_epochs()?;
    let steps = run.read_steps()?;
    let mut rendered = Rendered::default();

    let mut charts = vec![Chart {
        title: "Images per class".into(),
        file: "charts/class_distribution.svg".into(),
        svg: charts::class_distribution(
            classes,
            &[("train", &meta.counts.train), ("validation", &meta.counts.val), ("test", &meta.counts.test)],
        )?,
    }];
    if !epochs.is_empty() {
        charts.push(Chart { title: "Loss".into(), file: "charts/loss.svg".into(), svg: charts::loss_curves(&epochs, &steps)? });
        charts.push(Chart { title: "Validation metrics".into(), file: "charts/metrics.svg".into(), svg: charts::metric_curves(&epochs)? });
        charts.push(Chart { title: "Learning rate".into(), file: "charts/learning_rate.svg".into(), svg: charts::learning_rate(&steps)? });
    }

    let mut parts = Vec::new();
    let (mut grid, mut grid_note) = (None, None);
    for part in [Part::Val, Part::Test] {
        if !run.path(&part.predictions_file()).is_file() {
            continue;
        }
        let predictions = run.read_predictions(part, classes)?;
        if part == Part::Test && meta.report.prediction_grid > 0 {
            match grid::prediction_grid(&predictions, classes, meta.report.prediction_grid, meta.seed) {
                Ok(svg) => {
                    let file = "charts/predictions_test.svg".to_string();
                    run.write(&file, svg.as_bytes())?;
                    rendered.files.push(file.clone());
                    grid = Some(Chart { title: "Test images: true and predicted class".into(), file, svg: strip_xml_header(&svg) });
                }
                Err(why) => grid_note = Some(format!("the prediction grid could not be drawn: {why}")),
            }
        }
        let labels: Vec<usize> = predictions.iter().map(|p| p.label).collect();
        let predicted: Vec<usize> = predictions.iter().map(|p| p.prediction).collect();
        let report = Report::new(&labels, &predicted, classes.len());
        let title = format!("Confusion matrix ({}, best epoch)", if part == Part::Test { "test" } else { "validation" });
        charts.push(Chart {
            title: title.clone(),
            file: format!("charts/confusion_{}.svg", part.name()),
            svg: charts::confusion(&title, classes, &report.confusion)?,
        });
        parts.push(part_report(part, &report, classes, &labels, &predicted, meta.seed));
    }
    for chart in &charts {
        run.write(&chart.file, chart.svg.as_bytes())?;
        rendered.files.push(chart.file.clone());
    }

    let counts: Vec<CountRow> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| CountRow {
            class: c.clone(),
            train: meta.counts.train.get(i).copied().unwrap_or(0),
            val: meta.counts.val.get(i).copied().unwrap_or(0),
            test: meta.counts.test.get(i).copied().unwrap_or(0),
        })
        .collect();
    let best = epochs.iter().find(|e| e.best && Some(e.epoch) == meta.best_epoch).map(epoch_line);
    let charts = charts.into_iter().map(|c| Chart { svg: strip_xml_header(&c.svg), ..c }).collect();
    let context = Value::from(minijinja::value::Serde(Context {
        meta: &meta,
        wall_time: meta.wall_seconds.map(format_duration),
        counts,
        totals: [meta.counts.train.iter().sum(), meta.counts.val.iter().sum(), meta.counts.test.iter().sum()],
        epochs: epochs.iter().map(epoch_line).collect(),
        best,
        parts,
        charts,
        grid,
        grid_note,
    }));

    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.add_template("report.md", MARKDOWN_TEMPLATE).map_err(template_error)?;
    env.add_template("report.html", HTML_TEMPLATE).map_err(template_error)?;
    if meta.report.markdown {
        let text = env.get_template("report.md").and_then(|t| t.render(&context)).map_err(template_error)?;
        run.write(run_dir::REPORT_MD, text.as_bytes())?;
        rendered.files.push(run_dir::REPORT_MD.into());
    }
    if meta.report.html {
        let text = env.get_template("report.html").and_then(|t| t.render(&context)).map_err(template_error)?;
        run.write(run_dir::REPORT_HTML, text.as_bytes())?;
        rendered.files.push(run_dir::REPORT_HTML.into());
    }
    Ok(rendered)
}

fn strip_xml_header(svg: &str) -> String {
    match svg.find("<svg") {
        Some(start) => svg[start..].to_string(),
        None => svg.to_string(),
    }
}

fn template_error(e: minijinja::Error) -> Error {
    let mut message = format!("template {}: {e}", e.name().unwrap_or("?"));
    let mut source = std::error::Error::source(&e);
    while let Some(inner) = source {
        message.push_str(&format!(": {inner}"));
        source = inner.source();
    }
    Error::Report(message)
}
