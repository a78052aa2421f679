//! The sweep report: trials ranked by the validation metric (never the test set), the metric
//! against each swept value, all validation curves overlaid, the best trial linked, and a paired
//! comparison of the best two.

use serde::Serialize;

use super::charts::{self, Series};
use crate::atomic_file::write_atomic;
use crate::compare::{self, RunPredictions};
use crate::error::{Error, Result};
use crate::fmt::format_duration;
use crate::run_dir::RunDir;
use crate::spec::schema::SelectMetric;
use crate::sweep_dir::{self, SweepDir, TrialRow, TrialStatus};

#[derive(Clone, Serialize)]
struct RankedTrial {
    rank: usize,
    trial: usize,
    overrides: String,
    status: String,
    best_epoch: String,
    val_metric: String,
    val_accuracy: String,
    test_accuracy: String,
    test_macro_f1: String,
    wall: String,
    run_dir: String,
    /// The trial's report relative to the sweep folder: `report.md`, or `report.html` where the
    /// trials write only that; `None` before one is written.
    report: Option<String>,
    error: String,
}

#[derive(Serialize)]
struct Context {
    name: String,
    dir: String,
    trials: usize,
    complete: usize,
    metric: String,
    ranked: Vec<RankedTrial>,
    best: Option<RankedTrial>,
    charts: Vec<(String, String)>,
    comparison: Option<String>,
    sweep_toml: String,
}

fn fmt(value: Option<f64>) -> String {
    value.map(|v| format!("{v:.4}")).unwrap_or_else(|| "—".into())
}

/// The validation value of the selection metric (`train.select_best`) for a trial.
fn selection(select: SelectMetric, row: &TrialRow) -> Option<f64> {
    match select {
        SelectMetric::Accuracy => row.val_accuracy,
        SelectMetric::MacroF1 => row.val_macro_f1,
        SelectMetric::WeightedF1 => row.val_weighted_f1,
        SelectMetric::Loss => row.val_loss,
    }
}

fn metric_name(select: SelectMetric) -> &'static str {
    match select {
        SelectMetric::Accuracy => "accuracy",
        SelectMetric::MacroF1 => "macro_f1",
        SelectMetric::WeightedF1 => "weighted_f1",
        SelectMetric::Loss => "loss",
    }
}

/// Writes `report.md` and its charts into the sweep folder, from its files alone: `sweep.toml`
/// (the experiment, the ranking metric, the sweep table), `trials.csv` and the trial folders.
pub fn render(sweep: &SweepDir) -> Result<()> {
    let (base_toml, sweep_toml) = sweep.read_spec()?;
    let malformed = |e: &dyn std::fmt::Display| Error::run_dir(sweep.root(), format!("{} is malformed: {e}", sweep_dir::SWEEP_TOML));
    let base: toml::Table = toml::from_str(&base_toml).map_err(|e| malformed(&e))?;
    let section = |name: &str, key: &str| base.get(name).and_then(|table| table.get(key)).cloned();
    let name = section("experiment", "name").and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
    let select: SelectMetric = section("train", "select_best").map(|v| v.try_into()).transpose().map_err(|e| malformed(&e))?.unwrap_or_default();
    let (keys, rows) = sweep.read_trials()?;
    let rows = rows.as_slice();
    let higher_is_better = select != SelectMetric::Loss;
    let mut order: Vec<&TrialRow> = rows.iter().collect();
    order.sort_by(|a, b| {
        let (va, vb) = (selection(select, a), selection(select, b));
        match (va, vb) {
            (Some(x), Some(y)) if higher_is_better => y.total_cmp(&x),
            (Some(x), Some(y)) => x.total_cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a.trial.cmp(&b.trial),
        }
    });
    let ranked: Vec<RankedTrial> = order
        .iter()
        .enumerate()
        .map(|(i, r)| RankedTrial {
            rank: i + 1,
            trial: r.trial,
            overrides: r.overrides.clone(),
            status: r.status.name().to_string(),
            best_epoch: r.best_epoch.map(|e| e.to_string()).unwrap_or_else(|| "—".into()),
            val_metric: fmt(selection(select, r)),
            val_accuracy: fmt(r.val_accuracy),
            test_accuracy: fmt(r.test_accuracy),
            test_macro_f1: fmt(r.test_macro_f1),
            wall: r.wall_seconds.map(format_duration).unwrap_or_else(|| "—".into()),
            run_dir: r.run_dir.clone(),
            report: [crate::run_dir::REPORT_MD, crate::run_dir::REPORT_HTML]
                .iter()
                .map(|file| format!("{}/{file}", r.run_dir))
                .find(|file| sweep.path(file).is_file()),
            error: r.error().to_string(),
        })
        .collect();
    let complete: Vec<&&TrialRow> = order.iter().filter(|r| r.status == TrialStatus::Complete).collect();

    let charts_dir = sweep.path(sweep_dir::CHARTS);
    std::fs::create_dir_all(&charts_dir).map_err(|e| Error::io(&charts_dir, e))?;
    let mut chart_files = Vec::new();
    for (k, key) in keys.iter().enumerate() {
        let points: Vec<(f64, f64)> = rows
            .iter()
            .filter_map(|r| Some((r.values.get(k)?.parse::<f64>().ok()?, selection(select, r)?)))
            .collect();
        if points.len() < 2 {
            continue;
        }
        let (lo, hi) = points.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| (lo.min(p.0), hi.max(p.0)));
        let log_x = lo > 0.0 && (key.ends_with(".lr") || hi / lo >= 10.0);
        let svg = charts::scatter(&format!("validation {} by {key}", metric_name(select)), key, metric_name(select), &points, log_x)?;
        let file = format!("{}/{}.svg", sweep_dir::CHARTS, key.replace('.', "_"));
        write_atomic(&sweep.path(&file), svg.as_bytes())?;
        chart_files.push((format!("validation {} by {key}", metric_name(select)), file));
    }
    let mut curves = Vec::new();
    for row in rows {
        let Ok(run) = RunDir::open(&sweep.path(&row.run_dir)) else { continue };
        let Ok(epochs) = run.read_epochs() else { continue };
        curves.push(Series::new(&format!("trial {}", row.trial), epochs.iter().map(|e| (e.epoch as f64, e.val_accuracy)).collect()));
    }
    if !curves.is_empty() {
        let svg = charts::lines("Validation accuracy per epoch, all trials", "epoch", "validation accuracy", &curves, Some((0.0, 1.0)))?;
        let file = format!("{}/val_curves.svg", sweep_dir::CHARTS);
        write_atomic(&sweep.path(&file), svg.as_bytes())?;
        chart_files.push(("Validation accuracy per epoch, all trials".into(), file));
    }

    let comparison = match complete.as_slice() {
        [first, second, ..] => {
            let load = |row: &TrialRow| RunPredictions::load(&sweep.path(&row.run_dir));
            match (load(second), load(first)) {
                (Ok(a), Ok(b)) => Some(compare::compare(&a, &b).map(|c| compare::markdown(&c)).unwrap_or_else(|e| format!("(no comparison: {e})"))),
                _ => None,
            }
        }
        _ => None,
    };
    let context = Context {
        name,
        dir: sweep.root().display().to_string(),
        trials: rows.len(),
        complete: complete.len(),
        metric: metric_name(select).to_string(),
        best: ranked.first().filter(|r| r.status == TrialStatus::Complete.name()).cloned(),
        ranked,
        charts: chart_files,
        comparison,
        sweep_toml,
    };
    // the trials share the base spec's `[report] templates`, which their meta.json holds resolved
    let templates = rows.iter().find_map(|row| RunDir::open(&sweep.path(&row.run_dir)).ok()?.read_meta().ok()?.report.templates);
    let text = super::templates::Templates::load(templates.as_deref().map(std::path::Path::new))?.render("sweep.md.j2", &context)?;
    write_atomic(&sweep.path(sweep_dir::REPORT_MD), text.as_bytes())
}
