//! `brasa predict`: classify images with a trained run or a pretrained checkpoint, as CSV.

use std::path::PathBuf;

use brasa::Result;
use brasa::backend::Backend;
use brasa::data::folder::IMAGE_EXTENSIONS;
use brasa::predict::{Predictor, collect_images_and_others};
use brasa::progress::Progress;
use clap::{ArgGroup, Args, ValueEnum};

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("model").required(true).args(["run", "pretrained"])))]
pub struct PredictArgs {
    /// A run folder: its best checkpoint, classes and preprocessing.
    #[arg(long, value_name = "RUN_DIR")]
    run: Option<PathBuf>,
    /// A Hugging Face checkpoint: `hf:org/name[@revision]`, or a file or folder.
    #[arg(long, value_name = "PATH_OR_HF_ID")]
    pretrained: Option<String>,
    /// Preprocessing: the model family's Hugging Face image processor (the default with
    /// --pretrained; with --run it replaces the run's own preprocessing).
    #[arg(long, value_enum)]
    preprocess: Option<PreprocessChoice>,
    /// Images, or folders searched recursively for images.
    #[arg(required = true, value_name = "IMAGE_OR_FOLDER")]
    inputs: Vec<PathBuf>,
    /// Write the CSV here instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Write each class's logit (the model's raw output, full precision) instead of its
    /// probability.
    #[arg(long)]
    logits: bool,
    /// Compute backend: auto (the first GPU, else flex), flex, wgpu, cuda.
    #[arg(long, default_value = "auto")]
    backend: String,
    /// Which GPU when there are several (as `runtime.device`).
    #[arg(long, value_name = "N")]
    device: Option<usize>,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum PreprocessChoice {
    Hf,
}

pub fn execute(args: PredictArgs) -> Result<()> {
    let backend = Backend::parse(&args.backend)
        .ok_or_else(|| brasa::Error::usage("--backend", format!("{:?}: expected auto, flex, wgpu or cuda", args.backend)))?;
    let chosen = backend.choose(args.device)?;
    let device = chosen.device.clone();
    let progress = if args.quiet { Progress::hidden() } else { Progress::stderr() };
    progress.log(format!("device: {}", chosen.info.describe()));
    if args.batch_size == 0 {
        return Err(brasa::Error::usage("--batch-size", "must be at least 1"));
    }
    let (paths, others) = collect_images_and_others(&args.inputs)?;
    if let Some(first) = others.first() {
        // said whatever --quiet says, as unreadable images are: no file is left out unsaid
        eprintln!(
            "warning: left out {} file(s) of the folders given that are not images brasa reads ({}), e.g. {}",
            others.len(),
            IMAGE_EXTENSIONS.join(", "),
            brasa::fmt::display_path(first)
        );
    }
    let predictor = match (&args.run, &args.pretrained) {
        (Some(run), _) => Predictor::from_run(run, args.preprocess.is_some(), &device)?,
        (None, Some(pretrained)) => Predictor::from_pretrained(pretrained, &device, &progress)?,
        (None, None) => unreachable!("clap requires one of --run / --pretrained"),
    };
    progress.log(format!("predicting {} image(s) with {}", paths.len(), predictor.source));
    let predicted = predictor.predict(&paths, args.batch_size, &device, &progress)?;
    // the files that cannot be read are said whatever --quiet says; the others get their rows
    for bad in &predicted.unreadable {
        eprintln!("cannot read {}: {}", brasa::fmt::display_path(&bad.path), bad.message);
    }
    if predicted.paths.is_empty() {
        let shown = predicted.unreadable.iter().take(20).map(|u| format!("{}: {}", brasa::fmt::display_path(&u.path), u.message)).collect();
        return Err(brasa::Error::Unreadable { count: predicted.unreadable.len(), per_class: Vec::new(), shown, list: None });
    }
    if !predicted.unreadable.is_empty() {
        eprintln!("warning: {} of {} image(s) cannot be read and have no row; the other {} are classified", predicted.unreadable.len(), paths.len(), predicted.paths.len());
    }
    let mut buffer = Vec::new();
    let values = if args.logits { &predicted.logits } else { &predicted.probabilities };
    predictor.write_csv(&mut buffer, &predicted.paths, values, args.logits)?;
    match &args.out {
        Some(file) => brasa::atomic_file::write_atomic(file, &buffer),
        None => super::print_out(&String::from_utf8_lossy(&buffer)),
    }
}
