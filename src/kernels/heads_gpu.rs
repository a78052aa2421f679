//! Multi-head attention's layouts on burn's GPU backend, three tensors at a launch: q, k and v
//! `[batch, tokens, heads·head_dim]` to their heads `[batch·heads, tokens, head_dim]` (which a
//! batched matmul reads as they are) for the forward, and the three gradients back for the
//! backward, where burn's ops copy each tensor in a launch of its own.

use burn::backend::fusion::custom::TensorSpec;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, backend_extension};
use burn::tensor::Shape;
use burn_cubecl::CubeBackend;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::rows_gpu::{address_and_dtype, row_major, value_cubes};

/// Three tensors to and from the heads' layout, a launch each way.
#[backend_extension(Cube: cfg(any(feature = "gpu-backend", feature = "cuda")), Fusion: cfg(any(feature = "gpu-backend", feature = "cuda")))]
pub trait HeadsOps: Backend {
    /// q `[batch, queries, heads·head_dim]`, k and v `[batch, keys, heads·head_dim]` → their
    /// heads, `[batch·heads, tokens, head_dim]` each.
    #[fusion(meta = |q, k, v, heads| (split_spec(q, *heads), split_spec(k, *heads), split_spec(v, *heads)))]
    fn split_heads(q: FloatTensor<Self>, k: FloatTensor<Self>, v: FloatTensor<Self>, heads: usize) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// [`HeadsOps::split_heads`] undone: three `[batch·heads, tokens, head_dim]` →
    /// `[batch, tokens, heads·head_dim]` each.
    #[fusion(meta = |a, b, c, batch| (merge_spec(a, *batch), merge_spec(b, *batch), merge_spec(c, *batch)))]
    fn merge_heads(a: FloatTensor<Self>, b: FloatTensor<Self>, c: FloatTensor<Self>, batch: usize) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

/// The heads of a tensor as fusion records them.
fn split_spec(x: &TensorSpec, heads: usize) -> TensorSpec {
    TensorSpec::new(split_shape(&x.shape, heads), x.dtype)
}

/// The tokens of a tensor in the heads' layout as fusion records them.
fn merge_spec(x: &TensorSpec, batch: usize) -> TensorSpec {
    TensorSpec::new(merge_shape(&x.shape, batch), x.dtype)
}

/// `[batch, tokens, heads·head_dim]` → `[batch·heads, tokens, head_dim]`.
fn split_shape(shape: &Shape, heads: usize) -> Shape {
    let [batch, tokens, width] = dims3(shape);
    assert!(heads > 0 && width % heads == 0, "attention: width {width} does not split into {heads} heads");
    Shape::from([batch * heads, tokens, width / heads])
}

/// `[batch·heads, tokens, head_dim]` → `[batch, tokens, heads·head_dim]`.
fn merge_shape(shape: &Shape, batch: usize) -> Shape {
    let [batch_heads, tokens, head_dim] = dims3(shape);
    assert!(batch > 0 && batch_heads % batch == 0, "attention: {batch_heads} heads' rows are not a batch of {batch}");
    Shape::from([batch, tokens, batch_heads / batch * head_dim])
}

fn dims3(shape: &Shape) -> [usize; 3] {
    shape.as_slice().try_into().unwrap_or_else(|_| panic!("attention takes 3-D tensors, not {shape:?}"))
}

/// Where the value at `index` of a tensor of `tokens` tokens in the target layout lies in the
/// source: `[batch, tokens, heads, head_dim]` ↔ `[batch, heads, tokens, head_dim]` (`merge`: from
/// the heads' layout).
#[cube]
fn source(index: usize, tokens: usize, heads: usize, head_dim: usize, #[comptime] merge: bool) -> usize {
    let d = index % head_dim;
    if merge {
        let h = (index / head_dim) % heads;
        let t = (index / (head_dim * heads)) % tokens;
        let b = index / (head_dim * heads * tokens);
        ((b * heads + h) * tokens + t) * head_dim + d
    } else {
        let t = (index / head_dim) % tokens;
        let bh = index / (head_dim * tokens);
        let (b, h) = (bh / heads, bh % heads);
        ((b * tokens + t) * heads + h) * head_dim + d
    }
}

/// One thread per value of the three outputs, in turn: each from its place in its input.
#[cube(launch_unchecked, address_type = "dynamic")]
fn heads_kernel<E: Float>(
    a: &Tensor<E>,
    b: &Tensor<E>,
    c: &Tensor<E>,
    a_out: &mut Tensor<E>,
    b_out: &mut Tensor<E>,
    c_out: &mut Tensor<E>,
    batch: usize,
    heads: usize,
    head_dim: usize,
    #[comptime] merge: bool,
    #[define(E)] _dtype: ElemType,
) {
    let index = ABSOLUTE_POS;
    let per_token = batch * heads * head_dim;
    let (a_len, b_len) = (a_out.len(), b_out.len());
    if index < a_len {
        a_out[index] = a[source(index, a_len / per_token, heads, head_dim, merge)];
    } else if index < a_len + b_len {
        let i = index - a_len;
        b_out[i] = b[source(i, b_len / per_token, heads, head_dim, merge)];
    } else if index < a_len + b_len + c_out.len() {
        let i = index - a_len - b_len;
        c_out[i] = c[source(i, c_out.len() / per_token, heads, head_dim, merge)];
    }
}

/// Three tensors to (`merge` false) or from the heads' layout, one launch.
fn relayout(tensors: [CubeTensor; 3], batch: usize, heads: usize, merge: bool) -> (CubeTensor, CubeTensor, CubeTensor) {
    let [a, b, c] = tensors.map(into_contiguous);
    let shapes = [&a, &b, &c].map(|t| if merge { merge_shape(t.meta.shape(), batch) } else { split_shape(t.meta.shape(), heads) });
    let head_dim = if merge { dims3(a.meta.shape())[2] } else { dims3(a.meta.shape())[2] / heads };
    for t in [&b, &c] {
        let (want, got) = (dims3(a.meta.shape()), dims3(t.meta.shape()));
        assert!(want[0] == got[0] && want[2] == got[2], "attention: q, k and v differ in batch or width: {want:?}, {got:?}");
    }
    let [a_out, b_out, c_out] = shapes.map(|shape| row_major(&a, shape));
    let total = a_out.meta.num_elements() + b_out.meta.num_elements() + c_out.meta.num_elements();
    if total == 0 {
        return (a_out, b_out, c_out);
    }
    let client = a.client.clone();
    let (cube_count, cube_dim) = value_cubes(&a, total);
    let (address, dtype) = address_and_dtype(&[&a, &b, &c, &a_out, &b_out, &c_out]);
    // SAFETY: a thread writes one value of one output (threads past the three write nothing) and
    // reads the one value of its input that `source` maps it to, inside the input's shape.
    unsafe {
        heads_kernel::launch_unchecked(
            &client,
            cube_count,
            cube_dim,
            address,
            a.into_tensor_arg(),
            b.into_tensor_arg(),
            c.into_tensor_arg(),
            a_out.clone().into_tensor_arg(),
            b_out.clone().into_tensor_arg(),
            c_out.clone().into_tensor_arg(),
            batch,
            heads,
            head_dim,
            merge,
            dtype,
        );
    }
    (a_out, b_out, c_out)
}

impl HeadsOps for CubeBackend {
    fn split_heads(q: CubeTensor, k: CubeTensor, v: CubeTensor, heads: usize) -> (CubeTensor, CubeTensor, CubeTensor) {
        let batch = dims3(q.meta.shape())[0];
        relayout([q, k, v], batch, heads, false)
    }

    fn merge_heads(a: CubeTensor, b: CubeTensor, c: CubeTensor, batch: usize) -> (CubeTensor, CubeTensor, CubeTensor) {
        let heads = dims3(a.meta.shape())[0] / batch.max(1);
        relayout([a, b, c], batch, heads, true)
    }
}
