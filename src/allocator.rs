//! Settings for the C allocator, made once when the process starts.
//!
//! glibc's malloc serves every block above its mmap threshold with a fresh `mmap` and returns it
//! with `munmap` when freed, so each large tensor buffer of a training step is page-faulted in
//! again (40–50 % system time in matmul and softmax micro-benchmarks on flex). Raising the
//! threshold to its 32 MiB maximum and keeping freed memory at the top of the heap (trim threshold
//! 1 GiB, top pad 256 MiB) lets those buffers be reused. Measured with `brasa bench
//! experiments/quickstart.toml` (cvt-tiny at 96 px, batch 32, 2 threads, 2-core AMD EPYC,
//! 2026-11-27, two rounds): training 87.3 / 89.2 → 93.9 / 92.5 samples/s, inference 283 / 296 →
//! 329 / 372, peak RSS unchanged (252 → 253 MB). mimalloc, tried the same way, trained at 88 / 90
//! with 345 MB peak RSS.
//!
//! One arena for every thread. glibc gives each thread that allocates its own arena (up to eight
//! per core), and memory freed into one arena serves only that arena's later allocations. Since
//! training steps run on rayon's threads (`backend::on_pool`), a step's tensors were spread over
//! one arena per pool thread, each holding free blocks the others could not reuse: CvT-13 at
//! 224 px, batch 16, 2 threads, had 1.45 GB of live heap at its peak (heaptrack) but 1.9 GB of
//! peak RSS. With one arena (`brasa bench`, 2-core AMD EPYC, 2026-12-04): peak RSS 1898 → 1556 MB,
//! cvt-tiny 143–145 MB against 151–152 MB, and no measurable change in speed — a step makes a few
//! thousand large allocations, too few for the shared lock to matter (cvt-tiny training at 2
//! threads, alternated three times: 197 / 217 / 190 samples/s with an arena per thread, 223 / 198
//! / 189 with one).
//!
//! A setting the user gives through glibc's own variable (`MALLOC_MMAP_THRESHOLD_`,
//! `MALLOC_TRIM_THRESHOLD_`, `MALLOC_TOP_PAD_`, `MALLOC_ARENA_MAX`) is left as it is. Elsewhere
//! (musl, macOS, Windows) this does nothing.

/// Applies the settings; call before other threads start.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let settings = [
            ("MALLOC_MMAP_THRESHOLD_", libc::M_MMAP_THRESHOLD, 32 << 20),
            ("MALLOC_TRIM_THRESHOLD_", libc::M_TRIM_THRESHOLD, 1 << 30),
            ("MALLOC_TOP_PAD_", libc::M_TOP_PAD, 256 << 20),
            ("MALLOC_ARENA_MAX", libc::M_ARENA_MAX, 1),
        ];
        for (variable, parameter, value) in settings {
            if std::env::var_os(variable).is_none() {
                // SAFETY: mallopt only changes the allocator's tuning parameters; called from
                // `main` before any other thread exists.
                unsafe {
                    libc::mallopt(parameter, value);
                }
            }
        }
    }
}
