//! `brasa report RUN_DIR`: rebuild charts and report from the run folder's files alone.

use std::path::PathBuf;

use brasa::Result;
use brasa::report::{self, Formats};
use brasa::run_dir::RunDir;
use brasa::spec::display_path;
use clap::Args;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A run folder written by `brasa run`.
    run_dir: PathBuf,
}

pub fn execute(args: ReportArgs) -> Result<()> {
    let run = RunDir::open(&args.run_dir)?;
    let rendered = report::render(&run, Formats { markdown: true, html: true })?;
    for file in rendered.files {
        println!("{}", display_path(&run.path(&file)));
    }
    Ok(())
}
