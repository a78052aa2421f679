//! CvT (Wu et al. 2021, "CvT: Introducing Convolutions to Vision Transformers") as Hugging Face
//! transformers implements it in `modeling_cvt.py` (`CvtForImageClassification`).
//!
//! Module and field names mirror the Hugging Face ones (`cvt.encoder.stages.0.layers.0.attention
//! .attention.convolution_projection_query.convolution_projection.convolution.weight`, ...) so its
//! checkpoints load without a renaming table. Quirks of that implementation are reproduced on
//! purpose and marked `HF quirk`.

use burn::module::{Flag, Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Initializer, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::{Device, Distribution, Tensor};

use super::attention::Attentions;
use super::norm::LayerNorm;
use crate::kernels::{self, softmax};

/// `nn.LayerNorm`'s default ε, which every CvT LayerNorm in transformers keeps.
const LAYER_NORM_EPSILON: f64 = 1e-5;

/// Hyperparameters of a CvT, one entry per stage (`CvtConfig` in transformers).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CvtConfig {
    pub num_channels: usize,
    pub num_labels: usize,
    pub patch_sizes: Vec<usize>,
    pub patch_stride: Vec<usize>,
    pub patch_padding: Vec<usize>,
    pub embed_dim: Vec<usize>,
    pub num_heads: Vec<usize>,
    pub depth: Vec<usize>,
    pub mlp_ratio: Vec<f64>,
    pub attention_drop_rate: Vec<f64>,
    pub drop_rate: Vec<f64>,
    pub drop_path_rate: Vec<f64>,
    pub qkv_bias: Vec<bool>,
    pub cls_token: Vec<bool>,
    pub kernel_qkv: Vec<usize>,
    pub padding_kv: Vec<usize>,
    pub stride_kv: Vec<usize>,
    pub padding_q: Vec<usize>,
    pub stride_q: Vec<usize>,
    /// Standard deviation of the (truncated) normal weight initialisation.
    pub initializer_range: f64,
}

impl CvtConfig {
    /// transformers' `CvtConfig()` defaults: `microsoft/cvt-13`.
    pub fn cvt13(num_labels: usize) -> Self {
        Self {
            num_channels: 3,
            num_labels,
            patch_sizes: vec![7, 3, 3],
            patch_stride: vec![4, 2, 2],
            patch_padding: vec![2, 1, 1],
            embed_dim: vec![64, 192, 384],
            num_heads: vec![1, 3, 6],
            depth: vec![1, 2, 10],
            mlp_ratio: vec![4.0; 3],
            attention_drop_rate: vec![0.0; 3],
            drop_rate: vec![0.0; 3],
            drop_path_rate: vec![0.0, 0.0, 0.1],
            qkv_bias: vec![true; 3],
            cls_token: vec![false, false, true],
            kernel_qkv: vec![3; 3],
            padding_kv: vec![1; 3],
            stride_kv: vec![2; 3],
            padding_q: vec![1; 3],
            stride_q: vec![1; 3],
            initializer_range: 0.02,
        }
    }

    /// `microsoft/cvt-21`: CvT-13 with depth 1/4/16.
    pub fn cvt21(num_labels: usize) -> Self {
        Self { depth: vec![1, 4, 16], ..Self::cvt13(num_labels) }
    }

    /// A CPU-sized CvT (0.6 M parameters): embed 32/64/128, depth 1/2/2, heads 1/2/4.
    pub fn tiny(num_labels: usize) -> Self {
        Self {
            embed_dim: vec![32, 64, 128],
            depth: vec![1, 2, 2],
            num_heads: vec![1, 2, 4],
            ..Self::cvt13(num_labels)
        }
    }

    pub fn stages(&self) -> usize {
        self.depth.len()
    }

    /// The stochastic-depth rate of every layer of `stage`.
    ///
    /// HF quirk: `CvtStage` computes `linspace(0, drop_path_rate[stage], depth[stage])` and then
    /// indexes it with the *stage* number, so all layers of a stage share one rate (and
    /// transformers raises IndexError when `depth[stage] <= stage`; here the last entry is used,
    /// which is what a model built with a deeper stage and truncated gets).
    pub fn layer_drop_path(&self, stage: usize) -> f64 {
        let (rate, depth) = (self.drop_path_rate[stage], self.depth[stage]);
        if depth <= 1 {
            return 0.0;
        }
        let index = stage.min(depth - 1);
        rate * index as f64 / (depth - 1) as f64
    }

    pub fn init(&self, device: &Device) -> CvtForImageClassification {
        let stages = (0..self.stages()).map(|stage| CvtStage::new(self, stage, device)).collect();
        let last = *self.embed_dim.last().expect("at least one stage");
        CvtForImageClassification {
            cvt: CvtModel { encoder: CvtEncoder { stages } },
            layernorm: LayerNorm::new(last, LAYER_NORM_EPSILON, device),
            classifier: self.linear(last, self.num_labels, true, device),
        }
    }

    /// `nn.Linear` initialised as `CvtPreTrainedModel._init_weights` does it.
    fn linear(&self, d_in: usize, d_out: usize, bias: bool, device: &Device) -> Linear {
        let mut linear = LinearConfig::new(d_in, d_out)
            .with_bias(bias)
            .with_initializer(self.weight_init())
            .init(device);
        linear.bias = linear.bias.map(|_| Initializer::Zeros.init([d_out], device));
        linear
    }

    fn weight_init(&self) -> Initializer {
        // trunc_normal_(std=0.02) truncates at ±2 (absolute), i.e. at ±100 σ: a plain normal.
        Initializer::Normal { mean: 0.0, std: self.initializer_range }
    }
}

/// `CvtForImageClassification`: CvT backbone, LayerNorm on the cls token, linear classifier.
#[derive(Module, Debug)]
pub struct CvtForImageClassification {
    pub cvt: CvtModel,
    pub layernorm: LayerNorm,
    pub classifier: Linear,
}

impl CvtForImageClassification {
    /// Logits `[batch, num_labels]` for pixels `[batch, channels, height, width]`.
    pub fn forward(&self, pixel_values: Tensor<4>) -> Tensor<2> {
        let (sequence, cls_token) = self.cvt.forward(pixel_values);
        self.classify(sequence, cls_token)
    }

    /// [`forward`](Self::forward) that also returns the attention probabilities of the last
    /// stage's layers (for attention maps; the model should be a `valid()` copy).
    pub fn forward_with_attention(&self, pixel_values: Tensor<4>) -> (Tensor<2>, Attentions) {
        let (sequence, cls_token, attentions) = self.cvt.forward_with_attention(pixel_values);
        (self.classify(sequence, cls_token), attentions)
    }

    fn classify(&self, sequence: Tensor<4>, cls_token: Option<Tensor<3>>) -> Tensor<2> {
        let normed = match cls_token {
            Some(cls) => self.layernorm.forward(cls),
            None => self.layernorm.forward(to_tokens(sequence)),
        };
        let [b, _, c] = normed.dims();
        let pooled = normed.mean_dim(1).reshape([b, c]);
        kernels::linear(&self.classifier, pooled)
    }
}

#[derive(Module, Debug)]
pub struct CvtModel {
    pub encoder: CvtEncoder,
}

impl CvtModel {
    /// The last stage's feature map and its cls token, if it has one.
    pub fn forward(&self, pixel_values: Tensor<4>) -> (Tensor<4>, Option<Tensor<3>>) {
        let mut hidden = pixel_values;
        let mut cls_token = None;
        for stage in &self.encoder.stages {
            let (next, cls) = stage.forward(hidden);
            hidden = next;
            cls_token = cls;
        }
        kernels::fold_running_statistics(self.batch_norms());
        (hidden, cls_token)
    }

    /// [`forward`](Self::forward) and the attention probabilities of every layer of the last
    /// stage, `[batch, heads, (1 +) H*W, (1 +) H_kv*W_kv]` (the cls token first where the stage
    /// has one; keys and values come from the stride-2 convolution, so their grid is smaller).
    pub fn forward_with_attention(&self, pixel_values: Tensor<4>) -> (Tensor<4>, Option<Tensor<3>>, Attentions) {
        let (last, earlier) = self.encoder.stages.split_last().expect("at least one stage");
        let mut hidden = pixel_values;
        for stage in earlier {
            hidden = stage.forward(hidden).0;
        }
        let output = last.forward_with_attention(hidden);
        kernels::fold_running_statistics(self.batch_norms());
        output
    }

    /// The batch norms of every layer's query, key and value projections, in module order;
    /// burn's running statistics' updates (where brasa's kernels do not replace them at once) are
    /// folded in at the end of each forward pass ([`kernels::batch_norm_tokens_behind`]).
    fn batch_norms(&self) -> impl Iterator<Item = &BatchNorm> {
        let layers = self.encoder.stages.iter().flat_map(|stage| &stage.layers);
        layers.flat_map(|layer| {
            let attention = &layer.attention.attention;
            [&attention.convolution_projection_query, &attention.convolution_projection_key, &attention.convolution_projection_value]
                .map(|projection| &projection.convolution_projection.normalization)
        })
    }
}

#[derive(Module, Debug)]
pub struct CvtEncoder {
    pub stages: Vec<CvtStage>,
}

#[derive(Module, Debug)]
pub struct CvtStage {
    pub embedding: CvtEmbeddings,
    pub layers: Vec<CvtLayer>,
    pub cls_token: Option<Param<Tensor<3>>>,
}

impl CvtStage {
    fn new(config: &CvtConfig, stage: usize, device: &Device) -> Self {
        let dim = config.embed_dim[stage];
        let in_channels = if stage == 0 { config.num_channels } else { config.embed_dim[stage - 1] };
        let (kernel, stride, padding) =
            (config.patch_sizes[stage], config.patch_stride[stage], config.patch_padding[stage]);
        let mut projection = Conv2dConfig::new([in_channels, dim], [kernel, kernel])
            .with_stride([stride, stride])
            .with_padding(PaddingConfig2d::Explicit(padding, padding, padding, padding))
            .with_initializer(config.weight_init())
            .init(device);
        projection.bias = projection.bias.map(|_| Initializer::Zeros.init([dim], device));
        let embedding = CvtEmbeddings {
            convolution_embeddings: CvtConvEmbeddings {
                projection,
                normalization: LayerNorm::new(dim, LAYER_NORM_EPSILON, device),
            },
            dropout: DropoutConfig::new(config.drop_rate[stage]).init(),
        };
        let layers = (0..config.depth[stage]).map(|_| CvtLayer::new(config, stage, device)).collect();
        let cls_token = config.cls_token[stage].then(|| config.weight_init().init([1, 1, dim], device));
        Self { embedding, layers, cls_token }
    }

    fn forward(&self, pixel_values: Tensor<4>) -> (Tensor<4>, Option<Tensor<3>>) {
        self.run(pixel_values, |layer, hidden, h, w| layer.forward(hidden, h, w))
    }

    fn forward_with_attention(&self, pixel_values: Tensor<4>) -> (Tensor<4>, Option<Tensor<3>>, Attentions) {
        let mut probs = Vec::with_capacity(self.layers.len());
        let mut key_grid = [0, 0];
        let (hidden, cls) = self.run(pixel_values, |layer, hidden, h, w| {
            let (hidden, layer_probs, grid) = layer.forward_with_attention(hidden, h, w);
            probs.push(layer_probs);
            key_grid = grid;
            hidden
        });
        (hidden, cls, Attentions { probs, key_grid, cls_token: self.cls_token.is_some() })
    }

    /// Embedding, cls token, `layer_forward(layer, tokens, height, width)` for each layer in
    /// turn, and the split back into a feature map and the cls token.
    fn run(
        &self,
        pixel_values: Tensor<4>,
        mut layer_forward: impl FnMut(&CvtLayer, Tensor<3>, usize, usize) -> Tensor<3>,
    ) -> (Tensor<4>, Option<Tensor<3>>) {
        let embedded = self.embedding.forward(pixel_values);
        let [b, c, h, w] = embedded.dims();
        let mut hidden = to_tokens(embedded);
        if let Some(cls) = &self.cls_token {
            hidden = Tensor::cat(vec![cls.val().expand([b, 1, c]), hidden], 1);
        }
        for layer in &self.layers {
            hidden = layer_forward(layer, hidden, h, w);
        }
        let (cls, hidden) = match self.cls_token {
            Some(_) => (Some(hidden.clone().narrow(1, 0, 1)), hidden.narrow(1, 1, h * w)),
            None => (None, hidden),
        };
        (to_map(hidden, h, w), cls)
    }
}

#[derive(Module, Debug)]
pub struct CvtEmbeddings {
    pub convolution_embeddings: CvtConvEmbeddings,
    pub dropout: Dropout,
}

impl CvtEmbeddings {
    fn forward(&self, pixel_values: Tensor<4>) -> Tensor<4> {
        self.dropout.forward(self.convolution_embeddings.forward(pixel_values))
    }
}

/// A feature map `[batch, channels, height, width]` as tokens `[batch, height * width, channels]`.
///
/// A single position is a reshape, not a swap of axes: both orders are then the same memory, and
/// the swapped view's size-1 axis gets a stride that burn 0.22's GPU fusion misreads — a fused
/// reduction over it (the LayerNorm after the last stage's embedding, on 16-pixel inputs) gave
/// other values than flex (tests/gpu.rs).
fn to_tokens(map: Tensor<4>) -> Tensor<3> {
    let [b, c, h, w] = map.dims();
    if h * w == 1 { map.reshape([b, 1, c]) } else { map.permute([0, 2, 3, 1]).reshape([b, h * w, c]) }
}

/// Tokens `[batch, height * width, channels]` back as a feature map (see [`to_tokens`]).
fn to_map(tokens: Tensor<3>, h: usize, w: usize) -> Tensor<4> {
    let [b, _, c] = tokens.dims();
    if h * w == 1 { tokens.reshape([b, c, 1, 1]) } else { tokens.reshape([b, h, w, c]).permute([0, 3, 1, 2]) }
}

/// Overlapping patch embedding: a strided convolution, then LayerNorm over channels.
#[derive(Module, Debug)]
pub struct CvtConvEmbeddings {
    pub projection: Conv2d,
    pub normalization: LayerNorm,
}

impl CvtConvEmbeddings {
    fn forward(&self, pixel_values: Tensor<4>) -> Tensor<4> {
        let projected = self.projection.forward(pixel_values);
        let [_, _, h, w] = projected.dims();
        to_map(self.normalization.forward(to_tokens(projected)), h, w)
    }
}

#[derive(Module, Debug)]
pub struct CvtLayer {
    pub attention: CvtAttention,
    pub intermediate: CvtIntermediate,
    pub output: CvtOutput,
    pub drop_path: DropPath,
    pub layernorm_before: LayerNorm,
    pub layernorm_after: LayerNorm,
}

impl CvtLayer {
    fn new(config: &CvtConfig, stage: usize, device: &Device) -> Self {
        let dim = config.embed_dim[stage];
        let hidden = (dim as f64 * config.mlp_ratio[stage]) as usize;
        Self {
            attention: CvtAttention {
                attention: CvtSelfAttention::new(config, stage, device),
                output: CvtSelfOutput {
                    dense: config.linear(dim, dim, true, device),
                    dropout: DropoutConfig::new(config.drop_rate[stage]).init(),
                },
            },
            intermediate: CvtIntermediate { dense: config.linear(dim, hidden, true, device) },
            output: CvtOutput {
                dense: config.linear(hidden, dim, true, device),
                dropout: DropoutConfig::new(config.drop_rate[stage]).init(),
            },
            drop_path: DropPath::new(config.layer_drop_path(stage)),
            layernorm_before: LayerNorm::new(dim, LAYER_NORM_EPSILON, device),
            layernorm_after: LayerNorm::new(dim, LAYER_NORM_EPSILON, device),
        }
    }

    fn forward(&self, hidden: Tensor<3>, height: usize, width: usize) -> Tensor<3> {
        self.run(hidden, |attention, normed| attention.forward(normed, height, width))
    }

    /// [`forward`](Self::forward), the attention probabilities and the key grid.
    fn forward_with_attention(&self, hidden: Tensor<3>, height: usize, width: usize) -> (Tensor<3>, Tensor<4>, [usize; 2]) {
        let mut probs = None;
        let hidden = self.run(hidden, |attention, normed| {
            let (context, layer_probs, key_grid) = attention.forward_with_attention(normed, height, width);
            probs = Some((layer_probs, key_grid));
            context
        });
        let (probs, key_grid) = probs.expect("the layer ran its self-attention");
        (hidden, probs, key_grid)
    }

    /// The block around its self-attention, which `self_attention` computes.
    fn run(&self, hidden: Tensor<3>, self_attention: impl FnOnce(&CvtSelfAttention, Tensor<3>) -> Tensor<3>) -> Tensor<3> {
        // Both masks drawn first, in the order they are used: on the GPU the draws would otherwise
        // sit between each product and the scaling that follows it, which burn's fusion then
        // runs as a kernel of its own instead of in the product's.
        let (attention_mask, output_mask) = (self.drop_path.mask(&hidden), self.drop_path.mask(&hidden));
        let context = self_attention(&self.attention.attention, self.layernorm_before.forward(hidden.clone()));
        let attended = self.attention.output.forward(context);
        let hidden = DropPath::apply(attended, attention_mask) + hidden;
        let pre_activation = self.intermediate.pre_activation(self.layernorm_after.forward(hidden.clone()));
        // HF quirk: `CvtOutput` adds the residual, and drop path is then applied to the sum
        // (`layer_output = self.drop_path(self.output(layer_output, hidden_state))`).
        DropPath::apply(self.output.forward(pre_activation, hidden), output_mask)
    }
}

#[derive(Module, Debug)]
pub struct CvtAttention {
    pub attention: CvtSelfAttention,
    pub output: CvtSelfOutput,
}

/// Multi-head attention whose queries, keys and values are depthwise-convolved token maps
/// (keys and values with stride 2), with the cls token passed around the convolutions.
#[derive(Module, Debug)]
pub struct CvtSelfAttention {
    pub convolution_projection_query: CvtSelfAttentionProjection,
    pub convolution_projection_key: CvtSelfAttentionProjection,
    pub convolution_projection_value: CvtSelfAttentionProjection,
    pub projection_query: Linear,
    pub projection_key: Linear,
    pub projection_value: Linear,
    pub dropout: Dropout,
    pub num_heads: usize,
    pub embed_dim: usize,
    pub with_cls_token: bool,
}

impl CvtSelfAttention {
    fn new(config: &CvtConfig, stage: usize, device: &Device) -> Self {
        let dim = config.embed_dim[stage];
        let kernel = config.kernel_qkv[stage];
        let bias = config.qkv_bias[stage];
        let (q_pad, q_stride) = (config.padding_q[stage], config.stride_q[stage]);
        let (kv_pad, kv_stride) = (config.padding_kv[stage], config.stride_kv[stage]);
        Self {
            convolution_projection_query: CvtSelfAttentionProjection::new(dim, kernel, q_pad, q_stride, device),
            convolution_projection_key: CvtSelfAttentionProjection::new(dim, kernel, kv_pad, kv_stride, device),
            convolution_projection_value: CvtSelfAttentionProjection::new(dim, kernel, kv_pad, kv_stride, device),
            projection_query: config.linear(dim, dim, bias, device),
            projection_key: config.linear(dim, dim, bias, device),
            projection_value: config.linear(dim, dim, bias, device),
            dropout: DropoutConfig::new(config.attention_drop_rate[stage]).init(),
            num_heads: config.num_heads[stage],
            embed_dim: dim,
            with_cls_token: config.cls_token[stage],
        }
    }

    fn forward(&self, hidden: Tensor<3>, height: usize, width: usize) -> Tensor<3> {
        if self.dropout.prob == 0.0 || !hidden.device().is_autodiff() {
            let (query, key, value, _) = self.projections(hidden, height, width);
            return kernels::attention(query, key, value, self.num_heads, self.scale());
        }
        let (probs, value, _) = self.probs_and_values(hidden, height, width);
        kernels::merge_heads(probs.matmul(value))
    }

    /// [`forward`](Self::forward), the attention probabilities `[batch, heads, queries, keys]`
    /// and the grid `[height, width]` the keys after the cls token lie on.
    fn forward_with_attention(&self, hidden: Tensor<3>, height: usize, width: usize) -> (Tensor<3>, Tensor<4>, [usize; 2]) {
        let (probs, value, key_grid) = self.probs_and_values(hidden, height, width);
        (kernels::merge_heads(probs.clone().matmul(value)), probs, key_grid)
    }

    /// Softmax attention (after dropout) and values split into heads, and the key grid.
    fn probs_and_values(&self, hidden: Tensor<3>, height: usize, width: usize) -> (Tensor<4>, Tensor<4>, [usize; 2]) {
        let (query, key, value, key_grid) = self.projections(hidden, height, width);
        let query = kernels::split_heads(query, self.num_heads);
        let key = kernels::split_heads(key, self.num_heads);
        let value = kernels::split_heads(value, self.num_heads);
        let scores = query.matmul(key.swap_dims(2, 3)).mul_scalar(self.scale());
        (self.dropout.forward(softmax(scores, 3)), value, key_grid)
    }

    /// HF quirk: scaled by the full embedding dim, not the head dim (`embed_dim ** -0.5`).
    fn scale(&self) -> f64 {
        (self.embed_dim as f64).powf(-0.5)
    }

    /// Queries, keys and values `[batch, tokens, embed]` (heads side by side), and the key grid.
    fn projections(&self, hidden: Tensor<3>, height: usize, width: usize) -> (Tensor<3>, Tensor<3>, Tensor<3>, [usize; 2]) {
        // HF splits the class token off, convolves the map and puts the token back in front of
        // each projection; here it is cut off once for the three convolutions, or read past in
        // place (`skip`) where the convolution is brasa's, and put back by the batch norm (in the
        // same pass where that is brasa's GPU kernels).
        let cls_token = self.with_cls_token.then(|| hidden.clone().narrow(1, 0, 1));
        let grid = [height, width];
        let (map, skip) = kernels::depthwise_input(hidden, grid, usize::from(self.with_cls_token));
        let (key, key_grid) = self.convolution_projection_key.forward(map.clone(), grid, skip, cls_token.clone());
        let (query, _) = self.convolution_projection_query.forward(map.clone(), grid, skip, cls_token.clone());
        let (value, _) = self.convolution_projection_value.forward(map, grid, skip, cls_token);
        // in this order burn's fusion leaves fewer additions as kernels of their own (CvT-13's
        // step at 32 px on lavapipe, 2026-12-05: 1110 launches, 33 of them single binary ops;
        // 1123 and 46 for q, k, v, for k, q, v and for v, q, k); the values are the same in any
        // order
        let value = kernels::linear(&self.projection_value, value);
        let key = kernels::linear(&self.projection_key, key);
        let query = kernels::linear(&self.projection_query, query);
        (query, key, value, key_grid)
    }
}

/// `dw_bn` projection: depthwise convolution + BatchNorm, flattened to tokens
/// (HF's `linear_projection` is a parameter-free rearrange, folded into `forward`).
#[derive(Module, Debug)]
pub struct CvtSelfAttentionProjection {
    pub convolution_projection: CvtSelfAttentionConvProjection,
}

impl CvtSelfAttentionProjection {
    fn new(dim: usize, kernel: usize, padding: usize, stride: usize, device: &Device) -> Self {
        let convolution = Conv2dConfig::new([dim, dim], [kernel, kernel])
            .with_groups(dim)
            .with_bias(false)
            .with_stride([stride, stride])
            .with_padding(PaddingConfig2d::Explicit(padding, padding, padding, padding))
            .with_initializer(Initializer::Normal { mean: 0.0, std: 0.02 })
            .init(device);
        Self {
            convolution_projection: CvtSelfAttentionConvProjection {
                convolution,
                normalization: BatchNormConfig::new(dim).init(device),
            },
        }
    }

    /// Tokens `[batch, skip + height·width, channels]`, the last on `grid` → the projected
    /// tokens of the grid, behind the class token where there is one, and their grid.
    fn forward(&self, tokens: Tensor<3>, grid: [usize; 2], skip: usize, cls_token: Option<Tensor<3>>) -> (Tensor<3>, [usize; 2]) {
        let projection = &self.convolution_projection;
        let (convolved, grid) = kernels::depthwise_tokens(&projection.convolution, tokens, grid, skip);
        (kernels::batch_norm_tokens_behind(&projection.normalization, cls_token, convolved), grid)
    }
}

#[derive(Module, Debug)]
pub struct CvtSelfAttentionConvProjection {
    pub convolution: Conv2d,
    pub normalization: BatchNorm,
}

#[derive(Module, Debug)]
pub struct CvtSelfOutput {
    pub dense: Linear,
    pub dropout: Dropout,
}

impl CvtSelfOutput {
    fn forward(&self, hidden: Tensor<3>) -> Tensor<3> {
        self.dropout.forward(kernels::linear(&self.dense, hidden))
    }
}

#[derive(Module, Debug)]
pub struct CvtIntermediate {
    pub dense: Linear,
}

impl CvtIntermediate {
    /// The MLP's first product, before its GELU: HF's module applies the GELU itself; here
    /// [`CvtOutput`] takes it into its product (`kernels::gelu_linear`), so the MLP's widest
    /// activation is not kept for the backward. Same values.
    fn pre_activation(&self, hidden: Tensor<3>) -> Tensor<3> {
        kernels::linear(&self.dense, hidden)
    }
}

#[derive(Module, Debug)]
pub struct CvtOutput {
    pub dense: Linear,
    pub dropout: Dropout,
}

impl CvtOutput {
    /// GELU of the MLP's pre-activation through this product, plus the residual.
    fn forward(&self, pre_activation: Tensor<3>, residual: Tensor<3>) -> Tensor<3> {
        self.dropout.forward(kernels::gelu_linear(&self.dense, pre_activation)) + residual
    }
}

/// Stochastic depth per sample (timm's `drop_path`), active only while training.
#[derive(Module, Debug)]
pub struct DropPath {
    pub prob: f64,
    pub training: Param<Flag>,
}

impl DropPath {
    fn new(prob: f64) -> Self {
        Self { prob, training: Param::from_bool(true) }
    }

    /// The mask for an input shaped like `like` (`[batch, 1, …]`, each sample kept with
    /// probability 1 − `prob`) and the scale of what is kept, or `None` where drop path is the
    /// identity (no drop, not training).
    fn mask<const D: usize>(&self, like: &Tensor<D>) -> Option<(Tensor<D>, f64)> {
        if self.prob == 0.0 || !self.training.is_enabled() || !like.device().is_autodiff() {
            return None;
        }
        let keep = 1.0 - self.prob;
        let mut shape = [1usize; D];
        shape[0] = like.dims()[0];
        Some((Tensor::<D>::random(shape, Distribution::Bernoulli(keep), &like.device()), keep))
    }

    /// Drop path of `input` with a [`mask`](Self::mask) drawn for it.
    fn apply<const D: usize>(input: Tensor<D>, mask: Option<(Tensor<D>, f64)>) -> Tensor<D> {
        match mask {
            Some((mask, keep)) => input.div_scalar(keep) * mask,
            None => input,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_path_rates_follow_the_hf_indexing() {
        let config = CvtConfig::cvt13(4);
        assert_eq!(config.layer_drop_path(0), 0.0);
        assert_eq!(config.layer_drop_path(1), 0.0);
        // linspace(0, 0.1, 10)[2]
        assert!((config.layer_drop_path(2) - 0.1 * 2.0 / 9.0).abs() < 1e-12);
        // cvt-tiny: depth 2 in stage 2 -> the last entry, 0.1
        assert!((CvtConfig::tiny(4).layer_drop_path(2) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn each_forward_pass_folds_in_its_batch_norm_updates_whatever_thread_runs_it() {
        use burn::module::Module;
        use burn::tensor::Distribution;
        let device = Device::flex().autodiff();
        // no stochastic depth: both models' passes see the same tokens
        let config = CvtConfig { drop_path_rate: vec![0.0; 3], ..CvtConfig::tiny(3) };
        let one_thread = config.init(&device);
        let thread_per_step = config.init(&device).load_record(one_thread.clone().into_record());
        for _ in 0..3 {
            let pixels = Tensor::<4>::random([2, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
            let _ = one_thread.forward(pixels.clone());
            std::thread::scope(|scope| {
                scope.spawn(|| thread_per_step.forward(pixels));
            });
        }
        let statistics = |model: &CvtForImageClassification| -> Vec<Vec<f32>> {
            let norms = model.cvt.batch_norms();
            norms.flat_map(|norm| [norm.running_mean.value(), norm.running_var.value()]).map(|t| t.into_data().try_to_vec::<f32>().unwrap()).collect()
        };
        let initial = statistics(&config.init(&device));
        assert_eq!(statistics(&one_thread).len(), 5 * 3 * 2, "cvt-tiny: five layers, three batch norms each, two statistics");
        assert!(statistics(&one_thread) == statistics(&thread_per_step), "the running statistics: one thread against a thread per step");
        assert!(statistics(&one_thread) != initial, "the steps moved the statistics");
    }
}
