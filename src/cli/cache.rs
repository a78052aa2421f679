//! `brasa cache info | prune | export | import`: the shared on-disk cache of decoded images
//! (`data.cache = "disk"`, or `auto` on a dataset too big for memory) — what it holds, and removing
//! what runs no longer use — and, in a build with a GPU backend, what burn's GPU backends keep
//! between runs (autotune results, CUDA's compiled kernels), which can also travel to another
//! machine as a file.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use brasa::Result;
#[cfg(any(feature = "gpu-backend", feature = "cuda"))]
use brasa::backend::gpu_cache::GpuCache;
use brasa::data::cache::{self, DiskCache};
use brasa::fmt::{display_path, megabytes};
use clap::{ArgGroup, Args, Subcommand};

#[derive(Debug, Args)]
pub struct CacheArgs {
    #[command(subcommand)]
    command: CacheCommand,
}

#[derive(Debug, Subcommand)]
enum CacheCommand {
    /// What the cache holds: images and bytes per recipe, and when each was last used.
    Info(WhichCache),
    /// Remove cached images not used for a while (--older-than 30d), or all of them (--all);
    /// a run that needs a removed image decodes it again. --gpu removes the GPU autotune results
    /// and compiled kernels.
    #[command(group(ArgGroup::new("what").required(true).multiple(true).args(["older_than", "all", "gpu"])))]
    Prune(PruneArgs),
    /// Write the GPU autotune results and compiled kernels of runs started in this folder to FILE
    /// (a cubecl bundle), for another machine with the same GPU and the same brasa binary.
    Export(ExportArgs),
    /// Add a GPU cache bundle (from `brasa cache export`) to the cache of runs started in this
    /// folder, so their first steps skip autotuning and compiling; entries already here are kept.
    Import(ImportArgs),
}

#[derive(Debug, Args)]
struct ExportArgs {
    /// The bundle to write (replaced if it exists).
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Only CUDA's compiled kernels, no autotune results (e.g. from scripts/cuda-dry-run.sh,
    /// whose stand-in device's timings mean nothing).
    #[arg(long)]
    kernels_only: bool,
}

#[derive(Debug, Args)]
struct ImportArgs {
    /// The bundle to add.
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

#[derive(Debug, Args)]
struct WhichCache {
    /// The cache folder (default: $BRASA_CACHE, else reports/.cache).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

impl WhichCache {
    fn dir(&self) -> PathBuf {
        self.dir.clone().unwrap_or_else(cache::default_dir)
    }

    /// The cache, or `None` when its folder holds none (nothing is created to look at it).
    fn open(&self) -> Result<Option<DiskCache>> {
        Ok(DiskCache::existing(&self.dir()))
    }
}

#[derive(Debug, Args)]
struct PruneArgs {
    #[command(flatten)]
    which: WhichCache,
    /// Remove images not used for this long, e.g. 30d, 12h (runs refresh what they use daily).
    #[arg(long, value_name = "AGE", value_parser = humantime::parse_duration)]
    older_than: Option<Duration>,
    /// Remove every cached image.
    #[arg(long, conflicts_with = "older_than")]
    all: bool,
    /// Remove what burn's GPU backends keep for runs started in this folder: autotune results and
    /// CUDA's compiled kernels (cubecl's environment database); the next GPU run autotunes and
    /// compiles again.
    #[arg(long)]
    gpu: bool,
}

pub fn execute(args: CacheArgs) -> Result<()> {
    match args.command {
        CacheCommand::Info(which) => info(&which),
        CacheCommand::Prune(args) => prune(&args),
        CacheCommand::Export(args) => super::print_out(&export(&args)?),
        CacheCommand::Import(args) => super::print_out(&import(&args)?),
    }
}

#[cfg(any(feature = "gpu-backend", feature = "cuda"))]
fn export(args: &ExportArgs) -> Result<String> {
    let cache = GpuCache::locate()?;
    let contents = cache.export(&args.file, args.kernels_only)?;
    let size = std::fs::metadata(&args.file).map(|m| megabytes(m.len())).unwrap_or_default();
    Ok(format!("gpu: {} → {} ({}, {size})\n", display_path(&cache.database), display_path(&args.file), contents.describe()))
}

#[cfg(any(feature = "gpu-backend", feature = "cuda"))]
fn import(args: &ImportArgs) -> Result<String> {
    let imported = brasa::backend::gpu_cache::import(&args.file)?;
    let cache = &imported.cache;
    let log = if imported.folded { "" } else { "; its write-ahead log stays beside it until a later import: another process was using the cache" };
    Ok(format!(
        "gpu: {} → {} ({}: {} entries added, {} already there; the cache now {}{log})\n",
        display_path(&args.file),
        display_path(&cache.database),
        imported.contents.describe(),
        imported.added,
        imported.kept,
        megabytes(cache.bytes()),
    ))
}

#[cfg(not(any(feature = "gpu-backend", feature = "cuda")))]
fn export(_: &ExportArgs) -> Result<String> {
    Err(no_gpu_backend("brasa cache export"))
}

#[cfg(not(any(feature = "gpu-backend", feature = "cuda")))]
fn import(_: &ImportArgs) -> Result<String> {
    Err(no_gpu_backend("brasa cache import"))
}

fn info(which: &WhichCache) -> Result<()> {
    let mut text = images_info(which)?;
    text.push_str(&gpu_info()?);
    super::print_out(&text)
}

fn images_info(which: &WhichCache) -> Result<String> {
    let Some(cache) = which.open()? else {
        return Ok(format!("cache: {} (0 images: no cache there yet)\n", display_path(&which.dir())));
    };
    let info = cache.info()?;
    let mut text = format!(
        "cache: {} ({} images in {} recipe(s), {})\n",
        display_path(&info.root),
        info.entries(),
        info.recipes.len(),
        megabytes(info.bytes())
    );
    for recipe in &info.recipes {
        let what = recipe.recipe.map(|r| r.describe()).unwrap_or_else(|| "(unknown recipe)".into());
        let used = recipe.newest.map(ago).unwrap_or_else(|| "never".into());
        text.push_str(&format!("  {}  {what}: {} images, {}, last used {used}\n", recipe.key, recipe.entries, megabytes(recipe.bytes)));
    }
    if info.temporary > 0 {
        text.push_str(&format!("  {} temporary file(s) (being written, or left by a killed process: `brasa cache prune` removes those over an hour old)\n", info.temporary));
    }
    Ok(text)
}

/// The GPU backends' line of `info`: where cubecl keeps them for this folder, and how big.
#[cfg(any(feature = "gpu-backend", feature = "cuda"))]
fn gpu_info() -> Result<String> {
    let cache = GpuCache::locate()?;
    let path = display_path(&cache.database);
    Ok(if cache.files.is_empty() {
        format!("gpu: {path} (GPU autotune results and compiled kernels: none yet for runs started here)\n")
    } else {
        format!(
            "gpu: {path} (GPU autotune results and compiled kernels for runs started here, {}; `brasa cache prune --gpu` removes them)\n",
            megabytes(cache.bytes())
        )
    })
}

#[cfg(not(any(feature = "gpu-backend", feature = "cuda")))]
fn gpu_info() -> Result<String> {
    Ok(String::new())
}

fn prune(args: &PruneArgs) -> Result<()> {
    // the GPU part first: a build without a GPU backend refuses --gpu before any image is removed
    let gpu = if args.gpu { prune_gpu()? } else { String::new() };
    let images = if args.all || args.older_than.is_some() { prune_images(args)? } else { String::new() };
    super::print_out(&(images + &gpu))
}

fn prune_images(args: &PruneArgs) -> Result<String> {
    let Some(cache) = args.which.open()? else {
        return Ok(format!("cache: {}: removed 0 image(s) (no cache there)\n", display_path(&args.which.dir())));
    };
    let pruned = cache.prune(if args.all { None } else { args.older_than })?;
    Ok(format!(
        "cache: {}: removed {} image(s) ({}), kept {}\n",
        display_path(cache.root()),
        pruned.entries,
        megabytes(pruned.bytes),
        pruned.kept
    ))
}

#[cfg(any(feature = "gpu-backend", feature = "cuda"))]
fn prune_gpu() -> Result<String> {
    let cache = GpuCache::locate()?;
    let freed = cache.remove()?;
    Ok(format!("gpu: {}: removed {} file(s) ({})\n", display_path(&cache.database), cache.files.len(), megabytes(freed)))
}

#[cfg(not(any(feature = "gpu-backend", feature = "cuda")))]
fn prune_gpu() -> Result<String> {
    Err(no_gpu_backend("--gpu"))
}

#[cfg(not(any(feature = "gpu-backend", feature = "cuda")))]
fn no_gpu_backend(flag: &str) -> brasa::Error {
    brasa::Error::Usage {
        flag: flag.into(),
        message: "needs a brasa built with a GPU backend (cargo build --release --features gpu); this one keeps nothing for a GPU".into(),
    }
}

fn ago(time: SystemTime) -> String {
    let seconds = SystemTime::now().duration_since(time).map(|d| d.as_secs()).unwrap_or(0);
    let stamp = humantime::format_rfc3339_seconds(time);
    match seconds {
        0..3600 => format!("{stamp} ({} min ago)", seconds / 60),
        3600..172800 => format!("{stamp} ({} h ago)", seconds / 3600),
        _ => format!("{stamp} ({} days ago)", seconds / 86400),
    }
}
