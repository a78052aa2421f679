//! [`FusedOps`] on flex: the slice kernels applied to flex's tensors.

use burn::backend::Flex;
use burn::backend::flex::{FlexTensor, Layout};
use burn::backend::TensorMetadata;
use burn::tensor::{Bytes, DType, Shape};

use super::{FusedOps, attention, batch_norm, depthwise, gelu, layer_norm, linear, softmax};

/// The tensor's values in row-major order (copied only when its layout is not already that).
pub(super) fn contiguous(x: FlexTensor) -> FlexTensor {
    assert_eq!(x.dtype(), DType::F32, "brasa's fused kernels take f32 tensors");
    if x.layout().contiguous_offsets().is_some() { x } else { x.to_contiguous() }
}

pub(super) fn values(x: &FlexTensor) -> &[f32] {
    x.as_slice::<f32>().expect("a contiguous f32 tensor")
}

pub(super) fn tensor(values: Vec<f32>, shape: Shape) -> FlexTensor {
    FlexTensor::new(Bytes::from_elems(values), Layout::contiguous(shape), DType::F32)
}

fn last_axis(shape: &Shape) -> usize {
    shape.as_slice().last().copied().unwrap_or(1)
}

impl FusedOps for Flex {
    fn fused_gelu(x: FlexTensor) -> FlexTensor {
        let x = contiguous(x);
        tensor(gelu::forward(values(&x)), x.shape())
    }

    fn fused_softmax(x: FlexTensor) -> FlexTensor {
        let x = contiguous(x);
        let shape = x.shape();
        tensor(softmax::forward(values(&x), last_axis(&shape)), shape)
    }

    fn fused_layer_norm(x: FlexTensor, gamma: FlexTensor, beta: FlexTensor, epsilon: f64) -> FlexTensor {
        layer_norm_saving(x, gamma, beta, epsilon).0
    }

    fn fused_attention(q: FlexTensor, k: FlexTensor, v: FlexTensor, heads: usize, scale: f64) -> FlexTensor {
        let (q, k, v) = (contiguous(q), contiguous(k), contiguous(v));
        let dims = attention_dims(&q, &k, &v, heads);
        let (context, _) = attention::forward(values(&q), values(&k), values(&v), &dims, scale as f32);
        tensor(context, q.shape())
    }

    fn fused_linear(x: FlexTensor, weight: FlexTensor, bias: FlexTensor) -> FlexTensor {
        let (x, weight, bias) = (contiguous(x), contiguous(weight), contiguous(bias));
        let [m, k, n] = linear_dims(&x, &weight);
        tensor(linear::forward(values(&x), values(&weight), Some(values(&bias)), m, k, n), linear_output_shape(&x, n))
    }

    fn fused_gelu_linear(x: FlexTensor, weight: FlexTensor, bias: FlexTensor) -> FlexTensor {
        let (x, weight, bias) = (contiguous(x), contiguous(weight), contiguous(bias));
        let [m, k, n] = linear_dims(&x, &weight);
        let activation = gelu::forward(values(&x));
        tensor(linear::forward(&activation, values(&weight), Some(values(&bias)), m, k, n), linear_output_shape(&x, n))
    }

    fn fused_depthwise_tokens(x: FlexTensor, weight: FlexTensor, geometry: depthwise::Geometry) -> FlexTensor {
        let (x, weight) = (contiguous(x), contiguous(weight));
        check_tokens(&x, &geometry);
        tensor(depthwise::forward(&geometry, values(&x), values(&weight)), depthwise_output_shape(&geometry))
    }

    fn fused_batch_norm_train(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        running_mean: FlexTensor,
        running_var: FlexTensor,
        epsilon: f64,
        momentum: f64,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let (x, forward) = batch_norm_train_saving(x, gamma, beta, epsilon);
        let (running_mean, running_var) = batch_norm_moved(running_mean, running_var, &forward, momentum);
        (tensor(forward.output, x.shape()), running_mean, running_var)
    }

    fn fused_batch_norm(x: FlexTensor, gamma: FlexTensor, beta: FlexTensor, mean: FlexTensor, variance: FlexTensor, epsilon: f64) -> FlexTensor {
        let [x, gamma, beta, mean, variance] = [x, gamma, beta, mean, variance].map(contiguous);
        check_channels(&x, &gamma);
        let out = batch_norm::forward_inference(values(&x), values(&gamma), values(&beta), values(&mean), values(&variance), epsilon as f32);
        tensor(out, x.shape())
    }
}

/// Panics unless `x` is the `[batch, skip + in_h·in_w, channels]` input `geometry` describes.
pub(super) fn check_tokens(x: &FlexTensor, geometry: &depthwise::Geometry) {
    let want = [geometry.batch, geometry.skip + geometry.input[0] * geometry.input[1], geometry.channels];
    assert_eq!(x.shape().as_slice(), want.as_slice(), "depthwise conv: the input is not {geometry:?}");
}

pub(super) fn depthwise_output_shape(geometry: &depthwise::Geometry) -> Shape {
    [geometry.batch, geometry.output[0] * geometry.output[1], geometry.channels].into()
}

fn check_channels(x: &FlexTensor, gamma: &FlexTensor) {
    let channels = gamma.shape().num_elements();
    assert_eq!(last_axis(&x.shape()), channels, "batch norm: the last axis is not γ's length");
}

/// The contiguous input and batch norm's training forward of it.
pub(super) fn batch_norm_train_saving(x: FlexTensor, gamma: FlexTensor, beta: FlexTensor, epsilon: f64) -> (FlexTensor, batch_norm::Forward) {
    let [x, gamma, beta] = [x, gamma, beta].map(contiguous);
    check_channels(&x, &gamma);
    let forward = batch_norm::forward_train(values(&x), values(&gamma), values(&beta), epsilon as f32);
    (x, forward)
}

/// The running mean and variance moved by `momentum` towards the batch's (see [`batch_norm::moved`]).
pub(super) fn batch_norm_moved(running_mean: FlexTensor, running_var: FlexTensor, forward: &batch_norm::Forward, momentum: f64) -> (FlexTensor, FlexTensor) {
    let channels: Shape = [forward.mean.len()].into();
    let move_towards = |running: FlexTensor, batch: &[f32]| tensor(batch_norm::moved(values(&contiguous(running)), batch, momentum), channels.clone());
    (move_towards(running_mean, &forward.mean), move_towards(running_var, &forward.variance))
}

/// The sizes of an attention over q `[batch, queries, width]`, k and v `[batch, keys, width]`.
pub(super) fn attention_dims(q: &FlexTensor, k: &FlexTensor, v: &FlexTensor, heads: usize) -> attention::Dims {
    let [batch, queries, width]: [usize; 3] = q.shape().as_slice().try_into().expect("a 3-D query");
    let [k_batch, keys, k_width]: [usize; 3] = k.shape().as_slice().try_into().expect("a 3-D key");
    assert_eq!(k.shape(), v.shape(), "attention: keys and values differ in shape");
    assert!(k_batch == batch && k_width == width, "attention: queries and keys differ in batch or width");
    assert!(heads > 0 && width % heads == 0, "attention: width {width} does not split into {heads} heads");
    attention::Dims { batch, heads, queries, keys, head_dim: width / heads }
}

/// (m, k, n) of x `[.., k]` · W `[k, n]`, m the product of x's leading axes.
pub(super) fn linear_dims(x: &FlexTensor, weight: &FlexTensor) -> [usize; 3] {
    let k = last_axis(&x.shape());
    let [w_in, n]: [usize; 2] = weight.shape().as_slice().try_into().expect("a 2-D linear weight");
    assert_eq!(k, w_in, "linear: the input's last axis is {k} long, the weight takes {w_in}");
    [x.shape().num_elements() / k.max(1), k, n]
}

pub(super) fn linear_output_shape(x: &FlexTensor, n: usize) -> Shape {
    let mut dims = x.shape().as_slice().to_vec();
    *dims.last_mut().expect("a linear input has at least one axis") = n;
    Shape::from(dims)
}

/// Layer norm's output, and each row's mean and 1/σ for the backward.
pub(super) fn layer_norm_saving(x: FlexTensor, gamma: FlexTensor, beta: FlexTensor, epsilon: f64) -> (FlexTensor, Vec<f32>, Vec<f32>) {
    let (x, gamma, beta) = (contiguous(x), contiguous(gamma), contiguous(beta));
    let shape = x.shape();
    assert_eq!(last_axis(&shape), gamma.shape().num_elements(), "layer norm: the last axis is not gamma's length");
    let out = layer_norm::forward(values(&x), values(&gamma), Some(values(&beta)), epsilon as f32);
    (tensor(out.output, shape), out.mean, out.rstd)
}
