//! Classification metrics with scikit-learn's definitions (`classification_report`,
//! `confusion_matrix`, `zero_division=0`): per-class precision / recall / F1 / support, accuracy,
//! macro and support-weighted averages. Checked against values computed by scikit-learn
//! (`tests/fixtures/metrics`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClassScores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    pub per_class: Vec<ClassScores>,
    pub accuracy: f64,
    pub macro_avg: ClassScores,
    pub weighted_avg: ClassScores,
    /// `confusion[true][predicted]`.
    pub confusion: Vec<Vec<usize>>,
}

impl Scores {
    /// Scores of predictions `pred` against labels `truth`, for labels `0..num_classes`.
    pub fn new(truth: &[usize], pred: &[usize], num_classes: usize) -> Self {
        assert_eq!(truth.len(), pred.len(), "one prediction per label");
        let mut confusion = vec![vec![0usize; num_classes]; num_classes];
        for (&t, &p) in truth.iter().zip(pred) {
            confusion[t][p] += 1;
        }
        let ratio = |num: usize, den: usize| if den == 0 { 0.0 } else { num as f64 / den as f64 };
        let per_class: Vec<ClassScores> = (0..num_classes)
            .map(|c| {
                let tp = confusion[c][c];
                let support: usize = confusion[c].iter().sum();
                let predicted: usize = confusion.iter().map(|row| row[c]).sum();
                ClassScores {
                    precision: ratio(tp, predicted),
                    recall: ratio(tp, support),
                    // 2 tp / (2 tp + fp + fn), as scikit-learn computes it
                    f1: ratio(2 * tp, support + predicted),
                    support,
                }
            })
            .collect();
        let total = truth.len();
        let correct: usize = (0..num_classes).map(|c| confusion[c][c]).sum();
        let average = |weight: &dyn Fn(&ClassScores) -> f64| {
            let weights: f64 = per_class.iter().map(weight).sum();
            let mean = |field: &dyn Fn(&ClassScores) -> f64| {
                if weights == 0.0 { 0.0 } else { per_class.iter().map(|s| field(s) * weight(s)).sum::<f64>() / weights }
            };
            ClassScores { precision: mean(&|s| s.precision), recall: mean(&|s| s.recall), f1: mean(&|s| s.f1), support: total }
        };
        Self {
            macro_avg: average(&|_| 1.0),
            weighted_avg: average(&|s| s.support as f64),
            accuracy: ratio(correct, total),
            per_class,
            confusion,
        }
    }
}

/// Index of the largest value (the first on ties, like `argmax`).
pub fn argmax(values: &[f32]) -> usize {
    values
        .iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &v)| if v > best.1 { (i, v) } else { best })
        .0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_and_empty_classes() {
        let report = Scores::new(&[0, 1, 1, 2], &[0, 1, 1, 1], 4);
        assert_eq!(report.accuracy, 0.75);
        assert_eq!(report.per_class[0].f1, 1.0);
        // class 2 never predicted, class 3 absent: zero_division gives 0
        assert_eq!(report.per_class[2].precision, 0.0);
        assert_eq!(report.per_class[3], ClassScores { precision: 0.0, recall: 0.0, f1: 0.0, support: 0 });
        assert_eq!(report.confusion[2][1], 1);
        assert_eq!(report.weighted_avg.support, 4);
    }

    #[test]
    fn argmax_takes_the_first_maximum() {
        assert_eq!(argmax(&[0.1, 0.7, 0.7, 0.2]), 1);
    }
}
