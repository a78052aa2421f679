//! Executes a [`Plan`]: fetch the data if needed, decode it once, train, evaluate the best
//! checkpoint on validation and test, and write everything into a run folder, then the report.
//!
//! A run folder that holds an unfinished run of the same spec is resumed from its last
//! completed epoch.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use burn::tensor::Device;
use image::RgbImage;

use crate::data::images::{self, Recipe};
use crate::data::loader::{AugmentMode, TrainSet};
use crate::data::{Dataset, Item, download};
use crate::error::{Error, Result};
use crate::model::{self, Model};
use crate::train::Classifier;
use crate::plan::Plan;
use crate::progress::Progress;
use crate::report;
use crate::run_dir::{self, Checkpoint, Counts, EpochRow, Meta, ModelMeta, Part, PredictionRow, PreprocessMeta, ReportMeta, RunDir, SplitRow, Status, StepRow, TrainMeta};
use crate::train::schedule::{Schedule, Shape};
use crate::train::optim::{self, AdamW};
use crate::train::{self, EpochRecord, EvalSet, Hyper, Journal, StepRecord, TrainState};
use crate::backend;
use crate::build_info::{BRASA_VERSION, BURN_VERSION, GIT_COMMIT, timestamp};

/// Where and how to run.
#[derive(Clone)]
pub struct RunOptions {
    /// The run folder; `reports/<experiment>/<run-id>` under the working directory if `None`.
    pub out: Option<PathBuf>,
    pub progress: Progress,
}

/// What a finished run reports back.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub dir: PathBuf,
    pub best_epoch: Option<usize>,
    pub val: crate::metrics::Scores,
    pub test: Option<crate::metrics::Scores>,
    pub wall_seconds: f64,
}

/// Makes sure the dataset is on disk (downloading it when the spec names a source) and scans it.
pub fn prepare_dataset(plan: &Plan, progress: &Progress) -> Result<Dataset> {
    let layout = &plan.data.layout;
    if !layout.root.is_dir() {
        match &plan.data.source {
            Some(url) => {
                progress.log(format!("data: {} is missing; downloading {url}", layout.root.display()));
                download::fetch_zip(url, &layout.root, progress)?;
            }
            None => return Err(Error::Data(format!("data.root {} does not exist", layout.root.display()))),
        }
    }
    let dataset = Dataset::scan(layout, plan.data.split)?;
    if let Some(expect) = &plan.data.expect {
        dataset.check_counts(layout, expect)?;
    }
    Ok(dataset)
}

/// Split counts as a small table (for logs and `brasa validate`).
pub fn counts_table(dataset: &Dataset) -> String {
    let counts = dataset.counts();
    let width = dataset.classes.iter().map(String::len).max().unwrap_or(5).max(5);
    let mut text = format!("{:width$}  {:>6}  {:>6}  {:>6}\n", "class", "train", "val", "test");
    for (i, class) in dataset.classes.iter().enumerate() {
        text.push_str(&format!("{class:width$}  {:>6}  {:>6}  {:>6}\n", counts.train[i], counts.val[i], counts.test[i]));
    }
    let sum = |v: &[usize]| v.iter().sum::<usize>();
    text.push_str(&format!("{:width$}  {:>6}  {:>6}  {:>6}", "total", sum(&counts.train), sum(&counts.val), sum(&counts.test)));
    text
}

/// Runs `plan` to the end and writes its run folder.
pub fn run(plan: &Plan, options: &RunOptions) -> Result<Outcome> {
    let started = Instant::now();
    let progress = &options.progress;
    let mut plan = plan.clone();
    plan.fetch_checkpoint(progress)?;
    let plan = &plan;
    if let Some(threads) = plan.runtime.threads {
        backend::set_threads(threads);
    }
    let chosen = plan.runtime.backend.choose(plan.runtime.device)?;
    progress.log(format!("device: {}", chosen.info.describe()));
    let device = chosen.device.clone().autodiff();

    let mut dataset = prepare_dataset(plan, progress)?;
    if !dataset.skipped.is_empty() {
        progress.log(format!(
            "warning: {} file(s) in the dataset folders are not images ({}) and are not used, e.g. {}",
            dataset.skipped.len(),
            crate::data::folder::IMAGE_EXTENSIONS.join(", "),
            dataset.skipped[0].display()
        ));
    }

    let source = plan.model.pretrained.as_ref().map(|p| p.locator.describe());
    let request = model::Request {
        arch: plan.model.arch,
        options: plan.model.options,
        classes: &dataset.classes,
        input_size: plan.preprocess.input_size,
        pretrained: plan.model.pretrained.as_ref().and_then(|p| p.files.as_ref()).zip(source.as_deref()),
        freeze: &plan.model.freeze,
    };
    let built = model::build(&request, &device)?;
    if let Some(import) = &built.import {
        progress.log(import.summary());
    }
    for note in &built.notes {
        progress.log(format!("model: {note}"));
    }
    if built.frozen > 0 {
        progress.log(format!("model: {} parameter tensors frozen ({})", built.frozen, plan.model.freeze.join(", ")));
    }

    let decode_started = Instant::now();
    let images = decode(plan, &dataset, progress)?;
    progress.log(format!(
        "decoded {} images in {:.1} s",
        dataset.train_folder.len() + dataset.test.len(),
        decode_started.elapsed().as_secs_f64()
    ));
    let duplicates = duplicate_groups(&images);
    if plan.data.split.group_duplicates {
        // the groups found above (training-folder items come first), merged where they overlap
        let n = dataset.train_folder.len();
        let clusters = crate::dedup::clusters(&duplicates, n + dataset.test.len());
        let mut together: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
        (0..n).for_each(|i| together.entry(clusters[i]).or_default().push(i));
        let within_training_folder: Vec<Vec<usize>> = together.into_values().filter(|members| members.len() > 1).collect();
        let moved = dataset.keep_groups_together(&within_training_folder);
        if dataset.split.val.is_empty() || dataset.split.train.is_empty() {
            let largest = within_training_folder.iter().map(Vec::len).max().unwrap_or(0);
            return Err(Error::Data(format!(
                "data.split.group_duplicates leaves the {} part empty: the largest duplicate group of the training folder holds {largest} of its {} images",
                if dataset.split.val.is_empty() { "validation" } else { "training" },
                dataset.train_folder.len()
            )));
        }
        progress.log(format!(
            "data: data.split.group_duplicates moved {moved} image(s) so that each of {} duplicate group(s) of the training folder is on one side",
            within_training_folder.len()
        ));
    }
    progress.log(format!("data: {} classes, split (seed {}):\n{}", dataset.classes.len(), plan.data.split.seed, counts_table(&dataset)));

    let dir = match &options.out {
        Some(out) => out.clone(),
        None => new_run_dir(Path::new("reports").join(&plan.name)),
    };
    let run = RunDir::create(&dir)?;
    let resumed = check_resumable(&run, plan)?;
    run.write(run_dir::SPEC, plan.resolved_toml.as_bytes())?;
    run.write_split(&split_rows(&dataset, &images))?;
    run.write_duplicates(&duplicate_rows(&dataset, &duplicates, &plan.data.layout.root))?;

    let mut meta = initial_meta(plan, &dataset, &run, &built, resumed.as_ref(), &chosen.info)?;
    run.write_meta(&meta)?;
    progress.log(format!(
        "run folder: {} (if interrupted, the same command with --out {} resumes it)",
        crate::fmt::display_path(run.root()),
        crate::fmt::display_path(run.root())
    ));

    let result = match built.model {
        Model::Cvt(model) => train_and_evaluate(model, plan, Loaded { dataset: &dataset, images }, &run, &device, &mut meta, progress),
        Model::Vit(model) => train_and_evaluate(model, plan, Loaded { dataset: &dataset, images }, &run, &device, &mut meta, progress),
    };
    meta.wall_seconds = Some(meta.wall_seconds.unwrap_or(0.0) + started.elapsed().as_secs_f64());
    meta.finished_at = Some(timestamp(SystemTime::now()));
    match result {
        Ok((val, test)) => {
            meta.status = Status::Complete;
            run.write_meta(&meta)?;
            report::render(&run).map_err(|e| {
                Error::Report(format!(
                    "training finished but the report could not be written ({e}); rebuild it with `brasa report {}`",
                    run.root().display()
                ))
            })?;
            Ok(Outcome { dir, best_epoch: meta.best_epoch, val, test, wall_seconds: meta.wall_seconds.unwrap_or(0.0) })
        }
        Err(error) => {
            meta.status = Status::Failed;
            meta.error = Some(error.to_string());
            run.write_meta(&meta)?;
            Err(error)
        }
    }
}

/// `reports/<experiment>/<UTC timestamp>`, with a suffix if that exists already.
fn new_run_dir(parent: PathBuf) -> PathBuf {
    let stamp = timestamp(SystemTime::now()).replace(['-', ':'], "").replace('T', "-").trim_end_matches('Z').to_string();
    let mut candidate = parent.join(&stamp);
    let mut n = 2;
    while candidate.exists() {
        candidate = parent.join(format!("{stamp}-{n}"));
        n += 1;
    }
    candidate
}

/// The previous meta when `run` holds an unfinished run of the same spec; an error when it holds
/// something else.
fn check_resumable(run: &RunDir, plan: &Plan) -> Result<Option<Meta>> {
    if !run.path(run_dir::META).is_file() {
        return Ok(None);
    }
    let previous = run.read_meta()?;
    let spec = run.read_to_string(run_dir::SPEC)?;
    if !same_run(&spec, &plan.resolved_toml) {
        return Err(Error::run_dir(
            run.root(),
            "holds a run of a different spec; choose another --out folder (or delete this one)",
        ));
    }
    if previous.status == Status::Complete {
        return Err(Error::run_dir(
            run.root(),
            "holds a finished run of this spec; `brasa report` rebuilds its report, another --out starts a new run",
        ));
    }
    Ok(Some(previous))
}

/// Whether two resolved specs describe the same run: equal but for `[runtime]` (backend, device,
/// threads), so a run started on one backend can resume on another (checkpoints hold plain
/// f32 records, whatever device wrote them).
fn same_run(a: &str, b: &str) -> bool {
    let without_runtime = |text: &str| {
        text.parse::<toml::Table>().ok().map(|mut table| {
            table.remove("runtime");
            table
        })
    };
    a == b || matches!((without_runtime(a), without_runtime(b)), (Some(x), Some(y)) if x == y)
}

/// Every image of the run with its part: the training folder's items, then the test items.
fn parts_of(dataset: &Dataset) -> Vec<(&Item, Part)> {
    let mut in_val = vec![false; dataset.train_folder.len()];
    dataset.split.val.iter().for_each(|&i| in_val[i] = true);
    let train = dataset.train_folder.iter().zip(in_val).map(|(item, val)| (item, if val { Part::Val } else { Part::Train }));
    train.chain(dataset.test.iter().map(|item| (item, Part::Test))).collect()
}

fn split_rows(dataset: &Dataset, images: &Images) -> Vec<SplitRow> {
    let sizes = images.train_sizes.iter().chain(&images.test_sizes);
    parts_of(dataset)
        .into_iter()
        .zip(sizes)
        .map(|((item, split), &(width, height))| SplitRow {
            path: item.path.display().to_string(),
            class: dataset.classes[item.label].clone(),
            split,
            width: Some(width),
            height: Some(height),
        })
        .collect()
}

/// Duplicate groups among all the run's images, indexed like [`parts_of`].
fn duplicate_groups(images: &Images) -> Vec<crate::dedup::Group> {
    let all: Vec<crate::dedup::Fingerprint> = images.train_fingerprints.iter().chain(&images.test_fingerprints).copied().collect();
    crate::dedup::group(&all, crate::dedup::NEAR_THRESHOLD)
}

/// `duplicates.csv` rows: one per member of each group, paths relative to the data root.
fn duplicate_rows(dataset: &Dataset, groups: &[crate::dedup::Group], root: &Path) -> Vec<run_dir::DuplicateRow> {
    let parts = parts_of(dataset);
    let mut rows = Vec::new();
    for group in groups {
        let mut members: Vec<run_dir::DuplicateRow> = group
            .members
            .iter()
            .map(|&i| {
                let (item, part) = parts[i];
                run_dir::DuplicateRow {
                    group: group.id,
                    kind: group.kind.as_str().to_string(),
                    split: part.name().to_string(),
                    class: dataset.classes[item.label].clone(),
                    path: crate::fmt::relative(root, &item.path),
                }
            })
            .collect();
        members.sort_by(|a, b| a.path.cmp(&b.path));
        rows.extend(members);
    }
    rows
}

fn steps_per_epoch(plan: &Plan, train_items: usize) -> (usize, usize) {
    let copies = if plan.augment.chain.ops.is_empty() { 0 } else { plan.augment.copies };
    let samples = train_items * (1 + copies);
    (samples, samples.div_ceil(plan.train.batch_size))
}

/// Optimizer steps of the whole run: every epoch's, or `train.max_steps` if fewer.
fn total_steps(plan: &Plan, steps_per_epoch: usize) -> usize {
    let all = steps_per_epoch * plan.train.epochs;
    plan.train.max_steps.map_or(all, |max| max.min(all))
}

fn initial_meta(plan: &Plan, dataset: &Dataset, run: &RunDir, built: &model::Built, previous: Option<&Meta>, device: &backend::DeviceInfo) -> Result<Meta> {
    let counts = dataset.counts();
    let (samples, steps) = steps_per_epoch(plan, dataset.split.train.len());
    let total_steps = total_steps(plan, steps);
    let run_id = run.root().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(Meta {
        experiment: plan.name.clone(),
        description: plan.description.clone(),
        run_id,
        status: Status::Running,
        error: None,
        brasa_version: BRASA_VERSION.into(),
        git_commit: GIT_COMMIT.into(),
        burn_version: BURN_VERSION.into(),
        backend: device.backend.clone(),
        device: Some(device.clone()),
        gpu_memory_peak_bytes: None,
        threads: backend::threads(),
        seed: plan.seed,
        spec_file: plan.spec_file.display().to_string(),
        data_root: plan.data.layout.root.display().to_string(),
        started_at: previous.map(|m| m.started_at.clone()).unwrap_or_else(|| timestamp(SystemTime::now())),
        finished_at: None,
        // a killed run never wrote its wall time: count at least the epochs it finished
        wall_seconds: match previous {
            Some(m) => m.wall_seconds.or_else(|| run.read_epochs().ok().map(|epochs| epochs.iter().map(|e| e.seconds).sum())),
            None => None,
        },
        classes: dataset.classes.clone(),
        counts: Counts { train: counts.train, val: counts.val, test: counts.test },
        skipped_files: dataset.skipped.iter().map(|p| p.display().to_string()).collect(),
        model: ModelMeta {
            arch: plan.model.arch.name().into(),
            parameters: built.model.num_params(),
            frozen: built.frozen,
            input_size: [plan.preprocess.input_size.0, plan.preprocess.input_size.1],
            pretrained: plan.model.pretrained.as_ref().map(|p| p.locator.describe()),
            config: serde_json::to_value(&built.config).expect("configs serialise"),
            import: built.import.as_ref().map(|i| serde_json::to_value(i).expect("reports serialise")),
            notes: built.notes.clone(),
        },
        preprocess: Some(PreprocessMeta {
            recipe: plan.preprocess.recipe,
            normalize: plan.preprocess.normalize,
            preset: plan.preprocess.preset.clone(),
        }),
        train: TrainMeta {
            epochs: plan.train.epochs,
            batch_size: plan.train.batch_size,
            lr: plan.train.lr,
            weight_decay: plan.train.weight_decay,
            schedule: match plan.train.schedule {
                Shape::Constant => "constant",
                Shape::Linear => "linear",
                Shape::Cosine => "cosine",
            }
            .into(),
            warmup_steps: plan.train.warmup.steps(total_steps),
            grad_clip: plan.train.grad_clip,
            select_best: plan.train.select.name().into(),
            augment_mode: match plan.augment.mode {
                AugmentMode::Append => "append",
                AugmentMode::Online => "online",
            }
            .into(),
            augment_copies: if plan.augment.chain.ops.is_empty() { 0 } else { plan.augment.copies },
            samples_per_epoch: samples,
            steps_per_epoch: steps,
        },
        report: ReportMeta {
            markdown: plan.report.markdown,
            html: plan.report.html,
            prediction_grid: plan.report.prediction_grid,
            mistakes: plan.report.mistakes,
            attention_maps: plan.report.attention_maps,
            templates: plan.report.templates.as_ref().map(|p| p.display().to_string()),
        },
        best_epoch: None,
        epochs_run: 0,
        stopped_early: false,
        resumed: previous.map_or(0, |m| m.resumed + 1),
    })
}

/// Decoded images of the whole dataset, in the forms the run needs.
struct Images {
    /// Clean model inputs of the training folder's items.
    train_folder: Arc<Vec<RgbImage>>,
    /// Augmentation sources of the training folder's items (shared when the recipe is the same).
    sources: Arc<Vec<RgbImage>>,
    test: Vec<RgbImage>,
    train_sizes: Vec<(u32, u32)>,
    test_sizes: Vec<(u32, u32)>,
    train_fingerprints: Vec<crate::dedup::Fingerprint>,
    test_fingerprints: Vec<crate::dedup::Fingerprint>,
}

fn decode(plan: &Plan, dataset: &Dataset, progress: &Progress) -> Result<Images> {
    let clean = plan.preprocess.recipe;
    let source = plan.augment.source_recipe();
    let augmenting = !plan.augment.chain.ops.is_empty();
    let recipes: Vec<Recipe> = if augmenting && source != clean { vec![clean, source] } else { vec![clean] };
    let decoded = images::decode_all(&dataset.train_folder, &recipes, progress, "decoding")?;
    let mut forms = decoded.per_recipe.into_iter();
    let train_folder = Arc::new(forms.next().expect("clean recipe"));
    let sources = forms.next().map(Arc::new).unwrap_or_else(|| train_folder.clone());
    let mut test = images::decode_all(&dataset.test, &[clean], progress, "decoding test")?;
    Ok(Images {
        train_folder,
        sources,
        test: test.per_recipe.remove(0),
        train_sizes: decoded.original_sizes,
        test_sizes: test.original_sizes,
        train_fingerprints: decoded.fingerprints,
        test_fingerprints: test.fingerprints,
    })
}

/// The scanned dataset and its decoded images.
struct Loaded<'a> {
    dataset: &'a Dataset,
    images: Images,
}

fn train_and_evaluate<M: Classifier + model::Attending>(
    model: M,
    plan: &Plan,
    loaded: Loaded,
    run: &RunDir,
    device: &Device,
    meta: &mut Meta,
    progress: &Progress,
) -> Result<(crate::metrics::Scores, Option<crate::metrics::Scores>)> {
    let Loaded { dataset, images } = loaded;

    let train_labels: Vec<usize> = dataset.split.train.iter().map(|&i| dataset.train_folder[i].label).collect();
    let mut train_set = TrainSet::new(
        images.train_folder.clone(),
        images.sources.clone(),
        dataset.split.train.clone(),
        train_labels,
        &plan.augment.chain,
        plan.augment.mode,
        plan.augment.copies,
        plan.seed,
    );
    let val = EvalSet {
        images: dataset.split.val.iter().map(|&i| &images.train_folder[i]).collect(),
        labels: dataset.val_items().iter().map(|i| i.label).collect(),
    };
    let test = EvalSet { images: images.test.iter().collect(), labels: dataset.test.iter().map(|i| i.label).collect() };

    let num_classes = dataset.classes.len();
    device.seed(plan.seed);
    let mut model = model;
    let total_steps = total_steps(plan, meta.train.steps_per_epoch);
    let hyper = Hyper {
        num_classes,
        epochs: plan.train.epochs,
        batch_size: plan.train.batch_size,
        eval_batch_size: plan.train.eval_batch_size,
        schedule: Schedule {
            shape: plan.train.schedule,
            peak_lr: plan.train.lr,
            warmup_steps: meta.train.warmup_steps,
            total_steps,
        },
        grad_clip: plan.train.grad_clip,
        select: plan.train.select,
        patience: plan.train.patience,
        max_steps: plan.train.max_steps,
        seed: plan.seed,
        sync_every: if meta.backend == "flex" { 1 } else { 16 },
    };

    let mut journal = RunJournal { run, classes: &dataset.classes, steps: Vec::new(), epochs: Vec::new(), best_model: None, progress, epochs_total: plan.train.epochs };
    let mut state = TrainState::default();
    let mut optimizer = new_optimizer(plan, &model);
    if let Some(checkpoint) = run.read_checkpoint_state::<TrainState>()? {
        model = load_model(model, run, &checkpoint.last_model)?;
        // groups are keyed by parameter id: build them from the loaded model's ids
        optimizer = new_optimizer(plan, &model)
            .load(&run.path(&format!("{}/{}", run_dir::CHECKPOINTS, checkpoint.last_optimizer)), &device.clone().inner())
            .map_err(|e| {
                Error::run_dir(
                    run.root(),
                    format!("cannot load optimizer state {}: {e} (written for another model, or by a brasa before its multi-tensor AdamW: resume with that brasa, or start again in another --out)", checkpoint.last_optimizer),
                )
            })?;
        journal.steps = run.read_steps()?.into_iter().filter(|s| s.step <= checkpoint.train.step).collect();
        journal.epochs = run.read_epochs()?.into_iter().filter(|e| e.epoch <= checkpoint.train.epochs_done).collect();
        journal.best_model = checkpoint.best_model.clone();
        state = checkpoint.train;
        progress.log(format!("resuming after epoch {} (step {})", state.epochs_done, state.step));
    }
    progress.log(format!(
        "training {} ({} parameters) for {} epochs: {} samples, {} steps per epoch on {} ({} CPU threads){}",
        plan.model.arch.name(),
        meta.model.parameters,
        plan.train.epochs,
        meta.train.samples_per_epoch,
        meta.train.steps_per_epoch,
        meta.backend,
        backend::threads(),
        plan.train.max_steps.map(|m| format!(", stopping after {m} steps (train.max_steps)")).unwrap_or_default()
    ));
    let state = train::fit(model.clone(), optimizer, state, &hyper, &mut train_set, &val, &plan.preprocess.normalize, device, &mut journal, progress)?;
    // the allocator keeps the pages it took, so what it holds now is the training's peak
    meta.gpu_memory_peak_bytes = backend::memory_reserved(device).filter(|_| meta.backend != "flex");
    meta.best_epoch = state.best_epoch;
    meta.epochs_run = state.epochs_done;
    meta.stopped_early = state.stopped_early;

    let best_file = journal.best_model.clone().ok_or_else(|| Error::Train("no epoch finished".into()))?;
    let best = load_model(model, run, &best_file)?.valid();
    let evaluate = |part: Part, set: &EvalSet, items: &[&Item]| -> Result<crate::metrics::Scores> {
        let evaluation = train::evaluate(&best, set, plan.train.eval_batch_size, &plan.preprocess.normalize, device, progress, &format!("{} (best)", part.name()))?;
        let report = evaluation.report(&set.labels, num_classes);
        let rows: Vec<PredictionRow> = items
            .iter()
            .zip(evaluation.predictions())
            .zip(evaluation.probabilities)
            .map(|((item, prediction), probabilities)| PredictionRow {
                path: item.path.display().to_string(),
                label: item.label,
                prediction,
                probabilities,
            })
            .collect();
        run.write_predictions(part, &rows, &dataset.classes)?;
        run.write_classification_report(part, &report, &dataset.classes)?;
        run.write_confusion(part, &report, &dataset.classes)?;
        Ok(report)
    };
    let val_report = evaluate(Part::Val, &val, &dataset.val_items())?;
    let test_report = if dataset.test.is_empty() {
        None
    } else {
        Some(evaluate(Part::Test, &test, &dataset.test.iter().collect::<Vec<_>>())?)
    };
    if plan.report.attention_maps > 0 && !dataset.test.is_empty() {
        write_attention_maps(&best, plan, dataset, &test, run, device, progress)?;
    }
    Ok((val_report, test_report))
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
    let count = plan.report.attention_maps.min(test.images.len());
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(plan.seed ^ ATTENTION_SEED);
    let mut picked = rand::seq::index::sample(&mut rng, test.images.len(), count).into_vec();
    picked.sort_unstable();
    let images: Vec<&RgbImage> = picked.iter().map(|&i| test.images[i]).collect();
    let pixels = plan.preprocess.normalize.batch(&images, device);
    let logits = best.logits(pixels.clone());
    let [_, classes] = logits.dims();
    let logits: Vec<f32> = logits.into_data().try_into_vec().expect("logits are f32");
    let predictions: Vec<usize> = logits.chunks_exact(classes).map(crate::metrics::argmax).collect();
    let maps = best.attention_maps(pixels)?;
    let entries: Vec<run_dir::AttentionEntry> = picked
        .iter()
        .zip(maps)
        .zip(predictions)
        .map(|((&i, map), prediction)| run_dir::AttentionEntry {
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

/// Mixed into the run's seed for the choice of attention-map images.
const ATTENTION_SEED: u64 = 0xa77e_4710;

/// AdamW with the Hugging Face Trainer's grouping: no weight decay on biases and LayerNorm
/// weights (`Trainer.get_decay_parameter_names`).
pub fn new_optimizer<M: Classifier>(plan: &Plan, model: &M) -> AdamW {
    let settings = optim::Settings { beta_1: plan.train.betas.0, beta_2: plan.train.betas.1, epsilon: plan.train.eps, weight_decay: plan.train.weight_decay };
    AdamW::new(model, settings, |param| param.hf_decays())
}

fn load_model<M: Classifier>(model: M, run: &RunDir, file: &str) -> Result<M> {
    let path = run.path(&format!("{}/{}", run_dir::CHECKPOINTS, file));
    crate::model::load(model, &path).map_err(|e| Error::run_dir(run.root(), format!("cannot load checkpoint {}: {e}", path.display())))
}

/// Persists training progress into the run folder.
struct RunJournal<'a> {
    run: &'a RunDir,
    classes: &'a [String],
    steps: Vec<StepRow>,
    epochs: Vec<EpochRow>,
    best_model: Option<String>,
    progress: &'a Progress,
    epochs_total: usize,
}

impl<M: Classifier> Journal<M> for RunJournal<'_> {
    fn step(&mut self, record: &StepRecord) -> Result<()> {
        self.steps.push(StepRow { step: record.step, epoch: record.epoch, loss: record.loss, lr: record.lr, grad_norm: record.grad_norm });
        Ok(())
    }

    fn epoch(&mut self, record: &EpochRecord, model: &M, optimizer: &AdamW, state: &TrainState) -> Result<()> {
        let tag = format!("epoch-{:04}", record.epoch);
        let model_file = format!("{tag}.bpk");
        let optimizer_file = format!("{tag}.optim.bpk");
        let dir = self.run.path(run_dir::CHECKPOINTS);
        // burnpack writes through a temporary file and renames it: each checkpoint is atomic.
        let failed = |file: &str, e: &dyn std::fmt::Display| Error::run_dir(self.run.root(), format!("cannot save checkpoint {file}: {e}"));
        crate::model::save(model, &dir.join(&model_file)).map_err(|e| failed(&model_file, &e))?;
        optimizer.save(&dir.join(&optimizer_file)).map_err(|e| failed(&optimizer_file, &e))?;
        if record.improved {
            self.best_model = Some(model_file.clone());
        }
        let val = &record.val;
        self.epochs.push(EpochRow {
            epoch: record.epoch,
            train_loss: record.train_loss,
            train_accuracy: record.train_accuracy,
            val_loss: record.val_loss,
            val_accuracy: val.accuracy,
            val_macro_f1: val.macro_avg.f1,
            val_weighted_f1: val.weighted_avg.f1,
            val_macro_recall: val.macro_avg.recall,
            val_recall: val.per_class.iter().map(|s| s.recall).collect(),
            lr: record.lr,
            seconds: record.seconds,
            best: record.improved,
        });
        self.run.write_epochs(&self.epochs, self.classes)?;
        self.run.write_steps(&self.steps)?;
        let checkpoint = Checkpoint { train: state.clone(), last_model: model_file, last_optimizer: optimizer_file, best_model: self.best_model.clone() };
        self.run.write_checkpoint_state(&checkpoint)?;
        self.run.prune_checkpoints(&checkpoint)?;
        self.progress.log(format!(
            "epoch {:>2}/{}  train loss {:.4} acc {:.4} | val loss {:.4} acc {:.4} macro-F1 {:.4} | {:.1} s{}",
            record.epoch,
            self.epochs_total,
            record.train_loss,
            record.train_accuracy,
            record.val_loss,
            val.accuracy,
            val.macro_avg.f1,
            record.seconds,
            if record.improved { "  * best" } else { "" }
        ));
        Ok(())
    }
}
