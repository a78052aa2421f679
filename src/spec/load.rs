//! Reads a spec from disk and layers it, lowest precedence first:
//! `extends` chain (base files first) < environment `BRASA_SECTION__KEY` < `--set KEY=VALUE`.
//! `--unset KEY` removes a key or table from the files and the environment before `--set` applies
//! (Hydra's `~key`): an inherited value goes back to its default.
//!
//! Everything that can go wrong here becomes a [`SpecError`] naming the file (or variable, or
//! flag), the dotted key and the value. This module never checks value ranges: see `plan`.

use std::path::{Path, PathBuf};

use figment::error::Kind;
use figment::providers::{Env, Format, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider, Source};

use super::error::{SpecError, SpecIssue, closest};
use crate::fmt::display_path;
use super::schema::Spec;

/// Prefix of the environment variables that override spec keys (`BRASA_TRAIN__EPOCHS=3`).
pub const ENV_PREFIX: &str = "BRASA_";
/// Separator between key segments in those variables.
pub const ENV_SEPARATOR: &str = "__";
const SET_FLAG: &str = "--set";
const UNSET_FLAG: &str = "--unset";

/// A parsed, layered spec and the provenance of every value in it.
#[derive(Debug, Clone)]
pub struct LoadedSpec {
    pub spec: Spec,
    /// The file named on the command line.
    pub file: PathBuf,
    figment: Figment,
}

/// One `--set KEY=VALUE` override, the value parsed as TOML when it can be (`3`, `1e-4`,
/// `[1, 2]`, `true`), otherwise taken as a string.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// The key as brasa's messages write it: `train.optimizer.lr`, `augment.chain[1].p`,
    /// `sweep.train.optimizer.lr` (the swept key `"train.optimizer.lr"`).
    pub key: String,
    pub value: Value,
    path: Vec<Step>,
    /// The value as typed on the command line, taken as a string where the key wants one
    /// (`--set experiment.name=2024` names the experiment "2024"; `nan` stays "nan").
    text: Option<String>,
}

impl Override {
    pub fn new(key: impl Into<String>, value: impl Into<Value>) -> Self {
        let key = key.into();
        let path = parse_path(&key).unwrap_or_else(|_| key.split('.').map(|k| Step::Key(k.to_string())).collect());
        Self { key, value: value.into(), path, text: None }
    }

    /// This override with its value as the text typed, where that differs from its value.
    fn as_text(&self) -> Option<Self> {
        let text = self.text.as_ref()?;
        let scalar = matches!(self.value, Value::Num(..) | Value::Bool(..));
        scalar.then(|| Self { value: text.clone().into(), text: None, ..self.clone() })
    }
}

impl std::str::FromStr for Override {
    type Err = String;

    fn from_str(arg: &str) -> Result<Self, Self::Err> {
        let (key, raw) = arg
            .split_once('=')
            .ok_or_else(|| format!("`{arg}` is not KEY=VALUE (e.g. train.epochs=3)"))?;
        let path = parse_path(key)?;
        let value = match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
            Ok(mut table) => toml_to_figment(table.remove("v").expect("parsed key")),
            Err(_) => Value::from(raw.to_string()),
        };
        Ok(Self { key: show_path(&path), value, path, text: Some(raw.trim().to_string()) })
    }
}

fn toml_to_figment(value: toml::Value) -> Value {
    match value {
        toml::Value::String(s) => s.into(),
        toml::Value::Integer(i) => i.into(),
        toml::Value::Float(f) => f.into(),
        toml::Value::Boolean(b) => b.into(),
        toml::Value::Datetime(d) => d.to_string().into(),
        toml::Value::Array(items) => {
            Value::from(items.into_iter().map(toml_to_figment).collect::<Vec<_>>())
        }
        toml::Value::Table(table) => {
            let dict: Dict = table.into_iter().map(|(k, v)| (k, toml_to_figment(v))).collect();
            dict.into()
        }
    }
}

/// One step of a key path: a table key or an array element.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

const PATH_FORMS: &str = "e.g. train.optimizer.lr, augment.chain[1].p or sweep.\"train.optimizer.lr\"";

/// A key path as `--set` and `--unset` take it: dotted keys, a key in double quotes that holds
/// dots (`sweep."train.optimizer.lr"`), and `[N]` for an array's element (`augment.chain[1].p`),
/// the forms brasa's own messages print. `sweep.train.optimizer.lr`, as those messages name a
/// swept key, is the swept key `"train.optimizer.lr"`.
fn parse_path(key: &str) -> Result<Vec<Step>, String> {
    let key = key.trim();
    let bad = |why: &str| format!("`{key}` is not a dotted key path{why} ({PATH_FORMS})");
    let mut steps = Vec::new();
    let mut chars = key.chars().peekable();
    loop {
        let mut name = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some(c) => name.push(c),
                    None => return Err(bad(": a quote is not closed")),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == '.' || c == '[' || c == '"' || c == ']' {
                    break;
                }
                name.push(c);
                chars.next();
            }
            name = name.trim().to_string();
        }
        if name.is_empty() {
            return Err(bad(""));
        }
        steps.push(Step::Key(name));
        while chars.peek() == Some(&'[') {
            chars.next();
            let mut digits = String::new();
            loop {
                match chars.next() {
                    Some(']') => break,
                    Some(c) => digits.push(c),
                    None => return Err(bad(": a `[` is not closed")),
                }
            }
            let index = digits.trim().parse::<usize>().map_err(|_| bad(&format!(": `[{digits}]` is not an element number")))?;
            steps.push(Step::Index(index));
        }
        match chars.next() {
            None => break,
            Some('.') => {}
            Some(c) => return Err(bad(&format!(": unexpected `{c}`"))),
        }
    }
    if let [Step::Key(first), rest @ ..] = steps.as_slice()
        && first == "sweep"
        && rest.len() >= 2
    {
        steps = vec![Step::Key("sweep".into()), Step::Key(show_path(rest))];
    }
    Ok(steps)
}

/// A key path as brasa's messages write it (`augment.chain[1].p`).
fn show_path(path: &[Step]) -> String {
    let mut shown = String::new();
    for step in path {
        match step {
            Step::Key(key) if shown.is_empty() => shown.push_str(key),
            Step::Key(key) => {
                shown.push('.');
                shown.push_str(key);
            }
            Step::Index(index) => shown.push_str(&format!("[{index}]")),
        }
    }
    shown
}

/// The table keys of a path that has no array element in it.
fn keys_only(path: &[Step]) -> Option<Vec<&str>> {
    path.iter().map(|step| match step { Step::Key(key) => Some(key.as_str()), Step::Index(_) => None }).collect()
}

/// `items` with every override of an array element (`augment.chain[1].p=0.9`) made an override
/// of the whole array (`augment.chain`), the element changed in a copy of the array the layers
/// below give (`below`, or an earlier override in `items`): figment replaces arrays, it does
/// not merge them element by element.
fn whole_arrays(below: &Figment, items: &[Override], origin: &str) -> Result<Vec<Override>, SpecError> {
    let mut done: Vec<Override> = Vec::new();
    for item in items {
        let Some(first_index) = item.path.iter().position(|step| matches!(step, Step::Index(_))) else {
            done.push(item.clone());
            continue;
        };
        let (array_path, inside) = item.path.split_at(first_index);
        let array_key = show_path(array_path);
        let fail = |message: String| {
            SpecError::single(SpecIssue { origin: origin.to_string(), key: item.key.clone(), value: Some(render_value(&item.value)), message, hint: None })
        };
        let current = match done.iter().rev().find(|o| o.key == array_key) {
            Some(earlier) => Some(earlier.value.clone()),
            None => below.find_value(&array_key).ok(),
        };
        let Some(Value::Array(_, elements)) = current.map(|v| Value::serialize(&v).unwrap_or(v)) else {
            return Err(fail(format!("`{array_key}` is not a list in the spec, so it has no element to set; set the whole list (--set '{array_key}=[...]')")));
        };
        let mut array = Value::from(elements);
        set_in(&mut array, inside, item.value.clone()).map_err(fail)?;
        let mut whole = Override::new(array_key, array);
        whole.path = array_path.to_vec();
        done.push(whole);
    }
    Ok(done)
}

/// Sets the value at `path` inside `value`: an element must exist, a table key is created.
fn set_in(value: &mut Value, path: &[Step], new: Value) -> Result<(), String> {
    let [step, rest @ ..] = path else {
        *value = new;
        return Ok(());
    };
    match (step, value) {
        (Step::Index(index), Value::Array(_, items)) => {
            let len = items.len();
            let element = items.get_mut(*index).ok_or_else(|| format!("the list has {len} element(s), numbered from 0; [{index}] is not one of them"))?;
            set_in(element, rest, new)
        }
        (Step::Key(key), Value::Dict(_, dict)) => {
            let entry = dict.entry(key.clone()).or_insert_with(|| Dict::new().into());
            if rest.is_empty() {
                *entry = new;
                Ok(())
            } else {
                set_in(entry, rest, new)
            }
        }
        (Step::Index(index), _) => Err(format!("[{index}] is an element number, and what it picks from is not a list")),
        (Step::Key(key), _) => Err(format!("`{key}`: what it is taken from is not a table")),
    }
}

/// The environment's `BRASA_…` variables, with a number in exponent notation (`1e-4`) read as
/// the float it is: figment's own parser takes a float only with a decimal point, and left it
/// a string the spec then refused ("expected f64, found string").
struct EnvNumbers(Env);

impl Provider for EnvNumbers {
    fn metadata(&self) -> Metadata {
        self.0.metadata()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        fn floats(value: &mut Value) {
            match value {
                Value::String(tag, text) => {
                    let number = text.trim();
                    let exponent = number.contains(['e', 'E']) && number.chars().all(|c| c.is_ascii_digit() || "+-.eE".contains(c));
                    if let (true, Ok(float)) = (exponent, number.parse::<f64>()) {
                        *value = Value::Num(*tag, figment::value::Num::F64(float));
                    }
                }
                Value::Dict(_, dict) => dict.values_mut().for_each(floats),
                Value::Array(_, items) => items.iter_mut().for_each(floats),
                _ => {}
            }
        }
        let mut data = self.0.data()?;
        data.values_mut().flat_map(|dict| dict.values_mut()).for_each(floats);
        Ok(data)
    }
}

/// A spec file's text, refusing one past [`MAX_SPEC_BYTES`] (a device or a stream that never
/// ends, such as `/dev/zero`, would otherwise fill the memory).
fn read_spec_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.take(MAX_SPEC_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_SPEC_BYTES {
        return Err(std::io::Error::other(format!("it is larger than {} MiB; a spec is a small text file", MAX_SPEC_BYTES >> 20)));
    }
    String::from_utf8(bytes).map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "stream did not contain valid UTF-8"))
}

const MAX_SPEC_BYTES: u64 = 16 << 20;

/// Arrays the layers give more values than the spec's field keeps: figment fills a fixed-size
/// array (`mean = [0.5, 0.5, 0.5, 0.5]`, `betas = [0.9, 0.999, 5.0]`) from the first values
/// and drops the rest without a word.
fn longer_arrays(figment: &Figment, spec: &Spec) -> Vec<SpecIssue> {
    fn walk(raw: &serde_json::Value, kept: &serde_json::Value, key: String, found: &mut Vec<(String, usize, usize)>) {
        match (raw, kept) {
            (serde_json::Value::Object(raw), serde_json::Value::Object(kept)) => {
                for (name, value) in raw {
                    if let Some(inner) = kept.get(name) {
                        let key = if key.is_empty() { name.clone() } else { format!("{key}.{name}") };
                        walk(value, inner, key, found);
                    }
                }
            }
            (serde_json::Value::Array(raw), serde_json::Value::Array(kept)) => {
                if raw.len() > kept.len() {
                    found.push((key, raw.len(), kept.len()));
                    return;
                }
                for (i, (value, inner)) in raw.iter().zip(kept).enumerate() {
                    walk(value, inner, format!("{key}.{i}"), found);
                }
            }
            _ => {}
        }
    }
    // a second extraction: the typed one above cannot show what it dropped
    let (Ok(raw), Ok(kept)) = (figment.extract::<serde_json::Value>(), serde_json::to_value(spec)) else { return Vec::new() };
    let mut found = Vec::new();
    walk(&raw, &kept, String::new(), &mut found);
    found
        .into_iter()
        .map(|(key, given, kept)| {
            let segments: Vec<&str> = key.split('.').collect();
            SpecIssue {
                origin: figment.find_metadata(&key).map(|m| describe_origin(m, &segments)).unwrap_or_default(),
                key: display_key(&key),
                value: None,
                message: format!("has {given} values; expected {kept}"),
                hint: None,
            }
        })
        .collect()
}

/// `--set` values as a figment provider, so that errors name the flag.
struct Overrides<'a>(&'a [Override]);

impl Provider for Overrides<'_> {
    fn metadata(&self) -> Metadata {
        Metadata::named(SET_FLAG).source(Source::Custom(SET_FLAG.into()))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut root = Dict::new();
        for item in self.0 {
            // array elements were made whole arrays by `whole_arrays`
            if let Some(segments) = keys_only(&item.path) {
                insert(&mut root, &segments, item.value.clone());
            }
        }
        Ok(Map::from([(Profile::Default, root)]))
    }
}

/// A sweep trial's values as a figment provider: set by the `[sweep]` of `file`, so errors
/// name that file and relative paths resolve against its folder.
struct SweepValues<'a> {
    file: &'a Path,
    values: &'a [Override],
}

impl Provider for SweepValues<'_> {
    fn metadata(&self) -> Metadata {
        Metadata::named("[sweep]").source(Source::File(self.file.to_path_buf()))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        // the values are untagged (`Sweep::parse`), so they take this provider's tag
        Overrides(self.values).data()
    }
}

/// Sets `path` in `dict` to `value`, creating tables on the way (a later `--set` of the same
/// key wins).
fn insert(dict: &mut Dict, path: &[&str], value: Value) {
    match path {
        [] => {}
        [last] => {
            dict.insert(last.to_string(), value);
        }
        [first, rest @ ..] => {
            let entry = dict.entry(first.to_string()).or_insert_with(|| Dict::new().into());
            if !matches!(entry, Value::Dict(..)) {
                *entry = Dict::new().into();
            }
            if let Value::Dict(_, inner) = entry {
                insert(inner, rest, value);
            }
        }
    }
}

/// Layers used to build a spec; `env` is off in tests that must not see the caller's variables.
#[derive(Debug, Clone, Default)]
pub struct Layers {
    pub overrides: Vec<Override>,
    /// A sweep trial's values, above `overrides`, and the spec file whose `[sweep]` gave them:
    /// like that file's own values, a relative path among them is relative to its folder.
    pub sweep: Option<(PathBuf, Vec<Override>)>,
    /// Dotted keys removed from the files and the environment (`--unset`).
    pub unset: Vec<UnsetKey>,
    pub env: bool,
}

/// One `--unset KEY`: a dotted key path (`train.grad_clip`, `data.expect`).
#[derive(Debug, Clone, PartialEq)]
pub struct UnsetKey(pub String);

impl UnsetKey {
    fn path(&self) -> Vec<Step> {
        parse_path(&self.0).unwrap_or_else(|_| vec![Step::Key(self.0.clone())])
    }
}

impl std::str::FromStr for UnsetKey {
    type Err = String;

    fn from_str(arg: &str) -> Result<Self, Self::Err> {
        let key = arg.trim();
        if key.contains('=') {
            return Err(format!("`{key}` is a key, not KEY=VALUE (--unset removes a key; --set gives one a value)"));
        }
        Ok(Self(show_path(&parse_path(key)?)))
    }
}

/// The layers merged, and what extracting the spec from them said.
struct Refused {
    error: figment::Error,
    figment: Figment,
}

/// A layer with the `--unset` keys taken out, read once when the spec is loaded.
struct Without {
    metadata: Metadata,
    data: Result<Map<Profile, Dict>, figment::Error>,
}

impl Without {
    /// Reads `provider` and removes `keys` from it, marking in `found` the keys it held.
    fn new(provider: impl Provider, keys: &[UnsetKey], found: &mut [bool]) -> Self {
        let metadata = provider.metadata();
        let data = provider.data().map(|mut profiles| {
            for dict in profiles.values_mut() {
                for (key, found) in keys.iter().zip(found.iter_mut()) {
                    *found |= remove(dict, &key.path());
                }
            }
            profiles
        });
        Self { metadata, data }
    }
}

impl Provider for Without {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        self.data.clone()
    }
}

/// Removes `path` from `dict` (a key of a table inside a list too: `augment.chain[1].p`);
/// whether it was there.
fn remove(dict: &mut Dict, path: &[Step]) -> bool {
    fn within(value: &mut Value, path: &[Step]) -> bool {
        match (path, value) {
            ([Step::Index(index), rest @ ..], Value::Array(_, items)) if !rest.is_empty() => items.get_mut(*index).is_some_and(|item| within(item, rest)),
            (path @ [Step::Key(_), ..], Value::Dict(_, inner)) => remove(inner, path),
            _ => false,
        }
    }
    match path {
        [Step::Key(last)] => dict.remove(last).is_some(),
        [Step::Key(first), rest @ ..] => dict.get_mut(first).is_some_and(|value| within(value, rest)),
        _ => false,
    }
}

impl LoadedSpec {
    /// Reads `file`, follows its `extends` chain and applies environment and `--set` layers.
    pub fn load(file: &Path, layers: &Layers) -> Result<Self, SpecError> {
        match Self::load_once(file, layers) {
            Err(Refused { error, figment }) => {
                // a `--set` number or boolean where the key wants a string is that string
                let as_text: Vec<String> = error.clone()
                    .into_iter()
                    .filter(|e| matches!(&e.kind, Kind::InvalidType(_, expected) if expected == "a string"))
                    .map(|e| e.path.join("."))
                    .collect();
                let mut retyped = layers.clone();
                let mut changed = false;
                for item in retyped.overrides.iter_mut().filter(|item| as_text.contains(&item.key)) {
                    if let Some(text) = item.as_text() {
                        *item = text;
                        changed = true;
                    }
                }
                match changed {
                    true => Self::load_once(file, &retyped).unwrap_or_else(|r| Err(from_figment(r.error, &r.figment, file))),
                    false => Err(from_figment(error, &figment, file)),
                }
            }
            Ok(loaded) => loaded,
        }
    }

    fn load_once(file: &Path, layers: &Layers) -> Result<Result<Self, SpecError>, Refused> {
        if let Some(error) = extends_from_flags(layers) {
            return Ok(Err(error));
        }
        let chain = match extends_chain(file) {
            Ok(chain) => chain,
            Err(error) => return Ok(Err(error)),
        };
        let mut figment = Figment::new();
        let mut found = vec![false; layers.unset.len()];
        for path in &chain {
            figment = figment.merge(Without::new(Toml::file_exact(path), &layers.unset, &mut found));
        }
        if layers.env {
            let env = Env::prefixed(ENV_PREFIX).filter(|key| key.as_str().contains(ENV_SEPARATOR)).split(ENV_SEPARATOR);
            figment = figment.merge(Without::new(EnvNumbers(env), &layers.unset, &mut found));
        }
        if let Some(missing) = layers.unset.iter().zip(&found).find_map(|(key, found)| (!found).then_some(key)) {
            return Ok(Err(unset_nothing(&missing.0, &figment, file)));
        }
        let overrides = match whole_arrays(&figment, &layers.overrides, SET_FLAG) {
            Ok(overrides) => overrides,
            Err(error) => return Ok(Err(error)),
        };
        figment = figment.merge(Overrides(&overrides));
        if let Some((from, values)) = &layers.sweep {
            let values = match whole_arrays(&figment, values, &display_path(from)) {
                Ok(values) => values,
                Err(error) => return Ok(Err(error)),
            };
            figment = figment.merge(SweepValues { file: from, values: &values });
        }
        let spec: Spec = match figment.extract() {
            Ok(spec) => spec,
            Err(error) => return Err(Refused { error, figment }),
        };
        let mut issues = longer_arrays(&figment, &spec);
        issues.extend(set_and_swept(&spec, &layers.overrides, file));
        if !issues.is_empty() {
            return Ok(Err(SpecError { issues }));
        }
        Ok(Ok(Self { spec, file: file.to_path_buf(), figment }))
    }

    /// Where the value at dotted `key` was set: a file path, an environment variable or `--set`.
    pub fn origin(&self, key: &str) -> String {
        let segments: Vec<&str> = key.split(['.', '[']).collect();
        match self.figment.find_metadata(key) {
            Some(metadata) => describe_origin(metadata, &segments),
            None => display_path(&self.file),
        }
    }

    /// The folder of the spec file that set `key`, for resolving relative paths (`None` when
    /// an environment variable or `--set` set it: those are relative to the working directory).
    pub fn base_dir(&self, key: &str) -> Option<PathBuf> {
        self.file_setting(key).and_then(|path| path.parent().map(Path::to_path_buf))
    }

    /// The spec file that set `key` (`None` for an environment variable or `--set`).
    pub fn file_setting(&self, key: &str) -> Option<PathBuf> {
        match self.figment.find_metadata(key).and_then(|m| m.source.as_ref()) {
            Some(Source::File(path)) => Some(path.clone()),
            _ => None,
        }
    }
}

/// `--set extends=…` or `--unset extends`: the chain of files is read before any layer, so
/// either would be dropped without a word.
fn extends_from_flags(layers: &Layers) -> Option<SpecError> {
    let flag = if layers.overrides.iter().any(|o| matches!(o.path.first(), Some(Step::Key(k)) if k == "extends")) {
        SET_FLAG
    } else if layers.unset.iter().any(|u| matches!(u.path().first(), Some(Step::Key(k)) if k == "extends")) {
        UNSET_FLAG
    } else {
        return None;
    };
    Some(SpecError::single(SpecIssue {
        origin: flag.into(),
        key: "extends".into(),
        value: None,
        message: "cannot be changed from the command line: the base spec is chosen by the file's own `extends`".into(),
        hint: Some("write `extends = \"base.toml\"` in the spec file (or a new file that extends it), or set the keys you want to change with --set".into()),
    }))
}

/// `--set` of a key the spec's `[sweep]` varies: each trial sets it again, so the override would
/// change nothing but the sweep's folder.
fn set_and_swept(spec: &Spec, overrides: &[Override], file: &Path) -> Vec<SpecIssue> {
    let Some(sweep) = &spec.sweep else { return Vec::new() };
    let mut issues = Vec::new();
    for item in overrides.iter().filter(|o| !matches!(o.path.first(), Some(Step::Key(k)) if k == "sweep")) {
        let set = item.key.as_str();
        let hit = sweep.keys().filter(|k| k.contains('.')).find(|swept| {
            let swept = swept.as_str();
            if swept == set || set.strip_prefix(swept).is_some_and(|rest| rest.starts_with(['.', '['])) {
                return true;
            }
            // a table that holds the swept key: `--set train.optimizer={lr=0.1}`
            swept.strip_prefix(set).and_then(|rest| rest.strip_prefix('.')).is_some_and(|rest| item.value.find_ref(rest).is_some())
        });
        if let Some(swept) = hit {
            issues.push(SpecIssue {
                origin: SET_FLAG.into(),
                key: item.key.clone(),
                value: Some(render_value(&item.value)),
                message: format!("is swept by the [sweep] of {} (\"{swept}\"): every trial sets it, so this --set would change nothing", display_path(file)),
                hint: Some(format!("change the swept values with --set 'sweep.\"{swept}\"=[...]', or --unset sweep to run the spec once")),
            });
        }
    }
    issues
}

/// The files of an `extends` chain, base first, each path resolved against the file naming it.
fn extends_chain(file: &Path) -> Result<Vec<PathBuf>, SpecError> {
    let mut chain: Vec<PathBuf> = Vec::new();
    let mut current = file.to_path_buf();
    // the `extends` value as written in the file that names `current`
    let mut written: Option<String> = None;
    loop {
        let canonical = current.canonicalize().unwrap_or_else(|_| current.clone());
        if chain.iter().any(|seen| seen.canonicalize().ok().as_ref() == Some(&canonical)) {
            let cycle: Vec<String> = chain.iter().rev().map(|p| display_path(p)).collect();
            return Err(SpecError::single(SpecIssue {
                origin: display_path(chain.last().expect("cycle needs a file")),
                key: "extends".into(),
                value: written.as_ref().map(|w| format!("{w:?}")),
                message: format!("extends chain loops back: {}", cycle.join(" -> ")),
                hint: None,
            }));
        }
        let text = read_spec_file(&current).map_err(|e| {
            let referrer = chain.last();
            SpecError::single(SpecIssue {
                origin: referrer.map(|p| display_path(p)).unwrap_or_else(|| display_path(&current)),
                key: if referrer.is_some() { "extends".into() } else { String::new() },
                value: written.as_ref().map(|w| format!("{w:?}")),
                message: format!("cannot read spec file {}: {e}", display_path(&current)),
                hint: None,
            })
        })?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| {
            SpecError::single(SpecIssue {
                origin: display_path(&current),
                key: String::new(),
                value: None,
                message: format!("invalid TOML: {}", e.to_string().trim_end()),
                hint: None,
            })
        })?;
        chain.push(current.clone());
        match table.get("extends") {
            None => break,
            Some(toml::Value::String(base)) => {
                let dir = current.parent().unwrap_or(Path::new("."));
                written = Some(base.clone());
                current = dir.join(base);
            }
            Some(other) => {
                return Err(SpecError::single(SpecIssue {
                    origin: display_path(&current),
                    key: "extends".into(),
                    value: Some(other.to_string()),
                    message: "expected the path of a base spec file (a string)".into(),
                    hint: None,
                }));
            }
        }
    }
    chain.reverse();
    Ok(chain)
}

/// `--unset KEY` where no file (nor variable) sets `KEY`: most likely a typo.
fn unset_nothing(key: &str, figment: &Figment, file: &Path) -> SpecError {
    let (parent, leaf) = key.rsplit_once('.').unwrap_or(("", key));
    let siblings: Vec<String> = if parent.is_empty() {
        figment.data().ok().and_then(|mut p| p.remove(&Profile::Default)).map(|d| d.keys().cloned().collect()).unwrap_or_default()
    } else {
        match figment.find_value(parent) {
            Ok(Value::Dict(_, dict)) => dict.keys().cloned().collect(),
            _ => Vec::new(),
        }
    };
    let hint = closest(leaf, siblings.iter().map(String::as_str)).map(|best| {
        if parent.is_empty() { format!("did you mean `{best}`?") } else { format!("did you mean `{parent}.{best}`?") }
    });
    SpecError::single(SpecIssue {
        origin: UNSET_FLAG.into(),
        key: key.into(),
        value: None,
        message: format!("is not set by {} nor anything it extends (nor the environment), so there is nothing to remove", display_path(file)),
        hint,
    })
}

fn describe_origin(metadata: &Metadata, segments: &[&str]) -> String {
    match &metadata.source {
        Some(Source::File(path)) => display_path(path),
        Some(Source::Custom(flag)) if flag == SET_FLAG => SET_FLAG.to_string(),
        _ if metadata.name.contains("environment") => {
            let upper: Vec<String> = segments.iter().map(|s| s.to_ascii_uppercase()).collect();
            format!("environment variable {ENV_PREFIX}{}", upper.join(ENV_SEPARATOR))
        }
        _ => metadata.name.to_string(),
    }
}


/// `file` is named where figment knows no origin for a key: a key missing from every layer
/// (an empty spec file has no `experiment`).
fn from_figment(error: figment::Error, figment: &Figment, file: &Path) -> SpecError {
    let issues = error
        .into_iter()
        .map(|e| {
            let mut issue = issue_from_figment(e, figment, file);
            issue.key = display_key(&issue.key);
            issue
        })
        .collect();
    SpecError { issues }
}

/// A figment key as brasa's messages write keys: `augment.chain[0].p`, not `augment.chain.0.p`,
/// and without figment's internal segment for relative paths (`data.root.___figment_relative_path`).
fn display_key(key: &str) -> String {
    let mut shown = String::new();
    for segment in key.split('.').filter(|s| *s != "___figment_relative_path") {
        if !shown.is_empty() && !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
            shown.push_str(&format!("[{segment}]"));
        } else {
            if !shown.is_empty() {
                shown.push('.');
            }
            shown.push_str(segment);
        }
    }
    shown
}

fn issue_from_figment(error: figment::Error, figment: &Figment, file: &Path) -> SpecIssue {
    // figment's path ends with the offending field for unknown fields; drop it so `key_of`
    // can put either the field or a suggestion there.
    let mut path = error.path.clone();
    // a `RelativePathBuf` of the wrong type is reported inside figment's own wrapper struct
    path.retain(|segment| segment != "___figment_relative_path");
    let field: Option<&str> = match &error.kind {
        Kind::UnknownField(field, _) => Some(field),
        Kind::MissingField(field) => Some(field),
        _ => None,
    };
    if field.is_some() && path.last().map(String::as_str) == field {
        path.pop();
    }
    let key_of = |leaf: Option<&str>| {
        let mut parts = path.clone();
        parts.extend(leaf.map(str::to_string));
        parts.join(".")
    };
    let origin = |key: &str| {
        let segments: Vec<&str> = key.split('.').collect();
        error
            .metadata
            .as_ref()
            .map(|m| describe_origin(m, &segments))
            .or_else(|| figment.find_metadata(key).map(|m| describe_origin(m, &segments)))
            .unwrap_or_else(|| display_path(file))
    };
    match &error.kind {
        Kind::UnknownField(field, expected) => {
            let key = key_of(Some(field));
            let hint = closest(field, expected.iter().copied())
                .map(|best| format!("did you mean `{}`?", display_key(&key_of(Some(best)))));
            let hint = hint.or_else(|| Some(format!("valid keys here: {}", expected.join(", "))));
            SpecIssue { origin: origin(&key), key, value: None, message: "unknown key".into(), hint }
        }
        Kind::UnknownVariant(variant, expected) => {
            let key = key_of(None);
            let hint = closest(variant, expected.iter().copied())
                .map(|best| format!("did you mean {best:?}?"));
            SpecIssue {
                origin: origin(&key),
                value: Some(format!("{variant:?}")),
                message: format!("unknown value; expected one of: {}", expected.join(", ")),
                key,
                hint,
            }
        }
        Kind::MissingField(field) => {
            let key = key_of(Some(field));
            SpecIssue {
                origin: origin(&key_of(None)),
                key,
                value: None,
                message: "missing required key".into(),
                hint: None,
            }
        }
        Kind::InvalidType(actual, expected) | Kind::InvalidValue(actual, expected) => {
            let key = key_of(None);
            let value = figment
                .find_value(&key)
                .ok()
                .map(|v| render_value(&v))
                .unwrap_or_else(|| actual.to_string());
            SpecIssue {
                origin: origin(&key),
                key,
                value: Some(value),
                message: format!("expected {expected}, found {actual}"),
                hint: None,
            }
        }
        _ => {
            let key = key_of(None);
            SpecIssue {
                origin: origin(&key),
                value: figment.find_value(&key).ok().map(|v| render_value(&v)),
                key,
                message: error.kind.to_string(),
                hint: None,
            }
        }
    }
}

/// A figment value written back in TOML syntax, for error messages.
pub fn render_value(value: &Value) -> String {
    match value {
        Value::String(_, s) => format!("{s:?}"),
        Value::Char(_, c) => format!("{:?}", c.to_string()),
        Value::Bool(_, b) => b.to_string(),
        Value::Num(_, n) => match (n.to_i128(), n.to_u128(), n.to_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => f.to_string(),
            _ => String::new(),
        },
        Value::Empty(_, _) => "<empty>".into(),
        Value::Array(_, items) => {
            let parts: Vec<String> = items.iter().map(render_value).collect();
            format!("[{}]", parts.join(", "))
        }
        Value::Dict(_, dict) => {
            let parts: Vec<String> =
                dict.iter().map(|(k, v)| format!("{k} = {}", render_value(v))).collect();
            format!("{{ {} }}", parts.join(", "))
        }
    }
}
