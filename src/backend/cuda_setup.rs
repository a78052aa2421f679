//! What burn's CUDA backend needs on the machine at run time, checked before a device is opened.
//!
//! brasa's `cuda` build compiles its kernels when they are first launched, with NVRTC (cubecl's
//! CUDA C++ compiler; see `patches/cubecl-llvm`). That takes three things the build cannot
//! bring: the NVIDIA driver (`libcuda.so.1`), NVRTC (`libnvrtc.so`, also in PyTorch's wheels),
//! and the CUDA headers the generated source includes (`mma.h`, `cuda_fp16.h`, …) in the folder
//! cubecl-cuda's own search finds (`$CUDA_PATH`, else `/usr/local/cuda`, `/opt/cuda`, or `/usr`
//! beside an `nvcc`). Without one of them cubecl panics on the first kernel, in the middle of a
//! run; here each is named before anything starts, with the way to provide it.

use std::path::{Path, PathBuf};

/// Shared-library names tried for the driver and NVRTC, in order (cudarc loads the same ones).
#[cfg(feature = "cuda")]
const DRIVER: &[&str] = &["libcuda.so.1", "libcuda.so"];
#[cfg(feature = "cuda")]
const NVRTC: &[&str] = &["libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11"];

/// Headers the generated kernels include; `crt/mma.h` comes with nvcc, not the runtime.
const HEADERS: &[&str] = &["mma.h", "crt/mma.h", "cuda_fp16.h", "cuda_bf16.h"];

/// Where the CUDA backend's run-time pieces were found.
#[cfg(feature = "cuda")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CudaSetup {
    /// The NVRTC library that loaded, e.g. `libnvrtc.so.13`.
    pub nvrtc: String,
    /// The folder the kernels' headers come from (`…/include`).
    pub include: PathBuf,
}

#[cfg(feature = "cuda")]
impl CudaSetup {
    /// Finds the driver, NVRTC and the headers, or says which is missing and how to provide it
    /// (a clause the caller puts after what asked for CUDA).
    pub fn find() -> Result<Self, String> {
        if first_loadable(DRIVER).is_none() {
            return Err("the NVIDIA driver's libcuda.so.1 could not be loaded (no NVIDIA GPU driver on this machine?)".into());
        }
        let nvrtc = first_loadable(NVRTC).ok_or_else(|| {
            "CUDA compiles its kernels with NVRTC, but no libnvrtc.so could be loaded: \
             install the CUDA toolkit, or put the folder holding libnvrtc.so.* (PyTorch's wheels bring one, \
             under site-packages/nvidia/) on LD_LIBRARY_PATH"
                .to_string()
        })?;
        // the folder cubecl-cuda will read the headers from, found by its own search
        let base = cubecl::cuda::install::cuda_path().ok_or_else(|| {
            "CUDA needs the headers its kernels include (mma.h, cuda_fp16.h, …), \
             but CUDA_PATH is not set and no CUDA toolkit was found in /usr/local/cuda or /opt/cuda: \
             install the toolkit, or set CUDA_PATH to a folder with include/ \
             (scripts/cuda-headers.sh packs one from NVIDIA's header wheels)"
                .to_string()
        })?;
        let from = if std::env::var_os("CUDA_PATH").is_some() { "CUDA_PATH" } else { "the CUDA toolkit" };
        let include = include_folder(&base, from)?;
        Ok(Self { nvrtc: nvrtc.to_string(), include })
    }

    /// For the device line: `NVRTC libnvrtc.so.13, CUDA headers /usr/local/cuda/include`.
    pub fn describe(&self) -> String {
        format!("NVRTC {}, CUDA headers {}", self.nvrtc, self.include.display())
    }
}

/// The first of `names` the dynamic loader opens.
fn first_loadable<'a>(names: &[&'a str]) -> Option<&'a str> {
    names.iter().copied().find(|name| {
        let c = std::ffi::CString::new(*name).expect("library names have no NUL");
        // SAFETY: dlopen with a valid C string; the handle is closed at once and never used.
        unsafe {
            let handle = libc::dlopen(c.as_ptr(), libc::RTLD_LAZY | libc::RTLD_LOCAL);
            if handle.is_null() {
                false
            } else {
                libc::dlclose(handle);
                true
            }
        }
    })
}

/// `base`'s include folder, if it holds the headers the kernels include; `from` says where
/// `base` came from, for the error.
fn include_folder(base: &Path, from: &str) -> Result<PathBuf, String> {
    let include = base.join("include");
    let missing: Vec<&str> = HEADERS.iter().copied().filter(|h| !include.join(h).is_file()).collect();
    if missing.is_empty() {
        Ok(include)
    } else {
        Err(format!(
            "{} ({from}) lacks {} that the CUDA kernels include; \
             point CUDA_PATH at a CUDA toolkit whose major version matches NVRTC's \
             (scripts/cuda-headers.sh packs the headers of CUDA 12.8 and 13.0)",
            include.display(),
            missing.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toolkit(root: &Path, at: &str, headers: &[&str]) -> PathBuf {
        let base = root.join(at);
        for h in headers {
            let file = base.join("include").join(h);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, "").unwrap();
        }
        base
    }

    #[test]
    fn a_folder_with_the_headers_is_taken() {
        let root = tempfile::tempdir().unwrap();
        let base = toolkit(root.path(), "headers/cuda-13.0", HEADERS);
        assert_eq!(include_folder(&base, "CUDA_PATH"), Ok(base.join("include")));
    }

    #[test]
    fn missing_headers_are_named() {
        let root = tempfile::tempdir().unwrap();
        // the runtime's headers without nvcc's crt/: what a CUDA 12 runtime wheel alone gives
        let base = toolkit(root.path(), "cuda", &["mma.h", "cuda_fp16.h", "cuda_bf16.h"]);
        let err = include_folder(&base, "CUDA_PATH").unwrap_err();
        assert!(err.contains("(CUDA_PATH) lacks crt/mma.h"), "{err}");
    }

    #[test]
    fn a_library_that_does_not_exist_is_not_loadable() {
        assert_eq!(first_loadable(&["libbrasa-no-such-library.so.7"]), None);
        // the C library is always there
        assert_eq!(first_loadable(&["libbrasa-no-such-library.so.7", "libc.so.6"]), Some("libc.so.6"));
    }
}
