//! Multi-head attention's core, softmax(q·kᵀ·scale)·v, and its backward, reading the heads
//! straight out of the `[batch, tokens, heads·head_dim]` projections through strides: no
//! split-heads or merge-heads copies, no separate scaling pass, one (batch, head) per task.
//! The probabilities live only in a task's scratch block: the forward keeps each row's softmax
//! statistics, and the backward recomputes the scores from q and k (one more product per head,
//! as flash attention does) instead of holding `[batch, heads, queries, keys]` between the two.

use rayon::prelude::*;

use super::linear::{self, View as Mat};
use super::simd::{self, multiversion};

/// The sizes of one attention: q `[batch, queries, heads·head_dim]`, k and v
/// `[batch, keys, heads·head_dim]`, probabilities `[batch, heads, queries, keys]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    pub batch: usize,
    pub heads: usize,
    pub queries: usize,
    pub keys: usize,
    pub head_dim: usize,
}

impl Dims {
    fn width(&self) -> usize {
        self.heads * self.head_dim
    }
}

/// A buffer several tasks write disjoint parts of.
#[derive(Clone, Copy)]
struct Shared(*mut f32);
// SAFETY: each task writes only its own (batch, head) block; see the callers.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

/// dst (`m × n`, rows `dst_rows` apart) = lhs (`m × k`) · rhs (`k × n`), on the calling thread
/// (the (batch, head) tasks are the parallelism).
///
/// # Safety
/// As [`linear::product`]: live memory of the sizes given, dst this task's alone.
unsafe fn product(dst: *mut f32, dst_rows: usize, m: usize, n: usize, k: usize, lhs: Mat, rhs: Mat) {
    unsafe { linear::product(dst, dst_rows, m, n, k, lhs, rhs, false, gemm::Parallelism::None) }
}

/// Head `h` of batch `b` in a `[batch, tokens, width]` buffer, as a `tokens × head_dim` matrix.
fn head(buffer: *const f32, d: &Dims, tokens: usize, b: usize, h: usize) -> Mat {
    // SAFETY (of the offset): b < batch, h < heads, inside a buffer of batch·tokens·width.
    Mat { ptr: unsafe { buffer.add(b * tokens * d.width() + h * d.head_dim) }, row_stride: d.width() as isize, col_stride: 1 }
}

/// The same head, transposed (`head_dim × tokens`).
fn head_transposed(buffer: *const f32, d: &Dims, tokens: usize, b: usize, h: usize) -> Mat {
    let m = head(buffer, d, tokens, b, h);
    Mat { ptr: m.ptr, row_stride: 1, col_stride: d.width() as isize }
}

fn check(len: usize, want: usize, what: &str) {
    assert_eq!(len, want, "attention: {what} holds {len} values, not {want}");
}

/// Each query row's softmax statistics, `[batch, heads, queries]`: the largest scaled score and
/// the sum of exp(score − largest). With them the backward recomputes a row's probabilities bit
/// for bit from q and k, so the `[batch, heads, queries, keys]` probabilities — CvT-13's largest
/// training tensor at 224 px (157 MB for stage 1 at batch 16) — are never kept.
#[derive(Debug, Clone, PartialEq)]
pub struct RowStats {
    pub max: Vec<f32>,
    pub total: Vec<f32>,
}

/// Scores of head `h` of batch `b` into `p` (`queries × keys`): q·kᵀ, unscaled.
///
/// # Safety
/// `qp` and `kp` address the checked q and k buffers of `d`.
unsafe fn scores(p: &mut [f32], qp: Shared, kp: Shared, d: &Dims, b: usize, h: usize) {
    unsafe { product(p.as_mut_ptr(), d.keys, d.queries, d.keys, d.head_dim, head(qp.0, d, d.queries, b, h), head_transposed(kp.0, d, d.keys, b, h)) }
}

/// The probabilities of block `bh` (batch `bh / heads`, head `bh % heads`) into `p`, recomputed
/// from q, k and the forward's statistics: what the forward's softmax made, bit for bit.
///
/// # Safety
/// As [`scores`].
unsafe fn recompute(p: &mut [f32], qp: Shared, kp: Shared, stats: &RowStats, d: &Dims, bh: usize, scale: f32) {
    unsafe { scores(p, qp, kp, d, bh / d.heads, bh % d.heads) };
    let rows = bh * d.queries..(bh + 1) * d.queries;
    recompute_rows(p, &stats.max[rows.clone()], &stats.total[rows], d.keys, scale);
}

/// The context `[batch, queries, width]` and each query row's softmax statistics.
pub fn forward(q: &[f32], k: &[f32], v: &[f32], d: &Dims, scale: f32) -> (Vec<f32>, RowStats) {
    check(q.len(), d.batch * d.queries * d.width(), "q");
    check(k.len(), d.batch * d.keys * d.width(), "k");
    check(v.len(), d.batch * d.keys * d.width(), "v");
    let block = d.queries * d.keys;
    let rows = d.batch * d.heads * d.queries;
    let mut stats = RowStats { max: vec![0.0; rows], total: vec![0.0; rows] };
    let mut context = Vec::<f32>::with_capacity(d.batch * d.queries * d.width());
    let out = Shared(context.as_mut_ptr());
    let (qp, kp, vp) = (Shared(q.as_ptr() as *mut f32), Shared(k.as_ptr() as *mut f32), Shared(v.as_ptr() as *mut f32));
    let per_task = d.queries.max(1);
    stats.max.par_chunks_mut(per_task).zip(stats.total.par_chunks_mut(per_task)).enumerate().for_each_init(|| vec![0.0f32; block], |p, (bh, (max, total))| {
        let (out, qp, kp, vp) = (out, qp, kp, vp);
        let (b, h) = (bh / d.heads, bh % d.heads);
        // SAFETY: the views address q, k and v inside their checked lengths; p is this task's;
        // the context block (rows of batch b, columns of head h) is written by this task only.
        unsafe {
            scores(p, qp, kp, d, b, h);
            for ((row, max), total) in p.chunks_mut(d.keys.max(1)).zip(max).zip(total) {
                (*max, *total) = softmax_row(row, scale);
            }
            let probs = Mat { ptr: p.as_ptr(), row_stride: d.keys as isize, col_stride: 1 };
            let dst = out.0.add(b * d.queries * d.width() + h * d.head_dim);
            product(dst, d.width(), d.queries, d.head_dim, d.keys, probs, head(vp.0, d, d.keys, b, h));
        }
    });
    // SAFETY: the (batch, head) blocks cover every value of the context once.
    unsafe { context.set_len(d.batch * d.queries * d.width()) };
    (context, stats)
}

multiversion! {
    /// softmax(row·scale) in place: scaled first, as a separate scaling pass would; returns the
    /// row's largest scaled score and its sum of exponentials.
    fn softmax_row(row: &mut [f32], scale: f32) -> (f32, f32) {
        for v in row.iter_mut() {
            *v *= scale;
        }
        let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
        for v in row.iter_mut() {
            *v = simd::exp(*v - max);
        }
        let total = simd::sum(row);
        for v in row.iter_mut() {
            *v /= total;
        }
        (max, total)
    }
}

multiversion! {
    /// Scores (`keys` a row) to the probabilities `softmax_row` made of them, from its statistics:
    /// the same operations on the same values, so the same bits.
    fn recompute_rows(p: &mut [f32], max: &[f32], total: &[f32], keys: usize, scale: f32) {
        for ((row, &max), &total) in p.chunks_mut(keys.max(1)).zip(max).zip(total) {
            for v in row.iter_mut() {
                *v = simd::exp(*v * scale - max) / total;
            }
        }
    }
}

multiversion! {
    /// dS = P ⊙ (dP − Σ dP⊙P)·scale in place of dP, per row.
    fn softmax_backward_rows(dp: &mut [f32], probs: &[f32], keys: usize, scale: f32) {
        for (g, p) in dp.chunks_mut(keys).zip(probs.chunks(keys)) {
            let dot = simd::sum_zip(g, p, |g, p| g * p);
            for (g, &p) in g.iter_mut().zip(p) {
                *g = p * (*g - dot) * scale;
            }
        }
    }
}

/// The gradients of q, k and v from the context's gradient and the forward's row statistics.
pub fn backward(q: &[f32], k: &[f32], v: &[f32], stats: &RowStats, d_context: &[f32], d: &Dims, scale: f32) -> [Vec<f32>; 3] {
    check(q.len(), d.batch * d.queries * d.width(), "q");
    check(k.len(), d.batch * d.keys * d.width(), "k");
    check(v.len(), d.batch * d.keys * d.width(), "v");
    check(d_context.len(), d.batch * d.queries * d.width(), "the context's gradient");
    check(stats.max.len(), d.batch * d.heads * d.queries, "the row maxima");
    check(stats.total.len(), d.batch * d.heads * d.queries, "the row totals");
    let block = d.queries * d.keys;
    let mut dq = Vec::<f32>::with_capacity(q.len());
    let mut dk = Vec::<f32>::with_capacity(k.len());
    let mut dv = Vec::<f32>::with_capacity(v.len());
    let (dqp, dkp, dvp) = (Shared(dq.as_mut_ptr()), Shared(dk.as_mut_ptr()), Shared(dv.as_mut_ptr()));
    let (qp, kp, vp, dcp) = (Shared(q.as_ptr() as *mut f32), Shared(k.as_ptr() as *mut f32), Shared(v.as_ptr() as *mut f32), Shared(d_context.as_ptr() as *mut f32));
    let scratch = || (vec![0.0f32; block], vec![0.0f32; block]);
    (0..d.batch * d.heads).into_par_iter().for_each_init(scratch, |(p, ds), bh| {
        let (dqp, dkp, dvp, qp, kp, vp, dcp) = (dqp, dkp, dvp, qp, kp, vp, dcp);
        let (b, h) = (bh / d.heads, bh % d.heads);
        let probs_t = Mat { ptr: p.as_ptr(), row_stride: 1, col_stride: d.keys as isize };
        // SAFETY: views inside the checked buffers; each task writes only batch b's rows of
        // head h's columns in dq, dk and dv, and its own scratch.
        unsafe {
            recompute(p, qp, kp, stats, d, bh, scale);
            // dP = dC·vᵀ
            product(ds.as_mut_ptr(), d.keys, d.queries, d.keys, d.head_dim, head(dcp.0, d, d.queries, b, h), head_transposed(vp.0, d, d.keys, b, h));
            softmax_backward_rows(ds, p, d.keys, scale);
            let ds_mat = Mat { ptr: ds.as_ptr(), row_stride: d.keys as isize, col_stride: 1 };
            let ds_t = Mat { ptr: ds.as_ptr(), row_stride: 1, col_stride: d.keys as isize };
            let at = |buffer: Shared, tokens: usize| buffer.0.add(b * tokens * d.width() + h * d.head_dim);
            // dq = dS·k, dk = dSᵀ·q, dv = Pᵀ·dC
            product(at(dqp, d.queries), d.width(), d.queries, d.head_dim, d.keys, ds_mat, head(kp.0, d, d.keys, b, h));
            product(at(dkp, d.keys), d.width(), d.keys, d.head_dim, d.queries, ds_t, head(qp.0, d, d.queries, b, h));
            product(at(dvp, d.keys), d.width(), d.keys, d.head_dim, d.queries, probs_t, head(dcp.0, d, d.queries, b, h));
        }
    });
    // SAFETY: the (batch, head) blocks cover every value of each gradient once.
    unsafe {
        dq.set_len(q.len());
        dk.set_len(k.len());
        dv.set_len(v.len());
    }
    [dq, dk, dv]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Attention written out in f64: context and probabilities.
    fn reference(q: &[f32], k: &[f32], v: &[f32], d: &Dims, scale: f64) -> (Vec<f64>, Vec<f64>) {
        let w = d.width();
        let mut context = vec![0.0; d.batch * d.queries * w];
        let mut probs = vec![0.0; d.batch * d.heads * d.queries * d.keys];
        for b in 0..d.batch {
            for h in 0..d.heads {
                for i in 0..d.queries {
                    let scores: Vec<f64> = (0..d.keys)
                        .map(|t| (0..d.head_dim).map(|j| q[(b * d.queries + i) * w + h * d.head_dim + j] as f64 * k[(b * d.keys + t) * w + h * d.head_dim + j] as f64).sum::<f64>() * scale)
                        .collect();
                    let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let total: f64 = scores.iter().map(|s| (s - max).exp()).sum();
                    for t in 0..d.keys {
                        let p = (scores[t] - max).exp() / total;
                        probs[((b * d.heads + h) * d.queries + i) * d.keys + t] = p;
                        for j in 0..d.head_dim {
                            context[(b * d.queries + i) * w + h * d.head_dim + j] += p * v[(b * d.keys + t) * w + h * d.head_dim + j] as f64;
                        }
                    }
                }
            }
        }
        (context, probs)
    }

    /// The probabilities `[batch, heads, queries, keys]` the forward used, recomputed from q, k
    /// and its statistics as the backward does.
    fn probabilities(q: &[f32], k: &[f32], stats: &RowStats, d: &Dims, scale: f32) -> Vec<f32> {
        let block = d.queries * d.keys;
        let mut probs = vec![0.0f32; d.batch * d.heads * block];
        let (qp, kp) = (Shared(q.as_ptr() as *mut f32), Shared(k.as_ptr() as *mut f32));
        for (bh, p) in probs.chunks_mut(block).enumerate() {
            // SAFETY: q and k are the sizes `d` says (checked by `forward` before).
            unsafe { recompute(p, qp, kp, stats, d, bh, scale) };
        }
        probs
    }

    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n).map(|i| (((i * 7919 + seed * 104_729) % 1000) as f32 / 500.0 - 1.0) * 1.5).collect()
    }

    #[test]
    fn recomputed_probabilities_are_the_forwards_bit_for_bit() {
        let (queries, keys, scale) = (7, 37, 0.125f32);
        let scores: Vec<f32> = values(queries * keys, 5).iter().map(|v| v * 40.0).collect();
        let mut forward = scores.clone();
        let (mut max, mut total) = (vec![0.0; queries], vec![0.0; queries]);
        for ((row, max), total) in forward.chunks_mut(keys).zip(&mut max).zip(&mut total) {
            (*max, *total) = softmax_row(row, scale);
        }
        let mut recomputed = scores;
        recompute_rows(&mut recomputed, &max, &total, keys, scale);
        let differing = forward.iter().zip(&recomputed).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
        assert_eq!(differing, 0, "{differing} of {} probabilities differ", forward.len());
    }

    #[test]
    fn forward_matches_the_definition_and_backward_its_finite_differences() {
        let d = Dims { batch: 2, heads: 3, queries: 5, keys: 4, head_dim: 6 };
        let scale = 0.3f32;
        let (nq, nk) = (d.batch * d.queries * d.width(), d.batch * d.keys * d.width());
        let (q, k, v) = (values(nq, 1), values(nk, 2), values(nk, 3));
        let dc = values(nq, 4);
        let (context, stats) = forward(&q, &k, &v, &d, scale);
        let probs = probabilities(&q, &k, &stats, &d, scale);
        let (want_c, want_p) = reference(&q, &k, &v, &d, scale as f64);
        for (g, w) in context.iter().zip(&want_c) {
            assert!((*g as f64 - w).abs() < 1e-5, "context {g} vs {w}");
        }
        for (g, w) in probs.iter().zip(&want_p) {
            assert!((*g as f64 - w).abs() < 1e-6, "probabilities {g} vs {w}");
        }
        let [dq, dk, dv] = backward(&q, &k, &v, &stats, &dc, &d, scale);
        // L = Σ dC·context; each gradient entry against a central difference of L in f64.
        let loss = |q: &[f32], k: &[f32], v: &[f32]| reference(q, k, v, &d, scale as f64).0.iter().zip(&dc).map(|(c, &g)| c * g as f64).sum::<f64>();
        let eps = 1e-3f32;
        for (which, grad) in [(0, &dq), (1, &dk), (2, &dv)] {
            for i in 0..grad.len() {
                let mut inputs = [q.clone(), k.clone(), v.clone()];
                inputs[which][i] += eps;
                let up = loss(&inputs[0], &inputs[1], &inputs[2]);
                inputs[which][i] -= 2.0 * eps;
                let down = loss(&inputs[0], &inputs[1], &inputs[2]);
                let want = (up - down) / (2.0 * eps as f64);
                assert!((grad[i] as f64 - want).abs() < 2e-3 * (1.0 + want.abs()), "gradient {which}[{i}]: {} vs {want}", grad[i]);
            }
        }
    }
}
