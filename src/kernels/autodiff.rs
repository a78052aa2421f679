//! [`FusedOps`] under autodiff over flex: each op records one backward step that runs its fused
//! backward kernel, instead of the chain of primitives burn would record. The depthwise
//! convolution's step is generic ([`DepthwiseGradients`]): burn's GPU backend records it too.

use burn::backend::{Backend, Flex};
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::autodiff::Autodiff;
use burn::backend::tensor::FloatTensor;
use burn::backend::flex::FlexTensor;
use burn::backend::TensorMetadata;
use burn::backend::AutodiffBackend;
use burn::tensor::Shape;

use super::flex::{attention_dims, batch_norm_moved, batch_norm_train_saving, contiguous, depthwise_output_shape, layer_norm_saving, linear_dims, tensor, values};
use super::depthwise::{self, Geometry};
use super::{FusedOps, attention, batch_norm, gelu, layer_norm, linear, softmax};

#[derive(Debug)]
struct GeluBackward;

impl Backward<Flex, 1> for GeluBackward {
    /// The input.
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let x = ops.state;
        unary::<Flex, _>(ops.parents, ops.node, grads, |grad| {
            let grad = contiguous(grad);
            tensor(gelu::backward(values(&x), values(&grad)), x.shape())
        });
    }
}

#[derive(Debug)]
struct SoftmaxBackward;

impl Backward<Flex, 1> for SoftmaxBackward {
    /// The output.
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let y = ops.state;
        unary::<Flex, _>(ops.parents, ops.node, grads, |grad| {
            let grad = contiguous(grad);
            let shape = y.shape();
            let width = shape.as_slice().last().copied().unwrap_or(1);
            tensor(softmax::backward(values(&y), values(&grad), width), shape)
        });
    }
}

#[derive(Debug, Clone)]
struct LayerNormState {
    x: FlexTensor,
    gamma: FlexTensor,
    mean: std::sync::Arc<Vec<f32>>,
    rstd: std::sync::Arc<Vec<f32>>,
}

#[derive(Debug)]
struct LayerNormBackward;

impl Backward<Flex, 3> for LayerNormBackward {
    type State = LayerNormState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let grad = contiguous(grads.consume::<Flex>(&ops.node));
        let state = ops.state;
        let gamma_shape = state.gamma.shape();
        let d = layer_norm::backward(values(&state.x), values(&grad), &state.mean, &state.rstd, values(&state.gamma));
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, tensor(d.input, state.x.shape()));
        }
        if let Some(node) = node_gamma {
            grads.register::<Flex>(node.id, tensor(d.gamma, gamma_shape.clone()));
        }
        if let Some(node) = node_beta {
            grads.register::<Flex>(node.id, tensor(d.beta, gamma_shape));
        }
    }
}

/// A backend's gradients of the depthwise convolution on tokens, for [`DepthwiseBackward`]: flex's
/// from its CPU kernels ([`depthwise`]), the GPU backend's from brasa's cubecl kernels.
pub(super) trait DepthwiseGradients: FusedOps {
    /// The gradient of the input tokens (zero on the skipped ones) for the output's `grad`.
    fn depthwise_input_gradient(grad: FloatTensor<Self>, weight: FloatTensor<Self>, geometry: Geometry) -> FloatTensor<Self>;
    /// The gradient of the filters for input `x` and the output's `grad`.
    fn depthwise_weight_gradient(x: FloatTensor<Self>, grad: FloatTensor<Self>, geometry: Geometry) -> FloatTensor<Self>;
}

impl DepthwiseGradients for Flex {
    fn depthwise_input_gradient(grad: FlexTensor, weight: FlexTensor, geometry: Geometry) -> FlexTensor {
        let (grad, weight) = (contiguous(grad), contiguous(weight));
        debug_assert_eq!(grad.shape(), depthwise_output_shape(&geometry));
        let shape = Shape::from([geometry.batch, geometry.skip + geometry.input[0] * geometry.input[1], geometry.channels]);
        tensor(depthwise::input_grad(&geometry, values(&grad), values(&weight)), shape)
    }

    fn depthwise_weight_gradient(x: FlexTensor, grad: FlexTensor, geometry: Geometry) -> FlexTensor {
        let (x, grad) = (contiguous(x), contiguous(grad));
        let shape = Shape::from([geometry.channels, 1, geometry.kernel[0], geometry.kernel[1]]);
        tensor(depthwise::weight_grad(&geometry, values(&x), values(&grad)), shape)
    }
}

/// What the depthwise convolution's backward reads: its input tokens and filters.
#[derive(Debug, Clone)]
struct DepthwiseState<B: Backend> {
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    geometry: Geometry,
}

/// The autodiff step of the depthwise convolution on tokens (parents: the tokens, the filters) on
/// any backend with brasa's kernels for it.
#[derive(Debug)]
struct DepthwiseBackward;

impl<B: DepthwiseGradients> Backward<B, 2> for DepthwiseBackward {
    type State = DepthwiseState<B>;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_weight] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let DepthwiseState { x, weight, geometry } = ops.state;
        if let Some(node) = node_weight {
            grads.register::<B>(node.id, B::depthwise_weight_gradient(x, grad.clone(), geometry));
        }
        if let Some(node) = node_x {
            grads.register::<B>(node.id, B::depthwise_input_gradient(grad, weight, geometry));
        }
    }
}

/// The depthwise convolution on tokens under autodiff over `B`: `B`'s forward, recorded as one
/// [`DepthwiseBackward`] step.
pub(super) fn depthwise_tokens_autodiff<B: DepthwiseGradients, C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<B, C>>,
    weight: FloatTensor<Autodiff<B, C>>,
    geometry: Geometry,
) -> FloatTensor<Autodiff<B, C>> {
    match DepthwiseBackward.prepare::<C>([x.node(), weight.node()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let (x, weight) = (x.primitive().clone(), weight.primitive().clone());
            let output = B::fused_depthwise_tokens(x.clone(), weight.clone(), geometry);
            prep.finish(DepthwiseState { x, weight, geometry }, output)
        }
        OpsKind::UnTracked(prep) => prep.finish(B::fused_depthwise_tokens(x.into_primitive(), weight.into_primitive(), geometry)),
    }
}

#[derive(Debug, Clone)]
struct BatchNormState {
    x: FlexTensor,
    gamma: FlexTensor,
    mean: std::sync::Arc<Vec<f32>>,
    rstd: std::sync::Arc<Vec<f32>>,
}

/// Batch norm with the batch's statistics (`training`) or fixed ones.
#[derive(Debug)]
struct BatchNormBackward {
    training: bool,
}

impl Backward<Flex, 3> for BatchNormBackward {
    type State = BatchNormState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let grad = contiguous(grads.consume::<Flex>(&ops.node));
        let BatchNormState { x, gamma, mean, rstd } = ops.state;
        let backward = if self.training { batch_norm::backward } else { batch_norm::backward_inference };
        let d = backward(values(&x), values(&grad), values(&gamma), &mean, &rstd);
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, tensor(d.input, x.shape()));
        }
        if let Some(node) = node_gamma {
            grads.register::<Flex>(node.id, tensor(d.gamma, gamma.shape()));
        }
        if let Some(node) = node_beta {
            grads.register::<Flex>(node.id, tensor(d.beta, gamma.shape()));
        }
    }
}

#[derive(Debug, Clone)]
struct AttentionState {
    q: FlexTensor,
    k: FlexTensor,
    v: FlexTensor,
    stats: std::sync::Arc<attention::RowStats>,
    dims: attention::Dims,
    scale: f32,
}

#[derive(Debug)]
struct AttentionBackward;

impl Backward<Flex, 3> for AttentionBackward {
    type State = AttentionState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let parents = ops.parents;
        let grad = contiguous(grads.consume::<Flex>(&ops.node));
        let AttentionState { q, k, v, stats, dims, scale } = ops.state;
        let [dq, dk, dv] = attention::backward(values(&q), values(&k), values(&v), &stats, values(&grad), &dims, scale);
        for ((parent, gradient), input) in parents.into_iter().zip([dq, dk, dv]).zip([&q, &k, &v]) {
            if let Some(node) = parent {
                grads.register::<Flex>(node.id, tensor(gradient, input.shape()));
            }
        }
    }
}

#[derive(Debug, Clone)]
struct LinearState {
    x: FlexTensor,
    weight: FlexTensor,
}

/// x·W + b, or gelu(x)·W + b (`gelu`): then x is the MLP's pre-activation, kept instead of
/// gelu(x), which the backward recomputes along with the slope it needs anyway.
#[derive(Debug)]
struct LinearBackward {
    gelu: bool,
}

impl Backward<Flex, 3> for LinearBackward {
    type State = LinearState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_weight, node_bias] = ops.parents;
        let grad = contiguous(grads.consume::<Flex>(&ops.node));
        let LinearState { x, weight } = ops.state;
        let [m, k, n] = linear_dims(&x, &weight);
        let (activation, slope) = if self.gelu { gelu::value_and_slope(values(&x)) } else { (Vec::new(), Vec::new()) };
        let input = if self.gelu { activation.as_slice() } else { values(&x) };
        if let Some(node) = node_weight {
            grads.register::<Flex>(node.id, tensor(linear::weight_grad(input, values(&grad), m, k, n), weight.shape()));
        }
        drop(activation);
        if let Some(node) = node_bias {
            grads.register::<Flex>(node.id, tensor(linear::bias_grad(values(&grad), m, n), [n].into()));
        }
        if let Some(node) = node_x {
            let mut input_grad = linear::input_grad(values(&grad), values(&weight), m, k, n);
            if self.gelu {
                gelu::scale_by_slope(&mut input_grad, &slope);
            }
            grads.register::<Flex>(node.id, tensor(input_grad, x.shape()));
        }
    }
}

impl<C: CheckpointStrategy> FusedOps for Autodiff<Flex, C> {
    fn fused_gelu(x: FloatTensor<Autodiff<Flex, C>>) -> FloatTensor<Autodiff<Flex, C>> {
        match GeluBackward.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let input = contiguous(x.primitive().clone());
                let output = Flex::fused_gelu(input.clone());
                prep.finish(input, output)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::fused_gelu(x.into_primitive())),
        }
    }

    fn fused_softmax(x: FloatTensor<Autodiff<Flex, C>>) -> FloatTensor<Autodiff<Flex, C>> {
        match SoftmaxBackward.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let output = Flex::fused_softmax(x.primitive().clone());
                prep.finish(output.clone(), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::fused_softmax(x.into_primitive())),
        }
    }

    fn fused_layer_norm(
        x: FloatTensor<Autodiff<Flex, C>>,
        gamma: FloatTensor<Autodiff<Flex, C>>,
        beta: FloatTensor<Autodiff<Flex, C>>,
        epsilon: f64,
    ) -> FloatTensor<Autodiff<Flex, C>> {
        match LayerNormBackward.prepare::<C>([x.node(), gamma.node(), beta.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let input = contiguous(x.primitive().clone());
                let gamma = contiguous(gamma.primitive().clone());
                let (output, mean, rstd) = layer_norm_saving(input.clone(), gamma.clone(), beta.primitive().clone(), epsilon);
                let state = LayerNormState { x: input, gamma, mean: mean.into(), rstd: rstd.into() };
                prep.finish(state, output)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(Flex::fused_layer_norm(x.into_primitive(), gamma.into_primitive(), beta.into_primitive(), epsilon))
            }
        }
    }

    fn fused_attention(q: FloatTensor<Self>, k: FloatTensor<Self>, v: FloatTensor<Self>, heads: usize, scale: f64) -> FloatTensor<Self> {
        match AttentionBackward.prepare::<C>([q.node(), k.node(), v.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (q, k, v) = (contiguous(q.primitive().clone()), contiguous(k.primitive().clone()), contiguous(v.primitive().clone()));
                let dims = attention_dims(&q, &k, &v, heads);
                let scale = scale as f32;
                let (context, stats) = attention::forward(values(&q), values(&k), values(&v), &dims, scale);
                let output = tensor(context, q.shape());
                prep.finish(AttentionState { q, k, v, stats: stats.into(), dims, scale }, output)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::fused_attention(q.into_primitive(), k.into_primitive(), v.into_primitive(), heads, scale)),
        }
    }

    fn fused_linear(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self> {
        match (LinearBackward { gelu: false }).prepare::<C>([x.node(), weight.node(), bias.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (x, weight) = (contiguous(x.primitive().clone()), contiguous(weight.primitive().clone()));
                let output = Flex::fused_linear(x.clone(), weight.clone(), bias.primitive().clone());
                prep.finish(LinearState { x, weight }, output)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::fused_linear(x.into_primitive(), weight.into_primitive(), bias.into_primitive())),
        }
    }

    fn fused_gelu_linear(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self> {
        match (LinearBackward { gelu: true }).prepare::<C>([x.node(), weight.node(), bias.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (x, weight) = (contiguous(x.primitive().clone()), contiguous(weight.primitive().clone()));
                let output = Flex::fused_gelu_linear(x.clone(), weight.clone(), bias.primitive().clone());
                prep.finish(LinearState { x, weight }, output)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::fused_gelu_linear(x.into_primitive(), weight.into_primitive(), bias.into_primitive())),
        }
    }

    fn fused_depthwise_tokens(x: FloatTensor<Self>, weight: FloatTensor<Self>, geometry: Geometry) -> FloatTensor<Self> {
        depthwise_tokens_autodiff::<Flex, C>(x, weight, geometry)
    }

    fn fused_batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        running_mean: FloatTensor<Self>,
        running_var: FloatTensor<Self>,
        epsilon: f64,
        momentum: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (input, forward) = batch_norm_train_saving(x.primitive().clone(), gamma.primitive().clone(), beta.primitive().clone(), epsilon);
        let (running_mean, running_var) = batch_norm_moved(running_mean.into_primitive(), running_var.into_primitive(), &forward, momentum);
        let output = tensor(forward.output, input.shape());
        let tracked = BatchNormBackward { training: true }.prepare::<C>([x.node(), gamma.node(), beta.node()]).compute_bound().stateful();
        let output = match tracked {
            OpsKind::Tracked(prep) => {
                let state = BatchNormState { x: input, gamma: contiguous(gamma.into_primitive()), mean: forward.mean.into(), rstd: forward.rstd.into() };
                prep.finish(state, output)
            }
            OpsKind::UnTracked(prep) => prep.finish(output),
        };
        (output, Self::from_inner(running_mean), Self::from_inner(running_var))
    }

    fn fused_batch_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        let (mean, variance) = (mean.into_primitive(), variance.into_primitive());
        match (BatchNormBackward { training: false }).prepare::<C>([x.node(), gamma.node(), beta.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (x, gamma) = (contiguous(x.primitive().clone()), contiguous(gamma.primitive().clone()));
                let rstd: Vec<f32> = values(&contiguous(variance.clone())).iter().map(|v| 1.0 / (v + epsilon as f32).sqrt()).collect();
                let output = Flex::fused_batch_norm(x.clone(), gamma.clone(), beta.into_primitive(), mean.clone(), variance, epsilon);
                let mean = values(&contiguous(mean)).to_vec();
                prep.finish(BatchNormState { x, gamma, mean: mean.into(), rstd: rstd.into() }, output)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(Flex::fused_batch_norm(x.into_primitive(), gamma.into_primitive(), beta.into_primitive(), mean, variance, epsilon))
            }
        }
    }
}

