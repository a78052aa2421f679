//! CvT's depthwise convolutions on tokens ([`Geometry`]: `[batch, skip + height·width, channels]`,
//! channels last, no bias) as three kernels on burn's GPU backend: the forward, the input
//! gradient and the filter gradient, each reading the tokens where they lie, past the class
//! token in place.
//!
//! Through burn, a convolution of CvT's tokens on the GPU is the tokens cut from the class token
//! (a copy forward, zeros and a slice assignment backward), burn's convolution, its transpose for
//! the input gradient, and for the filter gradient a grouped convolution of a re-laid-out input
//! (the input copied with the batch folded into the channels). Here a convolution is a launch
//! forward and two backward, three where the filter gradient sums more than one block: counted on
//! lavapipe (2026-12-05), CvT-13's training step launches 1770 kernels instead of 1915.
//!
//! The forward and the input gradient give each thread one output value and sum the filter's
//! taps; neighbouring threads differ in the channel, so their reads coalesce. The filter gradient
//! sums over every output position of the batch: each group of [`CHANNELS`] threads of a cube
//! takes a tap and a block of [`ROWS_PER_CUBE`] positions, its [`LANES`] lanes interleaved over
//! the positions, and the lanes' sums are added in shared memory; the blocks' sums are then
//! added by burn's reduction. Every sum runs in an order fixed by the shapes.

use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, backend_extension};
use burn::tensor::Shape;
use burn_cubecl::CubeBackend;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::depthwise::Geometry;
use super::rows_gpu::{address_and_dtype, row_major, value_cubes};

/// Channels a cube of the filter gradient spans (neighbouring threads, coalesced reads).
const CHANNELS: usize = 32;
/// Threads per channel in a cube of the filter gradient, each summing every `LANES`-th position.
const LANES: usize = 8;
/// Output positions (of the whole batch) one cube of the filter gradient sums.
const ROWS_PER_CUBE: usize = 64 * LANES;

/// The depthwise convolution on tokens and its two gradients.
#[backend_extension(Cube: cfg(any(feature = "gpu-backend", feature = "cuda")), Fusion: cfg(any(feature = "gpu-backend", feature = "cuda")))]
pub trait DepthwiseOps: Backend {
    /// The convolved tokens `[batch, out_h·out_w, channels]` of `x` `[batch, skip + h·w,
    /// channels]` with `weight` `[channels, 1, kh, kw]`.
    #[fusion(dtype = x, shape = Shape::from([geometry.batch, geometry.output[0] * geometry.output[1], geometry.channels]))]
    fn depthwise_forward(x: FloatTensor<Self>, weight: FloatTensor<Self>, geometry: Geometry) -> FloatTensor<Self>;

    /// The gradient of the input tokens (zero on the skipped ones) for the output's `grad`.
    #[fusion(dtype = grad, shape = Shape::from([geometry.batch, geometry.skip + geometry.input[0] * geometry.input[1], geometry.channels]))]
    fn depthwise_input_grad(grad: FloatTensor<Self>, weight: FloatTensor<Self>, geometry: Geometry) -> FloatTensor<Self>;

    /// The gradient of the filters `[channels, 1, kh, kw]` for input `x` and the output's `grad`.
    #[fusion(dtype = grad, shape = Shape::from([geometry.channels, 1, geometry.kernel[0], geometry.kernel[1]]))]
    fn depthwise_weight_grad(x: FloatTensor<Self>, grad: FloatTensor<Self>, geometry: Geometry) -> FloatTensor<Self>;
}

/// A [`Geometry`] as the kernels read it.
#[derive(CubeLaunch, CubeType)]
struct GridArgs {
    channels: usize,
    skip: usize,
    in_h: usize,
    in_w: usize,
    out_h: usize,
    out_w: usize,
    kernel_h: usize,
    kernel_w: usize,
    stride_h: usize,
    stride_w: usize,
    pad_h: usize,
    pad_w: usize,
}

fn grid_args(g: &Geometry) -> GridArgsLaunch {
    GridArgsLaunch::new(g.channels, g.skip, g.input[0], g.input[1], g.output[0], g.output[1], g.kernel[0], g.kernel[1], g.stride[0], g.stride[1], g.padding[0], g.padding[1])
}

/// One thread per output value: the filter's taps over the input positions they fall on.
#[cube(launch_unchecked, address_type = "dynamic")]
fn depthwise_kernel<E: Float>(x: &Tensor<E>, weight: &Tensor<E>, output: &mut Tensor<E>, g: GridArgs, #[define(E)] _dtype: ElemType) {
    let pos = ABSOLUTE_POS;
    if pos >= output.len() {
        terminate!();
    }
    let c = pos % g.channels;
    let token = pos / g.channels;
    let out_tokens = g.out_h * g.out_w;
    let b = token / out_tokens;
    let o = token % out_tokens;
    let oy = o / g.out_w;
    let ox = o % g.out_w;
    let x_base = (b * (g.skip + g.in_h * g.in_w) + g.skip) * g.channels + c;
    let w_base = c * g.kernel_h * g.kernel_w;
    let mut sum = E::from_int(0);
    for ky in 0..g.kernel_h {
        // the row in the padded input
        let y = oy * g.stride_h + ky;
        if y >= g.pad_h && y < g.in_h + g.pad_h {
            let row = x_base + (y - g.pad_h) * g.in_w * g.channels;
            for kx in 0..g.kernel_w {
                let x_col = ox * g.stride_w + kx;
                if x_col >= g.pad_w && x_col < g.in_w + g.pad_w {
                    sum += weight[w_base + ky * g.kernel_w + kx] * x[row + (x_col - g.pad_w) * g.channels];
                }
            }
        }
    }
    output[pos] = sum;
}

/// One thread per input value: the output positions whose taps fall on it, each gradient times
/// the tap's weight; zero on the skipped tokens.
#[cube(launch_unchecked, address_type = "dynamic")]
fn depthwise_input_grad_kernel<E: Float>(grad: &Tensor<E>, weight: &Tensor<E>, dx: &mut Tensor<E>, g: GridArgs, #[define(E)] _dtype: ElemType) {
    let pos = ABSOLUTE_POS;
    if pos >= dx.len() {
        terminate!();
    }
    let c = pos % g.channels;
    let token = pos / g.channels;
    let in_tokens = g.skip + g.in_h * g.in_w;
    let b = token / in_tokens;
    let t = token % in_tokens;
    let mut sum = E::from_int(0);
    if t >= g.skip {
        let i = t - g.skip;
        // the position in the padded input
        let y = i / g.in_w + g.pad_h;
        let x_col = i % g.in_w + g.pad_w;
        let g_base = b * g.out_h * g.out_w * g.channels + c;
        let w_base = c * g.kernel_h * g.kernel_w;
        for ky in 0..g.kernel_h {
            if y >= ky && (y - ky) % g.stride_h == 0 && (y - ky) / g.stride_h < g.out_h {
                let row = g_base + (y - ky) / g.stride_h * g.out_w * g.channels;
                for kx in 0..g.kernel_w {
                    if x_col >= kx && (x_col - kx) % g.stride_w == 0 && (x_col - kx) / g.stride_w < g.out_w {
                        sum += weight[w_base + ky * g.kernel_w + kx] * grad[row + (x_col - kx) / g.stride_w * g.channels];
                    }
                }
            }
        }
    }
    dx[pos] = sum;
}

/// Cube `(channel block, tap, position block)`: each lane sums `grad · x` at the tap over every
/// `LANES`-th position of the block, the lanes' sums are added in shared memory, and the
/// block's sum goes to `partial[block, channel, tap]`.
#[cube(launch_unchecked, address_type = "dynamic")]
fn depthwise_weight_grad_kernel<E: Float>(x: &Tensor<E>, grad: &Tensor<E>, partial: &mut Tensor<E>, g: GridArgs, #[define(E)] _dtype: ElemType) {
    let lane_c = UNIT_POS_X as usize;
    let lane = UNIT_POS_Y as usize;
    let c = CUBE_POS_X as usize * CHANNELS + lane_c;
    let tap = CUBE_POS_Y as usize;
    let block = CUBE_POS_Z as usize;
    let taps = g.kernel_h * g.kernel_w;
    let ky = tap / g.kernel_w;
    let kx = tap % g.kernel_w;
    let out_tokens = g.out_h * g.out_w;
    let in_tokens = g.skip + g.in_h * g.in_w;
    let rows = grad.len() / g.channels;
    let start = block * ROWS_PER_CUBE;
    let end = clamp_max(start + ROWS_PER_CUBE, rows);
    let mut sum = E::from_int(0);
    if c < g.channels {
        let mut r = start + lane;
        while r < end {
            let b = r / out_tokens;
            let o = r % out_tokens;
            let y = o / g.out_w * g.stride_h + ky;
            let x_col = o % g.out_w * g.stride_w + kx;
            if y >= g.pad_h && y < g.in_h + g.pad_h && x_col >= g.pad_w && x_col < g.in_w + g.pad_w {
                let source = b * in_tokens + g.skip + (y - g.pad_h) * g.in_w + (x_col - g.pad_w);
                sum += grad[r * g.channels + c] * x[source * g.channels + c];
            }
            r += LANES;
        }
    }
    let mut sums = Shared::<[E]>::new_slice(CHANNELS * LANES);
    sums[lane * CHANNELS + lane_c] = sum;
    sync_cube();
    if lane == 0 && c < g.channels {
        let mut total = sums[lane_c];
        for l in 1..LANES {
            total += sums[l * CHANNELS + lane_c];
        }
        partial[(block * g.channels + c) * taps + tap] = total;
    }
}

/// A new tensor of `shape` on `like`'s device, and the cubes that give a thread to each of its values.
fn per_value_output(like: &CubeTensor, shape: Shape) -> (CubeTensor, CubeCount, CubeDim) {
    let output = row_major(like, shape);
    let (cube_count, cube_dim) = value_cubes(like, output.meta.num_elements());
    (output, cube_count, cube_dim)
}

impl DepthwiseOps for CubeBackend {
    fn depthwise_forward(x: CubeTensor, weight: CubeTensor, geometry: Geometry) -> CubeTensor {
        let (x, weight) = (into_contiguous(x), into_contiguous(weight));
        assert_eq!(x.meta.num_elements(), geometry.input_len(), "depthwise convolution: the input does not match {geometry:?}");
        let shape = Shape::from([geometry.batch, geometry.output[0] * geometry.output[1], geometry.channels]);
        let (output, cube_count, cube_dim) = per_value_output(&x, shape);
        let (address, dtype) = address_and_dtype(&[&x, &weight, &output]);
        let client = x.client.clone();
        // SAFETY: every thread past the output's end returns before reading; the others read
        // inside the input and filter, whose sizes the geometry was checked against.
        unsafe {
            depthwise_kernel::launch_unchecked(&client, cube_count, cube_dim, address, x.into_tensor_arg(), weight.into_tensor_arg(), output.clone().into_tensor_arg(), grid_args(&geometry), dtype);
        }
        output
    }

    fn depthwise_input_grad(grad: CubeTensor, weight: CubeTensor, geometry: Geometry) -> CubeTensor {
        let (grad, weight) = (into_contiguous(grad), into_contiguous(weight));
        assert_eq!(grad.meta.num_elements(), geometry.output_len(), "depthwise convolution: the gradient does not match {geometry:?}");
        let shape = Shape::from([geometry.batch, geometry.skip + geometry.input[0] * geometry.input[1], geometry.channels]);
        let (dx, cube_count, cube_dim) = per_value_output(&grad, shape);
        let (address, dtype) = address_and_dtype(&[&grad, &weight, &dx]);
        let client = grad.client.clone();
        // SAFETY: as the forward's, the gradient and filter read where the geometry puts them.
        unsafe {
            depthwise_input_grad_kernel::launch_unchecked(&client, cube_count, cube_dim, address, grad.into_tensor_arg(), weight.into_tensor_arg(), dx.clone().into_tensor_arg(), grid_args(&geometry), dtype);
        }
        dx
    }

    fn depthwise_weight_grad(x: CubeTensor, grad: CubeTensor, geometry: Geometry) -> CubeTensor {
        let (x, grad) = (into_contiguous(x), into_contiguous(grad));
        assert_eq!(x.meta.num_elements(), geometry.input_len(), "depthwise convolution: the input does not match {geometry:?}");
        assert_eq!(grad.meta.num_elements(), geometry.output_len(), "depthwise convolution: the gradient does not match {geometry:?}");
        let taps = geometry.kernel[0] * geometry.kernel[1];
        let rows = geometry.batch * geometry.output[0] * geometry.output[1];
        let blocks = rows.div_ceil(ROWS_PER_CUBE).max(1);
        let partial = row_major(&x, Shape::from([blocks, geometry.channels * taps]));
        let client = x.client.clone();
        let cube_dim = CubeDim::new_2d(CHANNELS as u32, LANES as u32);
        let cube_count = CubeCount::new_3d(geometry.channels.div_ceil(CHANNELS) as u32, taps as u32, blocks as u32);
        let (address, dtype) = address_and_dtype(&[&x, &grad, &partial]);
        // SAFETY: every thread reads and writes inside the tensors the geometry was checked against
        // (channels past the last only take part in the cube's barrier).
        unsafe {
            depthwise_weight_grad_kernel::launch_unchecked(&client, cube_count, cube_dim, address, x.into_tensor_arg(), grad.into_tensor_arg(), partial.clone().into_tensor_arg(), grid_args(&geometry), dtype);
        }
        let summed = if blocks == 1 { partial } else { CubeBackend::float_sum_dim(partial, 0) };
        CubeBackend::float_reshape(summed, Shape::from([geometry.channels, 1, geometry.kernel[0], geometry.kernel[1]]))
    }
}
