//! [`FusedOps`] on burn's GPU backend (cubecl: wgpu, CUDA): multi-head attention's core and the
//! linear layer as autodiff steps with their own backward, written with the backend's ops
//! (attention's softmax with brasa's kernels); layer normalisation, batch normalisation
//! (training, over tokens) and the depthwise convolution on tokens as ones whose forward and
//! backward are kernels of brasa's own.
//!
//! burn's `layer_norm` is nine tensor operations, and under autodiff each records its own
//! backward: about 25 kernel launches per LayerNorm per training step on the GPU (counted with
//! cubecl's profiling log on lavapipe), most of them elementwise ops too small to fuse, and a GPU
//! step of CvT-13 at batch 16 is bound by the host's time to record and launch them. A step of
//! its own with the textbook backward written with burn's ops took CvT-13's training step from
//! 3516 launches to 2909 (lavapipe, 2026-12-05); its forward and backward are now brasa's
//! kernels ([`super::layer_norm_gpu`]): 1770 → 1650, ViT-B/16's 985 → 932.
//!
//! CvT's batch norms normalise each channel over the batch and the tokens, which lie channels
//! last. burn's `batch_norm_train` takes them channels first and copies them to reduce (twice in
//! the forward, twice in the backward); a step of its own over a `[rows, channels]` view written
//! with burn's ops took CvT-13's 39 batch norms from 2696 launches a step to 2414 (lavapipe,
//! 2026-12-05), and brasa's kernels ([`super::batch_norm_gpu`]: two forward, which also move the
//! running statistics, and two backward) from 1597 to 1409. The backward reads an output gradient
//! sliced from the token axis in place (1348 → 1318), and the forward puts CvT's class token in
//! front of its output in the same pass, the autodiff step handing the gradient's first rows back
//! to it (1318 → 1289).
//!
//! Attention: under autodiff burn differentiates the split of the heads, the two products, the
//! softmax's five operations and the merge one by one, and its matmul copies each head view it
//! is handed (a head's batch stride is below its row stride), forward and backward: about 28
//! launches per attention and training step. Here the heads of q, k and v are laid out once for
//! both passes, the backward is `dV = Pᵀ·G`, `dP = G·Vᵀ`, `dS = P ⊙ (dP − rowsum(dP ⊙ P))·scale`,
//! `dQ = dS·K`, `dK = dSᵀ·Q` with the transposes read in place: 22 launches. CvT-13's step on
//! lavapipe (2026-12-05): 2035 → 1925 launches, ViT-B/16's 1065 → 981. The softmax and its
//! gradient are brasa's kernels ([`super::softmax_gpu`], one launch each), and inference takes
//! the same forward: 1650 → 1597, ViT-B/16's 932 → 860. q, k and v go to the heads' layout in one
//! launch and their gradients come back in one ([`super::heads_gpu`]), k untransposed (the
//! forward's product reads kᵀ as a view): 1409 → 1348, ViT-B/16's 860 → 796.
//!
//! CvT's depthwise convolutions on tokens: an autodiff step whose forward and gradients are
//! brasa's kernels ([`super::depthwise_gpu`]), reading the tokens past the class token in place.
//! CvT-13's step on lavapipe (2026-12-05): 1915 → 1770 launches.
//!
//! The linear layers: a step of its own whose forward is written so that burn's fusion adds the
//! bias, and the elementwise ops after it, in the product's kernel, and whose backward is burn's
//! (see [`linear_forward`]): CvT-13's step at 32 px 1289 → 1189 launches, ViT-B/16's 796 → 685
//! (lavapipe, 2026-12-05). The backward flattens the output gradient once for its three products
//! instead of once each ([`LinearBackward`]): CvT-13's step records 150 fewer operations (2662 →
//! 2512 in burn's fusion log at 32 px) and launches 1100 kernels instead of 1110 (2026-12-06).
//! The views of W and x its products read (Wᵀ, x's rows transposed) are one operation
//! ([`super::arrange_gpu`]) where they were three: at 32 px and batch 2, 2500 → 2339 operations
//! recorded and 1508 → 1382 segments run by burn's fusion a step, launches unchanged (1100 at
//! batch 16; ViT-B/16 685) (2026-12-06).
//!
//! The other fused ops are flex's alone; the wrappers in [`super`] never send a GPU tensor to them.

use burn::backend::{AutodiffBackend, Backend};
use burn::backend::Cube;
use burn::backend::TensorMetadata;
use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, NodeGuard, Ops, OpsKind};
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::tensor::Shape;
use burn_std::{MatmulTransformAction, MatmulTransformAnalysis, MatmulTransformPolicy};

use super::FusedOps;
use super::arrange_gpu::{View, arrange};
use super::autodiff::{DepthwiseGradients, depthwise_tokens_autodiff};
use super::batch_norm_gpu::BatchNormOps;
use super::depthwise::Geometry;
use super::depthwise_gpu::DepthwiseOps;
use super::heads_gpu::HeadsOps;
use super::layer_norm_gpu::LayerNormOps;
use super::softmax_gpu::SoftmaxOps;

/// `[batch, tokens, heads·head_dim]` → the heads as `[batch·heads, tokens, head_dim]`: one copy,
/// which a batched matmul then reads as it is (burn's matmul copies a head view itself, its batch
/// stride being below its row stride).
fn to_heads<B: Backend>(x: FloatTensor<B>, heads: usize) -> FloatTensor<B> {
    let [batch, tokens, width] = dims3::<B>(&x);
    let head_dim = width / heads;
    let split = B::float_reshape(x, Shape::from([batch, tokens, heads, head_dim]));
    B::float_reshape(B::float_permute(split, &[0, 2, 1, 3]), Shape::from([batch * heads, tokens, head_dim]))
}

/// [`to_heads`] undone: `[batch·heads, tokens, head_dim]` → `[batch, tokens, heads·head_dim]` (a copy).
fn from_heads<B: Backend>(x: FloatTensor<B>, batch: usize) -> FloatTensor<B> {
    let [batch_heads, tokens, head_dim] = dims3::<B>(&x);
    let heads = batch_heads / batch;
    let split = B::float_permute(B::float_reshape(x, Shape::from([batch, heads, tokens, head_dim])), &[0, 2, 1, 3]);
    B::float_reshape(split, Shape::from([batch, tokens, heads * head_dim]))
}

fn dims3<B: Backend>(x: &FloatTensor<B>) -> [usize; 3] {
    let shape = x.shape();
    let dims = shape.as_slice();
    assert_eq!(dims.len(), 3, "a [batch, tokens, width] tensor expected, not {dims:?}");
    [dims[0], dims[1], dims[2]]
}

/// Multi-head attention's core, softmax(q·kᵀ·scale)·v, with q `[batch, queries, width]` and k, v
/// `[batch, keys, width]` (heads side by side): the context `[batch, queries, width]` and what
/// the backward reads (the heads of q, k and v, and the probabilities).
fn attention_forward(
    q: FloatTensor<Cube>,
    k: FloatTensor<Cube>,
    v: FloatTensor<Cube>,
    heads: usize,
    scale: f64,
) -> (FloatTensor<Cube>, AttentionState<Cube>) {
    type B = Cube;
    let batch = dims3::<B>(&q)[0];
    let (q, k, v) = B::split_heads(q, k, v, heads);
    let probs = B::scaled_softmax(B::float_matmul(q.clone(), B::float_swap_dims(k.clone(), 1, 2)), scale as f32);
    let context = from_heads::<B>(B::float_matmul(probs.clone(), v.clone()), batch);
    (context, AttentionState { q, k, v, probs, batch, scale })
}

/// What [`attention_backward`] reads: the heads of q `[batch·heads, queries, head_dim]`, k and v
/// `[batch·heads, keys, head_dim]`, and the probabilities `[batch·heads, queries, keys]`.
#[derive(Debug, Clone)]
pub(super) struct AttentionState<B: Backend> {
    q: FloatTensor<B>,
    k: FloatTensor<B>,
    v: FloatTensor<B>,
    probs: FloatTensor<B>,
    batch: usize,
    scale: f64,
}

/// The gradients of [`attention_forward`] (q's, k's, v's) for the context's gradient `grad`:
/// `dV = Pᵀ·G`, `dP = G·Vᵀ`, `dS = P ⊙ (dP − rowsum(dP ⊙ P))·scale`, `dQ = dS·K`, `dK = dSᵀ·Q`,
/// per head; the transposes are views a matmul reads in place.
fn attention_backward(state: AttentionState<Cube>, grad: FloatTensor<Cube>) -> (FloatTensor<Cube>, FloatTensor<Cube>, FloatTensor<Cube>) {
    type B = Cube;
    let AttentionState { q, k, v, probs, batch, scale } = state;
    let heads = dims3::<B>(&q)[0] / batch;
    let grad = to_heads::<B>(grad, heads);
    let d_v = B::float_matmul(B::float_swap_dims(probs.clone(), 1, 2), grad.clone());
    let d_probs = B::float_matmul(grad, B::float_swap_dims(v, 1, 2));
    let d_scores = B::scaled_softmax_backward(probs, d_probs, scale as f32);
    let d_q = B::float_matmul(d_scores.clone(), k);
    let d_k = B::float_matmul(B::float_swap_dims(d_scores, 1, 2), q);
    B::merge_heads(d_q, d_k, d_v, batch)
}

#[derive(Debug)]
struct AttentionBackward;

impl Backward<Cube, 3> for AttentionBackward {
    type State = AttentionState<Cube>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Cube>(&ops.node);
        let (d_q, d_k, d_v) = attention_backward(ops.state, grad);
        for (node, gradient) in ops.parents.into_iter().zip([d_q, d_k, d_v]) {
            if let Some(node) = node {
                grads.register::<Cube>(node.id, gradient);
            }
        }
    }
}

/// x·W + b over the last axis, W `[in, out]`, with W and b given x's rank (`[1, …, in, out]`,
/// `[1, …, 1, out]`) and multiplied batch by batch. burn's linear flattens x's leading axes into
/// one when that tiles the product better, reshapes b between the product and the addition, and
/// the sum back to x's rank after it; burn's fusion then takes the reshaped b for a block of its
/// own, the addition for one depending on two, and runs the product, the addition and whatever
/// elementwise op follows (CvT's and ViT's residuals) as launches of their own. Written this way
/// the product's kernel adds the bias and what follows (burn's fusion log shows the blocks:
/// `BURN_FUSION_LOG=full`).
fn linear_forward(x: FloatTensor<Cube>, weight: FloatTensor<Cube>, bias: FloatTensor<Cube>) -> FloatTensor<Cube> {
    let rank = x.shape().num_dims();
    // burn's own reshapes, not one [`arrange`] for both: the product's kernel adds the bias only
    // when the views before it are burn's (with an `arrange` between CvT's q, k and v
    // projections burn's fusion ran the three products, their additions and the attention
    // unfused: 100 more launches a step)
    let at_rank = |tensor: FloatTensor<Cube>| match with_rank(&tensor.shape(), rank) {
        Some(View::Reshape(shape)) => Cube::float_reshape(tensor, shape),
        _ => tensor,
    };
    // b's view first: one between the product and the addition would split them
    let bias = at_rank(bias);
    Cube::float_add(Cube::float_matmul(x, at_rank(weight)), bias)
}

/// The reshape giving `shape` leading axes of size 1 up to `rank` axes (none when it has them).
fn with_rank(shape: &Shape, rank: usize) -> Option<View> {
    let dims = shape.as_slice();
    (dims.len() < rank).then(|| View::Reshape(Shape::from([vec![1; rank - dims.len()], dims.to_vec()].concat())))
}

/// The reshape of `shape` to `[rows, last]` (none when it has two axes).
fn flatten_leading(shape: &Shape) -> Option<View> {
    let rank = shape.num_dims();
    let last = shape[rank - 1];
    (rank != 2).then(|| View::Reshape(Shape::from([shape.num_elements() / last, last])))
}

/// The autodiff step of [`linear_forward`], with parents x, W and b: burn's linear backward
/// (its `linear_x_backward`, `linear_weight_backward` and `linear_bias_backward`), the output
/// gradient's leading axes flattened once for the three instead of once each, and the views of W
/// and x the products read (Wᵀ, x's rows transposed) taken as one operation ([`arrange`]).
#[derive(Debug)]
struct LinearBackward;

impl Backward<Cube, 3> for LinearBackward {
    /// x and W.
    type State = (FloatTensor<Cube>, FloatTensor<Cube>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_weight, node_bias] = ops.parents;
        let grad = grads.consume::<Cube>(&ops.node);
        let (x, weight) = ops.state;
        let shape = grad.shape();
        let rank = shape.num_dims();
        let width = shape[rank - 1];
        let x_shape = x.shape();
        let transposed_shape = Shape::from([weight.shape()[1], weight.shape()[0]]);
        // dx = g·Wᵀ with the batches folded into the rows where burn's linear folds them
        let batched = node_x.is_some()
            && MatmulTransformPolicy::default().action(&MatmulTransformAnalysis::from_shapes(&shape, &transposed_shape)) == MatmulTransformAction::Keep;
        // `[rows, out]`, a view of the (fresh, contiguous) gradient, for all three; g itself is
        // kept only for a batched dx (a tensor dropped unused is an operation of its own). burn's
        // own reshape, not part of the `arrange` below: an operation reading g, computed in the
        // fusion's current segment, and W and x, made long before, ties the segment's blocks
        // together and burn's fusion then ran the whole segment unfused (60 more launches a step)
        let (rows, kept) = match (flatten_leading(&shape), batched) {
            (Some(View::Reshape(flat)), true) => (Cube::float_reshape(grad.clone(), flat), Some(grad)),
            (Some(View::Reshape(flat)), false) => (Cube::float_reshape(grad, flat), None),
            (_, true) => (grad.clone(), Some(grad)),
            (_, false) => (grad, None),
        };
        let mut items = Vec::new();
        if node_x.is_some() {
            let at_rank = if batched { with_rank(&transposed_shape, rank) } else { None };
            items.push((weight, [Some(View::Transpose), at_rank].into_iter().flatten().collect()));
        }
        if node_weight.is_some() {
            items.push((x, [flatten_leading(&x_shape), Some(View::Transpose)].into_iter().flatten().collect()));
        }
        let mut arranged = arrange(items).into_iter();
        if let Some(node) = node_x {
            let transposed = arranged.next().expect("Wᵀ");
            let dx = match kept {
                Some(grad) => Cube::float_matmul(grad, transposed),
                None => Cube::float_reshape(Cube::float_matmul(rows.clone(), transposed), x_shape),
            };
            grads.register::<Cube>(node.id, dx);
        }
        if let Some(node) = node_weight {
            // dW = xᵀ·g over all rows: `[in, rows]·[rows, out]`
            grads.register::<Cube>(node.id, Cube::float_matmul(arranged.next().expect("x's rows transposed"), rows.clone()));
        }
        if let Some(node) = node_bias {
            grads.register::<Cube>(node.id, Cube::float_reshape(Cube::float_sum_dim(rows, 0), Shape::from([width])));
        }
    }
}

/// The autodiff step of softmax over the last axis, from its output (the probabilities):
/// [`SoftmaxOps::scaled_softmax_backward`] with a scale of 1.
#[derive(Debug)]
struct SoftmaxBackward;

impl Backward<Cube, 1> for SoftmaxBackward {
    type State = FloatTensor<Cube>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x] = ops.parents;
        let grad = grads.consume::<Cube>(&ops.node);
        if let Some(node) = node_x {
            grads.register::<Cube>(node.id, Cube::scaled_softmax_backward(ops.state, grad, 1.0));
        }
    }
}

/// What a normalisation's backward needs: its input, γ, and the statistics the forward kept.
#[derive(Debug, Clone)]
struct NormState {
    x: FloatTensor<Cube>,
    gamma: FloatTensor<Cube>,
    mean: FloatTensor<Cube>,
    rstd: FloatTensor<Cube>,
}

/// The autodiff step of layer norm, with parents x, γ and β ([`LayerNormOps::layer_norm_backward`]).
#[derive(Debug)]
struct LayerNormBackward;

impl Backward<Cube, 3> for LayerNormBackward {
    type State = NormState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let grad = grads.consume::<Cube>(&ops.node);
        let NormState { x, gamma, mean, rstd } = ops.state;
        let (d_x, d_gamma, d_beta) = Cube::layer_norm_backward(x, gamma, mean, rstd, grad);
        for (node, gradient) in [(node_x, d_x), (node_gamma, d_gamma), (node_beta, d_beta)] {
            if let Some(node) = node {
                grads.register::<Cube>(node.id, gradient);
            }
        }
    }
}

/// Batch norm's training forward on the GPU kernels, the output behind `prefix` where there is one.
#[allow(clippy::too_many_arguments)]
fn batch_norm_forward(
    x: FloatTensor<Cube>,
    prefix: Option<FloatTensor<Cube>>,
    gamma: FloatTensor<Cube>,
    beta: FloatTensor<Cube>,
    running_mean: FloatTensor<Cube>,
    running_var: FloatTensor<Cube>,
    epsilon: f64,
    momentum: f64,
) -> (FloatTensor<Cube>, FloatTensor<Cube>, FloatTensor<Cube>, FloatTensor<Cube>, FloatTensor<Cube>) {
    let (epsilon, momentum) = (epsilon as f32, momentum as f32);
    match prefix {
        Some(prefix) => Cube::batch_norm_forward_behind(x, prefix, gamma, beta, running_mean, running_var, epsilon, momentum),
        None => Cube::batch_norm_forward(x, gamma, beta, running_mean, running_var, epsilon, momentum),
    }
}

/// Batch norm's training forward on the GPU kernels under autodiff (see
/// [`FusedOps::fused_batch_norm_train_behind`]): the output, recorded with its own backward, and
/// the moved running statistics.
#[allow(clippy::too_many_arguments)]
fn batch_norm_autodiff<C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<Cube, C>>,
    prefix: Option<FloatTensor<Autodiff<Cube, C>>>,
    gamma: FloatTensor<Autodiff<Cube, C>>,
    beta: FloatTensor<Autodiff<Cube, C>>,
    running_mean: FloatTensor<Autodiff<Cube, C>>,
    running_var: FloatTensor<Autodiff<Cube, C>>,
    epsilon: f64,
    momentum: f64,
) -> (FloatTensor<Autodiff<Cube, C>>, FloatTensor<Autodiff<Cube, C>>, FloatTensor<Autodiff<Cube, C>>) {
    type A<C> = Autodiff<Cube, C>;
    let (input, gamma_inner) = (x.primitive().clone(), gamma.primitive().clone());
    let skip = prefix.as_ref().map_or(0, |prefix| dims3::<Cube>(prefix.primitive())[1]);
    let (output, mean, rstd, running_mean, running_var) = batch_norm_forward(
        input.clone(),
        prefix.as_ref().map(|prefix| prefix.primitive().clone()),
        gamma_inner.clone(),
        beta.primitive().clone(),
        running_mean.into_primitive(),
        running_var.into_primitive(),
        epsilon,
        momentum,
    );
    let state = (NormState { x: input, gamma: gamma_inner, mean, rstd }, skip);
    let output = match prefix {
        Some(prefix) => batch_norm_step::<C, 4>([x.node(), gamma.node(), beta.node(), prefix.node()], state, output),
        None => batch_norm_step::<C, 3>([x.node(), gamma.node(), beta.node()], state, output),
    };
    (output, A::<C>::from_inner(running_mean), A::<C>::from_inner(running_var))
}

/// The autodiff step of batch norm's training forward, with parents x, γ, β and (a fourth) the
/// prefix: the gradient of the output's rows past the prefix's `skip` tokens (a slice of the
/// token axis, which the kernels read in place) gives x's, γ's and β's, the rest is the prefix's.
#[derive(Debug)]
struct BatchNormBackward;

/// `output` recorded as [`BatchNormBackward`] of `parents` (x, γ, β and maybe the prefix).
fn batch_norm_step<C: CheckpointStrategy, const N: usize>(parents: [NodeGuard; N], state: (NormState, usize), output: FloatTensor<Cube>) -> FloatTensor<Autodiff<Cube, C>> {
    match BatchNormBackward.prepare::<C>(parents).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish(state, output),
        OpsKind::UnTracked(prep) => prep.finish(output),
    }
}

impl<const N: usize> Backward<Cube, N> for BatchNormBackward {
    type State = (NormState, usize);

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let mut parents = ops.parents.into_iter();
        let [node_x, node_gamma, node_beta, node_prefix] = std::array::from_fn(|_| parents.next().flatten());
        let grad = grads.consume::<Cube>(&ops.node);
        let (NormState { x, gamma, mean, rstd }, skip) = ops.state;
        // the output's tokens past the prefix's, and the prefix's
        let (rows, prefix) = if skip == 0 {
            (grad, None)
        } else {
            let [batch, tokens, channels] = dims3::<Cube>(&grad);
            let part = |from: usize, to: usize| Cube::float_slice(grad.clone(), &[(0..batch).into(), (from..to).into(), (0..channels).into()]);
            (part(skip, tokens), Some(part(0, skip)))
        };
        if let (Some(node), Some(gradient)) = (node_prefix, prefix) {
            grads.register::<Cube>(node.id, gradient);
        }
        let (d_x, d_gamma, d_beta) = Cube::batch_norm_backward(x, gamma, mean, rstd, rows);
        for (node, gradient) in [(node_x, d_x), (node_gamma, d_gamma), (node_beta, d_beta)] {
            if let Some(node) = node {
                grads.register::<Cube>(node.id, gradient);
            }
        }
    }
}

impl DepthwiseGradients for Cube {
    fn depthwise_input_gradient(grad: FloatTensor<Cube>, weight: FloatTensor<Cube>, geometry: Geometry) -> FloatTensor<Cube> {
        Cube::depthwise_input_grad(grad, weight, geometry)
    }

    fn depthwise_weight_gradient(x: FloatTensor<Cube>, grad: FloatTensor<Cube>, geometry: Geometry) -> FloatTensor<Cube> {
        Cube::depthwise_weight_grad(x, grad, geometry)
    }
}

/// The fused ops brasa runs only on flex: the wrappers in [`super`] keep GPU tensors away.
fn flex_only(op: &str) -> ! {
    unreachable!("brasa's fused {op} runs on flex only; GPU tensors take burn's op")
}

/// The [`FusedOps`] methods other than layer norm, softmax, attention, the linear layer, batch
/// norm's training forward and the depthwise convolution, for an implementation on the GPU backend.
macro_rules! flex_only_ops {
    () => {
        fn fused_gelu(_: FloatTensor<Self>) -> FloatTensor<Self> {
            flex_only("GELU")
        }
        fn fused_gelu_linear(_: FloatTensor<Self>, _: FloatTensor<Self>, _: FloatTensor<Self>) -> FloatTensor<Self> {
            flex_only("GELU + linear")
        }
        fn fused_batch_norm(_: FloatTensor<Self>, _: FloatTensor<Self>, _: FloatTensor<Self>, _: FloatTensor<Self>, _: FloatTensor<Self>, _: f64) -> FloatTensor<Self> {
            flex_only("batch norm")
        }
    };
}

impl FusedOps for Cube {
    fn fused_softmax(x: FloatTensor<Self>) -> FloatTensor<Self> {
        Cube::scaled_softmax(x, 1.0)
    }

    fn fused_layer_norm(x: FloatTensor<Self>, gamma: FloatTensor<Self>, beta: FloatTensor<Self>, epsilon: f64) -> FloatTensor<Self> {
        Cube::layer_norm_forward(x, gamma, beta, epsilon as f32).0
    }

    fn fused_attention(q: FloatTensor<Self>, k: FloatTensor<Self>, v: FloatTensor<Self>, heads: usize, scale: f64) -> FloatTensor<Self> {
        attention_forward(q, k, v, heads, scale).0
    }

    fn fused_linear(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self> {
        linear_forward(x, weight, bias)
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
        let (output, _, _, running_mean, running_var) = batch_norm_forward(x, None, gamma, beta, running_mean, running_var, epsilon, momentum);
        (output, running_mean, running_var)
    }

    // (batch norm's training forward behind a prefix: the trait's concatenation; brasa trains
    // under autodiff only, where the kernel writes the prefix itself)

    fn fused_depthwise_tokens(x: FloatTensor<Self>, weight: FloatTensor<Self>, geometry: Geometry) -> FloatTensor<Self> {
        Cube::depthwise_forward(x, weight, geometry)
    }

    flex_only_ops!();
}

impl<C: CheckpointStrategy> FusedOps for Autodiff<Cube, C> {
    fn fused_softmax(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match SoftmaxBackward.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let probs = Cube::fused_softmax(x.primitive().clone());
                prep.finish(probs.clone(), probs)
            }
            OpsKind::UnTracked(prep) => prep.finish(Cube::fused_softmax(x.into_primitive())),
        }
    }

    fn fused_layer_norm(x: FloatTensor<Self>, gamma: FloatTensor<Self>, beta: FloatTensor<Self>, epsilon: f64) -> FloatTensor<Self> {
        match LayerNormBackward.prepare::<C>([x.node(), gamma.node(), beta.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (input, gamma) = (x.primitive().clone(), gamma.primitive().clone());
                let (output, mean, rstd) = Cube::layer_norm_forward(input.clone(), gamma.clone(), beta.primitive().clone(), epsilon as f32);
                prep.finish(NormState { x: input, gamma, mean, rstd }, output)
            }
            OpsKind::UnTracked(prep) => prep.finish(Cube::fused_layer_norm(x.into_primitive(), gamma.into_primitive(), beta.into_primitive(), epsilon)),
        }
    }

    fn fused_attention(q: FloatTensor<Self>, k: FloatTensor<Self>, v: FloatTensor<Self>, heads: usize, scale: f64) -> FloatTensor<Self> {
        match AttentionBackward.prepare::<C>([q.node(), k.node(), v.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (context, state) = attention_forward(q.primitive().clone(), k.primitive().clone(), v.primitive().clone(), heads, scale);
                prep.finish(state, context)
            }
            OpsKind::UnTracked(prep) => prep.finish(Cube::fused_attention(q.into_primitive(), k.into_primitive(), v.into_primitive(), heads, scale)),
        }
    }

    fn fused_linear(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self> {
        match LinearBackward.prepare::<C>([x.node(), weight.node(), bias.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (input, weight) = (x.primitive().clone(), weight.primitive().clone());
                prep.finish((input.clone(), weight.clone()), linear_forward(input, weight, bias.primitive().clone()))
            }
            OpsKind::UnTracked(prep) => prep.finish(linear_forward(x.into_primitive(), weight.into_primitive(), bias.into_primitive())),
        }
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
        batch_norm_autodiff::<C>(x, None, gamma, beta, running_mean, running_var, epsilon, momentum)
    }

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
        batch_norm_autodiff::<C>(x, Some(prefix), gamma, beta, running_mean, running_var, epsilon, momentum)
    }

    fn fused_depthwise_tokens(x: FloatTensor<Self>, weight: FloatTensor<Self>, geometry: Geometry) -> FloatTensor<Self> {
        depthwise_tokens_autodiff::<Cube, C>(x, weight, geometry)
    }

    flex_only_ops!();
}
