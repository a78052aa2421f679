//! Training: the loop, its schedule and gradient clipping, and evaluation. Generic over any
//! [`Classifier`]; never reads or writes files (see `Journal`).

#[cfg(test)]
mod clip;
pub mod evaluate;
pub mod fit;
pub mod optim;
pub mod schedule;

pub use crate::model::Classifier;
pub use evaluate::{EvalSet, Evaluation, evaluate};
pub use fit::{EpochRecord, Hyper, Journal, Select, StepRecord, TrainState, Phase, fit, train_step, train_step_observed};
