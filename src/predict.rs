//! Classifying new images with a trained run or a pretrained checkpoint: class probabilities
//! per image, written as CSV (`path, predicted, <one column per class>`).
//!
//! Images are decoded in parallel and classified in batches, a chunk at a time, so a large
//! folder never has to fit in memory.

use std::io::Write;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::Device;
use walkdir::WalkDir;

use crate::data::folder::IMAGE_EXTENSIONS;
use crate::data::images::{self, Recipe};
use crate::data::tensor::Normalize;
use crate::data::Item;
use crate::error::{Error, Result};
use crate::metrics::argmax;
use crate::model::hub::Locator;
use crate::model::pretrained::{HfConfig, Processor};
use crate::model::{self, ArchConfig, Family, Model};
use crate::progress::Progress;
use crate::run_dir::{self, RunDir};
use crate::data::pixels::Pixels;
use crate::train::{EvalSet, evaluate};

/// Which checkpoint of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// The epoch `train.select_best` chose.
    Best,
    /// The latest one saved.
    Last,
}

/// A run's trained model, read back from its folder.
pub struct Trained {
    pub model: Model,
    pub config: ArchConfig,
    pub meta: run_dir::Meta,
    /// The checkpoint file under `checkpoints/`.
    pub checkpoint: String,
}

impl Trained {
    /// The `which` checkpoint of the run in `dir`, on `device`.
    pub fn load(dir: &Path, which: Which, device: &Device) -> Result<Self> {
        let run = RunDir::open(dir)?;
        let meta = run.read_meta()?;
        let config: ArchConfig = serde_json::from_value(meta.model.config.clone())
            .map_err(|e| Error::run_dir(dir, format!("{} has no usable model.config ({e}); it was written by an older brasa", run_dir::META)))?;
        let state = run.read_checkpoint_state::<serde_json::Value>()?;
        let checkpoint = match which {
            Which::Best => state.and_then(|c| c.best_model).ok_or_else(|| Error::run_dir(dir, "has no best checkpoint yet (did its first epoch finish?)"))?,
            Which::Last => state.map(|c| c.last_model).ok_or_else(|| Error::run_dir(dir, "has no checkpoint yet (did its first epoch finish?)"))?,
        };
        let path = run.path(&format!("{}/{checkpoint}", run_dir::CHECKPOINTS));
        let fail = |e: String| Error::run_dir(dir, format!("cannot load {}: {e}", path.display()));
        let model = match config.init(device) {
            Model::Cvt(m) => Model::Cvt(model::load(m, &path).map_err(fail)?),
            Model::Vit(m) => Model::Vit(model::load(m, &path).map_err(fail)?),
        };
        Ok(Self { model, config, meta, checkpoint })
    }
}

/// A model ready to classify: weights, class names and the preprocessing it expects.
pub struct Predictor {
    model: Model,
    pub classes: Vec<String>,
    recipe: Recipe,
    normalize: Normalize,
    /// What the predictions come from (for logs).
    pub source: String,
}

impl Predictor {
    /// The best checkpoint of a finished run; `hf_preprocess` swaps the run's preprocessing for
    /// the model family's Hugging Face image processor.
    pub fn from_run(dir: &Path, hf_preprocess: bool, device: &Device) -> Result<Self> {
        let Trained { model, config, meta, .. } = Trained::load(dir, Which::Best, device)?;
        let (recipe, normalize) = match (&meta.preprocess, hf_preprocess) {
            (pre, true) => {
                // the family's processor, sized to what the model was trained on
                let trained = pre.as_ref().and_then(|p| p.recipe.center_crop.or(p.recipe.resize.and_then(|(to, _)| to.fixed_size())));
                let input = match &config {
                    ArchConfig::Vit(c) => Some((c.image_size as u32, c.image_size as u32)),
                    ArchConfig::Cvt(_) => trained,
                };
                processor_parts(&Processor::family_default(config.family()).sized_to(input))
            }
            (Some(pre), false) => (pre.recipe, pre.normalize),
            (None, false) => {
                return Err(Error::run_dir(dir, format!("{} does not record its preprocessing (an older brasa wrote it); pass --preprocess hf", run_dir::META)));
            }
        };
        Ok(Self { model, classes: meta.classes, recipe, normalize, source: format!("{} (best epoch)", dir.display()) })
    }

    /// A Hugging Face checkpoint (`hf:org/name`, or a file or folder), with its own labels and
    /// image processor.
    pub fn from_pretrained(value: &str, device: &Device, progress: &Progress) -> Result<Self> {
        let locator = Locator::parse(value, None).map_err(|e| Error::Model(format!("--pretrained {value:?}: {e}")))?;
        let files = locator.fetch(progress)?;
        let hf = HfConfig::read(&files.config)?;
        let classes = hf.labels.clone();
        let config = hf.arch_config(classes.len())?;
        let (processor, from) = Processor::for_checkpoint(&files, hf.family)?;
        // which preprocessing the logits rest on, said where a family default stands in
        progress.log(format!("image processor: {from}"));
        if let Some(size) = processor.input_size() {
            config.check_input(size).map_err(|why| Error::Model(format!("{value}: its image processor ({from}) gives {}x{} inputs, which the model cannot take: {why}", size.0, size.1)))?;
        }
        let source = locator.describe();
        let mut model = config.init(device);
        let import = match &mut model {
            Model::Cvt(m) => model::pretrained::import(m, &files.weights, Family::Cvt, &source, false)?,
            Model::Vit(m) => model::pretrained::import(m, &files.weights, Family::Vit, &source, false)?,
        };
        if !import.new.is_empty() {
            return Err(Error::Model(format!(
                "{source} has no trained classification head ({}: {}); fine-tune it with `brasa run` and predict with --run",
                import.layout,
                import.new.join(", ")
            )));
        }
        // A ViT whose processor gives another size than its position embeddings were laid out for.
        if let (Model::Vit(_), Some((h, _))) = (&model, processor.input_size())
            && let Model::Vit(m) = model
        {
            model = Model::Vit(m.resize_position_embeddings(h as usize));
        }
        let (recipe, normalize) = processor_parts(&processor);
        Ok(Self { model, classes, recipe, normalize, source })
    }

    /// The logits of normalised model inputs `pixels` `[batch, 3, height, width]` on the
    /// predictor's device (no preprocessing: for checking a model against another tool's).
    pub fn logits(&self, pixels: burn::tensor::Tensor<4>) -> burn::tensor::Tensor<2> {
        use crate::model::Classifier;
        match &self.model {
            Model::Cvt(m) => m.valid().logits(pixels),
            Model::Vit(m) => m.valid().logits(pixels),
        }
    }

    /// Class probabilities of each readable image, in order (each file is decoded once); the
    /// files that cannot be read are listed apart.
    pub fn predict(&self, paths: &[PathBuf], batch_size: usize, device: &Device, progress: &Progress) -> Result<Predicted> {
        const CHUNK: usize = 256;
        let bar = progress.bar(paths.len() as u64, "predicting");
        let mut predicted = Predicted { paths: Vec::with_capacity(paths.len()), probabilities: Vec::with_capacity(paths.len()), logits: Vec::with_capacity(paths.len()), unreadable: Vec::new() };
        for (c, chunk) in paths.chunks(CHUNK).enumerate() {
            let items: Vec<Item> = chunk.iter().map(|p| Item { path: p.clone(), label: 0 }).collect();
            let mut decoded = images::decode_all(&items, &[self.recipe], &Progress::hidden(), "decoding")?;
            let mut bad = decoded.unreadable.iter().map(|u| u.index).peekable();
            predicted.paths.extend(chunk.iter().enumerate().filter(|(i, _)| bad.next_if_eq(i).is_none()).map(|(_, p)| p.clone()));
            predicted.unreadable.extend(decoded.unreadable.drain(..).map(|u| images::Unreadable { index: c * CHUNK + u.index, ..u }));
            let pixels = Pixels::Memory(decoded.per_recipe.remove(0));
            if pixels.is_empty() {
                bar.inc(chunk.len() as u64);
                continue;
            }
            let set = EvalSet::all(&pixels, vec![0; pixels.len()]);
            let evaluation = match &self.model {
                Model::Cvt(m) => evaluate(&m.valid(), &set, batch_size, &self.normalize, device, &Progress::hidden(), ""),
                Model::Vit(m) => evaluate(&m.valid(), &set, batch_size, &self.normalize, device, &Progress::hidden(), ""),
            }
            .map_err(|e| match e {
                crate::Error::Train(message) => crate::Error::Train(message.replace("train.eval_batch_size (e.g. --set train.eval_batch_size=", "--batch-size (e.g. --batch-size ")),
                other => other,
            })?;
            predicted.probabilities.extend(evaluation.probabilities);
            predicted.logits.extend(evaluation.logits);
            bar.inc(chunk.len() as u64);
        }
        bar.finish_and_clear();
        Ok(predicted)
    }

    /// The CSV of `predict`'s output: a column per class holding `values` (probabilities, or
    /// logits written in full precision).
    pub fn write_csv(&self, out: impl Write, paths: &[PathBuf], values: &[Vec<f32>], logits: bool) -> Result<()> {
        let fail = |e: csv::Error| Error::Io { path: PathBuf::from("<predictions>"), source: e.into() };
        let mut writer = csv::Writer::from_writer(out);
        let mut header = vec!["path".to_string(), "predicted".to_string()];
        header.extend(self.classes.iter().cloned());
        writer.write_record(&header).map_err(fail)?;
        for (path, row) in paths.iter().zip(values) {
            let mut record = vec![path.display().to_string(), self.classes[argmax(row)].clone()];
            record.extend(row.iter().map(|p| if logits { format!("{p:e}") } else { format!("{p:.6}") }));
            writer.write_record(&record).map_err(fail)?;
        }
        writer.flush().map_err(|e| Error::io("<predictions>", e))
    }
}

/// What `Predictor::predict` gives: the readable images and their class probabilities, and the
/// files that cannot be read (`index` into the paths asked for).
#[derive(Debug, Clone)]
pub struct Predicted {
    pub paths: Vec<PathBuf>,
    pub probabilities: Vec<Vec<f32>>,
    /// The model's raw outputs (before the softmax), in the same order.
    pub logits: Vec<Vec<f32>>,
    pub unreadable: Vec<images::Unreadable>,
}

fn processor_parts(processor: &Processor) -> (Recipe, Normalize) {
    (
        Recipe { resize: Some((processor.resize, processor.interpolation)), center_crop: processor.center_crop },
        Normalize { mean: processor.mean.map(|v| v as f32), std: processor.std.map(|v| v as f32) },
    )
}

/// The images named by `inputs`: files as given, folders searched recursively for image files
/// (sorted). A named file is decoded whatever its extension; a missing path is an error.
pub fn collect_images(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    collect_images_and_others(inputs).map(|(images, _)| images)
}

/// [`collect_images`], and the files of the folders searched that are left out: other
/// extensions, and entries that cannot be listed (a dangling link, no permission), for a
/// warning.
pub fn collect_images_and_others(inputs: &[PathBuf]) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let is_image = |p: &Path| {
        p.extension().and_then(|e| e.to_str()).is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|k| k.eq_ignore_ascii_case(e)))
    };
    let (mut images, mut others) = (Vec::new(), Vec::new());
    for input in inputs {
        if input.is_dir() {
            let mut found = Vec::new();
            for entry in WalkDir::new(input).follow_links(true).sort_by_file_name() {
                match entry {
                    Ok(e) if e.file_type().is_file() && is_image(e.path()) => found.push(e.into_path()),
                    Ok(e) if e.file_type().is_dir() => {}
                    Ok(e) => others.push(e.into_path()),
                    Err(e) => others.extend(e.path().map(Path::to_path_buf)),
                }
            }
            if found.is_empty() {
                return Err(Error::Data(format!("{} holds no images ({})", input.display(), IMAGE_EXTENSIONS.join(", "))));
            }
            images.append(&mut found);
        } else if input.is_file() {
            images.push(input.clone());
        } else if std::fs::symlink_metadata(input).is_ok() {
            return Err(Error::Data(format!("{} is neither an image file nor a folder (a link to nothing, a pipe or a device?)", input.display())));
        } else {
            return Err(Error::Data(format!("{} does not exist", input.display())));
        }
    }
    Ok((images, others))
}
