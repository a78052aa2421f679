//! What the trainer iterates over: the clean training images plus augmented copies (drawn once
//! in append mode, redrawn every epoch in online mode), shuffled per epoch by a seeded
//! generator, and cut into batches.

use std::sync::Arc;

use image::RgbImage;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::augment::{Chain, Op, draw_seed};
use crate::progress::Progress;

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

/// The training samples of a run.
pub struct TrainSet {
    /// Clean images, already preprocessed to the model input (shared with evaluation).
    clean: Arc<Vec<RgbImage>>,
    /// Augmentation sources (after the chain's leading resize), parallel to `clean`.
    sources: Arc<Vec<RgbImage>>,
    /// The training items: indices into `clean` / `sources`.
    indices: Vec<usize>,
    labels: Vec<usize>,
    ops: Vec<Op>,
    mode: AugmentMode,
    copies: usize,
    seed: u64,
    /// The current augmented copies: copy `c` of item `i` is at `c * len + i`.
    drawn: Vec<RgbImage>,
    /// The epoch `drawn` belongs to (online mode).
    drawn_for: Option<usize>,
}

/// Which image a sample shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample(usize);

impl TrainSet {
    /// The items `indices` of `clean` / `sources` with their `labels`, and `copies` augmented
    /// copies of each drawn with `chain` (none when it has no ops).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        clean: Arc<Vec<RgbImage>>,
        sources: Arc<Vec<RgbImage>>,
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
        Self { clean, sources, indices, labels, ops, mode, copies, seed, drawn: Vec::new(), drawn_for: None }
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

    /// Makes sure the augmented copies for `epoch` (0-based) exist, drawing them in parallel.
    pub fn prepare_epoch(&mut self, epoch: usize, progress: &Progress) {
        if self.copies == 0 {
            return;
        }
        let stream_epoch = match self.mode {
            AugmentMode::Append => 0,
            AugmentMode::Online => epoch,
        };
        if self.drawn_for == Some(stream_epoch) {
            return;
        }
        let n = self.items();
        let bar = progress.bar((n * self.copies) as u64, "augmenting");
        self.drawn = (0..n * self.copies)
            .into_par_iter()
            .map(|k| {
                let (copy, item) = (k / n, k % n);
                let stream = (stream_epoch * self.copies + copy) as u64;
                let source = &self.sources[self.indices[item]];
                let image = Chain::apply_ops(&self.ops, source, draw_seed(self.seed, stream, item as u64));
                bar.inc(1);
                image
            })
            .collect();
        bar.finish_and_clear();
        self.drawn_for = Some(stream_epoch);
    }

    /// The epoch's samples in a seeded random order.
    pub fn shuffled(&self, epoch: usize) -> Vec<Sample> {
        let mut order: Vec<Sample> = (0..self.len()).map(Sample).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(draw_seed(self.seed, u64::MAX, epoch as u64));
        order.shuffle(&mut rng);
        order
    }

    pub fn image(&self, sample: Sample) -> &RgbImage {
        let n = self.items();
        if sample.0 < n { &self.clean[self.indices[sample.0]] } else { &self.drawn[sample.0 - n] }
    }

    pub fn label(&self, sample: Sample) -> usize {
        self.labels[sample.0 % self.items()]
    }

    /// The augmented copies currently drawn (for previews).
    pub fn drawn(&self) -> &[RgbImage] {
        &self.drawn
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::Op;

    fn set(mode: AugmentMode) -> TrainSet {
        let images: Vec<RgbImage> = (0..6).map(|i| RgbImage::from_pixel(4, 4, image::Rgb([i * 40, 0, 0]))).collect();
        let images = Arc::new(images);
        let chain = Chain { ops: vec![Op::ColorJitter { brightness: Some((0.5, 1.5)), contrast: None, saturation: None }] };
        TrainSet::new(images.clone(), images, (0..6).collect(), vec![0, 1, 0, 1, 0, 1], &chain, mode, 2, 9)
    }

    #[test]
    fn append_draws_once_online_redraws() {
        let progress = Progress::hidden();
        let mut append = set(AugmentMode::Append);
        assert_eq!(append.len(), 18);
        append.prepare_epoch(0, &progress);
        let first = append.drawn().to_vec();
        append.prepare_epoch(1, &progress);
        assert_eq!(append.drawn(), first.as_slice());

        let mut online = set(AugmentMode::Online);
        online.prepare_epoch(0, &progress);
        assert_eq!(online.drawn(), first.as_slice(), "epoch 0 draws the same as append mode");
        online.prepare_epoch(1, &progress);
        assert_ne!(online.drawn(), first.as_slice());
    }

    #[test]
    fn samples_keep_their_labels_and_order_is_seeded() {
        let mut train = set(AugmentMode::Append);
        train.prepare_epoch(0, &Progress::hidden());
        let order = train.shuffled(0);
        assert_eq!(order, train.shuffled(0));
        assert_ne!(order, train.shuffled(1));
        for sample in order {
            assert_eq!(train.label(sample), (sample.0 % 6) % 2);
        }
    }
}
