//! ViT (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words") as Hugging Face transformers
//! implements it in `modeling_vit.py` (`ViTForImageClassification`).
//!
//! Field names mirror the Hugging Face modules (`vit.embeddings.patch_embeddings.projection`,
//! `vit.encoder.layer.0.attention.attention.query`, ...) so checkpoints load without a renaming
//! table.

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Dropout, DropoutConfig, Initializer, Linear, LinearConfig};
use burn::tensor::{Device, Tensor, TensorData};

use super::attention::Attentions;
use super::norm::LayerNorm;
use crate::kernels::{self, softmax};

/// Hyperparameters of a ViT (`ViTConfig` in transformers).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VitConfig {
    pub num_channels: usize,
    pub num_labels: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub hidden_dropout_prob: f64,
    pub attention_probs_dropout_prob: f64,
    pub layer_norm_eps: f64,
    /// The image size the position embeddings are laid out for.
    pub image_size: usize,
    pub patch_size: usize,
    pub qkv_bias: bool,
    pub initializer_range: f64,
}

impl VitConfig {
    /// `google/vit-base-patch16-224` (transformers' `ViTConfig()` defaults).
    pub fn base_patch16_224(num_labels: usize) -> Self {
        Self {
            num_channels: 3,
            num_labels,
            hidden_size: 768,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            intermediate_size: 3072,
            hidden_dropout_prob: 0.0,
            attention_probs_dropout_prob: 0.0,
            layer_norm_eps: 1e-12,
            image_size: 224,
            patch_size: 16,
            qkv_bias: true,
            initializer_range: 0.02,
        }
    }

    /// ViT-S/16 (DeiT-small shape): hidden 384, 6 heads.
    pub fn small_patch16_224(num_labels: usize) -> Self {
        Self { hidden_size: 384, num_attention_heads: 6, intermediate_size: 1536, ..Self::base_patch16_224(num_labels) }
    }

    /// ViT-Ti/16 (DeiT-tiny shape): hidden 192, 3 heads.
    pub fn tiny_patch16_224(num_labels: usize) -> Self {
        Self { hidden_size: 192, num_attention_heads: 3, intermediate_size: 768, ..Self::base_patch16_224(num_labels) }
    }

    /// A CPU-sized ViT: hidden 192, 6 layers, 3 heads, patch 8 (for 96–128 px inputs).
    pub fn tiny_patch8(num_labels: usize, image_size: usize) -> Self {
        Self {
            num_hidden_layers: 6,
            patch_size: 8,
            image_size,
            ..Self::tiny_patch16_224(num_labels)
        }
    }

    fn linear(&self, d_in: usize, d_out: usize, bias: bool, device: &Device) -> Linear {
        let mut linear = LinearConfig::new(d_in, d_out)
            .with_bias(bias)
            .with_initializer(Initializer::Normal { mean: 0.0, std: self.initializer_range })
            .init(device);
        linear.bias = linear.bias.map(|_| Initializer::Zeros.init([d_out], device));
        linear
    }

    fn layer_norm(&self, device: &Device) -> LayerNorm {
        LayerNorm::new(self.hidden_size, self.layer_norm_eps, device)
    }

    /// A freshly initialised model (`ViTPreTrainedModel._init_weights`: truncated-normal
    /// weights, zero biases, unit LayerNorms, truncated-normal position embeddings and cls token).
    pub fn init(&self, device: &Device) -> ViTForImageClassification {
        let h = self.hidden_size;
        let grid = self.image_size / self.patch_size;
        let normal = Initializer::Normal { mean: 0.0, std: self.initializer_range };
        let mut projection = Conv2dConfig::new([self.num_channels, h], [self.patch_size, self.patch_size])
            .with_stride([self.patch_size, self.patch_size])
            .with_initializer(normal.clone())
            .init(device);
        projection.bias = projection.bias.map(|_| Initializer::Zeros.init([h], device));
        let layer = (0..self.num_hidden_layers)
            .map(|_| ViTLayer {
                attention: ViTAttention {
                    attention: ViTSelfAttention {
                        query: self.linear(h, h, self.qkv_bias, device),
                        key: self.linear(h, h, self.qkv_bias, device),
                        value: self.linear(h, h, self.qkv_bias, device),
                        dropout: DropoutConfig::new(self.attention_probs_dropout_prob).init(),
                        num_attention_heads: self.num_attention_heads,
                    },
                    output: ViTSelfOutput {
                        dense: self.linear(h, h, true, device),
                        dropout: DropoutConfig::new(self.hidden_dropout_prob).init(),
                    },
                },
                intermediate: ViTIntermediate { dense: self.linear(h, self.intermediate_size, true, device) },
                output: ViTOutput {
                    dense: self.linear(self.intermediate_size, h, true, device),
                    dropout: DropoutConfig::new(self.hidden_dropout_prob).init(),
                },
                layernorm_before: self.layer_norm(device),
                layernorm_after: self.layer_norm(device),
            })
            .collect();
        ViTForImageClassification {
            vit: ViTModel {
                embeddings: ViTEmbeddings {
                    cls_token: normal.init([1, 1, h], device),
                    position_embeddings: normal.init([1, grid * grid + 1, h], device),
                    patch_embeddings: ViTPatchEmbeddings { projection },
                    dropout: DropoutConfig::new(self.hidden_dropout_prob).init(),
                },
                encoder: ViTEncoder { layer },
                layernorm: self.layer_norm(device),
            },
            classifier: self.linear(h, self.num_labels, true, device),
        }
    }
}

#[derive(Module, Debug)]
pub struct ViTForImageClassification {
    pub vit: ViTModel,
    pub classifier: Linear,
}

impl ViTForImageClassification {
    /// Logits `[batch, num_labels]` from the final cls token.
    pub fn forward(&self, pixel_values: Tensor<4>) -> Tensor<2> {
        self.classify(self.vit.forward(pixel_values))
    }

    /// [`forward`](Self::forward) that also returns every encoder layer's attention
    /// probabilities (for attention maps; the model should be a `valid()` copy).
    pub fn forward_with_attention(&self, pixel_values: Tensor<4>) -> (Tensor<2>, Attentions) {
        let (sequence, attentions) = self.vit.forward_with_attention(pixel_values);
        (self.classify(sequence), attentions)
    }

    fn classify(&self, sequence: Tensor<3>) -> Tensor<2> {
        let [b, _, h] = sequence.dims();
        kernels::linear(&self.classifier, sequence.narrow(1, 0, 1).reshape([b, h]))
    }

    /// Lays the position embeddings out for `image_size` inputs (bicubic, like transformers'
    /// `interpolate_pos_encoding`). A no-op when the grid is unchanged.
    pub fn resize_position_embeddings(mut self, image_size: usize) -> Self {
        let embeddings = &mut self.vit.embeddings;
        let patch = embeddings.patch_embeddings.projection.kernel_size[0];
        let new_grid = image_size / patch;
        let table = embeddings.position_embeddings.val();
        let [_, positions, dim] = table.dims();
        let old_grid = ((positions - 1) as f64).sqrt().round() as usize;
        if new_grid == old_grid {
            return self;
        }
        let device = table.device();
        let values: Vec<f32> = table.into_data().try_into_vec().expect("f32 position embeddings");
        let resized = interpolate_positions(&values, old_grid, new_grid, dim);
        let tensor = Tensor::<3>::from_data(TensorData::new(resized, [1, new_grid * new_grid + 1, dim]), &device);
        embeddings.position_embeddings = Param::from_tensor(tensor);
        self
    }
}

/// transformers' `interpolate_pos_encoding`: the cls position is kept, the patch grid is
/// resized with PyTorch's bicubic kernel (a = -0.75, `align_corners=False`, borders clamped).
pub fn interpolate_positions(table: &[f32], old_grid: usize, new_grid: usize, dim: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity((new_grid * new_grid + 1) * dim);
    out.extend_from_slice(&table[..dim]);
    let patch = |y: usize, x: usize, d: usize| table[(1 + y * old_grid + x) * dim + d] as f64;
    let scale = old_grid as f64 / new_grid as f64;
    let taps = |o: usize| {
        let src = (o as f64 + 0.5) * scale - 0.5;
        let base = src.floor();
        let t = src - base;
        let weights = cubic_weights(t);
        let index = |k: i64| (base as i64 + k - 1).clamp(0, old_grid as i64 - 1) as usize;
        ([index(0), index(1), index(2), index(3)], weights)
    };
    for oy in 0..new_grid {
        let (ys, wy) = taps(oy);
        for ox in 0..new_grid {
            let (xs, wx) = taps(ox);
            for d in 0..dim {
                let mut value = 0.0;
                for (yi, &y) in ys.iter().enumerate() {
                    for (xi, &x) in xs.iter().enumerate() {
                        value += wy[yi] * wx[xi] * patch(y, x, d);
                    }
                }
                out.push(value as f32);
            }
        }
    }
    out
}

/// PyTorch's cubic convolution weights (A = -0.75) for the four taps around offset `t`.
fn cubic_weights(t: f64) -> [f64; 4] {
    const A: f64 = -0.75;
    let near = |x: f64| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let far = |x: f64| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)]
}

#[derive(Module, Debug)]
pub struct ViTModel {
    pub embeddings: ViTEmbeddings,
    pub encoder: ViTEncoder,
    pub layernorm: LayerNorm,
}

impl ViTModel {
    /// The normalised token sequence `[batch, 1 + patches, hidden]`.
    pub fn forward(&self, pixel_values: Tensor<4>) -> Tensor<3> {
        self.run(pixel_values, |layer, hidden| layer.forward(hidden))
    }

    /// [`forward`](Self::forward) and the attention probabilities `[batch, heads, 1 + patches,
    /// 1 + patches]` of every layer, first to last (token 0 is the cls token).
    pub fn forward_with_attention(&self, pixel_values: Tensor<4>) -> (Tensor<3>, Attentions) {
        let key_grid = self.embeddings.patch_embeddings.grid(&pixel_values);
        let mut probs = Vec::with_capacity(self.encoder.layer.len());
        let sequence = self.run(pixel_values, |layer, hidden| {
            let (hidden, layer_probs) = layer.forward_with_attention(hidden);
            probs.push(layer_probs);
            hidden
        });
        (sequence, Attentions { probs, key_grid, cls_token: true })
    }

    /// Embeddings, `layer_forward` for each encoder layer in turn, final LayerNorm.
    fn run(&self, pixel_values: Tensor<4>, mut layer_forward: impl FnMut(&ViTLayer, Tensor<3>) -> Tensor<3>) -> Tensor<3> {
        let mut hidden = self.embeddings.forward(pixel_values);
        for layer in &self.encoder.layer {
            hidden = layer_forward(layer, hidden);
        }
        self.layernorm.forward(hidden)
    }
}

#[derive(Module, Debug)]
pub struct ViTEmbeddings {
    pub cls_token: Param<Tensor<3>>,
    pub position_embeddings: Param<Tensor<3>>,
    pub patch_embeddings: ViTPatchEmbeddings,
    pub dropout: Dropout,
}

impl ViTEmbeddings {
    fn forward(&self, pixel_values: Tensor<4>) -> Tensor<3> {
        let patches = self.patch_embeddings.forward(pixel_values);
        let [b, n, h] = patches.dims();
        let positions = self.position_embeddings.val();
        let expected = positions.dims()[1] - 1;
        assert_eq!(
            n, expected,
            "ViT position embeddings cover {expected} patches but the image has {n}: resize them first"
        );
        let tokens = Tensor::cat(vec![self.cls_token.val().expand([b, 1, h]), patches], 1);
        self.dropout.forward(tokens + positions)
    }
}

#[derive(Module, Debug)]
pub struct ViTPatchEmbeddings {
    pub projection: Conv2d,
}

impl ViTPatchEmbeddings {
    /// The patch grid `[height, width]` of `pixel_values` (an unpadded convolution).
    fn grid(&self, pixel_values: &Tensor<4>) -> [usize; 2] {
        let [_, _, height, width] = pixel_values.dims();
        let conv = &self.projection;
        [
            (height - conv.kernel_size[0]) / conv.stride[0] + 1,
            (width - conv.kernel_size[1]) / conv.stride[1] + 1,
        ]
    }

    fn forward(&self, pixel_values: Tensor<4>) -> Tensor<3> {
        let projected = self.projection.forward(pixel_values);
        let [b, h, gh, gw] = projected.dims();
        projected.reshape([b, h, gh * gw]).swap_dims(1, 2)
    }
}

#[derive(Module, Debug)]
pub struct ViTEncoder {
    pub layer: Vec<ViTLayer>,
}

/// Pre-norm transformer block.
#[derive(Module, Debug)]
pub struct ViTLayer {
    pub attention: ViTAttention,
    pub intermediate: ViTIntermediate,
    pub output: ViTOutput,
    pub layernorm_before: LayerNorm,
    pub layernorm_after: LayerNorm,
}

impl ViTLayer {
    fn forward(&self, hidden: Tensor<3>) -> Tensor<3> {
        self.run(hidden, |attention, normed| attention.forward(normed))
    }

    fn forward_with_attention(&self, hidden: Tensor<3>) -> (Tensor<3>, Tensor<4>) {
        let mut probs = None;
        let hidden = self.run(hidden, |attention, normed| {
            let (context, layer_probs) = attention.forward_with_attention(normed);
            probs = Some(layer_probs);
            context
        });
        (hidden, probs.expect("the layer ran its self-attention"))
    }

    /// The block around its self-attention, which `self_attention` computes.
    fn run(&self, hidden: Tensor<3>, self_attention: impl FnOnce(&ViTSelfAttention, Tensor<3>) -> Tensor<3>) -> Tensor<3> {
        let context = self_attention(&self.attention.attention, self.layernorm_before.forward(hidden.clone()));
        let attended = self.attention.output.forward(context);
        let hidden = attended + hidden;
        let pre_activation = self.intermediate.pre_activation(self.layernorm_after.forward(hidden.clone()));
        self.output.forward(pre_activation, hidden)
    }
}

#[derive(Module, Debug)]
pub struct ViTAttention {
    pub attention: ViTSelfAttention,
    pub output: ViTSelfOutput,
}

#[derive(Module, Debug)]
pub struct ViTSelfAttention {
    pub query: Linear,
    pub key: Linear,
    pub value: Linear,
    pub dropout: Dropout,
    pub num_attention_heads: usize,
}

impl ViTSelfAttention {
    fn forward(&self, hidden: Tensor<3>) -> Tensor<3> {
        if self.dropout.prob == 0.0 || !hidden.device().is_autodiff() {
            let [_, _, width] = hidden.dims();
            let scale = ((width / self.num_attention_heads) as f64).powf(-0.5);
            let query = kernels::linear(&self.query, hidden.clone());
            let key = kernels::linear(&self.key, hidden.clone());
            let value = kernels::linear(&self.value, hidden);
            return kernels::attention(query, key, value, self.num_attention_heads, scale);
        }
        let (probs, value) = self.probs_and_values(hidden);
        kernels::merge_heads(probs.matmul(value))
    }

    /// [`forward`](Self::forward) and the attention probabilities `[batch, heads, tokens, tokens]`.
    fn forward_with_attention(&self, hidden: Tensor<3>) -> (Tensor<3>, Tensor<4>) {
        let (probs, value) = self.probs_and_values(hidden);
        (kernels::merge_heads(probs.clone().matmul(value)), probs)
    }

    /// Softmax attention (after dropout) and values, both split into heads.
    fn probs_and_values(&self, hidden: Tensor<3>) -> (Tensor<4>, Tensor<4>) {
        let [_, _, width] = hidden.dims();
        let heads = self.num_attention_heads;
        let head_dim = width / heads;
        let split = |x: Tensor<3>| kernels::split_heads(x, heads);
        let query = split(kernels::linear(&self.query, hidden.clone()));
        let key = split(kernels::linear(&self.key, hidden.clone()));
        let value = split(kernels::linear(&self.value, hidden));
        let scores = query.matmul(key.swap_dims(2, 3)).mul_scalar((head_dim as f64).powf(-0.5));
        (self.dropout.forward(softmax(scores, 3)), value)
    }
}


#[derive(Module, Debug)]
pub struct ViTSelfOutput {
    pub dense: Linear,
    pub dropout: Dropout,
}

impl ViTSelfOutput {
    fn forward(&self, hidden: Tensor<3>) -> Tensor<3> {
        self.dropout.forward(kernels::linear(&self.dense, hidden))
    }
}

#[derive(Module, Debug)]
pub struct ViTIntermediate {
    pub dense: Linear,
}

impl ViTIntermediate {
    /// The MLP's first product, before its GELU: HF's module applies the GELU itself; here
    /// [`ViTOutput`] takes it into its product (`kernels::gelu_linear`), so the MLP's widest
    /// activation is not kept for the backward. Same values.
    fn pre_activation(&self, hidden: Tensor<3>) -> Tensor<3> {
        kernels::linear(&self.dense, hidden)
    }
}

#[derive(Module, Debug)]
pub struct ViTOutput {
    pub dense: Linear,
    pub dropout: Dropout,
}

impl ViTOutput {
    /// GELU of the MLP's pre-activation through this product, plus the residual.
    fn forward(&self, pre_activation: Tensor<3>, residual: Tensor<3>) -> Tensor<3> {
        self.dropout.forward(kernels::gelu_linear(&self.dense, pre_activation)) + residual
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cubic_weights_sum_to_one_and_interpolation_keeps_constants() {
        for t in [0.0, 0.25, 0.5, 0.9] {
            assert!((cubic_weights(t).iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
        let dim = 2;
        let table: Vec<f32> = std::iter::repeat_n([0.5f32, -1.0], 1 + 16).flatten().collect();
        let out = interpolate_positions(&table, 4, 6, dim);
        assert_eq!(out.len(), (36 + 1) * dim);
        assert!(out.chunks(2).all(|p| (p[0] - 0.5).abs() < 1e-6 && (p[1] + 1.0).abs() < 1e-6));
    }
}
