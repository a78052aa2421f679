//! `brasa export`: a trained run as a Hugging Face model folder.

use std::path::PathBuf;

use brasa::Result;
use brasa::predict::Which;
use clap::{Args, ValueEnum};

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The run folder to export.
    run: PathBuf,
    /// The folder to write (replaced only with --force, and only if it is an earlier export).
    out: PathBuf,
    /// The layout to write: `hf`, the Hugging Face one (config.json, model.safetensors,
    /// preprocessor_config.json and a model card README.md).
    #[arg(long, value_enum, default_value = "hf")]
    format: Format,
    /// Which checkpoint: the best epoch (`train.select_best`) or the last one saved.
    #[arg(long, value_enum, default_value = "best")]
    checkpoint: CheckpointChoice,
    /// Replace OUT when it is an earlier export.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Hf,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CheckpointChoice {
    Best,
    Last,
}

pub fn execute(args: ExportArgs) -> Result<()> {
    let which = match args.checkpoint {
        CheckpointChoice::Best => Which::Best,
        CheckpointChoice::Last => Which::Last,
    };
    let Format::Hf = args.format;
    let exported = brasa::export::export_hf(&args.run, which, &args.out, args.force)?;
    eprintln!(
        "exported {} ({}, {} tensors) to {}: {}",
        brasa::fmt::display_path(&args.run),
        exported.checkpoint,
        exported.tensors,
        brasa::fmt::display_path(&exported.folder),
        exported.files.join(", ")
    );
    eprintln!("load it with transformers: AutoModelForImageClassification.from_pretrained({:?})", exported.folder.display().to_string());
    Ok(())
}
