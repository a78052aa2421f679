//! `brasa report RUN_DIR`: rebuild charts, report and TensorBoard events from the run folder's
//! files alone.

use std::path::PathBuf;

use brasa::Result;
use brasa::report;
use brasa::run_dir::RunDir;
use brasa::fmt::display_path;
use clap::Args;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A run folder written by `brasa run`.
    run_dir: PathBuf,
}

pub fn execute(args: ReportArgs) -> Result<()> {
    let run = RunDir::open(&args.run_dir)?;
    let mut rendered = report::render(&run)?;
    rendered.files.extend(brasa::tensorboard::write(&run)?);
    let listing: String = rendered.files.iter().map(|file| format!("{}\n", display_path(&run.path(file)))).collect();
    super::print_out(&listing)?;
    super::index::refresh(run.root(), &brasa::progress::Progress::stderr());
    Ok(())
}
