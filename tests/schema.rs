//! `brasa schema` and the committed `brasa.schema.json`: the same document, derived from the
//! spec's serde types; every shipped experiment names it with `#:schema` and validates against
//! it; bad specs fail it at the key that is wrong, as an editor would show them.

mod common;

use std::path::Path;

use common::brasa::TestDir;
use serde_json::Value;

fn schema() -> Value {
    serde_json::from_str(&common::read(&common::repo_path("brasa.schema.json"))).unwrap()
}

/// A TOML document as the JSON a JSON Schema validator (and Taplo) checks.
fn as_json(toml_text: &str) -> Value {
    serde_json::to_value(toml_text.parse::<toml::Table>().unwrap()).unwrap()
}

/// The validator's complaints about `toml_text`: `(instance path, message)`.
fn errors(toml_text: &str) -> Vec<(String, String)> {
    let schema = schema();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let instance = as_json(toml_text);
    validator.iter_errors(&instance).map(|e| (e.instance_path().to_string(), e.to_string())).collect()
}

#[test]
fn the_committed_schema_is_what_brasa_schema_prints() {
    let ran = TestDir::new().brasa(["schema"]).succeeds();
    let committed = common::read(&common::repo_path("brasa.schema.json"));
    assert!(
        ran.stdout == committed,
        "brasa.schema.json is stale: regenerate it with `cargo run --release --features gpu -- schema > brasa.schema.json`"
    );
    assert_eq!(ran.stdout, brasa::spec::json_schema());
    println!("brasa.schema.json: {} bytes, {} definitions", committed.len(), schema()["definitions"].as_object().unwrap().len());
}

#[test]
fn every_shipped_experiment_names_the_schema_and_validates() {
    let dir = common::repo_path("experiments");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let text = common::read(&path);
        assert_eq!(text.lines().next(), Some("#:schema ../brasa.schema.json"), "{} must start with the schema directive", path.display());
        let found = errors(&text);
        assert!(found.is_empty(), "{}: {found:?}", path.display());
        checked += 1;
    }
    assert!(checked >= 6, "{checked} experiments");
}

#[test]
fn bad_specs_fail_at_the_key_that_is_wrong() {
    let base = common::read(&common::repo_path("experiments/quickstart.toml"));
    let cases: [(&str, &str, &str); 9] = [
        ("[train]", "[train]\nepoch = 3", "/train"),
        ("epochs = 10", "epochs = \"ten\"", "/train/epochs"),
        ("validation = 0.2", "validation = 1.5", "/data/split/validation"),
        ("name = \"cosine\"", "name = \"step\"", "/train/schedule/name"),
        ("{ op = \"horizontal_flip\", p = 0.5 }", "{ op = \"horizontal_flip\", p = 2 }", "/augment/chain/3"),
        ("arch = \"cvt-tiny\"", "arch = \"resnet-50\"", "/model/arch"),
        ("backend = \"auto\"", "backend = \"opengl\"", "/runtime/backend"),
        ("[report]", "[launcher.slurm]\npartition = \"gpu\"\nnodes = 2\n[report]", "/launcher/slurm"),
        ("[report]", "[sweep]\n\"train.optimizer.lr\" = { uniform = [1e-4] }\n[report]", "/sweep/train.optimizer.lr"),
    ];
    for (from, to, at) in cases {
        assert!(base.contains(from), "{from}");
        let found = errors(&base.replacen(from, to, 1));
        println!("{to:?}: {found:?}");
        assert!(!found.is_empty(), "{to:?} passes the schema");
        assert!(found.iter().any(|(path, _)| path == at), "{to:?}: expected an error at {at}, got {found:?}");
    }
    // a base file for `extends` holds only part of a spec, and is valid
    assert!(errors("[train]\nepochs = 3\n").is_empty());
}

#[test]
fn the_schema_lists_exactly_the_architectures_and_documents_keys() {
    let schema = schema();
    let arch = &schema["definitions"]["Model"]["properties"]["arch"];
    let listed: Vec<&str> = arch["enum"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(listed, brasa::model::Arch::names());
    assert!(arch["description"].as_str().unwrap().contains("cvt-13"));
    let epochs = &schema["definitions"]["Train"]["properties"]["epochs"];
    assert_eq!((epochs["default"].clone(), epochs["minimum"].clone()), (Value::from(10), Value::from(1)));
    assert!(schema["properties"]["sweep"]["description"].as_str().unwrap().contains("dotted spec path"));
    assert!(schema["definitions"]["Slurm"]["properties"]["time"]["description"].as_str().unwrap().contains("--time"));
    let _ = Path::new("");
}

/// The schema and `brasa validate` agree: what one accepts the other accepts, what one refuses
/// the other refuses (a schema looser than validate leaves editors silent on a spec that fails).
#[test]
fn the_schema_and_validate_accept_and_refuse_alike() {
    use common::spec::TinySpec;
    let base = || TinySpec::new("t", "data", 1);
    let sweep = |table: toml::Table| base().insert("sweep", table);
    let cases: Vec<(&str, TinySpec, bool)> = vec![
        ("the tiny spec", base(), true),
        ("a random sweep's choice", sweep(toml::toml! {
            mode = "random"
            trials = 2
            "train.optimizer.lr" = { choice = [1e-3, 2e-3] }
            "train.optimizer.weight_decay" = { uniform = [0, 1] }
        }), true),
        ("no augmentation copies without a chain", base().set("augment.copies", 0i64).set("augment.chain", toml::Value::Array(Vec::new())), true),
        ("lr = 0", base().set("train.optimizer.lr", 0.0), false),
        ("dropout = 1", base().insert("model.dropout", 1.0), false),
        ("drop_path_rate = 1", base().insert("model.drop_path_rate", 1.0), false),
        ("validation = 1", base().set("data.split.validation", 1.0), false),
        ("validation = 0", base().set("data.split.validation", 0.0), false),
        ("warmup_ratio = 1", base().set("train.schedule", toml::toml! {
            name = "linear"
            warmup_ratio = 1.0
        }), false),
        ("eps = 0", base().insert("train.optimizer.eps", 0.0), false),
        ("grad_clip = 0", base().set("train.grad_clip", 0.0), false),
        ("max_steps = 0", base().insert("train.max_steps", 0i64), false),
        ("mistakes = 101", base().insert("report", toml::toml! { mistakes = 101 }), false),
        ("resize = 0", base().set("preprocess.resize", 0i64), false),
    ];
    let mut dir = TestDir::new().images("data", 4, 2, 12);
    for (what, spec, valid) in cases {
        let text = spec.to_string();
        dir = dir.file("case.toml", &text);
        let schema_errors = errors(&text);
        let ran = dir.brasa(["validate", "case.toml"]).output();
        assert_eq!(schema_errors.is_empty(), valid, "{what}: the schema says {schema_errors:?}");
        assert_eq!(ran.status.success(), valid, "{what}: validate says {}", ran.stderr);
    }
}

#[test]
fn shipped_experiments_have_no_spec_error_in_validate_either() {
    for entry in std::fs::read_dir(common::repo_path("experiments")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        assert!(errors(&common::read(&path)).is_empty(), "{}", path.display());
        // exit 2 is a spec error; a dataset not on this machine is another matter
        let ran = TestDir::new().brasa(["validate".as_ref(), path.as_os_str()]).output();
        assert_ne!(ran.status.code(), Some(2), "{}: {}", path.display(), ran.stderr);
    }
}
