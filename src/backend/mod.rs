//! Compute backends: which burn device a run uses, chosen at run time.
//!
//! `flex` (burn's pure-Rust CPU backend) is always built. The GPU backend (burn's wgpu stack on
//! Vulkan, Metal on macOS, DX12) is the cargo feature `gpu`, CUDA the feature `cuda`.
//! `auto` takes the first real GPU adapter, else CUDA in a binary built with it, else flex; a software rasteriser
//! (Mesa's llvmpipe / lavapipe, SwiftShader) is used only when `wgpu` is named. What was chosen,
//! and why, is a [`Chosen`]: the log, `meta.json`, the report and `brasa validate` show it.

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[cfg(any(feature = "cuda", test))]
pub mod cuda_setup;
#[cfg(any(feature = "gpu-backend", feature = "cuda"))]
pub mod gpu_cache;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The first real GPU adapter, else CUDA where built and usable, else flex.
    Auto,
    Flex,
    Wgpu,
    Cuda,
}

impl Backend {
    pub const ALL: [Backend; 4] = [Backend::Auto, Backend::Flex, Backend::Wgpu, Backend::Cuda];

    pub fn name(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::Flex => "flex",
            Backend::Wgpu => "wgpu",
            Backend::Cuda => "cuda",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.name() == name)
    }

    /// Picks the device: `index` is `runtime.device` (among GPU adapters for `auto` and
    /// `wgpu`, a CUDA ordinal for `cuda`).
    pub fn choose(self, index: Option<usize>) -> Result<Chosen> {
        match self {
            Backend::Flex => {
                if index.is_some_and(|i| i > 0) {
                    return Err(Error::Backend("runtime.device: flex has one device, 0".into()));
                }
                Ok(Chosen::flex("runtime.backend = \"flex\""))
            }
            Backend::Auto => {
                let adapters = adapters();
                let gpus: Vec<&Adapter> = adapters.iter().filter(|a| !a.software).collect();
                match (index, gpus.is_empty()) {
                    (_, true) => {
                        let no_gpu = if !gpu_built() {
                            "this brasa was built without the Vulkan/Metal GPU backend (cargo feature `gpu`)".to_string()
                        } else if adapters.is_empty() {
                            "no Vulkan/Metal GPU adapter found".to_string()
                        } else {
                            format!(
                                "no Vulkan/Metal GPU adapter found (only the software rasteriser {}, used only when runtime.backend = \"wgpu\" names it)",
                                adapters[0].name
                            )
                        };
                        auto_without_adapter(index, no_gpu)
                    }
                    (Some(i), false) if i >= gpus.len() => Err(Error::Backend(format!(
                        "runtime.device = {i}, but this machine has {} GPU adapter(s): {}",
                        gpus.len(),
                        listing(&gpus)
                    ))),
                    (index, false) => {
                        let adapter = gpus[index.unwrap_or(0)];
                        let why = match index {
                            Some(i) => format!("runtime.backend = \"auto\", runtime.device = {i}"),
                            None if gpus.len() > 1 => format!("first of {} GPU adapters ({})", gpus.len(), listing(&gpus)),
                            None => "the GPU adapter found".to_string(),
                        };
                        Ok(Chosen::gpu(adapter, why))
                    }
                }
            }
            Backend::Wgpu => {
                if !gpu_built() {
                    return Err(Error::Backend(
                        "this brasa was built without the GPU backend; rebuild it with \
                         `cargo build --release --features gpu`"
                            .into(),
                    ));
                }
                let adapters = adapters();
                if adapters.is_empty() {
                    return Err(Error::Backend(
                        "runtime.backend = \"wgpu\" but no GPU adapter was found (no Vulkan/Metal driver answered; \
                         on Linux install the GPU's Vulkan driver and libvulkan1, or mesa-vulkan-drivers for the software one); \
                         runtime.backend = \"auto\" falls back to flex"
                            .into(),
                    ));
                }
                // real GPUs first, then software rasterisers
                let mut ordered: Vec<&Adapter> = adapters.iter().filter(|a| !a.software).collect();
                ordered.extend(adapters.iter().filter(|a| a.software));
                let i = index.unwrap_or(0);
                let Some(adapter) = ordered.get(i) else {
                    return Err(Error::Backend(format!(
                        "runtime.device = {i}, but this machine has {} adapter(s): {}",
                        ordered.len(),
                        listing(&ordered)
                    )));
                };
                let why = match (index, adapter.software) {
                    (_, true) => "runtime.backend = \"wgpu\" and no real GPU adapter: the software rasteriser (slow; for testing)".to_string(),
                    (Some(i), false) => format!("runtime.backend = \"wgpu\", runtime.device = {i}"),
                    (None, false) => "runtime.backend = \"wgpu\"".to_string(),
                };
                Ok(Chosen::gpu(adapter, why))
            }
            Backend::Cuda => cuda(index.unwrap_or(0)),
        }
    }
}

/// `auto` on a machine without a Vulkan/Metal GPU (`no_gpu` says why): CUDA device `index` when
/// this binary has CUDA and the machine can run it, else flex. Vulkan comes first because it is
/// what has been measured on a card; a binary built with CUDA alone still finds its GPU.
#[cfg(feature = "cuda")]
fn auto_without_adapter(index: Option<usize>, no_gpu: String) -> Result<Chosen> {
    match cuda_setup::CudaSetup::find() {
        Ok(setup) => match open_cuda(index.unwrap_or(0), format!("{no_gpu}; CUDA can run here"), &setup) {
            Ok(chosen) => Ok(chosen),
            // a device the spec names is not silently replaced by the CPU
            Err(why) if index.is_some() => Err(Error::Backend(format!("runtime.backend = \"auto\", runtime.device: {why}"))),
            Err(why) => Ok(Chosen::flex(&format!("{no_gpu}; {why}; using flex"))),
        },
        Err(why) => Ok(flex_instead(format!("{no_gpu}; CUDA cannot run here: {why}; using flex"), index)),
    }
}

#[cfg(not(feature = "cuda"))]
fn auto_without_adapter(index: Option<usize>, no_gpu: String) -> Result<Chosen> {
    Ok(flex_instead(format!("{no_gpu}: using flex"), index))
}

/// flex for `auto` on a machine with no GPU at all (`reason` says why), saying so when the spec
/// named a GPU with `runtime.device`: a spec written for a machine with several GPUs still runs
/// elsewhere, as `auto` promises, but not without a word.
fn flex_instead(reason: String, index: Option<usize>) -> Chosen {
    match index {
        Some(i) => Chosen::flex(&format!("{reason} (runtime.device = {i} picks among GPUs, and there is none)")),
        None => Chosen::flex(&reason),
    }
}

#[cfg(feature = "cuda")]
fn cuda(index: usize) -> Result<Chosen> {
    let setup = cuda_setup::CudaSetup::find()
        .map_err(|why| Error::Backend(format!("runtime.backend = \"cuda\": {why}; runtime.backend = \"auto\" uses flex or a Vulkan GPU")))?;
    open_cuda(index, "runtime.backend = \"cuda\"".into(), &setup).map_err(|why| Error::Backend(format!("runtime.backend = \"cuda\": {why}")))
}

/// Opens CUDA device `index`; `reason` is why CUDA was chosen, the setup found is added to it.
#[cfg(feature = "cuda")]
fn open_cuda(index: usize, reason: String, setup: &cuda_setup::CudaSetup) -> std::result::Result<Chosen, String> {
    keep_compiled_kernels();
    // cubecl panics, on its device thread, when the ordinal is out of range or the driver refuses
    let (device, name) = first_panic_as_error(|| {
        let device = Device::cuda(index);
        let name = device.identity().map(|id| id.name);
        (device, name)
    })
    .map_err(|why| format!("CUDA device {index} could not be opened: {why}"))?;
    Ok(Chosen {
        device,
        info: DeviceInfo {
            backend: "cuda".into(),
            adapter: Some(name.unwrap_or_else(|| format!("CUDA device {index}"))),
            api: Some("CUDA".into()),
            reason: format!("{reason} ({})", setup.describe()),
            ..DeviceInfo::default()
        },
    })
}

/// Turns on cubecl's on-disk cache of compiled kernels (off by default), before the device opens.
///
/// burn's CUDA backend compiles each kernel with NVRTC the first time a process launches it. With
/// the cache a later run of the same binary loads their PTX instead, from cubecl's cache beside
/// the autotune results (`target/environment` under a Cargo project, else `~/.cache/cubecl`).
/// Measured with `scripts/cuda-dry-run.sh`'s stand-in driver (cvt-tiny, train + infer, autotune
/// results already cached, 2-core EPYC): a second run compiled 129 kernels in 21.7 s; with the
/// cache it loaded them in 0.6 s. It keeps every kernel compiled, autotune candidates too (109 MB
/// for the first run's 672).
/// The rest of a `cubecl.toml` and the `CUBECL_*` variables apply as cubecl reads them; nothing
/// changes if cubecl's configuration was already read.
#[cfg(feature = "cuda")]
fn keep_compiled_kernels() {
    use cubecl::config::{CubeClRuntimeConfig, RuntimeConfig};
    let mut config = CubeClRuntimeConfig::from_current_dir().override_from_env();
    config.compilation.cache = true;
    CubeClRuntimeConfig::try_set(config);
}

/// Runs `f`, turning a panic in it, or in a thread it waits on, into the first panic's message
/// (the default hook's report and backtrace are not printed meanwhile).
#[cfg(feature = "cuda")]
fn first_panic_as_error<T>(f: impl FnOnce() -> T + std::panic::UnwindSafe) -> std::result::Result<T, String> {
    use std::sync::{Arc, Mutex};
    let first: Arc<Mutex<Option<String>>> = Arc::default();
    let previous = std::panic::take_hook();
    let sink = Arc::clone(&first);
    std::panic::set_hook(Box::new(move |info| {
        let mut first = sink.lock().unwrap_or_else(|e| e.into_inner());
        first.get_or_insert_with(|| info.payload_as_str().unwrap_or("a panic without a message").to_string());
    }));
    let result = std::panic::catch_unwind(f);
    std::panic::set_hook(previous);
    result.map_err(|_| first.lock().unwrap_or_else(|e| e.into_inner()).take().unwrap_or_else(|| "a panic without a message".into()))
}

#[cfg(not(feature = "cuda"))]
fn cuda(_index: usize) -> Result<Chosen> {
    Err(Error::Backend(
        "this brasa was built without CUDA support; rebuild it with `cargo build --release --features cuda`, \
         or use runtime.backend = \"wgpu\", which reaches NVIDIA GPUs through Vulkan"
            .into(),
    ))
}

/// The device a run uses, and what to tell the user about it.
#[derive(Clone)]
pub struct Chosen {
    pub device: Device,
    pub info: DeviceInfo,
}

impl std::fmt::Debug for Chosen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.info.fmt(f)
    }
}

/// What was chosen, for logs, `meta.json` and the report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// `flex`, `wgpu` or `cuda`.
    pub backend: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<String>,
    /// Discrete GPU, integrated GPU, software rasteriser, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Vulkan, Metal, DX12, CUDA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
    /// Why this device.
    pub reason: String,
}

impl DeviceInfo {
    /// One line: `wgpu: NVIDIA H100 (discrete GPU, Vulkan, driver NVIDIA 580.1); first GPU adapter`.
    pub fn describe(&self) -> String {
        match &self.adapter {
            Some(adapter) => format!("{}: {adapter} ({}); {}", self.backend, self.details(), self.reason),
            None => format!("{} (CPU, {} threads); {}", self.backend, threads(), self.reason),
        }
    }

    /// Like [`DeviceInfo::describe`], without the current process's thread count (for reports).
    pub fn summary(&self) -> String {
        match &self.adapter {
            Some(adapter) => format!("{adapter} ({}) — {}", self.details(), self.reason),
            None => format!("CPU ({}) — {}", self.backend, self.reason),
        }
    }

    /// `discrete GPU, Vulkan, driver …`: what is known of the adapter.
    fn details(&self) -> String {
        let driver = self.driver.as_ref().map(|d| format!("driver {d}"));
        [self.kind.as_deref(), self.api.as_deref(), driver.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(", ")
    }

    pub fn is_gpu(&self) -> bool {
        self.backend != "flex"
    }
}

/// The device of a listed adapter.
#[cfg(feature = "gpu-backend")]
fn open(adapter: &Adapter) -> Device {
    adapter.device()
}

#[cfg(not(feature = "gpu-backend"))]
fn open(_: &Adapter) -> Device {
    unreachable!("no adapters are listed without the GPU backend")
}

impl Chosen {
    fn flex(reason: &str) -> Self {
        Chosen { device: Device::flex(), info: DeviceInfo { backend: "flex".into(), reason: reason.into(), ..DeviceInfo::default() } }
    }

    fn gpu(adapter: &Adapter, reason: String) -> Self {
        Chosen {
            device: open(adapter),
            info: DeviceInfo {
                backend: "wgpu".into(),
                adapter: Some(adapter.name.clone()),
                kind: Some(adapter.kind.clone()),
                driver: Some(adapter.driver.clone()).filter(|d| !d.is_empty()),
                api: Some(adapter.api.clone()),
                reason,
            },
        }
    }
}

/// A GPU adapter as the graphics API reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Adapter {
    pub name: String,
    pub kind: String,
    pub driver: String,
    pub api: String,
    /// A CPU pretending to be a GPU (llvmpipe, lavapipe, SwiftShader, WARP).
    pub software: bool,
    #[cfg(feature = "gpu-backend")]
    selector: (wgpu::Backend, burn::tensor::DeviceKind),
}

#[cfg(feature = "gpu-backend")]
impl Adapter {
    fn device(&self) -> Device {
        let (api, kind) = self.selector.clone();
        match api {
            #[cfg(feature = "vulkan")]
            wgpu::Backend::Vulkan => Device::vulkan(kind),
            _ => {
                let _ = api; // the runtime settles on the same API the adapter was listed on
                Device::wgpu(kind)
            }
        }
    }
}

fn listing(adapters: &[&Adapter]) -> String {
    adapters.iter().enumerate().map(|(i, a)| format!("{i}: {} ({}, {})", a.name, a.kind, a.api)).collect::<Vec<_>>().join("; ")
}

/// Whether this binary has the GPU backend.
pub fn gpu_built() -> bool {
    cfg!(feature = "gpu-backend")
}

/// The GPU adapters of this machine on the first graphics API that has any (Vulkan, then Metal,
/// then DX12), in the order the API lists them. Empty without the GPU backend or a driver.
pub fn adapters() -> Vec<Adapter> {
    #[cfg(feature = "gpu-backend")]
    {
        // a broken driver or loader must not take brasa down: no adapters, then
        std::panic::catch_unwind(list_adapters).unwrap_or_default()
    }
    #[cfg(not(feature = "gpu-backend"))]
    Vec::new()
}

#[cfg(feature = "gpu-backend")]
fn list_adapters() -> Vec<Adapter> {
    use burn::tensor::DeviceKind;
    let apis = if cfg!(target_os = "macos") {
        [wgpu::Backend::Metal, wgpu::Backend::Vulkan, wgpu::Backend::Dx12]
    } else {
        [wgpu::Backend::Vulkan, wgpu::Backend::Dx12, wgpu::Backend::Metal]
    };
    for api in apis {
        // one instance limited to `api`, as burn's runtime makes, so indices agree with its own
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends: api.into(),
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        });
        let infos: Vec<wgpu::AdapterInfo> =
            futures_lite::future::block_on(instance.enumerate_adapters(api.into())).iter().map(wgpu::Adapter::get_info).collect();
        let mut counts = [0usize; 3];
        let mut found = Vec::new();
        for info in infos {
            let (kind, selector) = match info.device_type {
                wgpu::DeviceType::DiscreteGpu => ("discrete GPU", DeviceKind::DiscreteGpu(bump(&mut counts[0]))),
                wgpu::DeviceType::IntegratedGpu => ("integrated GPU", DeviceKind::IntegratedGpu(bump(&mut counts[1]))),
                wgpu::DeviceType::VirtualGpu => ("virtual GPU", DeviceKind::VirtualGpu(bump(&mut counts[2]))),
                wgpu::DeviceType::Cpu => ("software rasteriser", DeviceKind::Cpu),
                // burn cannot address these by kind
                wgpu::DeviceType::Other => continue,
            };
            if matches!(selector, DeviceKind::Cpu) && found.iter().any(|a: &Adapter| a.software) {
                continue; // burn reaches only the first CPU adapter
            }
            let driver = [info.driver.as_str(), info.driver_info.as_str()].iter().filter(|s| !s.is_empty()).copied().collect::<Vec<_>>().join(" ");
            found.push(Adapter {
                name: info.name.clone(),
                kind: kind.into(),
                driver,
                api: api_name(api).into(),
                software: info.device_type == wgpu::DeviceType::Cpu,
                selector: (api, selector),
            });
        }
        if !found.is_empty() {
            return found;
        }
    }
    Vec::new()
}

#[cfg(feature = "gpu-backend")]
fn bump(counter: &mut usize) -> usize {
    *counter += 1;
    *counter - 1
}

#[cfg(feature = "gpu-backend")]
fn api_name(api: wgpu::Backend) -> &'static str {
    match api {
        wgpu::Backend::Vulkan => "Vulkan",
        wgpu::Backend::Metal => "Metal",
        wgpu::Backend::Dx12 => "DX12",
        wgpu::Backend::Gl => "OpenGL",
        _ => "other",
    }
}

/// The error for a device that failed while computing a batch (out of memory, a kernel it cannot
/// launch at that size): names the batch size to lower.
pub fn device_failure(error: &dyn std::fmt::Debug, key: &str, batch: usize) -> Error {
    Error::Train(format!(
        "the device failed while computing a batch of {batch} ({error:?}); if it ran out of memory, lower {key} (e.g. --set {key}={})",
        (batch / 2).max(1)
    ))
}

/// Bytes the device's allocator holds, where the backend tells.
pub fn memory_reserved(device: &Device) -> Option<u64> {
    device.memory_pool_usage().map(|usage| usage.bytes_reserved)
}

/// Sets the number of CPU threads (image decoding, augmentation and flex's kernels share the
/// global rayon pool). Only the first call in a process takes effect.
pub fn set_threads(threads: usize) {
    let _ = rayon::ThreadPoolBuilder::new().num_threads(threads).build_global();
}

/// Runs `work`, the ops of a training step or an inference batch on `device`, on one of the
/// global pool's threads and returns its result. Flex splits each op over the pool: called from a
/// thread outside it, every op hands its pieces to the pool and sleeps until they are done (a
/// futex wake and wait per op, thousands per training step: ~8 % of a one-thread cvt-tiny step in
/// perf), while on a pool thread the caller works on the pieces itself. An op's split depends on
/// the pool's size, not on which thread asks, so results are the same either way (BatchNorm's
/// per-thread running statistics are folded in by the forward pass that updates them,
/// `kernels::fold_running_statistics`). GPU devices run
/// `work` where they are: their streams belong to the thread that queues the ops.
pub fn on_pool<T: Send>(device: &Device, work: impl FnOnce() -> T + Send) -> T {
    if !crate::kernels::is_flex(device) || rayon::current_thread_index().is_some() {
        return work();
    }
    rayon::scope(|_| work())
}

/// Threads actually available to the global pool.
pub fn threads() -> usize {
    rayon::current_num_threads()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for backend in Backend::ALL {
            assert_eq!(Backend::parse(backend.name()), Some(backend));
        }
        assert_eq!(Backend::parse("tpu"), None);
    }

    #[test]
    fn flex_has_one_device() {
        assert!(Backend::Flex.choose(Some(1)).is_err());
        assert_eq!(Backend::Flex.choose(None).unwrap().info.backend, "flex");
    }

    #[test]
    fn auto_without_a_gpu_says_the_named_device_goes_unused() {
        // a machine with a GPU either picks device 3 or refuses it; one without uses flex, saying so
        if let Ok(chosen) = Backend::Auto.choose(Some(3))
            && !chosen.info.is_gpu()
        {
            assert!(chosen.info.reason.ends_with("(runtime.device = 3 picks among GPUs, and there is none)"), "{:?}", chosen.info);
        }
        if let Ok(chosen) = Backend::Auto.choose(None) {
            assert!(!chosen.info.reason.contains("runtime.device"), "{:?}", chosen.info);
        }
    }

    #[test]
    fn auto_never_picks_a_software_rasteriser() {
        let chosen = Backend::Auto.choose(None).unwrap();
        let software = adapters().iter().any(|a| a.software && chosen.info.adapter.as_deref() == Some(a.name.as_str()));
        assert!(!software, "{:?}", chosen.info);
    }
}
