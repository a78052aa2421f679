//! A resolved spec as flat keys: what distinguishes one run from another in a list of runs
//! (TensorBoard's HParams tab, `brasa index`).
//!
//! The keys are the resolved spec's, flattened (`train.optimizer.lr`), of the sections that shape
//! what is trained — `[experiment]` (not its description), `[data.split]`, `[preprocess]`,
//! `[augment]`, `[model]`, `[train]` — arrays as one value, plus every key a sweep varies
//! (looked up wherever they are, `augment.chain[3].p` included).

use std::collections::BTreeMap;

/// The spec's sections whose keys are hyperparameters.
const SECTIONS: [&str; 6] = ["experiment", "data.split", "preprocess", "augment", "model", "train"];
/// Keys of those sections that describe rather than shape the run.
const LEFT_OUT: [&str; 1] = ["experiment.description"];

/// The hyperparameters of the run whose resolved spec is `spec`; `swept` are the keys its sweep
/// varies.
pub fn hyperparameters(spec: &toml::Table, swept: &[String]) -> BTreeMap<String, toml::Value> {
    let mut found = BTreeMap::new();
    for section in SECTIONS {
        if let Some(toml::Value::Table(table)) = lookup(spec, section) {
            flatten(section, table, &mut found);
        }
    }
    for key in LEFT_OUT {
        found.remove(key);
    }
    for key in swept {
        if let Some(value) = lookup(spec, key) {
            found.insert(key.clone(), value.clone());
        }
    }
    found
}

fn flatten(prefix: &str, table: &toml::Table, found: &mut BTreeMap<String, toml::Value>) {
    for (key, value) in table {
        let name = format!("{prefix}.{key}");
        match value {
            toml::Value::Table(inner) => flatten(&name, inner, found),
            other => {
                found.insert(name, other.clone());
            }
        }
    }
}

/// The value at a dotted spec key with `[i]` for array elements (`augment.chain[3].p`).
pub fn lookup<'a>(spec: &'a toml::Table, key: &str) -> Option<&'a toml::Value> {
    let mut current: Option<&toml::Value> = None;
    let mut table = Some(spec);
    for part in key.split('.') {
        let (name, indices) = part.split_once('[').map_or((part, ""), |(n, rest)| (n, rest));
        let mut value = table?.get(name)?;
        for index in indices.split('[').filter(|i| !i.is_empty()) {
            value = value.as_array()?.get(index.strip_suffix(']')?.parse::<usize>().ok()?)?;
        }
        table = value.as_table();
        current = Some(value);
    }
    current
}
