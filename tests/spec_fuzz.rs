//! The spec loader never panics: property tests over random TOML documents (the schema's real
//! sections and keys mixed with strangers, values of every TOML type, random nesting), random
//! bytes, random `--set` and `--unset` arguments on a valid spec, and random sweeps. Every input
//! must give a plan or an error that names where it comes from; a panic fails the test with the
//! smallest input that causes it (proptest shrinks it).
//!
//! The case counts are set for about half a minute on 2 cores; `PROPTEST_CASES` raises them.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use brasa::plan::Plan;
use brasa::spec::{Layers, LoadedSpec, Override, UnsetKey};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Every section of the schema with its keys (and some of their values' own keys).
const SECTIONS: &[(&str, &[&str])] = &[
    ("experiment", &["name", "description", "seed"]),
    ("data", &["root", "layout", "train", "test", "classes", "source", "expect", "split", "cache", "unreadable"]),
    ("data.split", &["validation", "stratify", "seed", "group_duplicates"]),
    ("augment", &["mode", "copies", "chain"]),
    ("preprocess", &["preset", "resize", "center_crop", "interpolation", "mean", "std"]),
    ("model", &["arch", "pretrained", "freeze", "drop_path_rate", "dropout"]),
    ("train", &["epochs", "batch_size", "eval_batch_size", "optimizer", "schedule", "grad_clip", "select_best", "early_stop_patience", "max_steps", "checkpoint_every_steps"]),
    ("train.optimizer", &["name", "lr", "betas", "eps", "weight_decay"]),
    ("train.schedule", &["name", "warmup_steps", "warmup_ratio"]),
    ("runtime", &["backend", "device", "threads"]),
    ("report", &["formats", "prediction_grid", "mistakes", "attention_maps", "templates", "tensorboard"]),
    ("sweep", &["mode", "jobs", "repeats", "trials", "seed", "train.optimizer.lr", "train.batch_size", "model.arch"]),
];

/// Words that are valid somewhere: enum values, op names, architectures.
const WORDS: &[&str] = &[
    "auto", "memory", "disk", "none", "error", "skip", "image-folder", "append", "online", "resize", "random_rotation",
    "random_resized_crop", "horizontal_flip", "vertical_flip", "color_jitter", "normalize", "nearest", "bilinear",
    "bicubic", "hf", "cvt-tiny", "cvt-13", "vit-tiny", "vit-b16", "adamw", "constant", "linear", "cosine", "accuracy",
    "macro_f1", "weighted_f1", "loss", "flex", "wgpu", "cuda", "markdown", "html", "grid", "random", "backbone",
    "hf:microsoft/cvt-13", "data", "train", "test", "", " ", "é", "../..", "/", "\\", "\u{0}",
];

/// A TOML value of any type, nested a little.
fn value() -> impl Strategy<Value = toml::Value> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(toml::Value::Integer),
        prop_oneof![Just(0i64), Just(1), Just(-1), Just(2), Just(16), Just(224), Just(u32::MAX as i64), Just(i64::MAX)].prop_map(toml::Value::Integer),
        any::<f64>().prop_map(toml::Value::Float),
        prop_oneof![Just(0.0f64), Just(1e-300), Just(-0.0), Just(f64::NAN), Just(f64::INFINITY), Just(0.5), Just(2e-5)].prop_map(toml::Value::Float),
        any::<bool>().prop_map(toml::Value::Boolean),
        proptest::sample::select(WORDS).prop_map(|w| toml::Value::String(w.to_string())),
        ".{0,12}".prop_map(toml::Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(toml::Value::Array),
            proptest::collection::btree_map(key(), inner, 0..4).prop_map(|m| toml::Value::Table(m.into_iter().collect())),
        ]
    })
}

/// A key: a real one of some section, an op field, or a stranger.
fn key() -> impl Strategy<Value = String> {
    let real: Vec<&str> = SECTIONS.iter().flat_map(|(_, keys)| keys.iter().copied()).collect();
    prop_oneof![
        3 => proptest::sample::select(real).prop_map(str::to_string),
        1 => proptest::sample::select(vec!["op", "size", "degrees", "fill", "scale", "ratio", "p", "brightness", "contrast", "saturation", "mean", "std", "log_uniform", "uniform", "choice"]).prop_map(str::to_string),
        1 => "[a-z_]{1,8}",
    ]
}

/// A spec document: a valid base with random sections, keys and values put in and taken out.
fn document() -> impl Strategy<Value = String> {
    let edits = proptest::collection::vec((proptest::sample::select(SECTIONS), any::<prop::sample::Index>(), value(), any::<bool>()), 0..8);
    edits.prop_map(|edits| {
        let mut doc: toml::Table = VALID.parse().expect("the base is TOML");
        for ((section, keys), index, value, remove) in edits {
            let mut table = &mut doc;
            for part in section.split('.') {
                let entry = table.entry(part.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
                if !entry.is_table() {
                    *entry = toml::Value::Table(toml::Table::new());
                }
                table = entry.as_table_mut().expect("a table");
            }
            let key = keys[index.index(keys.len())];
            if remove {
                table.remove(key);
            } else {
                table.insert(key.to_string(), value);
            }
        }
        toml::to_string(&doc).unwrap_or_default()
    })
}

const VALID: &str = r#"
[experiment]
name = "fuzz"
seed = 7
[data]
root = "data"
train = "train"
test = "test"
[preprocess]
resize = [16, 16]
[augment]
chain = [{ op = "resize", size = [16, 16] }, { op = "horizontal_flip", p = 0.5 }]
[model]
arch = "cvt-tiny"
[train]
epochs = 1
batch_size = 4
"#;

static CASES: AtomicUsize = AtomicUsize::new(0);
/// Cases that resolved to a plan (the others are errors): the fuzzer reaches past the parser.
static PLANS: AtomicUsize = AtomicUsize::new(0);

/// Loads `text` as `spec.toml` in `dir` with `layers` and resolves it (and its sweep): any
/// outcome but a panic is fine, and an error must say where it comes from.
fn load(dir: &Path, text: &[u8], layers: &Layers) {
    CASES.fetch_add(1, Ordering::Relaxed);
    let file = dir.join("spec.toml");
    std::fs::write(&file, text).unwrap();
    let message = match LoadedSpec::load(&file, layers) {
        Ok(loaded) => match Plan::resolve(&loaded) {
            Ok(_) if loaded.spec.sweep.is_some() => match brasa::sweep::SweepPlan::resolve(&file, layers, Some(&dir.join("sweep"))) {
                Ok(_) => None,
                Err(e) => Some(e.to_string()),
            },
            Ok(_) => None,
            Err(e) => Some(e.to_string()),
        },
        Err(e) => Some(e.to_string()),
    };
    if message.is_none() {
        PLANS.fetch_add(1, Ordering::Relaxed);
    }
    if let Some(message) = message {
        assert!(!message.trim().is_empty(), "an empty error message");
        assert!(
            message.contains("spec.toml") || message.contains("--set") || message.contains("--unset") || message.contains("environment") || message.contains("sweep") || message.contains("trial"),
            "an error that does not say where it comes from: {message}"
        );
    }
}

fn runner(cases: u32) -> TestRunner {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(cases);
    TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() })
}

#[test]
fn random_documents_bytes_set_values_and_sweeps_never_panic_the_loader() {
    let dir = tempfile::tempdir().unwrap();
    // the data folder the valid spec names (plans check that it exists; its images are not read)
    std::fs::create_dir_all(dir.path().join("data/train/cat")).unwrap();
    let started = Instant::now();
    let no_layers = Layers::default();

    runner(12_000).run(&document(), |doc| {
        load(dir.path(), doc.as_bytes(), &no_layers);
        Ok(())
    }).unwrap();

    runner(4_000).run(&proptest::collection::vec(any::<u8>(), 0..200), |bytes| {
        load(dir.path(), &bytes, &no_layers);
        Ok(())
    }).unwrap();
    // TOML-looking text of random characters
    runner(4_000).run(&"(\\[[a-z.]{0,10}\\]\n)?([a-z_.]{0,12} ?= ?[-+0-9.eE\"\\[\\]{},a-z ]{0,16}\n){0,6}", |text| {
        load(dir.path(), text.as_bytes(), &no_layers);
        Ok(())
    }).unwrap();

    // --set KEY=VALUE and --unset KEY, parsed as the command line parses them, on a valid spec
    let real: Vec<String> = SECTIONS.iter().flat_map(|(section, keys)| keys.iter().map(move |k| format!("{section}.{k}"))).collect();
    let dotted = prop_oneof![3 => proptest::sample::select(real.clone()), 1 => "[a-z_]{1,6}(\\.[a-z_]{0,6}){0,3}"];
    let raw = prop_oneof![proptest::sample::select(WORDS).prop_map(str::to_string), ".{0,16}", "[-0-9.e]{1,8}", "\\[[0-9, ]{0,8}\\]", "\\{ ?[a-z]{1,4} ?= ?[0-9]{1,3} ?\\}"];
    let args = proptest::collection::vec((dotted.clone(), raw, any::<bool>()), 0..5);
    runner(8_000).run(&args, |args| {
        let mut layers = Layers::default();
        for (key, value, unset) in args {
            if unset {
                if let Ok(key) = key.parse::<UnsetKey>() {
                    layers.unset.push(key);
                }
            } else if let Ok(o) = format!("{key}={value}").parse::<Override>() {
                layers.overrides.push(o);
            }
        }
        load(dir.path(), VALID.as_bytes(), &layers);
        Ok(())
    }).unwrap();

    // sweeps: random swept keys and value lists, modes and counts
    let sweep = (
        proptest::sample::select(vec!["grid", "random", "", "nope"]),
        proptest::collection::vec((dotted, proptest::collection::vec(value(), 0..4)), 0..3),
        prop_oneof![Just(None), (0i64..5).prop_map(Some), any::<i64>().prop_map(Some)],
    );
    runner(4_000).run(&sweep, |(mode, keys, count)| {
        let mut doc: toml::Table = VALID.parse().unwrap();
        let mut table = toml::Table::new();
        table.insert("mode".into(), toml::Value::String(mode.into()));
        if let Some(n) = count {
            table.insert("trials".into(), toml::Value::Integer(n));
            table.insert("repeats".into(), toml::Value::Integer(n.clamp(-1, 3)));
        }
        for (key, values) in keys {
            table.insert(key, toml::Value::Array(values));
        }
        doc.insert("sweep".into(), toml::Value::Table(table));
        load(dir.path(), toml::to_string(&doc).unwrap_or_default().as_bytes(), &no_layers);
        Ok(())
    }).unwrap();

    let (cases, plans) = (CASES.load(Ordering::Relaxed), PLANS.load(Ordering::Relaxed));
    eprintln!("spec fuzzer: {cases} cases without a panic in {:.1} s ({plans} resolved to a plan, {} to an error naming its origin)", started.elapsed().as_secs_f64(), cases - plans);
    assert!(plans * 10 > cases, "most cases should not stop at the parser: {plans} of {cases} resolved");
}

/// Inputs the fuzzer found that once panicked, kept as plain tests.
#[test]
fn regressions() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data/train/cat")).unwrap();
    let sweep = |table: &str| format!("{VALID}[sweep]\n{table}\n");
    let found = [
        // no [experiment]: the error once named no file
        String::new(),
        "\u{feff}".into(),
        "[experiment]\nname = 1".into(),
        "sweep = 3\n".into(),
        // a sweep of 4.8e18 random trials overflowed a Vec's capacity; one of 2 × 4.8e18 repeats hung
        sweep("mode = \"random\"\ntrials = 4808846853606967704\n\"train.optimizer.lr\" = { log_uniform = [1e-4, 1e-3] }"),
        sweep("repeats = 4808846853606967704\n\"train.optimizer.lr\" = [1e-4, 1e-3]"),
    ];
    for text in found {
        load(dir.path(), text.as_bytes(), &Layers::default());
    }
}
