//! `brasa index [REPORTS_DIR]`: one page and one CSV of every run under a reports folder.

use std::path::{Path, PathBuf};

use brasa::Result;
use brasa::fmt::display_path;
use brasa::progress::Progress;
use brasa::runs_index::{self, Written};
use clap::Args;

#[derive(Debug, Args)]
pub struct IndexArgs {
    /// The folder runs are written to; every run folder under it is listed.
    #[arg(default_value = runs_index::REPORTS)]
    reports_dir: PathBuf,
}

pub fn execute(args: IndexArgs) -> Result<()> {
    let written = runs_index::write(&args.reports_dir)?;
    warn_about(&written);
    let mut text = format!("{} run(s) under {}\n", written.runs, display_path(&written.root));
    for file in &written.files {
        text.push_str(&format!("{}\n", display_path(file)));
    }
    super::print_out(&text)
}

/// What the index could not read, on stderr.
fn warn_about(written: &Written) {
    for (dir, why) in &written.unreadable {
        eprintln!("warning: {} is not listed: {why}", display_path(dir));
    }
    for (id, why) in &written.warnings {
        eprintln!("warning: {id} is listed without some of its results: {why}");
    }
}

/// After a command wrote under `path`: the runs index of the folder it is under, rewritten (said
/// through `progress`). A failure is a warning: the command's own work is done.
pub fn refresh(path: &Path, progress: &Progress) {
    match runs_index::refresh(path) {
        None => {}
        Some(Ok(written)) => {
            warn_about(&written);
            if let Some(page) = written.files.iter().find(|f| f.ends_with(runs_index::INDEX_HTML)) {
                progress.log(format!("runs index: {} ({} runs)", display_path(page), written.runs));
            }
        }
        Some(Err(e)) => eprintln!("warning: the runs index above {} could not be rewritten: {e}", display_path(path)),
    }
}
