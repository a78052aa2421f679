//! The slow path on the real brain-MRI dataset: split counts and the shipped experiments.

mod common;

use std::path::Path;

use brasa::data::{Dataset, Layout, SplitRule};
use common::brasa::Brasa;
use common::real_data;

#[test]
fn stratified_split_gives_the_reference_counts() {
    let layout = Layout { root: real_data(), train: "Training".into(), test: Some("Testing".into()), classes: None };
    let dataset = Dataset::scan(&layout, SplitRule { validation: 0.2, stratify: true, seed: 42, group_duplicates: false }).unwrap();
    assert_eq!(dataset.classes, ["glioma_tumor", "meningioma_tumor", "no_tumor", "pituitary_tumor"]);
    let counts = dataset.counts();
    assert_eq!(counts.train, [661, 657, 316, 662]);
    assert_eq!(counts.val, [165, 165, 79, 165]);
    assert_eq!(counts.test, [100, 115, 105, 74]);
    assert!(dataset.skipped.is_empty(), "{:?}", dataset.skipped);
    // another seed moves images between train and validation but keeps the counts
    let other = Dataset::scan(&layout, SplitRule { validation: 0.2, stratify: true, seed: 7, group_duplicates: false }).unwrap();
    assert_eq!(other.counts(), counts);
    assert_ne!(other.split, dataset.split);
}

#[test]
fn shipped_experiments_validate_and_print_the_split() {
    let data = real_data();
    for spec in ["experiments/quickstart.toml", "experiments/reference.toml"] {
        // point the spec at wherever the dataset is on this machine
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let text = Brasa::new(root, ["validate", spec, "--set", &format!("data.root={:?}", data.display().to_string())]).succeeds().stdout;
        assert!(text.contains("#   glioma_tumor         661     165     100"), "{spec}:\n{text}");
        assert!(text.contains("#   total               2296     574     394"), "{spec}:\n{text}");
    }
}
