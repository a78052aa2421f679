//! The shared on-disk cache of decoded images (`data.cache = "disk"`): one file per image
//! content and recipe, so a dataset is decoded once for every run, trial and process that uses
//! it, whatever its size.
//!
//! ```text
//! <cache>/pixels/<recipe key>/recipe.json          what the recipe does (for `brasa cache info`)
//! <cache>/pixels/<recipe key>/<ab>/<content key>   one decoded image
//! ```
//!
//! The content key is the SHA-256 of the file's bytes, so a changed file gets a new entry and a
//! moved or copied one keeps its old entry. An entry holds what the run needs of its file (the
//! stored size and the fingerprint) and the recipe's pixels, raw, behind a small header, read
//! back with two plain reads (header, then pixels straight into the image's buffer). A memory
//! map was measured too and was slower: assembling an epoch of 224 px batches from a warm cache
//! ran at 0.84–0.87× the in-memory rate through `mmap` (even populated), 0.97–1.06× through
//! `read` (5,000 images, 2 cores, 2026-11-28). Entries are written whole to a temporary file and renamed into
//! place, never changed afterwards: processes filling the same cache at once (sweep trials,
//! cluster jobs on a shared file system) at worst decode the same image twice and write the same
//! bytes. An entry that is damaged (a power cut before the disk caught up: cut short, or of the
//! right length with blocks of zeros) fails its header, length or pixel checksum (CRC-32) check
//! and is decoded again.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use image::RgbImage;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::Item;
use super::images::{Recipe, Unreadable, decode_bytes};
use crate::dedup::{Fingerprint, Phash};
use crate::error::{Error, Result};
use crate::progress::Progress;

/// The environment variable naming the cache folder.
pub const ENV: &str = "BRASA_CACHE";

/// Entries not used for this long get their modification time refreshed when a run uses them,
/// so `brasa cache prune --older-than` (a day or more) never removes what runs still use.
const REFRESH_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Temporary files older than this are left over from a killed process.
const STALE_TEMPORARY: Duration = Duration::from_secs(3600);

/// Bumped whenever the entry layout or what a recipe produces changes: old entries are then
/// simply never found (and pruned by age).
const FORMAT: &str = "brasa-pixels-2";
const MAGIC: &[u8; 8] = b"brasapx2";
/// magic, stored width and height, exact hash, perceptual hash, width and height of the pixels,
/// CRC-32 of the pixels, CRC-32 of the header before it.
const HEADER: usize = 8 + 4 + 4 + 16 + 32 + 4 + 4 + 4 + 4;
const TEMPORARY_SUFFIX: &str = ".tmp";

/// `$BRASA_CACHE`, else `reports/.cache` under the working directory.
pub fn default_dir() -> PathBuf {
    std::env::var_os(ENV).filter(|v| !v.is_empty()).map(PathBuf::from).unwrap_or_else(|| Path::new("reports").join(".cache"))
}

/// The SHA-256 of a file's bytes (its first 128 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContentKey([u8; 16]);

impl ContentKey {
    pub fn of(bytes: &[u8]) -> Self {
        let digest = Sha256::digest(bytes);
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[..16]);
        Self(key)
    }

    fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// What an entry records about the file it was decoded from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FileInfo {
    /// `(width, height)` as stored.
    pub original_size: (u32, u32),
    /// Of the picture as decoded, before any recipe.
    pub fingerprint: Fingerprint,
}

/// A cache folder.
#[derive(Debug, Clone)]
pub struct DiskCache {
    root: PathBuf,
}

/// One file's content key and what its entries say, and whether it was decoded now.
type OneFile = (ContentKey, FileInfo, bool);

/// What [`DiskCache::fill`] found and did.
#[derive(Debug)]
pub struct Filled {
    /// Each item's content key, in item order.
    pub keys: Vec<ContentKey>,
    pub infos: Vec<FileInfo>,
    /// Items decoded now (the others were all in the cache already).
    pub decoded: usize,
    /// Items that cannot be read; `keys` and `infos` hold the others only.
    pub unreadable: Vec<Unreadable>,
}

impl DiskCache {
    /// The cache in `root` (created when missing).
    pub fn open(root: &Path) -> Result<Self> {
        let pixels = root.join("pixels");
        std::fs::create_dir_all(&pixels).map_err(|e| Error::io(&pixels, e))?;
        Ok(Self { root: root.to_path_buf() })
    }

    /// The cache in `root` if there is one (its `pixels` folder), creating nothing.
    pub fn existing(root: &Path) -> Option<Self> {
        root.join("pixels").is_dir().then(|| Self { root: root.to_path_buf() })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn recipe_dir(&self, recipe: &Recipe) -> PathBuf {
        let description = serde_json::to_string(recipe).expect("recipes serialise");
        let key = ContentKey::of(format!("{FORMAT}\n{description}").as_bytes());
        self.root.join("pixels").join(&key.hex()[..16])
    }

    /// Where `recipe`'s pixels of the file with content `key` are kept.
    pub fn entry_path(&self, recipe: &Recipe, key: &ContentKey) -> PathBuf {
        self.for_recipe(recipe).entry_path(key)
    }

    /// The part of the cache that holds `recipe`'s pixels.
    pub fn for_recipe(&self, recipe: &Recipe) -> RecipeCache {
        RecipeCache { dir: self.recipe_dir(recipe), recipe: *recipe }
    }

    /// Makes sure `items` are in the cache in every recipe, decoding (in parallel) only the files
    /// whose entries are missing or damaged.
    pub fn fill(&self, items: &[Item], recipes: &[Recipe], progress: &Progress, what: &str) -> Result<Filled> {
        for recipe in recipes {
            self.describe_recipe(recipe)?;
        }
        let parts: Vec<RecipeCache> = recipes.iter().map(|recipe| self.for_recipe(recipe)).collect();
        let bar = progress.bar(items.len() as u64, what);
        // each process starts at its own place in the list, so processes filling the same cache
        // at once share the decoding instead of racing each other through the same files
        let n = items.len();
        let start = if n == 0 { 0 } else { (std::process::id() as usize).wrapping_mul(0x9E37_79B9) % n };
        let mut results: Vec<(usize, Result<OneFile>)> = (0..n)
            .into_par_iter()
            .map(|k| {
                let i = (start + k) % n;
                let result = fill_one(&items[i].path, &parts);
                bar.inc(1);
                (i, result)
            })
            .collect();
        bar.finish_and_clear();
        results.sort_unstable_by_key(|(i, _)| *i);
        let results = results.into_iter().map(|(_, result)| result);
        let mut filled = Filled { keys: Vec::with_capacity(items.len()), infos: Vec::with_capacity(items.len()), decoded: 0, unreadable: Vec::new() };
        for (index, result) in results.enumerate() {
            match result {
                Ok((key, info, decoded)) => {
                    filled.keys.push(key);
                    filled.infos.push(info);
                    filled.decoded += usize::from(decoded);
                }
                Err(e) => filled.unreadable.push(Unreadable::from_error(index, e)?),
            }
        }
        Ok(filled)
    }

    /// `recipe.json` in the recipe's folder, so `brasa cache info` can say what it holds.
    fn describe_recipe(&self, recipe: &Recipe) -> Result<()> {
        let dir = self.recipe_dir(recipe);
        let path = dir.join("recipe.json");
        if !path.is_file() {
            let text = serde_json::to_string_pretty(&serde_json::json!({ "format": FORMAT, "recipe": recipe })).expect("recipes serialise");
            in_folder(&dir, || crate::atomic_file::write_atomic(&path, text.as_bytes()))?;
        }
        Ok(())
    }

    /// What the cache holds, per recipe.
    pub fn info(&self) -> Result<CacheInfo> {
        let mut info = CacheInfo { root: self.root.clone(), recipes: Vec::new(), temporary: 0 };
        for dir in subfolders(&self.root.join("pixels"))? {
            let recipe = std::fs::read_to_string(dir.join("recipe.json"))
                .ok()
                .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
                .and_then(|value| serde_json::from_value::<Recipe>(value["recipe"].clone()).ok());
            let mut usage = RecipeUsage { key: file_name(&dir), recipe, entries: 0, bytes: 0, newest: None, oldest: None };
            for file in entry_files(&dir)? {
                if file.temporary {
                    info.temporary += 1;
                    continue;
                }
                usage.entries += 1;
                usage.bytes += file.bytes;
                usage.newest = usage.newest.max(Some(file.modified));
                usage.oldest = Some(usage.oldest.map_or(file.modified, |o: SystemTime| o.min(file.modified)));
            }
            info.recipes.push(usage);
        }
        info.recipes.sort_by_key(|recipe| std::cmp::Reverse(recipe.newest));
        Ok(info)
    }

    /// Removes the entries not used for `older_than` (all of them with `None`), and temporary
    /// files left by killed processes. A run using a removed entry decodes its file again.
    pub fn prune(&self, older_than: Option<Duration>) -> Result<Pruned> {
        let now = SystemTime::now();
        let mut pruned = Pruned::default();
        let old = |modified: SystemTime, age: Duration| now.duration_since(modified).is_ok_and(|d| d >= age);
        for dir in subfolders(&self.root.join("pixels"))? {
            for file in entry_files(&dir)? {
                let remove = if file.temporary { old(file.modified, STALE_TEMPORARY) } else { older_than.is_none_or(|age| old(file.modified, age)) };
                if remove {
                    match std::fs::remove_file(&file.path) {
                        Ok(()) => {
                            pruned.entries += usize::from(!file.temporary);
                            pruned.bytes += file.bytes;
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {} // another prune got there first
                        Err(e) => return Err(Error::io(&file.path, e)),
                    }
                } else {
                    pruned.kept += usize::from(!file.temporary);
                }
            }
            // empty shard folders, then the recipe's folder once nothing is left in it
            for shard in subfolders(&dir)? {
                let _ = std::fs::remove_dir(shard);
            }
            if subfolders(&dir)?.is_empty() {
                let _ = std::fs::remove_file(dir.join("recipe.json"));
                let _ = std::fs::remove_dir(&dir);
            }
        }
        Ok(pruned)
    }
}

/// One recipe's part of a cache: where its entries live, and reading them back.
#[derive(Debug, Clone)]
pub struct RecipeCache {
    dir: PathBuf,
    recipe: Recipe,
}

impl RecipeCache {
    /// Where the pixels of the file with content `key` are kept.
    pub fn entry_path(&self, key: &ContentKey) -> PathBuf {
        let hex = key.hex();
        self.dir.join(&hex[..2]).join(hex)
    }

    /// The pixels of the file at `path` with content `key`: from its entry, or, when the entry
    /// has gone since the cache was filled (pruned meanwhile), decoded again and written back. A
    /// file whose content no longer matches `key` is an error: it changed under the run.
    pub fn load(&self, key: &ContentKey, path: &Path) -> Result<RgbImage> {
        let entry = self.entry_path(key);
        if let Some(image) = read_pixels(&entry) {
            return Ok(image);
        }
        let bytes = std::fs::read(path).map_err(|e| Error::Image { path: path.to_path_buf(), message: e.to_string() })?;
        if ContentKey::of(&bytes) != *key {
            return Err(Error::Image { path: path.to_path_buf(), message: "the file changed while the run was using it".into() });
        }
        let image = decode_bytes(path, &bytes)?;
        let info = FileInfo { original_size: image.dimensions(), fingerprint: crate::dedup::fingerprint(&image) };
        let pixels = self.recipe.apply(image);
        write_entry(&entry, &info, &pixels)?;
        Ok(pixels)
    }
}

/// What `brasa cache info` shows.
#[derive(Debug)]
pub struct CacheInfo {
    pub root: PathBuf,
    pub recipes: Vec<RecipeUsage>,
    /// Temporary files (being written now, or left by a killed process).
    pub temporary: usize,
}

#[derive(Debug)]
pub struct RecipeUsage {
    pub key: String,
    /// `None` when `recipe.json` is missing or from another format.
    pub recipe: Option<Recipe>,
    pub entries: usize,
    pub bytes: u64,
    /// Modification times: an entry's is refreshed when a run uses it (at most daily).
    pub newest: Option<SystemTime>,
    pub oldest: Option<SystemTime>,
}

impl CacheInfo {
    pub fn entries(&self) -> usize {
        self.recipes.iter().map(|r| r.entries).sum()
    }

    pub fn bytes(&self) -> u64 {
        self.recipes.iter().map(|r| r.bytes).sum()
    }
}

/// What [`DiskCache::prune`] removed.
#[derive(Debug, Default, PartialEq)]
pub struct Pruned {
    pub entries: usize,
    pub bytes: u64,
    pub kept: usize,
}

struct EntryFile {
    path: PathBuf,
    bytes: u64,
    modified: SystemTime,
    temporary: bool,
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

fn subfolders(dir: &Path) -> Result<Vec<PathBuf>> {
    let read = match std::fs::read_dir(dir) {
        Ok(read) => read,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut dirs: Vec<PathBuf> = read.filter_map(|e| e.ok()).filter(|e| e.file_type().is_ok_and(|t| t.is_dir())).map(|e| e.path()).collect();
    dirs.sort();
    Ok(dirs)
}

/// The entries (and temporary files) of one recipe's folder.
fn entry_files(recipe_dir: &Path) -> Result<Vec<EntryFile>> {
    let mut files = Vec::new();
    for shard in subfolders(recipe_dir)? {
        let read = std::fs::read_dir(&shard).map_err(|e| Error::io(&shard, e))?;
        for entry in read.filter_map(|e| e.ok()) {
            let Ok(metadata) = entry.metadata() else { continue }; // removed meanwhile
            if !metadata.is_file() {
                continue;
            }
            files.push(EntryFile {
                temporary: file_name(&entry.path()).contains(TEMPORARY_SUFFIX),
                path: entry.path(),
                bytes: metadata.len(),
                modified: metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            });
        }
    }
    Ok(files)
}

/// One file: its key and what its entries say, and whether it had to be decoded.
fn fill_one(path: &Path, parts: &[RecipeCache]) -> Result<OneFile> {
    let bytes = std::fs::read(path).map_err(|e| Error::Image { path: path.to_path_buf(), message: e.to_string() })?;
    let key = ContentKey::of(&bytes);
    let entries: Vec<PathBuf> = parts.iter().map(|part| part.entry_path(&key)).collect();
    let present: Vec<Option<FileInfo>> = entries.iter().map(|entry| read_info(entry)).collect();
    if let Some(Some(info)) = present.first()
        && present.iter().all(|p| p.as_ref() == Some(info))
    {
        return Ok((key, *info, false));
    }
    let image = decode_bytes(path, &bytes)?;
    let info = FileInfo { original_size: image.dimensions(), fingerprint: crate::dedup::fingerprint(&image) };
    for ((part, entry), present) in parts.iter().zip(&entries).zip(&present) {
        if present.as_ref() != Some(&info) {
            write_entry(entry, &info, &part.recipe.apply(image.clone()))?;
        }
    }
    Ok((key, info, true))
}

fn header(info: &FileInfo, image: &RgbImage) -> [u8; HEADER] {
    let mut header = [0u8; HEADER];
    let mut at = 0;
    let mut put = |bytes: &[u8]| {
        header[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    put(MAGIC);
    put(&info.original_size.0.to_le_bytes());
    put(&info.original_size.1.to_le_bytes());
    put(&info.fingerprint.exact.to_le_bytes());
    for word in info.fingerprint.perceptual.0 {
        put(&word.to_le_bytes());
    }
    put(&image.width().to_le_bytes());
    put(&image.height().to_le_bytes());
    put(&crc32fast::hash(image.as_raw()).to_le_bytes());
    let checksum = crc32fast::hash(&header[..HEADER - 4]);
    header[HEADER - 4..].copy_from_slice(&checksum.to_le_bytes());
    header
}

/// The header's file info, pixel size and pixel checksum, if `bytes` starts with a valid header
/// and holds exactly the pixels it announces.
fn parse(bytes: &[u8], total_len: u64) -> Option<(FileInfo, (u32, u32), u32)> {
    if bytes.len() < HEADER || &bytes[..8] != MAGIC || crc32fast::hash(&bytes[..HEADER - 4]).to_le_bytes() != bytes[HEADER - 4..HEADER] {
        return None;
    }
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let exact = u128::from_le_bytes(bytes[16..32].try_into().expect("16 bytes"));
    let perceptual = Phash([u64_at(32), u64_at(40), u64_at(48), u64_at(56)]);
    let size = (u32_at(64), u32_at(68));
    let expected = HEADER as u64 + size.0 as u64 * size.1 as u64 * 3;
    (total_len == expected).then_some((FileInfo { original_size: (u32_at(8), u32_at(12)), fingerprint: Fingerprint { exact, perceptual } }, size, u32_at(72)))
}

/// The file info of a valid entry (reading its header only), refreshing its age when it has not
/// been used for a while; `None` when it is missing or damaged.
fn read_info(entry: &Path) -> Option<FileInfo> {
    let mut file = std::fs::File::open(entry).ok()?;
    let metadata = file.metadata().ok()?;
    let mut header = [0u8; HEADER];
    std::io::Read::read_exact(&mut file, &mut header).ok()?;
    let (info, _, _) = parse(&header, metadata.len())?;
    let stale = metadata.modified().ok().and_then(|m| SystemTime::now().duration_since(m).ok()).is_some_and(|age| age > REFRESH_AFTER);
    if stale {
        // best effort: a read-only cache still works, it just ages
        let _ = std::fs::OpenOptions::new().append(true).open(entry).and_then(|f| f.set_modified(SystemTime::now()));
    }
    Some(info)
}

/// The pixels of a valid entry; `None` when it is missing or damaged (its pixels no longer
/// match their checksum: a CRC-32 costs ~0.1 ms for a 224x224 entry, next to a decode's ~2 ms).
fn read_pixels(entry: &Path) -> Option<RgbImage> {
    use std::io::Read;
    let mut file = std::fs::File::open(entry).ok()?;
    let len = file.metadata().ok()?.len();
    let mut header = [0u8; HEADER];
    file.read_exact(&mut header).ok()?;
    let (_, (width, height), checksum) = parse(&header, len)?;
    let mut pixels = vec![0u8; (len - HEADER as u64) as usize];
    file.read_exact(&mut pixels).ok()?;
    (crc32fast::hash(&pixels) == checksum).then_some(())?;
    RgbImage::from_raw(width, height, pixels)
}

/// Runs `create` (which makes a file in `dir`) after making `dir`, again when `dir` vanished in
/// between: `brasa cache prune` removes empty folders, and one a run has just made is empty
/// until the run's file is in it.
fn in_folder<T>(dir: &Path, mut create: impl FnMut() -> Result<T>) -> Result<T> {
    const TRIES: usize = 5;
    for _ in 1..TRIES {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        match create() {
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => continue,
            other => return other,
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    create()
}

/// Writes an entry whole (a temporary file in its folder, renamed into place). Not synced: a
/// torn entry fails its length check and is decoded again.
fn write_entry(entry: &Path, info: &FileInfo, image: &RgbImage) -> Result<()> {
    let dir = entry.parent().expect("entries live in shard folders");
    let mut builder = tempfile::Builder::new();
    builder.prefix(".").suffix(TEMPORARY_SUFFIX);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o644));
    }
    let mut file = in_folder(dir, || builder.tempfile_in(dir).map_err(|e| Error::io(dir, e)))?;
    let mut writer = std::io::BufWriter::new(file.as_file_mut());
    writer.write_all(&header(info, image)).and_then(|()| writer.write_all(image.as_raw())).and_then(|()| writer.flush()).map_err(|e| Error::io(entry, e))?;
    drop(writer);
    file.persist(entry).map_err(|e| Error::io(entry, e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::{Interpolation, ResizeTo};

    fn picture(seed: u8) -> RgbImage {
        RgbImage::from_fn(40, 30, |x, y| image::Rgb([(x * 6) as u8 ^ seed, (y * 8) as u8, seed]))
    }

    fn items(dir: &Path, count: u8) -> Vec<Item> {
        (0..count)
            .map(|i| {
                let path = dir.join(format!("{i}.png"));
                picture(i * 20).save(&path).unwrap();
                Item { path, label: 0 }
            })
            .collect()
    }

    const SMALL: Recipe = Recipe { resize: Some((ResizeTo::Exact { height: 8, width: 12 }, Interpolation::Bilinear)), center_crop: None };
    const STORED: Recipe = Recipe { resize: None, center_crop: None };

    #[test]
    fn a_second_fill_decodes_nothing_and_loads_the_same_pixels() {
        let dir = tempfile::tempdir().unwrap();
        let items = items(dir.path(), 3);
        let cache = DiskCache::open(&dir.path().join("cache")).unwrap();
        let first = cache.fill(&items, &[SMALL, STORED], &Progress::hidden(), "test").unwrap();
        assert_eq!(first.decoded, 3);
        let again = cache.fill(&items, &[SMALL, STORED], &Progress::hidden(), "test").unwrap();
        assert_eq!(again.decoded, 0);
        assert_eq!(again.infos, first.infos);
        for (item, (key, info)) in items.iter().zip(first.keys.iter().zip(&first.infos)) {
            let decoded = super::super::images::read_rgb(&item.path).unwrap();
            assert_eq!(info.original_size, (40, 30));
            assert_eq!(info.fingerprint, crate::dedup::fingerprint(&decoded));
            assert_eq!(cache.for_recipe(&STORED).load(key, &item.path).unwrap(), decoded);
            assert_eq!(cache.for_recipe(&SMALL).load(key, &item.path).unwrap(), SMALL.apply(decoded));
        }
        let info = cache.info().unwrap();
        assert_eq!((info.recipes.len(), info.entries(), info.temporary), (2, 6, 0));
        assert!(info.recipes.iter().all(|r| r.recipe.is_some()));
    }

    #[test]
    fn a_changed_file_gets_a_new_entry_and_a_damaged_entry_is_decoded_again() {
        let dir = tempfile::tempdir().unwrap();
        let items = items(dir.path(), 2);
        let cache = DiskCache::open(&dir.path().join("cache")).unwrap();
        let first = cache.fill(&items, &[SMALL], &Progress::hidden(), "test").unwrap();

        picture(99).save(&items[0].path).unwrap();
        let entry = cache.entry_path(&SMALL, &first.keys[1]);
        std::fs::write(&entry, &std::fs::read(&entry).unwrap()[..HEADER + 5]).unwrap(); // torn
        let again = cache.fill(&items, &[SMALL], &Progress::hidden(), "test").unwrap();
        assert_eq!(again.decoded, 2);
        assert_ne!(again.keys[0], first.keys[0]);
        assert_eq!(again.keys[1], first.keys[1]);
        assert_eq!(cache.for_recipe(&SMALL).load(&again.keys[0], &items[0].path).unwrap(), SMALL.apply(picture(99)));

        // the right length, but blocks of zeros where pixels were, or a changed header field
        let entry = cache.entry_path(&SMALL, &again.keys[1]);
        let whole = std::fs::read(&entry).unwrap();
        let mut zeroed = whole.clone();
        zeroed[HEADER..].fill(0);
        std::fs::write(&entry, &zeroed).unwrap();
        assert_eq!(cache.for_recipe(&SMALL).load(&again.keys[1], &items[1].path).unwrap(), SMALL.apply(picture(20)));
        assert_eq!(std::fs::read(&entry).unwrap(), whole, "the damaged entry is written again");
        let mut header = whole.clone();
        header[8] ^= 1; // the stored width
        std::fs::write(&entry, &header).unwrap();
        let refilled = cache.fill(&items, &[SMALL], &Progress::hidden(), "test").unwrap();
        assert_eq!((refilled.decoded, refilled.infos[1].original_size), (1, picture(20).dimensions()));

        // the run's key no longer matches the file: an error, not other pixels
        std::fs::remove_file(cache.entry_path(&SMALL, &first.keys[0])).ok();
        let err = cache.for_recipe(&SMALL).load(&first.keys[0], &items[0].path).unwrap_err().to_string();
        assert!(err.contains("changed") && err.contains("0.png"), "{err}");
    }

    #[test]
    fn a_folder_a_prune_removes_before_the_file_is_in_it_is_made_again() {
        let dir = tempfile::tempdir().unwrap();
        let shard = dir.path().join("recipe").join("ab");
        let mut pruned = 0;
        let file = in_folder(&shard, || {
            if pruned < 2 {
                // a concurrent prune: the empty folders go between their making and the write
                std::fs::remove_dir_all(dir.path().join("recipe")).unwrap();
                pruned += 1;
            }
            tempfile::Builder::new().tempfile_in(&shard).map_err(|e| Error::io(&shard, e))
        })
        .unwrap();
        assert_eq!((pruned, file.path().parent()), (2, Some(shard.as_path())));
    }

    #[test]
    fn a_pruned_entry_is_decoded_again_when_used() {
        let dir = tempfile::tempdir().unwrap();
        let items = items(dir.path(), 2);
        let cache = DiskCache::open(&dir.path().join("cache")).unwrap();
        let filled = cache.fill(&items, &[SMALL], &Progress::hidden(), "test").unwrap();
        assert_eq!(cache.prune(Some(Duration::from_secs(3600))).unwrap(), Pruned { entries: 0, bytes: 0, kept: 2 });
        let pruned = cache.prune(None).unwrap();
        assert_eq!((pruned.entries, pruned.kept), (2, 0));
        assert_eq!(cache.info().unwrap().entries(), 0);
        let image = cache.for_recipe(&SMALL).load(&filled.keys[1], &items[1].path).unwrap();
        assert_eq!(image, SMALL.apply(picture(20)));
        assert_eq!(cache.info().unwrap().entries(), 1);
    }

    #[test]
    fn processes_filling_one_cache_at_once_agree() {
        let dir = tempfile::tempdir().unwrap();
        let items = items(dir.path(), 6);
        let root = dir.path().join("cache");
        let fills: Vec<Filled> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4).map(|_| scope.spawn(|| DiskCache::open(&root).unwrap().fill(&items, &[SMALL], &Progress::hidden(), "test").unwrap())).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(fills.iter().all(|f| f.infos == fills[0].infos));
        let cache = DiskCache::open(&root).unwrap();
        let info = cache.info().unwrap();
        assert_eq!((info.entries(), info.temporary), (6, 0));
        assert_eq!(cache.fill(&items, &[SMALL], &Progress::hidden(), "test").unwrap().decoded, 0);
    }
}
