//! The part of cubecl-llvm 0.11.3's interface that cubecl-cuda 0.11.3 names, without LLVM.
//!
//! cubecl-cuda holds two kernel compilers and picks one when its device starts: CUDA C++
//! through NVRTC (`cubecl/cuda-cpp`, which brasa's `cuda` feature turns on) or LLVM to PTX.
//! Only the first is built here. Should the second be asked for anyway, every kernel fails
//! to compile with [`PlironCompiler::compile`]'s message instead of the program failing to link.
//! [`PtxVersion`] is kept whole: cubecl-cuda names its cache folder after it.

use cubecl_core::ir::nvidia::SmArch;
use cubecl_core::prelude::KernelDefinition;
use cubecl_environment::backtrace::BackTrace;
use cubecl_server::compiler::CompilationError;
use cubecl_server::kernel::BufferIOAttr;

pub mod nvptx {
    pub mod ptx_version {
        use core::fmt;

        /// A PTX ISA version as the NVPTX target feature spells it: 8.7 is `87`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub struct PtxVersion(u32);

        impl PtxVersion {
            /// The newest version a driver of CUDA `driver` loads (`cuDriverGetVersion`: 12.8 is
            /// `12080`); `None` below CUDA 10.0.
            pub fn for_driver(driver: i32) -> Option<Self> {
                DRIVER_PTX.iter().find(|(first, _)| driver >= *first).map(|(_, ptx)| Self(*ptx))
            }
        }

        impl fmt::Display for PtxVersion {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "ptx{}", self.0)
            }
        }

        /// The first CUDA release to load each PTX version, newest first (cubecl-llvm 0.11.3's table).
        const DRIVER_PTX: &[(i32, u32)] = &[
            (13030, 93),
            (13020, 92),
            (13010, 91),
            (13000, 90),
            (12090, 88),
            (12080, 87),
            (12050, 85),
            (12040, 84),
            (12030, 83),
            (12020, 82),
            (12010, 81),
            (12000, 80),
            (11080, 78),
            (11070, 77),
            (11060, 76),
            (11050, 75),
            (11040, 74),
            (11030, 73),
            (11020, 72),
            (11010, 71),
            (11000, 70),
            (10020, 65),
            (10010, 64),
            (10000, 63),
        ];
    }
}

pub mod shared {
    pub mod lowered_features {
        use cubecl_core::ir::DeviceProperties;

        /// The GPU target a device's features would be narrowed for.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum GpuTarget {
            Nvptx,
        }

        /// Leaves `props` as they are: only the LLVM backend needed them narrowed, and it is not
        /// built (cubecl-cuda calls this only when that backend is selected).
        pub fn restrict_features(_props: &mut DeviceProperties, _target: GpuTarget) {}
    }
}

/// LLVM compilation targets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LlvmTarget {
    #[default]
    Nvptx,
}

/// The LLVM backend's compiler; here it compiles nothing.
#[derive(Clone, Debug, Default)]
pub struct PlironCompiler {
    pub target: LlvmTarget,
}

/// The LLVM backend's options, as cubecl-cuda fills them in.
#[derive(Clone, Debug, Default)]
pub struct PlironOptions {
    pub arch: Option<()>,
    pub sm_arch: Option<SmArch>,
    pub ptx_version: Option<nvptx::ptx_version::PtxVersion>,
    pub grid_constants: bool,
}

/// A compiled PTX module (never made here).
#[derive(Clone, Debug)]
pub struct NvptxModule {
    pub ptx: Vec<core::ffi::c_char>,
    pub entrypoint: String,
    pub ir: String,
    pub shared_memory_size: usize,
    pub io: Vec<BufferIOAttr>,
}

/// A compiled kernel.
#[derive(Clone, Debug)]
pub enum PlironArtifact {
    NvptxCode(NvptxModule),
}

impl PlironCompiler {
    /// Always an error: this build compiles CUDA kernels with NVRTC.
    pub fn compile(&mut self, kernel: KernelDefinition, _options: &PlironOptions) -> Result<PlironArtifact, CompilationError> {
        Err(CompilationError::Generic {
            reason: format!(
                "kernel {:?}: this build has no LLVM backend for CUDA (brasa builds cubecl-cuda with NVRTC, cubecl's `cuda-cpp`)",
                kernel.settings.kernel_name
            ),
            backtrace: BackTrace::capture(),
        })
    }

    pub fn extension(&self) -> &'static str {
        "ll"
    }

    pub fn lang_tag(&self) -> &'static str {
        "llvm"
    }
}
