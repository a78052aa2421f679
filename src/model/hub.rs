//! Where pretrained weights come from: `hf:org/name[@revision]` (the local Hugging Face cache
//! first, then the Hub unless `HF_HUB_OFFLINE` is set), or a local file or folder holding
//! `model.safetensors` or `pytorch_model.bin` (or the index of their shards) beside a
//! `config.json`.
//!
//! This module finds files; it never builds a model (see `pretrained`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::error::{Error, Result};
use crate::progress::Progress;

/// Files checkpoints are looked up by, in order of preference: whole, then sharded (an index
/// naming the shard files, as `save_pretrained` writes a large model).
pub const WEIGHT_FILES: [&str; 4] = ["model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json"];
pub const CONFIG_FILE: &str = "config.json";
pub const PREPROCESSOR_FILE: &str = "preprocessor_config.json";

/// What a spec's `model.pretrained` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Locator {
    /// A Hugging Face Hub repository.
    Hub { repo: String, revision: String },
    /// A checkpoint file or a folder holding one.
    Local(PathBuf),
}

/// A checkpoint on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointFiles {
    pub weights: PathBuf,
    pub config: PathBuf,
    /// `preprocessor_config.json`, when the checkpoint has one.
    pub preprocessor: Option<PathBuf>,
}

impl Locator {
    /// Parses `hf:org/name[@revision]` or a path (relative to `base`, the folder of the spec
    /// file that set it, when given).
    pub fn parse(value: &str, base: Option<&Path>) -> std::result::Result<Self, String> {
        if let Some(id) = value.strip_prefix("hf:") {
            let (repo, revision) = match id.split_once('@') {
                Some((repo, revision)) => (repo, revision),
                None => (id, "main"),
            };
            let valid = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            let parts: Vec<&str> = repo.split('/').collect();
            if !(parts.len() == 2 && parts.iter().all(|p| valid(p))) || revision.is_empty() {
                return Err("expected `hf:org/name` or `hf:org/name@revision`".into());
            }
            return Ok(Self::Hub { repo: repo.to_string(), revision: revision.to_string() });
        }
        if value.trim().is_empty() {
            return Err("expected `hf:org/name` or a path".into());
        }
        let path = Path::new(value);
        Ok(Self::Local(match base {
            Some(base) if path.is_relative() => base.join(path),
            _ => path.to_path_buf(),
        }))
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Hub { repo, revision } if revision == "main" => format!("hf:{repo}"),
            Self::Hub { repo, revision } => format!("hf:{repo}@{revision}"),
            Self::Local(path) => path.display().to_string(),
        }
    }

    /// The checkpoint if it is on disk already (a local path, or in the Hugging Face cache).
    pub fn find_local(&self) -> Result<Option<CheckpointFiles>> {
        match self {
            Self::Local(path) => local_files(path).map(Some),
            Self::Hub { repo, revision } => {
                let cache = cache_dir();
                Ok(cached_snapshot(&cache, repo, revision).and_then(|dir| {
                    // offline there is no Hub to ask for what the snapshot lacks
                    if offline() { files_in(&dir).ok() } else { complete_snapshot(&cache, repo, &dir) }
                }))
            }
        }
    }

    /// The checkpoint on disk, downloading it from the Hub into the cache when needed.
    pub fn fetch(&self, progress: &Progress) -> Result<CheckpointFiles> {
        if let Some(files) = self.find_local()? {
            return Ok(files);
        }
        let Self::Hub { repo, revision } = self else {
            unreachable!("a local locator either has files or errors");
        };
        let cache = cache_dir();
        if offline() {
            return Err(Error::Model(format!(
                "{} is not in the Hugging Face cache ({}) and HF_HUB_OFFLINE is set",
                self.describe(),
                cache.display()
            )));
        }
        download(repo, revision, &cache, progress)?;
        cached_snapshot(&cache, repo, revision)
            .and_then(|dir| files_in(&dir).ok())
            .ok_or_else(|| Error::Model(format!("downloaded {} but cannot find it in {}", self.describe(), cache.display())))
    }
}

/// The Hugging Face hub cache: `HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HF_HUB_CACHE").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(home) = std::env::var_os("HF_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home).join("hub");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("huggingface").join("hub")
}

fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
}

/// `<cache>/models--org--name/snapshots/<commit>` for `revision` (a branch or tag through
/// `refs/`, or a commit hash), if it is there.
fn cached_snapshot(cache: &Path, repo: &str, revision: &str) -> Option<PathBuf> {
    let folder = cache.join(format!("models--{}", repo.replace('/', "--")));
    let snapshots = folder.join("snapshots");
    let commit = std::fs::read_to_string(folder.join("refs").join(revision))
        .map(|c| c.trim().to_string())
        .unwrap_or_else(|_| revision.to_string());
    let dir = snapshots.join(commit);
    dir.is_dir().then_some(dir)
}

/// The files of a cached snapshot if it holds all a download would bring: config, weights and
/// every shard an index names, and `preprocessor_config.json` or the record of its 404
/// (`.no_exist/<commit>/`, as huggingface_hub and brasa write it). A snapshot an interrupted
/// download left partial is not complete, so `fetch` downloads what it lacks.
fn complete_snapshot(cache: &Path, repo: &str, dir: &Path) -> Option<CheckpointFiles> {
    let files = files_in(dir).ok()?;
    if files.preprocessor.is_none() && !no_exist_path(cache, repo, dir.file_name()?.to_str()?, PREPROCESSOR_FILE).is_file() {
        return None;
    }
    if files.weights.to_string_lossy().ends_with(".index.json") && shards(&files.weights).is_err() {
        return None;
    }
    Some(files)
}

/// `<cache>/models--org--name/.no_exist/<commit>/<file>`: the Hub answered 404 for `file`.
fn no_exist_path(cache: &Path, repo: &str, commit: &str, file: &str) -> PathBuf {
    cache.join(format!("models--{}", repo.replace('/', "--"))).join(".no_exist").join(commit).join(file)
}

fn files_in(dir: &Path) -> Result<CheckpointFiles> {
    let weights = WEIGHT_FILES.iter().map(|f| dir.join(f)).find(|p| p.is_file()).ok_or_else(|| {
        Error::Model(format!("{} holds no weights: none of {}", dir.display(), WEIGHT_FILES.join(", ")))
    })?;
    let config = dir.join(CONFIG_FILE);
    if !config.is_file() {
        return Err(Error::Model(format!("{} has no {CONFIG_FILE} beside its weights", dir.display())));
    }
    let preprocessor = Some(dir.join(PREPROCESSOR_FILE)).filter(|p| p.is_file());
    Ok(CheckpointFiles { weights, config, preprocessor })
}

/// A folder with a checkpoint, or a weights file with `config.json` beside it.
fn local_files(path: &Path) -> Result<CheckpointFiles> {
    if path.is_dir() {
        return files_in(path);
    }
    if path.is_file() {
        // any weights file (`state_dict.bin`, `checkpoint.safetensors`, ...) with its config beside it
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let config = dir.join(CONFIG_FILE);
        if !config.is_file() {
            return Err(Error::Model(format!("{} has no {CONFIG_FILE} beside it", path.display())));
        }
        let preprocessor = Some(dir.join(PREPROCESSOR_FILE)).filter(|p| p.is_file());
        return Ok(CheckpointFiles { weights: path.to_path_buf(), config, preprocessor });
    }
    Err(Error::Model(format!("pretrained checkpoint {} does not exist", path.display())))
}

/// The shard files of a sharded checkpoint's index (`model.safetensors.index.json`,
/// `pytorch_model.bin.index.json`) beside it, in name order; an error names a missing one.
pub fn shards(index: &Path) -> Result<Vec<PathBuf>> {
    let dir = index.parent().unwrap_or(Path::new("."));
    let paths: Vec<PathBuf> = shards_named(index)?.iter().map(|f| dir.join(f)).collect();
    if let Some(missing) = paths.iter().find(|p| !p.is_file()) {
        return Err(Error::Model(format!("{}: its shard {} is missing", index.display(), missing.display())));
    }
    Ok(paths)
}

/// The shard file names an index's `weight_map` lists (tensor name → file), each once.
fn shards_named(index: &Path) -> Result<Vec<String>> {
    let fail = |message: String| Error::Model(format!("{}: {message}", index.display()));
    let text = std::fs::read_to_string(index).map_err(|e| fail(format!("cannot read it: {e}")))?;
    let json: Value = serde_json::from_str(&text).map_err(|e| fail(format!("not valid JSON: {e}")))?;
    let Some(map) = json.get("weight_map").and_then(Value::as_object) else {
        return Err(fail("no `weight_map` object (tensor name → shard file)".into()));
    };
    let mut files: Vec<String> = Vec::with_capacity(map.len());
    for (tensor, file) in map {
        match file.as_str() {
            Some(f) if !f.is_empty() && !f.contains(['/', '\\']) && f != ".." => files.push(f.to_string()),
            _ => return Err(fail(format!("`weight_map.\"{tensor}\"` = {file}: expected the name of a shard file beside the index"))),
        }
    }
    files.sort_unstable();
    files.dedup();
    if files.is_empty() {
        return Err(fail("`weight_map` is empty".into()));
    }
    Ok(files)
}

/// hf-hub's download progress, shown as one of our byte bars per file; each call also marks
/// the download as alive for the watchdog in [`fetch_file`].
struct BarProgress(indicatif::ProgressBar, Progress, Arc<AtomicU64>, Instant);

impl BarProgress {
    fn alive(&self) {
        self.2.store(self.3.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl hf_hub::api::Progress for BarProgress {
    fn init(&mut self, size: usize, filename: &str) {
        self.alive();
        self.0 = self.1.bytes_bar(Some(size as u64), filename);
    }

    fn update(&mut self, size: usize) {
        self.alive();
        self.0.inc(size as u64);
    }

    fn finish(&mut self) {
        self.0.finish_and_clear();
    }
}

/// Why one file did not download.
#[derive(Debug)]
enum FetchError {
    /// The Hub answered 404: the repository has no such file.
    Absent(String),
    /// Anything else: a server error, a refused token, a dropped connection, a timeout.
    Failed(String),
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Absent(message) | Self::Failed(message) => f.write_str(message),
        }
    }
}

/// Name of the threads hf-hub runs in; their panics are reported as download errors.
const DOWNLOAD_THREAD: &str = "hf-hub-download";

/// Seconds without a byte from the Hub before a download counts as failed: huggingface_hub's
/// `HF_HUB_DOWNLOAD_TIMEOUT` (and `HF_HUB_ETAG_TIMEOUT` for the first answer), 10 s by default.
fn timeout(variable: &str) -> Duration {
    std::env::var(variable).ok().and_then(|v| v.trim().parse::<f64>().ok()).filter(|s| s.is_finite() && *s > 0.0).map_or(Duration::from_secs(10), Duration::from_secs_f64)
}

/// `HF_TOKEN` first, as huggingface_hub reads it; hf-hub itself only reads the token file.
fn token() -> Option<String> {
    std::env::var("HF_TOKEN").ok().map(|t| t.trim().to_string()).filter(|t| !t.is_empty())
}

/// The HTTP status of a failed hf-hub request. hf-hub wraps ureq 2's error, whose text is
/// `<url>: status code <n>`; brasa does not link ureq 2 to match on its type.
fn http_status(error: &hf_hub::api::sync::ApiError) -> Option<u16> {
    let text = error.to_string();
    let at = text.rfind("status code ")?;
    text[at + "status code ".len()..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// Downloads one file of `repo` into `cache` (or finds it in the snapshot already there).
/// hf-hub has no timeouts and may panic on a malformed answer, so it runs in a thread of its
/// own that is given up on when the Hub falls silent, and whose panic becomes an error.
fn fetch_file(repo: &str, revision: &str, cache: &Path, file: &str, progress: &Progress) -> std::result::Result<PathBuf, FetchError> {
    if let Some(path) = cached_snapshot(cache, repo, revision).map(|dir| dir.join(file)).filter(|p| p.is_file()) {
        return Ok(path);
    }
    quiet_download_panics();
    let start = Instant::now();
    let alive = Arc::new(AtomicU64::new(0));
    let (sender, receiver) = std::sync::mpsc::channel();
    let bar = BarProgress(indicatif::ProgressBar::hidden(), progress.clone(), alive.clone(), start);
    let (repo_id, revision_id, cache_dir, name) = (repo.to_string(), revision.to_string(), cache.to_path_buf(), file.to_string());
    let spawned = std::thread::Builder::new().name(DOWNLOAD_THREAD.into()).spawn(move || {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut builder = hf_hub::api::sync::ApiBuilder::from_env().with_cache_dir(cache_dir).with_progress(false);
            if let Some(token) = token() {
                builder = builder.with_token(Some(token));
            }
            let api = builder.build()?;
            api.repo(hf_hub::Repo::with_revision(repo_id, hf_hub::RepoType::Model, revision_id)).download_with_progress(&name, bar)
        }));
        let _ = sender.send(result);
    });
    if let Err(e) = spawned {
        return Err(FetchError::Failed(format!("cannot start the download: {e}")));
    }
    let (first_answer, silence) = (timeout("HF_HUB_ETAG_TIMEOUT"), timeout("HF_HUB_DOWNLOAD_TIMEOUT"));
    loop {
        match receiver.recv_timeout(Duration::from_millis(200)) {
            Ok(Ok(Ok(path))) => return Ok(path),
            Ok(Ok(Err(e))) => {
                return Err(match http_status(&e) {
                    Some(404) => FetchError::Absent(e.to_string()),
                    Some(401 | 403) => FetchError::Failed(format!(
                        "{e} (the repository is gated or private: it needs a token with access, in HF_TOKEN or from `hf auth login`)"
                    )),
                    _ => FetchError::Failed(e.to_string()),
                });
            }
            Ok(Err(panic)) => {
                let what = panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned()).unwrap_or_default();
                return Err(FetchError::Failed(format!("the Hub's answer broke hf-hub ({what})")));
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return Err(FetchError::Failed("the download stopped without a result".into())),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                let last = alive.load(Ordering::Relaxed);
                let limit = if last == 0 { first_answer } else { silence };
                let quiet = start.elapsed().saturating_sub(Duration::from_millis(last));
                if quiet > limit {
                    return Err(FetchError::Failed(format!(
                        "timed out: no answer from the Hub for {} s (HF_HUB_ETAG_TIMEOUT, HF_HUB_DOWNLOAD_TIMEOUT)",
                        limit.as_secs_f64()
                    )));
                }
            }
        }
    }
}

/// Keeps the panic of a download thread off the terminal: [`fetch_file`] reports it as a
/// download error. Every other panic goes to the hook that was there.
fn quiet_download_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().name() != Some(DOWNLOAD_THREAD) {
                previous(info);
            }
        }));
    });
}

/// Records that the Hub has no `file` at `revision` (answered 404), where huggingface_hub
/// records it, so the cached snapshot without it counts as complete.
fn record_absent(cache: &Path, repo: &str, revision: &str, file: &str) -> Result<()> {
    let folder = cache.join(format!("models--{}", repo.replace('/', "--")));
    let commit = std::fs::read_to_string(folder.join("refs").join(revision)).map(|c| c.trim().to_string()).unwrap_or_else(|_| revision.to_string());
    let path = no_exist_path(cache, repo, &commit, file);
    let parent = path.parent().unwrap_or(cache);
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    std::fs::write(&path, b"").map_err(|e| Error::io(&path, e))
}

/// Downloads config, preprocessor config and weights of `repo` into `cache` (hf-hub, which
/// honours `HF_ENDPOINT`), each file unless the snapshot has it. Only a 404 means a file is
/// not there: the processor config is then the family's default, and the next weights file
/// is tried; any other failure stops the download, naming the file.
fn download(repo: &str, revision: &str, cache: &Path, progress: &Progress) -> Result<()> {
    let fail = |message: String| Error::Download { url: format!("hf:{repo}@{revision}"), message };
    let fetch = |file: &str| fetch_file(repo, revision, cache, file, progress);
    fetch(CONFIG_FILE).map_err(|e| fail(format!("{CONFIG_FILE}: {e}")))?;
    // optional: not every checkpoint ships an image-processor config
    let recorded = cached_snapshot(cache, repo, revision)
        .and_then(|dir| dir.file_name().map(|c| no_exist_path(cache, repo, &c.to_string_lossy(), PREPROCESSOR_FILE)))
        .is_some_and(|p| p.is_file());
    if !recorded {
        match fetch(PREPROCESSOR_FILE) {
            Ok(_) => {}
            Err(FetchError::Absent(_)) => record_absent(cache, repo, revision, PREPROCESSOR_FILE)?,
            Err(e) => return Err(fail(format!("{PREPROCESSOR_FILE}: {e}"))),
        }
    }
    let mut last_absent = String::new();
    for file in WEIGHT_FILES {
        match fetch(file) {
            Ok(path) if file.ends_with(".index.json") => {
                for shard in shards_named(&path)? {
                    fetch(&shard).map_err(|e| fail(format!("{shard} (a shard {file} names): {e}")))?;
                }
                return Ok(());
            }
            Ok(_) => return Ok(()),
            Err(FetchError::Absent(e)) => last_absent = format!("{file}: {e}"),
            Err(e) => return Err(fail(format!("{file}: {e}"))),
        }
    }
    Err(fail(format!("no weights file ({}) in the repository; last answer: {last_absent}", WEIGHT_FILES.join(", "))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hub_ids_and_paths() {
        assert_eq!(
            Locator::parse("hf:microsoft/cvt-13", None).unwrap(),
            Locator::Hub { repo: "microsoft/cvt-13".into(), revision: "main".into() }
        );
        assert_eq!(
            Locator::parse("hf:google/vit-base-patch16-224@v1.0", None).unwrap(),
            Locator::Hub { repo: "google/vit-base-patch16-224".into(), revision: "v1.0".into() }
        );
        assert!(Locator::parse("hf:no-slash", None).is_err());
        assert!(Locator::parse("hf:a/b/c", None).is_err());
        assert_eq!(Locator::parse("weights", Some(Path::new("/x"))).unwrap(), Locator::Local(PathBuf::from("/x/weights")));
        assert_eq!(Locator::parse("/abs/w.safetensors", Some(Path::new("/x"))).unwrap(), Locator::Local(PathBuf::from("/abs/w.safetensors")));
    }

    #[test]
    fn finds_cached_snapshots_through_refs() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("models--org--name");
        let snapshot = folder.join("snapshots/abc123");
        std::fs::create_dir_all(&snapshot).unwrap();
        std::fs::create_dir_all(folder.join("refs")).unwrap();
        std::fs::write(folder.join("refs/main"), "abc123\n").unwrap();
        std::fs::write(snapshot.join("config.json"), "{}").unwrap();
        std::fs::write(snapshot.join("pytorch_model.bin"), "x").unwrap();
        assert_eq!(cached_snapshot(dir.path(), "org/name", "main"), Some(snapshot.clone()));
        assert_eq!(cached_snapshot(dir.path(), "org/name", "abc123"), Some(snapshot.clone()));
        assert_eq!(cached_snapshot(dir.path(), "org/other", "main"), None);
        let files = files_in(&snapshot).unwrap();
        assert_eq!(files.weights, snapshot.join("pytorch_model.bin"));
        assert_eq!(files.preprocessor, None);
    }
}
