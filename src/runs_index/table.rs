//! The runs as a table: its columns (what each run is, its scores, its flattened spec keys) and
//! one cell per run and column — the page's data and `runs.csv` both come from here.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{Value, json};

use super::collect::Entry;
use crate::run_dir::{Part, PartSummary, Scored};

/// A column of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Column {
    pub key: String,
    pub label: String,
    /// `run` (what and how it ran), `metric` (its scores) or `spec` (a flattened spec key).
    pub group: &'static str,
    /// `text`, `number`, `bool`, `date`, `duration`, `status`, `metric` (`[value, low, high]`) or
    /// `findings` (`[{code, text}]`).
    pub kind: &'static str,
    /// For metrics: whether `max` or `min` is best.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub better: Option<&'static str>,
    /// A key some sweep varies.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub swept: bool,
    /// Drawn on a log axis (learning rates, weight decay).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub log: bool,
}

impl Column {
    fn new(key: &str, label: &str, group: &'static str, kind: &'static str) -> Self {
        Self { key: key.into(), label: label.into(), group, kind, better: None, swept: false, log: false }
    }

    fn metric(key: &str, label: &str, better: &'static str) -> Self {
        Self { better: Some(better), ..Self::new(key, label, "metric", "metric") }
    }
}

/// The table: columns, and each run's cells in column order.
pub struct Table {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Value>>,
}

/// A column every index has, and how a run fills it.
struct Fixed {
    column: Column,
    cell: fn(&Entry) -> Value,
}

fn fixed() -> Vec<Fixed> {
    vec![
        Fixed { column: Column::new("experiment", "experiment", "run", "text"), cell: |e| json!(e.meta.experiment) },
        Fixed { column: Column::new("run", "run", "run", "text"), cell: |e| json!(e.id) },
        Fixed { column: Column::new("sweep", "sweep", "run", "text"), cell: |e| json!(e.sweep.as_ref().map(|s| &s.0)) },
        Fixed { column: Column::new("trial", "trial", "run", "text"), cell: |e| json!(e.sweep.as_ref().map(|s| &s.1)) },
        Fixed { column: Column::new("status", "status", "run", "status"), cell: |e| json!(e.status) },
        Fixed { column: Column::new("date", "date", "run", "date"), cell: |e| json!(e.meta.started_at) },
        Fixed { column: Column::new("wall_seconds", "wall time", "run", "duration"), cell: |e| json!(e.meta.wall_seconds) },
        Fixed { column: Column::new("model", "model", "run", "text"), cell: |e| json!(e.meta.model.arch) },
        Fixed { column: Column::new("pretrained", "pretrained", "run", "text"), cell: |e| json!(e.meta.model.pretrained) },
        Fixed { column: Column::new("data", "data", "run", "text"), cell: |e| json!(e.meta.data_root) },
        Fixed { column: Column::new("backend", "backend", "run", "text"), cell: |e| json!(e.meta.backend) },
        Fixed { column: Column::new("best_epoch", "best epoch", "run", "number"), cell: |e| json!(e.meta.best_epoch) },
        Fixed { column: Column::new("epochs_run", "epochs run", "run", "number"), cell: |e| json!(e.meta.epochs_run) },
        Fixed {
            column: Column::metric("val_accuracy", "val accuracy", "max"),
            cell: |e| scored(part(e, Part::Val).map(|p| p.accuracy)).unwrap_or_else(|| bare(e.best.as_ref().map(|b| b.val_accuracy))),
        },
        Fixed {
            column: Column::metric("val_macro_f1", "val macro F1", "max"),
            cell: |e| scored(part(e, Part::Val).map(|p| p.macro_f1)).unwrap_or_else(|| bare(e.best.as_ref().map(|b| b.val_macro_f1))),
        },
        Fixed { column: Column::metric("val_loss", "val loss", "min"), cell: |e| bare(e.best.as_ref().map(|b| b.val_loss)) },
        Fixed { column: Column::metric("test_accuracy", "test accuracy", "max"), cell: |e| scored(part(e, Part::Test).map(|p| p.accuracy)).unwrap_or(Value::Null) },
        Fixed { column: Column::metric("test_macro_f1", "test macro F1", "max"), cell: |e| scored(part(e, Part::Test).map(|p| p.macro_f1)).unwrap_or(Value::Null) },
        Fixed {
            column: Column::metric("leak_free_test_accuracy", "leak-free test accuracy", "max"),
            cell: |e| scored(e.summary.as_ref().and_then(|s| s.leak_free_test.as_ref()).map(|p| p.accuracy)).unwrap_or(Value::Null),
        },
        Fixed {
            column: Column::new("findings", "findings", "run", "findings"),
            cell: |e| json!(e.summary.as_ref().map(|s| s.findings.iter().map(|f| json!({"code": f.code, "text": f.text})).collect::<Vec<_>>()).unwrap_or_default()),
        },
    ]
}

fn part(entry: &Entry, part: Part) -> Option<&PartSummary> {
    entry.summary.as_ref()?.part(part)
}

fn scored(score: Option<Scored>) -> Option<Value> {
    score.map(|s| json!([s.value, s.low, s.high]))
}

/// A metric without an interval.
fn bare(value: Option<f64>) -> Value {
    value.map_or(Value::Null, |v| json!([v, null, null]))
}

/// Whether values of spec key `key` are drawn on a log axis.
fn is_log(key: &str) -> bool {
    let last = key.rsplit('.').next().unwrap_or(key);
    last == "lr" || last.ends_with("_lr") || last.starts_with("lr_") || last.contains("learning_rate") || last.contains("weight_decay")
}

/// The table of `entries`: the fixed columns, then the spec keys (swept keys first, then by name).
pub fn build(entries: &[Entry]) -> Table {
    let fixed = fixed();
    let swept: BTreeSet<&str> = entries.iter().flat_map(|e| e.swept.iter().map(String::as_str)).collect();
    let mut values: BTreeMap<&str, Vec<&toml::Value>> = BTreeMap::new();
    for entry in entries {
        for (key, value) in &entry.hyperparameters {
            values.entry(key).or_default().push(value);
        }
    }
    let mut spec_keys: Vec<&str> = values.keys().copied().collect();
    spec_keys.sort_by_key(|k| (!swept.contains(k), *k));
    let spec_columns = spec_keys.iter().map(|&key| {
        let all = &values[key];
        let kind = if all.iter().all(|v| v.is_integer() || v.is_float()) {
            "number"
        } else if all.iter().all(|v| v.is_bool()) {
            "bool"
        } else {
            "text"
        };
        Column { swept: swept.contains(key), log: kind == "number" && is_log(key), ..Column::new(key, key, "spec", kind) }
    });
    let columns: Vec<Column> = fixed.iter().map(|f| f.column.clone()).chain(spec_columns).collect();
    let rows = entries
        .iter()
        .map(|entry| {
            let mut row: Vec<Value> = fixed.iter().map(|f| (f.cell)(entry)).collect();
            row.extend(columns[fixed.len()..].iter().map(|c| match entry.hyperparameters.get(&c.key) {
                None => Value::Null,
                Some(value) if c.kind == "text" => json!(match value {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                }),
                Some(toml::Value::Integer(i)) => json!(i),
                Some(toml::Value::Float(f)) => json!(f),
                Some(toml::Value::Boolean(b)) => json!(b),
                Some(other) => json!(other.to_string()),
            }));
            row
        })
        .collect();
    Table { columns, rows }
}

impl Table {
    /// `runs.csv`: one row per run; a metric as three columns (`x`, `x_low`, `x_high`), findings
    /// as their codes, then the report's relative link, then the spec keys.
    pub fn csv(&self, entries: &[Entry]) -> Result<Vec<u8>, csv::Error> {
        let mut writer = csv::Writer::from_writer(Vec::new());
        let spec_from = self.columns.iter().position(|c| c.group == "spec").unwrap_or(self.columns.len());
        let mut header = Vec::new();
        for column in &self.columns[..spec_from] {
            header.push(column.key.clone());
            if column.kind == "metric" {
                header.extend([format!("{}_low", column.key), format!("{}_high", column.key)]);
            }
        }
        header.push("report".into());
        header.extend(self.columns[spec_from..].iter().map(|c| c.key.clone()));
        writer.write_record(&header)?;
        for (row, entry) in self.rows.iter().zip(entries) {
            let mut record = Vec::new();
            for (column, cell) in self.columns[..spec_from].iter().zip(&row[..spec_from]) {
                match (column.kind, cell) {
                    ("metric", Value::Array(parts)) => record.extend(parts.iter().map(plain)),
                    ("metric", _) => record.extend([String::new(), String::new(), String::new()]),
                    ("findings", Value::Array(found)) => {
                        record.push(found.iter().filter_map(|f| f["code"].as_str()).collect::<Vec<_>>().join(" "))
                    }
                    _ => record.push(plain(cell)),
                }
            }
            record.push(entry.report.clone().unwrap_or_default());
            record.extend(row[spec_from..].iter().map(plain));
            writer.write_record(&record)?;
        }
        writer.into_inner().map_err(|e| e.into_error().into())
    }
}

/// A cell as CSV text: strings bare, null empty.
fn plain(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
