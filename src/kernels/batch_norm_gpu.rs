//! Batch norm over the last axis (channels last, statistics over every row) while training, on
//! burn's GPU backend: two kernels forward and two backward, where burn's ops took five and four
//! (the statistics' reductions, the normalising pass, the running statistics' update; the
//! gradients' two reductions and the input's gradient).
//!
//! The rows are cut into chunks of a fixed number of rows; a cube covers one chunk of [`LANES`]
//! neighbouring channels with [`SLOTS`] threads per channel (neighbouring threads read
//! neighbouring values of a row). The first kernel writes each chunk's statistics, the second
//! merges them all — every cube for itself, in an order fixed by the shapes — and then
//! normalises its own chunk; the cubes of the first chunk also write the channels' statistics.
//! Forward, a chunk's statistics are its mean and its sum of squared deviations from it (two
//! passes over the chunk) and the chunks merge as Chan et al.'s parallel variance does; backward,
//! they are the chunk's sums of `g` and `g·x̂`, and the merge adds them.
//!
//! The forward can put a prefix (CvT's class token, read in place from a slice of the tokens) in
//! front of each batch's output rows, which saves a concatenation after it; the backward reads an
//! output gradient whose batches lie apart (a slice of the token axis) in place.
//!
//! Counted on lavapipe (2026-12-05), CvT-13's training step: see [`super::cube`].

use burn::backend::fusion::custom::TensorSpec;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, backend_extension};
use burn::tensor::Shape;
use burn_cubecl::CubeBackend;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl::calculate_cube_count_elemwise;
use cubecl::prelude::*;

use super::rows_gpu::{LANES, RowLayout, Rows, SLOTS, address_and_dtype, row_major, rows_and_width, rows_in_place};

/// The most chunks the rows are cut into: each cube of the second kernel merges this many
/// statistics per channel, [`SLOTS`] threads sharing them.
const MAX_CHUNKS: usize = 128;
/// The fewest rows one thread of a chunk reads.
const MIN_ROWS_PER_THREAD: usize = 4;

/// Batch norm's training forward and its backward over the last axis.
#[backend_extension(Cube: cfg(any(feature = "gpu-backend", feature = "cuda")), Fusion: cfg(any(feature = "gpu-backend", feature = "cuda")))]
pub trait BatchNormOps: Backend {
    /// `(x − mean)/√(var + ε)·γ + β` with each channel's mean and biased variance over the rows
    /// of `x` `[.., channels]`; returns it, each channel's mean and 1/√(var + ε), and the running
    /// statistics moved by `momentum` towards the batch's (`running·(1 − momentum) + batch·momentum`).
    #[fusion(meta = |x, gamma, _beta, _running_mean, _running_var, _epsilon, _momentum| (x.clone(), gamma.clone(), gamma.clone(), gamma.clone(), gamma.clone()))]
    fn batch_norm_forward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        running_mean: FloatTensor<Self>,
        running_var: FloatTensor<Self>,
        #[fusion(scalar)] epsilon: f32,
        #[fusion(scalar)] momentum: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// [`BatchNormOps::batch_norm_forward`] of `x` `[batch, tokens, channels]` with `prefix`
    /// `[batch, n, channels]` (class tokens, left as they are) in front of the output's tokens:
    /// `[batch, n + tokens, channels]`, as a concatenation after it would be.
    #[fusion(meta = |x, prefix, gamma, _beta, _running_mean, _running_var, _epsilon, _momentum| (behind_spec(x, prefix), gamma.clone(), gamma.clone(), gamma.clone(), gamma.clone()))]
    fn batch_norm_forward_behind(
        x: FloatTensor<Self>,
        prefix: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        running_mean: FloatTensor<Self>,
        running_var: FloatTensor<Self>,
        #[fusion(scalar)] epsilon: f32,
        #[fusion(scalar)] momentum: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// The gradients of x, γ and β for the output's `grad`, from the forward's `mean` and `rstd`.
    #[fusion(meta = |x, gamma, _mean, _rstd, _grad| (x.clone(), gamma.clone(), gamma.clone()))]
    fn batch_norm_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        rstd: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

/// The output of [`BatchNormOps::batch_norm_forward_behind`] as fusion records it.
fn behind_spec(x: &TensorSpec, prefix: &TensorSpec) -> TensorSpec {
    TensorSpec::new(behind_shape(&x.shape, &prefix.shape), x.dtype)
}

/// `[batch, n + tokens, channels]` for tokens `[batch, tokens, channels]` behind `[batch, n, channels]`.
fn behind_shape(tokens: &Shape, prefix: &Shape) -> Shape {
    match (tokens.as_slice(), prefix.as_slice()) {
        ([batch, count, channels], [prefix_batch, n, prefix_channels]) if batch == prefix_batch && channels == prefix_channels => Shape::from([*batch, n + count, *channels]),
        _ => panic!("batch norm: a prefix {prefix:?} cannot go in front of tokens {tokens:?}"),
    }
}

/// How the rows are cut: rows per chunk (a multiple of [`SLOTS`]) and the chunks.
fn chunking(rows: usize) -> (usize, usize) {
    let per_thread = rows.div_ceil(SLOTS * MAX_CHUNKS).max(MIN_ROWS_PER_THREAD);
    let chunk_rows = per_thread * SLOTS;
    (chunk_rows, rows.div_ceil(chunk_rows).max(1))
}

/// Where a thread works: its channel, whether that is one, its slot, its cube's chunk and
/// whether the cube has one (the cube count may round up), and the chunk's first and end rows.
#[derive(CubeType)]
struct Place {
    channel: usize,
    live: bool,
    slot: usize,
    chunk: usize,
    start: usize,
    end: usize,
}

#[cube]
fn place(channels: usize, rows: usize, chunks: usize, chunk_rows: usize) -> Place {
    let lane = UNIT_POS_X as usize;
    let slot = UNIT_POS_Y as usize;
    let tiles = (channels + LANES - 1) / LANES;
    let tile = CUBE_POS % tiles;
    let chunk = CUBE_POS / tiles;
    let channel = tile * LANES + lane;
    let mut start = chunk * chunk_rows;
    if start > rows {
        start = rows;
    }
    let mut end = start + chunk_rows;
    if end > rows {
        end = rows;
    }
    Place { channel, live: channel < channels && chunk < chunks, slot, chunk, start, end }
}

/// The sum of every slot's `value` for the lane of `lane`, for every thread of that lane, added in
/// slot order. Every thread of the cube must call it.
#[cube]
fn column_sum<E: Float>(value: E, slot: usize) -> E {
    let lane = UNIT_POS_X as usize;
    let mut values = Shared::<[E]>::new_slice(SLOTS * LANES);
    values[slot * LANES + lane] = value;
    sync_cube();
    let mut total = values[lane];
    for s in 1..SLOTS {
        total += values[s * LANES + lane];
    }
    total
}

/// A chunk's two statistics of the thread's channel into `partial` `[chunks, 2, channels]`, by
/// the cube's first slot.
#[cube]
fn write_partial<E: Float>(partial: &mut Tensor<E>, at: &Place, channels: usize, first: E, second: E) {
    if at.live && at.slot == 0 {
        partial[at.chunk * 2 * channels + at.channel] = first;
        partial[(at.chunk * 2 + 1) * channels + at.channel] = second;
    }
}

/// The two statistics of `chunk` for `channel` from `partial` `[chunks, 2, channels]`.
#[cube]
fn read_partial<E: Float>(partial: &Tensor<E>, chunk: usize, channel: usize, channels: usize) -> (E, E) {
    (partial[chunk * 2 * channels + channel], partial[(chunk * 2 + 1) * channels + channel])
}

/// Where the forward writes row `row` of the input: behind `skip` rows of the prefix in each
/// batch of `tokens` rows (`skip` 0: where it is in the input).
#[derive(CubeLaunch, CubeType)]
struct Behind {
    tokens: usize,
    skip: usize,
}

#[cube]
impl Behind {
    /// The output index of `row`'s value of `channel`.
    fn at(&self, row: usize, channel: usize, channels: usize) -> usize {
        ((row / self.tokens) * (self.skip + self.tokens) + self.skip + row % self.tokens) * channels + channel
    }
}

/// Values' count, mean and sum of squared deviations from it.
#[derive(CubeType)]
struct Moments<E: Float> {
    count: E,
    mean: E,
    squares: E,
}

/// `count` more values with their `mean` and `squares` merged `into` (Chan et al.); none, nothing.
#[cube]
fn merge<E: Float>(into: &mut Moments<E>, count: E, mean: E, squares: E) {
    if count > E::from_int(0) {
        let total = into.count + count;
        let delta = mean - into.mean;
        into.mean += delta * count / total;
        into.squares += squares + delta * delta * into.count * count / total;
        into.count = total;
    }
}

/// Cube of [`SLOTS`] × [`LANES`] threads, one chunk of rows × `LANES` channels: the chunk's mean
/// and sum of squared deviations for each channel into `partial` `[chunks, 2, channels]`.
#[cube(launch_unchecked, address_type = "dynamic")]
fn statistics_kernel<E: Float>(x: &Tensor<E>, partial: &mut Tensor<E>, channels: usize, chunk_rows: usize, #[define(E)] _dtype: ElemType) {
    let chunks = partial.len() / (2 * channels);
    let at = place(channels, x.len() / channels, chunks, chunk_rows);
    let mut sum = E::from_int(0);
    if at.live {
        let mut row = at.start + at.slot;
        while row < at.end {
            sum += x[row * channels + at.channel];
            row += SLOTS;
        }
    }
    let mut count = at.end - at.start;
    if count == 0 {
        count = 1;
    }
    let mean = column_sum::<E>(sum, at.slot) / E::cast_from(count);
    let mut squares = E::from_int(0);
    if at.live {
        let mut row = at.start + at.slot;
        while row < at.end {
            let centred = x[row * channels + at.channel] - mean;
            squares += centred * centred;
            row += SLOTS;
        }
    }
    let squares = column_sum::<E>(squares, at.slot);
    write_partial::<E>(partial, &at, channels, mean, squares);
}

/// Cube as [`statistics_kernel`]'s: every chunk's statistics merged into the channels' mean and
/// variance (each slot merges every `SLOTS`-th chunk, then the slots merge in order), the cube's
/// chunk normalised into `y`; the first chunk's cubes write `mean`, `rstd` and the moved running
/// statistics.
#[cube(launch_unchecked, address_type = "dynamic")]
fn normalize_kernel<E: Float>(
    x: &Tensor<E>,
    gamma: &Tensor<E>,
    beta: &Tensor<E>,
    partial: &Tensor<E>,
    running_mean: &Tensor<E>,
    running_var: &Tensor<E>,
    y: &mut Tensor<E>,
    mean: &mut Tensor<E>,
    rstd: &mut Tensor<E>,
    new_running_mean: &mut Tensor<E>,
    new_running_var: &mut Tensor<E>,
    prefix: &Tensor<E>,
    prefix_layout: Rows,
    output: Behind,
    chunk_rows: usize,
    epsilon: InputScalar,
    momentum: InputScalar,
    #[define(E)] _dtype: ElemType,
) {
    let channels = mean.len();
    let rows = x.len() / channels;
    let chunks = partial.len() / (2 * channels);
    let at = place(channels, rows, chunks, chunk_rows);
    let lane = UNIT_POS_X as usize;

    // this slot's chunks merged in order, then the slots'
    let mut own = Moments::<E> { count: E::from_int(0), mean: E::from_int(0), squares: E::from_int(0) };
    if at.channel < channels {
        let mut chunk = at.slot;
        while chunk < chunks {
            let mut rows_in = rows - chunk * chunk_rows;
            if rows_in > chunk_rows {
                rows_in = chunk_rows;
            }
            let (chunk_mean, squares) = read_partial::<E>(partial, chunk, at.channel, channels);
            merge::<E>(&mut own, E::cast_from(rows_in), chunk_mean, squares);
            chunk += SLOTS;
        }
    }
    let mut shared = Shared::<[E]>::new_slice(3 * SLOTS * LANES);
    let base = 3 * (at.slot * LANES + lane);
    shared[base] = own.count;
    shared[base + 1] = own.mean;
    shared[base + 2] = own.squares;
    sync_cube();
    let mut all = Moments::<E> { count: E::from_int(0), mean: E::from_int(0), squares: E::from_int(0) };
    for s in 0..SLOTS {
        let from = 3 * (s * LANES + lane);
        merge::<E>(&mut all, shared[from], shared[from + 1], shared[from + 2]);
    }
    let channel_mean = all.mean;
    let variance = all.squares / E::cast_from(rows);
    let channel_rstd = E::from_int(1) / E::sqrt(variance + epsilon.get::<E>());

    if at.live {
        let c = at.channel;
        if at.chunk == 0 && at.slot == 0 {
            let moved = momentum.get::<E>();
            let kept = E::from_int(1) - moved;
            mean[c] = channel_mean;
            rstd[c] = channel_rstd;
            new_running_mean[c] = running_mean[c] * kept + channel_mean * moved;
            new_running_var[c] = running_var[c] * kept + variance * moved;
        }
        let (scale, shift) = (channel_rstd * gamma[c], beta[c]);
        let mut row = at.start + at.slot;
        while row < at.end {
            y[output.at(row, c, channels)] = (x[row * channels + c] - channel_mean) * scale + shift;
            row += SLOTS;
        }
        // the prefix's rows, by the first chunk's cubes
        if at.chunk == 0 && output.skip > 0 {
            let prefix_rows = rows / output.tokens * output.skip;
            let mut row = at.slot;
            while row < prefix_rows {
                let (b, s) = (row / output.skip, row % output.skip);
                y[(b * (output.skip + output.tokens) + s) * channels + c] = prefix[prefix_layout.start(row) + c];
                row += SLOTS;
            }
        }
    }
}

/// Cube as [`statistics_kernel`]'s: the chunk's sums of `g·x̂` and `g` for each channel into
/// `partial` `[chunks, 2, channels]`.
#[cube(launch_unchecked, address_type = "dynamic")]
fn gradient_sums_kernel<E: Float>(
    x: &Tensor<E>,
    mean: &Tensor<E>,
    rstd: &Tensor<E>,
    grad: &Tensor<E>,
    partial: &mut Tensor<E>,
    grad_layout: Rows,
    chunk_rows: usize,
    #[define(E)] _dtype: ElemType,
) {
    let channels = mean.len();
    let chunks = partial.len() / (2 * channels);
    let at = place(channels, x.len() / channels, chunks, chunk_rows);
    let (mut projected, mut plain) = (E::from_int(0), E::from_int(0));
    if at.live {
        let (channel_mean, channel_rstd) = (mean[at.channel], rstd[at.channel]);
        let mut row = at.start + at.slot;
        while row < at.end {
            let i = row * channels + at.channel;
            let g = grad[grad_layout.start(row) + at.channel];
            projected += g * (x[i] - channel_mean) * channel_rstd;
            plain += g;
            row += SLOTS;
        }
    }
    let projected = column_sum::<E>(projected, at.slot);
    let plain = column_sum::<E>(plain, at.slot);
    write_partial::<E>(partial, &at, channels, projected, plain);
}

/// Cube as [`statistics_kernel`]'s: every chunk's sums added into `dγ = Σ g·x̂` and `dβ = Σ g`
/// (each slot adds every `SLOTS`-th chunk, then the slots add in order), and the cube's chunk's
/// `dx = γ·rstd·(g − dβ/n − x̂·dγ/n)` for n rows; the first chunk's cubes write dγ and dβ.
#[cube(launch_unchecked, address_type = "dynamic")]
fn gradient_kernel<E: Float>(
    x: &Tensor<E>,
    gamma: &Tensor<E>,
    mean: &Tensor<E>,
    rstd: &Tensor<E>,
    grad: &Tensor<E>,
    partial: &Tensor<E>,
    dx: &mut Tensor<E>,
    d_gamma: &mut Tensor<E>,
    d_beta: &mut Tensor<E>,
    grad_layout: Rows,
    chunk_rows: usize,
    #[define(E)] _dtype: ElemType,
) {
    let channels = mean.len();
    let rows = x.len() / channels;
    let chunks = partial.len() / (2 * channels);
    let at = place(channels, rows, chunks, chunk_rows);
    let (mut projected, mut plain) = (E::from_int(0), E::from_int(0));
    if at.channel < channels {
        let mut chunk = at.slot;
        while chunk < chunks {
            let (chunk_projected, chunk_plain) = read_partial::<E>(partial, chunk, at.channel, channels);
            projected += chunk_projected;
            plain += chunk_plain;
            chunk += SLOTS;
        }
    }
    let projected = column_sum::<E>(projected, at.slot);
    let plain = column_sum::<E>(plain, at.slot);
    if at.live {
        let c = at.channel;
        if at.chunk == 0 && at.slot == 0 {
            d_gamma[c] = projected;
            d_beta[c] = plain;
        }
        let count = E::cast_from(rows);
        let (channel_mean, channel_rstd) = (mean[c], rstd[c]);
        let (mean_projected, mean_plain) = (projected / count, plain / count);
        let scale = gamma[c] * channel_rstd;
        let mut row = at.start + at.slot;
        while row < at.end {
            let i = row * channels + c;
            let normalized = (x[i] - channel_mean) * channel_rstd;
            dx[i] = (grad[grad_layout.start(row) + c] - mean_plain - normalized * mean_projected) * scale;
            row += SLOTS;
        }
    }
}

/// The cubes covering `chunks` chunks of every tile of [`LANES`] channels.
fn chunk_cubes(like: &CubeTensor, channels: usize, chunks: usize) -> (CubeCount, CubeDim) {
    let cube_dim = CubeDim::new_2d(LANES as u32, SLOTS as u32);
    (calculate_cube_count_elemwise(&like.client, channels.div_ceil(LANES) * chunks * SLOTS * LANES, cube_dim), cube_dim)
}

/// The training forward, with or without a prefix (see [`BatchNormOps`]).
#[allow(clippy::too_many_arguments)]
fn forward(
    x: CubeTensor,
    prefix: Option<CubeTensor>,
    gamma: CubeTensor,
    beta: CubeTensor,
    running_mean: CubeTensor,
    running_var: CubeTensor,
    epsilon: f32,
    momentum: f32,
) -> (CubeTensor, CubeTensor, CubeTensor, CubeTensor, CubeTensor) {
    let [x, gamma, beta, running_mean, running_var] = [x, gamma, beta, running_mean, running_var].map(into_contiguous);
    let shape = x.meta.shape().clone();
    let (rows, channels) = rows_and_width(&shape);
    assert!(rows > 0 && channels > 0, "batch norm over no values: {shape:?}");
    for (what, t) in [("γ", &gamma), ("β", &beta), ("the running mean", &running_mean), ("the running variance", &running_var)] {
        assert_eq!(t.meta.num_elements(), channels, "batch norm: {what} is not as long as the last axis");
    }
    // the output's shape and where the input's rows go in it; the prefix's rows and layout
    let (out_shape, tokens, skip) = match &prefix {
        Some(prefix) => (behind_shape(&shape, prefix.meta.shape()), shape[1], prefix.meta.shape()[1]),
        None => (shape.clone(), rows, 0),
    };
    let (prefix, prefix_layout) = match prefix {
        Some(prefix) => rows_in_place(prefix),
        None => (x.clone(), RowLayout::NONE),
    };
    let empty = |shape: Shape| row_major(&x, shape);
    let per_channel = || empty(Shape::from([channels]));
    let (y, mean, rstd, new_running_mean, new_running_var) = (empty(out_shape), per_channel(), per_channel(), per_channel(), per_channel());
    let (chunk_rows, chunks) = chunking(rows);
    let partial = empty(Shape::from([chunks, 2, channels]));
    let client = x.client.clone();
    let (cube_count, cube_dim) = chunk_cubes(&x, channels, chunks);
    let (address, dtype) = address_and_dtype(&[&x, &y, &partial]);
    // SAFETY: a thread reads and writes only its channel (when it is one) of its cube's chunk
    // of rows (and of the prefix's rows, in the first chunk's cubes), and the statistics of
    // its channel; cubes past the last chunk write nothing.
    unsafe {
        statistics_kernel::launch_unchecked(
            &client,
            cube_count.clone(),
            cube_dim,
            address,
            x.clone().into_tensor_arg(),
            partial.clone().into_tensor_arg(),
            channels,
            chunk_rows,
            dtype,
        );
        normalize_kernel::launch_unchecked(
            &client,
            cube_count,
            cube_dim,
            address,
            x.into_tensor_arg(),
            gamma.into_tensor_arg(),
            beta.into_tensor_arg(),
            partial.into_tensor_arg(),
            running_mean.into_tensor_arg(),
            running_var.into_tensor_arg(),
            y.clone().into_tensor_arg(),
            mean.clone().into_tensor_arg(),
            rstd.clone().into_tensor_arg(),
            new_running_mean.clone().into_tensor_arg(),
            new_running_var.clone().into_tensor_arg(),
            prefix.into_tensor_arg(),
            prefix_layout.arg(),
            BehindLaunch::new(tokens, skip),
            chunk_rows,
            InputScalar::new(epsilon, dtype),
            InputScalar::new(momentum, dtype),
            dtype,
        );
    }
    (y, mean, rstd, new_running_mean, new_running_var)
}

impl BatchNormOps for CubeBackend {
    fn batch_norm_forward(
        x: CubeTensor,
        gamma: CubeTensor,
        beta: CubeTensor,
        running_mean: CubeTensor,
        running_var: CubeTensor,
        epsilon: f32,
        momentum: f32,
    ) -> (CubeTensor, CubeTensor, CubeTensor, CubeTensor, CubeTensor) {
        forward(x, None, gamma, beta, running_mean, running_var, epsilon, momentum)
    }

    fn batch_norm_forward_behind(
        x: CubeTensor,
        prefix: CubeTensor,
        gamma: CubeTensor,
        beta: CubeTensor,
        running_mean: CubeTensor,
        running_var: CubeTensor,
        epsilon: f32,
        momentum: f32,
    ) -> (CubeTensor, CubeTensor, CubeTensor, CubeTensor, CubeTensor) {
        forward(x, Some(prefix), gamma, beta, running_mean, running_var, epsilon, momentum)
    }

    fn batch_norm_backward(x: CubeTensor, gamma: CubeTensor, mean: CubeTensor, rstd: CubeTensor, grad: CubeTensor) -> (CubeTensor, CubeTensor, CubeTensor) {
        let [x, gamma, mean, rstd] = [x, gamma, mean, rstd].map(into_contiguous);
        let shape = x.meta.shape().clone();
        let (rows, channels) = rows_and_width(&shape);
        assert!(rows > 0 && channels > 0, "batch norm over no values: {shape:?}");
        assert_eq!(grad.meta.shape(), &shape, "batch norm: the gradient is not shaped as the input");
        let (grad, grad_layout) = rows_in_place(grad);
        for (what, t) in [("γ", &gamma), ("the mean", &mean), ("1/σ", &rstd)] {
            assert_eq!(t.meta.num_elements(), channels, "batch norm: {what} is not as long as the last axis");
        }
        let empty = |shape: Shape| row_major(&x, shape);
        let (dx, d_gamma, d_beta) = (empty(shape), empty(gamma.meta.shape().clone()), empty(gamma.meta.shape().clone()));
        let (chunk_rows, chunks) = chunking(rows);
        let partial = empty(Shape::from([chunks, 2, channels]));
        let client = x.client.clone();
        let (cube_count, cube_dim) = chunk_cubes(&x, channels, chunks);
        let (address, dtype) = address_and_dtype(&[&x, &grad, &dx, &partial]);
        // SAFETY: as the forward's.
        unsafe {
            gradient_sums_kernel::launch_unchecked(
                &client,
                cube_count.clone(),
                cube_dim,
                address,
                x.clone().into_tensor_arg(),
                mean.clone().into_tensor_arg(),
                rstd.clone().into_tensor_arg(),
                grad.clone().into_tensor_arg(),
                partial.clone().into_tensor_arg(),
                grad_layout.arg(),
                chunk_rows,
                dtype,
            );
            gradient_kernel::launch_unchecked(
                &client,
                cube_count,
                cube_dim,
                address,
                x.into_tensor_arg(),
                gamma.into_tensor_arg(),
                mean.into_tensor_arg(),
                rstd.into_tensor_arg(),
                grad.into_tensor_arg(),
                partial.into_tensor_arg(),
                dx.clone().into_tensor_arg(),
                d_gamma.clone().into_tensor_arg(),
                d_beta.clone().into_tensor_arg(),
                grad_layout.arg(),
                chunk_rows,
                dtype,
            );
        }
        (dx, d_gamma, d_beta)
    }
}
