//! The process's allocator: small blocks from mimalloc, large ones from the C allocator, whose
//! settings are made once when the process starts.
//!
//! **Small blocks (up to 4 KiB) come from mimalloc** ([`BySize`], installed by the `brasa`
//! binary). On burn's GPU backend the host's work is bookkeeping in small blocks — each recorded
//! operation's description, its autodiff node, the fusion stream's plans — allocated on the
//! training thread and freed on burn's fusion thread or cubecl's server thread, and the other way
//! round. With glibc's one arena (below) those threads took turns on its lock, and a fifth of
//! their time was in malloc and free. mimalloc's heaps are per thread and a block freed by another
//! thread goes back without a lock. Measured with `perf record` on the three host threads of
//! `brasa bench experiments/reference.toml --backend wgpu` (CvT-13 at 32 px, batch 2, lavapipe,
//! 2-core Intel Xeon, 2026-12-06), host work per step, the waits for one another left out:
//! burn's fusion thread 71.8 → 51.6 ms, the training thread 30.0 → 21.6 ms, cubecl's server
//! thread 85.4 → 78.1 ms (most of it wgpu and the Vulkan driver, which allocate with the C
//! allocator).
//!
//! **Larger blocks (tensor buffers on flex) stay with the C allocator**, tuned as below. On flex
//! (`brasa bench --backend flex --threads 2`, same machine and day, alternated twice) cvt-tiny at
//! 96 px trained at 228 / 229 samples/s against 210 / 224 with glibc alone, inferred at the same
//! speed, and peaked at 150–152 MB against 142; CvT-13 at 224 px peaked at 1455 MB against 1480.
//! With 64 KiB as the line cvt-tiny peaked at 166–169 MB; with mimalloc for every block at 251 MB,
//! and with its pages returned at once (`MIMALLOC_PURGE_DELAY=0`) it trained a third slower.
//!
//! **The C allocator's settings.** glibc's malloc serves every block above its mmap threshold
//! with a fresh `mmap` and returns it with `munmap` when freed, so each large tensor buffer of a
//! training step is page-faulted in again (40–50 % system time in matmul and softmax
//! micro-benchmarks on flex). Raising the threshold to its 32 MiB maximum and keeping freed memory
//! at the top of the heap (trim threshold 1 GiB, top pad 256 MiB) lets those buffers be reused.
//! Measured with `brasa bench experiments/quickstart.toml` (cvt-tiny at 96 px, batch 32, 2 threads,
//! 2-core AMD EPYC, 2026-11-27, two rounds): training 87.3 / 89.2 → 93.9 / 92.5 samples/s,
//! inference 283 / 296 → 329 / 372, peak RSS unchanged (252 → 253 MB). mimalloc, tried the same
//! way, trained at 88 / 90 with 345 MB peak RSS.
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

use std::alloc::{GlobalAlloc, Layout, System};

use mimalloc::MiMalloc;

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

/// Blocks of up to 4 KiB from mimalloc, larger ones from the system's allocator
/// ([`std::alloc::System`], glibc's malloc tuned by [`tune`] on Linux). The size a block was
/// allocated with says which allocator frees it (`GlobalAlloc` passes it back unchanged); a
/// reallocation that crosses the line moves the block.
pub struct BySize;

/// The largest block mimalloc serves.
const SMALL: usize = 4 << 10;

// SAFETY: every block is allocated, reallocated and freed by the allocator its size selects, and
// both allocators uphold `GlobalAlloc`'s contract themselves; a block that changes side is copied
// into a new block of the other allocator and the old one freed by its own.
unsafe impl GlobalAlloc for BySize {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe {
            if layout.size() <= SMALL {
                MiMalloc.alloc(layout)
            } else {
                System.alloc(layout)
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        unsafe {
            if layout.size() <= SMALL {
                MiMalloc.alloc_zeroed(layout)
            } else {
                System.alloc_zeroed(layout)
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe {
            if layout.size() <= SMALL {
                MiMalloc.dealloc(ptr, layout)
            } else {
                System.dealloc(ptr, layout)
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        unsafe {
            match (layout.size() <= SMALL, new_size <= SMALL) {
                (true, true) => MiMalloc.realloc(ptr, layout, new_size),
                (false, false) => System.realloc(ptr, layout, new_size),
                _ => {
                    // SAFETY (of the layout): the caller guarantees `new_size`, rounded up to
                    // the alignment, does not overflow `isize`.
                    let moved = self.alloc(Layout::from_size_align_unchecked(new_size, layout.align()));
                    if !moved.is_null() {
                        std::ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                    moved
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Allocates `size` bytes aligned to `align` filled with a pattern, through `BySize`.
    fn filled(size: usize, align: usize) -> (*mut u8, Layout) {
        let layout = Layout::from_size_align(size, align).unwrap();
        let ptr = unsafe { BySize.alloc(layout) };
        assert!(!ptr.is_null());
        assert_eq!(ptr as usize % align, 0, "{size} bytes aligned to {align}");
        for i in 0..size {
            unsafe { ptr.add(i).write((i % 251) as u8) };
        }
        (ptr, layout)
    }

    fn holds_pattern(ptr: *const u8, len: usize) -> bool {
        (0..len).all(|i| unsafe { ptr.add(i).read() } == (i % 251) as u8)
    }

    #[test]
    fn a_reallocation_keeps_the_contents_on_either_side_of_the_line_and_across_it() {
        let sizes = [(24, 8 << 10), (SMALL, SMALL + 1), (SMALL + 1, SMALL), (1 << 20, 100), (100, 1 << 20), (3 << 20, 5 << 20)];
        for align in [8, 64, 4096] {
            for (from, to) in sizes {
                let (ptr, layout) = filled(from, align);
                let moved = unsafe { BySize.realloc(ptr, layout, to) };
                assert!(!moved.is_null());
                assert_eq!(moved as usize % align, 0, "{from} → {to} bytes aligned to {align}");
                assert!(holds_pattern(moved, from.min(to)), "{from} → {to} bytes aligned to {align}");
                unsafe { BySize.dealloc(moved, Layout::from_size_align(to, align).unwrap()) };
            }
        }
    }

    #[test]
    fn zeroed_blocks_are_zero_on_both_sides() {
        for size in [16, SMALL, SMALL + 1, 2 << 20] {
            let layout = Layout::from_size_align(size, 16).unwrap();
            let ptr = unsafe { BySize.alloc_zeroed(layout) };
            assert!(!ptr.is_null());
            assert!((0..size).all(|i| unsafe { ptr.add(i).read() } == 0), "{size} bytes");
            unsafe { BySize.dealloc(ptr, layout) };
        }
    }

    #[test]
    fn a_block_freed_on_another_thread_goes_back_to_its_allocator() {
        let blocks: Vec<(usize, usize)> = [64, 4096, SMALL, SMALL + 1, 1 << 20]
            .into_iter()
            .map(|size| {
                let (ptr, _) = filled(size, 16);
                (ptr as usize, size)
            })
            .collect();
        std::thread::spawn(move || {
            for (ptr, size) in blocks {
                assert!(holds_pattern(ptr as *const u8, size));
                unsafe { BySize.dealloc(ptr as *mut u8, Layout::from_size_align(size, 16).unwrap()) };
            }
        })
        .join()
        .unwrap();
    }
}
