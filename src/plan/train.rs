//! `[train]` → [`TrainPlan`]: optimizer, schedule, clipping, selection and stopping.

use super::check::Checker;
use crate::train::Select;
use crate::train::schedule::Shape;
use crate::spec::schema;

#[derive(Debug, Clone)]
pub struct TrainPlan {
    pub epochs: usize,
    pub batch_size: usize,
    pub eval_batch_size: usize,
    pub lr: f64,
    pub betas: (f64, f64),
    pub eps: f64,
    pub weight_decay: f64,
    pub schedule: Shape,
    pub warmup: Warmup,
    pub grad_clip: Option<f64>,
    pub select: Select,
    pub patience: Option<usize>,
    pub max_steps: Option<usize>,
    /// Mid-epoch checkpoints every this many steps.
    pub checkpoint_every_steps: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Warmup {
    Steps(usize),
    Ratio(f64),
}

impl Warmup {
    pub fn steps(self, total_steps: usize) -> usize {
        match self {
            Warmup::Steps(steps) => steps,
            // transformers: math.ceil(total_steps * warmup_ratio)
            Warmup::Ratio(ratio) => (total_steps as f64 * ratio).ceil() as usize,
        }
    }
}

pub(super) fn resolve_train(check: &mut Checker, train: &schema::Train) -> TrainPlan {
    check.positive("train.epochs", train.epochs);
    check.positive("train.batch_size", train.batch_size);
    if let Some(eval) = train.eval_batch_size {
        check.positive("train.eval_batch_size", eval);
    }
    let opt = &train.optimizer;
    check.range("train.optimizer.lr", opt.lr, 0.0, f64::INFINITY, false, false);
    check.range("train.optimizer.betas[0]", opt.betas[0], 0.0, 1.0, true, false);
    check.range("train.optimizer.betas[1]", opt.betas[1], 0.0, 1.0, true, false);
    check.range("train.optimizer.eps", opt.eps, 0.0, f64::INFINITY, false, false);
    check.range("train.optimizer.weight_decay", opt.weight_decay, 0.0, f64::INFINITY, true, false);
    let warmup = match (train.schedule.warmup_steps, train.schedule.warmup_ratio) {
        (Some(_), Some(_)) => {
            check.fail("train.schedule.warmup_ratio", None, "set either warmup_steps or warmup_ratio, not both");
            Warmup::Steps(0)
        }
        (Some(steps), None) => Warmup::Steps(steps),
        (None, Some(ratio)) => {
            check.range("train.schedule.warmup_ratio", ratio, 0.0, 1.0, true, false);
            Warmup::Ratio(ratio)
        }
        (None, None) => Warmup::Steps(0),
    };
    if let Some(clip) = train.grad_clip {
        check.range("train.grad_clip", clip, 0.0, f64::INFINITY, false, false);
    }
    if let Some(patience) = train.early_stop_patience {
        check.positive("train.early_stop_patience", patience);
    }
    if let Some(steps) = train.max_steps {
        check.positive("train.max_steps", steps);
    }
    if let Some(steps) = train.checkpoint_every_steps {
        check.positive("train.checkpoint_every_steps", steps);
    }
    TrainPlan {
        epochs: train.epochs,
        batch_size: train.batch_size,
        eval_batch_size: train.eval_batch_size.unwrap_or(train.batch_size * 2),
        lr: opt.lr,
        betas: (opt.betas[0], opt.betas[1]),
        eps: opt.eps,
        weight_decay: opt.weight_decay,
        schedule: train.schedule.name.into(),
        warmup,
        grad_clip: train.grad_clip,
        select: train.select_best.into(),
        patience: train.early_stop_patience,
        max_steps: train.max_steps,
        checkpoint_every_steps: train.checkpoint_every_steps,
    }
}

impl From<schema::ScheduleName> for Shape {
    fn from(name: schema::ScheduleName) -> Self {
        match name {
            schema::ScheduleName::Constant => Shape::Constant,
            schema::ScheduleName::Linear => Shape::Linear,
            schema::ScheduleName::Cosine => Shape::Cosine,
        }
    }
}

impl From<schema::SelectMetric> for Select {
    fn from(metric: schema::SelectMetric) -> Self {
        match metric {
            schema::SelectMetric::Accuracy => Select::Accuracy,
            schema::SelectMetric::MacroF1 => Select::MacroF1,
            schema::SelectMetric::WeightedF1 => Select::WeightedF1,
            schema::SelectMetric::Loss => Select::Loss,
        }
    }
}

impl From<&TrainPlan> for crate::train::optim::Settings {
    /// AdamW's settings; which parameters decay is the model's business (`Trainable::hf_decays`).
    fn from(train: &TrainPlan) -> Self {
        Self { beta_1: train.betas.0, beta_2: train.betas.1, epsilon: train.eps, weight_decay: train.weight_decay }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_warmup_ratio_rounds_up_like_transformers() {
        assert_eq!(Warmup::Ratio(0.1).steps(1435), 144);
        assert_eq!(Warmup::Ratio(0.0).steps(10), 0);
        assert_eq!(Warmup::Steps(7).steps(3), 7);
    }
}
