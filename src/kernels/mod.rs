//! Fused CPU kernels for the ops burn's flex backend runs on one thread, as a chain of
//! single-threaded primitives under autodiff, or with needless copies: GELU, softmax over the last
//! axis, layer norm, linear layers, the attention core, and CvT's depthwise convolution and batch
//! norm read straight from the token layout (channels last) — each one pass over its data, split
//! over rayon's threads, with its own backward.
//!
//! The functions here take and return ordinary `Tensor`s. On flex (with or without autodiff) and
//! f32 they run the fused kernels through a burn backend extension; on any other backend or dtype,
//! or with `BRASA_KERNELS=burn` in the environment, they call burn's own op — except on burn's GPU
//! backend ([`cube`]): there the batch norm over tokens is, while training, an autodiff step whose
//! forward (which also moves the running statistics) and backward are kernels of brasa's own
//! ([`batch_norm_gpu`]); attention's core is one whose softmax, its gradient and the heads'
//! layouts are ([`softmax_gpu`], [`heads_gpu`]); layer norm, softmax over the last axis and the
//! depthwise convolution on tokens are brasa's kernels too ([`layer_norm_gpu`], [`softmax_gpu`],
//! [`depthwise_gpu`]), with or without autodiff. The row-wise ones read their inputs where they
//! lie ([`rows_gpu`]): padded rows, slices, broadcasts. [`Pack`] writes many tensors into one
//! vector (the optimizer's gather), on the GPU with brasa's own kernel ([`pack`]). This module
//! must never hold model or training logic: it is ops only.

#[cfg(any(feature = "gpu-backend", feature = "cuda"))]
mod arrange_gpu;
pub mod attention;
mod autodiff;
pub mod batch_norm;
#[cfg(any(feature = "gpu-backend", feature = "cuda"))]
mod batch_norm_gpu;
#[cfg(any(feature = "gpu-backend", feature = "cuda"))]
mod cube;
pub mod depthwise;
#[cfg(any(feature = "gpu-backend", feature = "cuda"))]
mod depthwise_gpu;
mod flex;
pub mod gelu;
#[cfg(any(feature = "gpu-backend", feature = "cuda"))]
mod heads_gpu;
pub mod layer_norm;
#[cfg(any(feature = "gpu-backend", feature = "cuda"))]
mod layer_norm_gpu;
pub mod linear;
#[cfg(any(feature = "gpu-backend", feature = "cuda"))]
pub mod pack;
#[cfg(any(feature = "gpu-backend", feature = "cuda"))]
mod rows_gpu;
pub mod simd;
pub mod softmax;
#[cfg(any(feature = "gpu-backend", feature = "cuda"))]
mod softmax_gpu;
mod split;

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, DispatchDevice, backend_extension};
use burn::module::{Module, ModuleMapper, Param, RunningState};
use burn::nn::{BatchNorm, Linear, PaddingConfig2d};
use burn::tensor::ops::ConvOptions;
use burn::nn::conv::Conv2d;
use burn::tensor::{DType, Tensor};

/// The ops with fused kernels, as a burn backend extension: implemented for flex
/// ([`flex`]), autodiff over flex ([`autodiff`]), and — layer norm, attention, batch norm's
/// training forward and the depthwise convolution — burn's GPU backend with and without autodiff
/// ([`cube`]).
#[backend_extension(Flex, Autodiff, Cube: cfg(any(feature = "gpu-backend", feature = "cuda")))]
pub trait FusedOps: Backend {
    /// GELU, exact (erf) form.
    fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// Softmax over the last axis.
    fn fused_softmax(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// Layer norm over the last axis with a weight and a bias.
    fn fused_layer_norm(x: FloatTensor<Self>, gamma: FloatTensor<Self>, beta: FloatTensor<Self>, epsilon: f64) -> FloatTensor<Self>;
    /// softmax(q·kᵀ·scale)·v per head, q `[batch, queries, width]`, k and v
    /// `[batch, keys, width]`, heads side by side along the width.
    fn fused_attention(q: FloatTensor<Self>, k: FloatTensor<Self>, v: FloatTensor<Self>, heads: usize, scale: f64) -> FloatTensor<Self>;
    /// x·W + b over the last axis, W `[in, out]`.
    fn fused_linear(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self>;
    /// gelu(x)·W + b over the last axis, W `[in, out]`; the backward recomputes gelu(x) instead of
    /// keeping it.
    fn fused_gelu_linear(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self>;
    /// Depthwise 2-D convolution on tokens: x `[batch, in_h·in_w, channels]` →
    /// `[batch, out_h·out_w, channels]`, weights `[channels, 1, kh, kw]`.
    fn fused_depthwise_tokens(x: FloatTensor<Self>, weight: FloatTensor<Self>, geometry: depthwise::Geometry) -> FloatTensor<Self>;
    /// Batch norm over the last axis with the batch's own statistics: the output, and the running
    /// mean and variance moved by `momentum` towards the batch's mean and biased variance
    /// (`running·(1 − momentum) + batch·momentum`, as burn's `BatchNorm` moves them).
    fn fused_batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        running_mean: FloatTensor<Self>,
        running_var: FloatTensor<Self>,
        epsilon: f64,
        momentum: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
    /// [`FusedOps::fused_batch_norm_train`] of `x` `[batch, tokens, channels]` with its output
    /// behind `prefix` `[batch, n, channels]` along the tokens (the prefix left as it is): by
    /// default a concatenation after it.
    #[allow(clippy::too_many_arguments)]
    fn fused_batch_norm_train_behind(
        x: FloatTensor<Self>,
        prefix: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        running_mean: FloatTensor<Self>,
        running_var: FloatTensor<Self>,
        epsilon: f64,
        momentum: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (output, running_mean, running_var) = Self::fused_batch_norm_train(x, gamma, beta, running_mean, running_var, epsilon, momentum);
        (Self::float_cat(vec![prefix, output], 1), running_mean, running_var)
    }
    /// Batch norm over the last axis with given statistics.
    fn fused_batch_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self>;
}

/// Whether the fused kernels serve tensors like `x`: f32 on flex, unless `BRASA_KERNELS=burn`.
fn fused<const D: usize>(x: &Tensor<D>) -> bool {
    enabled() && x.dtype() == DType::F32 && is_flex(&x.device())
}

/// Whether brasa's ops are on (`BRASA_KERNELS=burn` turns them off, for comparisons).
fn enabled() -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var("BRASA_KERNELS").map(|v| v != "burn").unwrap_or(true))
}

/// Whether brasa's training batch norm, its kernels with their own backward, serves `x` on the
/// GPU: f32 under autodiff on burn's cubecl backend (see [`cube`]); without autodiff burn's batch
/// norm with given statistics copies nothing.
fn gpu_training<const D: usize>(x: &Tensor<D>) -> bool {
    #[cfg(any(feature = "gpu-backend", feature = "cuda"))]
    {
        let device = x.device();
        enabled() && x.dtype() == DType::F32 && device.is_autodiff() && matches!(device.inner().as_dispatch(), DispatchDevice::Cube(_))
    }
    #[cfg(not(any(feature = "gpu-backend", feature = "cuda")))]
    {
        let _ = x;
        false
    }
}

/// Whether brasa's GPU kernels (layer norm's, attention's softmax and the depthwise
/// convolution's) and its GPU linear layer serve `x`: f32 on burn's cubecl backend, with or
/// without autodiff.
fn gpu_kernels<const D: usize>(x: &Tensor<D>) -> bool {
    #[cfg(any(feature = "gpu-backend", feature = "cuda"))]
    {
        enabled() && x.dtype() == DType::F32 && matches!(x.device().inner().as_dispatch(), DispatchDevice::Cube(_))
    }
    #[cfg(not(any(feature = "gpu-backend", feature = "cuda")))]
    {
        let _ = x;
        false
    }
}

/// Whether `device` is flex's, with or without autodiff.
pub fn is_flex(device: &burn::tensor::Device) -> bool {
    matches!(device.clone().inner().as_dispatch(), DispatchDevice::Flex(_))
}

/// GELU (erf form), as `burn::tensor::activation::gelu`.
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if !fused(&x) {
        return burn::tensor::activation::gelu(x);
    }
    Tensor::from_dispatch(<Dispatch as FusedOps>::fused_gelu(x.into_dispatch()))
}

/// Softmax along `dim`, as `burn::tensor::activation::softmax`; fused when `dim` is the last axis
/// (on the GPU, brasa's kernels: one launch forward and one backward, where burn's ops take three
/// and two).
pub fn softmax<const D: usize>(x: Tensor<D>, dim: usize) -> Tensor<D> {
    if dim + 1 != D || !(fused(&x) || gpu_kernels(&x)) {
        return burn::tensor::activation::softmax(x, dim);
    }
    Tensor::from_dispatch(<Dispatch as FusedOps>::fused_softmax(x.into_dispatch()))
}

/// Multi-head attention's core without dropout: softmax(q·kᵀ·scale)·v for each of `heads` heads
/// laid side by side along the last axis of q `[batch, queries, width]` and k, v
/// `[batch, keys, width]`; returns `[batch, queries, width]` with the heads merged back.
pub fn attention(q: Tensor<3>, k: Tensor<3>, v: Tensor<3>, heads: usize, scale: f64) -> Tensor<3> {
    if fused(&q) || gpu_kernels(&q) {
        return Tensor::from_dispatch(<Dispatch as FusedOps>::fused_attention(q.into_dispatch(), k.into_dispatch(), v.into_dispatch(), heads, scale));
    }
    let probs = softmax(split_heads(q, heads).matmul(split_heads(k, heads).swap_dims(2, 3)).mul_scalar(scale), 3);
    merge_heads(probs.matmul(split_heads(v, heads)))
}

/// `[batch, tokens, heads·head_dim]` → `[batch, heads, tokens, head_dim]`.
pub fn split_heads(x: Tensor<3>, heads: usize) -> Tensor<4> {
    let [b, tokens, width] = x.dims();
    x.reshape([b, tokens, heads, width / heads]).swap_dims(1, 2)
}

/// `[batch, heads, tokens, head_dim]` → `[batch, tokens, heads·head_dim]`.
pub fn merge_heads(context: Tensor<4>) -> Tensor<3> {
    let [b, heads, tokens, head_dim] = context.dims();
    context.swap_dims(1, 2).reshape([b, tokens, heads * head_dim])
}

/// A `Linear` module applied to `input`, as `Linear::forward`: on flex direct `gemm` calls, on
/// the GPU a product burn's fusion adds the bias (and what follows) in (see [`cube`]).
pub fn linear<const D: usize>(layer: &Linear, input: Tensor<D>) -> Tensor<D> {
    match &layer.bias {
        Some(bias) if fused(&input) || gpu_kernels(&input) => Tensor::from_dispatch(<Dispatch as FusedOps>::fused_linear(
            input.into_dispatch(),
            layer.weight.val().into_dispatch(),
            bias.val().into_dispatch(),
        )),
        _ => layer.forward(input),
    }
}

/// A `Linear` module applied to GELU of `input`, as `layer.forward(gelu(input))`: a transformer's
/// MLP after its first product. Fused, the activation gelu(input) — the MLP's widest tensor — is
/// not kept for the backward, which recomputes it with the slope it needs anyway.
pub fn gelu_linear<const D: usize>(layer: &Linear, input: Tensor<D>) -> Tensor<D> {
    match &layer.bias {
        Some(bias) if fused(&input) => Tensor::from_dispatch(<Dispatch as FusedOps>::fused_gelu_linear(
            input.into_dispatch(),
            layer.weight.val().into_dispatch(),
            bias.val().into_dispatch(),
        )),
        _ => linear(layer, gelu(input)),
    }
}

/// The tokens to hand to several [`depthwise_tokens`] of the same input, and the `skip` to give
/// each: brasa's convolutions (flex's, the GPU's) read past the skipped tokens in place, burn's
/// takes them cut off, and they are cut here once for all (a launch forward and two in the
/// backward on a GPU).
pub fn depthwise_input(tokens: Tensor<3>, grid: [usize; 2], skip: usize) -> (Tensor<3>, usize) {
    if skip == 0 || fused(&tokens) || gpu_kernels(&tokens) { (tokens, skip) } else { (tokens.narrow(1, skip, grid[0] * grid[1]), 0) }
}

/// A depthwise `Conv2d` (a filter per channel) applied to the tokens after the first `skip` of
/// `tokens` `[batch, skip + height·width, channels]` (the skipped ones, class tokens, are not
/// part of the map), laid out on `grid` (height, width), as `Conv2d::forward` on the
/// channels-first map; returns the output tokens and their grid. brasa's own (flex's fused one,
/// the GPU's kernels) when the convolution has no bias, no dilation and the same padding on both
/// sides of each axis; any other goes through burn's.
pub fn depthwise_tokens(conv: &Conv2d, tokens: Tensor<3>, grid: [usize; 2], skip: usize) -> (Tensor<3>, [usize; 2]) {
    let [batch, count, channels] = tokens.dims();
    assert_eq!(count, skip + grid[0] * grid[1], "depthwise conv: {count} tokens are not {skip} and a {grid:?} grid");
    let [out_channels, per_group, kh, kw] = conv.weight.dims();
    let depthwise = conv.groups == channels && out_channels == channels && per_group == 1;
    let padding = match conv.padding {
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => Some([top, left]),
        PaddingConfig2d::Valid => Some([0, 0]),
        _ => None,
    };
    let geometry = padding.and_then(|padding| depthwise::Geometry::new(batch, channels, grid, [kh, kw], conv.stride, padding));
    match geometry {
        Some(geometry) if depthwise && conv.bias.is_none() && conv.dilation == [1, 1] && (fused(&tokens) || gpu_kernels(&tokens)) => {
            let geometry = geometry.skipping(skip);
            let out = <Dispatch as FusedOps>::fused_depthwise_tokens(tokens.into_dispatch(), conv.weight.val().into_dispatch(), geometry);
            (Tensor::from_dispatch(out), geometry.output)
        }
        _ => {
            // Channels-last memory seen channels-first, the layout burn's GPU convolutions compute in.
            let tokens = if skip == 0 { tokens } else { tokens.narrow(1, skip, grid[0] * grid[1]) };
            let map = tokens.reshape([batch, grid[0], grid[1], channels]).permute([0, 3, 1, 2]);
            let map = match padding {
                Some(padding) if depthwise => {
                    // A depthwise filter `[channels, 1, kh, kw]` seen with a stride of 1 on its size-1
                    // axis: burn's GPU convolution copies a weight whose input-channel axis has
                    // another stride, one launch per call, though the axis has a single element.
                    let weight = conv.weight.val().reshape([out_channels, kh, kw, 1]).permute([0, 3, 1, 2]);
                    let options = ConvOptions::new(conv.stride, padding, conv.dilation, conv.groups);
                    burn::tensor::module::conv2d(map, weight, conv.bias.as_ref().map(|bias| bias.val()), options)
                }
                _ => conv.forward(map),
            };
            let [_, out_channels, out_h, out_w] = map.dims();
            (map.permute([0, 2, 3, 1]).reshape([batch, out_h * out_w, out_channels]), [out_h, out_w])
        }
    }
}

/// A `BatchNorm` applied to `tokens` `[batch, tokens, channels]` (channels last), as
/// `BatchNorm::forward` on the channels-first layout: the batch's statistics, and an update of
/// the running ones, when training on an autodiff device; the running statistics otherwise.
///
/// Burn keeps each thread's running-statistics update apart until the next read on that thread
/// and then averages the threads' values; a training step may run on any thread of the pool
/// (`backend::on_pool`), so the update takes effect at once, on the thread that made it, and
/// the statistics never depend on which thread ran which step.
pub fn batch_norm_tokens(norm: &BatchNorm, tokens: Tensor<3>) -> Tensor<3> {
    let output = batch_norm_tokens_behind(norm, None, tokens);
    fold_running_statistics([norm]);
    output
}

/// [`batch_norm_tokens`] with `prefix` `[batch, n, channels]` (class tokens, not normalised) in
/// front of the output's tokens: `Tensor::cat(vec![prefix, batch_norm_tokens(norm, tokens)], 1)`,
/// which brasa's GPU kernels write in the same pass (and whose gradient they read in place).
///
/// brasa's kernels (flex's and the GPU's) replace the running statistics at once; burn's own
/// `BatchNorm` (other backends) leaves its update pending on this thread, and the caller folds
/// it in with [`fold_running_statistics`], on the same thread, before the step ends (a model
/// folds all of its norms' at the end of its forward pass).
pub fn batch_norm_tokens_behind(norm: &BatchNorm, prefix: Option<Tensor<3>>, tokens: Tensor<3>) -> Tensor<3> {
    let device = tokens.device();
    let training = device.is_autodiff() && norm.training.is_enabled();
    if training && (fused(&tokens) || gpu_training(&tokens)) {
        let running = |state: &RunningState<Tensor<1>>| state.value_sync().to_device(&device).into_dispatch();
        let (gamma, beta) = (norm.gamma.val().into_dispatch(), norm.beta.val().into_dispatch());
        let (running_mean, running_var) = (running(&norm.running_mean), running(&norm.running_var));
        let (output, running_mean, running_var) = match prefix {
            Some(prefix) => <Dispatch as FusedOps>::fused_batch_norm_train_behind(
                tokens.into_dispatch(),
                prefix.into_dispatch(),
                gamma,
                beta,
                running_mean,
                running_var,
                norm.epsilon,
                norm.momentum,
            ),
            None => <Dispatch as FusedOps>::fused_batch_norm_train(tokens.into_dispatch(), gamma, beta, running_mean, running_var, norm.epsilon, norm.momentum),
        };
        set_running(&norm.running_mean, Tensor::<1>::from_dispatch(running_mean).detach());
        set_running(&norm.running_var, Tensor::<1>::from_dispatch(running_var).detach());
        return Tensor::from_dispatch(output);
    }
    let output = if fused(&tokens) {
        Tensor::from_dispatch(<Dispatch as FusedOps>::fused_batch_norm(
            tokens.into_dispatch(),
            norm.gamma.val().into_dispatch(),
            norm.beta.val().into_dispatch(),
            norm.running_mean.value().to_device(&device).into_dispatch(),
            norm.running_var.value().to_device(&device).into_dispatch(),
            norm.epsilon,
        ))
    } else {
        norm.forward(tokens.swap_dims(1, 2)).swap_dims(1, 2)
    };
    match prefix {
        Some(prefix) => Tensor::cat(vec![prefix, output], 1),
        None => output,
    }
}

/// Replaces a running statistic's value at once. burn's `RunningState::update` keeps the value
/// pending for the thread until the next read, which then divides the sum of the threads'
/// pending values by their number: an operation per statistic per step (78 in a CvT-13 step)
/// dividing by one, as a step's statistics come from one thread. `Module::map` on a clone sets
/// the value the clones share.
fn set_running(state: &RunningState<Tensor<1>>, value: Tensor<1>) {
    struct Set(Option<Tensor<1>>);
    impl ModuleMapper for Set {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let value = self.0.take().expect("one running statistic per mapper");
            Param::initialized(param.id, Tensor::from_dispatch(value.into_dispatch()))
        }
    }
    let _ = state.clone().map(&mut Set(Some(value)));
}

/// Folds the running-statistics updates burn's `BatchNorm` left pending on this thread (in
/// [`batch_norm_tokens_behind`]) into each norm's statistics (nothing for a norm with none
/// pending).
pub fn fold_running_statistics<'a>(norms: impl IntoIterator<Item = &'a BatchNorm>) {
    for norm in norms {
        let _ = (norm.running_mean.value_sync(), norm.running_var.value_sync());
    }
}

/// A vector being filled with tensors at offsets (each row-major, whatever its layout). On burn's
/// GPU backend the tensors are written [`pack::PARTS`] to a kernel launch ([`pack`]); elsewhere
/// each is one slice assignment.
pub struct Pack {
    /// Always `Some` between calls (taken while a write replaces it).
    into: Option<Tensor<1>>,
    /// The tensors waiting for a launch, on burn's GPU backend (where `into` is the inner
    /// vector of one made on an autodiff device when `autodiff`).
    #[cfg(any(feature = "gpu-backend", feature = "cuda"))]
    pending: Option<Vec<(FloatTensor<Dispatch>, usize)>>,
    #[cfg(any(feature = "gpu-backend", feature = "cuda"))]
    autodiff: bool,
}

impl Pack {
    pub fn new(into: Tensor<1>) -> Self {
        #[cfg(any(feature = "gpu-backend", feature = "cuda"))]
        {
            let device = into.device();
            let on_autodiff = device.is_autodiff();
            let batched = pack_kernels(&into);
            // the extension has no autodiff implementation: the vector is filled as the inner tensor
            let autodiff = batched && on_autodiff;
            let into = if autodiff { into.inner() } else { into };
            Self { into: Some(into), pending: batched.then(Vec::new), autodiff }
        }
        #[cfg(not(any(feature = "gpu-backend", feature = "cuda")))]
        Self { into: Some(into) }
    }

    /// Writes `tensor`'s values (off any autodiff graph) from `offset` on.
    pub fn put<const D: usize>(&mut self, tensor: Tensor<D>, offset: usize) {
        #[cfg(any(feature = "gpu-backend", feature = "cuda"))]
        if let Some(pending) = &mut self.pending {
            let tensor = if tensor.device().is_autodiff() { tensor.inner() } else { tensor };
            pending.push((tensor.into_dispatch(), offset));
            if pending.len() == pack::PARTS {
                self.flush();
            }
            return;
        }
        let len = tensor.shape().num_elements();
        let into = self.into.take().expect("the vector");
        self.into = Some(into.slice_assign(offset..offset + len, tensor.reshape([len])));
    }

    /// The vector, every tensor written.
    #[cfg_attr(not(any(feature = "gpu-backend", feature = "cuda")), allow(unused_mut))]
    pub fn finish(mut self) -> Tensor<1> {
        #[cfg(any(feature = "gpu-backend", feature = "cuda"))]
        {
            self.flush();
            if self.autodiff {
                return Tensor::from_inner(self.into.expect("the vector"));
            }
        }
        self.into.expect("the vector")
    }

    #[cfg(any(feature = "gpu-backend", feature = "cuda"))]
    fn flush(&mut self) {
        use pack::PackOps;
        let Some(pending) = self.pending.as_mut().filter(|p| !p.is_empty()) else { return };
        let count = pending.len();
        let mut offsets = [0; pack::PARTS];
        for (slot, (_, offset)) in offsets.iter_mut().zip(pending.iter()) {
            *slot = *offset;
        }
        // the unused slots name the first part again (not read)
        let first = pending[0].0.clone();
        let mut parts = pending.drain(..).map(|(part, _)| part).chain(std::iter::repeat(first));
        let mut next = || parts.next().expect("parts");
        let into = self.into.take().expect("the vector");
        let packed = <Dispatch as PackOps>::pack(into.into_dispatch(), next(), next(), next(), next(), next(), next(), next(), next(), offsets, count);
        self.into = Some(Tensor::from_dispatch(packed));
    }
}

/// Whether [`pack`]'s ops serve `vector`: f32 on burn's GPU backend (with or without autodiff),
/// unless `BRASA_KERNELS=burn`.
#[cfg(any(feature = "gpu-backend", feature = "cuda"))]
fn pack_kernels(vector: &Tensor<1>) -> bool {
    enabled() && vector.dtype() == DType::F32 && matches!(vector.device().inner().as_dispatch(), DispatchDevice::Cube(_))
}

/// Views of `vector`'s values (row-major, off any autodiff graph): for each part, its shape's
/// number of values from its offset on, sharing the vector's memory. On burn's GPU backend
/// [`pack::PARTS`] views are one recorded operation ([`pack::PackOps::views`]); elsewhere each is
/// a slice and a reshape. The inverse of [`Pack`].
pub fn views(vector: &Tensor<1>, parts: &[(usize, &[usize])]) -> Vec<FloatTensor<Dispatch>> {
    use burn::backend::ops::FloatTensorOps;
    use burn::tensor::{Shape, Slice};
    let vector = if vector.device().is_autodiff() { vector.clone().inner() } else { vector.clone() };
    #[cfg(any(feature = "gpu-backend", feature = "cuda"))]
    if pack_kernels(&vector) {
        use pack::{PARTS, PackOps};
        let whole = Shape::from([vector.shape().num_elements()]);
        let vector = vector.into_dispatch();
        let mut views = Vec::with_capacity(parts.len());
        for chunk in parts.chunks(PARTS) {
            // the unused outputs view the whole vector (and are dropped): a view whose ends are
            // not aligned to the device's memory alignment would be a copy (burn's slice)
            let mut offsets = [0; PARTS];
            let mut shapes: [Shape; PARTS] = std::array::from_fn(|_| whole.clone());
            for (i, (offset, shape)) in chunk.iter().enumerate() {
                offsets[i] = *offset;
                shapes[i] = Shape::from(shape.to_vec());
            }
            let (v0, v1, v2, v3, v4, v5, v6, v7) = <Dispatch as PackOps>::views(vector.clone(), offsets, shapes);
            views.extend([v0, v1, v2, v3, v4, v5, v6, v7].into_iter().take(chunk.len()));
        }
        return views;
    }
    let vector = vector.into_dispatch();
    parts
        .iter()
        .map(|(offset, shape)| {
            let len = shape.iter().product::<usize>();
            let part = Dispatch::float_slice(vector.clone(), &[Slice::from(*offset..offset + len)]);
            Dispatch::float_reshape(part, Shape::from(shape.to_vec()))
        })
        .collect()
}

/// Layer norm over the last axis, as `burn::tensor::module::layer_norm`.
pub fn layer_norm<const D: usize>(x: Tensor<D>, gamma: Tensor<1>, beta: Option<Tensor<1>>, epsilon: f64) -> Tensor<D> {
    match beta {
        Some(beta) if fused(&x) || gpu_kernels(&x) => Tensor::from_dispatch(<Dispatch as FusedOps>::fused_layer_norm(
            x.into_dispatch(),
            gamma.into_dispatch(),
            beta.into_dispatch(),
            epsilon,
        )),
        beta => burn::tensor::module::layer_norm(x, gamma, beta, epsilon),
    }
}

#[cfg(test)]
mod tests {
    //! Each fused op against burn's own on flex, forward and gradients, through the `Tensor` API
    //! the models use (so the extension's dispatch and the autodiff steps are covered too).
    use burn::tensor::{Device, Distribution, Tensor};

    use super::*;

    fn device() -> Device {
        Device::flex().autodiff()
    }

    fn assert_close<const D: usize>(got: Tensor<D>, want: Tensor<D>, tolerance: f32, what: &str) {
        assert_eq!(got.dims(), want.dims(), "{what}: shapes");
        let got = got.into_data().try_to_vec::<f32>().unwrap();
        let want = want.into_data().try_to_vec::<f32>().unwrap();
        let worst = got.iter().zip(&want).map(|(g, w)| (g - w).abs() / (1.0 + w.abs())).fold(0.0f32, f32::max);
        assert!(worst <= tolerance, "{what}: worst relative gap {worst:e}");
    }

    /// A [2, 3, 40, 24] input seen through a transpose (not contiguous), tracked for gradients.
    fn input(seed: u64) -> Tensor<4> {
        let device = device();
        device.seed(seed);
        Tensor::<4>::random([2, 3, 24, 40], Distribution::Normal(0.0, 2.0), &device).swap_dims(2, 3).require_grad()
    }

    /// Two independent leaves with the same values (drawn once: tests run in parallel and share
    /// the device's random state, so drawing twice from one seed can give different tensors).
    fn twins<const D: usize>(x: Tensor<D>) -> (Tensor<D>, Tensor<D>) {
        (x.clone(), x.detach().require_grad())
    }

    /// Gradients of Σ w·f(x) with respect to x for ours and theirs, one random w for both.
    fn gradients(a: &Tensor<4>, ours: Tensor<4>, b: &Tensor<4>, theirs: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let weights = Tensor::<4>::random(ours.dims(), Distribution::Uniform(-1.0, 1.0), &ours.device());
        let grad = |x: &Tensor<4>, y: Tensor<4>| x.grad(&(y * weights.clone()).sum().backward()).expect("x has a gradient");
        (grad(a, ours), grad(b, theirs))
    }

    #[test]
    fn gelu_matches_burns() {
        let (a, b) = twins(input(1));
        let (ours, theirs) = (gelu(a.clone()), burn::tensor::activation::gelu(b.clone()));
        assert_close(ours.clone(), theirs.clone(), 1e-6, "gelu");
        let (ours, theirs) = gradients(&a, ours, &b, theirs);
        assert_close(ours, theirs, 1e-5, "gelu gradient");
    }

    #[test]
    fn softmax_matches_burns_on_the_last_axis_and_defers_on_others() {
        let (a, b) = twins(input(2));
        let (ours, theirs) = (softmax(a.clone(), 3), burn::tensor::activation::softmax(b.clone(), 3));
        assert_close(ours.clone(), theirs.clone(), 1e-6, "softmax");
        let (ours, theirs) = gradients(&a, ours, &b, theirs);
        assert_close(ours, theirs, 1e-5, "softmax gradient");
        let (ours, theirs) = (softmax(a.clone(), 1), burn::tensor::activation::softmax(b.clone(), 1));
        assert_close(ours, theirs, 0.0, "softmax over an inner axis");
    }

    #[test]
    fn layer_norm_matches_burns_with_all_three_gradients() {
        let device = device();
        let (a, b) = twins(input(3));
        let gamma = Tensor::<1>::random([24], Distribution::Normal(1.0, 0.3), &device).require_grad();
        let beta = Tensor::<1>::random([24], Distribution::Normal(0.0, 0.3), &device).require_grad();
        let (gamma_b, beta_b) = (gamma.clone().detach().require_grad(), beta.clone().detach().require_grad());
        let ours = layer_norm(a.clone(), gamma.clone(), Some(beta.clone()), 1e-5);
        let theirs = burn::tensor::module::layer_norm(b.clone(), gamma_b.clone(), Some(beta_b.clone()), 1e-5);
        assert_close(ours.clone(), theirs.clone(), 2e-6, "layer norm");
        let w = Tensor::<4>::random(ours.dims(), Distribution::Uniform(-1.0, 1.0), &device);
        let ours_grads = (ours * w.clone()).sum().backward();
        let theirs_grads = (theirs * w).sum().backward();
        assert_close(a.grad(&ours_grads).unwrap(), b.grad(&theirs_grads).unwrap(), 1e-4, "layer norm: x gradient");
        assert_close(gamma.grad(&ours_grads).unwrap(), gamma_b.grad(&theirs_grads).unwrap(), 1e-4, "layer norm: γ gradient");
        assert_close(beta.grad(&ours_grads).unwrap(), beta_b.grad(&theirs_grads).unwrap(), 1e-5, "layer norm: β gradient");
    }

    /// Tokens `[batch, height·width, channels]` → the channels-first map burn's modules take.
    fn to_map(tokens: Tensor<3>, grid: [usize; 2]) -> Tensor<4> {
        let [b, _, c] = tokens.dims();
        tokens.swap_dims(1, 2).reshape([b, c, grid[0], grid[1]])
    }

    #[test]
    fn depthwise_convolution_on_tokens_matches_burns_on_the_map_with_both_gradients() {
        use burn::nn::PaddingConfig2d;
        use burn::nn::conv::Conv2dConfig;
        let device = device();
        for (stride, padding, skip) in [(1, 1, 0), (2, 1, 0), (2, 0, 0), (2, 1, 1)] {
            let grid = [11, 9];
            let x = Tensor::<3>::random([2, skip + 99, 5], Distribution::Normal(0.0, 1.0), &device).require_grad();
            let conv = Conv2dConfig::new([5, 5], [3, 3])
                .with_groups(5)
                .with_bias(false)
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(padding, padding, padding, padding))
                .init(&device);
            let x_b = x.clone().detach().require_grad();
            let (ours, ours_grid) = depthwise_tokens(&conv, x.clone(), grid, skip);
            let theirs = conv.forward(to_map(x_b.clone().narrow(1, skip, 99), grid));
            let [_, _, out_h, out_w] = theirs.dims();
            assert_eq!(ours_grid, [out_h, out_w], "depthwise conv: output grid");
            assert_close(to_map(ours.clone(), ours_grid), theirs.clone(), 1e-6, "depthwise conv");
            let w = Tensor::<4>::random(theirs.dims(), Distribution::Uniform(-1.0, 1.0), &device);
            let ours_grads = (to_map(ours, ours_grid) * w.clone()).sum().backward();
            let theirs_grads = (theirs * w).sum().backward();
            assert_close(x.grad(&ours_grads).unwrap(), x_b.grad(&theirs_grads).unwrap(), 1e-5, "depthwise conv: x gradient");
            let weight = conv.weight.val();
            assert_close(weight.grad(&ours_grads).unwrap(), weight.grad(&theirs_grads).unwrap(), 1e-5, "depthwise conv: weight gradient");
        }
    }

    #[test]
    fn set_running_replaces_the_value_every_clone_reads_at_once() {
        let device = device();
        let state = RunningState::new(Tensor::<1>::zeros([3], &device));
        let clone = state.clone();
        set_running(&state, Tensor::<1>::from_floats([1.0, 2.0, 3.0], &device));
        // read on another thread without a sync: nothing was left pending on this one
        let read = std::thread::scope(|scope| scope.spawn(|| clone.value()).join().unwrap());
        assert_eq!(read.into_data().try_to_vec::<f32>().unwrap(), [1.0, 2.0, 3.0]);
        assert_eq!(state.value_sync().into_data().try_to_vec::<f32>().unwrap(), [1.0, 2.0, 3.0]);
        set_running(&clone, Tensor::<1>::from_floats([4.0, 5.0, 6.0], &device));
        assert_eq!(state.value().into_data().try_to_vec::<f32>().unwrap(), [4.0, 5.0, 6.0], "the last value, not an average");
    }

    #[test]
    fn batch_norm_running_statistics_do_not_depend_on_the_thread_of_each_step() {
        use burn::nn::BatchNormConfig;
        let device = device();
        let batches: Vec<Tensor<3>> = (0..4).map(|_| Tensor::<3>::random([2, 9, 5], Distribution::Normal(0.5, 2.0), &device)).collect();
        let one_thread = BatchNormConfig::new(5).init(&device);
        for x in &batches {
            let _ = batch_norm_tokens(&one_thread, x.clone());
        }
        // each step on another thread, as steps on the pool may be
        let many_threads = BatchNormConfig::new(5).init(&device);
        for x in &batches {
            std::thread::scope(|scope| {
                scope.spawn(|| batch_norm_tokens(&many_threads, x.clone()));
            });
        }
        for (name, a, b) in [("mean", &one_thread.running_mean, &many_threads.running_mean), ("variance", &one_thread.running_var, &many_threads.running_var)] {
            assert_eq!(a.value().into_data(), b.value().into_data(), "running {name}: one thread against a thread per step");
        }
        let initial = BatchNormConfig::new(5).init(&device);
        assert_ne!(one_thread.running_mean.value().into_data(), initial.running_mean.value().into_data(), "the steps updated the statistics");
    }

    #[test]
    fn batch_norm_on_tokens_matches_burns_on_channels_first_in_training_and_inference() {
        use burn::module::Module;
        use burn::nn::BatchNormConfig;
        let device = device();
        let x = Tensor::<3>::random([3, 50, 7], Distribution::Normal(0.5, 2.0), &device).require_grad();
        let x_b = x.clone().detach().require_grad();
        let gamma = Tensor::<1>::random([7], Distribution::Normal(1.0, 0.3), &device);
        let init = || {
            let mut norm = BatchNormConfig::new(7).init(&device);
            norm.gamma = burn::module::Param::from_tensor(gamma.clone());
            norm
        };
        let (ours_norm, theirs_norm) = (init(), init());
        let ours = batch_norm_tokens(&ours_norm, x.clone());
        let theirs = theirs_norm.forward(x_b.clone().swap_dims(1, 2)).swap_dims(1, 2);
        assert_close(ours.clone(), theirs.clone(), 1e-5, "batch norm (training)");
        let w = Tensor::<3>::random(ours.dims(), Distribution::Uniform(-1.0, 1.0), &device);
        let ours_grads = (ours * w.clone()).sum().backward();
        let theirs_grads = (theirs * w).sum().backward();
        assert_close(x.grad(&ours_grads).unwrap(), x_b.grad(&theirs_grads).unwrap(), 1e-4, "batch norm: x gradient");
        for (name, a, b) in [("γ", &ours_norm.gamma, &theirs_norm.gamma), ("β", &ours_norm.beta, &theirs_norm.beta)] {
            assert_close(a.val().grad(&ours_grads).unwrap(), b.val().grad(&theirs_grads).unwrap(), 1e-4, &format!("batch norm: {name} gradient"));
        }
        // (burn's own update is read back on its thread; ours is folded in already)
        assert_close(ours_norm.running_mean.value(), theirs_norm.running_mean.value_sync(), 1e-6, "batch norm: running mean");
        assert_close(ours_norm.running_var.value(), theirs_norm.running_var.value_sync(), 1e-6, "batch norm: running variance");
        // Inference: the running statistics, with and without autodiff.
        let (ours_norm, theirs_norm) = (ours_norm.valid(), theirs_norm.valid());
        let x = x.detach();
        let ours = batch_norm_tokens(&ours_norm, x.clone());
        let theirs = theirs_norm.forward(x.swap_dims(1, 2)).swap_dims(1, 2);
        assert_close(ours, theirs, 1e-5, "batch norm (inference)");
    }

    #[test]
    fn batch_norm_with_fixed_statistics_still_passes_gradients() {
        use burn::nn::BatchNormConfig;
        let device = device();
        let mut norm = BatchNormConfig::new(4).init(&device);
        norm.training = burn::module::Param::from_bool(false);
        let x = Tensor::<3>::random([2, 6, 4], Distribution::Normal(0.0, 1.0), &device).require_grad();
        let x_b = x.clone().detach().require_grad();
        let ours = batch_norm_tokens(&norm, x.clone());
        let theirs = norm.forward(x_b.clone().swap_dims(1, 2)).swap_dims(1, 2);
        assert_close(ours.clone(), theirs.clone(), 1e-6, "batch norm (fixed statistics)");
        let w = Tensor::<3>::random(ours.dims(), Distribution::Uniform(-1.0, 1.0), &device);
        let ours_grads = (ours * w.clone()).sum().backward();
        let theirs_grads = (theirs * w).sum().backward();
        assert_close(x.grad(&ours_grads).unwrap(), x_b.grad(&theirs_grads).unwrap(), 1e-5, "batch norm (fixed statistics): x gradient");
        let gamma = norm.gamma.val();
        assert_close(gamma.grad(&ours_grads).unwrap(), gamma.grad(&theirs_grads).unwrap(), 1e-5, "batch norm (fixed statistics): γ gradient");
    }

    #[test]
    fn linear_matches_burns_with_all_three_gradients() {
        use burn::nn::LinearConfig;
        let device = device();
        let layer = LinearConfig::new(24, 7).init(&device);
        let (a, b) = twins(input(4));
        let ours = linear(&layer, a.clone());
        let theirs = layer.forward(b.clone());
        assert_close(ours.clone(), theirs.clone(), 1e-5, "linear");
        let w = Tensor::<4>::random(ours.dims(), Distribution::Uniform(-1.0, 1.0), &device);
        let ours_grads = (ours * w.clone()).sum().backward();
        let theirs_grads = (theirs * w).sum().backward();
        assert_close(a.grad(&ours_grads).unwrap(), b.grad(&theirs_grads).unwrap(), 1e-5, "linear: x gradient");
        let (weight, bias) = (layer.weight.val(), layer.bias.as_ref().unwrap().val());
        assert_close(weight.grad(&ours_grads).unwrap(), weight.grad(&theirs_grads).unwrap(), 1e-5, "linear: weight gradient");
        assert_close(bias.grad(&ours_grads).unwrap(), bias.grad(&theirs_grads).unwrap(), 1e-5, "linear: bias gradient");
    }

    #[test]
    fn gelu_linear_matches_burns_gelu_then_linear_with_all_three_gradients() {
        use burn::nn::LinearConfig;
        let device = device();
        let layer = LinearConfig::new(24, 7).init(&device);
        let (a, b) = twins(input(8));
        let ours = gelu_linear(&layer, a.clone());
        let theirs = layer.forward(burn::tensor::activation::gelu(b.clone()));
        assert_close(ours.clone(), theirs.clone(), 1e-5, "gelu linear");
        let w = Tensor::<4>::random(ours.dims(), Distribution::Uniform(-1.0, 1.0), &device);
        let ours_grads = (ours * w.clone()).sum().backward();
        let theirs_grads = (theirs * w).sum().backward();
        assert_close(a.grad(&ours_grads).unwrap(), b.grad(&theirs_grads).unwrap(), 1e-5, "gelu linear: x gradient");
        let (weight, bias) = (layer.weight.val(), layer.bias.as_ref().unwrap().val());
        assert_close(weight.grad(&ours_grads).unwrap(), weight.grad(&theirs_grads).unwrap(), 1e-5, "gelu linear: weight gradient");
        assert_close(bias.grad(&ours_grads).unwrap(), bias.grad(&theirs_grads).unwrap(), 1e-5, "gelu linear: bias gradient");
    }

    #[test]
    fn attention_matches_burns_composition_with_all_three_gradients() {
        let device = device();
        let make = |tokens: usize, seed: u64| {
            device.seed(seed);
            Tensor::<3>::random([3, tokens, 12], Distribution::Normal(0.0, 1.0), &device).require_grad()
        };
        let (q, k, v) = (make(7, 10), make(5, 11), make(5, 12));
        let (qb, kb, vb) = (q.clone().detach().require_grad(), k.clone().detach().require_grad(), v.clone().detach().require_grad());
        let ours = attention(q.clone(), k.clone(), v.clone(), 3, 0.4);
        let probs = burn::tensor::activation::softmax(split_heads(qb.clone(), 3).matmul(split_heads(kb.clone(), 3).swap_dims(2, 3)).mul_scalar(0.4), 3);
        let theirs = merge_heads(probs.matmul(split_heads(vb.clone(), 3)));
        assert_close(ours.clone(), theirs.clone(), 1e-5, "attention");
        let w = Tensor::<3>::random(ours.dims(), Distribution::Uniform(-1.0, 1.0), &device);
        let ours_grads = (ours * w.clone()).sum().backward();
        let theirs_grads = (theirs * w).sum().backward();
        for (name, a, b) in [("q", &q, &qb), ("k", &k, &kb), ("v", &v, &vb)] {
            assert_close(a.grad(&ours_grads).unwrap(), b.grad(&theirs_grads).unwrap(), 1e-5, &format!("attention: {name} gradient"));
        }
    }

    #[test]
    fn ops_run_without_autodiff_too() {
        let device = Device::flex();
        let x = Tensor::<2>::random([5, 33], Distribution::Normal(0.0, 1.0), &device);
        assert_close(gelu(x.clone()), burn::tensor::activation::gelu(x.clone()), 1e-6, "gelu (inference)");
        assert_close(softmax(x.clone(), 1), burn::tensor::activation::softmax(x.clone(), 1), 1e-6, "softmax (inference)");
        let (gamma, beta) = (Tensor::<1>::ones([33], &device), Tensor::<1>::zeros([33], &device));
        assert_close(
            layer_norm(x.clone(), gamma.clone(), Some(beta.clone()), 1e-12),
            burn::tensor::module::layer_norm(x, gamma, Some(beta), 1e-12),
            2e-6,
            "layer norm (inference)",
        );
    }
}
