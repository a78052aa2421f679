//! Whole-or-absent file writes (a leaf): every file brasa writes goes through [`write_atomic`],
//! so a killed process leaves each file either complete or not there at all.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Holds an exclusive OS lock on the file `path` (made if missing) until the returned file is
/// dropped: serialises the processes that rewrite a shared derived file (`trials.csv`, the runs
/// index).
pub fn lock_exclusive(path: &Path) -> Result<std::fs::File> {
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path).map_err(|e| Error::io(path, e))?;
    file.lock().map_err(|e| Error::io(path, e))?;
    Ok(file)
}

/// Writes `bytes` to `path` through a temporary file in the same folder, renamed into place.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    staged(path, bytes)?.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// Writes several files that must agree (the runs index's `runs.csv` and `index.html`): every
/// one is written whole to its temporary file first, and only then are they renamed into place,
/// one right after the other. What can fail — a full disk, a quota, a missing folder — fails
/// before any file is replaced, and leaves no temporary file.
pub fn write_atomic_together(files: &[(&Path, &[u8])]) -> Result<()> {
    let staged: Vec<_> = files.iter().map(|(path, bytes)| staged(path, bytes)).collect::<Result<_>>()?;
    for (file, (path, _)) in staged.into_iter().zip(files) {
        file.persist(path).map_err(|e| Error::io(path, e.error))?;
    }
    Ok(())
}

/// `bytes` in a temporary file beside `path`, synced, not yet renamed (removed if dropped).
fn staged(path: &Path, bytes: &[u8]) -> Result<tempfile::NamedTempFile> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut builder = tempfile::Builder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // tempfile's default 0600 would make run files private; use what `File::create` gives.
        builder.permissions(std::fs::Permissions::from_mode(0o644));
    }
    let mut file = builder.tempfile_in(dir).map_err(|e| Error::io(dir, e))?;
    file.write_all(bytes).map_err(|e| Error::io(path, e))?;
    file.as_file().sync_all().map_err(|e| Error::io(path, e))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_written_together_are_all_replaced_or_none_is() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("runs.csv"), dir.path().join("index.html"));
        write_atomic_together(&[(&a, b"one"), (&b, b"one")]).unwrap();
        // the second cannot be staged (its folder is gone): the first is not replaced either
        let missing = dir.path().join("gone/index.html");
        assert!(write_atomic_together(&[(&a, b"two"), (&missing, b"two")]).is_err());
        assert_eq!(std::fs::read(&a).unwrap(), b"one");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left.len(), 2, "no temporary file left: {left:?}");
        write_atomic_together(&[(&a, b"two"), (&b, b"two")]).unwrap();
        assert_eq!((std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap()), (b"two".to_vec(), b"two".to_vec()));
    }
}
