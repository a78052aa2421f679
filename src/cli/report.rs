//! `brasa report RUN_DIR`: rebuild charts, report and TensorBoard events from the run folder's
//! files alone.

use std::path::PathBuf;

use brasa::{Error, Result};
use brasa::report;
use brasa::run_dir::{FolderLock, Holder, RunDir};
use brasa::fmt::display_path;
use clap::Args;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A run folder written by `brasa run`.
    run_dir: PathBuf,
}

pub fn execute(args: ReportArgs) -> Result<()> {
    let run = RunDir::open(&args.run_dir)?;
    // a run still working in the folder writes its own report when it ends; one written now
    // would show it unfinished (and race its files)
    let lock = FolderLock::try_acquire(run.root())?.map_err(|Holder(holder)| {
        Error::run_dir(run.root(), format!("is in use by {holder}; its run writes the report when it ends (brasa report rebuilds it after that)"))
    })?;
    // what the TensorBoard events need (spec.toml, a trial's sweep.toml) is checked before the
    // report rewrites anything: a failure leaves the folder as it was
    let meta = run.read_meta()?;
    // the folder is this process's now: what a killed writer left (a killed `brasa report`'s
    // temporary files; a finished run is never resumed, so nothing else would remove them)
    let removed = run.remove_debris()?;
    if removed > 0 {
        eprintln!("{}: removed {removed} file(s) an interrupted run or report left (unfinished writes, checkpoints no longer in use)", display_path(run.root()));
    }
    if meta.report.tensorboard {
        brasa::tensorboard::encode(&run, &meta)?;
    }
    let mut rendered = report::render(&run)?;
    rendered.files.extend(brasa::tensorboard::write(&run)?);
    let listing: String = rendered.files.iter().map(|file| format!("{}\n", display_path(&run.path(file)))).collect();
    super::print_out(&listing)?;
    // the index reads a locked folder as a running run: this one is not
    drop(lock);
    super::index::refresh(run.root(), &brasa::progress::Progress::stderr());
    Ok(())
}
