//! Learning-rate schedules, stepped once per batch, with the Hugging Face Trainer's conventions
//! (`get_{constant,linear,cosine}_schedule_with_warmup`): the factor for optimizer step `s`
//! (0-based) is `s / warmup` during warm-up, then decays to 0 at `total` steps.

use std::f64::consts::PI;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Constant,
    Linear,
    Cosine,
}

impl Shape {
    /// The name the spec and `meta.json` use.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Constant => "constant",
            Shape::Linear => "linear",
            Shape::Cosine => "cosine",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub shape: Shape,
    pub peak_lr: f64,
    pub warmup_steps: usize,
    pub total_steps: usize,
}

impl Schedule {
    /// Learning rate for optimizer step `step` (0-based).
    pub fn lr(&self, step: usize) -> f64 {
        self.peak_lr * self.factor(step)
    }

    fn factor(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return step as f64 / self.warmup_steps.max(1) as f64;
        }
        let decay_steps = self.total_steps.saturating_sub(self.warmup_steps).max(1) as f64;
        let progress = (step - self.warmup_steps) as f64 / decay_steps;
        match self.shape {
            Shape::Constant => 1.0,
            Shape::Linear => (1.0 - progress).max(0.0),
            Shape::Cosine => (0.5 * (1.0 + (PI * progress.min(1.0)).cos())).max(0.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(shape: Shape, warmup_steps: usize) -> Schedule {
        Schedule { shape, peak_lr: 1.0, warmup_steps, total_steps: 10 }
    }

    #[test]
    fn linear_matches_hf_get_linear_schedule_with_warmup() {
        // lambda(s) = s / w for s < w, else max(0, (T - s) / (T - w)), T = 10, w = 2
        let s = schedule(Shape::Linear, 2);
        let expected = [0.0, 0.5, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125];
        for (step, want) in expected.iter().enumerate() {
            assert!((s.lr(step) - want).abs() < 1e-12, "step {step}: {} vs {want}", s.lr(step));
        }
        assert_eq!(schedule(Shape::Linear, 0).lr(0), 1.0);
    }

    #[test]
    fn cosine_and_constant() {
        let s = schedule(Shape::Cosine, 0);
        assert!((s.lr(0) - 1.0).abs() < 1e-12);
        assert!((s.lr(5) - 0.5).abs() < 1e-12);
        assert!(s.lr(9) < 0.03);
        let c = schedule(Shape::Constant, 4);
        assert_eq!(c.lr(2), 0.5);
        assert_eq!(c.lr(9), 1.0);
    }
}
