//! Helpers shared by the integration tests, one concept a module:
//!
//! - [`brasa`]: a temporary folder to run the `brasa` binary in, and what the run must print;
//! - [`browser`]: pages checked in headless Chromium, at desktop and phone widths;
//! - [`spec`]: the tiny spec, edited key by key;
//! - [`images`]: synthetic pictures and image folders;
//! - [`hf`]: the Hugging Face fixtures, models built from them, and comparisons;
//! - [`http`]: a local file server;
//!
//! and here, reading what a run wrote and finding the real dataset.

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

pub mod brasa;
pub mod browser;
pub mod hf;
pub mod http;
pub mod images;
pub mod spec;

use std::path::{Path, PathBuf};

/// Held by a test while it draws random numbers on flex, whose generator is global to the test
/// binary's process: tests that seed it and compare what it drew take turns.
pub fn flex_rng() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A text file's contents (panicking with its path).
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A JSON file's contents.
pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The header row of a CSV file.
pub fn csv_header(path: &Path) -> Vec<String> {
    let mut reader = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    reader.headers().unwrap().iter().map(String::from).collect()
}

/// All data rows of a CSV file.
pub fn csv_rows(path: &Path) -> Vec<Vec<String>> {
    let mut reader = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    reader.records().map(|r| r.unwrap().iter().map(String::from).collect()).collect()
}

/// `relative` in the repository (the shipped experiments, say).
pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// The real dataset: `data/brain-tumor-mri` in the repository, else `../shared/data/...`.
pub fn real_data() -> PathBuf {
    let candidates = [repo_path("data/brain-tumor-mri"), repo_path("../shared/data/brain-tumor-mri")];
    candidates.iter().find(|p| p.join("Training").is_dir()).cloned().unwrap_or_else(|| {
        panic!(
            "the brain-MRI dataset is needed for this test: link it as data/brain-tumor-mri \
             (see data/README.md); looked in {candidates:?}"
        )
    })
}
