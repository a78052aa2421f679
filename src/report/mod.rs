//! The report: charts and documents rendered from the files of a run folder alone — never from
//! the trainer's memory — so `brasa report RUN_DIR` rebuilds exactly what `brasa run` wrote.

pub mod attention;
pub mod charts;
mod dataset;
pub mod findings;
mod galleries;
pub mod grid;
pub mod leakage;
pub mod parts;
pub mod sizes;
pub mod sweep;
pub mod templates;
mod training;

use serde::Serialize;

use crate::error::Result;
use crate::fmt::format_duration;
use crate::run_dir::{self, EpochRow, Meta, Part, RunDir, StepRow};


/// The files a rendering wrote, relative to the run folder.
#[derive(Debug, Clone, Default)]
pub struct Rendered {
    pub files: Vec<String>,
}

/// A chart of the report: written under `charts/` and inlined in the HTML.
#[derive(Serialize)]
pub struct Chart {
    pub title: String,
    pub file: String,
    /// The SVG markup without its XML declaration, for inlining in HTML.
    pub svg: String,
}

/// Everything the templates can use (documented for template authors in the README).
#[derive(Serialize)]
struct Context<'a> {
    meta: &'a Meta,
    /// `complete`, `failed` or `unfinished`: a report is written when a run ends or by `brasa
    /// report`, which holds the folder's lock, so a run `meta.json` calls running is not.
    status: &'static str,
    /// When the run finished (or started, for an unfinished one).
    generated_at: String,
    wall_time: Option<String>,
    /// The device the run trained on and why (runs from before devices were recorded: none).
    device: Option<String>,
    findings: Vec<findings::Finding>,
    counts: Vec<dataset::CountRow>,
    totals: [usize; 3],
    sizes: Vec<sizes::SizeRow>,
    /// Class distribution per part.
    data_charts: Vec<Chart>,
    /// Duplicate groups among the run's images; `None` for runs without `duplicates.csv`.
    audit: Option<leakage::AuditSummary>,
    /// Thumbnails of the largest duplicate groups, or why they are missing.
    duplicate_sheet: Option<Chart>,
    duplicate_note: Option<String>,
    epochs: Vec<training::EpochLine>,
    best: Option<training::EpochLine>,
    /// Loss, metrics, learning rate and gradient norm.
    training_charts: Vec<Chart>,
    parts: Vec<parts::PartReport>,
    /// The test part on the images without a duplicate on the training side, when some leak.
    leak_free: Option<parts::PartReport>,
    /// The prediction grid, or why it is missing.
    grid: Option<Chart>,
    grid_note: Option<String>,
    mistakes: Option<Chart>,
    mistakes_note: Option<String>,
    /// Attention maps of a few test images (`attention.json`).
    attention: Option<Chart>,
    attention_note: Option<String>,
}

/// Draws the charts and renders the documents of the run in `run` (the formats its meta names).
pub fn render(run: &RunDir) -> Result<Rendered> {
    let meta: Meta = run.read_meta()?;
    let (epochs, steps) = run.read_training(meta.status == run_dir::Status::Complete)?;
    let split = run.read_split()?;

    let mut data_charts = dataset::charts(&meta)?;
    let mut training_charts = training::charts(&epochs, &steps)?;
    let duplicates = run.read_duplicates()?;
    let (audit, leaked) = match &duplicates {
        Some(rows) => {
            let (summary, leaked) = leakage::summarise(rows);
            (Some(summary), Some(leaked))
        }
        None => (None, None),
    };
    let (mut duplicate_sheet, duplicate_note) = match (&duplicates, &audit) {
        (Some(rows), Some(summary)) => galleries::duplicate_sheet(rows, summary, std::path::Path::new(&meta.data_root)),
        _ => (None, None),
    };
    let parts::Parts { mut parts, leak_free, labels, galleries: test_galleries } = parts::read(run, &meta, leaked.as_ref(), true)?;
    let galleries::TestGalleries { grid: (mut grid, grid_note), mistakes: (mut mistakes, mistakes_note) } = test_galleries;
    let (mut attention, attention_note) = galleries::attention_maps(run, &meta)?;
    let findings = derive_findings(&meta, &epochs, &steps, &labels, audit.as_ref(), leak_free.as_ref());

    // every chart is written under charts/ for the markdown and inlined in the HTML
    let mut rendered = Rendered::default();
    let mut written: Vec<&mut Chart> = data_charts.iter_mut().chain(training_charts.iter_mut()).collect();
    written.extend(parts.iter_mut().filter_map(|p| p.confusion_chart.as_mut()));
    written.extend(grid.iter_mut().chain(mistakes.iter_mut()).chain(attention.iter_mut()).chain(duplicate_sheet.iter_mut()));
    for chart in written {
        run.write(&chart.file, chart.svg.as_bytes())?;
        rendered.files.push(chart.file.clone());
        chart.svg = inline_svg(&chart.svg);
    }

    let best = epochs.iter().find(|e| e.best && Some(e.epoch) == meta.best_epoch).map(training::epoch_line);
    let context = Context {
        meta: &meta,
        status: match meta.status {
            run_dir::Status::Complete => "complete",
            run_dir::Status::Failed => "failed",
            run_dir::Status::Running => "unfinished",
        },
        generated_at: meta.finished_at.clone().unwrap_or_else(|| meta.started_at.clone()),
        wall_time: meta.wall_seconds.map(format_duration),
        device: meta.device.as_ref().map(|device| {
            let memory = meta.gpu_memory_peak_bytes.map(|b| format!("; GPU memory held: {}", crate::fmt::megabytes(b))).unwrap_or_default();
            format!("{}{memory}", device.summary())
        }),
        findings,
        counts: dataset::count_rows(&meta),
        totals: [meta.counts.train.iter().sum(), meta.counts.val.iter().sum(), meta.counts.test.iter().sum()],
        sizes: sizes::summarise(&split),
        data_charts,
        audit,
        duplicate_sheet,
        duplicate_note,
        epochs: epochs.iter().map(training::epoch_line).collect(),
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
    run.write_summary(&Summary::file_of(&meta, &context.parts, context.leak_free.as_ref(), &context.findings))?;
    rendered.files.push(run_dir::SUMMARY.into());
    crate::interrupt::point("report", 1);
    write_documents(run, &meta, &context, &mut rendered)?;
    Ok(rendered)
}

/// A run's results in brief — what a model card or a list of runs shows: the scores of each
/// part with their confidence intervals, the leak-free test part, and the findings.
pub struct Summary {
    pub meta: Meta,
    pub parts: Vec<parts::PartReport>,
    pub leak_free: Option<parts::PartReport>,
    pub findings: Vec<findings::Finding>,
}

impl Summary {
    /// What `summary.json` keeps of it.
    pub fn file(&self) -> run_dir::SummaryFile {
        Self::file_of(&self.meta, &self.parts, self.leak_free.as_ref(), &self.findings)
    }

    fn file_of(meta: &Meta, parts: &[parts::PartReport], leak_free: Option<&parts::PartReport>, findings: &[findings::Finding]) -> run_dir::SummaryFile {
        let scored = |i: crate::stats::Interval| run_dir::Scored { value: i.value, low: i.low, high: i.high };
        let brief = |part: Part, report: &parts::PartReport| run_dir::PartSummary {
            part,
            images: report.total,
            accuracy: scored(report.accuracy_interval),
            macro_f1: scored(report.macro_f1_interval),
        };
        run_dir::SummaryFile {
            status: meta.status,
            epochs_run: meta.epochs_run,
            parts: parts.iter().map(|r| brief(r.part, r)).collect(),
            leak_free_test: leak_free.map(|r| brief(Part::Test, r)),
            findings: findings.iter().map(|f| run_dir::FindingSummary { code: f.code.into(), text: f.text.clone() }).collect(),
        }
    }
}

/// The [`Summary`] of the run in `run`, from its files (as `render` reads them, without
/// drawing anything).
pub fn summary(run: &RunDir) -> Result<Summary> {
    let meta: Meta = run.read_meta()?;
    let (epochs, steps) = run.read_training(meta.status == run_dir::Status::Complete)?;
    let audit = run.read_duplicates()?.map(|rows| leakage::summarise(&rows));
    let leaked = audit.as_ref().map(|(_, leaked)| leaked);
    let parts::Parts { parts, leak_free, labels, .. } = parts::read(run, &meta, leaked, false)?;
    let findings = derive_findings(&meta, &epochs, &steps, &labels, audit.as_ref().map(|(a, _)| a), leak_free.as_ref());
    Ok(Summary { meta, parts, leak_free, findings })
}

/// What the numbers say, for the findings section.
fn derive_findings(
    meta: &Meta,
    epochs: &[EpochRow],
    steps: &[StepRow],
    labels: &[(Part, Vec<usize>, Vec<usize>)],
    audit: Option<&leakage::AuditSummary>,
    leak_free: Option<&parts::PartReport>,
) -> Vec<findings::Finding> {
    let labels_of = |part: Part| labels.iter().find(|(p, _, _)| *p == part).map(|(_, t, p)| findings::Labels { truth: t, predicted: p });
    let leak_facts = audit.map(|a| findings::LeakFacts {
        test_leaked: a.test_leaked,
        test_total: meta.counts.test.iter().sum(),
        val_leaked: a.val_leaked,
        val_total: meta.counts.val.iter().sum(),
        conflicts: a.conflict_groups,
        leak_free_accuracy: leak_free.map(|f| f.accuracy_interval),
    });
    findings::derive(&findings::Inputs {
        classes: &meta.classes,
        epochs,
        steps,
        best_epoch: meta.best_epoch,
        val: labels_of(Part::Val),
        test: labels_of(Part::Test),
        leaks: leak_facts.as_ref(),
        seed: meta.seed,
        unreadable: &meta.unreadable.iter().map(|f| (f.class.clone(), f.folder.clone())).collect::<Vec<_>>(),
    })
}

/// `report.md` and `report.html`, as the run's meta asks, from its templates.
fn write_documents(run: &RunDir, meta: &Meta, context: &Context, rendered: &mut Rendered) -> Result<()> {
    let templates = templates::Templates::load(meta.report.templates.as_deref().map(std::path::Path::new))?;
    for (wanted, template, file) in [(meta.report.markdown, "report.md.j2", run_dir::REPORT_MD), (meta.report.html, "report.html.j2", run_dir::REPORT_HTML)] {
        if wanted {
            let text = templates.render(template, context)?;
            run.write(file, text.as_bytes())?;
            rendered.files.push(file.into());
            // the test hook: `report:1` before the documents, `report:2` between them
            crate::interrupt::point("report", 2);
        }
    }
    Ok(())
}

/// `svg` for inlining in the HTML: without its XML declaration, and with a CSS `min-width` at
/// which its smallest text still renders at [`charts::READABLE_PX`]; a narrower page scrolls the
/// figure instead of shrinking the text further.
pub(crate) fn inline_svg(svg: &str) -> String {
    let svg = match svg.find("<svg") {
        Some(start) => &svg[start..],
        None => return svg.to_string(),
    };
    let root_tag = &svg[..svg.find('>').unwrap_or(svg.len())];
    let number_after = |text: &str, key: &str| -> Vec<f64> {
        text.match_indices(key).filter_map(|(at, _)| text[at + key.len()..].split('"').next()?.parse().ok()).collect()
    };
    let width = number_after(root_tag, " width=\"").first().copied();
    let smallest = number_after(svg, "font-size=\"").into_iter().filter(|px| *px > 0.0).fold(f64::INFINITY, f64::min);
    match width {
        Some(width) if smallest.is_finite() => {
            let min_width = (width * charts::READABLE_PX / smallest).ceil();
            format!("<svg style=\"min-width:{min_width}px\"{}", &svg["<svg".len()..])
        }
        _ => svg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inlined_svg_keeps_its_smallest_text_readable() {
        let svg = "<?xml version=\"1.0\"?>\n<svg width=\"440\" height=\"300\" font-size=\"11\"><text font-size=\"10\">a</text></svg>";
        assert_eq!(inline_svg(svg), "<svg style=\"min-width:484px\" width=\"440\" height=\"300\" font-size=\"11\"><text font-size=\"10\">a</text></svg>");
        assert_eq!(inline_svg("<svg width=\"10\"></svg>"), "<svg width=\"10\"></svg>");
    }
}
