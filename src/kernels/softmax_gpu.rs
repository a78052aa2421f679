//! Attention's softmax (and [`super::softmax`] over the last axis, with a scale of 1) on burn's
//! GPU backend as two kernels of brasa's own: the probabilities `softmax(scale·s)` over the last
//! axis of the scores, and the scores' gradient `scale·P ⊙ (dP − rowsum(dP ⊙ P))` from the
//! probabilities' — each one launch, where burn's ops took three forward (the row maxima, the
//! exponentials' sums, the division) and two backward.
//!
//! The rows are laid out as layer norm's ([`super::rows_gpu`]): [`LANES`] neighbouring threads per
//! row, [`SLOTS`] rows per cube, the threads' maxima and sums combined in shared memory by
//! halves, in an order fixed by the shapes. The scores and gradients are read where their rows
//! lie ([`Rows`]: on CUDA, burn's matmul pads them), the results written row major.

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, backend_extension};
use burn_cubecl::CubeBackend;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::rows_gpu::{LANES, Rows, SLOTS, address_and_dtype, row_cubes, row_major, row_max, row_sum, rows_and_width, rows_in_place};

/// Softmax over the last axis, scaled, and its backward.
#[backend_extension(Cube: cfg(any(feature = "gpu-backend", feature = "cuda")), Fusion: cfg(any(feature = "gpu-backend", feature = "cuda")))]
pub trait SoftmaxOps: Backend {
    /// `softmax(scale·scores)` over the last axis.
    #[fusion(dtype = scores, shape = scores)]
    fn scaled_softmax(scores: FloatTensor<Self>, #[fusion(scalar)] scale: f32) -> FloatTensor<Self>;

    /// The gradient of the scores of [`SoftmaxOps::scaled_softmax`] from its output `probs` and
    /// their gradient `grad`: `scale·P ⊙ (dP − rowsum(dP ⊙ P))`.
    #[fusion(dtype = probs, shape = probs)]
    fn scaled_softmax_backward(probs: FloatTensor<Self>, grad: FloatTensor<Self>, #[fusion(scalar)] scale: f32) -> FloatTensor<Self>;
}

/// Cube of `SLOTS` rows × `LANES` threads: each row's maximum, its exponentials' sum, then the
/// probabilities (the scores read where [`Rows`] says, the probabilities written row major).
#[cube(launch_unchecked, address_type = "dynamic")]
fn softmax_kernel<E: Float>(scores: &Tensor<E>, layout: Rows, probs: &mut Tensor<E>, rows: usize, width: usize, scale: InputScalar, #[define(E)] _dtype: ElemType) {
    let lane = UNIT_POS_X as usize;
    let slot = UNIT_POS_Y as usize;
    let row = CUBE_POS * SLOTS + slot;
    let live = row < rows;
    let from = layout.start(row);
    let base = row * width;
    let scale = scale.get::<E>();

    let mut top = E::min_value();
    if live {
        let mut i = lane;
        while i < width {
            top = clamp_min(top, scores[from + i] * scale);
            i += LANES;
        }
    }
    let top = row_max::<E>(top, slot, lane);

    let mut sum = E::from_int(0);
    if live {
        let mut i = lane;
        while i < width {
            sum += E::exp(scores[from + i] * scale - top);
            i += LANES;
        }
    }
    let sum = row_sum::<E>(sum, slot, lane);

    if live {
        let mut i = lane;
        while i < width {
            probs[base + i] = E::exp(scores[from + i] * scale - top) / sum;
            i += LANES;
        }
    }
}

/// Cube of `SLOTS` rows × `LANES` threads: each row's `Σ dP ⊙ P`, then `scale·P ⊙ (dP − Σ)`
/// (P and dP read where their [`Rows`] say, the scores' gradient written row major).
#[cube(launch_unchecked, address_type = "dynamic")]
fn softmax_grad_kernel<E: Float>(
    probs: &Tensor<E>,
    probs_layout: Rows,
    grad: &Tensor<E>,
    grad_layout: Rows,
    d_scores: &mut Tensor<E>,
    rows: usize,
    width: usize,
    scale: InputScalar,
    #[define(E)] _dtype: ElemType,
) {
    let lane = UNIT_POS_X as usize;
    let slot = UNIT_POS_Y as usize;
    let row = CUBE_POS * SLOTS + slot;
    let live = row < rows;
    let (p, g) = (probs_layout.start(row), grad_layout.start(row));
    let base = row * width;

    let mut projected = E::from_int(0);
    if live {
        let mut i = lane;
        while i < width {
            projected += grad[g + i] * probs[p + i];
            i += LANES;
        }
    }
    let projected = row_sum::<E>(projected, slot, lane);

    if live {
        let scale = scale.get::<E>();
        let mut i = lane;
        while i < width {
            d_scores[base + i] = probs[p + i] * (grad[g + i] - projected) * scale;
            i += LANES;
        }
    }
}

impl SoftmaxOps for CubeBackend {
    fn scaled_softmax(scores: CubeTensor, scale: f32) -> CubeTensor {
        let (scores, layout) = rows_in_place(scores);
        let shape = scores.meta.shape().clone();
        let (rows, width) = rows_and_width(&shape);
        assert!(width > 0, "softmax over an empty axis");
        let probs = row_major(&scores, shape);
        if rows == 0 {
            return probs;
        }
        let (cube_count, cube_dim) = row_cubes(&scores, rows);
        let (address, dtype) = address_and_dtype(&[&scores, &probs]);
        let client = scores.client.clone();
        // SAFETY: threads past the last row read and write nothing (they only take part in the
        // cube's barriers); the others read their row of `width` values where the scores' shape
        // and strides put it, and write their row of the probabilities.
        unsafe {
            softmax_kernel::launch_unchecked(&client, cube_count, cube_dim, address, scores.into_tensor_arg(), layout.arg(), probs.clone().into_tensor_arg(), rows, width, InputScalar::new(scale, dtype), dtype);
        }
        probs
    }

    fn scaled_softmax_backward(probs: CubeTensor, grad: CubeTensor, scale: f32) -> CubeTensor {
        let ((probs, probs_layout), (grad, grad_layout)) = (rows_in_place(probs), rows_in_place(grad));
        let shape = probs.meta.shape().clone();
        assert_eq!(grad.meta.shape(), &shape, "softmax: the gradient is not shaped as the probabilities");
        let (rows, width) = rows_and_width(&shape);
        assert!(width > 0, "softmax over an empty axis");
        let d_scores = row_major(&probs, shape);
        if rows == 0 {
            return d_scores;
        }
        let (cube_count, cube_dim) = row_cubes(&probs, rows);
        let (address, dtype) = address_and_dtype(&[&probs, &grad, &d_scores]);
        let client = probs.client.clone();
        // SAFETY: as the forward's.
        unsafe {
            softmax_grad_kernel::launch_unchecked(
                &client,
                cube_count,
                cube_dim,
                address,
                probs.into_tensor_arg(),
                probs_layout.arg(),
                grad.into_tensor_arg(),
                grad_layout.arg(),
                d_scores.clone().into_tensor_arg(),
                rows,
                width,
                InputScalar::new(scale, dtype),
                dtype,
            );
        }
        d_scores
    }
}
