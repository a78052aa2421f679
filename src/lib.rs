//! brasa: a declarative experiment runner for image classification on burn.
//!
//! The pipeline, one module per stage:
//! `spec` (TOML → [`spec::Spec`]) → `plan` (validated [`plan::Plan`]) → `runner` (one trial:
//! `data` → `model` → `train`) → `run_dir` (the run folder's files) → `report` (charts and
//! documents rendered from the run folder alone). Beside it, `audit` finds duplicate pictures,
//! split leakage and label conflicts in a dataset.

pub mod allocator;
pub mod atomic_file;
pub mod attention_map;
pub mod audit;
pub mod augment;
pub mod backend;
pub mod bench;
pub mod build_info;
pub mod compare;
pub mod data;
pub mod dedup;
pub mod error;
pub mod export;
pub mod fmt;
pub mod init;
pub mod interrupt;
pub mod kernels;
pub mod metrics;
pub mod model;
pub mod nonfinite;
pub mod plan;
pub mod predict;
pub mod progress;
pub mod report;
pub mod run_dir;
pub mod runner;
pub mod runs_index;
pub mod spec;
pub mod stats;
pub mod sweep;
pub mod slurm;
pub mod status;
pub mod sweep_dir;
pub mod tensorboard;
pub mod train;

pub use error::{Error, Result};
