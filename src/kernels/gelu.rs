//! GELU (the exact, erf form) and its derivative, element-parallel over the CPU's cores.

use std::mem::MaybeUninit;

use super::simd::{self, multiversion};
use rayon::prelude::*;

use super::split::{ELEMENTS_PER_TASK, filled, par_zip_map, par_zip2_map};

const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
/// 1/√(2π)
const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

/// gelu(x) = ½·x·(1 + erf(x/√2)).
pub fn forward(x: &[f32]) -> Vec<f32> {
    par_zip_map(x, ELEMENTS_PER_TASK, forward_chunk)
}

/// gelu'(x)·g = (Φ(x) + x·φ(x))·g with Φ the normal CDF, φ its density.
pub fn backward(x: &[f32], grad: &[f32]) -> Vec<f32> {
    par_zip2_map(x, grad, ELEMENTS_PER_TASK, backward_chunk)
}

/// gelu(x) and gelu'(x) together, from one evaluation of erf per element: what a product that
/// takes gelu(x) as its input needs for its backward, without having kept gelu(x).
pub fn value_and_slope(x: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let mut slope = Vec::new();
    let value = filled(x.len(), |value| {
        slope = filled(x.len(), |slope| {
            value
                .par_chunks_mut(ELEMENTS_PER_TASK)
                .zip(slope.par_chunks_mut(ELEMENTS_PER_TASK))
                .zip(x.par_chunks(ELEMENTS_PER_TASK))
                .for_each(|((value, slope), x)| value_and_slope_chunk(x, value, slope));
        });
    });
    (value, slope)
}

/// grad·slope element by element, into `grad`.
pub fn scale_by_slope(grad: &mut [f32], slope: &[f32]) {
    assert_eq!(grad.len(), slope.len(), "gelu backward: gradient and slope differ in length");
    grad.par_chunks_mut(ELEMENTS_PER_TASK).zip(slope.par_chunks(ELEMENTS_PER_TASK)).for_each(|(g, s)| multiply_into(g, s));
}

multiversion! {
    fn value_and_slope_chunk(x: &[f32], value: &mut [MaybeUninit<f32>], slope: &mut [MaybeUninit<f32>]) {
        for ((v, s), &x) in value.iter_mut().zip(slope.iter_mut()).zip(x) {
            let cdf = 0.5 * (1.0 + simd::erf(x * FRAC_1_SQRT_2));
            let pdf = FRAC_1_SQRT_2PI * simd::exp(-0.5 * x * x);
            v.write(x * cdf);
            s.write(cdf + x * pdf);
        }
    }
}

multiversion! {
    fn multiply_into(out: &mut [f32], factor: &[f32]) {
        for (o, &f) in out.iter_mut().zip(factor) {
            *o *= f;
        }
    }
}

multiversion! {
    fn forward_chunk(x: &[f32], out: &mut [MaybeUninit<f32>]) {
        for (o, &v) in out.iter_mut().zip(x) {
            o.write(0.5 * v * (1.0 + simd::erf(v * FRAC_1_SQRT_2)));
        }
    }
}

multiversion! {
    fn backward_chunk(x: &[f32], grad: &[f32], out: &mut [MaybeUninit<f32>]) {
        for ((o, &v), &g) in out.iter_mut().zip(x).zip(grad) {
            let cdf = 0.5 * (1.0 + simd::erf(v * FRAC_1_SQRT_2));
            let pdf = FRAC_1_SQRT_2PI * simd::exp(-0.5 * v * v);
            o.write(g * (cdf + v * pdf));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(x: f64) -> (f64, f64) {
        let cdf = 0.5 * (1.0 + crate::kernels::simd::tests::libm_erf(x / std::f64::consts::SQRT_2));
        let pdf = (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
        (x * cdf, cdf + x * pdf)
    }

    #[test]
    fn gelu_and_its_derivative_match_the_definition() {
        // More elements than one task, so the parallel split is exercised too.
        let x: Vec<f32> = (0..3 * ELEMENTS_PER_TASK + 5).map(|i| (i as f32 * 0.37).sin() * 7.0).collect();
        let grad: Vec<f32> = (0..x.len()).map(|i| ((i % 7) as f32 - 3.0) * 0.5).collect();
        let y = forward(&x);
        let dx = backward(&x, &grad);
        let (value, slope) = value_and_slope(&x);
        let mut scaled = grad.clone();
        scale_by_slope(&mut scaled, &slope);
        for i in 0..x.len() {
            let (want_y, want_d) = reference(x[i] as f64);
            let want_dx = want_d * grad[i] as f64;
            assert!((y[i] as f64 - want_y).abs() <= 1e-6 * (1.0 + want_y.abs()), "gelu({}) = {} not {}", x[i], y[i], want_y);
            assert!((dx[i] as f64 - want_dx).abs() <= 2e-6 * (1.0 + want_dx.abs()), "gelu'({})·{} = {} not {}", x[i], grad[i], dx[i], want_dx);
            assert!((value[i] as f64 - want_y).abs() <= 1e-6 * (1.0 + want_y.abs()), "value_and_slope: gelu({})", x[i]);
            assert!((slope[i] as f64 - want_d).abs() <= 2e-6 * (1.0 + want_d.abs()), "value_and_slope: gelu'({})", x[i]);
            assert_eq!(scaled[i], dx[i], "scale_by_slope is the backward's product");
        }
    }

    #[test]
    fn empty_and_special_values() {
        assert!(forward(&[]).is_empty());
        let y = forward(&[f32::NAN, 0.0, 30.0, -30.0]);
        assert!(y[0].is_nan());
        assert_eq!(y[1], 0.0);
        assert_eq!(y[2], 30.0);
        assert_eq!(y[3], 0.0);
    }
}
