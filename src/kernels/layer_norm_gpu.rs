//! Layer norm over the last axis on burn's GPU backend as two kernels of brasa's own: the forward
//! (the output and each row's mean and 1/σ) and the backward (the input's gradient, and each
//! block of rows' share of γ's and β's, which burn's reduction then adds up).
//!
//! Before (an autodiff step written with burn's ops, the textbook backward), burn's fusion made
//! a layer norm's forward two launches (the statistics' reductions, the second joined to the
//! normalising pass) and its backward about seven; here the forward is one and the backward two
//! (the kernel, and one reduction of the blocks' shares where there are several). Counted on
//! lavapipe (2026-12-05) for one layer norm `[16, 197, 384]`, its loss `Σ w·y` and the three
//! gradients' sums: 5 → 4 launches forward, 16 → 11 backward; CvT-13's training step 1770 →
//! 1650, ViT-B/16's 985 → 932.
//!
//! Rows are laid out as [`super::rows_gpu`] says: [`LANES`] threads a row, [`SLOTS`] rows a cube;
//! x and the gradient are read in place where their rows are (see [`Rows`]), the outputs written
//! row major.
//! The statistics are two passes over the row (the mean, then the centred squares), as flex's
//! kernel computes them. Every sum runs in an order fixed by the shapes.

use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, backend_extension};
use burn::tensor::Shape;
use burn_cubecl::CubeBackend;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::rows_gpu::{LANES, Rows, SLOTS, address_and_dtype, row_cubes, row_major, row_sum, rows_and_width, rows_in_place};

/// Layer norm's forward and backward over the last axis.
#[backend_extension(Cube: cfg(any(feature = "gpu-backend", feature = "cuda")), Fusion: cfg(any(feature = "gpu-backend", feature = "cuda")))]
pub trait LayerNormOps: Backend {
    /// `(x − mean)/√(var + ε)·γ + β` over the last axis of `x` `[.., width]`, and each row's mean
    /// and 1/√(var + ε) (`[rows]`).
    #[fusion(meta = |x, _gamma, _beta, _epsilon| statistics_outputs(x))]
    fn layer_norm_forward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        #[fusion(scalar)] epsilon: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// The gradients of x, γ and β for the output's `grad`, from the forward's `mean` and `rstd`.
    #[fusion(meta = |x, gamma, _mean, _rstd, _grad| (x.clone(), gamma.clone(), gamma.clone()))]
    fn layer_norm_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        rstd: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

/// The forward's outputs as fusion records them: the output shaped as `x`, two `[rows]` vectors.
fn statistics_outputs(x: &burn::backend::fusion::custom::TensorSpec) -> (burn::backend::fusion::custom::TensorSpec, burn::backend::fusion::custom::TensorSpec, burn::backend::fusion::custom::TensorSpec) {
    use burn::backend::fusion::custom::TensorSpec;
    let rows = TensorSpec::new(Shape::from([rows_and_width(&x.shape).0]), x.dtype);
    (x.clone(), rows.clone(), rows)
}

/// Cube of `SLOTS` rows × `LANES` threads: each row's mean and variance (two passes), then its
/// normalised, scaled and shifted values.
#[cube(launch_unchecked, address_type = "dynamic")]
fn layer_norm_kernel<E: Float>(
    x: &Tensor<E>,
    x_layout: Rows,
    gamma: &Tensor<E>,
    beta: &Tensor<E>,
    y: &mut Tensor<E>,
    mean: &mut Tensor<E>,
    rstd: &mut Tensor<E>,
    width: usize,
    epsilon: InputScalar,
    #[define(E)] _dtype: ElemType,
) {
    let lane = UNIT_POS_X as usize;
    let slot = UNIT_POS_Y as usize;
    let row = CUBE_POS * SLOTS + slot;
    let rows = mean.len();
    let live = row < rows;
    let from = x_layout.start(row);
    let base = row * width;

    let mut sum = E::from_int(0);
    if live {
        let mut i = lane;
        while i < width {
            sum += x[from + i];
            i += LANES;
        }
    }
    let row_mean = row_sum::<E>(sum, slot, lane) / E::cast_from(width);

    let mut squares = E::from_int(0);
    if live {
        let mut i = lane;
        while i < width {
            let centred = x[from + i] - row_mean;
            squares += centred * centred;
            i += LANES;
        }
    }
    let variance = row_sum::<E>(squares, slot, lane) / E::cast_from(width);
    let row_rstd = E::from_int(1) / E::sqrt(variance + epsilon.get::<E>());

    if live {
        let mut i = lane;
        while i < width {
            y[base + i] = (x[from + i] - row_mean) * row_rstd * gamma[i] + beta[i];
            i += LANES;
        }
        if lane == 0 {
            mean[row] = row_mean;
            rstd[row] = row_rstd;
        }
    }
}

/// Cube of `SLOTS` rows × `LANES` threads: each row's `Σ g·γ` and `Σ g·γ·x̂`, then its gradient
/// `rstd·(g·γ − Σ g·γ/width − x̂·Σ g·γ·x̂/width)`; and, `LANES` columns at a time, the cube's rows'
/// sums of `g·x̂` (γ's share) and `g` (β's) into row `CUBE_POS` of `partial` `[blocks, 2·width]`.
#[cube(launch_unchecked, address_type = "dynamic")]
fn layer_norm_grad_kernel<E: Float>(
    x: &Tensor<E>,
    x_layout: Rows,
    gamma: &Tensor<E>,
    mean: &Tensor<E>,
    rstd: &Tensor<E>,
    grad: &Tensor<E>,
    grad_layout: Rows,
    dx: &mut Tensor<E>,
    partial: &mut Tensor<E>,
    width: usize,
    #[define(E)] _dtype: ElemType,
) {
    let lane = UNIT_POS_X as usize;
    let slot = UNIT_POS_Y as usize;
    let block = CUBE_POS;
    // cubes past the last block (the cube count may round up) write no share
    let block_live = block < partial.len() / (2 * width);
    let row = block * SLOTS + slot;
    let rows = mean.len();
    let live = row < rows;
    let (from, g_from) = (x_layout.start(row), grad_layout.start(row));
    let base = row * width;
    let mut shares = Shared::<[E]>::new_slice(2 * SLOTS * LANES);
    let (mut row_mean, mut row_rstd) = (E::from_int(0), E::from_int(0));
    if live {
        row_mean = mean[row];
        row_rstd = rstd[row];
    }

    let (mut scaled, mut projected) = (E::from_int(0), E::from_int(0));
    if live {
        let mut i = lane;
        while i < width {
            let g = grad[g_from + i] * gamma[i];
            scaled += g;
            projected += g * (x[from + i] - row_mean) * row_rstd;
            i += LANES;
        }
    }
    let mean_scaled = row_sum::<E>(scaled, slot, lane) / E::cast_from(width);
    let mean_projected = row_sum::<E>(projected, slot, lane) / E::cast_from(width);

    let mut start = 0;
    while start < width {
        let i = start + lane;
        let (mut gamma_share, mut beta_share) = (E::from_int(0), E::from_int(0));
        if live && i < width {
            let g = grad[g_from + i];
            let normalized = (x[from + i] - row_mean) * row_rstd;
            dx[base + i] = (g * gamma[i] - mean_scaled - normalized * mean_projected) * row_rstd;
            gamma_share = g * normalized;
            beta_share = g;
        }
        shares[slot * LANES + lane] = gamma_share;
        shares[(SLOTS + slot) * LANES + lane] = beta_share;
        sync_cube();
        if slot == 0 && i < width && block_live {
            let (mut gamma_sum, mut beta_sum) = (shares[lane], shares[SLOTS * LANES + lane]);
            for s in 1..SLOTS {
                gamma_sum += shares[s * LANES + lane];
                beta_sum += shares[(SLOTS + s) * LANES + lane];
            }
            partial[block * 2 * width + i] = gamma_sum;
            partial[block * 2 * width + width + i] = beta_sum;
        }
        sync_cube();
        start += LANES;
    }
}

impl LayerNormOps for CubeBackend {
    fn layer_norm_forward(x: CubeTensor, gamma: CubeTensor, beta: CubeTensor, epsilon: f32) -> (CubeTensor, CubeTensor, CubeTensor) {
        let ((x, x_layout), gamma, beta) = (rows_in_place(x), into_contiguous(gamma), into_contiguous(beta));
        let shape = x.meta.shape().clone();
        let (rows, width) = rows_and_width(&shape);
        assert!(width > 0, "layer norm over an empty axis");
        assert_eq!(gamma.meta.num_elements(), width, "layer norm: γ's length is not the last axis");
        assert_eq!(beta.meta.num_elements(), width, "layer norm: β's length is not the last axis");
        let empty = |shape: Shape| row_major(&x, shape);
        let (y, mean, rstd) = (empty(shape.clone()), empty(Shape::from([rows])), empty(Shape::from([rows])));
        if rows == 0 {
            return (y, mean, rstd);
        }
        let client = x.client.clone();
        let (cube_count, cube_dim) = row_cubes(&x, rows);
        let (address, dtype) = address_and_dtype(&[&x, &gamma, &beta, &y]);
        // SAFETY: threads past the last row read and write nothing (they only take part in the
        // cube's barriers); the others read their row of `width` values where x's shape and
        // strides put it, and γ and β, and write their row of the output and statistics.
        unsafe {
            layer_norm_kernel::launch_unchecked(
                &client,
                cube_count,
                cube_dim,
                address,
                x.into_tensor_arg(),
                x_layout.arg(),
                gamma.into_tensor_arg(),
                beta.into_tensor_arg(),
                y.clone().into_tensor_arg(),
                mean.clone().into_tensor_arg(),
                rstd.clone().into_tensor_arg(),
                width,
                InputScalar::new(epsilon, dtype),
                dtype,
            );
        }
        (y, mean, rstd)
    }

    fn layer_norm_backward(x: CubeTensor, gamma: CubeTensor, mean: CubeTensor, rstd: CubeTensor, grad: CubeTensor) -> (CubeTensor, CubeTensor, CubeTensor) {
        let ((x, x_layout), gamma, (grad, grad_layout)) = (rows_in_place(x), into_contiguous(gamma), rows_in_place(grad));
        let (mean, rstd) = (into_contiguous(mean), into_contiguous(rstd));
        let shape = x.meta.shape().clone();
        let (rows, width) = rows_and_width(&shape);
        assert!(width > 0, "layer norm over an empty axis");
        assert_eq!(grad.meta.shape(), &shape, "layer norm: the gradient is not shaped as the input");
        assert_eq!((mean.meta.num_elements(), rstd.meta.num_elements()), (rows, rows), "layer norm: a statistic per row");
        let gamma_shape = gamma.meta.shape().clone();
        let blocks = rows.div_ceil(SLOTS).max(1);
        let empty = |shape: Shape| row_major(&x, shape);
        let (dx, partial) = (empty(shape), empty(Shape::from([blocks, 2 * width])));
        let client = x.client.clone();
        let (cube_count, cube_dim) = row_cubes(&x, rows.max(1));
        let (address, dtype) = address_and_dtype(&[&x, &grad, &dx, &partial]);
        // SAFETY: as the forward's; the cube's shares go to its own row of `partial`, one per cube.
        unsafe {
            layer_norm_grad_kernel::launch_unchecked(
                &client,
                cube_count,
                cube_dim,
                address,
                x.into_tensor_arg(),
                x_layout.arg(),
                gamma.into_tensor_arg(),
                mean.into_tensor_arg(),
                rstd.into_tensor_arg(),
                grad.into_tensor_arg(),
                grad_layout.arg(),
                dx.clone().into_tensor_arg(),
                partial.clone().into_tensor_arg(),
                width,
                dtype,
            );
        }
        let summed = if blocks == 1 { partial } else { CubeBackend::float_sum_dim(partial, 0) };
        let half = |start: usize| CubeBackend::float_reshape(CubeBackend::float_slice(summed.clone(), &[(0..1).into(), (start..start + width).into()]), gamma_shape.clone());
        (dx, half(0), half(width))
    }
}
