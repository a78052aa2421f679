//! Where a run keeps its decoded images (`data.cache`): in memory, in the shared on-disk cache,
//! or nowhere (decoded again whenever needed). Every mode yields the same pixels, so a spec and
//! seed give the same numbers whichever is used.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;

use image::RgbImage;
use rayon::prelude::*;

use super::Item;
use super::cache::{ContentKey, DiskCache, RecipeCache};
use super::images::{self, Recipe, Unreadable, read_rgb};
use crate::dedup::Fingerprint;
use crate::error::Result;
use crate::progress::Progress;

/// `data.cache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheMode {
    /// `Memory` when the decoded images fit comfortably in the available memory, else `Disk`.
    Auto,
    Memory,
    Disk,
    None,
}

impl CacheMode {
    pub fn name(self) -> &'static str {
        match self {
            CacheMode::Auto => "auto",
            CacheMode::Memory => "memory",
            CacheMode::Disk => "disk",
            CacheMode::None => "none",
        }
    }
}

/// Runs of brasa sharing this machine's memory (set by a sweep for its trials: `--jobs`), which
/// `auto` counts when it estimates what keeping the images in memory takes.
pub const RUNS_AT_ONCE_ENV: &str = "BRASA_RUNS_AT_ONCE";

/// `auto`'s margin: memory when the images need at most this share of what is available.
pub const AUTO_MEMORY_SHARE: f64 = 0.5;

/// What `auto` chose and why.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AutoChoice {
    pub mode: CacheMode,
    /// Estimated bytes of the decoded images, for all the processes sharing the machine.
    pub needed: u64,
    pub available: u64,
}

impl AutoChoice {
    /// Memory when `needed` is at most [`AUTO_MEMORY_SHARE`] of `available`, else disk.
    pub fn new(needed: u64, available: u64) -> Self {
        let fits = needed as f64 <= available as f64 * AUTO_MEMORY_SHARE;
        Self { mode: if fits { CacheMode::Memory } else { CacheMode::Disk }, needed, available }
    }
}

/// Memory this process can use without swapping or being killed, in bytes (`None` where it cannot
/// be read): the least of what the host has available, what its cgroup (a container's, a Slurm
/// job's) leaves free under its limit, and the Slurm job's own memory limit.
pub fn available_memory() -> Option<u64> {
    let mut system = sysinfo::System::new();
    system.refresh_memory();
    let host = Some(system.available_memory()).filter(|&bytes| bytes > 0)?;
    let cgroup = sysinfo::get_current_pid().ok().and_then(|pid| {
        system.refresh_processes_specifics(
            sysinfo::ProcessesToUpdate::Some(&[pid]),
            false,
            sysinfo::ProcessRefreshKind::nothing(),
        );
        system.process(pid)?.cgroup_limits().map(|limits| limits.free_memory)
    });
    let slurm = slurm_memory_limit(|name| std::env::var(name).ok());
    Some([Some(host), cgroup, slurm].into_iter().flatten().min().unwrap_or(host))
}

/// The memory a Slurm job may use on this node, in bytes, from its environment:
/// `SLURM_MEM_PER_NODE`, or `SLURM_MEM_PER_CPU` × `SLURM_CPUS_ON_NODE` (both in MB). Slurm kills a
/// job over it even where no cgroup enforces it.
fn slurm_memory_limit(var: impl Fn(&str) -> Option<String>) -> Option<u64> {
    let megabytes = |name: &str| var(name)?.trim().parse::<u64>().ok().filter(|&mb| mb > 0);
    let bytes = |mb: u64| mb.saturating_mul(1024 * 1024);
    if let Some(per_node) = megabytes("SLURM_MEM_PER_NODE") {
        return Some(bytes(per_node));
    }
    let per_cpu = megabytes("SLURM_MEM_PER_CPU")?;
    let cpus = megabytes("SLURM_CPUS_ON_NODE").unwrap_or(1);
    Some(bytes(per_cpu.saturating_mul(cpus)))
}

/// One form (recipe) of a list of images, wherever it is kept.
pub enum Pixels {
    Memory(Vec<RgbImage>),
    Disk { cache: RecipeCache, keys: Arc<Vec<ContentKey>>, files: Arc<Vec<PathBuf>> },
    Decode { recipe: Recipe, files: Arc<Vec<PathBuf>> },
}

impl Pixels {
    pub fn len(&self) -> usize {
        match self {
            Pixels::Memory(images) => images.len(),
            Pixels::Disk { files, .. } | Pixels::Decode { files, .. } => files.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Image `i`: borrowed from memory, read from the cache or decoded now. An error names the
    /// file (one that changed or vanished since the run started).
    pub fn get(&self, i: usize) -> Result<Cow<'_, RgbImage>> {
        match self {
            Pixels::Memory(images) => Ok(Cow::Borrowed(&images[i])),
            Pixels::Disk { cache, keys, files } => Ok(Cow::Owned(cache.load(&keys[i], &files[i])?)),
            Pixels::Decode { recipe, files } => Ok(Cow::Owned(recipe.apply(read_rgb(&files[i])?))),
        }
    }
}

/// A list of images in each recipe asked for, with what the run needs of every file.
pub struct Loaded {
    /// One per recipe, in the order asked.
    pub per_recipe: Vec<Pixels>,
    /// `(width, height)` of each file as stored.
    pub original_sizes: Vec<(u32, u32)>,
    pub fingerprints: Vec<Fingerprint>,
    /// Files decoded now (with `Disk`, those not in the cache yet).
    pub decoded: usize,
    /// The items that cannot be read, by index; every list above holds the others only, in order.
    pub unreadable: Vec<Unreadable>,
}

/// Makes `items` available in each of `recipes` the way `mode` says (`Auto` must be resolved
/// first); `cache` is used with `Disk`.
pub fn load(items: &[Item], recipes: &[Recipe], mode: CacheMode, cache: Option<&DiskCache>, progress: &Progress, what: &str) -> Result<Loaded> {
    // the files of the readable items, once the unreadable ones are known
    let readable = |unreadable: &[Unreadable]| {
        let mut bad = unreadable.iter().map(|u| u.index).peekable();
        let files = items.iter().enumerate().filter(|(i, _)| bad.next_if_eq(i).is_none()).map(|(_, item)| item.path.clone());
        Arc::new(files.collect::<Vec<_>>())
    };
    match mode {
        CacheMode::Memory | CacheMode::Auto => {
            let decoded = images::decode_all(items, recipes, progress, what)?;
            Ok(Loaded {
                per_recipe: decoded.per_recipe.into_iter().map(Pixels::Memory).collect(),
                original_sizes: decoded.original_sizes,
                fingerprints: decoded.fingerprints,
                decoded: items.len() - decoded.unreadable.len(),
                unreadable: decoded.unreadable,
            })
        }
        CacheMode::Disk => {
            let cache = cache.expect("the disk mode needs a cache");
            let filled = cache.fill(items, recipes, progress, what)?;
            let (keys, files) = (Arc::new(filled.keys), readable(&filled.unreadable));
            Ok(Loaded {
                per_recipe: recipes.iter().map(|recipe| Pixels::Disk { cache: cache.for_recipe(recipe), keys: keys.clone(), files: files.clone() }).collect(),
                original_sizes: filled.infos.iter().map(|i| i.original_size).collect(),
                fingerprints: filled.infos.iter().map(|i| i.fingerprint).collect(),
                decoded: filled.decoded,
                unreadable: filled.unreadable,
            })
        }
        CacheMode::None => {
            // one pass for the sizes and fingerprints, keeping no pixels
            let decoded = images::decode_all(items, &[], progress, what)?;
            let files = readable(&decoded.unreadable);
            Ok(Loaded {
                per_recipe: recipes.iter().map(|&recipe| Pixels::Decode { recipe, files: files.clone() }).collect(),
                original_sizes: decoded.original_sizes,
                fingerprints: decoded.fingerprints,
                decoded: items.len() - decoded.unreadable.len(),
                unreadable: decoded.unreadable,
            })
        }
    }
}

/// Files whose stored size is read to estimate a recipe that keeps it.
const ESTIMATE_SAMPLE: usize = 64;

/// Bytes that `items` decoded in `recipes` take in memory: exact for recipes of a fixed size,
/// from a sample of the files' stored sizes (their headers only) otherwise.
pub fn estimate_bytes(items: &[Item], recipes: &[Recipe]) -> u64 {
    if items.is_empty() {
        return 0;
    }
    let step = items.len().div_ceil(ESTIMATE_SAMPLE);
    let sample: Vec<(u32, u32)> = items.iter().step_by(step).filter_map(|item| image::image_dimensions(&item.path).ok()).collect();
    let per_image: f64 = recipes
        .iter()
        .map(|recipe| {
            let sizes: Vec<(u32, u32)> = if sample.is_empty() { vec![recipe.output_size((512, 512))] } else { sample.par_iter().map(|&s| recipe.output_size(s)).collect() };
            sizes.iter().map(|&(w, h)| 3.0 * w as f64 * h as f64).sum::<f64>() / sizes.len() as f64
        })
        .sum();
    (per_image * items.len() as f64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::{Interpolation, ResizeTo};

    #[test]
    fn every_mode_gives_the_same_pixels_sizes_and_fingerprints() {
        let dir = tempfile::tempdir().unwrap();
        let items: Vec<Item> = (0..4u8)
            .map(|i| {
                let path = dir.path().join(format!("{i}.jpg"));
                RgbImage::from_fn(30 + i as u32, 20, |x, y| image::Rgb([(x * 7) as u8, (y * 9) as u8 ^ i, i * 50])).save(&path).unwrap();
                Item { path, label: 0 }
            })
            .collect();
        let recipes = [
            Recipe { resize: Some((ResizeTo::Exact { height: 8, width: 8 }, Interpolation::Bicubic)), center_crop: None },
            Recipe { resize: Some((ResizeTo::ShorterEdge(10), Interpolation::Bilinear)), center_crop: Some((9, 9)) },
            Recipe { resize: None, center_crop: None },
        ];
        let cache = DiskCache::open(&dir.path().join("cache")).unwrap();
        let hidden = Progress::hidden();
        let loads: Vec<Loaded> = [CacheMode::Memory, CacheMode::Disk, CacheMode::None]
            .into_iter()
            .map(|mode| load(&items, &recipes, mode, Some(&cache), &hidden, "test").unwrap())
            .collect();
        for loaded in &loads[1..] {
            assert_eq!(loaded.original_sizes, loads[0].original_sizes);
            assert_eq!(loaded.fingerprints, loads[0].fingerprints);
            for (form, reference) in loaded.per_recipe.iter().zip(&loads[0].per_recipe) {
                assert_eq!(form.len(), items.len());
                for i in 0..items.len() {
                    assert_eq!(*form.get(i).unwrap(), *reference.get(i).unwrap());
                }
            }
        }
        for (recipe, form) in recipes.iter().zip(&loads[0].per_recipe) {
            for (i, &size) in loads[0].original_sizes.iter().enumerate() {
                assert_eq!(form.get(i).unwrap().dimensions(), recipe.output_size(size));
            }
        }
    }

    #[test]
    fn the_estimate_counts_each_recipe_and_auto_leaves_a_margin() {
        let dir = tempfile::tempdir().unwrap();
        let items: Vec<Item> = (0..10)
            .map(|i| {
                let path = dir.path().join(format!("{i}.png"));
                RgbImage::new(40, 20).save(&path).unwrap();
                Item { path, label: 0 }
            })
            .collect();
        let fixed = Recipe { resize: Some((ResizeTo::Exact { height: 4, width: 5 }, Interpolation::Bilinear)), center_crop: None };
        let stored = Recipe { resize: None, center_crop: None };
        assert_eq!(estimate_bytes(&items, &[fixed]), 10 * 4 * 5 * 3);
        assert_eq!(estimate_bytes(&items, &[fixed, stored]), 10 * (4 * 5 + 40 * 20) * 3);
        assert_eq!(AutoChoice::new(50, 100).mode, CacheMode::Memory);
        assert_eq!(AutoChoice::new(51, 100).mode, CacheMode::Disk);
    }

    #[test]
    fn a_slurm_job_limit_is_read_from_its_environment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(key, _)| *key == name).map(|(_, value)| value.to_string())
        };
        const MB: u64 = 1024 * 1024;
        assert_eq!(slurm_memory_limit(env(&[])), None);
        assert_eq!(slurm_memory_limit(env(&[("SLURM_MEM_PER_NODE", "4000")])), Some(4000 * MB));
        assert_eq!(
            slurm_memory_limit(env(&[("SLURM_MEM_PER_CPU", "1000"), ("SLURM_CPUS_ON_NODE", "3")])),
            Some(3000 * MB)
        );
        assert_eq!(slurm_memory_limit(env(&[("SLURM_MEM_PER_CPU", "1000")])), Some(1000 * MB));
        // 0 means "all the node's memory" to Slurm: no limit of its own.
        assert_eq!(slurm_memory_limit(env(&[("SLURM_MEM_PER_NODE", "0")])), None);
        assert_eq!(slurm_memory_limit(env(&[("SLURM_MEM_PER_NODE", "lots")])), None);
    }

    #[test]
    fn available_memory_is_at_most_the_hosts() {
        let mut system = sysinfo::System::new();
        system.refresh_memory();
        let available = available_memory().unwrap();
        assert!(available > 0 && available <= system.total_memory());
    }
}
