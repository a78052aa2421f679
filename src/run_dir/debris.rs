//! What a killed run leaves behind in its folder, and its removal when the folder is resumed:
//! the temporary files of writes it did not finish, and checkpoints that `state.json` no longer
//! refers to (a kill between committing a checkpoint and pruning the previous one). Only names
//! brasa gives its own files are ever removed, never a file of the user's.

use super::{CHARTS, CHECKPOINTS, RunDir, TENSORBOARD};
use crate::error::{Error, Result};

/// Whether `name` is one of [`crate::atomic_file::write_atomic`]'s temporary files: `.tmp` and
/// six letters or digits (`tempfile`'s names).
pub fn is_temporary(name: &str) -> bool {
    name.strip_prefix(".tmp").is_some_and(|rest| rest.len() == 6 && rest.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// Whether `name` under `checkpoints/` is a checkpoint file (`epoch-NNNN.bpk`,
/// `step-NNNNNNN.optim.bpk`, `epoch-NNNN.val.json`, …).
pub fn is_checkpoint(name: &str) -> bool {
    (name.starts_with("epoch-") || name.starts_with("step-")) && (name.ends_with(".bpk") || name.ends_with(".val.json"))
}

/// Whether `name` under `checkpoints/` is a checkpoint file being written (burn's recorder
/// writes `<file>.<pid>-<n>.tmp` and renames it into place).
fn is_checkpoint_being_written(name: &str) -> bool {
    name.strip_suffix(".tmp").and_then(|rest| rest.rsplit_once(".bpk.")).is_some_and(|(file, writer)| {
        is_checkpoint(&format!("{file}.bpk")) && writer.split('-').all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_digit()))
    })
}

impl RunDir {
    /// Removes what a killed run left in this folder (see the module's documentation); the
    /// number of files removed. Only for a process that holds the folder's lock: another one's
    /// writes in progress look the same.
    pub fn remove_debris(&self) -> Result<usize> {
        let mut removed = 0;
        let referenced: Vec<String> = match self.read_checkpoint_state::<serde_json::Value>() {
            Ok(Some(state)) => [Some(state.last_model), Some(state.last_optimizer), state.best_model, state.best_val].into_iter().flatten().collect(),
            Ok(None) => Vec::new(),
            // resuming reports a malformed state.json itself; remove no checkpoint on its word
            Err(_) => return Ok(0),
        };
        for folder in [None, Some(CHECKPOINTS), Some(CHARTS), Some(TENSORBOARD)] {
            let dir = folder.map_or_else(|| self.root().to_path_buf(), |f| self.path(f));
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries.filter_map(|e| e.ok()) {
                let name = entry.file_name().to_string_lossy().into_owned();
                let in_checkpoints = folder == Some(CHECKPOINTS);
                let debris = is_temporary(&name)
                    || (in_checkpoints && (is_checkpoint_being_written(&name) || (is_checkpoint(&name) && !referenced.contains(&name))));
                if debris && entry.file_type().is_ok_and(|t| t.is_file()) {
                    std::fs::remove_file(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_folder_loses_what_a_kill_left_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::create(dir.path()).unwrap();
        let state = r#"{"train": {}, "last_model": "step-0000110.bpk", "last_optimizer": "step-0000110.optim.bpk", "best_model": "epoch-0002.bpk", "best_val": "epoch-0002.val.json"}"#;
        let kept = ["spec.toml", "notes.tmp", ".tmp", "checkpoints/state.json", "checkpoints/step-0000110.bpk", "checkpoints/step-0000110.optim.bpk", "checkpoints/epoch-0002.bpk", "checkpoints/epoch-0002.val.json", "checkpoints/my-weights.bpk", "checkpoints/notes.tmp"];
        let gone = [".tmpAb12Cd", "charts/.tmpXyZ789", "checkpoints/.tmp000aaa", "checkpoints/step-0000040.optim.bpk.12605-5.tmp", "checkpoints/epoch-0008.bpk", "checkpoints/epoch-0008.optim.bpk", "checkpoints/epoch-0001.val.json"];
        for file in kept.iter().chain(&gone) {
            std::fs::write(dir.path().join(file), if *file == "checkpoints/state.json" { state } else { "" }).unwrap();
        }
        assert_eq!(run.remove_debris().unwrap(), gone.len());
        assert!(kept.iter().all(|f| dir.path().join(f).is_file()), "kept: {kept:?}");
        assert!(gone.iter().all(|f| !dir.path().join(f).exists()), "gone: {gone:?}");
    }
}
