//! The report: charts and documents rendered from the files of a run folder alone — never from
//! the trainer's memory — so `brasa report RUN_DIR` rebuilds exactly what `brasa run` wrote.

pub mod attention;
pub mod charts;
pub mod findings;
pub mod grid;
pub mod leakage;
pub mod sizes;
pub mod sweep;
pub mod templates;

use serde::Serialize;

use crate::error::Result;
use crate::fmt::format_duration;
use crate::metrics::{ClassScores, Scores};
use crate::run_dir::{self, EpochRow, Meta, Part, RunDir};
use crate::stats::{self, Metric};


/// The files a rendering wrote, relative to the run folder.
#[derive(Debug, Clone, Default)]
pub struct Rendered {
    pub files: Vec<String>,
}

#[derive(Serialize)]
pub(crate) struct Chart {
    title: String,
    file: String,
    /// The SVG markup without its XML declaration, for inlining in HTML.
    svg: String,
}

/// Everything the templates can use (documented for template authors in the README).
#[derive(Serialize)]
struct Context<'a> {
    meta: &'a Meta,
    /// When the run finished (or started, for an unfinished one).
    generated_at: String,
    wall_time: Option<String>,
    /// The device the run trained on and why (runs from before devices were recorded: none).
    device: Option<String>,
    findings: Vec<findings::Finding>,
    counts: Vec<CountRow>,
    totals: [usize; 3],
    sizes: Vec<sizes::SizeRow>,
    /// Class distribution per part.
    data_charts: Vec<Chart>,
    /// Duplicate groups among the run's images; `None` for runs without `duplicates.csv`.
    audit: Option<leakage::AuditSummary>,
    /// Thumbnails of the largest duplicate groups, or why they are missing.
    duplicate_sheet: Option<Chart>,
    duplicate_note: Option<String>,
    epochs: Vec<EpochLine>,
    best: Option<EpochLine>,
    /// Loss, metrics, learning rate and gradient norm.
    training_charts: Vec<Chart>,
    parts: Vec<PartReport>,
    /// The test part on the images without a duplicate on the training side, when some leak.
    leak_free: Option<PartReport>,
    /// The prediction grid, or why it is missing.
    grid: Option<Chart>,
    grid_note: Option<String>,
    mistakes: Option<Chart>,
    mistakes_note: Option<String>,
    /// Attention maps of a few test images (`attention.json`).
    attention: Option<Chart>,
    attention_note: Option<String>,
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
    /// Anchor of its section.
    anchor: &'static str,
    accuracy: String,
    #[serde(skip)]
    accuracy_interval: stats::Interval,
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
    /// Row-normalised: each row sums to 100%.
    confusion_percent_rows: Vec<Vec<String>>,
    /// `None` for the leak-free subset, whose matrix is only tabulated.
    confusion_chart: Option<Chart>,
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

fn part_report(part: Part, report: &Scores, classes: &[String], truth: &[usize], predicted: &[usize], seed: u64, confusion_chart: Option<Chart>) -> PartReport {
    let interval = |metric: Metric| stats::metric_interval(truth, predicted, classes.len(), metric, seed);
    let format = |i: stats::Interval| format!("[{:.4}, {:.4}]", i.low, i.high);
    let ci = |metric: Metric| format(interval(metric));
    // the findings use the accuracy interval too: bootstrap it once
    let accuracy_interval = interval(Metric::Accuracy);
    let mut confusion_header = vec!["true \\ predicted".to_string()];
    confusion_header.extend(classes.iter().cloned());
    PartReport {
        part: part.name(),
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

/// Duplicate groups drawn in the audit section, and files shown per group.
const SHEET_GROUPS: usize = 4;
const SHEET_MEMBERS: usize = 5;


/// Draws the charts and renders the documents of the run in `run` (the formats its meta names).
pub fn render(run: &RunDir) -> Result<Rendered> {
    let meta: Meta = run.read_meta()?;
    let classes = &meta.classes;
    let epochs = run.read_epochs()?;
    let steps = run.read_steps()?;
    let split = run.read_split()?;
    let mut rendered = Rendered::default();

    let mut data_charts = Vec::new();
    for (part, title, counts) in [
        ("train", "Images per class: train", &meta.counts.train),
        ("val", "Images per class: validation", &meta.counts.val),
        ("test", "Images per class: test", &meta.counts.test),
    ] {
        if counts.iter().sum::<usize>() > 0 {
            data_charts.push(Chart {
                title: title.into(),
                file: format!("charts/class_distribution_{part}.svg"),
                svg: charts::class_distribution(title, classes, &[(part, counts)])?,
            });
        }
    }
    let mut training_charts = Vec::new();
    if !epochs.is_empty() {
        training_charts.push(Chart { title: "Loss".into(), file: "charts/loss.svg".into(), svg: charts::loss_curves(&epochs, &steps)? });
        training_charts.push(Chart { title: "Validation metrics".into(), file: "charts/metrics.svg".into(), svg: charts::metric_curves(&epochs)? });
        training_charts.push(Chart { title: "Learning rate".into(), file: "charts/learning_rate.svg".into(), svg: charts::learning_rate(&steps)? });
        training_charts.push(Chart { title: "Gradient norm".into(), file: "charts/grad_norm.svg".into(), svg: charts::grad_norm(&steps)? });
    }

    let duplicates = run.read_duplicates()?;
    let (audit, leaked) = match &duplicates {
        Some(rows) => {
            let (summary, leaked) = leakage::summarise(rows);
            (Some(summary), Some(leaked))
        }
        None => (None, None),
    };
    let data_root = std::path::Path::new(&meta.data_root);
    // contact sheets of the largest groups, from the original files
    let (mut duplicate_sheet, mut duplicate_note) = (None, None);
    if let (Some(rows), Some(summary)) = (&duplicates, &audit) {
        let paths: Vec<String> = rows.iter().map(|r| data_root.join(&r.path).display().to_string()).collect();
        let mut tiles = Vec::new();
        for line in summary.largest.iter().take(SHEET_GROUPS) {
            // one file of each part first, so a leak shows as train and test side by side
            let all: Vec<(&run_dir::DuplicateRow, &String)> = rows.iter().zip(&paths).filter(|(r, _)| r.group == line.group).collect();
            let mut shown: Vec<usize> = Vec::new();
            for (i, (r, _)) in all.iter().enumerate() {
                if !shown.iter().any(|&j| all[j].0.split == r.split) {
                    shown.push(i);
                }
            }
            shown.extend((0..all.len()).filter(|i| !shown.contains(i)).collect::<Vec<_>>());
            shown.truncate(SHEET_MEMBERS);
            shown.sort_unstable();
            tiles.extend(shown.into_iter().map(|i| all[i]).map(|(r, path)| grid::Tile {
                path,
                caption: vec![
                    (format!("group {} ({})", r.group, r.kind), "#222"),
                    (format!("{} · {}", r.split, r.class), "#57606a"),
                ],
            }));
        }
        if !tiles.is_empty() {
            match grid::gallery(&tiles) {
                Ok(svg) => duplicate_sheet = Some(Chart { title: "The largest duplicate groups".into(), file: "charts/duplicates.svg".into(), svg }),
                Err(why) => duplicate_note = Some(format!("the duplicate groups could not be drawn: {why}")),
            }
        }
    }
    let relative = |path: &str| crate::fmt::relative(data_root, std::path::Path::new(path));

    let mut parts = Vec::new();
    let mut part_labels: Vec<(Part, Vec<usize>, Vec<usize>)> = Vec::new();
    let mut leak_free = None;
    let (mut grid, mut grid_note, mut mistakes, mut mistakes_note) = (None, None, None, None);
    for part in [Part::Val, Part::Test] {
        if !run.path(&part.predictions_file()).is_file() {
            continue;
        }
        let predictions = run.read_predictions(part, classes)?;
        if part == Part::Test && meta.report.prediction_grid > 0 {
            match grid::prediction_grid(&predictions, classes, meta.report.prediction_grid, meta.seed) {
                Ok(svg) => grid = Some(Chart { title: "Test images: true and predicted class".into(), file: "charts/predictions_test.svg".into(), svg }),
                Err(why) => grid_note = Some(format!("the prediction grid could not be drawn: {why}")),
            }
        }
        if part == Part::Test && meta.report.mistakes > 0 {
            let wrong = grid::confident_mistakes(&predictions, meta.report.mistakes);
            if wrong.is_empty() {
                mistakes_note = Some("no test image is misclassified.".to_string());
            } else {
                match grid::mistakes_gallery(&wrong, classes) {
                    Ok(svg) => mistakes = Some(Chart { title: "Most confident mistakes (test)".into(), file: "charts/mistakes_test.svg".into(), svg }),
                    Err(why) => mistakes_note = Some(format!("the gallery could not be drawn: {why}")),
                }
            }
        }
        let labels: Vec<usize> = predictions.iter().map(|p| p.label).collect();
        let predicted: Vec<usize> = predictions.iter().map(|p| p.prediction).collect();
        let report = Scores::new(&labels, &predicted, classes.len());
        let title = format!("Confusion matrix ({}, best epoch)", if part == Part::Test { "test" } else { "validation" });
        let chart = Chart { title: title.clone(), file: format!("charts/confusion_{}.svg", part.name()), svg: charts::confusion(&title, classes, &report.confusion)? };
        parts.push(part_report(part, &report, classes, &labels, &predicted, meta.seed, Some(chart)));
        // the test metrics again on the images without a duplicate on the training side
        if let Some(leaked) = leaked.as_ref().filter(|l| part == Part::Test && !l.is_empty()) {
            let keep: Vec<usize> = (0..predictions.len()).filter(|&i| !leaked.contains(&relative(&predictions[i].path))).collect();
            if !keep.is_empty() {
                let t: Vec<usize> = keep.iter().map(|&i| labels[i]).collect();
                let p: Vec<usize> = keep.iter().map(|&i| predicted[i]).collect();
                let report = Scores::new(&t, &p, classes.len());
                let mut free = part_report(part, &report, classes, &t, &p, meta.seed, None);
                free.title = "Test, leak-free";
                leak_free = Some(free);
            }
        }
        part_labels.push((part, labels, predicted));
    }

    let labels_of = |part: Part| {
        part_labels.iter().find(|(p, _, _)| *p == part).map(|(_, t, p)| findings::Labels { truth: t, predicted: p })
    };
    let leak_facts = audit.as_ref().map(|a| findings::LeakFacts {
        test_leaked: a.test_leaked,
        test_total: meta.counts.test.iter().sum(),
        val_leaked: a.val_leaked,
        val_total: meta.counts.val.iter().sum(),
        conflicts: a.conflict_groups,
        leak_free_accuracy: leak_free.as_ref().map(|f| f.accuracy_interval),
    });
    let findings = findings::derive(&findings::Inputs {
        classes,
        epochs: &epochs,
        steps: &steps,
        best_epoch: meta.best_epoch,
        val: labels_of(Part::Val),
        test: labels_of(Part::Test),
        leaks: leak_facts.as_ref(),
        seed: meta.seed,
    });

    let (mut attention, mut attention_note) = (None, None);
    if let Some(entries) = run.read_attention()? {
        let items: Vec<(&std::path::Path, &str, &str, &crate::attention_map::AttentionMap)> = entries
            .iter()
            .map(|e| (std::path::Path::new(&e.path), e.label.as_str(), e.prediction.as_str(), &e.map))
            .collect();
        // draw the maps over what the model saw: the run's resize and centre crop
        let recipe = meta.preprocess.as_ref().map(|p| p.recipe);
        let view = |image: image::RgbImage| match &recipe {
            Some(recipe) => recipe.apply(image),
            None => image,
        };
        match attention::overlay_svg(&items, view) {
            Ok(svg) => {
                let method = match entries.first().map(|e| e.map.method.as_str()) {
                    Some(crate::attention_map::ROLLOUT) => "attention rollout",
                    _ => "last-stage cls attention",
                };
                attention = Some(Chart { title: format!("Test images with their {method}"), file: "charts/attention_test.svg".into(), svg });
            }
            Err(why) => attention_note = Some(format!("the attention maps could not be drawn: {why}")),
        }
    }

    // every chart is written under charts/ for the markdown and inlined in the HTML
    let mut written: Vec<&mut Chart> = data_charts.iter_mut().chain(training_charts.iter_mut()).collect();
    written.extend(parts.iter_mut().filter_map(|p| p.confusion_chart.as_mut()));
    written.extend(grid.iter_mut().chain(mistakes.iter_mut()).chain(attention.iter_mut()).chain(duplicate_sheet.iter_mut()));
    for chart in written {
        run.write(&chart.file, chart.svg.as_bytes())?;
        rendered.files.push(chart.file.clone());
        chart.svg = strip_xml_header(&chart.svg);
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
    let context = Context {
        meta: &meta,
        generated_at: meta.finished_at.clone().unwrap_or_else(|| meta.started_at.clone()),
        wall_time: meta.wall_seconds.map(format_duration),
        device: meta.device.as_ref().map(|device| {
            let memory = meta.gpu_memory_peak_bytes.map(|b| format!("; GPU memory held: {:.0} MB", b as f64 / 1e6)).unwrap_or_default();
            format!("{}{memory}", device.summary())
        }),
        findings,
        counts,
        totals: [meta.counts.train.iter().sum(), meta.counts.val.iter().sum(), meta.counts.test.iter().sum()],
        sizes: sizes::summarise(&split),
        data_charts,
        audit,
        duplicate_sheet,
        duplicate_note,
        epochs: epochs.iter().map(epoch_line).collect(),
        best,
        training_charts,
        parts,
        leak_free,
        grid,
        grid_note,
        mistakes,
        mistakes_note,
        attention,
        attention_note,
    };

    let templates = templates::Templates::load(meta.report.templates.as_deref().map(std::path::Path::new))?;
    if meta.report.markdown {
        let text = templates.render("report.md.j2", &context)?;
        run.write(run_dir::REPORT_MD, text.as_bytes())?;
        rendered.files.push(run_dir::REPORT_MD.into());
    }
    if meta.report.html {
        let text = templates.render("report.html.j2", &context)?;
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
