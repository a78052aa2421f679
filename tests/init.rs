//! `brasa init DATA_ROOT`: a commented spec for an image folder that `brasa validate` accepts and
//! `brasa run` trains as is, for the layouts people have and with clear errors for the others.

mod common;

use common::brasa::TestDir;

#[test]
fn init_writes_a_spec_that_validates_and_runs() {
    let dir = TestDir::new().images("pictures", 6, 2, 40);
    dir.brasa(["init", "pictures", "--model", "cvt-tiny", "--out", "specs/pictures.toml"]).stderr_contains("3 classes, train train (18 images), test test (6 images)").succeeds();
    let spec = common::read(&dir.path().join("specs/pictures.toml"));
    assert!(spec.starts_with("#:schema "), "{spec}");
    for line in ["root = \"../pictures\"", "train = \"train\"", "test = \"test\"", "[data.expect.train]", "arch = \"cvt-tiny\"", "resize = [32, 32]"] {
        assert!(spec.contains(line), "the spec lacks {line:?}:\n{spec}");
    }
    assert!(spec.lines().filter(|l| l.trim_start().starts_with('#')).count() >= 8, "commented:\n{spec}");
    dir.brasa(["validate", "specs/pictures.toml"]).stdout_contains("arch = \"cvt-tiny\"").succeeds();
    // as written (one epoch, to keep the test short)
    dir.brasa(["run", "specs/pictures.toml", "--set", "train.epochs=1", "--out", "run", "--quiet"]).succeeds();
    assert!(dir.path().join("run/meta.json").is_file());
    // it does not overwrite
    dir.brasa(["init", "pictures", "--out", "specs/pictures.toml"]).stderr_contains("--force").exits_with(2);
    dir.brasa(["init", "pictures", "--out", "specs/pictures.toml", "--force", "--model", "cvt-13"]).succeeds();
    let spec = common::read(&dir.path().join("specs/pictures.toml"));
    assert!(spec.contains("pretrained = \"hf:microsoft/cvt-13\"") && spec.contains("preset = \"hf\""), "{spec}");
}

#[test]
fn class_folders_at_the_root_are_one_pool() {
    let dir = TestDir::new().images("pictures", 5, 0, 40);
    dir.brasa(["init", "pictures/train", "--model", "cvt-tiny", "--out", "flat.toml"]).succeeds();
    let spec = common::read(&dir.path().join("flat.toml"));
    assert!(spec.contains("train = \".\"") && spec.contains("no test folder"), "{spec}");
    dir.brasa(["validate", "flat.toml"]).succeeds();
}

#[test]
fn folders_init_cannot_read_are_clear_errors() {
    let dir = TestDir::new().images("a", 2, 2, 40).images("b", 2, 2, 40).file("empty/.keep", "");
    // two split-like folders, neither named like a training split
    std::fs::rename(dir.path().join("a/train"), dir.path().join("a/first")).unwrap();
    std::fs::rename(dir.path().join("a/test"), dir.path().join("a/second")).unwrap();
    dir.brasa(["init", "a"]).stderr_contains("none is named like a training split").exits_with(3);
    dir.brasa(["init", "empty"]).stderr_contains("no class folders").exits_with(3);
    dir.brasa(["init", "missing"]).stderr_contains("is not a folder").exits_with(3);
    dir.brasa(["init", "b", "--model", "resnet"]).stderr_contains("expected cvt-13, vit-b16 or cvt-tiny").exits_with(2);
}

#[test]
fn a_few_images_per_class_get_a_validation_fraction_that_keeps_every_class_on_both_sides() {
    let dir = TestDir::new().images("few", 2, 0, 40);
    dir.brasa(["init", "few/train", "--model", "cvt-tiny", "--out", "few.toml"]).succeeds();
    let spec = common::read(&dir.path().join("few.toml"));
    // 0.2 of 2 images per class leaves some class out of the validation part
    assert!(!spec.contains("validation = 0.2 "), "{spec}");
    dir.brasa(["validate", "few.toml"]).succeeds();
    // what no fraction mends is an error, and no spec is written
    let dir = TestDir::new().images("pictures", 3, 1, 40).file("pictures/train/empty_class/.keep", "");
    dir.brasa(["init", "pictures", "--out", "p.toml"]).stderr_contains("does not pass brasa validate").stderr_contains("empty_class holds no images").exits_with(3);
    assert!(!dir.path().join("p.toml").exists());
}
