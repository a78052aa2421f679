//! Reading an event file back: its scalars by tag and its HParams records, as TensorBoard's
//! `EventAccumulator` sees them (for tests, and for anyone checking a run's `tb/`).

use std::collections::BTreeMap;
use std::path::Path;

use prost::Message;

use super::hparams::{EXPERIMENT_TAG, PLUGIN_NAME, SESSION_END_TAG, SESSION_START_TAG};
use super::proto::{self, Data, Event, HParamsData, What};
use super::record::records;
use crate::error::{Error, Result};

/// One value of a scalar tag.
#[derive(Debug, Clone, PartialEq)]
pub struct Scalar {
    pub step: i64,
    pub wall_time: f64,
    pub value: f32,
}

/// What an event file holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reading {
    pub file_version: Option<String>,
    /// The scalar tags, in the order they first appear (as `EventAccumulator.Tags()` lists them).
    pub tags: Vec<String>,
    /// Every `simple_value`, by tag, in the file's order.
    pub scalars: BTreeMap<String, Vec<Scalar>>,
    pub experiment: Option<proto::Experiment>,
    pub session_start: Option<proto::SessionStartInfo>,
    pub session_end: Option<proto::SessionEndInfo>,
}

/// Reads the event file at `path`; an error names it and what is wrong with it.
pub fn read(path: &Path) -> Result<Reading> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let malformed = |message: String| Error::io(path, std::io::Error::new(std::io::ErrorKind::InvalidData, message));
    let mut reading = Reading::default();
    for data in records(&bytes).map_err(malformed)? {
        let event = Event::decode(data).map_err(|e| malformed(format!("an event that does not decode: {e}")))?;
        match event.what {
            Some(What::FileVersion(version)) => reading.file_version = Some(version),
            Some(What::Summary(summary)) => {
                for value in summary.value {
                    reading.add(event.step, event.wall_time, value).map_err(|e| malformed(e.to_string()))?;
                }
            }
            None => {}
        }
    }
    Ok(reading)
}

impl Reading {
    fn add(&mut self, step: i64, wall_time: f64, value: proto::Value) -> std::result::Result<(), prost::DecodeError> {
        let plugin = value.metadata.as_ref().and_then(|m| m.plugin_data.as_ref()).filter(|p| p.plugin_name == PLUGIN_NAME);
        if let Some(plugin) = plugin {
            match (value.tag.as_str(), proto::HParamsPluginData::decode(plugin.content.as_slice())?.data) {
                (EXPERIMENT_TAG, Some(HParamsData::Experiment(e))) => self.experiment = Some(e),
                (SESSION_START_TAG, Some(HParamsData::SessionStartInfo(s))) => self.session_start = Some(s),
                (SESSION_END_TAG, Some(HParamsData::SessionEndInfo(s))) => self.session_end = Some(s),
                _ => {}
            }
        } else if let Some(Data::SimpleValue(v)) = value.data {
            if !self.scalars.contains_key(&value.tag) {
                self.tags.push(value.tag.clone());
            }
            self.scalars.entry(value.tag).or_default().push(Scalar { step, wall_time, value: v });
        }
        Ok(())
    }
}
