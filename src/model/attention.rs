//! Attention maps: where a model looked, as one patch-grid heat map per image, for the report.
//!
//! - ViT: **attention rollout** (Abnar & Zuidema 2020, "Quantifying Attention Flow in
//!   Transformers"), as commonly implemented for ViT (e.g. jacobgil/vit-explain with
//!   `head_fusion="mean"`, `discard_ratio=0`): for every encoder layer `l`, the softmax
//!   probabilities are averaged over heads (`A_l`, `[tokens, tokens]`), the identity is added
//!   for the residual connection and each row is renormalised to sum 1
//!   (`Â_l = (A_l + I) / rowsum(A_l + I)`, i.e. `(A_l + I) / 2`); the layers are chained from
//!   first to last, `R = Â_L · … · Â_2 · Â_1`, and the map is the cls token's row of `R` over
//!   the patch tokens (`R[0, 1..]`), laid out on the patch grid. Nothing is discarded.
//! - CvT: **last-stage cls attention**: the probabilities of the last layer of the last stage
//!   (the stage with the cls token), averaged over heads, cls query row over the key/value patch
//!   tokens (`mean_h P[h, 0, 1..]`). CvT's keys and values come from a stride-2 convolution, so
//!   the map lies on the key grid (e.g. 3×3 for a 96 px input), not on the query grid; rollout
//!   does not apply because queries and keys live on different grids.
//!
//! Maps hold the raw values (a rollout row sums to at most 1, a cls-attention row likewise; the
//! cls token's own share is left out); scaling for display is [`AttentionMap::normalized`]'s job.
//! This module only reads a model's forward pass: it never trains or changes a model.

use burn::module::Module;
use burn::tensor::Tensor;

use super::Model;
pub use crate::attention_map::{AttentionMap, CLS_ATTENTION, MEAN_ATTENTION, ROLLOUT};
use crate::error::{Error, Result};

/// Attention probabilities a forward pass recorded (`forward_with_attention` of the models).
#[derive(Debug, Clone)]
pub struct Attentions {
    /// Softmax outputs `[batch, heads, queries, keys]` per layer, first to last (ViT: every
    /// encoder layer; CvT: the layers of the last stage).
    pub probs: Vec<Tensor<4>>,
    /// `[height, width]` of the grid the key tokens lie on (after the cls token, row-major).
    pub key_grid: [usize; 2],
    /// Whether token 0 of queries and keys is a cls token.
    pub cls_token: bool,
}

/// The attention map of each image of `pixel_values` (`[batch, channels, height, width]`,
/// normalised like the model's inputs, on a plain — not autodiff — device): ViT rollout, CvT
/// last-stage cls attention. Runs an inference copy (`valid()`) of `model`.
pub fn attention_maps(model: &Model, pixel_values: Tensor<4>) -> Result<Vec<AttentionMap>> {
    match model {
        Model::Vit(m) => {
            let (_, attentions) = m.valid().forward_with_attention(pixel_values);
            Ok(rollout(&attentions.probs, attentions.key_grid))
        }
        Model::Cvt(m) => {
            let (_, attentions) = m.valid().forward_with_attention(pixel_values);
            let Some(last) = attentions.probs.last() else {
                return Err(Error::Model("CvT attention maps need at least one layer in the last stage".into()));
            };
            Ok(if attentions.cls_token {
                cls_attention(last.clone(), attentions.key_grid)
            } else {
                // no cls token (the model pools the last stage's tokens): what each key token
                // receives, averaged over the heads and the queries
                mean_attention(last.clone(), attentions.key_grid)
            })
        }
    }
}

/// Attention rollout (see the module docs) of a ViT's per-layer probabilities, each
/// `[batch, heads, 1 + grid_h * grid_w, 1 + grid_h * grid_w]` with the cls token first: one
/// `grid_h × grid_w` map per image. No layers, no maps.
pub fn rollout(probs: &[Tensor<4>], grid: [usize; 2]) -> Vec<AttentionMap> {
    let Some(first) = probs.first() else { return Vec::new() };
    let [batch, _, tokens, keys] = first.dims();
    assert_eq!(tokens, keys, "rollout needs self-attention over one token set");
    assert_eq!(tokens, 1 + grid[0] * grid[1], "tokens are the cls token and the {grid:?} grid");
    let identity = Tensor::<2>::eye(tokens, &first.device()).unsqueeze::<3>();
    let mut joint: Option<Tensor<3>> = None;
    for layer in probs {
        let fused = layer.clone().mean_dim(1).reshape([batch, tokens, tokens]) + identity.clone();
        let fused = fused.clone() / fused.sum_dim(2);
        joint = Some(match joint {
            None => fused,
            Some(below) => fused.matmul(below),
        });
    }
    let joint = joint.expect("at least one layer");
    let cls_row = joint.narrow(1, 0, 1).narrow(2, 1, tokens - 1);
    maps(cls_row.reshape([batch * (tokens - 1)]), batch, grid, ROLLOUT)
}

/// Cls attention (see the module docs) of one layer's probabilities `[batch, heads, 1 + queries,
/// 1 + grid_h * grid_w]` with the cls token first: one `grid_h × grid_w` map per image.
pub fn cls_attention(probs: Tensor<4>, grid: [usize; 2]) -> Vec<AttentionMap> {
    let [batch, _, _, keys] = probs.dims();
    assert_eq!(keys, 1 + grid[0] * grid[1], "keys are the cls token and the {grid:?} grid");
    let cls_row = probs.mean_dim(1).narrow(2, 0, 1).narrow(3, 1, keys - 1);
    maps(cls_row.reshape([batch * (keys - 1)]), batch, grid, CLS_ATTENTION)
}

/// A CvT's last-layer attention without a cls token, `[batch, heads, queries, keys]` with the
/// keys the `grid`: each key's attention averaged over heads and queries, one map per image.
pub fn mean_attention(probs: Tensor<4>, grid: [usize; 2]) -> Vec<AttentionMap> {
    let [batch, _, _, keys] = probs.dims();
    assert_eq!(keys, grid[0] * grid[1], "keys are the {grid:?} grid");
    let received = probs.mean_dim(1).mean_dim(2);
    maps(received.reshape([batch * keys]), batch, grid, MEAN_ATTENTION)
}

fn maps(values: Tensor<1>, batch: usize, [height, width]: [usize; 2], method: &str) -> Vec<AttentionMap> {
    let values: Vec<f32> = values.into_data().try_into_vec().expect("f32 attention probabilities");
    debug_assert_eq!(values.len(), batch * height * width);
    values
        .chunks_exact(height * width)
        .map(|chunk| AttentionMap { height, width, values: chunk.to_vec(), method: method.to_string() })
        .collect()
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, TensorData};

    use super::*;

    fn tensor(values: Vec<f32>, shape: [usize; 4]) -> Tensor<4> {
        Tensor::from_data(TensorData::new(values, shape), &Device::flex())
    }

    /// Row-stochastic `[1, heads, 5, 5]` probabilities (cls + a 2×2 grid).
    fn probs(heads: usize, seed: u32) -> Vec<f32> {
        let mut out = Vec::new();
        for h in 0..heads {
            for q in 0..5u32 {
                let row: Vec<f32> = (0..5u32).map(|k| 1.0 + ((q * 7 + k * 3 + h as u32 * 5 + seed) % 11) as f32).collect();
                let sum: f32 = row.iter().sum();
                out.extend(row.iter().map(|v| v / sum));
            }
        }
        out
    }

    /// The recipe written out with plain loops, in f64.
    fn rollout_by_hand(layers: &[Vec<f32>], heads: usize) -> Vec<f64> {
        let n = 5;
        let mut joint = vec![0.0f64; n * n];
        (0..n).for_each(|i| joint[i * n + i] = 1.0);
        for layer in layers {
            let mut a = vec![0.0f64; n * n];
            for h in 0..heads {
                for i in 0..n * n {
                    a[i] += layer[h * n * n + i] as f64 / heads as f64;
                }
            }
            for i in 0..n {
                a[i * n + i] += 1.0;
                let sum: f64 = a[i * n..(i + 1) * n].iter().sum();
                a[i * n..(i + 1) * n].iter_mut().for_each(|v| *v /= sum);
            }
            let mut next = vec![0.0f64; n * n];
            for i in 0..n {
                for j in 0..n {
                    next[i * n + j] = (0..n).map(|k| a[i * n + k] * joint[k * n + j]).sum();
                }
            }
            joint = next;
        }
        joint[1..n].to_vec()
    }

    #[test]
    fn rollout_follows_the_documented_recipe() {
        let layers = vec![probs(2, 0), probs(2, 4), probs(2, 9)];
        let tensors: Vec<_> = layers.iter().map(|l| tensor(l.clone(), [1, 2, 5, 5])).collect();
        let maps = rollout(&tensors, [2, 2]);
        assert_eq!(maps.len(), 1);
        let map = &maps[0];
        assert_eq!((map.height, map.width, map.method.as_str()), (2, 2, ROLLOUT));
        let expected = rollout_by_hand(&layers, 2);
        for (ours, theirs) in map.values.iter().zip(&expected) {
            assert!((*ours as f64 - theirs).abs() < 1e-6, "{:?} vs {expected:?}", map.values);
        }
        // a uniform attention rolls out to a uniform map
        let uniform = tensor(vec![0.2; 2 * 25], [2, 1, 5, 5]);
        for map in rollout(&[uniform.clone(), uniform], [2, 2]) {
            assert!(map.values.iter().all(|v| (v - map.values[0]).abs() < 1e-7), "{:?}", map.values);
        }
    }

    #[test]
    fn cls_attention_is_the_head_mean_of_the_cls_row_over_the_key_grid() {
        // 2 heads, 1 + 4 queries, 1 + 2 keys (a 1×2 key grid)
        let mut values = vec![0.0f32; 2 * 5 * 3];
        values[0..3].copy_from_slice(&[0.5, 0.2, 0.3]);
        values[15..18].copy_from_slice(&[0.1, 0.6, 0.3]);
        let maps = cls_attention(tensor(values, [1, 2, 5, 3]), [1, 2]);
        assert_eq!((maps[0].height, maps[0].width, maps[0].method.as_str()), (1, 2, CLS_ATTENTION));
        assert!((maps[0].values[0] - 0.4).abs() < 1e-7 && (maps[0].values[1] - 0.3).abs() < 1e-7, "{:?}", maps[0].values);
    }

    #[test]
    fn mean_attention_is_what_each_key_receives_over_heads_and_queries() {
        // 2 images, 2 heads, 2 queries, 2 keys (a 2×1 key grid), no cls token
        let values = vec![
            0.5, 0.5, 0.1, 0.9, /* head 1 */ 0.3, 0.7, 0.7, 0.3, // image 0
            1.0, 0.0, 1.0, 0.0, /* head 1 */ 0.0, 1.0, 1.0, 0.0, // image 1
        ];
        let maps = mean_attention(tensor(values, [2, 2, 2, 2]), [2, 1]);
        assert_eq!((maps[0].height, maps[0].width, maps[0].method.as_str()), (2, 1, MEAN_ATTENTION));
        let expected = [[0.4, 0.6], [0.75, 0.25]];
        for (map, expected) in maps.iter().zip(expected) {
            assert!(map.values.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-7), "{:?} vs {expected:?}", map.values);
        }
    }

    #[test]
    fn normalized_spans_zero_to_one() {
        let map = AttentionMap { height: 1, width: 3, values: vec![0.2, 0.4, 0.3], method: ROLLOUT.into() };
        let n = map.normalized();
        assert!((n[0]).abs() < 1e-7 && (n[1] - 1.0).abs() < 1e-7 && (n[2] - 0.5).abs() < 1e-6, "{n:?}");
        let flat = AttentionMap { values: vec![0.3; 3], ..map };
        assert_eq!(flat.normalized(), vec![0.0; 3]);
    }
}
