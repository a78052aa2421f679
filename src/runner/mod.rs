//! Executes a [`Plan`]: fetch the data if needed, decode it once, train, evaluate the best
//! checkpoint on validation and test, and write everything into a run folder, then the report.
//!
//! A run folder that holds an unfinished run of the same spec is resumed from its last
//! completed epoch. [`run`] is the sequence of steps; each step lives in its own module:
//! `inputs` (checkpoint, device, dataset, model, images, duplicates), `budget` (samples and
//! steps), `resume` (the folder, and what training starts from), `journal` (progress into the
//! folder), `evaluate` (the best checkpoint), `record` (`meta.json` and the split's tables);
//! `tensorboard` and `report` then render the folder's files.

mod budget;
mod evaluate;
mod inputs;
mod journal;
mod record;
mod resume;

use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::Device;

pub use budget::Budget;
pub use inputs::{Images, decode, prepare_dataset};
pub use resume::{new_optimizer, spec_differences};

use crate::data::loader::TrainSet;
use crate::error::{Error, Result};
use crate::fmt::display_path;
use crate::metrics::Scores;
use crate::model::{self, Model};
use crate::plan::Plan;
use crate::progress::Progress;
use crate::report;
use crate::run_dir::{self, RunDir};
use crate::tensorboard;
use crate::train::schedule::Schedule;
use crate::train::{self, Classifier, EvalSet, Hyper};
use journal::RunJournal;
use record::{Ending, RunInputs};

/// Where and how to run.
#[derive(Clone)]
pub struct RunOptions {
    /// The run folder; `reports/<experiment>/<run-id>` under the working directory if `None`.
    pub out: Option<PathBuf>,
    pub progress: Progress,
    /// Resume a run folder whose spec, classes or data differ from this run's (said, not refused).
    pub force_resume: bool,
    /// How the log says this run resumes if interrupted (default: the same command with `--out`
    /// this run folder).
    pub resume_hint: Option<String>,
}

/// What a finished run reports back.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub dir: PathBuf,
    pub best_epoch: Option<usize>,
    pub val: Scores,
    pub test: Option<Scores>,
    pub wall_seconds: f64,
}

/// Runs `plan` to the end and writes its run folder.
pub fn run(plan: &Plan, options: &RunOptions) -> Result<Outcome> {
    let started = Instant::now();
    // a signal while the data is decoded or the model built stops at once, with 130 and a
    // message (training then stops at its next step instead)
    crate::interrupt::install();
    let Some(out) = &options.out else {
        // a new folder is made first thing, so a run started in the same second picks another
        let dir = resume::new_run_dir(&std::path::Path::new("reports").join(&plan.name))?;
        // a run stopped at once before writing anything leaves no folder behind either
        let _unused = {
            let dir = dir.clone();
            crate::interrupt::on_stop(move |_| resume::remove_if_unused(&dir))
        };
        let outcome = run_in(plan, options, dir.clone(), started);
        if outcome.is_err() {
            resume::remove_if_unused(&dir);
        }
        return outcome;
    };
    run_in(plan, options, out.clone(), started)
}

/// [`run`] in the run folder `dir`.
fn run_in(plan: &Plan, options: &RunOptions, dir: PathBuf, started: Instant) -> Result<Outcome> {
    let progress = &options.progress;
    // a folder that exists may be the user's, or another process's: find out before any long work
    if dir.is_dir() {
        run_dir::check_usable(&dir)?;
    }
    let early_lock = if dir.is_dir() { Some(run_dir::FolderLock::acquire(&dir)?) } else { None };
    if early_lock.is_some()
        && let Some(outcome) = finish_report(&dir, plan, progress)?
    {
        return Ok(outcome);
    }
    // the test hook for a signal before training (fetching, decoding, the model build)
    crate::interrupt::point("prepare", 1);
    let plan = &inputs::with_checkpoint(plan, progress)?;
    let chosen = inputs::open_device(plan, progress)?;
    let device = chosen.device.clone().autodiff();
    let mut dataset = inputs::prepare_dataset(plan, progress)?;
    plan.check_against(&dataset, crate::data::pixels::available_memory())?;
    let built = inputs::build_model(plan, &dataset, &device, progress)?;
    let images = inputs::decode(plan, &mut dataset, Some(&dir), progress)?;
    let duplicates = inputs::group_duplicates(plan, &mut dataset, &images, progress)?;
    let budget = Budget::new(plan, dataset.split.train.len());

    let run = RunDir::create(&dir)?;
    let _owner = match early_lock {
        Some(lock) => lock,
        None => run.lock()?,
    }; // held until the run returns
    let split = record::split_rows(&dataset, &images);
    let fingerprint = resume::data_fingerprint(&split, images.train_fingerprints.iter().chain(&images.test_fingerprints).map(|f| f.exact));
    let identity = resume::Identity { classes: &dataset.classes, data: &fingerprint, split: &split };
    let previous = resume::check_resumable(&run, plan, &identity, options.force_resume, progress)?;
    let removed = run.remove_debris()?;
    if removed > 0 {
        progress.log(format!("{}: removed {removed} file(s) an interrupted run left (unfinished writes, checkpoints no longer in use)", display_path(run.root())));
    }
    run.write(run_dir::SPEC, plan.resolved_toml.as_bytes())?;
    run.write_split(&split)?;
    run.write_duplicates(&record::duplicate_rows(&dataset, &duplicates, &plan.data.layout.root))?;
    let run_inputs = RunInputs { plan, dataset: &dataset, budget: &budget };
    let mut meta = record::initial_meta(&run_inputs, &built, &run, previous.as_ref(), &chosen.info);
    meta.data_fingerprint = Some(fingerprint);
    run.write_meta(&meta)?;
    let hint = options.resume_hint.clone().unwrap_or_else(|| format!("the same command with --out {} resumes it", display_path(run.root())));
    progress.log(format!("run folder: {} (if interrupted, {hint})", display_path(run.root())));

    let mut ending = None;
    let trained = match built.model {
        Model::Cvt(model) => train_and_evaluate(model, &run_inputs, &meta, images, &run, &device, &mut ending, progress),
        Model::Vit(model) => train_and_evaluate(model, &run_inputs, &meta, images, &run, &device, &mut ending, progress),
    };
    let seconds = started.elapsed().as_secs_f64();
    let evaluated = match trained {
        Ok(evaluated) => evaluated,
        Err(Error::Interrupted { signal, step, epoch, .. }) => {
            // not a failure: the checkpoint resumes it
            run.write_meta(&record::interrupted_meta(meta, seconds))?;
            return Err(Error::Interrupted { signal, step, epoch, run_dir: Some(run.root().to_path_buf()), resume: None });
        }
        Err(error) => {
            run.write_meta(&record::final_meta(meta, ending.as_ref(), Some(error.to_string()), seconds))?;
            // the failure is what this run reports; TensorBoard's copy of it is a bonus
            if let Err(tb) = tensorboard::write(&run) {
                progress.log(format!("warning: the TensorBoard events of the failed run were not written: {tb}"));
            }
            return Err(error);
        }
    };
    let meta = record::final_meta(meta, ending.as_ref(), None, seconds);
    run.write_meta(&meta)?;
    write_report(&run)?;
    Ok(Outcome { dir: run.root().to_path_buf(), best_epoch: meta.best_epoch, val: evaluated.val, test: evaluated.test, wall_seconds: meta.wall_seconds.unwrap_or(0.0) })
}

/// A folder whose run of this spec finished training and evaluation but was stopped while its
/// report was written: the report now, and the outcome from the folder's files.
fn finish_report(dir: &std::path::Path, plan: &Plan, progress: &Progress) -> Result<Option<Outcome>> {
    let Ok(run) = RunDir::open(dir) else { return Ok(None) };
    let meta = run.read_meta()?;
    let written = |wanted: bool, file: &str| !wanted || run.path(file).is_file();
    if meta.status != run_dir::Status::Complete
        || (written(meta.report.markdown, run_dir::REPORT_MD) && written(meta.report.html, run_dir::REPORT_HTML))
        || !resume::same_spec(&run.read_to_string(run_dir::SPEC)?, &plan.resolved_toml)
    {
        return Ok(None);
    }
    progress.log(format!("{}: training and evaluation are complete; writing the report it was stopped in", display_path(dir)));
    write_report(&run)?;
    let scores = |part: run_dir::Part| -> Result<Scores> {
        let rows = run.read_predictions(part, &meta.classes)?;
        let (truth, predicted): (Vec<usize>, Vec<usize>) = rows.iter().map(|r| (r.label, r.prediction)).unzip();
        Ok(Scores::new(&truth, &predicted, meta.classes.len()))
    };
    let test = if run.path(&run_dir::Part::Test.predictions_file()).is_file() { Some(scores(run_dir::Part::Test)?) } else { None };
    Ok(Some(Outcome { dir: dir.to_path_buf(), best_epoch: meta.best_epoch, val: scores(run_dir::Part::Val)?, test, wall_seconds: meta.wall_seconds.unwrap_or(0.0) }))
}

/// What a finished run writes from its files: its TensorBoard events, then its report (both
/// of which `brasa report` writes again).
fn write_report(run: &RunDir) -> Result<()> {
    tensorboard::write(run)
        .and_then(|_| report::render(run))
        .map(drop)
        .map_err(|source| Error::ReportAfterTraining { run_dir: run.root().to_path_buf(), source: Box::new(source) })
}

/// Trains `model` from where the run folder left off, then evaluates its best checkpoint.
/// `ending` says how training ended, once it has.
#[allow(clippy::too_many_arguments)]
fn train_and_evaluate<M: Classifier + model::Attending>(
    model: M,
    inputs: &RunInputs,
    meta: &run_dir::Meta,
    images: Images,
    run: &RunDir,
    device: &Device,
    ending: &mut Option<Ending>,
    progress: &Progress,
) -> Result<evaluate::Evaluated> {
    let RunInputs { plan, dataset, budget } = *inputs;
    let train_labels: Vec<usize> = dataset.split.train.iter().map(|&i| dataset.train_folder[i].label).collect();
    let train_set = TrainSet::new(
        images.train_folder.clone(),
        images.sources.clone(),
        dataset.split.train.clone(),
        train_labels,
        &plan.augment.chain,
        plan.augment.mode,
        plan.augment.copies,
        plan.seed,
    );
    let val = EvalSet { pixels: &images.train_folder, indices: dataset.split.val.clone(), labels: dataset.val_items().iter().map(|i| i.label).collect() };
    let test = EvalSet::all(&images.test, dataset.test.iter().map(|i| i.label).collect());
    let hyper = hyper(plan, budget, dataset.classes.len(), &meta.backend);

    device.seed(plan.seed);
    let mut journal = RunJournal::new(run, &dataset.classes, plan.train.epochs, progress);
    let start = resume::restore(model, plan, run, &mut journal, device)?;
    progress.log(format!(
        "training {} ({} parameters) for {} epochs: {} samples, {} steps per epoch on {} ({} CPU threads){}",
        plan.model.arch.name(),
        meta.model.parameters,
        plan.train.epochs,
        budget.samples_per_epoch,
        budget.steps_per_epoch,
        meta.backend,
        crate::backend::threads(),
        plan.train.max_steps.map(|m| format!(", stopping after {m} steps (train.max_steps)")).unwrap_or_default()
    ));
    // a signal now finishes the step and saves a checkpoint (before and after: it stops at once)
    let graceful = crate::interrupt::Graceful::new();
    let state = train::fit(start.model.clone(), start.optimizer, start.state, &hyper, &train_set, &val, &plan.preprocess.normalize, device, &mut journal, progress)?;
    drop(graceful);
    *ending = Some(Ending {
        best_epoch: state.best_epoch,
        epochs_run: state.epochs_done,
        stopped_early: state.stopped_early,
        // the allocator keeps the pages it took, so what it holds now is the training's peak
        gpu_memory_peak_bytes: crate::backend::memory_reserved(device).filter(|_| meta.backend != "flex"),
    });

    let best_file = journal.best_model.clone().ok_or_else(|| Error::Train("no epoch finished".into()))?;
    let best = resume::load_model(start.model, run, &best_file)?.valid();
    // validation's results are the best epoch's own, kept when it was validated
    let best_val = journal.best_val.as_deref().and_then(|file| match run.read_best_val(file) {
        Ok(kept) if kept.probabilities.len() == val.len() => Some(kept),
        Ok(_) => {
            progress.log(format!("checkpoints/{file} is not of this validation set: validating the best checkpoint again"));
            None
        }
        Err(e) => {
            progress.log(format!("{e}: validating the best checkpoint again"));
            None
        }
    });
    evaluate::evaluate_best(&best, plan, dataset, (&val, &test), best_val, run, device, progress)
}

/// The trainer's settings from the plan and the budget.
fn hyper(plan: &Plan, budget: &Budget, num_classes: usize, backend: &str) -> Hyper {
    Hyper {
        num_classes,
        epochs: plan.train.epochs,
        batch_size: plan.train.batch_size,
        eval_batch_size: plan.train.eval_batch_size,
        schedule: Schedule { shape: plan.train.schedule, peak_lr: plan.train.lr, warmup_steps: budget.warmup_steps, total_steps: budget.total_steps },
        grad_clip: plan.train.grad_clip,
        select: plan.train.select,
        patience: plan.train.patience,
        max_steps: plan.train.max_steps,
        seed: plan.seed,
        sync_every: if backend == "flex" { 1 } else { 16 },
        checkpoint_every_steps: plan.train.checkpoint_every_steps,
    }
}
