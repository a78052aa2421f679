//! Views of several tensors as one recorded operation, on burn's GPU backend.
//!
//! Under burn's fusion a reshape or a transpose launches nothing, yet it is an operation like any
//! other: autodiff records it, burn's fusion thread takes it in, tries to fuse it, runs it on its
//! own and later takes in its output's drop. The host's time for these is what bounds a GPU step
//! (see [`super::cube`]). Here views of two tensors are one operation, their outputs sharing their
//! inputs' memory as burn's own views do: the linear backward's Wᵀ and x's rows transposed, three
//! operations before. Where it pays is narrow: an operation like this that reads a tensor computed
//! in burn's fusion's current segment ties that segment's blocks together, and one between the
//! products of CvT's attention projections kept their additions out of the products' kernels;
//! burn's fusion then launches more (see [`super::cube`]'s linear layer).

use burn::backend::Cube;
use burn::backend::fusion::custom::TensorSpec;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, TensorMetadata, backend_extension};
use burn::tensor::Shape;
use burn_cubecl::CubeBackend;
use burn_cubecl::tensor::CubeTensor;

/// One step of the way from a tensor to its view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum View {
    /// The same values in this shape, read row-major (burn's reshape).
    Reshape(Shape),
    /// The last two axes swapped (burn's `swap_dims` of them).
    Transpose,
}

/// The shape of `shape`'s tensor after `views`, in order.
///
/// # Panics
/// When a reshape changes the number of values, or a transpose meets fewer than two axes: the
/// callers build their views from the tensors' own shapes, so either is a bug.
pub fn shape_after(shape: &Shape, views: &[View]) -> Shape {
    views.iter().fold(shape.clone(), |shape, view| match view {
        View::Reshape(to) => {
            assert_eq!(shape.num_elements(), to.num_elements(), "arrange: reshaping {shape:?} to {to:?}");
            to.clone()
        }
        View::Transpose => {
            let rank = shape.num_dims();
            assert!(rank >= 2, "arrange: transposing {shape:?}");
            let mut dims = shape.as_slice().to_vec();
            dims.swap(rank - 2, rank - 1);
            Shape::from(dims)
        }
    })
}

/// `tensor` after `views`, with the backend's own reshape and transpose (each a view where the
/// strides allow it, which they do for the callers' row-major tensors; a copy where not).
fn arranged<B: Backend>(tensor: FloatTensor<B>, views: &[View]) -> FloatTensor<B> {
    views.iter().fold(tensor, |tensor, view| match view {
        View::Reshape(shape) => B::float_reshape(tensor, shape.clone()),
        View::Transpose => {
            let rank = tensor.shape().num_dims();
            B::float_swap_dims(tensor, rank - 2, rank - 1)
        }
    })
}

/// Each tensor after its views, in the order given: those with views as one recorded operation
/// for every two ([`ArrangeOps`]; one left over as burn's own views), those without as they are
/// (a view of nothing would be one more tensor to drop).
pub fn arrange(items: Vec<(FloatTensor<Cube>, Vec<View>)>) -> Vec<FloatTensor<Cube>> {
    let mut out: Vec<Option<FloatTensor<Cube>>> = items.iter().map(|_| None).collect();
    let mut pending = Vec::new();
    for (i, (tensor, views)) in items.into_iter().enumerate() {
        if views.is_empty() {
            out[i] = Some(tensor);
        } else {
            pending.push((i, tensor, views));
        }
    }
    while !pending.is_empty() {
        let mut group = pending.drain(..pending.len().min(2));
        match (group.next(), group.next()) {
            (Some((i, a, va)), None) => out[i] = Some(arranged::<Cube>(a, &va)),
            (Some((i, a, va)), Some((j, b, vb))) => {
                let (a, b) = <Cube as ArrangeOps>::arrange2(a, b, [va, vb]);
                (out[i], out[j]) = (Some(a), Some(b));
            }
            _ => unreachable!("a group of one or two"),
        }
    }
    out.into_iter().map(|tensor| tensor.expect("every item is arranged")).collect()
}

/// Views of two tensors at once.
#[backend_extension(Cube: cfg(any(feature = "gpu-backend", feature = "cuda")), Fusion: cfg(any(feature = "gpu-backend", feature = "cuda")))]
pub trait ArrangeOps: Backend {
    /// `a` after `views[0]` and `b` after `views[1]`.
    #[fusion(meta = arranged2_meta)]
    fn arrange2(a: FloatTensor<Self>, b: FloatTensor<Self>, views: [Vec<View>; 2]) -> (FloatTensor<Self>, FloatTensor<Self>);
}

/// The outputs of [`ArrangeOps::arrange2`]: each input's element type in the shape after its views.
fn arranged2_meta(a: &TensorSpec, b: &TensorSpec, views: &[Vec<View>; 2]) -> (TensorSpec, TensorSpec) {
    (
        TensorSpec::new(shape_after(&a.shape, &views[0]), a.dtype),
        TensorSpec::new(shape_after(&b.shape, &views[1]), b.dtype),
    )
}

impl ArrangeOps for CubeBackend {
    fn arrange2(a: CubeTensor, b: CubeTensor, views: [Vec<View>; 2]) -> (CubeTensor, CubeTensor) {
        (arranged::<Self>(a, &views[0]), arranged::<Self>(b, &views[1]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shape_after_views_follows_them_in_order() {
        let shape = Shape::from([2, 5, 384]);
        assert_eq!(shape_after(&shape, &[]), shape);
        assert_eq!(shape_after(&shape, &[View::Reshape(Shape::from([10, 384]))]), Shape::from([10, 384]));
        assert_eq!(shape_after(&shape, &[View::Reshape(Shape::from([10, 384])), View::Transpose]), Shape::from([384, 10]));
        assert_eq!(shape_after(&Shape::from([384, 96]), &[View::Transpose, View::Reshape(Shape::from([1, 96, 384]))]), Shape::from([1, 96, 384]));
    }

    #[test]
    #[should_panic(expected = "reshaping")]
    fn a_reshape_that_changes_the_number_of_values_is_a_bug() {
        shape_after(&Shape::from([2, 3]), &[View::Reshape(Shape::from([7]))]);
    }
}
