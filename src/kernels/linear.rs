//! A linear layer, y = x·W + b, and its three gradients as direct `gemm` calls (the crate flex
//! itself multiplies with), writing into buffers allocated once and never zero-filled: flex's
//! matmul zero-fills each output and copies it again to align it, then adds the bias in a
//! separate single-threaded broadcast pass, and sums the bias gradient on one thread.
//!
//! Matrices are row-major: x `[m, k]`, W `[k, n]` (burn's layout), y `[m, n]`.

use rayon::prelude::*;

use super::simd;
use super::split::{block_sums, rows_per_task};

/// Products below this many multiply-adds run on the calling thread (flex's threshold).
const PARALLEL_WORK: usize = 192 * 192 * 192;

pub(super) fn parallelism(m: usize, n: usize, k: usize) -> gemm::Parallelism {
    if m.saturating_mul(n).saturating_mul(k) >= PARALLEL_WORK && rayon::current_num_threads() > 1 {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        gemm::Parallelism::None
    }
}

/// A row-major matrix view: `rows × cols` read at `ptr` with strides (in elements).
#[derive(Clone, Copy)]
pub(super) struct View {
    pub ptr: *const f32,
    pub row_stride: isize,
    pub col_stride: isize,
}

impl View {
    fn row_major(values: &[f32], cols: usize) -> Self {
        View { ptr: values.as_ptr(), row_stride: cols as isize, col_stride: 1 }
    }

    /// The transpose of a row-major `rows × cols` matrix, without moving it.
    fn transposed(values: &[f32], cols: usize) -> Self {
        View { ptr: values.as_ptr(), row_stride: 1, col_stride: cols as isize }
    }
}

/// out (`m × n`, rows `out_row_stride` apart) = lhs (`m × k`) · rhs (`k × n`), plus out's current
/// values when `accumulate`.
///
/// # Safety
/// `out` addresses `m × n` values (initialised when `accumulate`) no other thread touches; the
/// views address `m × k` and `k × n` values inside live slices.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn product(
    out: *mut f32,
    out_row_stride: usize,
    m: usize,
    n: usize,
    k: usize,
    lhs: View,
    rhs: View,
    accumulate: bool,
    parallelism: gemm::Parallelism,
) {
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out,
            1,
            out_row_stride as isize,
            accumulate,
            lhs.ptr,
            lhs.col_stride,
            lhs.row_stride,
            rhs.ptr,
            rhs.col_stride,
            rhs.row_stride,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}

fn checked(len: usize, rows: usize, cols: usize, what: &str) {
    assert_eq!(len, rows * cols, "linear: {what} holds {len} values, not {rows}×{cols}");
}

/// y = x·W (+ b on every row).
pub fn forward(x: &[f32], weight: &[f32], bias: Option<&[f32]>, m: usize, k: usize, n: usize) -> Vec<f32> {
    checked(x.len(), m, k, "x");
    checked(weight.len(), k, n, "W");
    let mut y = Vec::<f32>::with_capacity(m * n);
    if m * n == 0 {
        return y;
    }
    match bias {
        Some(bias) => {
            assert_eq!(bias.len(), n, "linear: bias length");
            y.spare_capacity_mut()[..m * n].par_chunks_mut(rows_per_task(n) * n).for_each(|rows| {
                for row in rows.chunks_mut(n) {
                    for (v, &b) in row.iter_mut().zip(bias) {
                        v.write(b);
                    }
                }
            });
            // SAFETY: every value was written above.
            unsafe { y.set_len(m * n) };
            // SAFETY: y holds m·n initialised values; x and W are checked m×k and k×n.
            unsafe { product(y.as_mut_ptr(), n, m, n, k, View::row_major(x, k), View::row_major(weight, n), true, parallelism(m, n, k)) };
        }
        None => {
            // SAFETY: gemm writes all m·n values without reading them (accumulate = false).
            unsafe {
                product(y.as_mut_ptr(), n, m, n, k, View::row_major(x, k), View::row_major(weight, n), false, parallelism(m, n, k));
                y.set_len(m * n);
            }
        }
    }
    y
}

/// ∂L/∂x = ∂L/∂y · Wᵀ (`m × k`).
pub fn input_grad(dy: &[f32], weight: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    checked(dy.len(), m, n, "∂L/∂y");
    checked(weight.len(), k, n, "W");
    let mut dx = Vec::<f32>::with_capacity(m * k);
    // SAFETY: gemm writes all m·k values without reading them; the views are checked above.
    unsafe {
        product(dx.as_mut_ptr(), k, m, k, n, View::row_major(dy, n), View::transposed(weight, n), false, parallelism(m, k, n));
        dx.set_len(m * k);
    }
    dx
}

/// ∂L/∂W = xᵀ · ∂L/∂y (`k × n`).
pub fn weight_grad(x: &[f32], dy: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    checked(x.len(), m, k, "x");
    checked(dy.len(), m, n, "∂L/∂y");
    let mut dw = Vec::<f32>::with_capacity(k * n);
    // SAFETY: gemm writes all k·n values without reading them; the views are checked above.
    unsafe {
        product(dw.as_mut_ptr(), n, k, n, m, View::transposed(x, k), View::row_major(dy, n), false, parallelism(k, n, m));
        dw.set_len(k * n);
    }
    dw
}

/// ∂L/∂b = Σ over rows of ∂L/∂y: rows summed in fixed blocks, blocks in order.
pub fn bias_grad(dy: &[f32], m: usize, n: usize) -> Vec<f32> {
    checked(dy.len(), m, n, "∂L/∂y");
    block_sums(dy, rows_per_task(n) * n, n, |rows, sum| {
        for row in rows.chunks(n) {
            simd::add_into(sum, row);
        }
    })
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_and_gradients_match_the_sums_they_stand_for() {
        for (m, k, n) in [(1, 1, 1), (7, 5, 3), (300, 64, 48), (600, 200, 90)] {
            let x: Vec<f32> = (0..m * k).map(|i| ((i * 31 % 97) as f32 - 48.0) / 40.0).collect();
            let w: Vec<f32> = (0..k * n).map(|i| ((i * 17 % 53) as f32 - 26.0) / 30.0).collect();
            let b: Vec<f32> = (0..n).map(|i| i as f32 * 0.1 - 1.0).collect();
            let dy: Vec<f32> = (0..m * n).map(|i| ((i * 7 % 23) as f32 - 11.0) / 11.0).collect();
            let y = forward(&x, &w, Some(&b), m, k, n);
            let y0 = forward(&x, &w, None, m, k, n);
            let dx = input_grad(&dy, &w, m, k, n);
            let dw = weight_grad(&x, &dy, m, k, n);
            let db = bias_grad(&dy, m, n);
            let close = |got: f32, want: f64, scale: f64| (got as f64 - want).abs() <= 1e-5 * (1.0 + scale);
            for i in 0..m {
                for j in 0..n {
                    let (want, scale) = (0..k).fold((0.0, 0.0), |(s, a), t| {
                        let p = x[i * k + t] as f64 * w[t * n + j] as f64;
                        (s + p, a + p.abs())
                    });
                    assert!(close(y0[i * n + j], want, scale), "({m},{k},{n}) y0[{i},{j}]");
                    assert!(close(y[i * n + j], want + b[j] as f64, scale), "({m},{k},{n}) y[{i},{j}]");
                }
                for t in 0..k {
                    let (want, scale) = (0..n).fold((0.0, 0.0), |(s, a), j| {
                        let p = dy[i * n + j] as f64 * w[t * n + j] as f64;
                        (s + p, a + p.abs())
                    });
                    assert!(close(dx[i * k + t], want, scale), "({m},{k},{n}) dx[{i},{t}]");
                }
            }
            for t in 0..k {
                for j in 0..n {
                    let (want, scale) = (0..m).fold((0.0, 0.0), |(s, a), i| {
                        let p = x[i * k + t] as f64 * dy[i * n + j] as f64;
                        (s + p, a + p.abs())
                    });
                    assert!(close(dw[t * n + j], want, scale), "({m},{k},{n}) dw[{t},{j}]");
                }
            }
            for j in 0..n {
                let (want, scale) = (0..m).fold((0.0, 0.0), |(s, a), i| (s + dy[i * n + j] as f64, a + (dy[i * n + j] as f64).abs()));
                assert!(close(db[j], want, scale), "({m},{k},{n}) db[{j}]");
            }
        }
    }
}
