//! `attention.json`: attention maps of a few test images, for the report.

use serde::{Deserialize, Serialize};

use super::RunDir;
use crate::error::{Error, Result};

use super::ATTENTION;
use crate::attention_map::AttentionMap;

/// One entry of `attention.json`: a test image, its classes and the map of where the model looked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttentionEntry {
    pub path: String,
    pub label: String,
    pub prediction: String,
    pub map: AttentionMap,
}

impl RunDir {
    /// The attention maps of the run, `None` for a run folder without them.
    pub fn read_attention(&self) -> Result<Option<Vec<AttentionEntry>>> {
        if !self.path(ATTENTION).is_file() {
            return Ok(None);
        }
        serde_json::from_str(&self.read_to_string(ATTENTION)?)
            .map(Some)
            .map_err(|e| Error::run_dir(&self.root, format!("{ATTENTION} is malformed: {e}")))
    }
}
