//! The checks a plan can only make once the data is scanned: values that are valid on their own
//! but cannot work with this dataset (a batch larger than the training set, a batch whose input
//! alone outgrows the memory, a validation fraction leaving a class out), each naming the key,
//! where it was set and the numbers involved.

use super::Plan;
use super::check::Checker;
use crate::data::{Dataset, MissingFrom};
use crate::spec::SpecError;

/// Bytes of one batch's input tensor (`f32`, 3 channels) at `input` (height, width).
fn batch_input_bytes(batch: usize, input: (u32, u32)) -> u128 {
    batch as u128 * 3 * input.0 as u128 * input.1 as u128 * 4
}

fn gigabytes(bytes: u128) -> String {
    format!("{:.1} GB", bytes as f64 / 1e9)
}

impl Plan {
    /// Checks this plan against `dataset` (scanned and split); `available_memory` in bytes
    /// when known. Every problem is reported together, like the spec's own checks.
    pub fn check_against(&self, dataset: &Dataset, available_memory: Option<u64>) -> Result<(), SpecError> {
        let mut check = Checker { loaded: &self.loaded, issues: Vec::new() };
        let train_images = dataset.split.train.len();
        let copies = self.augment.effective_copies();
        let samples = train_images * (1 + copies);
        let batch = self.train.batch_size;
        if batch > samples {
            let augmented = if copies > 0 { format!(" ({train_images} images and {} augmented copies)", train_images * copies) } else { String::new() };
            check.fail(
                "train.batch_size",
                Some(batch.to_string()),
                format!("is larger than the training set: an epoch has {samples} samples{augmented}, so each epoch would be a single step of {samples}; use at most {samples}"),
            );
        }
        if let Some(available) = available_memory {
            // a batch holds at most the part it is drawn from
            let largest_eval = dataset.split.val.len().max(dataset.test.len()).max(1);
            let eval_set = self.loaded.spec.train.eval_batch_size.is_some();
            let eval_key = if eval_set { "train.eval_batch_size" } else { "train.batch_size" };
            let checks = [
                ("train.batch_size", batch, batch.min(samples.max(1)), "training", ""),
                (eval_key, if eval_set { self.train.eval_batch_size } else { batch }, self.train.eval_batch_size.min(largest_eval), "evaluation", if eval_set { "" } else { " (train.eval_batch_size defaults to twice train.batch_size)" }),
            ];
            for (key, value, size, what, default) in checks {
                let bytes = batch_input_bytes(size, self.preprocess.input_size);
                if bytes > available as u128 {
                    let (h, w) = self.preprocess.input_size;
                    check.fail(
                        key,
                        Some(value.to_string()),
                        format!(
                            "cannot fit: one {what} batch of {size} images at {h}x{w} is {} of input alone, more than the {} of memory available{default}",
                            gigabytes(bytes),
                            gigabytes(available as u128)
                        ),
                    );
                }
            }
        }
        let counts = dataset.counts();
        let (val_total, train_total) = (dataset.split.val.len(), dataset.split.train.len());
        for (class, missing) in counts.classes_missing_a_side() {
            let (name, in_folder) = (&dataset.classes[class], counts.train[class] + counts.val[class]);
            let (part, total) = match missing {
                MissingFrom::Training => ("training", train_total),
                MissingFrom::Validation | MissingFrom::Both => ("validation", val_total),
            };
            check.fail(
                "data.split.validation",
                Some(self.data.split.validation.to_string()),
                format!(
                    "leaves class `{name}` out of the {part} part: none of its {in_folder} image(s) there (the {part} part holds {total} of {} images{}); {}",
                    train_total + val_total,
                    if self.data.split.stratify { ", stratified" } else { ", not stratified" },
                    if self.data.split.stratify { "change the fraction or add images of that class" } else { "set data.split.stratify = true or change the fraction" }
                ),
            );
        }
        if check.issues.is_empty() { Ok(()) } else { Err(SpecError { issues: check.issues }) }
    }
}
