//! `brasa data audit ROOT [--out DIR]`: exact and near duplicates, leakage between splits,
//! conflicting labels and unreadable files of an image folder.

use std::path::PathBuf;

use brasa::Result;
use brasa::audit::{self, NEAR_THRESHOLD, PHASH_BITS, write};
use brasa::progress::Progress;
use brasa::fmt::display_path;
use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct DataArgs {
    #[command(subcommand)]
    command: DataCommand,
}

#[derive(Debug, Subcommand)]
enum DataCommand {
    /// Find duplicate pictures (exact and near), split leakage, label conflicts and unreadable
    /// files in ROOT/<split>/<class>/<image>.
    Audit(AuditArgs),
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The dataset: a folder of split folders (e.g. Training, Testing) of class folders.
    root: PathBuf,
    /// Write duplicates.csv, audit.md and thumbs/ here (created if needed); without it the
    /// summary goes to standard output.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Largest pHash Hamming distance (of 256 bits) between near duplicates.
    #[arg(long, value_name = "BITS", default_value_t = NEAR_THRESHOLD,
          value_parser = clap::value_parser!(u32).range(0..=PHASH_BITS as i64))]
    threshold: u32,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

pub fn execute(args: DataArgs) -> Result<()> {
    match args.command {
        DataCommand::Audit(args) => execute_audit(args),
    }
}

fn execute_audit(args: AuditArgs) -> Result<()> {
    let progress = if args.quiet { Progress::hidden() } else { Progress::stderr() };
    let found = audit::audit(&args.root, args.threshold, &progress)?;
    let mut text = write::summary_markdown(&found);
    if let Some(out) = &args.out {
        let written = write::write_all(&found, out)?;
        text.push('\n');
        written.iter().for_each(|path| text.push_str(&format!("wrote {}\n", display_path(path))));
    }
    super::print_out(&text)
}
