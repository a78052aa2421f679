//! Layer normalisation over the last axis and its backward, row-parallel over the CPU's cores.
//!
//! The forward keeps each row's mean and 1/σ for the backward, which recomputes the normalised
//! values from them instead of storing a second copy of the activations.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::simd::{self, multiversion};
use super::split::{filled, rows_per_task};

/// What the forward returns: the output, and each row's mean and 1/√(var + ε).
pub struct Forward {
    pub output: Vec<f32>,
    pub mean: Vec<f32>,
    pub rstd: Vec<f32>,
}

/// y = (x − mean)·rstd·γ + β per row of `gamma.len()` values (biased variance, as PyTorch).
pub fn forward(x: &[f32], gamma: &[f32], beta: Option<&[f32]>, epsilon: f32) -> Forward {
    let width = gamma.len();
    let rows = x.len() / width.max(1);
    let per_task = rows_per_task(width);
    let mut mean = vec![0.0f32; rows];
    let mut rstd = vec![0.0f32; rows];
    let output = filled(x.len(), |out| {
        out.par_chunks_mut(per_task * width)
            .zip(x.par_chunks(per_task * width))
            .zip(mean.par_chunks_mut(per_task).zip(rstd.par_chunks_mut(per_task)))
            .for_each(|((o, x), (mean, rstd))| {
                for (((o, x), mean), rstd) in o.chunks_mut(width).zip(x.chunks(width)).zip(mean).zip(rstd) {
                    (*mean, *rstd) = forward_row(x, gamma, beta, epsilon, o);
                }
            });
    });
    Forward { output, mean, rstd }
}

/// What the backward returns: the input's gradient and γ's and β's.
pub struct Backward {
    pub input: Vec<f32>,
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
}

/// The gradients of [`forward`] for the output gradient `grad`, from the saved `mean` and `rstd`.
/// γ's and β's are summed over rows in fixed blocks, then over blocks in order.
pub fn backward(x: &[f32], grad: &[f32], mean: &[f32], rstd: &[f32], gamma: &[f32]) -> Backward {
    assert_eq!(x.len(), grad.len(), "layer norm backward: input and gradient differ in length");
    let width = gamma.len();
    let per_task = rows_per_task(width);
    let mut partials: Vec<(Vec<f32>, Vec<f32>)> = Vec::new();
    let input = filled(x.len(), |out| {
        partials = out
            .par_chunks_mut(per_task * width)
            .zip(x.par_chunks(per_task * width).zip(grad.par_chunks(per_task * width)))
            .zip(mean.par_chunks(per_task).zip(rstd.par_chunks(per_task)))
            .map(|((o, (x, g)), (mean, rstd))| {
                let mut d_gamma = vec![0.0f32; width];
                let mut d_beta = vec![0.0f32; width];
                for ((((o, x), g), &mean), &rstd) in o.chunks_mut(width).zip(x.chunks(width)).zip(g.chunks(width)).zip(mean).zip(rstd) {
                    backward_row(x, g, mean, rstd, gamma, o, &mut d_gamma, &mut d_beta);
                }
                (d_gamma, d_beta)
            })
            .collect();
    });
    let mut d_gamma = vec![0.0f32; width];
    let mut d_beta = vec![0.0f32; width];
    for (pg, pb) in &partials {
        simd::add_into(&mut d_gamma, pg);
        simd::add_into(&mut d_beta, pb);
    }
    Backward { input, gamma: d_gamma, beta: d_beta }
}


multiversion! {
    fn forward_row(x: &[f32], gamma: &[f32], beta: Option<&[f32]>, epsilon: f32, out: &mut [MaybeUninit<f32>]) -> (f32, f32) {
        let width = x.len() as f32;
        let mean = simd::sum(x) / width;
        let var = simd::sum_map(x, |v| (v - mean) * (v - mean)) / width;
        let rstd = 1.0 / (var + epsilon).sqrt();
        match beta {
            Some(beta) => {
                for (((o, &v), &g), &b) in out.iter_mut().zip(x).zip(gamma).zip(beta) {
                    o.write((v - mean) * rstd * g + b);
                }
            }
            None => {
                for ((o, &v), &g) in out.iter_mut().zip(x).zip(gamma) {
                    o.write((v - mean) * rstd * g);
                }
            }
        }
        (mean, rstd)
    }
}

multiversion! {
    #[allow(clippy::too_many_arguments)]
    fn backward_row(
        x: &[f32],
        g: &[f32],
        mean: f32,
        rstd: f32,
        gamma: &[f32],
        out: &mut [MaybeUninit<f32>],
        d_gamma: &mut [f32],
        d_beta: &mut [f32],
    ) {
        let width = x.len() as f32;
        // a = mean(g·γ), b = mean(g·γ·x̂)
        let a = simd::sum_zip(g, gamma, |g, ga| g * ga) / width;
        let b = simd::sum_zip3(x, g, gamma, |v, g, ga| g * ga * ((v - mean) * rstd)) / width;
        for (((dg, db), &v), &gi) in d_gamma.iter_mut().zip(d_beta.iter_mut()).zip(x).zip(g) {
            *dg += gi * ((v - mean) * rstd);
            *db += gi;
        }
        for (((o, &v), &gi), &ga) in out.iter_mut().zip(x).zip(g).zip(gamma) {
            let xhat = (v - mean) * rstd;
            o.write(rstd * (gi * ga - a - xhat * b));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The forward in f64, and the backward by the chain rule written out in full.
    #[allow(clippy::type_complexity)]
    fn reference(x: &[f32], gamma: &[f32], beta: &[f32], eps: f64, g: &[f32]) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
        let d = gamma.len();
        let rows = x.len() / d;
        let (mut y, mut dx) = (vec![0.0; x.len()], vec![0.0; x.len()]);
        let (mut dg, mut db) = (vec![0.0; d], vec![0.0; d]);
        // Σ|terms| of the γ and β gradients: the scale their f32 rounding errors grow with.
        let mut scale = vec![0.0; d];
        for r in 0..rows {
            let row = &x[r * d..(r + 1) * d];
            let gr = &g[r * d..(r + 1) * d];
            let mean = row.iter().map(|&v| v as f64).sum::<f64>() / d as f64;
            let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / d as f64;
            let rstd = 1.0 / (var + eps).sqrt();
            let xhat: Vec<f64> = row.iter().map(|&v| (v as f64 - mean) * rstd).collect();
            for j in 0..d {
                y[r * d + j] = xhat[j] * gamma[j] as f64 + beta[j] as f64;
                dg[j] += gr[j] as f64 * xhat[j];
                db[j] += gr[j] as f64;
                scale[j] += (gr[j] as f64 * xhat[j]).abs() + (gr[j] as f64).abs();
            }
            let dxhat: Vec<f64> = (0..d).map(|j| gr[j] as f64 * gamma[j] as f64).collect();
            let a = dxhat.iter().sum::<f64>() / d as f64;
            let b = dxhat.iter().zip(&xhat).map(|(p, q)| p * q).sum::<f64>() / d as f64;
            for j in 0..d {
                dx[r * d + j] = rstd * (dxhat[j] - a - xhat[j] * b);
            }
        }
        (y, dx, dg, db, scale)
    }

    #[test]
    fn forward_and_gradients_match_the_definition() {
        for width in [1, 3, 16, 64, 100, 384] {
            let rows = 2 * rows_per_task(width) + 5;
            let x: Vec<f32> = (0..rows * width).map(|i| (i as f32 * 0.37).sin() * 3.0 + 1.0).collect();
            let g: Vec<f32> = (0..rows * width).map(|i| (i as f32 * 0.11).cos()).collect();
            let gamma: Vec<f32> = (0..width).map(|j| 0.5 + j as f32 * 0.01).collect();
            let beta: Vec<f32> = (0..width).map(|j| j as f32 * -0.02).collect();
            let fwd = forward(&x, &gamma, Some(&beta), 1e-5);
            let bwd = backward(&x, &g, &fwd.mean, &fwd.rstd, &gamma);
            let (y, dx, dg, db, scale) = reference(&x, &gamma, &beta, 1e-5, &g);
            let close = |a: f32, b: f64, tol: f64| (a as f64 - b).abs() <= tol * (1.0 + b.abs());
            for i in 0..x.len() {
                assert!(close(fwd.output[i], y[i], 1e-5), "width {width}: y[{i}] {} vs {}", fwd.output[i], y[i]);
                assert!(close(bwd.input[i], dx[i], 1e-4), "width {width}: dx[{i}] {} vs {}", bwd.input[i], dx[i]);
            }
            for j in 0..width {
                let tol = 1e-6 * scale[j] + 1e-6;
                assert!((bwd.gamma[j] as f64 - dg[j]).abs() <= tol, "width {width}: dγ[{j}] {} vs {}", bwd.gamma[j], dg[j]);
                assert!((bwd.beta[j] as f64 - db[j]).abs() <= tol, "width {width}: dβ[{j}] {} vs {}", bwd.beta[j], db[j]);
            }
            let no_beta = forward(&x, &gamma, None, 1e-5);
            for i in 0..x.len() {
                let b = beta[i % width];
                assert!((no_beta.output[i] + b - fwd.output[i]).abs() <= 1e-5 * (1.0 + fwd.output[i].abs()));
            }
        }
    }
}
