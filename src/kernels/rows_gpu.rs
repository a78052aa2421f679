//! What brasa's GPU kernels share: the launch settings every kernel needs, and the layout of
//! the row-wise ones (layer norm's, the softmax's) — [`LANES`] neighbouring threads per row, every
//! thread reading the row's values `LANES` apart (neighbouring threads, neighbouring values),
//! [`SLOTS`] rows per cube, and the threads' sums and maxima combined in shared memory by halves,
//! in an order fixed by `LANES`.

use burn::backend::cubecl::dtype_to_storage_type;
use burn::tensor::Shape;
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
