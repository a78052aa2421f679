//! The HParams plugin's records of a run, as TensorBoard's `hparams.summary_v2` writes them:
//! the experiment (which hyperparameters and metrics the HParams tab lists), the session start
//! (this run's hyperparameter values) and the session end (how it ended), each a summary whose
//! metadata names the `hparams` plugin and carries an `HParamsPluginData`.
//!
//! The hyperparameters are the resolved spec's flat keys (`spec::flat`): those of the sections
//! that shape what is trained, arrays as one value in TOML's inline form, plus every key a sweep
//! varies. Every run lists the same keys, so TensorBoard, which
//! takes the experiment of whichever run it reads first, shows every run's values.

use std::collections::BTreeMap;

use prost::Message;

use super::proto::{self, DataType, DatasetType, HParamValue, HParamsData, Kind, SessionStatus};

pub const EXPERIMENT_TAG: &str = "_hparams_/experiment";
pub const SESSION_START_TAG: &str = "_hparams_/session_start_info";
pub const SESSION_END_TAG: &str = "_hparams_/session_end_info";
pub const PLUGIN_NAME: &str = "hparams";

/// The metrics the HParams tab shows for each run: the final scalars (`final/*`), with the
/// display names of the tab.
pub const METRICS: [(&str, &str, DatasetType); 7] = [
    ("final/val_accuracy", "val accuracy", DatasetType::Validation),
    ("final/val_macro_f1", "val macro-F1", DatasetType::Validation),
    ("final/val_weighted_f1", "val weighted-F1", DatasetType::Validation),
    ("final/val_loss", "val loss", DatasetType::Validation),
    ("final/test_accuracy", "test accuracy", DatasetType::Unknown),
    ("final/test_macro_f1", "test macro-F1", DatasetType::Unknown),
    ("final/test_weighted_f1", "test weighted-F1", DatasetType::Unknown),
];

/// The hyperparameters of the run whose resolved spec is `spec` (see [`crate::spec::flat`]);
/// `swept` are the keys its sweep varies.
pub fn hyperparameters(spec: &toml::Table, swept: &[String]) -> BTreeMap<String, HParamValue> {
    crate::spec::flat::hyperparameters(spec, swept).iter().map(|(key, value)| (key.clone(), value_of(value))).collect()
}

fn value_of(value: &toml::Value) -> HParamValue {
    let kind = match value {
        toml::Value::String(s) => Kind::String(s.clone()),
        toml::Value::Integer(i) => Kind::Number(*i as f64),
        toml::Value::Float(f) => Kind::Number(*f),
        toml::Value::Boolean(b) => Kind::Bool(*b),
        other => Kind::String(other.to_string()),
    };
    HParamValue { kind: Some(kind) }
}

/// `_hparams_/experiment`: the hyperparameters (with their types, `differs` for the swept ones)
/// and the metrics of the tab.
pub fn experiment(name: &str, description: &str, created: f64, hparams: &BTreeMap<String, HParamValue>, swept: &[String]) -> proto::Value {
    let hparam_infos = hparams
        .iter()
        .map(|(name, value)| proto::HParamInfo {
            name: name.clone(),
            r#type: match value.kind {
                Some(Kind::Number(_)) => DataType::Float64,
                Some(Kind::String(_)) => DataType::String,
                Some(Kind::Bool(_)) => DataType::Bool,
                None => DataType::Unset,
            } as i32,
            differs: swept.contains(name),
        })
        .collect();
    let metric_infos = METRICS
        .iter()
        .map(|(tag, display, dataset)| proto::MetricInfo {
            name: Some(proto::MetricName { group: String::new(), tag: tag.to_string() }),
            display_name: display.to_string(),
            dataset_type: *dataset as i32,
        })
        .collect();
    let experiment = proto::Experiment { name: name.into(), description: description.into(), time_created_secs: created, hparam_infos, metric_infos };
    summary_value(EXPERIMENT_TAG, HParamsData::Experiment(experiment))
}

/// `_hparams_/session_start_info`: this run's values. No group name: the tab then shows each
/// run as its own row (a shared name would average runs of equal values into one).
pub fn session_start(hparams: BTreeMap<String, HParamValue>, started: f64) -> proto::Value {
    summary_value(SESSION_START_TAG, HParamsData::SessionStartInfo(proto::SessionStartInfo { hparams, group_name: String::new(), start_time_secs: started }))
}

/// `_hparams_/session_end_info`: how the run ended.
pub fn session_end(status: SessionStatus, ended: f64) -> proto::Value {
    summary_value(SESSION_END_TAG, HParamsData::SessionEndInfo(proto::SessionEndInfo { status: status as i32, end_time_secs: ended }))
}

/// A summary value of the `hparams` plugin: the plugin data in the metadata, and the empty
/// float tensor TensorBoard's `metadata.NULL_TENSOR` is.
fn summary_value(tag: &str, data: HParamsData) -> proto::Value {
    let content = proto::HParamsPluginData { version: 0, data: Some(data) }.encode_to_vec();
    proto::Value {
        tag: tag.into(),
        metadata: Some(proto::SummaryMetadata { plugin_data: Some(proto::PluginData { plugin_name: PLUGIN_NAME.into(), content }) }),
        data: Some(proto::Data::Tensor(proto::TensorProto { dtype: 1, tensor_shape: Some(proto::TensorShape { dim: vec![proto::Dim { size: 0 }] }) })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> toml::Table {
        r#"
[experiment]
name = "tiny"
description = "not a hyperparameter"
seed = 7
[data]
root = "/somewhere"
[data.split]
validation = 0.25
[augment]
mode = "append"
chain = [{ op = "resize", size = [16, 16] }, { op = "horizontal_flip", p = 0.5 }]
[train]
epochs = 2
[train.optimizer]
lr = 0.002
[runtime]
threads = 2
"#
        .parse()
        .unwrap()
    }

    fn number(value: f64) -> HParamValue {
        HParamValue { kind: Some(Kind::Number(value)) }
    }

    #[test]
    fn the_hyperparameters_are_the_flattened_keys_of_the_training_sections_and_the_swept_keys() {
        let found = hyperparameters(&spec(), &["augment.chain[1].p".into(), "runtime.threads".into(), "model.absent".into()]);
        let names: Vec<&str> = found.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "augment.chain", "augment.chain[1].p", "augment.mode", "data.split.validation", "experiment.name", "experiment.seed",
                "runtime.threads", "train.epochs", "train.optimizer.lr",
            ]
        );
        assert_eq!(found["train.optimizer.lr"], number(0.002));
        assert_eq!(found["augment.chain[1].p"], number(0.5));
        assert_eq!(found["experiment.name"], HParamValue { kind: Some(Kind::String("tiny".into())) });
        assert_eq!(found["augment.chain"], HParamValue { kind: Some(Kind::String(r#"[{ op = "resize", size = [16, 16] }, { op = "horizontal_flip", p = 0.5 }]"#.into())) });
    }

    #[test]
    fn the_experiment_types_each_hyperparameter_and_marks_the_swept_ones() {
        let hparams = hyperparameters(&spec(), &[]);
        let value = experiment("tiny", "", 1.0, &hparams, &["train.optimizer.lr".into()]);
        let content = &value.metadata.as_ref().unwrap().plugin_data.as_ref().unwrap().content;
        let Some(HParamsData::Experiment(experiment)) = proto::HParamsPluginData::decode(content.as_slice()).unwrap().data else { panic!("{value:?}") };
        let lr = experiment.hparam_infos.iter().find(|h| h.name == "train.optimizer.lr").unwrap();
        assert_eq!((lr.r#type, lr.differs), (DataType::Float64 as i32, true));
        let mode = experiment.hparam_infos.iter().find(|h| h.name == "augment.mode").unwrap();
        assert_eq!((mode.r#type, mode.differs), (DataType::String as i32, false));
        assert_eq!(experiment.metric_infos.len(), METRICS.len());
        // the empty float tensor of TensorBoard's hparams metadata.NULL_TENSOR: 08 01 12 02 12 00
        let Some(proto::Data::Tensor(tensor)) = &value.data else { panic!() };
        assert_eq!(tensor.encode_to_vec(), [0x08, 0x01, 0x12, 0x02, 0x12, 0x00]);
    }
}
