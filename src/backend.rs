//! Compute backends: which burn device a run uses, chosen at run time by name.
//!
//! `flex` (burn's pure-Rust CPU backend) is always built. GPU backends are cargo features, so a
//! binary built without one says how to get it instead of failing obscurely.

use burn::tensor::Device;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Flex,
    Wgpu,
    Cuda,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Flex => "flex",
            Backend::Wgpu => "wgpu",
            Backend::Cuda => "cuda",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        [Backend::Flex, Backend::Wgpu, Backend::Cuda].into_iter().find(|b| b.name() == name)
    }

    /// The (non-autodiff) device for this backend.
    pub fn device(self) -> Result<Device> {
        match self {
            Backend::Flex => Ok(Device::flex()),
            #[cfg(feature = "cuda")]
            Backend::Cuda => Ok(Device::cuda(0)),
            #[cfg(not(feature = "cuda"))]
            Backend::Cuda => Err(Error::Backend(
                "this brasa was built without CUDA support; rebuild it with \
                 `cargo build --release --features cuda` on a machine with the CUDA toolkit and \
                 internet access (burn's CUDA backend downloads an LLVM bundle while building)"
                    .into(),
            )),
            #[cfg(feature = "wgpu")]
            Backend::Wgpu => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
            #[cfg(not(feature = "wgpu"))]
            Backend::Wgpu => Err(Error::Backend(
                "this brasa was built without the wgpu (Vulkan/Metal) backend; rebuild it with \
                 `cargo build --release --features wgpu`"
                    .into(),
            )),
        }
    }
}

/// Sets the number of CPU threads (image decoding, augmentation and flex's kernels share the
/// global rayon pool). Only the first call in a process takes effect.
pub fn set_threads(threads: usize) {
    let _ = rayon::ThreadPoolBuilder::new().num_threads(threads).build_global();
}

/// Threads actually available to the global pool.
pub fn threads() -> usize {
    rayon::current_num_threads()
}
