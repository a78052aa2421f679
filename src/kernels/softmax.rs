//! Softmax over the last axis and its backward, row-parallel over the CPU's cores.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::simd::{self, multiversion};
use super::split::{filled, rows_per_task};

/// yᵢ = exp(xᵢ − max x) / Σⱼ exp(xⱼ − max x) for each row of `width` values.
pub fn forward(x: &[f32], width: usize) -> Vec<f32> {
    let rows = rows_per_task(width) * width;
    filled(x.len(), |out| {
        out.par_chunks_mut(rows).zip(x.par_chunks(rows)).for_each(|(o, x)| {
            for (o, x) in o.chunks_mut(width).zip(x.chunks(width)) {
                forward_row(x, o);
            }
        });
    })
}

/// dxᵢ = yᵢ·(gᵢ − Σⱼ gⱼ·yⱼ) for each row of `width` values, from the forward's output `y`.
pub fn backward(y: &[f32], grad: &[f32], width: usize) -> Vec<f32> {
    assert_eq!(y.len(), grad.len(), "softmax backward: output and gradient differ in length");
    let rows = rows_per_task(width) * width;
    filled(y.len(), |out| {
        out.par_chunks_mut(rows)
            .zip(y.par_chunks(rows).zip(grad.par_chunks(rows)))
            .for_each(|(o, (y, g))| {
                for ((o, y), g) in o.chunks_mut(width).zip(y.chunks(width)).zip(g.chunks(width)) {
                    backward_row(y, g, o);
                }
            });
    })
}

multiversion! {
    fn forward_row(x: &[f32], out: &mut [MaybeUninit<f32>]) {
        let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
        // A row of -inf (or NaN) keeps NaN, as exp(x - max) / sum does.
        for (o, &v) in out.iter_mut().zip(x) {
            o.write(simd::exp(v - max));
        }
        // SAFETY: every slot was written just above.
        let exps = unsafe { &mut *(out as *mut [MaybeUninit<f32>] as *mut [f32]) };
        let total = simd::sum(exps);
        for e in exps.iter_mut() {
            *e /= total;
        }
    }
}

multiversion! {
    fn backward_row(y: &[f32], g: &[f32], out: &mut [MaybeUninit<f32>]) {
        let dot = simd::sum_zip(y, g, |y, g| y * g);
        for ((o, &y), &g) in out.iter_mut().zip(y).zip(g) {
            o.write(y * (g - dot));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(x: &[f32]) -> Vec<f64> {
        let max = x.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
        let exps: Vec<f64> = x.iter().map(|&v| (v as f64 - max).exp()).collect();
        let total: f64 = exps.iter().sum();
        exps.iter().map(|e| e / total).collect()
    }

    #[test]
    fn rows_match_the_definition_and_the_backward_its_jacobian() {
        for width in [1, 5, 16, 33, 144, 785] {
            let rows = 2 * rows_per_task(width) + 3;
            let x: Vec<f32> = (0..rows * width).map(|i| (i as f32 * 0.731).sin() * 9.0).collect();
            let g: Vec<f32> = (0..rows * width).map(|i| (i as f32 * 0.113).cos()).collect();
            let y = forward(&x, width);
            let dx = backward(&y, &g, width);
            for r in 0..rows {
                let span = r * width..(r + 1) * width;
                let want = reference(&x[span.clone()]);
                let dot: f64 = want.iter().zip(&g[span.clone()]).map(|(y, &g)| y * g as f64).sum();
                for (k, i) in span.enumerate() {
                    assert!((y[i] as f64 - want[k]).abs() <= 1e-6 * want[k].max(1e-30) + 1e-9, "width {width} row {r}: {} vs {}", y[i], want[k]);
                    let want_dx = want[k] * (g[i] as f64 - dot);
                    assert!((dx[i] as f64 - want_dx).abs() <= 1e-6, "width {width} row {r}: dx {} vs {want_dx}", dx[i]);
                }
            }
        }
    }

    #[test]
    fn large_values_do_not_overflow() {
        let y = forward(&[1000.0, 1000.0, -1000.0], 3);
        assert_eq!(y, vec![0.5, 0.5, 0.0]);
    }
}
