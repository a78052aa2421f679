//! Splitting a kernel's work over rayon's threads in fixed pieces: where a piece starts and ends
//! depends only on the tensor's shape, never on the number of threads, so results do not either.

use std::mem::MaybeUninit;

use rayon::prelude::*;

/// Elements an element-wise task handles: large enough that scheduling is noise, small enough
/// that two cores share a 100k-element tensor.
pub const ELEMENTS_PER_TASK: usize = 16 * 1024;

/// A vector of `len` values each written exactly once by `fill`, without zeroing it first.
pub fn filled(len: usize, fill: impl FnOnce(&mut [MaybeUninit<f32>])) -> Vec<f32> {
    let mut out = Vec::<f32>::with_capacity(len);
    fill(&mut out.spare_capacity_mut()[..len]);
    // SAFETY: every caller's `fill` writes each of the `len` slots (asserted in tests of each
    // kernel); f32 has no invalid bit patterns or drop glue.
    unsafe { out.set_len(len) };
    out
}

/// Zeroes `out` and returns it as initialised values (for kernels that accumulate into it).
pub fn zeroed(out: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    out.fill(MaybeUninit::new(0.0));
    // SAFETY: every element was just written; MaybeUninit<f32> has f32's layout.
    unsafe { &mut *(out as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

/// `out[i] = f(x[i])` chunk-wise, in parallel.
pub fn par_zip_map(x: &[f32], chunk: usize, f: impl Fn(&[f32], &mut [MaybeUninit<f32>]) + Sync) -> Vec<f32> {
    filled(x.len(), |out| {
        out.par_chunks_mut(chunk).zip(x.par_chunks(chunk)).for_each(|(o, x)| f(x, o));
    })
}

/// `out[i] = f(a[i], b[i])` chunk-wise, in parallel.
pub fn par_zip2_map(
    a: &[f32],
    b: &[f32],
    chunk: usize,
    f: impl Fn(&[f32], &[f32], &mut [MaybeUninit<f32>]) + Sync,
) -> Vec<f32> {
    assert_eq!(a.len(), b.len(), "element-wise kernel on slices of different lengths");
    filled(a.len(), |out| {
        out.par_chunks_mut(chunk)
            .zip(a.par_chunks(chunk).zip(b.par_chunks(chunk)))
            .for_each(|(o, (a, b))| f(a, b, o));
    })
}

/// Rows of `width` values per task so a task holds about [`ELEMENTS_PER_TASK`] values.
pub fn rows_per_task(width: usize) -> usize {
    (ELEMENTS_PER_TASK / width.max(1)).max(1)
}

/// Per-column totals of `x`: `add` accumulates each fixed block of `block` values into its own
/// `width`-long vector, then the blocks' vectors are added in order (the same sums whatever the
/// number of threads).
pub fn block_sums(x: &[f32], block: usize, width: usize, add: impl Fn(&[f32], &mut [f32]) + Sync) -> Vec<f32> {
    let partials: Vec<Vec<f32>> = x
        .par_chunks(block.max(1))
        .map(|rows| {
            let mut total = vec![0.0f32; width];
            add(rows, &mut total);
            total
        })
        .collect();
    let mut total = vec![0.0f32; width];
    for partial in &partials {
        super::simd::add_into(&mut total, partial);
    }
    total
}
