//! The global gradient norm over all parameters together, and clipping to it, as PyTorch's
//! `clip_grad_norm_` does (burn's own `GradientClipping::Norm` clips each parameter alone),
//! one parameter at a time on the host: the reference [`super::optim::AdamW`]'s clip is tested
//! against (test builds only).

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

/// Sums of squares of every gradient, one scalar tensor per parameter.
struct SquaredNorms<'a> {
    grads: &'a GradientsParams,
    sums: Vec<Tensor<1>>,
}

impl ModuleVisitor for SquaredNorms<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.get::<D>(param.id) {
            self.sums.push(grad.square().sum());
        }
    }
}

/// Multiplies every gradient by `factor`.
struct Scale<'a> {
    grads: &'a mut GradientsParams,
    factor: f64,
}

impl ModuleVisitor for Scale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.remove::<D>(param.id) {
            self.grads.register(param.id, grad.mul_scalar(self.factor));
        }
    }
}

/// The L2 norm of all gradients of `module`'s parameters taken together, read back (the reference
/// [`global_norm_tensor`] is tested against).
pub fn global_norm<M: Module>(module: &M, grads: &GradientsParams) -> f64 {
    let mut visitor = SquaredNorms { grads, sums: Vec::new() };
    module.visit(&mut visitor);
    if visitor.sums.is_empty() {
        return 0.0;
    }
    let total: f32 = Tensor::cat(visitor.sums, 0).sum().into_scalar();
    (total as f64).sqrt()
}

/// Scales the gradients so their global norm is at most `max_norm`; `norm` is their current
/// global norm. PyTorch's coefficient: `max_norm / (norm + 1e-6)`, applied only when below 1.
/// The host-side reference [`clip_tensor`] is tested against.
pub fn clip<M: Module>(module: &M, grads: &mut GradientsParams, norm: f64, max_norm: f64) {
    let factor = max_norm / (norm + 1e-6);
    if factor < 1.0 {
        module.visit(&mut Scale { grads, factor });
    }
}

mod tests {
    use super::*;
    use burn::nn::LinearConfig;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn clipping_bounds_the_global_norm() {
        let device = Device::flex().autodiff();
        let linear = LinearConfig::new(3, 2).init(&device);
        let input = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, -2.0, 3.0, 0.5, 4.0, -1.0], [2, 3]), &device);
        let loss = linear.forward(input).powf_scalar(2.0).sum().mul_scalar(10.0);
        let mut grads = GradientsParams::from_grads(loss.backward(), &linear);
        let norm = global_norm(&linear, &grads);
        assert!(norm > 1.0, "norm {norm}");
        // the sum of per-parameter squared norms equals the global squared norm
        let weight: Vec<f32> = grads.get::<2>(linear.weight.id).unwrap().into_data().try_into_vec().unwrap();
        let bias: Vec<f32> = grads.get::<1>(linear.bias.as_ref().unwrap().id).unwrap().into_data().try_into_vec().unwrap();
        let by_hand = weight.iter().chain(&bias).map(|g| (*g as f64).powi(2)).sum::<f64>().sqrt();
        assert!((norm - by_hand).abs() / by_hand < 1e-5);
        clip(&linear, &mut grads, norm, 1.0);
        let clipped = global_norm(&linear, &grads);
        assert!((clipped - 1.0).abs() < 1e-4, "clipped norm {clipped}");
    }
}
