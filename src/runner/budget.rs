//! How much training a run does: samples and steps per epoch, total steps, warmup — computed
//! once from the plan and the split, for the trainer's `Hyper` and for `meta.json` alike.

use crate::plan::Plan;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Training images per epoch, augmented copies included.
    pub samples_per_epoch: usize,
    pub steps_per_epoch: usize,
    /// Optimizer steps of the whole run: every epoch's, or `train.max_steps` if fewer.
    pub total_steps: usize,
    pub warmup_steps: usize,
}

impl Budget {
    /// The budget of `plan` with `train_items` images in the training part.
    pub fn new(plan: &Plan, train_items: usize) -> Self {
        let samples_per_epoch = train_items * (1 + plan.augment.effective_copies());
        let steps_per_epoch = samples_per_epoch.div_ceil(plan.train.batch_size);
        let all = steps_per_epoch * plan.train.epochs;
        let total_steps = plan.train.max_steps.map_or(all, |max| max.min(all));
        Self { samples_per_epoch, steps_per_epoch, total_steps, warmup_steps: plan.train.warmup.steps(total_steps) }
    }
}
