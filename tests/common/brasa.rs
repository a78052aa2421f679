//! Running the `brasa` binary the way a user does: [`TestDir`] sets up a temporary folder (images,
//! a spec, other files), [`Brasa`] runs one command in it and checks its exit status and output.
//!
//! ```ignore
//! let dir = TestDir::new().images("data", 12, 4, 20).spec(&TinySpec::new("tiny", "data", 2));
//! let ran = dir.brasa(["run", "spec.toml", "--out", "run"]).stderr_contains("epoch  2/2").succeeds();
//! assert!(dir.path().join("run/report.md").is_file());
//! ```

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use super::images;
use super::spec::TinySpec;

/// A temporary folder for one test, deleted when it is dropped.
pub struct TestDir(tempfile::TempDir);

impl TestDir {
    pub fn new() -> TestDir {
        TestDir(tempfile::tempdir().unwrap())
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }

    /// Striped class pictures at `root` (see [`images::striped_folder`]).
    pub fn images(self, root: &str, train_per_class: usize, test_per_class: usize, size: u32) -> TestDir {
        images::striped_folder(&self.path().join(root), train_per_class, test_per_class, size);
        self
    }

    /// `spec` as `spec.toml`.
    pub fn spec(self, spec: &TinySpec) -> TestDir {
        self.file("spec.toml", spec.to_string())
    }

    /// A file at `path` (relative to the folder), with its parent folders.
    pub fn file(self, path: &str, contents: impl AsRef<[u8]>) -> TestDir {
        let path = self.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        self
    }

    /// `brasa args` in this folder.
    pub fn brasa<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(&self, args: I) -> Brasa {
        Brasa::new(self.path(), args)
    }
}

/// One run of the `brasa` binary built for these tests, and what its output must contain. Ends
/// with [`succeeds`](Self::succeeds), [`fails`](Self::fails) or [`output`](Self::output).
pub struct Brasa {
    command: Command,
    stdout_contains: Vec<String>,
    stderr_contains: Vec<String>,
}

/// What a finished `brasa` printed.
pub struct Ran {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Brasa {
    /// `brasa args` in `dir`.
    pub fn new<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(dir: &Path, args: I) -> Brasa {
        let mut command = Command::new(env!("CARGO_BIN_EXE_brasa"));
        command.current_dir(dir).args(args);
        // a developer's own BRASA_* variables must not leak into the tests
        for (key, _) in std::env::vars() {
            if key.starts_with("BRASA_") {
                command.env_remove(key);
            }
        }
        Brasa { command, stdout_contains: Vec::new(), stderr_contains: Vec::new() }
    }

    /// More arguments after the first ones.
    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> Brasa {
        self.command.args(args);
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Brasa {
        self.command.env(key, value);
        self
    }

    pub fn env_remove(mut self, key: &str) -> Brasa {
        self.command.env_remove(key);
        self
    }

    /// The standard output must contain `text`.
    pub fn stdout_contains(mut self, text: impl Into<String>) -> Brasa {
        self.stdout_contains.push(text.into());
        self
    }

    /// The standard error (brasa's log and error messages) must contain `text`.
    pub fn stderr_contains(mut self, text: impl Into<String>) -> Brasa {
        self.stderr_contains.push(text.into());
        self
    }

    /// Runs it; it must exit with success.
    #[track_caller]
    pub fn succeeds(self) -> Ran {
        let ran = self.output();
        assert!(ran.status.success(), "brasa failed ({})\n{ran}", ran.status);
        ran
    }

    /// Runs it; it must exit with a failure.
    #[track_caller]
    pub fn fails(self) -> Ran {
        let ran = self.output();
        assert!(!ran.status.success(), "brasa succeeded where it should fail\n{ran}");
        ran
    }

    /// Runs it; it must exit with `code` (the README's exit codes: 2 usage or spec, 3 data,
    /// 4 training, 5 files, 6 report after training).
    #[track_caller]
    pub fn exits_with(self, code: i32) -> Ran {
        let ran = self.output();
        assert_eq!(ran.status.code(), Some(code), "brasa exited with {} where {code} was expected\n{ran}", ran.status);
        ran
    }

    /// Runs it, whatever its exit status (the expected output is still checked).
    #[track_caller]
    pub fn output(mut self) -> Ran {
        let output = self.command.output().expect("brasa runs");
        let ran = Ran {
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        for text in &self.stdout_contains {
            assert!(ran.stdout.contains(text.as_str()), "stdout lacks {text:?}\n{ran}");
        }
        for text in &self.stderr_contains {
            assert!(ran.stderr.contains(text.as_str()), "stderr lacks {text:?}\n{ran}");
        }
        ran
    }

    /// Starts it and returns at once (output discarded): for tests of processes running together.
    pub fn spawn(mut self) -> Child {
        self.command.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().expect("brasa starts")
    }

    /// Starts it and returns at once, its output piped (`wait_with_output` reads it).
    pub fn spawn_piped(mut self) -> Child {
        self.command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().expect("brasa starts")
    }

    /// Starts it, waits until `file` exists (a run's first checkpoint, say) and kills it there:
    /// a run interrupted as a crash or a cluster's time limit would.
    #[track_caller]
    pub fn kill_once_written(mut self, file: &Path) {
        let mut child: Child = self.command.spawn().expect("brasa starts");
        let started = Instant::now();
        while !file.exists() {
            assert!(started.elapsed() < Duration::from_secs(120), "no {} after 2 minutes", file.display());
            assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be interrupted");
            std::thread::sleep(Duration::from_millis(2));
        }
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

impl std::fmt::Display for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr)
    }
}
