//! What the trainer iterates over: the clean training images plus augmented copies (the same
//! every epoch in append mode, redrawn every epoch in online mode), shuffled per epoch by a
//! seeded generator, and cut into batches assembled in parallel.

use std::borrow::Cow;
use std::sync::Arc;

use image::RgbImage;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::pixels::Pixels;
use super::tensor::Normalize;
use crate::augment::{Chain, Op, draw_seed};
use crate::error::Result;

/// When augmented copies are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AugmentMode {
    /// Once, before training: the reference notebook's `concatenate_datasets`.
    Append,
    /// Anew at the start of every epoch.
    Online,
}

impl AugmentMode {
    /// The name the spec and `meta.json` use.
    pub fn name(self) -> &'static str {
        match self {
            AugmentMode::Append => "append",
            AugmentMode::Online => "online",
        }
    }
}

/// The training samples of a run. Holds no pixels of its own: each sample is read from the
/// run's [`Pixels`] (and augmented) when its batch is assembled, so memory does not grow with the
/// number of augmented copies.
pub struct TrainSet {
    /// Clean images, already preprocessed to the model input (shared with evaluation).
    clean: Arc<Pixels>,
    /// Augmentation sources (after the chain's leading resize), parallel to `clean`.
    sources: Arc<Pixels>,
    /// The training items: indices into `clean` / `sources`.
    indices: Vec<usize>,
    labels: Vec<usize>,
    ops: Vec<Op>,
    mode: AugmentMode,
    copies: usize,
    seed: u64,
}

/// Which image a sample shows: `0..items` the clean items, then copy `c` of item `i` at
/// `(1 + c) * items + i`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample(usize);

/// A batch assembled on a CPU worker thread: normalised pixels and labels, no tensor yet
/// (tensors are made on the training thread only; burn's GPU backends leak memory for tensors
/// made on other threads).
pub struct HostBatch {
    pub pixels: Vec<f32>,
    pub shape: [usize; 4],
    pub labels: Vec<usize>,
}

impl TrainSet {
    /// The items `indices` of `clean` / `sources` with their `labels`, and `copies` augmented
    /// copies of each drawn with `chain` (none when it has no ops).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        clean: Arc<Pixels>,
        sources: Arc<Pixels>,
        indices: Vec<usize>,
        labels: Vec<usize>,
        chain: &Chain,
        mode: AugmentMode,
        copies: usize,
        seed: u64,
    ) -> Self {
        assert_eq!(clean.len(), sources.len());
        assert_eq!(indices.len(), labels.len());
        assert!(indices.iter().all(|&i| i < clean.len()));
        let copies = if chain.ops.is_empty() { 0 } else { copies };
        let ops = chain.random_part().to_vec();
        Self { clean, sources, indices, labels, ops, mode, copies, seed }
    }

    /// Training items (without copies).
    pub fn items(&self) -> usize {
        self.labels.len()
    }

    /// Samples per epoch: the clean set plus its copies.
    pub fn len(&self) -> usize {
        self.items() * (1 + self.copies)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The epoch's samples in a seeded random order.
    pub fn shuffled(&self, epoch: usize) -> Vec<Sample> {
        let mut order: Vec<Sample> = (0..self.len()).map(Sample).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(draw_seed(self.seed, u64::MAX, epoch as u64));
        order.shuffle(&mut rng);
        order
    }

    /// The pixels `sample` shows in `epoch` (0-based): its clean image, or its augmented copy,
    /// drawn with a seed of the copy's stream and the item only (append mode: the same copies
    /// every epoch; online: new ones each epoch), so the pixels never depend on the thread or
    /// the order they are made in.
    pub fn image(&self, sample: Sample, epoch: usize) -> Result<Cow<'_, RgbImage>> {
        let n = self.items();
        if sample.0 < n {
            return self.clean.get(self.indices[sample.0]);
        }
        let (copy, item) = ((sample.0 - n) / n, (sample.0 - n) % n);
        let stream_epoch = match self.mode {
            AugmentMode::Append => 0,
            AugmentMode::Online => epoch,
        };
        let stream = (stream_epoch * self.copies + copy) as u64;
        let source = self.sources.get(self.indices[item])?;
        Ok(Cow::Owned(Chain::apply_ops(&self.ops, &source, draw_seed(self.seed, stream, item as u64))))
    }

    pub fn label(&self, sample: Sample) -> usize {
        self.labels[sample.0 % self.items()]
    }

    /// `samples` of `epoch` as one batch, their images read, augmented and normalised in
    /// parallel.
    pub fn batch(&self, samples: &[Sample], epoch: usize, normalize: &Normalize) -> Result<HostBatch> {
        let images: Vec<Cow<RgbImage>> = samples.par_iter().map(|&s| self.image(s, epoch)).collect::<Result<_>>()?;
        let (pixels, shape) = normalize.values(&images.iter().map(|i| i.as_ref()).collect::<Vec<_>>());
        Ok(HostBatch { pixels, shape, labels: samples.iter().map(|&s| self.label(s)).collect() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::Op;

    fn set(mode: AugmentMode) -> TrainSet {
        let images: Vec<RgbImage> = (0..6).map(|i| RgbImage::from_pixel(4, 4, image::Rgb([i * 40, 0, 0]))).collect();
        let images = Arc::new(Pixels::Memory(images));
        let chain = Chain { ops: vec![Op::ColorJitter { brightness: Some((0.5, 1.5)), contrast: None, saturation: None }] };
        TrainSet::new(images.clone(), images, (0..6).collect(), vec![0, 1, 0, 1, 0, 1], &chain, mode, 2, 9)
    }

    fn copies(train: &TrainSet, epoch: usize) -> Vec<RgbImage> {
        (train.items()..train.len()).map(|k| train.image(Sample(k), epoch).unwrap().into_owned()).collect()
    }

    #[test]
    fn append_draws_the_same_copies_every_epoch_online_redraws() {
        let append = set(AugmentMode::Append);
        assert_eq!(append.len(), 18);
        let first = copies(&append, 0);
        assert_eq!(copies(&append, 1), first);
        assert_ne!(first[1], first[7], "copies of one item differ");

        let online = set(AugmentMode::Online);
        assert_eq!(copies(&online, 0), first, "epoch 0 draws the same as append mode");
        assert_ne!(copies(&online, 1), first);
        assert_eq!(*online.image(Sample(2), 1).unwrap(), RgbImage::from_pixel(4, 4, image::Rgb([80, 0, 0])), "clean samples are clean");
    }

    #[test]
    fn samples_keep_their_labels_and_order_is_seeded() {
        let train = set(AugmentMode::Append);
        let order = train.shuffled(0);
        assert_eq!(order, train.shuffled(0));
        assert_ne!(order, train.shuffled(1));
        for sample in order {
            assert_eq!(train.label(sample), (sample.0 % 6) % 2);
        }
    }

    #[test]
    fn a_batch_holds_its_samples_in_order() {
        let train = set(AugmentMode::Online);
        let samples = [Sample(7), Sample(1), Sample(12)];
        let normalize = Normalize { mean: [0.0; 3], std: [1.0; 3] };
        let batch = train.batch(&samples, 3, &normalize).unwrap();
        assert_eq!(batch.shape, [3, 3, 4, 4]);
        assert_eq!(batch.labels, [1, 1, 0]);
        for (k, &sample) in samples.iter().enumerate() {
            let mut one = vec![0.0; 48];
            normalize.write_chw(&train.image(sample, 3).unwrap(), &mut one);
            assert_eq!(&batch.pixels[k * 48..(k + 1) * 48], one.as_slice());
        }
    }
}
