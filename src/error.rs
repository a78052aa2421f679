//! The one error type of the library: a variant per kind of failure, with the fields the user
//! needs to fix it (the flag, the file, the key, the value), and the process exit code
//! ([`Error::exit_code`]) that scripts and cluster jobs can act on.
//!
//! | code | meaning                                                                  |
//! |------|--------------------------------------------------------------------------|
//! | 0    | success                                                                  |
//! | 2    | usage or spec: a bad flag, a spec key or value (nothing ran)             |
//! | 3    | data: an unreadable image, a download, a split that fails                |
//! | 4    | training: the model, the device, a diverged loss, failed sweep trials    |
//! | 5    | files: a run or sweep folder or another file cannot be read or written   |
//! | 6    | report: training finished and was saved, but its report failed          |
//! | 7    | cluster: a Slurm command (sbatch, squeue, scancel) is missing or failed  |
//! | 130  | interrupted: a signal (Ctrl-C, SIGTERM, SIGUSR1) after a checkpoint, or  |
//! |      | the sweep that started a trial is gone                                   |

use std::path::PathBuf;

use crate::spec::SpecError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A command-line flag with a value that cannot be used (`message` reads on from the flag).
    #[error("{flag} {message}")]
    Usage { flag: String, message: String },
    /// A spec problem, located by file, key and value.
    #[error("{0}")]
    Spec(#[from] SpecError),
    /// `data.root` is not there and the spec names no `data.source` to fetch it from.
    #[error("data.root {} does not exist", root.display())]
    DataRootMissing { root: PathBuf },
    /// The dataset on disk does not match what the spec says, or cannot be read.
    #[error("{0}")]
    Data(String),
    #[error("cannot read image {}: {message}", path.display())]
    Image { path: PathBuf, message: String },
    /// Files of the dataset that cannot be read (`data.unreadable = "error"`): how many per
    /// class, the first ones, and the file listing them all.
    #[error("{}", unreadable_message(*count, per_class, shown, list.as_deref()))]
    Unreadable { count: usize, per_class: Vec<(String, usize)>, shown: Vec<String>, list: Option<PathBuf> },
    /// A signal stopped training once the step in progress was done and a checkpoint saved;
    /// `resume` is the command that continues it, when the caller knows it.
    #[error("{}", interrupted_message(signal, *step, *epoch, run_dir.as_deref(), resume.as_deref()))]
    Interrupted { signal: String, step: usize, epoch: usize, run_dir: Option<PathBuf>, resume: Option<String> },
    /// A signal stopped a sweep: its running trials were passed the signal and saved checkpoints.
    #[error("{signal}: stopped the sweep; {running} running trial(s) saved a checkpoint; the same command resumes it")]
    SweepInterrupted { signal: String, running: usize },
    /// `data.split.group_duplicates` would leave the training or validation part empty.
    #[error(
        "data.split.group_duplicates leaves the {part} part empty: the largest duplicate group of the training folder holds {largest} of its {total} images"
    )]
    GroupingEmptiesPart { part: &'static str, largest: usize, total: usize },
    #[error("download of {url} failed: {message}")]
    Download { url: String, message: String },
    /// The requested compute backend is not available in this build or on this machine.
    #[error("{0}")]
    Backend(String),
    /// A model or checkpoint that cannot be built, read or used.
    #[error("{0}")]
    Model(String),
    /// The loss stopped being a number.
    #[error("training failed: the loss became {loss} at step {step} (epoch {epoch}); lower train.optimizer.lr or set train.grad_clip")]
    Diverged { loss: f64, step: usize, epoch: usize },
    #[error("training failed: {0}")]
    Train(String),
    /// Some trials of a sweep did not complete; `trials.csv` says which and why.
    #[error("{failed} of {total} trials did not complete (see {}); running the same command again retries them", csv.display())]
    TrialsFailed { failed: usize, total: usize, csv: PathBuf },
    /// A run folder is missing files, holds malformed ones, or belongs to another spec.
    #[error("run folder {}: {message}", path.display())]
    RunDir { path: PathBuf, message: String },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("report: {0}")]
    Report(String),
    /// A Slurm command is missing or failed (`command` as run, `message` from it or about it).
    #[error("{command}: {message}")]
    Cluster { command: String, message: String },
    /// Training finished and its files are saved, but the report could not be rendered.
    #[error("training finished but the report could not be written ({source}); rebuild it with `brasa report {}`", run_dir.display())]
    ReportAfterTraining {
        run_dir: PathBuf,
        #[source]
        source: Box<Error>,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }

    pub fn run_dir(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::RunDir { path: path.into(), message: message.into() }
    }

    pub fn usage(flag: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Usage { flag: flag.into(), message: message.into() }
    }

    /// The process exit code for this error (see the table in this module's documentation).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage { .. } | Self::Spec(_) => 2,
            Self::DataRootMissing { .. } | Self::Data(_) | Self::Image { .. } | Self::Unreadable { .. } | Self::GroupingEmptiesPart { .. } | Self::Download { .. } => 3,
            Self::Backend(_) | Self::Model(_) | Self::Diverged { .. } | Self::Train(_) | Self::TrialsFailed { .. } => 4,
            Self::RunDir { .. } | Self::Io { .. } => 5,
            Self::Report(_) | Self::ReportAfterTraining { .. } => 6,
            Self::Cluster { .. } => 7,
            Self::Interrupted { .. } | Self::SweepInterrupted { .. } => EXIT_INTERRUPTED,
        }
    }
}

fn interrupted_message(signal: &str, step: usize, epoch: usize, run_dir: Option<&std::path::Path>, resume: Option<&str>) -> String {
    let mut text = format!("{signal}: stopped after step {step} (epoch {epoch}) and saved a checkpoint");
    if let Some(dir) = run_dir {
        text.push_str(&format!(" in {}", crate::fmt::display_path(dir)));
    }
    match resume {
        Some(command) => text.push_str(&format!("; the same command resumes it at step {}:\n  {command}", step + 1)),
        None => text.push_str(&format!("; running it again resumes at step {}", step + 1)),
    }
    text
}

fn unreadable_message(count: usize, per_class: &[(String, usize)], shown: &[String], list: Option<&std::path::Path>) -> String {
    // without classes, the files were named on the command line (`brasa predict`)
    let classes: Vec<String> = per_class.iter().map(|(class, n)| format!("{class} {n}")).collect();
    let mut text = if classes.is_empty() {
        format!("none of the {count} image file(s) can be read:")
    } else {
        format!("{count} image file(s) of the dataset cannot be read ({}):", classes.join(", "))
    };
    for line in shown {
        text.push_str(&format!("\n  {line}"));
    }
    if count > shown.len() {
        text.push_str(&format!("\n  … and {} more", count - shown.len()));
    }
    if let Some(list) = list {
        text.push_str(&format!("\nall {count} are listed in {}", crate::fmt::display_path(list)));
    }
    if !classes.is_empty() {
        text.push_str("\nfix or remove them, or set data.unreadable = \"skip\" (e.g. --set data.unreadable=skip) to leave them out of the run");
    }
    text
}

/// Exit code of a process stopped by Ctrl-C (128 + SIGINT), as shells report it.
pub const EXIT_INTERRUPTED: u8 = 130;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_failure_has_its_documented_exit_code() {
        assert_eq!(Error::usage("--threads", "must be at least 1").exit_code(), 2);
        assert_eq!(Error::DataRootMissing { root: "data".into() }.exit_code(), 3);
        assert_eq!(Error::GroupingEmptiesPart { part: "validation", largest: 3, total: 4 }.exit_code(), 3);
        assert_eq!(Error::Diverged { loss: f64::NAN, step: 3, epoch: 1 }.exit_code(), 4);
        assert_eq!(Error::TrialsFailed { failed: 1, total: 2, csv: "trials.csv".into() }.exit_code(), 4);
        assert_eq!(Error::io("x", std::io::Error::other("disk full")).exit_code(), 5);
        let after = Error::ReportAfterTraining { run_dir: "run".into(), source: Box::new(Error::Report("no template".into())) };
        assert_eq!(after.exit_code(), 6);
        assert!(std::error::Error::source(&after).is_some(), "the report's own error is kept as the source");
        assert_eq!(Error::Cluster { command: "sbatch".into(), message: "not found".into() }.exit_code(), 7);
    }
}
