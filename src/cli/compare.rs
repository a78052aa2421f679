//! `brasa compare RUN_A RUN_B [...]`: each run against the first, on the same test images.

use std::path::PathBuf;

use brasa::Result;
use brasa::compare::{self, RunPredictions};
use clap::Args;

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Run folders; the first is the baseline the others are compared with.
    #[arg(required = true, num_args = 2.., value_name = "RUN_DIR")]
    runs: Vec<PathBuf>,
    /// Write the markdown here instead of standard output, making its folder (the runs index links
    /// `reports/compare/A--vs--B.md`, with the run folders' `/` as `__`).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

pub fn execute(args: CompareArgs) -> Result<()> {
    let mut runs = args.runs.iter().map(|dir| RunPredictions::load(dir)).collect::<Result<Vec<_>>>()?;
    compare::distinguish(&mut runs);
    let mut text = String::from("# Paired comparison on the test set\n\n");
    for other in &runs[1..] {
        let comparison = compare::compare(&runs[0], other)?;
        text.push_str(&compare::markdown(&comparison));
        text.push('\n');
    }
    match &args.out {
        Some(file) => {
            if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|e| brasa::Error::io(parent, e))?;
            }
            brasa::atomic_file::write_atomic(file, text.as_bytes())?;
            // the runs index links comparisons written into its compare/ folder
            super::index::refresh(file, &brasa::progress::Progress::stderr());
            Ok(())
        }
        None => super::print_out(&text),
    }
}
