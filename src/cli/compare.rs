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
    /// Write the markdown here instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

pub fn execute(args: CompareArgs) -> Result<()> {
    let runs = args.runs.iter().map(|dir| RunPredictions::load(dir)).collect::<Result<Vec<_>>>()?;
    let mut text = String::from("# Paired comparison on the test set\n\n");
    for other in &runs[1..] {
        let comparison = compare::compare(&runs[0], other)?;
        text.push_str(&compare::markdown(&comparison));
        text.push('\n');
    }
    match &args.out {
        Some(file) => brasa::atomic_file::write_atomic(file, text.as_bytes()),
        None => super::print_out(&text),
    }
}
