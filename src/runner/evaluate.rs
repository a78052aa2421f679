//! After training: the best checkpoint's results on validation and test (predictions, the
//! classification report and the confusion matrix of each), and attention maps of a few test
//! images. Validation's are those of the best epoch, kept when it was validated.

use std::time::Instant;

use burn::tensor::Device;

use crate::data::{Dataset, Item};
use crate::error::{Error, Result};
use crate::metrics::Scores;
use crate::model;
use crate::plan::Plan;
use crate::progress::Progress;
use crate::run_dir::{self, AttentionEntry, BestVal, Part, PredictionRow, RunDir};
use crate::train::{self, Classifier, EvalSet};

/// Mixed into the run's seed for the choice of attention-map images.
const ATTENTION_SEED: u64 = 0xa77e_4710;

/// Validation and test scores of the best checkpoint (no test scores without a test folder).
pub struct Evaluated {
    pub val: Scores,
    pub test: Option<Scores>,
}

/// Writes what `best` gives on validation and test into `run`: `best_val`, the validation
/// predictions kept when its epoch was validated, or (without them) a pass over validation.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_best<M: Classifier + model::Attending>(
    best: &M,
    plan: &Plan,
    dataset: &Dataset,
    sets: (&EvalSet, &EvalSet),
    best_val: Option<BestVal>,
    run: &RunDir,
    device: &Device,
    progress: &Progress,
) -> Result<Evaluated> {
    let (val, test) = sets;
    let probabilities_of = |part: Part, set: &EvalSet| -> Result<Vec<Vec<f32>>> {
        let evaluation = train::evaluate(best, set, plan.train.eval_batch_size, &plan.preprocess.normalize, device, progress, &format!("{} (best)", part.name()))?;
        Ok(evaluation.probabilities)
    };
    let write = |part: Part, set: &EvalSet, items: &[&Item], probabilities: Vec<Vec<f32>>| -> Result<Scores> {
        // outputs that are not numbers would score as always predicting the first class
        if probabilities.iter().flatten().any(|p| !p.is_finite()) {
            return Err(Error::Train(format!(
                "the best checkpoint's {} outputs are not numbers (the model diverged); lower train.optimizer.lr or set train.grad_clip",
                part.name()
            )));
        }
        let predictions: Vec<usize> = probabilities.iter().map(|p| crate::metrics::argmax(p)).collect();
        let scores = Scores::new(&set.labels, &predictions, dataset.classes.len());
        let rows: Vec<PredictionRow> = items
            .iter()
            .zip(predictions)
            .zip(probabilities)
            .map(|((item, prediction), probabilities)| PredictionRow { path: item.path.display().to_string(), label: item.label, prediction, probabilities })
            .collect();
        run.write_predictions(part, &rows, &dataset.classes)?;
        run.write_classification_report(part, &scores, &dataset.classes)?;
        run.write_confusion(part, &scores, &dataset.classes)?;
        Ok(scores)
    };
    let evaluate = |part: Part, set: &EvalSet, items: &[&Item]| -> Result<Scores> { write(part, set, items, probabilities_of(part, set)?) };
    let val_scores = match best_val {
        Some(kept) => write(Part::Val, val, &dataset.val_items(), kept.probabilities)?,
        None => evaluate(Part::Val, val, &dataset.val_items())?,
    };
    let test_scores = if dataset.test.is_empty() { None } else { Some(evaluate(Part::Test, test, &dataset.test.iter().collect::<Vec<_>>())?) };
    if plan.report.attention_maps > 0 && !dataset.test.is_empty() {
        write_attention_maps(best, plan, dataset, test, run, device, progress)?;
    }
    Ok(Evaluated { val: val_scores, test: test_scores })
}

/// Attention maps of a seeded choice of test images, into `attention.json` for the report.
fn write_attention_maps<M: Classifier + model::Attending>(
    best: &M,
    plan: &Plan,
    dataset: &Dataset,
    test: &EvalSet,
    run: &RunDir,
    device: &Device,
    progress: &Progress,
) -> Result<()> {
    use rand::SeedableRng;
    let started = Instant::now();
    let count = plan.report.attention_maps.min(test.len());
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(plan.seed ^ ATTENTION_SEED);
    let mut picked = rand::seq::index::sample(&mut rng, test.len(), count).into_vec();
    picked.sort_unstable();
    let (values, shape) = test.batch(&picked, &plan.preprocess.normalize)?;
    let pixels = burn::tensor::Tensor::<4>::from_data(burn::tensor::TensorData::new(values, shape), device);
    let logits = crate::backend::on_pool(device, || best.logits(pixels.clone()));
    let [_, classes] = logits.dims();
    let logits: Vec<f32> = logits.into_data().try_into_vec().expect("logits are f32");
    let predictions: Vec<usize> = logits.chunks_exact(classes).map(crate::metrics::argmax).collect();
    let maps = crate::backend::on_pool(device, || best.attention_maps(pixels))?;
    let entries: Vec<AttentionEntry> = picked
        .iter()
        .zip(maps)
        .zip(predictions)
        .map(|((&i, map), prediction)| AttentionEntry {
            path: dataset.test[i].path.display().to_string(),
            label: dataset.classes[dataset.test[i].label].clone(),
            prediction: dataset.classes[prediction].clone(),
            map,
        })
        .collect();
    run.write(run_dir::ATTENTION, serde_json::to_string(&entries).expect("maps serialise").as_bytes())?;
    progress.log(format!("attention maps of {count} test image(s) in {:.1} s", started.elapsed().as_secs_f64()));
    Ok(())
}
