//! The run folder's identity: a fresh folder's name, whether a folder may be resumed, and the
//! model, optimizer and journal restored from its last checkpoint.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::journal::RunJournal;
use crate::build_info::timestamp;
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::run_dir::{self, Meta, RunDir, Status};
use crate::train::optim::AdamW;
use crate::train::{Classifier, TrainState};

/// `reports/<experiment>/<UTC timestamp>`, with a suffix if that exists already.
pub fn new_run_dir(parent: PathBuf) -> PathBuf {
    let stamp = timestamp(SystemTime::now()).replace(['-', ':'], "").replace('T', "-").trim_end_matches('Z').to_string();
    let mut candidate = parent.join(&stamp);
    let mut n = 2;
    while candidate.exists() {
        candidate = parent.join(format!("{stamp}-{n}"));
        n += 1;
    }
    candidate
}

/// The folder a run writes to: `out`, else a new one under `reports/<experiment>/`.
pub fn run_dir_path(plan: &Plan, out: Option<&Path>) -> PathBuf {
    match out {
        Some(out) => out.to_path_buf(),
        None => new_run_dir(Path::new("reports").join(&plan.name)),
    }
}

/// The previous meta when `run` holds an unfinished run of the same spec; an error when it holds
/// something else.
pub fn check_resumable(run: &RunDir, plan: &Plan) -> Result<Option<Meta>> {
    if !run.path(run_dir::META).is_file() {
        return Ok(None);
    }
    let previous = run.read_meta()?;
    let spec = run.read_to_string(run_dir::SPEC)?;
    if !same_run(&spec, &plan.resolved_toml) {
        return Err(Error::run_dir(run.root(), "holds a run of a different spec; choose another --out folder (or delete this one)"));
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
/// threads) and `data.cache`, so a run started on one backend can resume on another
/// (checkpoints hold plain f32 records, whatever device wrote them), and with its images kept
/// elsewhere (every cache mode gives the same pixels).
fn same_run(a: &str, b: &str) -> bool {
    let without_runtime = |text: &str| {
        text.parse::<toml::Table>().ok().map(|mut table| {
            table.remove("runtime");
            if let Some(toml::Value::Table(data)) = table.get_mut("data") {
                data.remove("cache");
            }
            table
        })
    };
    a == b || matches!((without_runtime(a), without_runtime(b)), (Some(x), Some(y)) if x == y)
}

/// AdamW with the Hugging Face Trainer's grouping: no weight decay on biases and LayerNorm
/// weights (`Trainer.get_decay_parameter_names`).
pub fn new_optimizer<M: Classifier>(plan: &Plan, model: &M) -> AdamW {
    AdamW::new(model, (&plan.train).into(), |param| param.hf_decays())
}

/// Loads checkpoint `file` of `run` into `model`.
pub fn load_model<M: Classifier>(model: M, run: &RunDir, file: &str) -> Result<M> {
    let path = run.checkpoint_path(file);
    crate::model::load(model, &path).map_err(|e| Error::run_dir(run.root(), format!("cannot load checkpoint {}: {e}", path.display())))
}

/// What training starts from: a fresh model and optimizer, or the last checkpoint of an
/// interrupted run with the journal's rows up to it.
pub struct Start<M> {
    pub model: M,
    pub optimizer: AdamW,
    pub state: TrainState,
}

/// Restores training from `run`'s last checkpoint, if it has one.
pub fn restore<M: Classifier>(model: M, plan: &Plan, run: &RunDir, journal: &mut RunJournal, device: &burn::tensor::Device) -> Result<Start<M>> {
    let Some(checkpoint) = run.read_checkpoint_state::<TrainState>()? else {
        let optimizer = new_optimizer(plan, &model);
        return Ok(Start { model, optimizer, state: TrainState::default() });
    };
    let model = load_model(model, run, &checkpoint.last_model)?;
    // groups are keyed by parameter id: build them from the loaded model's ids
    let optimizer = new_optimizer(plan, &model).load(&run.checkpoint_path(&checkpoint.last_optimizer), &device.clone().inner()).map_err(|e| {
        Error::run_dir(
            run.root(),
            format!("cannot load optimizer state {}: {e} (written for another model, or by a brasa before its multi-tensor AdamW: resume with that brasa, or start again in another --out)", checkpoint.last_optimizer),
        )
    })?;
    journal.steps = run.read_steps()?.into_iter().filter(|s| s.step <= checkpoint.train.step).collect();
    journal.epochs = run.read_epochs()?.into_iter().filter(|e| e.epoch <= checkpoint.train.epochs_done).collect();
    journal.best_model = checkpoint.best_model.clone();
    journal.progress.log(format!("resuming after epoch {} (step {})", checkpoint.train.epochs_done, checkpoint.train.step));
    Ok(Start { model, optimizer, state: checkpoint.train })
}
