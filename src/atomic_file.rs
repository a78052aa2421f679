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
    file.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}
