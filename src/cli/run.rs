//! `brasa run SPEC`: train and evaluate one experiment into a run folder.

use std::path::PathBuf;

use brasa::Result;
use brasa::plan::Plan;
use brasa::progress::Progress;
use brasa::runner::{self, RunOptions};
use brasa::spec::{Override, display_path};
use clap::Args;

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    spec: super::SpecArgs,
    /// The run folder (default: reports/<experiment>/<timestamp>); an unfinished run of the same
    /// spec there is resumed.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Compute backend, overriding `runtime.backend` (flex, wgpu, cuda).
    #[arg(long, value_name = "NAME")]
    backend: Option<String>,
    /// No progress bars or log lines; only the final summary.
    #[arg(long, short)]
    quiet: bool,
}

pub fn execute(args: RunArgs) -> Result<()> {
    let backend = args.backend.map(|name| Override { key: "runtime.backend".into(), value: name.into() });
    let loaded = args.spec.load(backend)?;
    let plan = Plan::resolve(&loaded)?;
    let progress = if args.quiet { Progress::hidden() } else { Progress::stderr() };
    let outcome = runner::run(&plan, &RunOptions { out: args.out, progress })?;

    let classes = brasa::run_dir::RunDir::open(&outcome.dir)?.read_meta()?.classes;
    let mut text = format!("run folder: {}\n", display_path(&outcome.dir));
    text.push_str(&format!("report:     {}\n", display_path(&outcome.dir.join(brasa::run_dir::REPORT_MD))));
    text.push_str(&format!("wall time:  {}\n", brasa::report::format_duration(outcome.wall_seconds)));
    if let Some(epoch) = outcome.best_epoch {
        text.push_str(&format!("best epoch: {epoch}\n"));
    }
    text.push_str(&format!("validation accuracy: {:.4}  macro F1: {:.4}\n", outcome.val.accuracy, outcome.val.macro_avg.f1));
    if let Some(test) = &outcome.test {
        text.push_str(&format!("test accuracy:       {:.4}  macro F1: {:.4}\n", test.accuracy, test.macro_avg.f1));
        let recalls: Vec<String> =
            classes.iter().zip(&test.per_class).map(|(c, s)| format!("{c} {:.4}", s.recall)).collect();
        text.push_str(&format!("test recall: {}\n", recalls.join(", ")));
    }
    super::print_out(&text)
}
