//! The `[sweep]` table: which spec keys vary and how, turned into a list of trials — each a set
//! of `--set`-style overrides on top of the base spec.
//!
//! ```toml
//! [sweep]
//! mode = "grid"                                  # or "random" (then `trials` and `seed`)
//! repeats = 2                                    # each point with 2 seeds (experiment.seed, +1, ...)
//! "train.optimizer.lr" = [1e-5, 2e-5, 3e-5]      # a list: grid values, or a choice when random
//! "model.dropout" = { uniform = [0.0, 0.2] }     # ranges need mode = "random"
//! "train.optimizer.weight_decay" = { log_uniform = [1e-4, 1e-1] }
//! ```

use figment::value::{Dict, Value};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::error::{SpecError, SpecIssue, closest};
use super::load::{Override, render_value};

const RESERVED: [&str; 5] = ["mode", "repeats", "trials", "seed", "jobs"];
/// The most trials one sweep may have: each is a process and a run folder.
pub const MAX_TRIALS: usize = 10_000;

/// The JSON Schema of a `[sweep]` table (its keys are dotted spec paths, so it is described here
/// rather than derived): the reserved options, and every other key a list of values or a range.
pub fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "Keys to vary across trials: each other key is a dotted spec path (\"train.optimizer.lr\") with a list of values (grid values, or a choice when random) or a range ({ uniform = [a, b] } or { log_uniform = [a, b] }, mode = \"random\" only).",
        "type": "object",
        "properties": {
            "mode": { "description": "`grid`: every combination of the listed values; `random`: `trials` independent draws.", "enum": ["grid", "random"], "default": "grid" },
            "repeats": { "description": "Each point with this many seeds (experiment.seed, +1, ...).", "type": "integer", "minimum": 1, "default": 1 },
            "trials": { "description": "Draws of a random sweep.", "type": "integer", "minimum": 1, "maximum": MAX_TRIALS },
            "seed": { "description": "Seed of a random sweep's draws (defaults to experiment.seed).", "type": "integer", "minimum": 0 },
            "jobs": { "description": "Trials run at once on this machine by default (`--jobs` overrides).", "type": "integer", "minimum": 1 }
        },
        "additionalProperties": {
            "anyOf": [
                { "type": "array", "minItems": 1 },
                { "type": "object", "properties": { "choice": { "type": "array", "minItems": 1 } }, "required": ["choice"], "additionalProperties": false },
                { "type": "object", "properties": { "uniform": { "type": "array", "items": { "type": "number" }, "minItems": 2, "maxItems": 2 } }, "required": ["uniform"], "additionalProperties": false },
                { "type": "object", "properties": { "log_uniform": { "type": "array", "items": { "type": "number", "exclusiveMinimum": 0 }, "minItems": 2, "maxItems": 2 } }, "required": ["log_uniform"], "additionalProperties": false }
            ]
        }
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every combination of the listed values.
    Grid,
    /// `trials` independent draws.
    Random,
}

/// How one swept key varies.
#[derive(Debug, Clone, PartialEq)]
pub enum Domain {
    /// Listed values (grid) or a uniform choice among them (random).
    Values(Vec<Value>),
    Uniform(f64, f64),
    LogUniform(f64, f64),
}

/// A parsed `[sweep]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct Sweep {
    pub mode: Mode,
    pub repeats: usize,
    pub trials: Option<usize>,
    pub seed: u64,
    /// Trials run at once by default (`--jobs` overrides).
    pub jobs: usize,
    /// Swept keys in the order written (sorted by key).
    pub params: Vec<(String, Domain)>,
}

/// One trial: its 1-based number and the overrides that make it.
#[derive(Debug, Clone, PartialEq)]
pub struct Trial {
    pub number: usize,
    pub overrides: Vec<Override>,
}

impl Trial {
    /// `train.optimizer.lr=0.001, experiment.seed=43`.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = self.overrides.iter().map(|o| format!("{}={}", o.key, render_value(&o.value))).collect();
        if parts.is_empty() { "(base spec)".into() } else { parts.join(", ") }
    }

    /// The value this trial gives `key`, rendered.
    pub fn value_of(&self, key: &str) -> Option<String> {
        self.overrides.iter().find(|o| o.key == key).map(|o| render_value(&o.value))
    }
}

fn issue(origin: &str, key: &str, value: Option<String>, message: impl Into<String>) -> SpecIssue {
    let key = if key.is_empty() { "sweep".to_string() } else { format!("sweep.{key}") };
    SpecIssue { origin: origin.to_string(), key, value, message: message.into(), hint: None }
}

/// A list's values without the tags of the spec file's figment they were read from: a trial
/// layers them afresh, where they take the tag of its own provider (and so name the file
/// whose `[sweep]` set them, and resolve a relative path against its folder).
fn untagged(items: &[Value]) -> Vec<Value> {
    items.iter().map(|value| Value::serialize(value).unwrap_or_else(|_| value.clone())).collect()
}

/// A range bound as a float: TOML integers (`{ uniform = [0, 1] }`) are bounds too.
fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Num(_, n) => n.to_f64().or_else(|| n.to_i128().map(|i| i as f64)),
        _ => None,
    }
}

fn range(origin: &str, key: &str, value: &Value, positive: bool) -> Result<(f64, f64), SpecIssue> {
    let bad = || {
        let need = if positive { "[low, high] with 0 < low < high" } else { "[low, high] with low < high" };
        issue(origin, key, Some(render_value(value)), format!("expected {need}"))
    };
    let Value::Array(_, items) = value else { return Err(bad()) };
    match items.as_slice() {
        [lo, hi] => match (number(lo), number(hi)) {
            (Some(lo), Some(hi)) if lo < hi && (!positive || lo > 0.0) => Ok((lo, hi)),
            _ => Err(bad()),
        },
        _ => Err(bad()),
    }
}

impl Sweep {
    /// Parses the `[sweep]` table (`origin` names where it was written, for errors).
    pub fn parse(table: &Dict, origin: &str) -> Result<Self, SpecError> {
        let mut issues = Vec::new();
        let mut sweep = Sweep { mode: Mode::Grid, repeats: 1, trials: None, seed: 0, jobs: 1, params: Vec::new() };
        let count = |key: &str, value: &Value, issues: &mut Vec<SpecIssue>| -> Option<usize> {
            match value {
                Value::Num(_, n) => n.to_i128().filter(|&v| v >= 1).map(|v| v as usize),
                _ => None,
            }
            .or_else(|| {
                issues.push(issue(origin, key, Some(render_value(value)), "must be a whole number of at least 1"));
                None
            })
        };
        for (key, value) in table {
            match key.as_str() {
                "mode" => match value {
                    Value::String(_, s) if s == "grid" => sweep.mode = Mode::Grid,
                    Value::String(_, s) if s == "random" => sweep.mode = Mode::Random,
                    other => issues.push(issue(origin, key, Some(render_value(other)), "expected \"grid\" or \"random\"")),
                },
                "repeats" => sweep.repeats = count(key, value, &mut issues).unwrap_or(1),
                "trials" => sweep.trials = count(key, value, &mut issues),
                "jobs" => sweep.jobs = count(key, value, &mut issues).unwrap_or(1),
                "seed" => match value {
                    Value::Num(_, n) if n.to_i128().is_some_and(|v| v >= 0) => sweep.seed = n.to_i128().unwrap_or(0) as u64,
                    other => issues.push(issue(origin, key, Some(render_value(other)), "must be a whole number")),
                },
                _ if !key.contains('.') => {
                    let hint = closest(key, RESERVED).map(|k| format!("did you mean `sweep.{k}`?"));
                    let mut problem = issue(
                        origin,
                        key,
                        None,
                        "unknown sweep setting; swept keys are dotted spec keys, quoted: \"train.optimizer.lr\" = [...]",
                    );
                    problem.hint = hint;
                    issues.push(problem);
                }
                _ if key == "sweep" || key.starts_with("sweep.") || key == "extends" => {
                    issues.push(issue(origin, key, None, "the sweep's own settings (and `extends`) cannot be swept: each trial is one run of the spec"));
                }
                _ => match Self::domain(origin, key, value) {
                    Ok(Domain::Values(values)) if values.iter().enumerate().any(|(i, v)| values[..i].contains(v)) => {
                        let shown: Vec<String> = values.iter().map(render_value).collect();
                        issues.push(issue(origin, key, Some(format!("[{}]", shown.join(", "))), "lists a value twice: the trials would repeat each other (sweep.repeats runs seeds)"));
                    }
                    Ok(domain) => sweep.params.push((key.clone(), domain)),
                    Err(problem) => issues.push(problem),
                },
            }
        }
        // `repeats` sets experiment.seed itself (base, +1, ...): a swept seed would be replaced,
        // running the same trials twice under labels that misreport their seeds
        if sweep.repeats > 1 && sweep.params.iter().any(|(key, _)| key == "experiment.seed") {
            let mut problem = issue(
                origin,
                "experiment.seed",
                None,
                format!("is swept while sweep.repeats = {} also sets experiment.seed (experiment.seed, +1, ...) for each repeat; the swept seeds would be replaced and trials repeated", sweep.repeats),
            );
            problem.hint = Some("sweep the seeds with repeats = 1 (list every seed you want), or drop \"experiment.seed\" from [sweep] and keep repeats".into());
            issues.push(problem);
        }
        if sweep.params.is_empty() && issues.is_empty() {
            issues.push(issue(origin, "", None, "names no key to sweep (e.g. \"train.optimizer.lr\" = [1e-4, 1e-3])"));
        }
        match sweep.mode {
            Mode::Grid => {
                for (key, domain) in &sweep.params {
                    if !matches!(domain, Domain::Values(_)) {
                        issues.push(issue(origin, key, None, "ranges (uniform, log_uniform) need mode = \"random\""));
                    }
                }
                if sweep.trials.is_some() {
                    issues.push(issue(origin, "trials", None, "a grid has one trial per combination; `trials` is for mode = \"random\""));
                }
            }
            Mode::Random if sweep.trials.is_none() => {
                issues.push(issue(origin, "trials", None, "mode = \"random\" needs `trials` (how many draws)"));
            }
            Mode::Random => {}
        }
        // points × repeats, computed without overflow: a sweep is a list of processes to start
        if issues.is_empty() {
            let points = match sweep.mode {
                Mode::Grid => sweep.params.iter().try_fold(1usize, |n, (_, domain)| match domain {
                    Domain::Values(values) => n.checked_mul(values.len()),
                    _ => Some(n),
                }),
                Mode::Random => sweep.trials,
            };
            let total = points.and_then(|p| p.checked_mul(sweep.repeats));
            if total.is_none_or(|t| t > MAX_TRIALS) {
                let count = total.map(|t| t.to_string()).unwrap_or_else(|| "more than 2^64".into());
                let key = if sweep.repeats > 1 { "repeats" } else if sweep.mode == Mode::Random { "trials" } else { "" };
                issues.push(issue(origin, key, None, format!("makes {count} trials; a sweep runs at most {MAX_TRIALS} (split it into several)")));
            }
        }
        if issues.is_empty() { Ok(sweep) } else { Err(SpecError { issues }) }
    }

    fn domain(origin: &str, key: &str, value: &Value) -> Result<Domain, SpecIssue> {
        match value {
            Value::Array(_, items) if !items.is_empty() => Ok(Domain::Values(untagged(items))),
            Value::Dict(_, dict) if dict.len() == 1 => {
                let (kind, inner) = dict.iter().next().expect("one entry");
                match kind.as_str() {
                    "choice" => match inner {
                        Value::Array(_, items) if !items.is_empty() => Ok(Domain::Values(untagged(items))),
                        other => Err(issue(origin, key, Some(render_value(other)), "choice needs a non-empty list")),
                    },
                    "uniform" => range(origin, key, inner, false).map(|(lo, hi)| Domain::Uniform(lo, hi)),
                    "log_uniform" => range(origin, key, inner, true).map(|(lo, hi)| Domain::LogUniform(lo, hi)),
                    other => Err(issue(origin, key, Some(render_value(value)), format!("unknown range {other:?}; expected choice, uniform or log_uniform"))),
                }
            }
            other => Err(issue(
                origin,
                key,
                Some(render_value(other)),
                "expected a list of values or { choice = [...] }, { uniform = [lo, hi] }, { log_uniform = [lo, hi] }",
            )),
        }
    }

    /// The trials, numbered from 1: grid points (or random draws) times `repeats` seeds.
    pub fn trials(&self, base_seed: u64) -> Vec<Trial> {
        let points: Vec<Vec<Override>> = match self.mode {
            Mode::Grid => self.params.iter().fold(vec![Vec::new()], |points, (key, domain)| {
                let Domain::Values(values) = domain else { unreachable!("grid domains are lists") };
                points
                    .iter()
                    .flat_map(|point| {
                        values.iter().map(move |value| {
                            let mut next = point.clone();
                            next.push(Override::new(key.clone(), value.clone()));
                            next
                        })
                    })
                    .collect()
            }),
            Mode::Random => {
                let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
                (0..self.trials.unwrap_or(1))
                    .map(|_| {
                        self.params
                            .iter()
                            .map(|(key, domain)| {
                                let value = match domain {
                                    Domain::Values(values) => values[rng.random_range(0..values.len())].clone(),
                                    Domain::Uniform(lo, hi) => Value::from(rng.random_range(*lo..*hi)),
                                    Domain::LogUniform(lo, hi) => Value::from(rng.random_range(lo.ln()..hi.ln()).exp()),
                                };
                                Override::new(key.clone(), value)
                            })
                            .collect()
                    })
                    .collect()
            }
        };
        let mut trials = Vec::new();
        for point in points {
            for repeat in 0..self.repeats {
                let mut overrides = point.clone();
                if self.repeats > 1 {
                    // TOML integers are i64; spec seeds are far below its range
                    let seed = (base_seed + repeat as u64) as i64;
                    overrides.push(Override::new("experiment.seed", Value::from(seed)));
                }
                trials.push(Trial { number: trials.len() + 1, overrides });
            }
        }
        trials
    }

    /// The keys that vary between trials (with `experiment.seed` when repeating).
    pub fn varied_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.params.iter().map(|(k, _)| k.clone()).collect();
        if self.repeats > 1 {
            keys.push("experiment.seed".into());
        }
        keys
    }
}

/// FNV-1a: a stable short fingerprint (sweep folder names must not change between builds).
pub fn fingerprint(text: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= byte as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{:08x}", hash >> 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> Result<Sweep, SpecError> {
        let table: toml::Table = toml::from_str(toml_text).unwrap();
        let value = figment::Figment::from(figment::providers::Serialized::defaults(table));
        let dict: Dict = value.extract().unwrap();
        Sweep::parse(&dict, "spec.toml")
    }

    #[test]
    fn grid_is_the_cartesian_product_times_repeats() {
        let sweep = parse(r#""train.optimizer.lr" = [1e-5, 2e-5, 3e-5]
"train.batch_size" = [16, 32]
repeats = 2"#)
        .unwrap();
        let trials = sweep.trials(42);
        assert_eq!(trials.len(), 12);
        assert_eq!(trials[0].describe(), "train.batch_size=16, train.optimizer.lr=0.00001, experiment.seed=42");
        assert_eq!(trials[1].value_of("experiment.seed").as_deref(), Some("43"));
        assert_eq!(trials[11].number, 12);
        assert_eq!(sweep.varied_keys(), ["train.batch_size", "train.optimizer.lr", "experiment.seed"]);
    }

    #[test]
    fn random_draws_are_seeded_and_in_range() {
        let text = r#"mode = "random"
trials = 20
seed = 3
"train.optimizer.lr" = { log_uniform = [1e-5, 1e-3] }
"model.dropout" = { uniform = [0.0, 0.2] }
"train.batch_size" = { choice = [16, 32] }"#;
        let a = parse(text).unwrap().trials(0);
        assert_eq!(a, parse(text).unwrap().trials(0));
        assert_eq!(a.len(), 20);
        for trial in &a {
            let lr: f64 = trial.value_of("train.optimizer.lr").unwrap().parse().unwrap();
            assert!((1e-5..1e-3).contains(&lr));
            let dropout: f64 = trial.value_of("model.dropout").unwrap().parse().unwrap();
            assert!((0.0..0.2).contains(&dropout));
        }
    }

    #[test]
    fn mistakes_are_located() {
        let err = parse(r#"mdoe = "grid""#).unwrap_err().to_string();
        assert!(err.contains("`sweep.mdoe`") && err.contains("did you mean `sweep.mode`?"), "{err}");
        let err = parse(r#""model.dropout" = { uniform = [0.0, 0.2] }"#).unwrap_err().to_string();
        assert!(err.contains("need mode = \"random\""), "{err}");
        let err = parse(r#"mode = "random"
"train.optimizer.lr" = { log_uniform = [0.0, 1e-3] }"#)
        .unwrap_err()
        .to_string();
        assert!(err.contains("needs `trials`") && err.contains("0 < low < high"), "{err}");
        assert!(parse("repeats = 2").unwrap_err().to_string().contains("names no key to sweep"));
        let err = parse("\"sweep.jobs\" = [1, 2]").unwrap_err().to_string();
        assert!(err.contains("`sweep.sweep.jobs`") && err.contains("cannot be swept"), "{err}");
        let err = parse("\"train.optimizer.lr\" = [0.1, 0.01, 0.1]").unwrap_err().to_string();
        assert!(err.contains("lists a value twice"), "{err}");
        // found by tests/spec_fuzz.rs: a count that overflowed, or hung making trials
        let huge = parse("mode = \"random\"\ntrials = 4808846853606967704\n\"train.optimizer.lr\" = { log_uniform = [1e-4, 1e-3] }").unwrap_err().to_string();
        assert!(huge.contains("`sweep.trials`: makes 4808846853606967704 trials; a sweep runs at most 10000"), "{huge}");
        let huge = parse("repeats = 4808846853606967704\n\"train.optimizer.lr\" = [1e-4, 1e-3]").unwrap_err().to_string();
        assert!(huge.contains("`sweep.repeats`: makes 9617693707213935408 trials"), "{huge}");
    }

    #[test]
    fn a_swept_seed_with_repeats_is_refused_naming_both_keys() {
        let err = parse("\"experiment.seed\" = [1, 2]\nrepeats = 2").unwrap_err().to_string();
        assert!(err.contains("`sweep.experiment.seed`") && err.contains("sweep.repeats = 2"), "{err}");
        let sweep = parse("\"experiment.seed\" = [1, 2]\nrepeats = 1").unwrap();
        let seeds: Vec<_> = sweep.trials(42).iter().map(|t| t.describe()).collect();
        assert_eq!(seeds, ["experiment.seed=1", "experiment.seed=2"]);
    }

    #[test]
    fn integer_range_bounds_are_floats() {
        let sweep = parse("mode = \"random\"\ntrials = 3\n\"model.dropout\" = { uniform = [0, 1] }\n\"train.optimizer.lr\" = { log_uniform = [1, 3] }").unwrap();
        assert_eq!(sweep.params, [("model.dropout".to_string(), Domain::Uniform(0.0, 1.0)), ("train.optimizer.lr".to_string(), Domain::LogUniform(1.0, 3.0))]);
        let err = parse("mode = \"random\"\ntrials = 3\n\"model.dropout\" = { uniform = [1, 0] }").unwrap_err().to_string();
        assert!(err.contains("low < high"), "{err}");
    }

    #[test]
    fn sweep_options_without_a_key_name_the_table() {
        let err = parse("mode = \"grid\"").unwrap_err().to_string();
        assert!(err.contains("`sweep`: names no key to sweep"), "{err}");
    }

    #[test]
    fn fingerprints_are_stable() {
        assert_eq!(fingerprint("brasa"), fingerprint("brasa"));
        assert_ne!(fingerprint("brasa"), fingerprint("brasb"));
        assert_eq!(fingerprint("").len(), 8);
    }
}
