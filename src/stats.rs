//! Statistics for deciding whether a number or a difference can be trusted: seeded percentile
//! bootstrap confidence intervals (single runs and paired differences) and McNemar's exact test
//! on per-image correctness. Checked against scipy / statsmodels (`tests/fixtures/stats`).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::metrics::Scores;

/// Resamples used for every interval brasa reports.
pub const RESAMPLES: usize = 2000;
pub const CONFIDENCE: f64 = 0.95;

/// A point estimate with its confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Interval {
    pub value: f64,
    pub low: f64,
    pub high: f64,
}

/// The metrics brasa puts intervals on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Accuracy,
    MacroF1,
    WeightedF1,
}

impl Metric {
    pub const ALL: [Metric; 3] = [Metric::Accuracy, Metric::MacroF1, Metric::WeightedF1];

    pub fn of(self, report: &Scores) -> f64 {
        match self {
            Metric::Accuracy => report.accuracy,
            Metric::MacroF1 => report.macro_avg.f1,
            Metric::WeightedF1 => report.weighted_avg.f1,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Metric::Accuracy => "accuracy",
            Metric::MacroF1 => "macro F1",
            Metric::WeightedF1 => "weighted F1",
        }
    }
}

/// The `q`-quantile of sorted `values`, interpolated linearly (numpy's default).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let position = q * (sorted.len() - 1) as f64;
    let (lower, upper) = (position.floor() as usize, position.ceil() as usize);
    sorted[lower] + (sorted[upper] - sorted[lower]) * (position - lower as f64)
}

/// Percentile interval of `statistic` over `resamples` bootstrap resamples of `n` items
/// (indices drawn with replacement from a generator seeded with `seed`).
pub fn bootstrap(n: usize, resamples: usize, seed: u64, mut statistic: impl FnMut(&[usize]) -> f64) -> (f64, f64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut indices = vec![0usize; n];
    let mut values: Vec<f64> = (0..resamples)
        .map(|_| {
            indices.iter_mut().for_each(|i| *i = rng.random_range(0..n.max(1)));
            statistic(&indices)
        })
        .filter(|v| v.is_finite())
        .collect();
    values.sort_by(f64::total_cmp);
    let tail = (1.0 - CONFIDENCE) / 2.0;
    (quantile(&values, tail), quantile(&values, 1.0 - tail))
}

/// `metric` of predictions with its bootstrap interval.
pub fn metric_interval(truth: &[usize], pred: &[usize], num_classes: usize, metric: Metric, seed: u64) -> Interval {
    let value = metric.of(&Scores::new(truth, pred, num_classes));
    let (low, high) = bootstrap(truth.len(), RESAMPLES, seed, |idx| {
        let t: Vec<usize> = idx.iter().map(|&i| truth[i]).collect();
        let p: Vec<usize> = idx.iter().map(|&i| pred[i]).collect();
        metric.of(&Scores::new(&t, &p, num_classes))
    });
    Interval { value, low, high }
}

/// `metric(b) - metric(a)` on the same images, with a paired bootstrap interval (both models
/// resampled on the same images).
pub fn paired_difference(truth: &[usize], a: &[usize], b: &[usize], num_classes: usize, metric: Metric, seed: u64) -> Interval {
    let of = |pred: &[usize], idx: Option<&[usize]>| -> f64 {
        match idx {
            None => metric.of(&Scores::new(truth, pred, num_classes)),
            Some(idx) => {
                let t: Vec<usize> = idx.iter().map(|&i| truth[i]).collect();
                let p: Vec<usize> = idx.iter().map(|&i| pred[i]).collect();
                metric.of(&Scores::new(&t, &p, num_classes))
            }
        }
    };
    let value = of(b, None) - of(a, None);
    let (low, high) = bootstrap(truth.len(), RESAMPLES, seed, |idx| of(b, Some(idx)) - of(a, Some(idx)));
    Interval { value, low, high }
}

/// `metric(a) - metric(b)` of two independent samples (e.g. validation and test images), with
/// an interval from resampling each sample on its own.
pub fn independent_difference(a: (&[usize], &[usize]), b: (&[usize], &[usize]), num_classes: usize, metric: Metric, seed: u64) -> Interval {
    let of = |(truth, pred): (&[usize], &[usize]), idx: &[usize]| -> f64 {
        let t: Vec<usize> = idx.iter().map(|&i| truth[i]).collect();
        let p: Vec<usize> = idx.iter().map(|&i| pred[i]).collect();
        metric.of(&Scores::new(&t, &p, num_classes))
    };
    let value = metric.of(&Scores::new(a.0, a.1, num_classes)) - metric.of(&Scores::new(b.0, b.1, num_classes));
    let mut rng_a = ChaCha8Rng::seed_from_u64(seed);
    let mut rng_b = ChaCha8Rng::seed_from_u64(seed.wrapping_add(1));
    let (na, nb) = (a.0.len().max(1), b.0.len().max(1));
    let (mut idx_a, mut idx_b) = (vec![0usize; a.0.len()], vec![0usize; b.0.len()]);
    let mut values: Vec<f64> = (0..RESAMPLES)
        .map(|_| {
            idx_a.iter_mut().for_each(|i| *i = rng_a.random_range(0..na));
            idx_b.iter_mut().for_each(|i| *i = rng_b.random_range(0..nb));
            of(a, &idx_a) - of(b, &idx_b)
        })
        .filter(|v| v.is_finite())
        .collect();
    values.sort_by(f64::total_cmp);
    let tail = (1.0 - CONFIDENCE) / 2.0;
    Interval { value, low: quantile(&values, tail), high: quantile(&values, 1.0 - tail) }
}

/// McNemar's exact test on paired correctness: `b` = images only the first model gets right,
/// `c` = images only the second gets right. Two-sided p-value of the binomial test
/// `min(b, c) ~ Binomial(b + c, 1/2)` (statsmodels' `mcnemar(table, exact=True)`).
pub fn mcnemar_exact(b: usize, c: usize) -> f64 {
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    let k = b.min(c);
    // P(X <= k) for X ~ Binomial(n, 1/2), summed in log space for large n.
    let ln_half_n = -(n as f64) * std::f64::consts::LN_2;
    let mut ln_choose = 0.0f64; // ln C(n, 0)
    let mut total = 0.0f64;
    for i in 0..=k {
        if i > 0 {
            ln_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        total += (ln_choose + ln_half_n).exp();
    }
    (2.0 * total).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mcnemar_small_cases() {
        assert_eq!(mcnemar_exact(0, 0), 1.0);
        assert_eq!(mcnemar_exact(3, 3), 1.0);
        // all 6 discordant pairs favour one model: 2 * 0.5^6
        assert!((mcnemar_exact(0, 6) - 2.0 / 64.0).abs() < 1e-15);
        // b = 1, c = 9: 2 * (1 + 10) / 1024
        assert!((mcnemar_exact(1, 9) - 22.0 / 1024.0).abs() < 1e-15);
    }

    #[test]
    fn quantiles_interpolate_like_numpy() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&v, 0.0), 1.0);
        assert_eq!(quantile(&v, 1.0), 4.0);
        assert!((quantile(&v, 0.25) - 1.75).abs() < 1e-12);
    }

    #[test]
    fn bootstrap_is_seeded_and_brackets_the_estimate() {
        let truth: Vec<usize> = (0..200).map(|i| i % 4).collect();
        let pred: Vec<usize> = (0..200).map(|i| if i % 3 == 0 { (i + 1) % 4 } else { i % 4 }).collect();
        let a = metric_interval(&truth, &pred, 4, Metric::Accuracy, 7);
        assert_eq!(a, metric_interval(&truth, &pred, 4, Metric::Accuracy, 7));
        assert!(a.low < a.value && a.value < a.high, "{a:?}");
        let same = paired_difference(&truth, &pred, &pred, 4, Metric::MacroF1, 1);
        assert_eq!((same.value, same.low, same.high), (0.0, 0.0, 0.0));
    }
}
