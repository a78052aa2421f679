//! Layer normalisation for the models, on brasa's fused kernel where one serves (flex, f32).
//!
//! The same module as burn's `nn::LayerNorm` — parameters `gamma` and `beta`, the type named
//! `LayerNorm` (the optimizer's no-decay group finds LayerNorm weights by it) — so saved runs and
//! Hugging Face imports load unchanged; only the op it calls differs.

use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::tensor::{DType, Device, FloatDType, Tensor};

use crate::kernels;

#[derive(Module, Debug)]
pub struct LayerNorm {
    pub gamma: Param<Tensor<1>>,
    pub beta: Option<Param<Tensor<1>>>,
    epsilon: f64,
}

impl LayerNorm {
    /// Unit weight, zero bias over `width` features.
    pub fn new(width: usize, epsilon: f64, device: &Device) -> Self {
        LayerNorm {
            gamma: Initializer::Ones.init([width], device),
            beta: Some(Initializer::Zeros.init([width], device)),
            epsilon,
        }
    }

    /// Normalises over the last axis, which must be `width` long.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        let gamma = self.gamma.val();
        let beta = self.beta.as_ref().map(|b| b.val());
        // f16 cannot hold the sums the normalisation takes: widened as burn's LayerNorm does.
        if input.dtype() == DType::F16 {
            let wide = FloatDType::F32;
            let out = kernels::layer_norm(input.cast(wide), gamma.cast(wide), beta.map(|b| b.cast(wide)), self.epsilon);
            return out.cast(FloatDType::F16);
        }
        kernels::layer_norm(input, gamma, beta, self.epsilon)
    }
}
