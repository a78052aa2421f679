//! What brasa's GPU kernels share: the launch settings every kernel needs, and the layout of
//! the row-wise ones (layer norm's, the softmax's) — [`LANES`] neighbouring threads per row, every
//! thread reading the row's values `LANES` apart (neighbouring threads, neighbouring values),
//! [`SLOTS`] rows per cube, and the threads' sums and maxima combined in shared memory by halves,
//! in an order fixed by `LANES`; where a kernel finds the rows of a tensor it reads in place
//! ([`Rows`]), and the row-major buffers they write ([`row_major`]).

use burn::backend::cubecl::dtype_to_storage_type;
use burn::tensor::Shape;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl::calculate_cube_count_elemwise;
use cubecl::prelude::*;

/// Threads per row, a power of two (their sums are added by halves).
pub(super) const LANES: usize = 32;
/// log₂ [`LANES`]: the halvings that add a row's sums.
pub(super) const HALVINGS: usize = 5;
/// Rows per cube (layer norm's backward writes a block's shares of γ's and β's gradients per cube).
pub(super) const SLOTS: usize = 8;

/// An uninitialised `shape`-shaped tensor on `like`'s device, of its element type, laid out row
/// major: what brasa's kernels write, by row-major index. burn's `empty_device_dtype` asks the
/// runtime for its preferred layout, and cubecl's CUDA runtime pitches it: each row padded to
/// the next power of two of its bytes, up to 512 (CvT-13's 192 channels become rows of 256, its
/// 56 × 56 token maps rows of 3,200 for 3,136), so a row-major write would land in the wrong
/// places. (wgpu's layouts are row major either way.)
pub(super) fn row_major(like: &CubeTensor, shape: Shape) -> CubeTensor {
    burn_cubecl::ops::numeric::empty_device_contiguous_dtype(like.client.clone(), like.device.clone(), shape, like.dtype)
}

/// Where a kernel finds the rows of a tensor it reads in place (its values over the last axis,
/// one apart): row `r` starts at `(r / tokens)·batch_stride + (r % tokens)·row_stride`. That
/// covers row-major tensors, the rows cubecl's CUDA runtime pads (see [`row_major`]: the
/// attention scores from burn's matmul, CvT-13's 192 channels), slices of the token axis (the
/// class token, the tokens behind it) and of the last axis, so none of them is copied first.
#[derive(CubeLaunch, CubeType)]
pub(super) struct Rows {
    tokens: usize,
    row_stride: usize,
    batch_stride: usize,
}

#[cube]
impl Rows {
    /// The index of `row`'s first value.
    pub fn start(&self, row: usize) -> usize {
        (row / self.tokens) * self.batch_stride + (row % self.tokens) * self.row_stride
    }
}

/// A tensor's [`Rows`] on the host: `[tokens, row_stride, batch_stride]`, an argument of each
/// launch that reads it ([`RowLayout::arg`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct RowLayout([usize; 3]);

impl RowLayout {
    /// The layout of a tensor with no rows to read (an argument never read).
    pub(super) const NONE: Self = Self([1, 0, 0]);

    pub(super) fn arg(self) -> RowsLaunch {
        let [tokens, row_stride, batch_stride] = self.0;
        RowsLaunch::new(tokens, row_stride, batch_stride)
    }
}

/// `t` as a kernel reads it through [`Rows`]: as it is where its layout has that form, else
/// copied row major; and the layout. (A storage-tiled tensor's strides order its tiles, not its
/// rows, so it is always laid back in rows.)
pub(super) fn rows_in_place(t: CubeTensor) -> (CubeTensor, RowLayout) {
    let layout = |t: &CubeTensor| rows_layout(t.meta.shape().as_slice(), &t.meta.strides()[..]).map(RowLayout);
    if !t.meta.is_tiled()
        && let Some(layout) = layout(&t)
    {
        return (t, layout);
    }
    let t = into_contiguous(t);
    // Row major fits `Rows` whatever the shape; only a tensor with no values has no layout,
    // and no row of it is read.
    let layout = layout(&t).unwrap_or(RowLayout::NONE);
    (t, layout)
}

/// The rows of a tensor of `shape` over its last axis, and that axis' length (a scalar is one
/// row of one value).
pub(super) fn rows_and_width(shape: &Shape) -> (usize, usize) {
    let width = shape.as_slice().last().copied().unwrap_or(1);
    (shape.num_elements() / width.max(1), width)
}

/// `[tokens, row_stride, batch_stride]` (see [`Rows`]) of a tensor of `shape` and `strides`
/// whose rows have that layout: the last axis one apart, the axes before the last two
/// collapsing onto the batch axis. Axes of size 1 say nothing of the layout and are passed
/// over; a tensor with no values has none. (Called on every launch: it allocates nothing.)
fn rows_layout(shape: &[usize], strides: &[usize]) -> Option<[usize; 3]> {
    let (&width, leading) = shape.split_last()?;
    if shape.contains(&0) || strides.len() != shape.len() || (width > 1 && strides.last() != Some(&1)) {
        return None;
    }
    // The leading axes that count, innermost first.
    let mut axes = leading.iter().copied().zip(strides[..leading.len()].iter().copied()).filter(|&(size, _)| size != 1).rev();
    let Some((tokens, row_stride)) = axes.next() else {
        return Some([1, width, width]);
    };
    let Some((batches, batch_stride)) = axes.next() else {
        return Some([tokens, row_stride, tokens * row_stride]);
    };
    let mut inner = (batches, batch_stride);
    for (size, stride) in axes {
        if stride != inner.0 * inner.1 {
            return None;
        }
        inner = (size, stride);
    }
    Some([tokens, row_stride, batch_stride])
}

/// How a kernel over `tensors` launches: the `address_type` they need and their element type.
pub(super) fn address_and_dtype(tensors: &[&CubeTensor]) -> (AddressType, ElemType) {
    let address = tensors.iter().map(|t| t.required_address_type()).max().unwrap_or_default();
    (address, dtype_to_storage_type(tensors[0].dtype))
}

/// The cubes of `SLOTS` rows × `LANES` threads that cover `rows`.
pub(super) fn row_cubes(like: &CubeTensor, rows: usize) -> (CubeCount, CubeDim) {
    let cube_dim = CubeDim::new_2d(LANES as u32, SLOTS as u32);
    (calculate_cube_count_elemwise(&like.client, rows.div_ceil(SLOTS) * SLOTS * LANES, cube_dim), cube_dim)
}

/// The cubes that give a thread to each of `count` values (kernels writing one value a thread).
pub(super) fn value_cubes(like: &CubeTensor, count: usize) -> (CubeCount, CubeDim) {
    let cube_dim = CubeDim::new(&like.client, count);
    (calculate_cube_count_elemwise(&like.client, count, cube_dim), cube_dim)
}

/// The sum of every lane's `value` in the row of `slot`, for every lane of it (see [`row_combine`]).
#[cube]
pub(super) fn row_sum<E: Float>(value: E, slot: usize, lane: usize) -> E {
    row_combine::<E>(value, slot, lane, false)
}

/// The largest of every lane's `value` in the row of `slot`, for every lane of it (see [`row_combine`]).
#[cube]
pub(super) fn row_max<E: Float>(value: E, slot: usize, lane: usize) -> E {
    row_combine::<E>(value, slot, lane, true)
}

/// Every lane's `value` in the row of `slot` added (or, with `maximum`, the largest kept), for
/// every lane of it: combined by halves in shared memory of its own (an order fixed by `LANES`).
/// Every thread of the cube must call it. The halvings are unrolled: cubecl 0.11 rejects them as
/// a runtime loop ("Expected operand type cube.ptr, but found cube.index" when compiling the kernel).
#[cube]
fn row_combine<E: Float>(value: E, slot: usize, lane: usize, #[comptime] maximum: bool) -> E {
    let mut values = Shared::<[E]>::new_slice(SLOTS * LANES);
    let base = slot * LANES;
    values[base + lane] = value;
    sync_cube();
    #[unroll]
    for step in 1..HALVINGS + 1 {
        let half = LANES >> step;
        if lane < half {
            let (mine, other) = (values[base + lane], values[base + lane + half]);
            let combined = if maximum { clamp_min(mine, other) } else { mine + other };
            values[base + lane] = combined;
        }
        sync_cube();
    }
    values[base]
}

#[cfg(test)]
mod tests {
    use super::rows_layout;

    #[test]
    fn rows_read_in_place() {
        // row major, of any rank
        assert_eq!(rows_layout(&[4, 5, 6], &[30, 6, 1]), Some([5, 6, 30]));
        assert_eq!(rows_layout(&[6], &[1]), Some([1, 6, 6]));
        assert_eq!(rows_layout(&[2, 3, 4, 5], &[60, 20, 5, 1]), Some([4, 5, 20]));
        // CUDA's padded rows: CvT-13's stage-2 tokens and its first stage's attention scores
        assert_eq!(rows_layout(&[16, 196, 192], &[50176, 256, 1]), Some([196, 256, 50176]));
        assert_eq!(rows_layout(&[16, 1, 3136, 784], &[2809856, 2809856, 896, 1]), Some([3136, 896, 2809856]));
        assert_eq!(rows_layout(&[2, 8, 197, 50], &[8 * 12608, 12608, 64, 1]), Some([197, 64, 12608]));
        // the class token, and the tokens behind it
        assert_eq!(rows_layout(&[16, 1, 384], &[75648, 384, 1]), Some([16, 75648, 16 * 75648]));
        assert_eq!(rows_layout(&[16, 196, 384], &[75648, 384, 1]), Some([196, 384, 75648]));
        // a slice of the last axis; a broadcast row
        assert_eq!(rows_layout(&[3, 4], &[10, 1]), Some([3, 10, 30]));
        assert_eq!(rows_layout(&[3, 4], &[0, 1]), Some([3, 0, 0]));
    }

    #[test]
    fn other_layouts_are_copied() {
        // transposed: the last axis not one apart
        assert_eq!(rows_layout(&[4, 6], &[1, 4]), None);
        // batches that do not collapse onto the axis after them
        assert_eq!(rows_layout(&[2, 3, 4, 5], &[100, 20, 5, 1]), None);
        // nothing to read
        assert_eq!(rows_layout(&[0, 5], &[5, 1]), None);
        assert_eq!(rows_layout(&[], &[]), None);
        // a single value per row reads one value whatever its axis' stride
        assert_eq!(rows_layout(&[3, 1], &[2, 7]), Some([3, 2, 6]));
    }
}
