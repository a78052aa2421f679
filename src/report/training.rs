//! The training section: the epoch table and the loss, metric, learning-rate and gradient-norm
//! curves.

use serde::Serialize;

use super::{Chart, charts};
use crate::error::Result;
use crate::run_dir::{self, EpochRow, StepRow};

#[derive(Serialize)]
pub struct EpochLine {
    pub epoch: usize,
    pub train_loss: String,
    pub train_accuracy: String,
    pub val_loss: String,
    pub val_accuracy: String,
    pub val_macro_f1: String,
    pub val_macro_recall: String,
    pub lr: String,
    pub seconds: String,
    pub best: bool,
}

pub fn epoch_line(e: &EpochRow) -> EpochLine {
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

/// The training curves (none before the first epoch).
pub fn charts(epochs: &[EpochRow], steps: &[StepRow]) -> Result<Vec<Chart>> {
    if epochs.is_empty() {
        return Ok(Vec::new());
    }
    Ok(vec![
        Chart { title: "Loss".into(), file: run_dir::chart("loss"), svg: charts::loss_curves(epochs, steps)? },
        Chart { title: "Validation metrics".into(), file: run_dir::chart("metrics"), svg: charts::metric_curves(epochs)? },
        Chart { title: "Learning rate".into(), file: run_dir::chart("learning_rate"), svg: charts::learning_rate(steps)? },
        Chart { title: "Gradient norm".into(), file: run_dir::chart("grad_norm"), svg: charts::grad_norm(steps)? },
    ])
}
