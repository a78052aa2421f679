//! What burn's GPU backends keep on disk between runs: cubecl's environment database, holding the
//! autotune results (which kernel is fastest for each shape on this device) and, on CUDA, every
//! kernel compiled (see `keep_compiled_kernels`). Autotune results stay small; compiled kernels do
//! not (about 100 MB of PTX per model, autotune candidates included), so `brasa cache` shows the
//! database and can remove it.
//!
//! Where it lives is cubecl's rule, resolved here the way cubecl resolves it for a brasa started
//! in the same folder: a `cubecl.toml` found from the current folder upwards, then the `CUBECL_*`
//! variables; by default `target/environment` under the outermost Cargo project above the
//! folder, else the user cache (`$XDG_CACHE_HOME/cubecl`, `~/.cache/cubecl`). The database is
//! `<root>/<environment name>.db` (name `default`, or `CUBECL_ENVIRONMENT`), with its
//! write-ahead files beside it.
//!
//! What it holds travels as a cubecl bundle (`brasa cache export | import`): a machine with the
//! same GPU, or one that compiled CUDA kernels for it without running them
//! (`scripts/cuda-dry-run.sh`), fills another's cache so its first run skips autotuning and
//! compiling.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// cubecl's environment database of a GPU run started in the current folder, and its files.
#[derive(Debug, Clone)]
pub struct GpuCache {
    /// The database (`<root>/<name>.db`), whether or not it exists yet.
    pub database: PathBuf,
    /// The files there now (the database and its `-wal`/`-shm`-style companions) with their sizes.
    pub files: Vec<(PathBuf, u64)>,
}

impl GpuCache {
    /// Where a GPU run started in the current folder keeps autotune results and kernels.
    pub fn locate() -> Result<Self> {
        use cubecl::config::{CubeClRuntimeConfig, RuntimeConfig};
        let config = CubeClRuntimeConfig::from_current_dir().override_from_env();
        let root = config.environment.path.root();
        let database = root.join(cubecl::environment::file_name(&config.environment.name));
        Self::at(database)
    }

    /// The files of the database at `database`.
    pub fn at(database: PathBuf) -> Result<Self> {
        let (Some(dir), Some(name)) = (database.parent(), database.file_name().and_then(|n| n.to_str())) else {
            return Ok(Self { database, files: Vec::new() });
        };
        let companion = format!("{name}-");
        let mut files = Vec::new();
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self { database, files }),
            Err(e) => return Err(Error::io(dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(dir, e))?;
            let file_name = entry.file_name();
            let Some(file_name) = file_name.to_str() else { continue };
            if file_name != name && !file_name.starts_with(&companion) {
                continue;
            }
            let meta = entry.metadata().map_err(|e| Error::io(entry.path(), e))?;
            if meta.is_file() {
                files.push((entry.path(), meta.len()));
            }
        }
        files.sort();
        Ok(Self { database, files })
    }

    /// The run log's line about it, on a GPU `backend` (`wgpu`, `cuda`): where it is, and — when
    /// nothing is there yet — why the first steps will be slow.
    pub fn note(&self, backend: &str) -> String {
        let path = crate::fmt::display_path(&self.database);
        if self.files.is_empty() {
            let what = if backend == "cuda" { "autotune and compile kernels" } else { "autotune kernels" };
            format!("gpu cache: {path}, empty: the first steps {what} for this device, which can take minutes; later runs started here reuse them")
        } else {
            format!("gpu cache: {path} ({} of autotune results and kernels from earlier runs started here)", crate::fmt::megabytes(self.bytes()))
        }
    }

    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|(_, bytes)| bytes).sum()
    }

    /// Writes what the database holds to `out` as a cubecl bundle (one SQLite file, replaced
    /// whole once complete): autotune results and compiled kernels, never cubecl's records of
    /// how they were made. `kernels_only` keeps CUDA's compiled kernels alone, for when the
    /// autotune results mean nothing elsewhere (a stand-in driver's). Entries are keyed by device
    /// and by the brasa binary that made them, so another machine uses only those that match.
    pub fn export(&self, out: &Path, kernels_only: bool) -> Result<Contents> {
        if self.files.is_empty() {
            return Err(Error::Data(format!(
                "{}: no GPU cache here to export (a GPU run started in this folder makes one)",
                crate::fmt::display_path(&self.database)
            )));
        }
        let options = cubecl::bundle::ExportOptions {
            name: format!("brasa {}", env!("CARGO_PKG_VERSION")),
            namespaces: if kernels_only { KERNELS.iter().map(|k| k.to_string()).collect() } else { Vec::new() },
            excluded_namespaces: vec![RECORDS.into()],
            ..Default::default()
        };
        cubecl::bundle::export(std::slice::from_ref(&self.database), out, &options)
            .map_err(|e| Error::Data(format!("cannot export {} to {}: {e}", crate::fmt::display_path(&self.database), out.display())))?;
        Contents::of_bundle(out)
    }

    /// Removes the database and its companions; returns the bytes freed. The next GPU run
    /// autotunes and compiles again (a run going on meanwhile keeps what it opened).
    pub fn remove(&self) -> Result<u64> {
        let mut freed = 0;
        for (path, bytes) in &self.files {
            match std::fs::remove_file(path) {
                Ok(()) => freed += bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(path, e)),
            }
        }
        Ok(freed)
    }
}

/// Namespaces of CUDA's compiled kernels (PTX, and which source became which PTX).
const KERNELS: [&str; 2] = ["cuda", "cuda-second-line"];
/// cubecl's account of how a cache was built: sessions, compilations, tuning runs.
const RECORDS: &str = "records";

/// What a cache or a bundle holds, by kind of entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Contents {
    /// Compiled kernels (CUDA's PTX).
    pub kernels: u64,
    /// Autotune results: the fastest kernel for a shape on a device.
    pub autotune: u64,
    /// Everything else (throughput probes, records).
    pub other: u64,
}

impl Contents {
    fn add(&mut self, namespace: &str, entries: u64) {
        let first = namespace.split('/').next().unwrap_or_default();
        match first {
            "autotune" => self.autotune += entries,
            "cuda" => self.kernels += entries,
            // which source became which kernel of the first line: not kernels of its own
            "cuda-second-line" => {}
            _ => self.other += entries,
        }
    }

    /// What the bundle file at `file` holds.
    pub fn of_bundle(file: &Path) -> Result<Self> {
        Ok(Self::of(&open_bundle(file)?))
    }

    fn of(bundle: &cubecl::bundle::SqliteBundle) -> Self {
        let mut contents = Self::default();
        for summary in bundle.summary() {
            contents.add(&summary.namespace, summary.entries);
        }
        contents
    }

    /// `1033 compiled kernel(s), 0 autotune result(s)`, and the other entries when there are any.
    pub fn describe(&self) -> String {
        let mut parts = vec![format!("{} compiled kernel(s)", self.kernels), format!("{} autotune result(s)", self.autotune)];
        if self.other > 0 {
            parts.push(format!("{} other entries", self.other));
        }
        parts.join(", ")
    }
}

/// What [`import`] did.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The cache imported into, its files as the import left them.
    pub cache: GpuCache,
    /// What the bundle holds.
    pub contents: Contents,
    /// Entries added to the cache.
    pub added: usize,
    /// Entries the cache already had (a local entry is never replaced by a bundle's).
    pub kept: usize,
    /// Whether the cache's write-ahead log was folded into its file (not when another process
    /// was using the cache at that moment).
    pub folded: bool,
}

/// Adds the bundle at `file` to the cache of GPU runs started in the current folder
/// ([`GpuCache::locate`]), made if missing, and folds what was written into the database file.
///
/// The entries go in as cubecl's own `bundle::import` puts them (insert-only, a batch of 1024
/// per transaction, marked imported), but into the cache's file opened on its own rather than as
/// the active environment's: cubecl's SQLite engine never folds its write-ahead log on close, and
/// refuses to fold the active environment's, so importing a 243 MB bundle left a 485 MB `-wal`
/// beside the 243 MB database. Folded, the cache is the bundle's size. A run started in the same
/// folder may hold the cache open meanwhile (another process) and goes on writing to it; when it
/// is reading or writing at that very moment the log cannot be folded now: the entries are
/// imported all the same, and the log is folded by a later import.
pub fn import(file: &Path) -> Result<Imported> {
    use cubecl::bundle::Bundle;
    use cubecl_environment::bytes::Bytes;
    use cubecl_environment::persistence::{Access, Database, InsertSummary, Origin};
    const BATCH: usize = 1024;
    let bundle = open_bundle(file)?;
    let contents = Contents::of(&bundle);
    let cache = GpuCache::locate()?;
    let shown = crate::fmt::display_path(&cache.database);
    if let Some(dir) = cache.database.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let _aside = ActiveAside::new();
    let database = Database::open_at(&cache.database, Access::ReadWrite).map_err(|e| Error::Data(format!("cannot open the GPU cache {shown}: {e}")))?;
    let mut total = InsertSummary::default();
    for namespace in bundle.namespaces() {
        let mut batch: Vec<(Bytes, Bytes)> = Vec::with_capacity(BATCH);
        let mut commit = |batch: &mut Vec<(Bytes, Bytes)>| {
            let summary = database.insert_many(&namespace, &mut batch.drain(..), Origin::Imported);
            total.stored += summary.stored;
            total.conflict += summary.conflict;
            total.failed += summary.failed;
        };
        bundle.scan(&namespace, &mut |key, value| {
            batch.push((Bytes::from_bytes_vec(key.to_vec()), Bytes::from_bytes_vec(value.to_vec())));
            if batch.len() == BATCH {
                commit(&mut batch);
            }
        });
        if !batch.is_empty() {
            commit(&mut batch);
        }
    }
    if total.failed > 0 {
        return Err(Error::Data(format!(
            "{}: {} of the bundle's entries could not be written to {shown} (a full disk, or a folder that cannot be written?)",
            file.display(),
            total.failed,
        )));
    }
    let folded = database.into_standalone().is_ok();
    let cache = GpuCache::at(cache.database)?;
    Ok(Imported { cache, contents, added: total.stored, kept: total.conflict, folded })
}

/// Another cubecl environment active while it lives, the one before it active again after: the
/// active environment's file is shared with the runtime's stores and cubecl will not fold it, so
/// [`import`] opens the cache's file while it is not the active one.
struct ActiveAside(std::sync::Arc<str>);

impl ActiveAside {
    fn new() -> Self {
        let before = cubecl::environment::active();
        cubecl::environment::activate("brasa-cache-import");
        Self(before)
    }
}

impl Drop for ActiveAside {
    fn drop(&mut self) {
        cubecl::environment::activate(&*self.0);
    }
}

/// The bundle at `file`: SQLite, the format [`GpuCache::export`] writes (cubecl's other format,
/// the flat one, is for bundles compiled into a binary).
fn open_bundle(file: &Path) -> Result<cubecl::bundle::SqliteBundle> {
    cubecl::bundle::SqliteBundle::open(file).map_err(|e| bundle_error(file, e))
}

fn bundle_error(file: &Path, error: cubecl::bundle::BundleError) -> Error {
    let why = match error {
        cubecl::bundle::BundleError::NotABundle => "not a GPU cache bundle (`brasa cache export` writes them)".to_string(),
        other => other.to_string(),
    };
    Error::Data(format!("{}: {why}", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_and_its_companions_are_found_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        for (name, len) in [("default.db", 10), ("default.db-wal", 3), ("default.db-tshm", 2), ("other.db", 7), ("default.dbx", 1)] {
            std::fs::write(dir.path().join(name), vec![0u8; len]).unwrap();
        }
        let cache = GpuCache::at(dir.path().join("default.db")).unwrap();
        let names: Vec<_> = cache.files.iter().map(|(p, _)| p.file_name().unwrap().to_str().unwrap().to_string()).collect();
        assert_eq!(names, ["default.db", "default.db-tshm", "default.db-wal"]);
        assert_eq!(cache.bytes(), 15);
        assert_eq!(cache.remove().unwrap(), 15);
        assert!(dir.path().join("other.db").exists() && dir.path().join("default.dbx").exists());
        assert!(GpuCache::at(dir.path().join("default.db")).unwrap().files.is_empty());
        assert!(GpuCache::at(dir.path().join("missing/default.db")).unwrap().files.is_empty());
    }

    #[test]
    fn the_log_line_says_why_a_first_run_starts_slowly() {
        let dir = tempfile::tempdir().unwrap();
        let empty = GpuCache::at(dir.path().join("default.db")).unwrap();
        assert!(empty.note("cuda").contains("default.db, empty: the first steps autotune and compile kernels"));
        assert!(empty.note("wgpu").contains("empty: the first steps autotune kernels for this device"));
        std::fs::write(dir.path().join("default.db"), vec![0u8; 1_500_000]).unwrap();
        let warm = GpuCache::at(dir.path().join("default.db")).unwrap();
        assert!(warm.note("wgpu").ends_with("default.db (1.5 MB of autotune results and kernels from earlier runs started here)"));
    }
}
