//! Where pretrained weights come from: `hf:org/name[@revision]` (the local Hugging Face cache
//! first, then the Hub unless `HF_HUB_OFFLINE` is set), or a local file or folder holding
//! `model.safetensors` or `pytorch_model.bin` (or the index of their shards) beside a
//! `config.json`.
//!
//! This module finds files; it never builds a model (see `pretrained`).

use std::path::{Path, PathBuf};

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
            Self::Hub { repo, revision } => Ok(cached_snapshot(&cache_dir(), repo, revision).and_then(|dir| files_in(&dir).ok())),
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

/// hf-hub's download progress, shown as one of our byte bars per file.
struct BarProgress(indicatif::ProgressBar, Progress);

impl hf_hub::api::Progress for BarProgress {
    fn init(&mut self, size: usize, filename: &str) {
        self.0 = self.1.bytes_bar(Some(size as u64), filename);
    }

    fn update(&mut self, size: usize) {
        self.0.inc(size as u64);
    }

    fn finish(&mut self) {
        self.0.finish_and_clear();
    }
}

/// Downloads config, preprocessor config and weights of `repo` into `cache` (hf-hub, which
/// honours `HF_ENDPOINT`).
fn download(repo: &str, revision: &str, cache: &Path, progress: &Progress) -> Result<()> {
    let fail = |message: String| Error::Download { url: format!("hf:{repo}@{revision}"), message };
    let api = hf_hub::api::sync::ApiBuilder::from_env()
        .with_cache_dir(cache.to_path_buf())
        .with_progress(false)
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let hub_repo = api.repo(hf_hub::Repo::with_revision(repo.to_string(), hf_hub::RepoType::Model, revision.to_string()));
    let fetch = |file: &str| hub_repo.download_with_progress(file, BarProgress(indicatif::ProgressBar::hidden(), progress.clone()));
    fetch(CONFIG_FILE).map_err(|e| fail(format!("{CONFIG_FILE}: {e}")))?;
    // optional: not every checkpoint ships an image-processor config
    let _ = fetch(PREPROCESSOR_FILE);
    let mut last_error = String::new();
    for file in WEIGHT_FILES {
        match fetch(file) {
            Ok(path) if file.ends_with(".index.json") => {
                for shard in shards_named(&path)? {
                    fetch(&shard).map_err(|e| fail(format!("{shard} (a shard {file} names): {e}")))?;
                }
                return Ok(());
            }
            Ok(_) => return Ok(()),
            Err(e) => last_error = format!("{file}: {e}"),
        }
    }
    Err(fail(format!("no weights file ({}); last error: {last_error}", WEIGHT_FILES.join(", "))))
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
