//! TensorBoard event files: a run folder's `tb/events.out.tfevents.<start>.brasa`, so that
//! `tensorboard --logdir reports/` shows every run and every sweep's trials.
//!
//! The file is made from the run folder's own files — `meta.json`, `spec.toml`, `epochs.csv`,
//! `steps.csv`, `test_predictions.csv` (and a sweep trial's `../sweep.toml`) — never from the
//! trainer's memory: the runner writes it at each epoch's end and when the run ends, and
//! `brasa report` can write it again, so after any interruption and resume it says what the
//! CSV files say. What it holds, in this order:
//!
//! | tag | step | from |
//! |---|---|---|
//! | `_hparams_/experiment`, `_hparams_/session_start_info` | 0 | the HParams plugin's records (see `hparams`) |
//! | `train/loss`, `train/lr`, `train/grad_norm` | global step | `steps.csv` |
//! | `epoch/<column>`: `train_loss`, `train_accuracy`, `val_loss`, `val_accuracy`, `val_macro_f1`, `val_weighted_f1`, `val_macro_recall`, `val_recall_<class>`, `lr`, `seconds` | epoch | `epochs.csv` |
//! | `final/val_{accuracy,macro_f1,weighted_f1,loss}` | best epoch | the best epoch's row of `epochs.csv` |
//! | `final/test_{accuracy,macro_f1,weighted_f1}` | best epoch | `test_predictions.csv`, once the run is complete |
//! | `_hparams_/session_end_info` | 0 | how the run ended, once it has |
//!
//! Scalars are `simple_value`s (32-bit floats, as TensorBoard stores them). Wall times are
//! rebuilt from the start in `meta.json` and the epochs' seconds, each epoch's steps spread
//! evenly over it.
//!
//! The one file brasa appends to rather than replaces: a TensorBoard watching a run keeps the
//! event file open and reads what is appended, and would never see a replaced one. The file
//! is a function of the folder's files whose earlier records do not change as epochs are
//! added, so what is appended is the rest of the file as it would be written whole; a crash
//! leaves a beginning of it, which TensorBoard reads as a file still being written and the
//! next write completes. Where the file holds anything else, it is written anew atomically.

mod hparams;
pub mod proto;
mod read;
mod record;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use prost::Message;

use crate::atomic_file::write_atomic;
use crate::error::{Error, Result};
use crate::metrics::Scores;
use crate::run_dir::{self, EpochRow, Meta, Part, RunDir, Status, StepRow};
use crate::sweep_dir::SweepDir;
use proto::{Data, Event, SessionStatus, Summary, What};

pub use hparams::{EXPERIMENT_TAG, METRICS, SESSION_END_TAG, SESSION_START_TAG};
pub use read::{Reading, Scalar, read};

/// What TensorBoard's own writers put in an event file's first record.
const FILE_VERSION: &str = "brain.Event:2";

/// The event file of the run in `run`, whose `meta.json` reads `meta`, relative to its folder.
pub fn events_file(run: &RunDir, meta: &Meta) -> Result<String> {
    let started = seconds_since_epoch(run, &meta.started_at, "started_at")?;
    Ok(format!("{}/events.out.tfevents.{}.brasa", run_dir::TENSORBOARD, started.floor() as i64))
}

/// Writes the event file of the run in `run` from its files, unless its spec says
/// `report.tensorboard = false`; the file written, relative to the run folder.
pub fn write(run: &RunDir) -> Result<Option<String>> {
    let meta = run.read_meta()?;
    if !meta.report.tensorboard {
        return Ok(None);
    }
    let file = events_file(run, &meta)?;
    let bytes = encode(run, &meta)?;
    let dir = run.path(run_dir::TENSORBOARD);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    write_extending(&run.path(&file), &bytes)?;
    Ok(Some(file))
}

/// Appends to `path` what `bytes` holds beyond the file where the file holds a beginning of
/// `bytes`; otherwise writes `bytes` anew, atomically.
fn write_extending(path: &Path, bytes: &[u8]) -> Result<()> {
    let existing = match std::fs::read(path) {
        Ok(existing) => existing,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return write_atomic(path, bytes),
        Err(e) => return Err(Error::io(path, e)),
    };
    if existing.is_empty() || !bytes.starts_with(&existing) {
        return write_atomic(path, bytes);
    }
    if existing.len() < bytes.len() {
        let mut file = std::fs::OpenOptions::new().append(true).open(path).map_err(|e| Error::io(path, e))?;
        file.write_all(&bytes[existing.len()..]).map_err(|e| Error::io(path, e))?;
        file.sync_all().map_err(|e| Error::io(path, e))?;
    }
    Ok(())
}

/// The whole event file of the run in `run`, whose `meta.json` reads `meta`.
pub fn encode(run: &RunDir, meta: &Meta) -> Result<Vec<u8>> {
    let started = seconds_since_epoch(run, &meta.started_at, "started_at")?;
    let spec: toml::Table = toml::from_str(&run.read_to_string(run_dir::SPEC)?)
        .map_err(|e| Error::run_dir(run.root(), format!("{} is malformed: {e}", run_dir::SPEC)))?;
    let swept = match SweepDir::of_trial(run.root()) {
        Some(sweep) => sweep.varied_keys()?,
        None => Vec::new(),
    };
    let hparams = hparams::hyperparameters(&spec, &swept);
    let (epochs, steps) = run.read_training(meta.status == run_dir::Status::Complete)?;

    let mut out = Events::default();
    let summary = |value: Vec<proto::Value>| What::Summary(Summary { value });
    out.push(started, 0, What::FileVersion(FILE_VERSION.into()));
    out.push(started, 0, summary(vec![hparams::experiment(&meta.experiment, &meta.description, started, &hparams, &swept)]));
    out.push(started, 0, summary(vec![hparams::session_start(hparams, started)]));

    let mut clock = started;
    let mut next_step = 0;
    for epoch in &epochs {
        let ends = next_step + steps[next_step..].iter().take_while(|s| s.epoch <= epoch.epoch).count();
        let count = ends - next_step;
        for (k, step) in steps[next_step..ends].iter().enumerate() {
            out.push(clock + epoch.seconds * (k + 1) as f64 / count as f64, step.step, summary(step_values(step)));
        }
        next_step = ends;
        clock += epoch.seconds;
        out.push(clock, epoch.epoch, summary(epoch_values(epoch, &meta.classes)));
    }
    // steps of an epoch that has not ended (a run stopped in it)
    for step in &steps[next_step..] {
        out.push(clock, step.step, summary(step_values(step)));
    }

    let ended = match meta.status {
        Status::Running => return Ok(out.bytes),
        Status::Complete => SessionStatus::Success,
        Status::Failed => SessionStatus::Failure,
    };
    let finished = match &meta.finished_at {
        Some(at) => seconds_since_epoch(run, at, "finished_at")?,
        None => clock,
    };
    if let Some(best) = meta.best_epoch.and_then(|best| epochs.iter().find(|e| e.epoch == best)) {
        out.push(finished, best.epoch, summary(final_values(run, meta, best)?));
    }
    out.push(finished, 0, summary(vec![hparams::session_end(ended, finished)]));
    Ok(out.bytes)
}

/// An event file being made: its records, framed.
#[derive(Default)]
struct Events {
    bytes: Vec<u8>,
}

impl Events {
    fn push(&mut self, wall_time: f64, step: usize, what: What) {
        record::frame(&Event { wall_time, step: step as i64, what: Some(what) }.encode_to_vec(), &mut self.bytes);
    }
}

fn scalar(tag: impl Into<String>, value: f64) -> proto::Value {
    proto::Value { tag: tag.into(), metadata: None, data: Some(Data::SimpleValue(value as f32)) }
}

fn step_values(step: &StepRow) -> Vec<proto::Value> {
    vec![scalar("train/loss", step.loss), scalar("train/lr", step.lr), scalar("train/grad_norm", step.grad_norm)]
}

fn epoch_values(epoch: &EpochRow, classes: &[String]) -> Vec<proto::Value> {
    let mut values = vec![
        scalar("epoch/train_loss", epoch.train_loss),
        scalar("epoch/train_accuracy", epoch.train_accuracy),
        scalar("epoch/val_loss", epoch.val_loss),
        scalar("epoch/val_accuracy", epoch.val_accuracy),
        scalar("epoch/val_macro_f1", epoch.val_macro_f1),
        scalar("epoch/val_weighted_f1", epoch.val_weighted_f1),
        scalar("epoch/val_macro_recall", epoch.val_macro_recall),
    ];
    values.extend(classes.iter().zip(&epoch.val_recall).map(|(class, recall)| scalar(format!("epoch/val_recall_{class}"), *recall)));
    values.extend([scalar("epoch/lr", epoch.lr), scalar("epoch/seconds", epoch.seconds)]);
    values
}

/// The metrics of the HParams tab: validation as the best epoch scored it, test from the best
/// checkpoint's predictions once the run is complete.
fn final_values(run: &RunDir, meta: &Meta, best: &EpochRow) -> Result<Vec<proto::Value>> {
    let mut values = vec![
        scalar("final/val_accuracy", best.val_accuracy),
        scalar("final/val_macro_f1", best.val_macro_f1),
        scalar("final/val_weighted_f1", best.val_weighted_f1),
        scalar("final/val_loss", best.val_loss),
    ];
    if meta.status == Status::Complete && run.path(&Part::Test.predictions_file()).is_file() {
        let predictions = run.read_predictions(Part::Test, &meta.classes)?;
        let (truth, predicted): (Vec<usize>, Vec<usize>) = predictions.iter().map(|p| (p.label, p.prediction)).unzip();
        let scores = Scores::new(&truth, &predicted, meta.classes.len());
        values.extend([
            scalar("final/test_accuracy", scores.accuracy),
            scalar("final/test_macro_f1", scores.macro_avg.f1),
            scalar("final/test_weighted_f1", scores.weighted_avg.f1),
        ]);
    }
    Ok(values)
}

/// `at`, the time `key` of `meta.json` (RFC 3339), in seconds since 1970.
fn seconds_since_epoch(run: &RunDir, at: &str, key: &str) -> Result<f64> {
    let time = humantime::parse_rfc3339_weak(at).map_err(|e| Error::run_dir(run.root(), format!("{} is malformed: {key} {at:?} is not a time: {e}", run_dir::META)))?;
    Ok(time.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64()))
}

/// The event files of a run folder (`tb/*tfevents*`), for readers.
pub fn event_files(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root.join(run_dir::TENSORBOARD)) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().contains("tfevents"))).collect();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn a_file_holding_a_beginning_of_the_events_is_appended_to_and_any_other_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.out.tfevents.1.brasa");
        write_extending(&path, b"epoch 1;").unwrap();
        // a reader that opened the file before, as a TensorBoard watching the run has
        let mut watching = std::fs::File::open(&path).unwrap();
        let mut seen = String::new();
        watching.read_to_string(&mut seen).unwrap();
        write_extending(&path, b"epoch 1;epoch 2;").unwrap();
        watching.read_to_string(&mut seen).unwrap();
        assert_eq!(seen, "epoch 1;epoch 2;", "the reader sees what was appended");
        write_extending(&path, b"epoch 1;").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"epoch 1;", "a file holding more is written anew");
        write_extending(&path, b"epoch 1'").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"epoch 1'");
    }
}
