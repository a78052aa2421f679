//! `checkpoints/`: the model and optimizer of each kept epoch (or of a step, for a checkpoint saved
//! mid-epoch), the best epoch's validation predictions, and `state.json`, the point a run resumes
//! from: written last, it commits a checkpoint.

use serde::{Deserialize, Serialize};

use super::RunDir;
use crate::error::{Error, Result};

use super::{CHECKPOINTS, STATE};

/// Resume point saved with every epoch's checkpoint; `S` is the trainer's own state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint<S> {
    pub train: S,
    /// File names under `checkpoints/`.
    pub last_model: String,
    pub last_optimizer: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_model: Option<String>,
    /// The best epoch's validation predictions ([`BestVal`]), made when that epoch was validated:
    /// the finished run's validation results are these, not a second pass over the same images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_val: Option<String>,
}

/// What validating the best epoch gave: a row of class probabilities per validation image, in
/// the split's order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BestVal {
    #[serde(deserialize_with = "crate::nonfinite::f32_rows")]
    pub probabilities: Vec<Vec<f32>>,
}

impl<S> Checkpoint<S> {
    /// The model and optimizer files of epoch `epoch` under `checkpoints/`.
    pub fn epoch_files(epoch: usize) -> (String, String) {
        let tag = format!("epoch-{epoch:04}");
        (format!("{tag}.bpk"), format!("{tag}.optim.bpk"))
    }

    /// The file of epoch `epoch`'s validation predictions under `checkpoints/`.
    pub fn val_file(epoch: usize) -> String {
        format!("epoch-{epoch:04}.val.json")
    }

    /// The model and optimizer files of a checkpoint saved after step `step`, mid-epoch.
    pub fn step_files(step: usize) -> (String, String) {
        let tag = format!("step-{step:07}");
        (format!("{tag}.bpk"), format!("{tag}.optim.bpk"))
    }
}

impl RunDir {
    /// The path of `file` under `checkpoints/`.
    pub fn checkpoint_path(&self, file: &str) -> std::path::PathBuf {
        self.path(CHECKPOINTS).join(file)
    }

    pub fn write_checkpoint_state<S: Serialize>(&self, checkpoint: &Checkpoint<S>) -> Result<()> {
        let json = serde_json::to_string_pretty(checkpoint).expect("state serialises");
        self.write(STATE, json.as_bytes())
    }

    pub fn read_checkpoint_state<S: serde::de::DeserializeOwned>(&self) -> Result<Option<Checkpoint<S>>> {
        if !self.path(STATE).is_file() {
            return Ok(None);
        }
        serde_json::from_str(&self.read_to_string(STATE)?)
            .map(Some)
            .map_err(|e| Error::run_dir(&self.root, format!("{STATE} is malformed: {e}")))
    }

    /// Writes the best epoch's validation predictions as `file` under `checkpoints/`.
    pub fn write_best_val(&self, file: &str, best: &BestVal) -> Result<()> {
        let json = serde_json::to_string(best).expect("predictions serialise");
        self.write(&format!("{CHECKPOINTS}/{file}"), json.as_bytes())
    }

    /// The validation predictions in `file` under `checkpoints/`.
    pub fn read_best_val(&self, file: &str) -> Result<BestVal> {
        let name = format!("{CHECKPOINTS}/{file}");
        serde_json::from_str(&self.read_to_string(&name)?).map_err(|e| Error::run_dir(&self.root, format!("{name} is malformed: {e}")))
    }

    /// Removes checkpoint files that `checkpoint` no longer refers to.
    pub fn prune_checkpoints<S>(&self, checkpoint: &Checkpoint<S>) -> Result<()> {
        let keep = [Some(&checkpoint.last_model), Some(&checkpoint.last_optimizer), checkpoint.best_model.as_ref(), checkpoint.best_val.as_ref()];
        let dir = self.path(CHECKPOINTS);
        for entry in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
            let entry = entry.map_err(|e| Error::io(&dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if (name.ends_with(".bpk") || name.ends_with(".val.json")) && !keep.iter().flatten().any(|k| **k == name) {
                std::fs::remove_file(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
            }
        }
        Ok(())
    }
}
