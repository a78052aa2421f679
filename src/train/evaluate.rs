//! Inference over a labelled image list: class probabilities and the mean cross-entropy.

use std::borrow::Cow;

use burn::tensor::{Device, Tensor, TensorData};
use image::RgbImage;
use rayon::prelude::*;

use super::Classifier;
use crate::data::pixels::Pixels;
use crate::data::prefetch::pipelined;
use crate::data::tensor::Normalize;
use crate::error::Result;
use crate::metrics::{Scores, argmax};
use crate::progress::Progress;

/// Images with their labels, evaluated in order: `indices` into `pixels`.
pub struct EvalSet<'a> {
    pub pixels: &'a Pixels,
    pub indices: Vec<usize>,
    pub labels: Vec<usize>,
}

impl<'a> EvalSet<'a> {
    /// All of `pixels`, in order.
    pub fn all(pixels: &'a Pixels, labels: Vec<usize>) -> Self {
        Self { pixels, indices: (0..pixels.len()).collect(), labels }
    }

    pub fn len(&self) -> usize {
        self.indices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// The normalised pixels of the images at `positions` (into `indices`) and their shape,
    /// read in parallel.
    pub fn batch(&self, positions: &[usize], normalize: &Normalize) -> Result<(Vec<f32>, [usize; 4])> {
        let images: Vec<Cow<RgbImage>> = positions.par_iter().map(|&p| self.pixels.get(self.indices[p])).collect::<Result<_>>()?;
        Ok(normalize.values(&images.iter().map(|i| i.as_ref()).collect::<Vec<_>>()))
    }
}

/// Batches read ahead of the one the model is on.
const PREFETCH: usize = 2;

/// Per-image class probabilities and the mean loss over the set.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub probabilities: Vec<Vec<f32>>,
    /// The model's raw outputs, one row per image.
    pub logits: Vec<Vec<f32>>,
    pub loss: f64,
}

impl Evaluation {
    pub fn predictions(&self) -> Vec<usize> {
        self.probabilities.iter().map(|p| argmax(p)).collect()
    }

    pub fn scores(&self, labels: &[usize], num_classes: usize) -> Scores {
        Scores::new(labels, &self.predictions(), num_classes)
    }
}

/// Runs `model` (an inference copy: `model.valid()`) over `set` in batches. A device that fails
/// (out of memory) is an error naming the batch size.
pub fn evaluate<M: Classifier>(
    model: &M,
    set: &EvalSet,
    batch_size: usize,
    normalize: &Normalize,
    device: &Device,
    progress: &Progress,
    what: &str,
) -> Result<Evaluation> {
    let bar = progress.bar(set.len() as u64, what);
    // batches are read ahead on a worker thread; logits stay on the device until the end: one
    // read instead of one per batch
    let batch_size = batch_size.max(1);
    let mut logits = Vec::with_capacity(set.len().div_ceil(batch_size));
    let positions: Vec<usize> = (0..set.len()).collect();
    pipelined(positions.chunks(batch_size), PREFETCH, |chunk| set.batch(chunk, normalize), |(values, shape)| {
        let pixels = Tensor::from_data(TensorData::new(values, shape), device);
        logits.push(crate::backend::on_pool(device, || model.logits(pixels)));
        bar.inc(shape[0] as u64);
        // the test hook's point `<what>:<batch>` (e.g. `validating:2`, `test (best):1`)
        crate::interrupt::point(what, logits.len());
        // asked to stop (training stops cleanly): an evaluation is cheap to do again
        match crate::interrupt::requested() {
            Some(signal) => Err(crate::Error::Interrupted { signal: signal.into(), step: 0, epoch: 0, run_dir: None, resume: None }),
            None => Ok(()),
        }
    })?;
    let mut probabilities = Vec::with_capacity(set.len());
    let mut rows = Vec::with_capacity(set.len());
    let mut loss_sum = 0.0;
    if !logits.is_empty() {
        let logits = Tensor::cat(logits, 0);
        let [_, classes] = logits.dims();
        let values: Vec<f32> = logits
            .try_into_data()
            .map_err(|e| crate::backend::device_failure(&e, "train.eval_batch_size", batch_size))?
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("logits are f32");
        for (row, &label) in values.chunks_exact(classes).zip(&set.labels) {
            let (log_probs, probs) = log_softmax(row);
            loss_sum -= log_probs[label];
            probabilities.push(probs);
            rows.push(row.to_vec());
        }
    }
    bar.finish_and_clear();
    let loss = if probabilities.is_empty() { 0.0 } else { loss_sum / probabilities.len() as f64 };
    Ok(Evaluation { probabilities, logits: rows, loss })
}

/// Log-probabilities (f64, for an accurate loss) and probabilities (f32) of one logit row.
fn log_softmax(row: &[f32]) -> (Vec<f64>, Vec<f32>) {
    let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
    let log_sum = row.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln() + max;
    let log_probs: Vec<f64> = row.iter().map(|&v| v as f64 - log_sum).collect();
    let probs = log_probs.iter().map(|lp| lp.exp() as f32).collect();
    (log_probs, probs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_softmax_is_normalised_and_stable() {
        let (log_probs, probs) = log_softmax(&[1000.0, 1000.0, 998.0]);
        assert!((probs.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((log_probs[0] - log_probs[1]).abs() < 1e-12);
        assert!((log_probs[0] - log_probs[2] - 2.0).abs() < 1e-9);
    }
}
