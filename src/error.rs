//! The one error type of the library. Each variant carries what the user needs to fix the
//! problem (the file, the key, the value); the CLI prints it and exits non-zero.

use std::path::PathBuf;

use crate::spec::SpecError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A spec problem, located by file, key and value.
    #[error("{0}")]
    Spec(#[from] SpecError),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// The dataset on disk does not match what the spec says.
    #[error("{0}")]
    Data(String),
    #[error("cannot read image {}: {message}", path.display())]
    Image { path: PathBuf, message: String },
    #[error("download of {url} failed: {message}")]
    Download { url: String, message: String },
    /// The requested compute backend is not available in this build or on this machine.
    #[error("{0}")]
    Backend(String),
    #[error("{0}")]
    Model(String),
    /// A run folder is missing files, holds malformed ones, or belongs to another spec.
    #[error("run folder {}: {message}", path.display())]
    RunDir { path: PathBuf, message: String },
    #[error("training failed: {0}")]
    Train(String),
    #[error("report: {0}")]
    Report(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }

    pub fn run_dir(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::RunDir { path: path.into(), message: message.into() }
    }
}
