//! `summary.json`: a run's results in brief — the scores of each evaluated part with their 95%
//! bootstrap intervals, the leak-free test part, and the findings' codes — written by the report
//! beside `report.md`, so a list of hundreds of runs (`brasa index`) reads one small file per run
//! instead of bootstrapping every predictions file again.
//!
//! It is derived: a run folder without it (or with one older than its `meta.json` says) is
//! summarised from its files as the report does.

use serde::{Deserialize, Serialize};

use super::{Part, RunDir, Status};
use crate::error::{Error, Result};

pub const SUMMARY: &str = "summary.json";

/// A score with its 95% bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    #[serde(deserialize_with = "crate::nonfinite::f64")]
    pub value: f64,
    #[serde(deserialize_with = "crate::nonfinite::f64")]
    pub low: f64,
    #[serde(deserialize_with = "crate::nonfinite::f64")]
    pub high: f64,
}

/// The scores of one evaluated part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartSummary {
    pub part: Part,
    pub images: usize,
    pub accuracy: Scored,
    pub macro_f1: Scored,
}

/// One finding: its short code and its sentence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FindingSummary {
    pub code: String,
    pub text: String,
}

/// `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryFile {
    /// The run's status and epochs when this was written: a summary that disagrees with
    /// `meta.json` is stale (the run went on or was resumed since).
    pub status: Status,
    pub epochs_run: usize,
    pub parts: Vec<PartSummary>,
    /// The test part without the images that have a duplicate on the training side.
    #[serde(default)]
    pub leak_free_test: Option<PartSummary>,
    pub findings: Vec<FindingSummary>,
}

impl SummaryFile {
    pub fn part(&self, part: Part) -> Option<&PartSummary> {
        self.parts.iter().find(|p| p.part == part)
    }
}

impl RunDir {
    pub fn write_summary(&self, summary: &SummaryFile) -> Result<()> {
        let json = serde_json::to_string_pretty(summary).expect("a summary serialises");
        self.write(SUMMARY, json.as_bytes())
    }

    /// `summary.json` when the folder has one that agrees with `meta` (status and epochs run).
    pub fn read_summary(&self, meta: &super::Meta) -> Result<Option<SummaryFile>> {
        if !self.path(SUMMARY).is_file() {
            return Ok(None);
        }
        let summary: SummaryFile = serde_json::from_str(&self.read_to_string(SUMMARY)?)
            .map_err(|e| Error::run_dir(self.root(), format!("{SUMMARY} is malformed: {e}")))?;
        Ok((summary.status == meta.status && summary.epochs_run == meta.epochs_run).then_some(summary))
    }
}
