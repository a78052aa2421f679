//! Spec loading and validation: layering, path resolution, and error messages that name the
//! file, the key and the value.

mod common;

use std::path::Path;

use brasa::plan::Plan;
use brasa::spec::{Layers, LoadedSpec, Override};
use common::brasa::TestDir;
use common::spec::TinySpec;

/// A folder holding a tiny dataset and `spec.toml` (the tiny spec with `edit` applied).
fn setup(edit: impl Fn(TinySpec) -> TinySpec) -> TestDir {
    TestDir::new().images("data", 4, 2, 12).spec(&edit(TinySpec::new("t", "data", 1)))
}

fn load(dir: &Path, overrides: &[&str]) -> Result<Plan, String> {
    let layers = Layers { overrides: overrides.iter().map(|o| o.parse::<Override>().unwrap()).collect(), sweep: None, unset: Vec::new(), env: false };
    let loaded = LoadedSpec::load(&dir.join("spec.toml"), &layers).map_err(|e| e.to_string())?;
    Plan::resolve(&loaded).map_err(|e| e.to_string())
}

#[test]
fn unknown_key_names_file_and_key_and_suggests_the_closest() {
    let dir = setup(|s| s.rename("train.epochs", "epoch"));
    let err = load(dir.path(), &[]).unwrap_err();
    assert!(err.contains("spec.toml"), "{err}");
    assert!(err.contains("`train.epoch`: unknown key"), "{err}");
    assert!(err.contains("did you mean `train.epochs`?"), "{err}");
}

#[test]
fn unknown_nested_key_and_unknown_section() {
    let dir = setup(|s| s.rename("train.optimizer.lr", "lrate"));
    let err = load(dir.path(), &[]).unwrap_err();
    assert!(err.contains("`train.optimizer.lrate`: unknown key; did you mean `train.optimizer.lr`?"), "{err}");
    let dir = setup(|s| s.rename("runtime", "runtim"));
    let err = load(dir.path(), &[]).unwrap_err();
    assert!(err.contains("`runtim`: unknown key; did you mean `runtime`?"), "{err}");
}

#[test]
fn wrong_type_names_the_value() {
    let dir = setup(|s| s.set("train.epochs", "ten"));
    let err = load(dir.path(), &[]).unwrap_err();
    assert!(err.contains("spec.toml: `train.epochs` = \"ten\": expected"), "{err}");
}

#[test]
fn out_of_range_values_are_all_reported() {
    let dir = setup(|s| s.set("data.split.validation", 1.5).set("augment.chain[3].p", 2.0).set("augment.chain[4].p", 2.0));
    let err = load(dir.path(), &[]).unwrap_err();
    assert!(err.contains("spec.toml: `data.split.validation` = 1.5: must be in (0, 1)"), "{err}");
    assert!(err.contains("`augment.chain[3].p` = 2: must be in [0, 1]"), "{err}");
    assert!(err.contains("`augment.chain[4].p` = 2: must be in [0, 1]"), "{err}");
}

#[test]
fn missing_extends_file_names_the_extending_file() {
    let dir = setup(|s| s.insert("extends", "nope.toml"));
    let err = load(dir.path(), &[]).unwrap_err();
    assert!(err.contains("spec.toml: `extends` = \"nope.toml\""), "{err}");
    assert!(err.contains("cannot read spec file nope.toml") || err.contains("cannot read spec file"), "{err}");
}

#[test]
fn extends_chain_layers_and_resolves_paths_against_the_setting_file() {
    let dir = setup(|s| s);
    // base/base.toml sets data.root relative to base/, child overrides the epochs
    let base = dir.path().join("base");
    std::fs::create_dir_all(&base).unwrap();
    TinySpec::new("base", "../data", 5).write(&base.join("root.toml"));
    std::fs::write(base.join("mid.toml"), "extends = \"root.toml\"\n[train]\nepochs = 4\nbatch_size = 4\n").unwrap();
    std::fs::write(dir.path().join("spec.toml"), "extends = \"base/mid.toml\"\n[experiment]\nname = \"child\"\n[train]\nepochs = 3\n").unwrap();
    let plan = load(dir.path(), &[]).unwrap();
    assert_eq!(plan.name, "child");
    assert_eq!(plan.train.epochs, 3);
    assert_eq!(plan.train.batch_size, 4);
    assert_eq!(plan.data.layout.root, dir.path().join("data"));
}

#[test]
fn extends_cycle_is_an_error() {
    let dir = setup(|s| s);
    std::fs::write(dir.path().join("a.toml"), "extends = \"b.toml\"\n").unwrap();
    std::fs::write(dir.path().join("b.toml"), "extends = \"a.toml\"\n").unwrap();
    let layers = Layers::default();
    let err = LoadedSpec::load(&dir.path().join("a.toml"), &layers).unwrap_err().to_string();
    assert!(err.contains("extends chain loops back"), "{err}");
}

#[test]
fn set_overrides_win_and_their_errors_name_the_flag() {
    let dir = setup(|s| s);
    let plan = load(dir.path(), &["train.epochs=7", "train.optimizer.lr=5e-4", "augment.mode=\"online\""]).unwrap();
    assert_eq!(plan.train.epochs, 7);
    assert_eq!(plan.train.lr, 5e-4);
    let err = load(dir.path(), &["train.optimizer.lr=-1"]).unwrap_err();
    assert!(err.contains("--set: `train.optimizer.lr` = -1: must be in (0, ∞)"), "{err}");
    let err = load(dir.path(), &["train.epochz=3"]).unwrap_err();
    assert!(err.contains("--set: `train.epochz`: unknown key; did you mean `train.epochs`?"), "{err}");
}

#[test]
fn a_set_number_or_boolean_is_the_text_typed_where_the_key_wants_a_string() {
    let dir = setup(|s| s);
    let name = |value: &str| {
        let layers = Layers { overrides: vec![format!("experiment.name={value}").parse().unwrap()], ..Layers::default() };
        LoadedSpec::load(&dir.path().join("spec.toml"), &layers).map(|l| l.spec.experiment.name).map_err(|e| e.to_string())
    };
    for typed in ["nan", "2024", "1e-4", "true", "inf"] {
        assert_eq!(name(typed).unwrap(), typed);
    }
    assert_eq!(name("\"q\"").unwrap(), "q");
    let err = name("[1]").unwrap_err();
    assert!(err.contains("`experiment.name` = [1]: expected a string, found sequence"), "{err}");
    // a key that wants a number still refuses a string's look-alike
    let err = load(dir.path(), &["train.epochs=nan"]).unwrap_err();
    assert!(err.contains("`train.epochs` = NaN: expected usize"), "{err}");
}

#[test]
fn unknown_op_and_architecture_get_suggestions() {
    let dir = setup(|s| s.set("augment.chain[4].op", "verticalflip").set("model.arch", "cvt-tiyn"));
    let err = load(dir.path(), &[]).unwrap_err();
    assert!(err.contains("did you mean \"vertical_flip\"?"), "{err}");
    let dir = setup(|s| s.set("model.arch", "cvt-tiyn"));
    let err = load(dir.path(), &[]).unwrap_err();
    assert!(err.contains("`model.arch` = \"cvt-tiyn\": unknown architecture"), "{err}");
    assert!(err.contains("did you mean \"cvt-tiny\"?"), "{err}");
}

#[test]
fn normalize_in_the_chain_is_refused_with_the_reason() {
    let dir = setup(|s| s.insert("augment.chain[1]", toml::toml! { op = "normalize" }));
    let err = load(dir.path(), &[]).unwrap_err();
    assert!(err.contains("`augment.chain[1].op` = \"normalize\""), "{err}");
    assert!(err.contains("preprocess.mean"), "{err}");
}

#[test]
fn chain_and_model_input_sizes_must_agree() {
    let dir = setup(|s| s.set("augment.chain[2].size", 20));
    let err = load(dir.path(), &[]).unwrap_err();
    assert!(err.contains("the chain produces 20x20 images but the model input (preprocess) is 16x16"), "{err}");
}

#[test]
fn missing_data_root_without_source_is_an_error() {
    let dir = setup(|s| s.set("data.root", "elsewhere"));
    let err = load(dir.path(), &[]).unwrap_err();
    assert!(err.contains("`data.root` = \"elsewhere\""), "{err}");
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn cli_validate_prints_resolved_toml_and_split_or_fails_with_exit_code() {
    let dir = setup(|s| s);
    let text = dir.brasa(["validate", "spec.toml"]).succeeds().stdout;
    // the output is TOML that parses back, with defaults filled in
    let table: toml::Table = toml::from_str(&text).unwrap();
    assert_eq!(table["train"]["optimizer"]["betas"].as_array().unwrap().len(), 2);
    assert!(text.contains("#   total"), "{text}");

    dir.brasa(["validate", "spec.toml"])
        .env("BRASA_TRAIN__EPOCHS", "many")
        .stderr_contains("environment variable BRASA_TRAIN__EPOCHS: `train.epochs` = \"many\"")
        .fails();
}

#[test]
fn unset_removes_an_inherited_key_or_table_and_names_a_key_nothing_sets() {
    // a base spec whose expected file counts and gradient clip the child inherits
    let dir = TestDir::new().images("data", 4, 2, 12).spec(&TinySpec::new("t", "data", 1));
    let base = std::fs::read_to_string(dir.path().join("spec.toml")).unwrap();
    let dir = dir
        .file("spec.toml", format!("{base}\n[data.expect.train]\ncat = 99\n\n[data.expect.test]\ncat = 99\n"))
        .file("child.toml", "extends = \"spec.toml\"\n[experiment]\nname = \"child\"\n");
    dir.brasa(["validate", "child.toml"]).stderr_contains("99").exits_with(3);

    let ran = dir.brasa(["validate", "child.toml", "--unset", "data.expect", "--unset", "train.grad_clip"]).succeeds();
    assert!(!ran.stdout.contains("expect") && !ran.stdout.contains("grad_clip"), "{}", ran.stdout);
    // one table of a table, and --set after --unset gives the key a new value
    let ran = dir.brasa(["validate", "child.toml", "--unset", "data.expect.train", "--unset", "data.expect.test", "--unset", "train.grad_clip", "--set", "train.grad_clip=2.5"]).succeeds();
    assert!(ran.stdout.contains("grad_clip = 2.5"), "{}", ran.stdout);

    // a key no layer sets is most likely a typo: said, with the closest key
    dir.brasa(["validate", "child.toml", "--unset", "train.grad_clp"])
        .stderr_contains("--unset: `train.grad_clp`: is not set by child.toml nor anything it extends")
        .stderr_contains("did you mean `train.grad_clip`?")
        .exits_with(2);
    dir.brasa(["validate", "child.toml", "--unset", "train.epochs=3"]).stderr_contains("--unset removes a key").exits_with(2);
    dir.brasa(["validate", "child.toml", "--unset", "train..epochs"]).stderr_contains("not a dotted key path").exits_with(2);
    // environment variables are a layer --unset removes from too
    dir.brasa(["validate", "child.toml", "--unset", "train.grad_clip", "--unset", "data.expect"]).env("BRASA_TRAIN__GRAD_CLIP", "3.5").succeeds();
}

#[test]
fn values_that_cannot_work_with_this_data_are_named_with_the_numbers() {
    // 4 images per class, validation 0.25: 9 training images, 18 samples an epoch with one augmented copy
    let dir = setup(|s| s.set("train.batch_size", 100_000_000_000i64));
    let ran = dir.brasa(["validate", "spec.toml"]).exits_with(2);
    assert!(ran.stderr.contains("`train.batch_size` = 100000000000: is larger than the training set: an epoch has 18 samples (9 images and 9 augmented copies)"), "{}", ran.stderr);
    dir.brasa(["run", "spec.toml", "--out", "run"]).stderr_contains("is larger than the training set").exits_with(2);
    assert!(!dir.path().join("run/meta.json").exists());

    // an evaluation batch whose input alone outgrows the memory
    let dir = setup(|s| s.insert("train.eval_batch_size", 1_000_000_000i64).set("preprocess.resize", vec![40_000, 40_000]).set("augment.chain", Vec::<i64>::new()));
    let ran = dir.brasa(["validate", "spec.toml"]).exits_with(2);
    assert!(ran.stderr.contains("`train.eval_batch_size` = 1000000000: cannot fit: one evaluation batch of 6 images at 40000x40000 is 115.2 GB of input alone"), "capped at the largest part evaluated: {}", ran.stderr);

    // a validation fraction that leaves a class out of the validation part
    let dir = TestDir::new().images("data", 4, 2, 12).file("data/train/owl/owl_extra.png", std::fs::read(dir.path().join("data/train/owl/owl_000.png")).unwrap()).spec(&TinySpec::new("t", "data", 1).set("data.split.validation", 0.1).insert("data.split.stratify", false));
    let ran = dir.brasa(["validate", "spec.toml"]).exits_with(2);
    assert!(ran.stderr.contains("`data.split.validation` = 0.1: leaves class"), "{}", ran.stderr);
    assert!(ran.stderr.contains("out of the validation part"), "{}", ran.stderr);

    // a centre crop larger than the resize
    let dir = setup(|s| s.insert("preprocess.center_crop", vec![20, 16]));
    dir.brasa(["validate", "spec.toml"]).stderr_contains("`preprocess.center_crop` = [20, 16]: is larger than the resized image (16x16").exits_with(2);
}

#[test]
fn arrays_longer_than_their_field_are_named_not_cut() {
    let dir = setup(|s| s);
    let err = load(dir.path(), &["preprocess.mean=[0.5, 0.5, 0.5, 0.5]", "train.optimizer.betas=[0.9, 0.999, 5.0]"]).unwrap_err();
    assert!(err.contains("--set: `preprocess.mean`: has 4 values; expected 3"), "{err}");
    assert!(err.contains("`train.optimizer.betas`: has 3 values; expected 2"), "{err}");
    // the same lengths pass
    load(dir.path(), &["preprocess.mean=[0.5, 0.5, 0.5]", "train.optimizer.betas=[0.9, 0.999]"]).unwrap();
}

#[test]
fn exponents_in_environment_variables_and_endless_spec_files() {
    let dir = setup(|s| s);
    let text = dir.brasa(["validate", "spec.toml"]).env("BRASA_TRAIN__OPTIMIZER__LR", "1e-4").succeeds().stdout;
    let table: toml::Table = toml::from_str(&text).unwrap();
    assert_eq!(table["train"]["optimizer"]["lr"].as_float(), Some(1e-4), "{text}");
    // a device that never ends is refused at 16 MiB, not read into memory
    dir.brasa(["validate", "/dev/zero"]).stderr_contains("larger than 16 MiB").exits_with(2);
}

#[test]
fn swept_paths_are_relative_to_the_file_that_sweeps_them() {
    let spec = TinySpec::new("t", "../data", 1).insert("sweep", toml::toml! { "data.root" = ["../data"] });
    let dir = TestDir::new().images("data", 4, 2, 12).file("sub/spec.toml", spec.to_string());
    // run from the folder above sub/: "../data" is sub/../data, not ../data of the working directory
    let text = dir.brasa(["validate", "sub/spec.toml"]).succeeds().stdout;
    assert!(text.contains("data.root=\"../data\""), "{text}");
}

#[test]
fn set_and_unset_reach_array_elements_and_swept_keys() {
    let dir = setup(|s| s);
    let plan = load(dir.path(), &["augment.chain[3].p=0.25"]).unwrap();
    assert!(plan.resolved_toml.contains("p = 0.25"), "{}", plan.resolved_toml);
    let err = load(dir.path(), &["augment.chain[3].p=2.0"]).unwrap_err();
    assert!(err.contains("`augment.chain[3].p` = 2: must be in [0, 1]"), "{err}");
    let err = load(dir.path(), &["augment.chain[40].p=0.5"]).unwrap_err();
    assert!(err.contains("--set: `augment.chain[40].p` = 0.5: the list has"), "{err}");
    let err = load(dir.path(), &["train.epochs[0]=1"]).unwrap_err();
    assert!(err.contains("is not a list"), "{err}");

    let spec = TinySpec::new("t", "data", 1).insert("sweep", toml::toml! { "train.optimizer.lr" = [1e-3, 2e-3] });
    let dir = TestDir::new().images("data", 4, 2, 12).spec(&spec);
    // the quoted form and the form brasa's messages print are the same key
    for key in ["sweep.\"train.optimizer.lr\"", "sweep.train.optimizer.lr"] {
        let text = dir.brasa(["validate", "spec.toml", "--set", &format!("{key}=[0.1, 0.2, 0.3]")]).succeeds().stdout;
        assert!(text.contains("train.optimizer.lr=0.3"), "{text}");
        let text = dir.brasa(["validate", "spec.toml", "--unset", key, "--set", "sweep.\"model.dropout\"=[0.1]"]).succeeds().stdout;
        assert!(!text.contains("train.optimizer.lr=") && text.contains("model.dropout=0.1"), "{text}");
    }
    dir.brasa(["validate", "spec.toml", "--set", "sweep.\"train.lr=1"]).stderr_contains("quote is not closed").exits_with(2);
}

#[test]
fn set_of_a_swept_key_or_of_extends_is_refused_not_ignored() {
    let spec = TinySpec::new("t", "data", 1).insert("sweep", toml::toml! { "train.optimizer.lr" = [1e-3, 2e-3] });
    let dir = TestDir::new().images("data", 4, 2, 12).spec(&spec).file("other.toml", "");
    dir.brasa(["validate", "spec.toml", "--set", "train.optimizer.lr=0.05"])
        .stderr_contains("--set: `train.optimizer.lr` = 0.05: is swept by the [sweep] of spec.toml (\"train.optimizer.lr\")")
        .stderr_contains("--set 'sweep.\"train.optimizer.lr\"=[...]'")
        .exits_with(2);
    dir.brasa(["run", "spec.toml", "--dry-run", "--set", "train.optimizer={lr=0.05}"]).stderr_contains("is swept").exits_with(2);
    // a sibling of the swept key is fine
    dir.brasa(["validate", "spec.toml", "--set", "train.optimizer={eps=1e-7}"]).succeeds();

    for args in [["--set", "extends=\"other.toml\""], ["--set", "extends=\"missing.toml\""], ["--unset", "extends"]] {
        dir.brasa(["validate", "spec.toml", args[0], args[1]]).stderr_contains("`extends`: cannot be changed from the command line").exits_with(2);
    }
}

#[test]
fn a_swept_seed_with_repeats_is_a_spec_error() {
    let spec = TinySpec::new("t", "data", 1).insert("sweep", toml::toml! {
        "experiment.seed" = [1, 2]
        repeats = 2
    });
    let dir = TestDir::new().images("data", 4, 2, 12).spec(&spec);
    dir.brasa(["validate", "spec.toml"]).stderr_contains("`sweep.experiment.seed`: is swept while sweep.repeats = 2").exits_with(2);
    dir.brasa(["run", "spec.toml", "--dry-run"]).stderr_contains("`sweep.experiment.seed`").exits_with(2);
    dir.brasa(["validate", "spec.toml", "--set", "sweep.repeats=1"]).succeeds();
}

#[test]
fn threads_are_bounded_and_validate_starts_none() {
    let dir = setup(|s| s);
    let started = std::time::Instant::now();
    dir.brasa(["validate", "spec.toml", "--set", "runtime.threads=100000"])
        .stderr_contains("`runtime.threads` = 100000: must be at most 1024")
        .exits_with(2);
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    dir.brasa(["run", "spec.toml", "--threads", "5000"]).stderr_contains("--threads").exits_with(2);
    dir.brasa(["validate", "spec.toml", "--set", "runtime.threads=1024"]).succeeds();
}

#[test]
fn validate_refuses_what_run_refuses() {
    let dir = setup(|s| s);
    // slurm without a sweep: named as the key it is, not as a flag never given
    let ran = dir.brasa(["validate", "spec.toml", "--set", "launcher.name=\"slurm\""]).stderr_contains("`launcher.name` = \"slurm\": slurm submits the trials of a sweep").exits_with(2);
    assert!(!ran.stderr.contains("--launcher"), "{}", ran.stderr);
    dir.brasa(["run", "spec.toml", "--set", "launcher.name=\"slurm\""]).stderr_contains("`launcher.name`").exits_with(2);
    // pixels normalised beyond what f32 training survives
    dir.brasa(["validate", "spec.toml", "--set", "preprocess.mean=[3e38, 0, 0]", "--set", "preprocess.std=[1e-6, 1, 1]"])
        .stderr_contains("`preprocess.std[0]` = 1e-6: with preprocess.mean[0] = 3e38 normalises pixels")
        .exits_with(2);
    dir.brasa(["validate", "spec.toml", "--set", "preprocess.mean=[1e300, 0, 0]"]).stderr_contains("`preprocess.mean[0]` = 1e300: must be a number that fits in f32").exits_with(2);
}

#[cfg(not(feature = "cuda"))]
#[test]
fn validate_of_a_cuda_spec_fails_like_run_in_a_build_without_cuda() {
    let dir = setup(|s| s);
    let validated = dir.brasa(["validate", "spec.toml", "--set", "runtime.backend=\"cuda\""]).stderr_contains("built without CUDA support").fails();
    let ran = dir.brasa(["run", "spec.toml", "--set", "runtime.backend=\"cuda\""]).stderr_contains("built without CUDA support").fails();
    assert_eq!(validated.status.code(), ran.status.code());
}

#[test]
fn validate_output_works_from_any_folder() {
    let dir = TestDir::new()
        .images("sub/data", 4, 2, 12)
        .file("sub/tpl/report.md.j2", "{{ name }}\n")
        .spec(&TinySpec::new("t", "data", 1).insert("report", toml::toml! { templates = "tpl" }));
    let spec = std::fs::read_to_string(dir.path().join("spec.toml")).unwrap();
    let dir = dir.file("sub/spec.toml", spec);
    let text = dir.brasa(["validate", "sub/spec.toml"]).succeeds().stdout;
    let resolved: toml::Table = toml::from_str(&text).unwrap();
    let templates = resolved["report"]["templates"].as_str().unwrap();
    assert!(Path::new(templates).is_absolute() && templates.ends_with("tpl"), "{templates}");
    let dir = dir.file("elsewhere/again.toml", text.clone());
    dir.brasa(["validate", "elsewhere/again.toml"]).succeeds();
}
