//! Element functions written so the compiler vectorises them, and the runtime choice of the widest
//! vector unit the CPU has.
//!
//! `exp` and `erf` here are branch-free polynomial forms (no libm call), so a loop over a slice of
//! them compiles to vector code. Nothing here uses fused multiply-add or reassociation: the same
//! input gives the same bits on every vector width, so a result does not depend on the machine's
//! instruction set, only on the order the code states.

/// The widest vector extension this CPU has, detected once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Avx512,
    Avx2,
    Baseline,
}

pub fn level() -> Level {
    static LEVEL: std::sync::OnceLock<Level> = std::sync::OnceLock::new();
    *LEVEL.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Level::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                return Level::Avx2;
            }
        }
        Level::Baseline
    })
}

/// Defines `fn $name(args) -> ret` that runs `$body` compiled for AVX-512, for AVX2, or for the
/// baseline target, whichever the CPU has. `$body` must only call `#[inline(always)]` functions for
/// the wider code to reach them.
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            $(#[$meta])*
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                $(#[$meta])*
                fn avx512($($arg: $ty),*) $(-> $ret)? { body($($arg),*) }
                #[target_feature(enable = "avx2")]
                $(#[$meta])*
                fn avx2($($arg: $ty),*) $(-> $ret)? { body($($arg),*) }
                match $crate::kernels::simd::level() {
                    // SAFETY: the level says the CPU has these features.
                    $crate::kernels::simd::Level::Avx512 => return unsafe { avx512($($arg),*) },
                    $crate::kernels::simd::Level::Avx2 => return unsafe { avx2($($arg),*) },
                    $crate::kernels::simd::Level::Baseline => {}
                }
            }
            body($($arg),*)
        }
    };
}
pub(crate) use multiversion;

multiversion! {
    /// total += part, element by element.
    pub fn add_into(total: &mut [f32], part: &[f32]) {
        for (t, &p) in total.iter_mut().zip(part) {
            *t += p;
        }
    }
}

/// Rounds to the nearest integer (ties to even) for |x| < 2²², with two additions.
#[inline(always)]
fn round(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 · 2²³
    (x + MAGIC) - MAGIC
}

/// eˣ to about one ulp (Cephes' `expf`: range reduction by ln 2, a degree-5 polynomial). Below
/// −87.3 it returns 0, above 88.7 infinity, and NaN stays NaN.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let clamped = x.clamp(-87.336_55, 88.722_83);
    let n = round(clamped * LOG2E);
    let r = clamped - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let y = p * (r * r) + r + 1.0;
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    let value = y * scale;
    if x.is_nan() {
        x
    } else if x < -87.336_55 {
        0.0
    } else if x > 88.722_83 {
        f32::INFINITY
    } else {
        value
    }
}

/// The error function to within an ulp: x·P(x²)/Q(x²) on [−4, 4] (the rational form Eigen and XLA
/// use for f32), evaluated in f64 because in f32 its rounding errors reach six ulps; ±1 beyond 4,
/// where erf rounds to 1 in f32.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let x = (x as f64).clamp(-4.0, 4.0);
    let x2 = x * x;
    let p = -2.726_142_258_013_06e-10_f64;
    let p = p * x2 + 2.770_681_424_959_02e-8;
    let p = p * x2 + -2.101_024_020_825_08e-6;
    let p = p * x2 + -5.692_506_394_623_46e-5;
    let p = p * x2 + -7.349_906_303_268_55e-4;
    let p = p * x2 + -2.954_599_808_540_25e-3;
    let p = p * x2 + -1.609_603_332_624_15e-2;
    let q = -1.456_607_184_649_96e-5_f64;
    let q = q * x2 + -2.133_740_552_789_05e-4;
    let q = q * x2 + -1.682_826_974_382_03e-3;
    let q = q * x2 + -7.373_329_167_204_68e-3;
    let q = q * x2 + -1.426_473_905_141_89e-2;
    (x * p / q) as f32
}

/// A sum in a fixed order of 16 lanes, so it vectorises without reassociating anything the code
/// does not state: the same bits on every vector width.
#[inline(always)]
pub fn sum(values: &[f32]) -> f32 {
    sum_map(values, |v| v)
}

/// Σ f(vᵢ) in the fixed 16-lane order of [`sum`].
#[inline(always)]
pub fn sum_map(values: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut lanes = [0.0f32; 16];
    let mut chunks = values.chunks_exact(16);
    for chunk in &mut chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += f(v);
        }
    }
    for (lane, &v) in lanes.iter_mut().zip(chunks.remainder()) {
        *lane += f(v);
    }
    combine(lanes)
}

/// Σ f(aᵢ, bᵢ) in the fixed 16-lane order of [`sum`].
#[inline(always)]
pub fn sum_zip(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut lanes = [0.0f32; 16];
    let mut a_chunks = a.chunks_exact(16);
    let mut b_chunks = b.chunks_exact(16);
    for (ca, cb) in (&mut a_chunks).zip(&mut b_chunks) {
        for i in 0..16 {
            lanes[i] += f(ca[i], cb[i]);
        }
    }
    for (lane, (&x, &y)) in lanes.iter_mut().zip(a_chunks.remainder().iter().zip(b_chunks.remainder())) {
        *lane += f(x, y);
    }
    combine(lanes)
}

/// Σ f(aᵢ, bᵢ, cᵢ) in the fixed 16-lane order of [`sum`].
#[inline(always)]
pub fn sum_zip3(a: &[f32], b: &[f32], c: &[f32], f: impl Fn(f32, f32, f32) -> f32) -> f32 {
    let mut lanes = [0.0f32; 16];
    let n = a.len().min(b.len()).min(c.len());
    let whole = n / 16 * 16;
    for start in (0..whole).step_by(16) {
        let (ca, cb, cc) = (&a[start..start + 16], &b[start..start + 16], &c[start..start + 16]);
        for i in 0..16 {
            lanes[i] += f(ca[i], cb[i], cc[i]);
        }
    }
    for i in whole..n {
        lanes[i - whole] += f(a[i], b[i], c[i]);
    }
    combine(lanes)
}

#[inline(always)]
fn combine(lanes: [f32; 16]) -> f32 {
    let mut width = 8;
    let mut lanes = lanes;
    while width > 0 {
        for i in 0..width {
            lanes[i] += lanes[i + width];
        }
        width /= 2;
    }
    lanes[0]
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn ulps(a: f32, b: f32) -> u32 {
        if a == b {
            return 0;
        }
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }

    #[test]
    fn exp_is_within_two_ulps_of_libm_over_its_range() {
        let mut worst = 0;
        let mut x = -87.0f32;
        while x < 88.0 {
            let got = exp(x);
            let want = x.exp();
            worst = worst.max(ulps(got, want));
            x += 0.000_7;
        }
        assert!(worst <= 2, "worst {worst} ulps");
    }

    #[test]
    fn exp_limits_and_nan() {
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(100.0), f32::INFINITY);
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(f32::NAN).is_nan());
    }

    #[test]
    fn erf_is_within_an_ulp_of_the_f64_function() {
        // Against f64's erf, rounded: the reference flex's GELU uses.
        let mut worst_abs = 0.0f32;
        let mut x = -6.0f32;
        while x < 6.0 {
            let want = libm_erf(x as f64) as f32;
            worst_abs = worst_abs.max((erf(x) - want).abs());
            x += 0.000_3;
        }
        assert!(worst_abs <= f32::EPSILON, "worst absolute error {worst_abs:e}");
        assert_eq!(erf(0.0), 0.0);
        assert_eq!(erf(10.0), 1.0);
        assert_eq!(erf(-10.0), -1.0);
    }

    /// erf in f64 by its Taylor series (|x| ≤ 3) and continued fraction beyond: the test's own
    /// reference, independent of the code under test.
    pub(crate) fn libm_erf(x: f64) -> f64 {
        let ax = x.abs();
        let value = if ax <= 3.0 {
            let mut term = ax;
            let mut total = ax;
            let x2 = ax * ax;
            let mut n = 0.0;
            loop {
                n += 1.0;
                term *= -x2 / n;
                let add = term / (2.0 * n + 1.0);
                total += add;
                if add.abs() <= 1e-17 * total.abs() {
                    break;
                }
            }
            total * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            // erfc by Lentz's continued fraction.
            let mut f = ax;
            for k in (1..60).rev() {
                f = ax + (k as f64 / 2.0) / f;
            }
            1.0 - (-ax * ax).exp() / (f * std::f64::consts::PI.sqrt())
        };
        value.copysign(x)
    }

    #[test]
    fn sums_are_exact_on_integers_and_match_any_length() {
        for n in [0, 1, 15, 16, 17, 100, 1000] {
            let v: Vec<f32> = (0..n).map(|i| i as f32).collect();
            assert_eq!(sum(&v), (n * n.max(1) - n) as f32 / 2.0, "n = {n}");
            assert_eq!(sum_zip(&v, &v, |a, b| a - b), 0.0);
        }
    }

    multiversion! {
        fn double_all(v: &mut [f32]) {
            for x in v.iter_mut() {
                *x *= 2.0;
            }
        }
    }

    #[test]
    fn multiversioned_functions_run_on_this_cpu() {
        let mut v = vec![1.0f32; 37];
        double_all(&mut v);
        assert!(v.iter().all(|&x| x == 2.0));
    }
}
