//! The sweep report: trials ranked by the validation metric (never the test set), the metric
//! against each swept value, all validation curves overlaid, the best trial linked, and a paired
//! comparison of the best two.

use serde::Serialize;

use super::charts::{self, Series};
use crate::compare::{self, RunPredictions};
use crate::error::{Error, Result};
use crate::run_dir::RunDir;
use crate::sweep::{SweepPlan, TrialRow};
use crate::train::Select;

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

/// The validation value of the selection metric for a trial.
fn selection(select: Select, row: &TrialRow) -> Option<f64> {
    match select {
        Select::Accuracy => row.val_accuracy,
        Select::MacroF1 => row.val_macro_f1,
        Select::WeightedF1 => row.val_weighted_f1,
        Select::Loss => row.val_loss,
    }
}

/// Writes `report.md` and its charts into the sweep folder.
pub fn render(plan: &SweepPlan, rows: &[TrialRow]) -> Result<()> {
    let select = plan.trials.first().map(|(_, p)| p.train.select).unwrap_or(Select::Accuracy);
    let higher_is_better = select != Select::Loss;
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
            status: r.status.clone(),
            best_epoch: r.best_epoch.map(|e| e.to_string()).unwrap_or_else(|| "—".into()),
            val_metric: fmt(selection(select, r)),
            val_accuracy: fmt(r.val_accuracy),
            test_accuracy: fmt(r.test_accuracy),
            test_macro_f1: fmt(r.test_macro_f1),
            wall: r.wall_seconds.map(crate::fmt::format_duration).unwrap_or_else(|| "—".into()),
            run_dir: r.run_dir.clone(),
            error: r.error.clone(),
        })
        .collect();
    let complete: Vec<&&TrialRow> = order.iter().filter(|r| r.status == "complete").collect();

    std::fs::create_dir_all(plan.dir.join("charts")).map_err(|e| Error::io(plan.dir.join("charts"), e))?;
    let mut chart_files = Vec::new();
    for (k, key) in plan.sweep.varied_keys().iter().enumerate() {
        let points: Vec<(f64, f64)> = rows
            .iter()
            .filter_map(|r| Some((r.values.get(k)?.parse::<f64>().ok()?, selection(select, r)?)))
            .collect();
        if points.len() < 2 {
            continue;
        }
        let (lo, hi) = points.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| (lo.min(p.0), hi.max(p.0)));
        let log_x = lo > 0.0 && (key.ends_with(".lr") || hi / lo >= 10.0);
        let svg = charts::scatter(&format!("validation {} by {key}", select.name()), key, select.name(), &points, log_x)?;
        let file = format!("charts/{}.svg", key.replace('.', "_"));
        crate::atomic_file::write_atomic(&plan.dir.join(&file), svg.as_bytes())?;
        chart_files.push((format!("validation {} by {key}", select.name()), file));
    }
    let mut curves = Vec::new();
    for row in rows {
        let Ok(run) = RunDir::open(&plan.dir.join(&row.run_dir)) else { continue };
        let Ok(epochs) = run.read_epochs() else { continue };
        curves.push(Series::new(&format!("trial {}", row.trial), epochs.iter().map(|e| (e.epoch as f64, e.val_accuracy)).collect()));
    }
    if !curves.is_empty() {
        let svg = charts::lines("Validation accuracy per epoch, all trials", "epoch", "validation accuracy", &curves, Some((0.0, 1.0)))?;
        crate::atomic_file::write_atomic(&plan.dir.join("charts/val_curves.svg"), svg.as_bytes())?;
        chart_files.push(("Validation accuracy per epoch, all trials".into(), "charts/val_curves.svg".into()));
    }

    let comparison = match complete.as_slice() {
        [first, second, ..] => {
            let load = |row: &TrialRow| RunPredictions::load(&plan.dir.join(&row.run_dir));
            match (load(second), load(first)) {
                (Ok(a), Ok(b)) => Some(compare::compare(&a, &b).map(|c| compare::markdown(&c)).unwrap_or_else(|e| format!("(no comparison: {e})"))),
                _ => None,
            }
        }
        _ => None,
    };
    let context = Context {
        name: plan.name.clone(),
        dir: plan.dir.display().to_string(),
        trials: rows.len(),
        complete: complete.len(),
        metric: select.name().to_string(),
        best: ranked.first().filter(|r| r.status == "complete").cloned(),
        ranked,
        charts: chart_files,
        comparison,
        sweep_toml: plan.sweep_toml.clone(),
    };
    // the trials share the base spec's `[report] templates`
    let dir = plan.trials.first().and_then(|(_, p)| p.report.templates.as_deref());
    let text = super::templates::Templates::load(dir)?.render("sweep.md.j2", &context)?;
    crate::atomic_file::write_atomic(&plan.dir.join("report.md"), text.as_bytes())
}
