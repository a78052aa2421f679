//! Batch normalisation over the last axis (channels last: `[.., channels]`, statistics over every
//! other axis), training and inference, and the training form's backward — in passes over fixed
//! blocks of rows, parallel over the CPU's cores. burn's generic batch norm transposes to put the
//! channels first and reduces each channel on one thread, forward and backward.
//!
//! Per-channel sums run over fixed blocks of rows, then over the blocks in order, so results do
//! not depend on the number of threads. Variance is the biased one (divided by the number of
//! values), as burn's `batch_norm_train` returns for the running statistics.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::simd::{self, multiversion};
use super::split::{block_sums, filled, rows_per_task};

/// What the training forward returns: the output, and each channel's batch mean, biased
/// variance and 1/√(variance + ε).
pub struct Forward {
    pub output: Vec<f32>,
    pub mean: Vec<f32>,
    pub variance: Vec<f32>,
    pub rstd: Vec<f32>,
}

/// y = (x − mean)·rstd·γ + β with the batch's own statistics.
pub fn forward_train(x: &[f32], gamma: &[f32], beta: &[f32], epsilon: f32) -> Forward {
    let channels = gamma.len();
    let count = (x.len() / channels.max(1)).max(1) as f32;
    let block = rows_per_task(channels) * channels;
    let sums = block_sums(x, block, channels, |rows, total| {
        for row in rows.chunks(channels) {
            simd::add_into(total, row);
        }
    });
    let mean: Vec<f32> = sums.iter().map(|s| s / count).collect();
    let squares = block_sums(x, block, channels, |rows, total| {
        for row in rows.chunks(channels) {
            add_squared_deviations(total, row, &mean);
        }
    });
    let variance: Vec<f32> = squares.iter().map(|s| s / count).collect();
    let rstd: Vec<f32> = variance.iter().map(|v| 1.0 / (v + epsilon).sqrt()).collect();
    let output = normalise(x, block, &mean, &rstd, gamma, beta);
    Forward { output, mean, variance, rstd }
}

/// y = (x − mean)/√(variance + ε)·γ + β with given (running) statistics.
pub fn forward_inference(x: &[f32], gamma: &[f32], beta: &[f32], mean: &[f32], variance: &[f32], epsilon: f32) -> Vec<f32> {
    let channels = gamma.len();
    assert!(mean.len() == channels && variance.len() == channels && beta.len() == channels, "batch norm: statistics and γ differ in length");
    let rstd: Vec<f32> = variance.iter().map(|v| 1.0 / (v + epsilon).sqrt()).collect();
    normalise(x, rows_per_task(channels) * channels, mean, &rstd, gamma, beta)
}

/// A running statistic moved by `momentum` towards the batch's: `running·(1 − momentum) +
/// batch·momentum`, rounded as burn's `BatchNorm` rounds it (each factor an f32 of the f64's).
pub fn moved(running: &[f32], batch: &[f32], momentum: f64) -> Vec<f32> {
    assert_eq!(running.len(), batch.len(), "batch norm: running and batch statistics differ in length");
    let (kept, taken) = ((1.0 - momentum) as f32, momentum as f32);
    running.iter().zip(batch).map(|(r, b)| r * kept + b * taken).collect()
}

/// The gradients of [`forward_train`]: the input's, γ's and β's.
pub struct Backward {
    pub input: Vec<f32>,
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
}

/// ∂L/∂x = γ·rstd·(g − mean(g) − x̂·mean(g·x̂)), ∂L/∂γ = Σ g·x̂, ∂L/∂β = Σ g, with x̂ the
/// normalised input and the means over every row.
pub fn backward(x: &[f32], grad: &[f32], gamma: &[f32], mean: &[f32], rstd: &[f32]) -> Backward {
    let channels = gamma.len();
    let count = (x.len() / channels.max(1)).max(1) as f32;
    let block = rows_per_task(channels) * channels;
    let (d_gamma, d_beta) = parameter_grads(x, grad, mean, rstd);
    let mean_grad: Vec<f32> = d_beta.iter().map(|s| s / count).collect();
    let mean_projection: Vec<f32> = d_gamma.iter().map(|s| s / count).collect();
    let scale: Vec<f32> = gamma.iter().zip(rstd).map(|(g, r)| g * r).collect();
    let input = filled(x.len(), |out| {
        out.par_chunks_mut(block).zip(x.par_chunks(block).zip(grad.par_chunks(block))).for_each(|(o, (x, g))| {
            for ((o, x), g) in o.chunks_mut(channels).zip(x.chunks(channels)).zip(g.chunks(channels)) {
                input_grad_row(o, x, g, mean, rstd, &mean_grad, &mean_projection, &scale);
            }
        });
    });
    Backward { input, gamma: d_gamma, beta: d_beta }
}

/// The gradients of [`forward_inference`], the statistics held fixed: ∂L/∂x = g·γ·rstd,
/// ∂L/∂γ = Σ g·x̂, ∂L/∂β = Σ g.
pub fn backward_inference(x: &[f32], grad: &[f32], gamma: &[f32], mean: &[f32], rstd: &[f32]) -> Backward {
    let channels = gamma.len();
    let (d_gamma, d_beta) = parameter_grads(x, grad, mean, rstd);
    let scale: Vec<f32> = gamma.iter().zip(rstd).map(|(g, r)| g * r).collect();
    let input = filled(x.len(), |out| {
        out.par_chunks_mut(rows_per_task(channels) * channels).zip(grad.par_chunks(rows_per_task(channels) * channels)).for_each(|(o, g)| {
            for (o, g) in o.chunks_mut(channels).zip(g.chunks(channels)) {
                scale_row(o, g, &scale);
            }
        });
    });
    Backward { input, gamma: d_gamma, beta: d_beta }
}

/// (Σ g·x̂, Σ g) per channel, over fixed blocks of rows and then the blocks in order.
fn parameter_grads(x: &[f32], grad: &[f32], mean: &[f32], rstd: &[f32]) -> (Vec<f32>, Vec<f32>) {
    assert_eq!(x.len(), grad.len(), "batch norm backward: input and gradient differ in length");
    let channels = mean.len();
    let block = rows_per_task(channels) * channels;
    let partials: Vec<(Vec<f32>, Vec<f32>)> = x
        .par_chunks(block)
        .zip(grad.par_chunks(block))
        .map(|(x, g)| {
            let (mut d_gamma, mut d_beta) = (vec![0.0f32; channels], vec![0.0f32; channels]);
            for (x, g) in x.chunks(channels).zip(g.chunks(channels)) {
                add_grad_times_normalised(&mut d_gamma, x, g, mean, rstd);
                simd::add_into(&mut d_beta, g);
            }
            (d_gamma, d_beta)
        })
        .collect();
    let (mut d_gamma, mut d_beta) = (vec![0.0f32; channels], vec![0.0f32; channels]);
    for (pg, pb) in &partials {
        simd::add_into(&mut d_gamma, pg);
        simd::add_into(&mut d_beta, pb);
    }
    (d_gamma, d_beta)
}

fn normalise(x: &[f32], block: usize, mean: &[f32], rstd: &[f32], gamma: &[f32], beta: &[f32]) -> Vec<f32> {
    let channels = gamma.len();
    filled(x.len(), |out| {
        out.par_chunks_mut(block).zip(x.par_chunks(block)).for_each(|(o, x)| {
            for (o, x) in o.chunks_mut(channels).zip(x.chunks(channels)) {
                normalise_row(o, x, mean, rstd, gamma, beta);
            }
        });
    })
}

multiversion! {
    fn add_squared_deviations(total: &mut [f32], row: &[f32], mean: &[f32]) {
        for ((t, &x), &m) in total.iter_mut().zip(row).zip(mean) {
            let d = x - m;
            *t += d * d;
        }
    }
}

multiversion! {
    fn normalise_row(out: &mut [MaybeUninit<f32>], x: &[f32], mean: &[f32], rstd: &[f32], gamma: &[f32], beta: &[f32]) {
        for (((((o, &x), &m), &r), &g), &b) in out.iter_mut().zip(x).zip(mean).zip(rstd).zip(gamma).zip(beta) {
            o.write((x - m) * r * g + b);
        }
    }
}

multiversion! {
    fn scale_row(out: &mut [MaybeUninit<f32>], g: &[f32], scale: &[f32]) {
        for ((o, &g), &s) in out.iter_mut().zip(g).zip(scale) {
            o.write(g * s);
        }
    }
}

multiversion! {
    fn add_grad_times_normalised(total: &mut [f32], x: &[f32], g: &[f32], mean: &[f32], rstd: &[f32]) {
        for ((((t, &x), &g), &m), &r) in total.iter_mut().zip(x).zip(g).zip(mean).zip(rstd) {
            *t += g * ((x - m) * r);
        }
    }
}

multiversion! {
    #[allow(clippy::too_many_arguments)] // one row and the six per-channel vectors it needs
    fn input_grad_row(
        out: &mut [MaybeUninit<f32>],
        x: &[f32],
        g: &[f32],
        mean: &[f32],
        rstd: &[f32],
        mean_grad: &[f32],
        mean_projection: &[f32],
        scale: &[f32],
    ) {
        for (c, o) in out.iter_mut().enumerate() {
            let normalised = (x[c] - mean[c]) * rstd[c];
            o.write(scale[c] * ((g[c] - mean_grad[c]) - normalised * mean_projection[c]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `rows` rows of `channels` values, different scales and offsets per channel.
    fn sample(rows: usize, channels: usize, seed: usize) -> Vec<f32> {
        (0..rows * channels).map(|i| (((i * 31 + seed * 7) % 97) as f32 - 48.0) / 20.0 * (1.0 + (i % channels) as f32) + (i % channels) as f32).collect()
    }

    /// Batch norm of one channel's values, in f64.
    fn normalised(values: &[f64], epsilon: f64) -> (Vec<f64>, f64, f64) {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let variance = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        let rstd = 1.0 / (variance + epsilon).sqrt();
        (values.iter().map(|v| (v - mean) * rstd).collect(), mean, variance)
    }

    fn column(x: &[f32], channels: usize, c: usize) -> Vec<f64> {
        x.chunks(channels).map(|row| row[c] as f64).collect()
    }

    #[test]
    fn training_forward_matches_the_definition_with_its_statistics() {
        // More rows than one block holds, and channels not a multiple of the vector width.
        let (rows, channels) = (3000, 19);
        let x = sample(rows, channels, 1);
        let gamma: Vec<f32> = (0..channels).map(|c| 0.5 + c as f32 / 10.0).collect();
        let beta: Vec<f32> = (0..channels).map(|c| c as f32 / 7.0 - 1.0).collect();
        let out = forward_train(&x, &gamma, &beta, 1e-5);
        for c in 0..channels {
            let (xhat, mean, variance) = normalised(&column(&x, channels, c), 1e-5);
            assert!((out.mean[c] as f64 - mean).abs() < 1e-4 * (1.0 + mean.abs()), "mean[{c}]");
            assert!((out.variance[c] as f64 - variance).abs() < 1e-4 * variance, "variance[{c}]");
            for (r, xh) in xhat.iter().enumerate() {
                let want = xh * gamma[c] as f64 + beta[c] as f64;
                assert!((out.output[r * channels + c] as f64 - want).abs() < 1e-4, "y[{r}, {c}]");
            }
        }
        let inference = forward_inference(&x, &gamma, &beta, &out.mean, &out.variance, 1e-5);
        let worst = inference.iter().zip(&out.output).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "inference with the batch's statistics is the training output (gap {worst})");
    }

    #[test]
    fn gradients_match_finite_differences_of_the_forward() {
        let (rows, channels) = (40, 5);
        let x = sample(rows, channels, 2);
        let gamma: Vec<f32> = (0..channels).map(|c| 0.7 + c as f32 / 5.0).collect();
        let beta = vec![0.3f32; channels];
        let g: Vec<f32> = (0..rows * channels).map(|i| ((i * 13 % 23) as f32 - 11.0) / 11.0).collect();
        let fwd = forward_train(&x, &gamma, &beta, 1e-5);
        let d = backward(&x, &g, &gamma, &fwd.mean, &fwd.rstd);
        // L = Σ g·y per channel in f64; central differences in x, γ and β.
        let loss = |x: &[f64], gamma: &[f64], beta: &[f64]| -> f64 {
            (0..channels)
                .map(|c| {
                    let values: Vec<f64> = x.chunks(channels).map(|row| row[c]).collect();
                    let (xhat, _, _) = normalised(&values, 1e-5);
                    xhat.iter().enumerate().map(|(r, xh)| g[r * channels + c] as f64 * (xh * gamma[c] + beta[c])).sum::<f64>()
                })
                .sum()
        };
        let (x64, gamma64, beta64): (Vec<f64>, Vec<f64>, Vec<f64>) =
            (x.iter().map(|&v| v as f64).collect(), gamma.iter().map(|&v| v as f64).collect(), beta.iter().map(|&v| v as f64).collect());
        let h = 1e-5;
        for k in (0..x.len()).step_by(7) {
            let (mut up, mut down) = (x64.clone(), x64.clone());
            up[k] += h;
            down[k] -= h;
            let want = (loss(&up, &gamma64, &beta64) - loss(&down, &gamma64, &beta64)) / (2.0 * h);
            assert!((d.input[k] as f64 - want).abs() < 1e-3 * (1.0 + want.abs()), "dx[{k}]: {} vs {want}", d.input[k]);
        }
        for c in 0..channels {
            let (mut up, mut down) = (gamma64.clone(), gamma64.clone());
            up[c] += h;
            down[c] -= h;
            let want = (loss(&x64, &up, &beta64) - loss(&x64, &down, &beta64)) / (2.0 * h);
            assert!((d.gamma[c] as f64 - want).abs() < 1e-3 * (1.0 + want.abs()), "dγ[{c}]");
            let want_beta: f64 = g.chunks(channels).map(|row| row[c] as f64).sum();
            assert!((d.beta[c] as f64 - want_beta).abs() < 1e-4, "dβ[{c}]");
        }
    }
}
