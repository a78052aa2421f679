//! The training loop: shuffled batches, cross-entropy, backward, global gradient clipping,
//! AdamW with a per-step schedule, validation every epoch, best-epoch tracking, early stopping.
//!
//! It knows nothing of files: every step and epoch is handed to a [`Journal`], which persists
//! them (and the checkpoints) however it likes.

use std::time::Instant;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::evaluate::{EvalSet, evaluate};
use super::schedule::Schedule;
use super::{Classifier, clip};
use crate::augment::draw_seed;
use crate::data::loader::TrainSet;
use crate::data::tensor::{self, Normalize};
use crate::error::{Error, Result};
use crate::metrics::Report;
use crate::progress::Progress;

/// The validation metric that decides the best epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    Accuracy,
    MacroF1,
    WeightedF1,
    Loss,
}

impl Select {
    pub fn value(self, report: &Report, loss: f64) -> f64 {
        match self {
            Self::Accuracy => report.accuracy,
            Self::MacroF1 => report.macro_avg.f1,
            Self::WeightedF1 => report.weighted_avg.f1,
            Self::Loss => loss,
        }
    }

    /// Whether `candidate` beats `incumbent`.
    pub fn improves(self, candidate: f64, incumbent: Option<f64>) -> bool {
        match (self, incumbent) {
            (_, None) => true,
            (Self::Loss, Some(best)) => candidate < best,
            (_, Some(best)) => candidate > best,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Accuracy => "accuracy",
            Self::MacroF1 => "macro_f1",
            Self::WeightedF1 => "weighted_f1",
            Self::Loss => "loss",
        }
    }
}

/// Training hyperparameters, resolved.
#[derive(Debug, Clone)]
pub struct Hyper {
    pub num_classes: usize,
    pub epochs: usize,
    pub batch_size: usize,
    pub eval_batch_size: usize,
    pub schedule: Schedule,
    pub grad_clip: Option<f64>,
    pub select: Select,
    pub patience: Option<usize>,
    /// Stop after this many optimizer steps in all.
    pub max_steps: Option<usize>,
    pub seed: u64,
}

impl Hyper {
    fn steps_exhausted(&self, step: usize) -> bool {
        self.max_steps.is_some_and(|max| step >= max)
    }
}

/// Where a run stands between epochs; saved with each checkpoint so a killed run resumes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    pub epochs_done: usize,
    pub step: usize,
    pub best_value: Option<f64>,
    pub best_epoch: Option<usize>,
    pub epochs_without_improvement: usize,
    pub stopped_early: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    pub step: usize,
    pub epoch: usize,
    pub loss: f64,
    pub lr: f64,
    pub grad_norm: f64,
}

#[derive(Debug, Clone)]
pub struct EpochRecord {
    /// 1-based.
    pub epoch: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub val_loss: f64,
    pub val: Report,
    /// Learning rate of the epoch's last step.
    pub lr: f64,
    pub seconds: f64,
    pub improved: bool,
}

/// Receives what training produces.
pub trait Journal<M> {
    fn step(&mut self, record: &StepRecord) -> Result<()>;
    /// Called after each epoch's validation, with the state to resume from.
    fn epoch(&mut self, record: &EpochRecord, model: &M, optimizer: &ModuleOptimizer, state: &TrainState) -> Result<()>;
}

/// Trains `model` from `state` (a fresh `TrainState` or one restored from a checkpoint).
#[allow(clippy::too_many_arguments)]
pub fn fit<M: Classifier>(
    mut model: M,
    mut optimizer: ModuleOptimizer,
    mut state: TrainState,
    hyper: &Hyper,
    train: &mut TrainSet,
    val: &EvalSet,
    normalize: &Normalize,
    device: &Device,
    journal: &mut dyn Journal<M>,
    progress: &Progress,
) -> Result<TrainState> {
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    let steps_per_epoch = train.len().div_ceil(hyper.batch_size);
    while state.epochs_done < hyper.epochs && !state.stopped_early && !hyper.steps_exhausted(state.step) {
        let epoch = state.epochs_done;
        let started = Instant::now();
        device.seed(draw_seed(hyper.seed, 1, epoch as u64));
        train.prepare_epoch(epoch, progress);
        let order = train.shuffled(epoch);
        let bar = progress.epoch_bar(steps_per_epoch as u64, &format!("epoch {}/{}", epoch + 1, hyper.epochs));
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
        let mut lr = hyper.schedule.lr(state.step);
        for batch in order.chunks(hyper.batch_size) {
            if hyper.steps_exhausted(state.step) {
                break;
            }
            lr = hyper.schedule.lr(state.step);
            let images: Vec<_> = batch.iter().map(|&s| train.image(s)).collect();
            let labels: Vec<usize> = batch.iter().map(|&s| train.label(s)).collect();
            let logits = model.logits(normalize.batch(&images, device));
            let loss = loss_fn.forward(logits.clone(), tensor::labels(&labels, device));
            let loss_value = loss.clone().into_scalar::<f32>() as f64;
            if !loss_value.is_finite() {
                return Err(Error::Train(format!(
                    "the loss became {loss_value} at step {} (epoch {}); lower train.optimizer.lr or set train.grad_clip",
                    state.step + 1,
                    epoch + 1
                )));
            }
            let predicted: Vec<i64> = logits.argmax(1).into_data().try_into_vec_as().expect("argmax gives integers");
            correct += predicted.iter().zip(&labels).filter(|(p, l)| **p as usize == **l).count();
            let mut grads = GradientsParams::from_grads(loss.backward(), &model);
            let grad_norm = clip::global_norm(&model, &grads);
            if let Some(max_norm) = hyper.grad_clip {
                clip::clip(&model, &mut grads, grad_norm, max_norm);
            }
            model = optimizer.step(lr, model, grads);
            loss_sum += loss_value * batch.len() as f64;
            seen += batch.len();
            state.step += 1;
            journal.step(&StepRecord { step: state.step, epoch: epoch + 1, loss: loss_value, lr, grad_norm })?;
            bar.set_message(format!("epoch {}/{} loss {:.4}", epoch + 1, hyper.epochs, loss_sum / seen as f64));
            bar.inc(1);
        }
        bar.finish_and_clear();

        let evaluation = evaluate(&model.valid(), val, hyper.eval_batch_size, normalize, device, progress, "validating");
        let report = evaluation.report(&val.labels, hyper.num_classes);
        let value = hyper.select.value(&report, evaluation.loss);
        let improved = hyper.select.improves(value, state.best_value);
        state.epochs_done += 1;
        if improved {
            state.best_value = Some(value);
            state.best_epoch = Some(state.epochs_done);
            state.epochs_without_improvement = 0;
        } else {
            state.epochs_without_improvement += 1;
        }
        if hyper.patience.is_some_and(|p| state.epochs_without_improvement >= p) && state.epochs_done < hyper.epochs {
            state.stopped_early = true;
        }
        let record = EpochRecord {
            epoch: state.epochs_done,
            train_loss: loss_sum / seen.max(1) as f64,
            train_accuracy: correct as f64 / seen.max(1) as f64,
            val_loss: evaluation.loss,
            val: report,
            lr,
            seconds: started.elapsed().as_secs_f64(),
            improved,
        };
        journal.epoch(&record, &model, &optimizer, &state)?;
    }
    Ok(state)
}
