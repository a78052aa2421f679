//! Packing many tensors into one vector in one kernel launch, on burn's GPU backend: the
//! optimizer's gather of the gradients into its group vectors (`train::optim`), and the way back:
//! many views of one vector as one recorded operation (the parameters, cut from the updated
//! vectors after each step).
//!
//! Done with burn's ops, each gradient is one slice assignment into its group's vector, plus a
//! copy where the gradient is not laid out row-major (a depthwise filter's, after burn's
//! channels-last convolution): 342 slice assignments and 39 copies per CvT-13 training step, one
//! launch each, for a step the host's launches already bound. Here one launch writes up to
//! [`PARTS`] tensors, each read in its logical order whatever its strides, to their offsets.

use burn::backend::cubecl::dtype_to_storage_type;
use burn::backend::tensor::FloatTensor;
use burn::backend::ops::FloatTensorOps;
use burn::backend::fusion::custom::TensorSpec;
use burn::backend::{Backend, backend_extension};
use burn::tensor::{Shape, Slice};
use burn_cubecl::CubeBackend;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;
use cubecl::std::tensor::layout::linear::LinearView;
use cubecl::{calculate_cube_count_elemwise, std::tensor::layout::linear::LinearViewLaunch};

/// Tensors one launch packs.
pub const PARTS: usize = 8;

/// Writing tensors into a vector at given offsets.
#[backend_extension(Cube: cfg(any(feature = "gpu-backend", feature = "cuda")), Fusion: cfg(any(feature = "gpu-backend", feature = "cuda")))]
pub trait PackOps: Backend {
    /// `into` (a vector) with `parts[i]`, read in its logical (row-major) order, written from
    /// `offsets[i]` on, for the first `count` parts; the other parts are not read.
    #[fusion(dtype = into, shape = into)]
    #[allow(clippy::too_many_arguments)]
    fn pack(
        into: FloatTensor<Self>,
        p0: FloatTensor<Self>,
        p1: FloatTensor<Self>,
        p2: FloatTensor<Self>,
        p3: FloatTensor<Self>,
        p4: FloatTensor<Self>,
        p5: FloatTensor<Self>,
        p6: FloatTensor<Self>,
        p7: FloatTensor<Self>,
        offsets: [usize; PARTS],
        count: usize,
    ) -> FloatTensor<Self>;

    /// [`PARTS`] views of `from` (a vector, row-major): part `i` the `shapes[i]`-shaped values from
    /// `offsets[i]` on, sharing `from`'s memory (nothing is launched). Done with burn's ops each is
    /// a slice and a reshape, two operations recorded, fused and dropped one by one; here the
    /// eight are one.
    #[fusion(meta = views_meta)]
    #[allow(clippy::type_complexity)]
    fn views(
        from: FloatTensor<Self>,
        offsets: [usize; PARTS],
        shapes: [Shape; PARTS],
    ) -> (
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
    );
}

/// The outputs of [`PackOps::views`]: `from`'s element type in the given shapes.
#[allow(clippy::type_complexity)]
fn views_meta(
    from: &TensorSpec,
    _offsets: &[usize; PARTS],
    shapes: &[Shape; PARTS],
) -> (TensorSpec, TensorSpec, TensorSpec, TensorSpec, TensorSpec, TensorSpec, TensorSpec, TensorSpec) {
    let spec = |i: usize| TensorSpec::new(shapes[i].clone(), from.dtype);
    (spec(0), spec(1), spec(2), spec(3), spec(4), spec(5), spec(6), spec(7))
}

/// Thread `i` of the launch writes element `i − starts[k]` of the part `k` it falls in
/// (`starts` holds the parts' first threads and the end).
#[cube(launch_unchecked, address_type = "dynamic")]
#[allow(clippy::too_many_arguments)]
fn pack_kernel<E: Numeric>(
    into: &mut Tensor<E>,
    p0: LinearView<'_, E>,
    p1: LinearView<'_, E>,
    p2: LinearView<'_, E>,
    p3: LinearView<'_, E>,
    p4: LinearView<'_, E>,
    p5: LinearView<'_, E>,
    p6: LinearView<'_, E>,
    p7: LinearView<'_, E>,
    starts: Sequence<usize>,
    offsets: Sequence<usize>,
    #[define(E)] _dtype: ElemType,
) {
    let pos = ABSOLUTE_POS;
    if pos >= starts[8] {
        terminate!();
    }
    if pos < starts[1] {
        into[offsets[0] + pos] = p0.read(pos);
    } else if pos < starts[2] {
        into[offsets[1] + pos - starts[1]] = p1.read(pos - starts[1]);
    } else if pos < starts[3] {
        into[offsets[2] + pos - starts[2]] = p2.read(pos - starts[2]);
    } else if pos < starts[4] {
        into[offsets[3] + pos - starts[3]] = p3.read(pos - starts[3]);
    } else if pos < starts[5] {
        into[offsets[4] + pos - starts[4]] = p4.read(pos - starts[4]);
    } else if pos < starts[6] {
        into[offsets[5] + pos - starts[5]] = p5.read(pos - starts[5]);
    } else if pos < starts[7] {
        into[offsets[6] + pos - starts[6]] = p6.read(pos - starts[6]);
    } else {
        into[offsets[7] + pos - starts[7]] = p7.read(pos - starts[7]);
    }
}

impl PackOps for CubeBackend {
    fn pack(
        into: CubeTensor,
        p0: CubeTensor,
        p1: CubeTensor,
        p2: CubeTensor,
        p3: CubeTensor,
        p4: CubeTensor,
        p5: CubeTensor,
        p6: CubeTensor,
        p7: CubeTensor,
        offsets: [usize; PARTS],
        count: usize,
    ) -> CubeTensor {
        let parts = [p0, p1, p2, p3, p4, p5, p6, p7];
        let capacity = into.meta.num_elements();
        for (part, offset) in parts.iter().zip(offsets).take(count) {
            // the kernel writes unchecked
            assert!(offset + part.meta.num_elements() <= capacity, "pack: a part of {} values at {offset} overruns a vector of {capacity}", part.meta.num_elements());
        }
        let client = into.client.clone();
        // the parts, the vector and cubecl's metadata: a device with fewer storage bindings a
        // kernel (WebGPU's default is 8) takes a slice assignment per part
        if (client.properties().hardware.max_bindings as usize) < PARTS + 2 {
            return parts.into_iter().zip(offsets).take(count).fold(into, |into, (part, offset)| {
                let len = part.meta.num_elements();
                let flat = CubeBackend::float_reshape(part, Shape::from([len]));
                CubeBackend::float_slice_assign(into, &[Slice::from(offset..offset + len)], flat)
            });
        }
        let into = if into.can_mut() && into.is_nonoverlapping() { into } else { into.copy() };
        let address = parts.iter().chain([&into]).map(|t| t.required_address_type()).max().unwrap_or_default();
        let mut starts = SequenceArg::<usize>::new();
        let mut offset_arg = SequenceArg::<usize>::new();
        let mut end = 0;
        for (i, part) in parts.iter().enumerate() {
            starts.push(end);
            offset_arg.push(offsets[i]);
            if i < count {
                end += part.meta.num_elements();
            }
        }
        starts.push(end);
        let cube_dim = CubeDim::new(&client, end);
        let cube_count = calculate_cube_count_elemwise(&client, end, cube_dim);
        let [p0, p1, p2, p3, p4, p5, p6, p7] = parts.map(|p| -> LinearViewLaunch { p.into_linear_view() });
        unsafe {
            pack_kernel::launch_unchecked(
                &client,
                cube_count,
                cube_dim,
                address,
                into.clone().into_tensor_arg(),
                p0,
                p1,
                p2,
                p3,
                p4,
                p5,
                p6,
                p7,
                starts,
                offset_arg,
                dtype_to_storage_type(into.dtype),
            );
        }
        into
    }

    fn views(from: CubeTensor, offsets: [usize; PARTS], shapes: [Shape; PARTS]) -> (CubeTensor, CubeTensor, CubeTensor, CubeTensor, CubeTensor, CubeTensor, CubeTensor, CubeTensor) {
        let from = burn_cubecl::kernel::untile(from);
        let capacity = from.meta.num_elements();
        let row = from.meta.num_dims() == 1 && from.meta.strides()[0] == 1;
        let size = from.dtype.size() as u64;
        let alignment = from.client.properties().memory.alignment;
        let view = |i: usize| {
            let (offset, len) = (offsets[i], shapes[i].num_elements());
            assert!(offset + len <= capacity, "views: a part of {len} values at {offset} overruns a vector of {capacity}");
            let (start, end) = (offset as u64 * size, (capacity - offset - len) as u64 * size);
            // burn's slice makes a view only where both ends fall on the device's alignment and
            // copies otherwise: on CUDA (512 bytes) every part whose length is not a multiple of
            // 128 values. A binding's offset must be aligned; its size only a multiple of 4
            // bytes (WebGPU's rule; CUDA has none), so the part's end may fall anywhere.
            if row && start.is_multiple_of(alignment) && end.is_multiple_of(4) {
                let handle = from.handle.clone().offset_start(start).offset_end(end);
                CubeTensor::new_contiguous(from.client.clone(), from.device.clone(), shapes[i].clone(), handle, from.dtype)
            } else {
                let part = CubeBackend::float_slice(from.clone(), &[Slice::from(offset..offset + len)]);
                CubeBackend::float_reshape(part, shapes[i].clone())
            }
        };
        (view(0), view(1), view(2), view(3), view(4), view(5), view(6), view(7))
    }
}
