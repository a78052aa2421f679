//! The training loop: shuffled batches, cross-entropy, backward, global gradient clipping,
//! AdamW with a per-step schedule, validation every epoch, best-epoch tracking, early stopping.
//!
//! It knows nothing of files: every step and epoch is handed to a [`Journal`], which persists
//! them (and the checkpoints) however it likes.

use std::time::Instant;

use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor};
use serde::{Deserialize, Serialize};

use super::evaluate::{EvalSet, evaluate};
use super::schedule::Schedule;
use super::Classifier;
use super::optim::AdamW;
use crate::augment::draw_seed;
use crate::data::loader::TrainSet;
use crate::data::prefetch::pipelined;
use crate::data::tensor::{self, Normalize};
use crate::error::{Error, Result};
use crate::metrics::Scores;
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
    pub fn value(self, report: &Scores, loss: f64) -> f64 {
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
    /// Steps whose numbers are read back from the device together (1 on the CPU, where reading
    /// costs nothing; more on a GPU, which would otherwise wait for the host after every step).
    pub sync_every: usize,
    /// Save a mid-epoch checkpoint every this many steps (`train.checkpoint_every_steps`).
    pub checkpoint_every_steps: Option<usize>,
}

impl Hyper {
    fn steps_exhausted(&self, step: usize) -> bool {
        self.max_steps.is_some_and(|max| step >= max)
    }
}

/// Where a run stands; saved with each checkpoint so a killed run resumes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    pub epochs_done: usize,
    pub step: usize,
    pub best_value: Option<f64>,
    pub best_epoch: Option<usize>,
    pub epochs_without_improvement: usize,
    pub stopped_early: bool,
    /// Set in a checkpoint saved in the middle of an epoch (at a signal, or every
    /// `train.checkpoint_every_steps`): how far epoch `epochs_done + 1` got.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<PartialEpoch>,
}

/// The part of an epoch done when a mid-epoch checkpoint was saved. The epoch's sample order,
/// augmentation seeds and per-step random state are functions of the seed, the epoch and the step,
/// so these running sums are all a resumed epoch needs to end as an uninterrupted one does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PartialEpoch {
    /// Batches of the epoch's order already trained on.
    pub batches_done: usize,
    /// Sum of per-sample losses, correct predictions and samples seen so far in the epoch.
    pub loss_sum: f64,
    pub correct: f64,
    pub seen: usize,
    /// Seconds the epoch had taken so far.
    pub seconds: f64,
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
    pub val: Scores,
    /// Class probabilities of each validation image, in the set's order.
    pub val_probabilities: Vec<Vec<f32>>,
    /// Learning rate of the epoch's last step.
    pub lr: f64,
    pub seconds: f64,
    pub improved: bool,
}

/// Receives what training produces.
pub trait Journal<M> {
    fn step(&mut self, record: &StepRecord) -> Result<()>;
    /// Called after each epoch's validation, with the state to resume from.
    fn epoch(&mut self, record: &EpochRecord, model: &M, optimizer: &AdamW, state: &TrainState) -> Result<()>;
    /// A checkpoint in the middle of an epoch (`state.partial` says how far it got), every step
    /// before it already handed to [`Journal::step`].
    fn checkpoint(&mut self, model: &M, optimizer: &AdamW, state: &TrainState) -> Result<()>;
}

/// Batches assembled ahead of the step that uses them.
const PREFETCH: usize = 4;

/// One step's numbers, still on the device: loss, gradient norm, correct predictions.
struct PendingStep {
    stats: Tensor<1>,
    lr: f64,
    size: usize,
}

/// The parts of a training step, in order, as [`train_step_observed`] reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Logits, cross-entropy and the accuracy count.
    Forward,
    Backward,
    /// The global gradient norm, the clip when set, and AdamW with the step's learning rate.
    Optimizer,
}

/// One optimizer step: forward, cross-entropy, backward, the global gradient-norm clip, AdamW.
/// Returns the updated model and, still on the device, `[loss, gradient norm, correct]`.
#[allow(clippy::too_many_arguments)]
pub fn train_step<M: Classifier>(
    model: M,
    optimizer: &mut AdamW,
    loss_fn: &CrossEntropyLoss,
    pixels: Tensor<4>,
    labels: Tensor<1, Int>,
    lr: f64,
    grad_clip: Option<f64>,
) -> (M, Tensor<1>) {
    let device = pixels.device();
    crate::backend::on_pool(&device, || train_step_observed(model, optimizer, loss_fn, pixels, labels, lr, grad_clip, &mut |_| {}))
}

/// [`train_step`], calling `done` after each [`Phase`] has been queued (`brasa bench --phases`
/// waits for the device there to time each part).
#[allow(clippy::too_many_arguments)]
pub fn train_step_observed<M: Classifier>(
    model: M,
    optimizer: &mut AdamW,
    loss_fn: &CrossEntropyLoss,
    pixels: Tensor<4>,
    labels: Tensor<1, Int>,
    lr: f64,
    grad_clip: Option<f64>,
    done: &mut dyn FnMut(Phase),
) -> (M, Tensor<1>) {
    let logits = model.logits(pixels);
    let loss = loss_fn.forward(logits.clone(), labels.clone());
    let right = logits.inner().argmax(1).squeeze_dim::<1>(1).equal(labels.inner()).int().sum().float();
    done(Phase::Forward);
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    done(Phase::Backward);
    let (model, grad_norm) = optimizer.step(lr, model, grads, grad_clip);
    done(Phase::Optimizer);
    (model, Tensor::cat(vec![loss.inner().reshape([1]), grad_norm, right.reshape([1])], 0))
}

/// Trains `model` from `state` (a fresh `TrainState` or one restored from a checkpoint, at an
/// epoch's end or in its middle).
///
/// The next batches are assembled on worker threads while the device computes, and the
/// step's numbers (loss, gradient norm, accuracy) stay on the device until `hyper.sync_every`
/// steps have queued up, so a GPU is not made to wait for the host after every step.
///
/// When a signal asks to stop ([`crate::interrupt`]), the step in progress is finished, a
/// mid-epoch checkpoint saved, and [`Error::Interrupted`] returned; resuming from it gives the
/// same numbers as never having stopped.
#[allow(clippy::too_many_arguments)]
pub fn fit<M: Classifier>(
    mut model: M,
    mut optimizer: AdamW,
    mut state: TrainState,
    hyper: &Hyper,
    train: &TrainSet,
    val: &EvalSet,
    normalize: &Normalize,
    device: &Device,
    journal: &mut dyn Journal<M>,
    progress: &Progress,
) -> Result<TrainState> {
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    let steps_per_epoch = train.len().div_ceil(hyper.batch_size);
    let sync_every = hyper.sync_every.max(1);
    // an epoch cut by train.max_steps and saved before its validation still has that to do
    while state.epochs_done < hyper.epochs && !state.stopped_early && (state.partial.is_some() || !hyper.steps_exhausted(state.step)) {
        let epoch = state.epochs_done;
        let resumed = state.partial.take().unwrap_or_default();
        let started = Instant::now();
        let order = train.shuffled(epoch);
        let remaining = hyper.max_steps.map_or(usize::MAX, |max| max.saturating_sub(state.step));
        let batches = order.chunks(hyper.batch_size).skip(resumed.batches_done).take(remaining);
        let bar = progress.epoch_bar(steps_per_epoch as u64, &format!("epoch {}/{}", epoch + 1, hyper.epochs));
        bar.inc(resumed.batches_done as u64);
        let mut sums = Sums { loss: resumed.loss_sum, correct: resumed.correct, seen: resumed.seen };
        let mut batches_done = resumed.batches_done;
        // the epoch's learning rate is its last step's: that of the step before, when resumed after it
        let mut lr = hyper.schedule.lr(if resumed.batches_done > 0 { state.step - 1 } else { state.step });
        let mut pending: Vec<PendingStep> = Vec::with_capacity(sync_every);
        let flush = |pending: &mut Vec<PendingStep>, sums: &mut Sums, state: &TrainState, journal: &mut dyn Journal<M>| -> Result<()> {
            if pending.is_empty() {
                return Ok(());
            }
            let first_step = state.step - pending.len();
            let stats: Vec<f32> = Tensor::cat(pending.iter().map(|p| p.stats.clone()).collect(), 0)
                .try_into_data()
                .map_err(|e| crate::backend::device_failure(&e, "train.batch_size", hyper.batch_size))?
                .convert::<f32>()
                .try_into_vec::<f32>()
                .expect("step statistics are f32");
            for (k, (step, values)) in pending.drain(..).zip(stats.chunks_exact(3)).enumerate() {
                let (loss_value, grad_norm, right) = (values[0] as f64, values[1] as f64, values[2] as f64);
                if !loss_value.is_finite() {
                    return Err(Error::Diverged { loss: loss_value, step: first_step + k + 1, epoch: epoch + 1 });
                }
                sums.loss += loss_value * step.size as f64;
                sums.correct += right;
                sums.seen += step.size;
                journal.step(&StepRecord { step: first_step + k + 1, epoch: epoch + 1, loss: loss_value, lr: step.lr, grad_norm })?;
            }
            bar.set_message(format!("epoch {}/{} loss {:.4}", epoch + 1, hyper.epochs, sums.loss / sums.seen.max(1) as f64));
            Ok(())
        };
        // the state a mid-epoch checkpoint holds, `batches_done` batches into this epoch
        let snapshot = |state: &TrainState, sums: &Sums, batches_done: usize| TrainState {
            partial: Some(PartialEpoch { batches_done, loss_sum: sums.loss, correct: sums.correct, seen: sums.seen, seconds: resumed.seconds + started.elapsed().as_secs_f64() }),
            ..state.clone()
        };
        let interrupted = |state: &TrainState, signal: &str| Error::Interrupted { signal: signal.to_string(), step: state.step, epoch: epoch + 1, run_dir: None, resume: None };
        // batches are read, augmented and normalised on worker threads while the device steps
        let mut current = Some(model);
        let train_ref: &TrainSet = train;
        pipelined(batches, PREFETCH, |samples| train_ref.batch(samples, epoch, normalize), |host| {
            lr = hyper.schedule.lr(state.step);
            let size = host.labels.len();
            let pixels = Tensor::<4>::from_data(burn::tensor::TensorData::new(host.pixels, host.shape), device);
            let labels = tensor::labels(&host.labels, device);
            // random ops of the step (drop path) draw from the step's own seed, so a run resumed
            // in the middle of an epoch draws what an uninterrupted one does
            device.seed(draw_seed(hyper.seed, u64::MAX - 1, state.step as u64));
            let (next, stats) = train_step(current.take().expect("the model is back after each step"), &mut optimizer, &loss_fn, pixels, labels, lr, hyper.grad_clip);
            current = Some(next);
            pending.push(PendingStep { stats, lr, size });
            state.step += 1;
            batches_done += 1;
            bar.inc(1);
            crate::interrupt::point("step", state.step);
            let stop = crate::interrupt::requested();
            let periodic = hyper.checkpoint_every_steps.is_some_and(|n| state.step.is_multiple_of(n)) && batches_done < steps_per_epoch;
            if pending.len() >= sync_every || stop.is_some() || periodic {
                flush(&mut pending, &mut sums, &state, journal)?;
            }
            if stop.is_some() || periodic {
                journal.checkpoint(current.as_ref().expect("the model is back after each step"), &optimizer, &snapshot(&state, &sums, batches_done))?;
            }
            match stop {
                Some(signal) => Err(interrupted(&state, signal)),
                None => Ok(()),
            }
        })?;
        flush(&mut pending, &mut sums, &state, journal)?;
        model = current.take().expect("the model is back after each step");
        bar.finish_and_clear();

        let evaluation = match evaluate(&model.valid(), val, hyper.eval_batch_size, normalize, device, progress, "validating") {
            Err(Error::Interrupted { signal, .. }) => {
                // every step of the epoch is done: the checkpoint resumes at its validation
                journal.checkpoint(&model, &optimizer, &snapshot(&state, &sums, batches_done))?;
                return Err(interrupted(&state, &signal));
            }
            other => other?,
        };
        // a model whose outputs are not numbers would score as always predicting the first class:
        // diverged as surely as a training loss that is not a number (checked the same way)
        if !evaluation.loss.is_finite() {
            return Err(Error::Diverged { loss: evaluation.loss, step: state.step, epoch: epoch + 1 });
        }
        let report = evaluation.scores(&val.labels, hyper.num_classes);
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
            train_loss: sums.loss / sums.seen.max(1) as f64,
            train_accuracy: sums.correct / sums.seen.max(1) as f64,
            val_loss: evaluation.loss,
            val: report,
            val_probabilities: evaluation.probabilities,
            lr,
            seconds: resumed.seconds + started.elapsed().as_secs_f64(),
            improved,
        };
        journal.epoch(&record, &model, &optimizer, &state)?;
        if let Some(signal) = crate::interrupt::requested() {
            return Err(interrupted(&state, signal));
        }
    }
    Ok(state)
}

/// An epoch's running sums: per-sample loss, correct predictions, samples.
struct Sums {
    loss: f64,
    correct: f64,
    seen: usize,
}
