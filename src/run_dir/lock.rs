//! One owner per run folder: a process working in a run folder holds an OS lock on its `.lock`
//! file (`flock` on Unix, `LockFileEx` on Windows, through `std::fs::File::try_lock`) and writes
//! who it is into it. A second process finds the lock taken and says who holds it instead of
//! training in the same folder. The operating system drops the lock when its process ends,
//! however it ends (killed, crashed, node lost), so a stale lock is simply taken over.
//!
//! On network file systems the lock is as good as the file system's locking: Linux NFS clients
//! map `flock` to NFS byte-range locks (held through the server's lock manager); a file system
//! mounted with `nolock`, or one without locks at all, lets two processes in.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::build_info::timestamp;
use crate::error::{Error, Result};

/// The lock file in a run folder.
pub const LOCK: &str = ".lock";

/// Set by a sweep for a trial it launched: the trial's folder, whose lock the sweep took for it
/// (so another sweep or a stray `--trial` run sees it taken from the start) and handed on as the
/// trial's standard input ([`FolderLock::handle`]): the trial process holds the lock itself, and
/// keeps it when the sweep is killed, until it has stopped too.
pub const HELD_BY_PARENT_ENV: &str = "BRASA_LOCK_HELD_BY_PARENT";

/// How often taking a lock is tried again, 50 ms apart, before it counts as held.
const PROBE_RETRIES: usize = 6;

/// [`PROBE_RETRIES`], or a minute's worth in a requeued Slurm job, whose earlier run may still
/// be letting go of the folder (a node's lock on a shared file system outlives it a little).
fn retries() -> usize {
    let requeued = std::env::var("SLURM_RESTART_COUNT").ok().and_then(|n| n.parse::<u32>().ok()).is_some_and(|n| n > 0);
    if requeued { 1200 } else { PROBE_RETRIES }
}

/// A held lock on a folder; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct FolderLock {
    /// `None` when a parent process holds the lock for this one.
    file: Option<File>,
}

/// Who holds a folder's lock, as they wrote it.
#[derive(Debug, Clone, PartialEq)]
pub struct Holder(pub String);

impl Holder {
    /// What the holder wrote into the lock file `file`.
    fn written_in(file: &mut File) -> Holder {
        let mut text = String::new();
        let _ = file.read_to_string(&mut text);
        let text = text.trim();
        Holder(if text.is_empty() { "another process".into() } else { text.to_string() })
    }
}

impl FolderLock {
    /// Takes the lock on `dir` (which must exist), or says who holds it.
    pub fn try_acquire(dir: &Path) -> Result<std::result::Result<FolderLock, Holder>> {
        if held_by_parent(dir) {
            // the sweep wrote who it is; this process holds the lock too (see HELD_BY_PARENT_ENV)
            let path = dir.join(LOCK);
            let mut file = OpenOptions::new().append(true).open(&path).map_err(|e| Error::io(&path, e))?;
            write!(file, "; its trial process pid {}", std::process::id()).map_err(|e| Error::io(&path, e))?;
            return Ok(Ok(FolderLock { file: None }));
        }
        let path = dir.join(LOCK);
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(|e| Error::io(&path, e))?;
        // `brasa status` looks at the lock for an instant (a shared lock): a moment's patience
        // tells that from a holder
        let mut attempt = file.try_lock();
        for _ in 0..retries() {
            if !matches!(attempt, Err(TryLockError::WouldBlock)) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
            attempt = file.try_lock();
        }
        match attempt {
            Ok(()) => {
                let owner = owner();
                file.set_len(0).and_then(|()| file.rewind()).and_then(|()| file.write_all(owner.as_bytes())).map_err(|e| Error::io(&path, e))?;
                Ok(Ok(FolderLock { file: Some(file) }))
            }
            Err(TryLockError::WouldBlock) => Ok(Err(Holder::written_in(&mut file))),
            Err(TryLockError::Error(e)) => Err(Error::io(&path, e)),
        }
    }

    /// Another handle on this lock, for a child process to hold it too (its standard input, on
    /// Unix): `flock` belongs to the open file, so the lock lasts while either process has it.
    pub fn handle(&self) -> Option<std::io::Result<File>> {
        self.file.as_ref().map(File::try_clone)
    }

    /// Who holds the lock on `dir`, if anyone, without taking it (a shared lock held for an
    /// instant; a process trying to take the lock meanwhile waits for it, see [`PROBE_RETRIES`]).
    pub fn holder(dir: &Path) -> Option<Holder> {
        let path = dir.join(LOCK);
        let mut file = File::open(&path).ok()?;
        match file.try_lock_shared() {
            Ok(()) => None,
            Err(TryLockError::WouldBlock) => Some(Holder::written_in(&mut file)),
            Err(TryLockError::Error(_)) => None,
        }
    }

    /// Takes the lock on `dir`; an error naming the holder when another process has it.
    pub fn acquire(dir: &Path) -> Result<FolderLock> {
        Self::try_acquire(dir)?.map_err(|Holder(holder)| {
            Error::run_dir(dir, format!("is in use by {holder}; wait for it to finish (or stop it), or choose another --out"))
        })
    }
}

/// How long [`lock_shared_file`] waits by default for a lock another process holds.
pub const SHARED_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(60);
/// Overrides [`SHARED_LOCK_WAIT`], in seconds.
pub const SHARED_LOCK_WAIT_ENV: &str = "BRASA_LOCK_WAIT_SECS";

/// An exclusive lock on the lock file of a shared derived file (`reports/.index.lock`, a sweep's
/// `.trials.lock`), held until dropped; its holder is written into it, so a process kept waiting
/// can say who holds it.
#[derive(Debug)]
pub struct SharedFileLock {
    _file: File,
}

/// Takes the exclusive lock on `path` (made if missing) to rewrite `what`, waiting at most
/// [`SHARED_LOCK_WAIT`] (or `BRASA_LOCK_WAIT_SECS`) for another holder, and saying on stderr
/// whom it waits for. After that an error names the holder (a stopped `brasa index`, Ctrl-Z, or
/// a hung one): never an endless silent wait.
pub fn lock_shared_file(path: &Path, what: &str) -> Result<SharedFileLock> {
    let wait = std::env::var(SHARED_LOCK_WAIT_ENV).ok().and_then(|s| s.trim().parse::<f64>().ok()).filter(|s| s.is_finite() && *s >= 0.0);
    lock_shared_file_within(path, what, wait.map_or(SHARED_LOCK_WAIT, std::time::Duration::from_secs_f64))
}

/// [`lock_shared_file`] with its wait given.
pub fn lock_shared_file_within(path: &Path, what: &str, wait: std::time::Duration) -> Result<SharedFileLock> {
    let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(|e| Error::io(path, e))?;
    let started = std::time::Instant::now();
    let mut said = false;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) => {
                let Holder(holder) = Holder::written_in(&mut file);
                let _ = file.rewind();
                if started.elapsed() >= wait {
                    return Err(Error::io(
                        path,
                        std::io::Error::other(format!(
                            "held by {holder} for more than {} s, so {what} was not rewritten (a stopped process, e.g. Ctrl-Z: `fg` or `kill -CONT` it, or end it); {SHARED_LOCK_WAIT_ENV} sets the wait",
                            wait.as_secs()
                        )),
                    ));
                }
                if !said {
                    eprintln!("waiting for {} (held by {holder}) to rewrite {what}, at most {} s", crate::fmt::display_path(path), wait.as_secs());
                    said = true;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err(TryLockError::Error(e)) => return Err(Error::io(path, e)),
        }
    }
    // who holds it, for whoever waits next (a failure to say so is no reason not to work)
    let owner = owner();
    let _ = file.set_len(0).and_then(|()| file.rewind()).and_then(|()| file.write_all(owner.as_bytes()));
    Ok(SharedFileLock { _file: file })
}

/// This process in words: pid, host, start time, and the Slurm job when there is one.
fn owner() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|h| h.trim().to_string()))
        .unwrap_or_else(|| "an unknown host".into());
    let mut owner = format!("brasa pid {} on {host} since {}", std::process::id(), timestamp(SystemTime::now()));
    if let Ok(job) = std::env::var("SLURM_JOB_ID") {
        // an array task by the name squeue shows (`<array job>_<index>`), its own id beside it
        match (std::env::var("SLURM_ARRAY_JOB_ID"), std::env::var("SLURM_ARRAY_TASK_ID")) {
            (Ok(array), Ok(task)) => owner.push_str(&format!(" (Slurm job {array}_{task}, id {job})")),
            _ => owner.push_str(&format!(" (Slurm job {job})")),
        }
    }
    owner
}

fn held_by_parent(dir: &Path) -> bool {
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    std::env::var_os(HELD_BY_PARENT_ENV).is_some_and(|held| canonical(&PathBuf::from(held)) == canonical(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_name_until_it_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = FolderLock::acquire(dir.path()).unwrap();
        // a lock is per open file: a second open in this process is refused like another process
        let held = FolderLock::try_acquire(dir.path()).unwrap().unwrap_err();
        assert!(held.0.contains(&format!("pid {}", std::process::id())), "{held:?}");
        let err = FolderLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(err.contains("is in use by brasa pid") && err.contains("another --out"), "{err}");
        assert_eq!(FolderLock::holder(dir.path()), Some(held), "seen without taking it");
        drop(first);
        assert_eq!(FolderLock::holder(dir.path()), None);
        let again = FolderLock::acquire(dir.path());
        assert!(again.is_ok());
    }

    #[test]
    fn a_shared_file_lock_waits_a_bounded_time_and_names_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".index.lock");
        let held = lock_shared_file_within(&path, "the index", std::time::Duration::ZERO).unwrap();
        let started = std::time::Instant::now();
        let err = lock_shared_file_within(&path, "the index", std::time::Duration::from_millis(300)).unwrap_err();
        assert!(started.elapsed() >= std::time::Duration::from_millis(300) && started.elapsed() < std::time::Duration::from_secs(5));
        let text = err.to_string();
        assert!(text.contains(&format!("held by brasa pid {}", std::process::id())) && text.contains("the index was not rewritten"), "{text}");
        assert_eq!(err.exit_code(), 5);
        drop(held);
        assert!(lock_shared_file_within(&path, "the index", std::time::Duration::ZERO).is_ok(), "free once let go");
    }

    /// What a sweep does for each trial: the trial process gets a handle on the lock (its
    /// standard input), so the folder stays locked while the trial lives, whatever becomes of
    /// the sweep.
    #[cfg(unix)]
    #[test]
    fn a_child_given_the_lock_holds_it_after_its_parent_let_go() {
        let dir = tempfile::tempdir().unwrap();
        let lock = FolderLock::acquire(dir.path()).unwrap();
        let handle = lock.handle().expect("a lock this process took").unwrap();
        let mut child = std::process::Command::new("sleep").arg("30").stdin(handle).spawn().unwrap();
        drop(lock);
        assert!(FolderLock::try_acquire(dir.path()).unwrap().is_err(), "the child holds the folder");
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(FolderLock::try_acquire(dir.path()).unwrap().is_ok(), "free once the child is gone");
    }
}
