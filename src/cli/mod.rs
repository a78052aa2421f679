//! Command-line interface: one file per subcommand, each a thin layer over the library.

mod bench;
mod cache;
mod compare;
mod data;
mod export;
mod index;
mod init;
mod predict;
mod report;
mod run;
mod schema;
mod status;
mod validate;

use std::path::PathBuf;

use brasa::Result;
use brasa::spec::{Layers, LoadedSpec, Override, UnsetKey};

use clap::{Args, Parser, Subcommand};

/// A declarative experiment runner for image classification.
#[derive(Debug, Parser)]
#[command(name = "brasa", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run an experiment: train, evaluate, and write a run folder with its report.
    Run(run::RunArgs),
    /// Check a spec and print it fully resolved (as TOML), with the data split it gives.
    Validate(validate::ValidateArgs),
    /// Rebuild the charts and report of a run folder from its files.
    Report(report::ReportArgs),
    /// Classify images with a trained run or a pretrained checkpoint (CSV).
    Predict(predict::PredictArgs),
    /// Write a run's model for other tools: `brasa export RUN_DIR OUT_DIR` (Hugging Face layout).
    Export(export::ExportArgs),
    /// Compare runs on the same test images: differences with CIs, McNemar's test, a verdict.
    Compare(compare::CompareArgs),
    /// Every run under a reports folder on one page: `REPORTS_DIR/index.html` and `runs.csv`.
    Index(index::IndexArgs),
    /// Time training, inference and the data path of a spec's model on this machine.
    Bench(bench::BenchArgs),
    /// Write a commented starting spec for an image folder: `brasa init DATA_ROOT --out spec.toml`.
    Init(init::InitArgs),
    /// Inspect a dataset: `brasa data audit ROOT` finds duplicates, leakage and unreadable files.
    Data(data::DataArgs),
    /// Print the JSON Schema of a spec file (completion and checking in editors; see the README).
    Schema(schema::SchemaArgs),
    /// Where each trial of a sweep stands (and its Slurm jobs): `--watch` follows, `--cancel` stops.
    Status(status::StatusArgs),
    /// The shared cache of decoded images: `brasa cache info`, `brasa cache prune --older-than 30d`.
    Cache(cache::CacheArgs),
}

/// The spec and the layers on top of it, shared by the subcommands that read a spec.
#[derive(Debug, Args)]
pub struct SpecArgs {
    /// The experiment spec (TOML).
    spec: PathBuf,
    /// Override a spec key, e.g. `--set train.epochs=3` (repeatable; values parse as TOML).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<Override>,
    /// Remove a key or table the spec (or a spec it extends) sets, e.g. `--unset data.expect`;
    /// it goes back to its default (repeatable; `--set` applies after).
    #[arg(long = "unset", value_name = "KEY")]
    unset: Vec<UnsetKey>,
}

impl SpecArgs {
    /// `--set`, `--unset` and `BRASA_*` environment layers.
    fn layers(&self) -> Layers {
        Layers { overrides: self.overrides.clone(), sweep: None, unset: self.unset.clone(), env: true }
    }

    /// `run SPEC --unset … --set …`: how a sweep's trial process is started with these layers
    /// (the spec made absolute, as the trial may start elsewhere).
    fn run_args(&self) -> Result<Vec<String>> {
        let spec = std::path::absolute(&self.spec).map_err(|e| brasa::Error::io(&self.spec, e))?;
        let mut out = vec!["run".to_string(), spec.display().to_string()];
        for key in &self.unset {
            out.extend(["--unset".into(), key.0.clone()]);
        }
        for o in &self.overrides {
            out.extend(["--set".into(), format!("{}={}", o.key, brasa::spec::render_value(&o.value))]);
        }
        Ok(out)
    }

    /// Loads the spec with its `extends` chain, `BRASA_*` environment variables and `--set`.
    fn load(&self) -> Result<LoadedSpec> {
        Ok(LoadedSpec::load(&self.spec, &self.layers())?)
    }
}

/// Writes `text` to stdout; a closed pipe (`brasa validate spec.toml | head`) is not an error.
fn print_out(text: &str) -> Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(brasa::Error::io("<stdout>", e)),
        _ => Ok(()),
    }
}

pub fn execute(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Run(args) => run::execute(args),
        Command::Validate(args) => validate::execute(args),
        Command::Report(args) => report::execute(args),
        Command::Predict(args) => predict::execute(args),
        Command::Compare(args) => compare::execute(args),
        Command::Index(args) => index::execute(args),
        Command::Export(args) => export::execute(args),
        Command::Data(args) => data::execute(args),
        Command::Init(args) => init::execute(args),
        Command::Bench(args) => bench::execute(args),
        Command::Cache(args) => cache::execute(args),
        Command::Status(args) => status::execute(args),
        Command::Schema(args) => schema::execute(args),
    }
}
