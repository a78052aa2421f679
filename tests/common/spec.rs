//! [`TinySpec`]: the spec of a small, fast run on a synthetic image folder, edited key by key.
//!
//! Edits go through the parsed TOML, not through text replacement, so an edit of a key the
//! template does not have panics instead of silently changing nothing.

use std::fmt;
use std::path::Path;

use toml::Value;

/// A spec as a TOML table. Keys are dotted paths as brasa's messages write them, with `[i]` for
/// an array element: `"train.epochs"`, `"augment.chain[3].p"`.
///
/// - [`set`](Self::set) replaces a value that must exist;
/// - [`insert`](Self::insert) adds a key that must not exist yet, to a table that must exist
///   (or an element to an array, at that index);
/// - [`remove`](Self::remove) and [`rename`](Self::rename) need the key to exist.
///
/// Each panics, naming the path, where the spec is not shaped as the edit expects.
#[derive(Clone, Debug)]
pub struct TinySpec(Value);

impl TinySpec {
    /// `epochs` epochs of cvt-tiny on 16 px pictures with every augmentation, named `name`, on
    /// the image folder at `root` (relative to the spec's folder, or absolute).
    pub fn new(name: &str, root: &str, epochs: usize) -> TinySpec {
        let template = format!(
            r#"
[experiment]
name = "{name}"
description = "tiny synthetic run"
seed = 7

[data]
root = "{root}"
train = "train"
test = "test"

[data.split]
validation = 0.25

[preprocess]
resize = [16, 16]

[augment]
mode = "append"
copies = 1
chain = [
  {{ op = "resize", size = [16, 16] }},
  {{ op = "random_rotation", degrees = 15 }},
  {{ op = "random_resized_crop", size = 16, scale = [0.8, 1.0] }},
  {{ op = "horizontal_flip", p = 0.5 }},
  {{ op = "vertical_flip", p = 0.5 }},
  {{ op = "color_jitter", brightness = 0.2, contrast = 0.2 }},
]

[model]
arch = "cvt-tiny"

[train]
epochs = {epochs}
batch_size = 8
optimizer = {{ lr = 2e-3, weight_decay = 0.01 }}
schedule = {{ name = "linear", warmup_steps = 2 }}
grad_clip = 1.0

[runtime]
threads = 2
"#
        );
        TinySpec(Value::Table(template.parse().expect("the tiny spec template is TOML")))
    }

    /// Replaces the value at `path`, which must exist.
    #[track_caller]
    pub fn set(mut self, path: &str, value: impl Into<Value>) -> TinySpec {
        let (parent, last) = self.parent(path);
        let Some(slot) = child(parent, &last) else { panic!("spec edit: `{path}` is not in the spec (use insert to add it)") };
        *slot = value.into();
        self
    }

    /// Adds `value` at `path`: a new key to an existing table, or an element to an existing
    /// array at index `i` (`"augment.chain[1]"`, up to the array's length).
    #[track_caller]
    pub fn insert(mut self, path: &str, value: impl Into<Value>) -> TinySpec {
        match self.parent(path) {
            (Value::Table(table), Step::Key(key)) => {
                assert!(!table.contains_key(key), "spec edit: `{path}` is in the spec already (use set to replace it)");
                table.insert(key.to_string(), value.into());
            }
            (Value::Array(array), Step::Index(i)) if i <= array.len() => array.insert(i, value.into()),
            _ => panic!("spec edit: cannot insert `{path}`: its parent is not a table, or the index is past the end"),
        }
        self
    }

    /// Removes the key (or array element) at `path`, which must exist.
    #[track_caller]
    pub fn remove(mut self, path: &str) -> TinySpec {
        self.take(path);
        self
    }

    /// Moves the value at `path` to the key `new_key` of the same table: a misspelt key for the
    /// tests of spec errors (`rename("train.epochs", "epoch")`).
    #[track_caller]
    pub fn rename(mut self, path: &str, new_key: &str) -> TinySpec {
        let value = self.take(path);
        let new_path = match path.rsplit_once('.') {
            Some((parent, _)) => format!("{parent}.{new_key}"),
            None => new_key.to_string(),
        };
        self.insert(&new_path, value)
    }

    /// Writes the spec as a TOML file.
    pub fn write(&self, path: &Path) {
        std::fs::write(path, self.to_string()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    #[track_caller]
    fn take(&mut self, path: &str) -> Value {
        let removed = match self.parent(path) {
            (Value::Table(table), Step::Key(key)) => table.remove(key),
            (Value::Array(array), Step::Index(i)) if i < array.len() => Some(array.remove(i)),
            _ => None,
        };
        let Some(removed) = removed else { panic!("spec edit: `{path}` is not in the spec") };
        removed
    }

    /// The table or array that holds `path`, which must exist, and the last step of `path`.
    #[track_caller]
    fn parent<'p>(&mut self, path: &'p str) -> (&mut Value, Step<'p>) {
        let mut steps = steps(path);
        let last = steps.pop().unwrap();
        let mut value = &mut self.0;
        for (i, step) in steps.iter().enumerate() {
            let Some(next) = child(value, step) else { panic!("spec edit: `{path}`: the spec has no `{}`", join(&steps[..=i])) };
            value = next;
        }
        (value, last)
    }
}

/// The spec as a TOML document (tables sorted by key; the same spec as the template's text).
impl fmt::Display for TinySpec {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&toml::to_string(&self.0).map_err(|_| fmt::Error)?)
    }
}

/// One step of a key path: a table key or an array index.
enum Step<'p> {
    Key(&'p str),
    Index(usize),
}

/// `"augment.chain[3].p"` → `augment`, `chain`, `3`, `p`.
#[track_caller]
fn steps(path: &str) -> Vec<Step<'_>> {
    let mut steps = Vec::new();
    for part in path.split('.') {
        let (key, indices) = part.split_once('[').map_or((part, None), |(key, rest)| (key, Some(rest)));
        assert!(!key.is_empty(), "spec edit: `{path}` is not a key path");
        steps.push(Step::Key(key));
        if let Some(indices) = indices {
            let indices = indices.strip_suffix(']').unwrap_or_else(|| panic!("spec edit: `{path}` is not a key path"));
            for index in indices.split("][") {
                steps.push(Step::Index(index.parse().unwrap_or_else(|_| panic!("spec edit: `{path}` is not a key path"))));
            }
        }
    }
    steps
}

/// The path of `steps`: `augment.chain[3]`.
fn join(steps: &[Step]) -> String {
    let mut path = String::new();
    for step in steps {
        match step {
            Step::Key(key) if path.is_empty() => path.push_str(key),
            Step::Key(key) => path.push_str(&format!(".{key}")),
            Step::Index(i) => path.push_str(&format!("[{i}]")),
        }
    }
    path
}

/// The member of a table or the element of an array that `step` names, if there is one.
fn child<'v>(value: &'v mut Value, step: &Step) -> Option<&'v mut Value> {
    match (value, step) {
        (Value::Table(table), Step::Key(key)) => table.get_mut(*key),
        (Value::Array(array), Step::Index(i)) => array.get_mut(*i),
        _ => None,
    }
}
