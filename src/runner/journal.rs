//! [`RunJournal`]: the trainer's [`Journal`], persisting progress into the run folder — a
//! checkpoint per epoch, `epochs.csv` and `steps.csv`, `state.json`, TensorBoard's events
//! (from those files) and the epoch's log line.

use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::run_dir::{BestVal, Checkpoint, EpochRow, RunDir, StepRow};
use crate::train::optim::AdamW;
use crate::train::{Classifier, EpochRecord, Journal, StepRecord, TrainState};

pub struct RunJournal<'a> {
    pub run: &'a RunDir,
    pub classes: &'a [String],
    pub steps: Vec<StepRow>,
    pub epochs: Vec<EpochRow>,
    /// The checkpoint file of the best epoch so far.
    pub best_model: Option<String>,
    /// The file of its validation predictions.
    pub best_val: Option<String>,
    pub progress: &'a Progress,
    pub epochs_total: usize,
}

impl<'a> RunJournal<'a> {
    pub fn new(run: &'a RunDir, classes: &'a [String], epochs_total: usize, progress: &'a Progress) -> Self {
        Self { run, classes, steps: Vec::new(), epochs: Vec::new(), best_model: None, best_val: None, progress, epochs_total }
    }
}

impl<M: Classifier> Journal<M> for RunJournal<'_> {
    fn step(&mut self, record: &StepRecord) -> Result<()> {
        self.steps.push(StepRow { step: record.step, epoch: record.epoch, loss: record.loss, lr: record.lr, grad_norm: record.grad_norm });
        Ok(())
    }

    fn epoch(&mut self, record: &EpochRecord, model: &M, optimizer: &AdamW, state: &TrainState) -> Result<()> {
        let (model_file, optimizer_file) = Checkpoint::<TrainState>::epoch_files(record.epoch);
        self.save(model, optimizer, (&model_file, &optimizer_file))?;
        if record.improved {
            let val_file = Checkpoint::<TrainState>::val_file(record.epoch);
            self.run.write_best_val(&val_file, &BestVal { probabilities: record.val_probabilities.clone() })?;
            self.best_model = Some(model_file.clone());
            self.best_val = Some(val_file);
        }
        let val = &record.val;
        self.epochs.push(EpochRow {
            epoch: record.epoch,
            train_loss: record.train_loss,
            train_accuracy: record.train_accuracy,
            val_loss: record.val_loss,
            val_accuracy: val.accuracy,
            val_macro_f1: val.macro_avg.f1,
            val_weighted_f1: val.weighted_avg.f1,
            val_macro_recall: val.macro_avg.recall,
            val_recall: val.per_class.iter().map(|s| s.recall).collect(),
            lr: record.lr,
            seconds: record.seconds,
            best: record.improved,
        });
        self.commit(state, model_file, optimizer_file)?;
        crate::tensorboard::write(self.run)?;
        self.progress.log(format!(
            "epoch {:>2}/{}  train loss {:.4} acc {:.4} | val loss {:.4} acc {:.4} macro-F1 {:.4} | {:.1} s{}",
            record.epoch,
            self.epochs_total,
            record.train_loss,
            record.train_accuracy,
            record.val_loss,
            val.accuracy,
            val.macro_avg.f1,
            record.seconds,
            if record.improved { "  * best" } else { "" }
        ));
        Ok(())
    }

    fn checkpoint(&mut self, model: &M, optimizer: &AdamW, state: &TrainState) -> Result<()> {
        let (model_file, optimizer_file) = Checkpoint::<TrainState>::step_files(state.step);
        self.save(model, optimizer, (&model_file, &optimizer_file))?;
        self.commit(state, model_file, optimizer_file)
    }
}

impl RunJournal<'_> {
    /// Writes the model and optimizer files of a checkpoint (burnpack writes through a temporary
    /// file and renames it, so each file is whole or absent).
    fn save<M: Classifier>(&self, model: &M, optimizer: &AdamW, (model_file, optimizer_file): (&str, &str)) -> Result<()> {
        let failed = |file: &str, e: &dyn std::fmt::Display| Error::run_dir(self.run.root(), format!("cannot save checkpoint {file}: {e}"));
        crate::model::save(model, &self.run.checkpoint_path(model_file)).map_err(|e| failed(model_file, &e))?;
        optimizer.save(&self.run.checkpoint_path(optimizer_file)).map_err(|e| failed(optimizer_file, &e))
    }

    /// Commits a checkpoint whose files are written: the epochs and steps so far, then
    /// `state.json` (the point a resume starts from), then the files no checkpoint refers to any
    /// more are removed.
    fn commit(&self, state: &TrainState, last_model: String, last_optimizer: String) -> Result<()> {
        self.run.write_epochs(&self.epochs, self.classes)?;
        self.run.write_steps(&self.steps)?;
        let checkpoint = Checkpoint { train: state.clone(), last_model, last_optimizer, best_model: self.best_model.clone(), best_val: self.best_val.clone() };
        self.run.write_checkpoint_state(&checkpoint)?;
        crate::interrupt::point("checkpoint", state.step);
        self.run.prune_checkpoints(&checkpoint)
    }
}
