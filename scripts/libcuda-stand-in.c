// A stand-in for the NVIDIA driver (libcuda.so.1) that runs no kernel, for scripts/cuda-dry-run.sh.
//
// burn's CUDA backend (cubecl-cuda, through cudarc) writes each kernel as CUDA C++ the first time it
// launches it, compiles it to PTX with NVRTC and hands the PTX to the driver. With this library first
// on LD_LIBRARY_PATH, brasa's CUDA path runs on a machine without a GPU: the device reports itself as
// an H100 (compute capability 9.0, 132 SMs, 80 GB, the limits cubecl reads set as an H100 SXM's) of
// a CUDA 13.0 driver (580; the version picks the PTX version), device memory is host memory (copies
// are real copies), every module's PTX is written to $FAKE_CUDA_PTX_DIR for ptxas to assemble, and launches
// are counted but run nothing, so whatever brasa computes is meaningless. An event holds the number
// of kernels launched when it was recorded and two events are 5 us a kernel apart, so autotuning
// and cubecl's throughput probes see time grow with the work they launch (a constant time sends the
// probes' "run until it takes long enough" loops round for ever).
//
// Launches are checked against an H100's limits as the driver checks them (grid at most 2^31 - 1 x
// 65535 x 65535 cubes, a block at most 1024 x 1024 x 64 threads and 1024 in all, dynamic shared
// memory at most 48 KiB unless the kernel was given more with cuFuncSetAttribute, at most 227 KiB):
// a launch past them fails with CUDA_ERROR_INVALID_VALUE, as on the card, and is named on stderr
// and counted ("N launches refused" in the last line).
//
// Only the entry points cudarc is asked for are here (it loads each on first use and names a missing
// one: "Missing symbol cuXxx"); the layouts are cuda.h's. No crate offers a driver stand-in.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>

typedef int CUresult;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;
typedef void *CUcontext, *CUstream, *CUevent, *CUmodule, *CUfunction;

static atomic_ulong modules, launches, refused;
static const char *ptx_dir(void) { return getenv("FAKE_CUDA_PTX_DIR"); }

CUresult cuInit(unsigned flags) { (void)flags; return 0; }
CUresult cuDriverGetVersion(int *v) { *v = 13000; return 0; }
CUresult cuDeviceGetCount(int *n) { *n = 1; return 0; }
CUresult cuDeviceGet(CUdevice *d, int ordinal) { if (ordinal != 0) return 101; *d = 0; return 0; }
CUresult cuDeviceGetName(char *name, int len, CUdevice d) {
    (void)d; snprintf(name, len, "NVIDIA H100 80GB HBM3 (stand-in driver: no kernel runs)"); return 0;
}
CUresult cuDeviceGetUuid(unsigned char *uuid, CUdevice d) { (void)d; memset(uuid, 7, 16); return 0; }
CUresult cuDeviceGetUuid_v2(unsigned char *uuid, CUdevice d) { return cuDeviceGetUuid(uuid, d); }
CUresult cuDeviceGetPCIBusId(char *id, int len, CUdevice d) { (void)d; snprintf(id, len, "00000000:00:1E.0"); return 0; }
CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice d) { (void)d; *bytes = 85520809984ull; return 0; }
CUresult cuMemGetInfo_v2(size_t *free_, size_t *total) { *free_ = 84000000000ull; *total = 85520809984ull; return 0; }

CUresult cuDeviceGetAttribute(int *v, int attr, CUdevice d) {
    (void)d;
    switch (attr) {
    case 1: *v = 1024; break;                 // max threads per block
    case 2: case 3: *v = 1024; break;         // max block dim x, y
    case 4: *v = 64; break;                   // max block dim z
    case 5: *v = 2147483647; break;           // max grid dim x
    case 6: case 7: *v = 65535; break;        // max grid dim y, z
    case 8: *v = 49152; break;                // shared memory per block
    case 10: *v = 32; break;                  // warp size
    case 16: *v = 132; break;                 // multiprocessors
    case 75: *v = 9; break;                   // compute capability major
    case 76: *v = 0; break;                   // minor
    case 81: *v = 233472; break;              // shared memory per multiprocessor
    case 97: *v = 232448; break;              // shared memory per block, opt-in
    default: *v = 0;
    }
    return 0;
}

static int ctx_token;
CUresult cuDevicePrimaryCtxRetain(CUcontext *c, CUdevice d) { (void)d; *c = &ctx_token; return 0; }
CUresult cuDevicePrimaryCtxRelease_v2(CUdevice d) { (void)d; return 0; }
CUresult cuCtxSetCurrent(CUcontext c) { (void)c; return 0; }
CUresult cuCtxGetCurrent(CUcontext *c) { *c = &ctx_token; return 0; }
CUresult cuCtxPushCurrent_v2(CUcontext c) { (void)c; return 0; }
CUresult cuCtxPopCurrent_v2(CUcontext *c) { if (c) *c = &ctx_token; return 0; }
CUresult cuCtxSynchronize(void) { return 0; }
CUresult cuCtxGetStreamPriorityRange(int *least, int *greatest) { *least = 0; *greatest = -5; return 0; }

static CUstream new_handle(void) { return malloc(8); }
CUresult cuStreamCreate(CUstream *s, unsigned f) { (void)f; *s = new_handle(); return 0; }
CUresult cuStreamCreateWithPriority(CUstream *s, unsigned f, int p) { (void)f; (void)p; *s = new_handle(); return 0; }
CUresult cuStreamSynchronize(CUstream s) { (void)s; return 0; }
CUresult cuStreamQuery(CUstream s) { (void)s; return 0; }
CUresult cuStreamDestroy_v2(CUstream s) { (void)s; return 0; }
CUresult cuStreamWaitEvent(CUstream s, CUevent e, unsigned f) { (void)s; (void)e; (void)f; return 0; }

// An event holds the number of kernels launched when it was recorded, and the time between two
// events is 5 us a kernel: autotuning and cubecl's throughput probes see time grow with work.
CUresult cuEventCreate(CUevent *e, unsigned f) { (void)f; *e = calloc(1, sizeof(unsigned long)); return 0; }
CUresult cuEventRecord(CUevent e, CUstream s) { (void)s; *(unsigned long *)e = atomic_load(&launches); return 0; }
CUresult cuEventSynchronize(CUevent e) { (void)e; return 0; }
CUresult cuEventQuery(CUevent e) { (void)e; return 0; }
CUresult cuEventDestroy_v2(CUevent e) { (void)e; return 0; }
CUresult cuEventElapsedTime(float *ms, CUevent a, CUevent b) {
    *ms = 0.001f + 0.005f * (float)(*(unsigned long *)b - *(unsigned long *)a);
    return 0;
}
CUresult cuEventElapsedTime_v2(float *ms, CUevent a, CUevent b) { return cuEventElapsedTime(ms, a, b); }

static CUresult alloc(CUdeviceptr *p, size_t n) {
    void *m = NULL;
    if (posix_memalign(&m, 256, n ? n : 1)) return 2; // CUDA_ERROR_OUT_OF_MEMORY
    *p = (CUdeviceptr)(uintptr_t)m;
    return 0;
}
CUresult cuMemAlloc_v2(CUdeviceptr *p, size_t n) { return alloc(p, n); }
CUresult cuMemAllocAsync(CUdeviceptr *p, size_t n, CUstream s) { (void)s; return alloc(p, n); }
CUresult cuMemFree_v2(CUdeviceptr p) { free((void *)(uintptr_t)p); return 0; }
CUresult cuMemFreeAsync(CUdeviceptr p, CUstream s) { (void)s; return cuMemFree_v2(p); }
CUresult cuMemAllocHost_v2(void **p, size_t n) { return posix_memalign(p, 256, n ? n : 1) ? 2 : 0; }
CUresult cuMemHostAlloc(void **p, size_t n, unsigned f) { (void)f; return cuMemAllocHost_v2(p, n); }
CUresult cuMemFreeHost(void *p) { free(p); return 0; }
CUresult cuMemHostRegister_v2(void *p, size_t n, unsigned f) { (void)p; (void)n; (void)f; return 0; }
CUresult cuMemHostUnregister(void *p) { (void)p; return 0; }
CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr d, const void *h, size_t n, CUstream s) { (void)s; memcpy((void *)(uintptr_t)d, h, n); return 0; }
CUresult cuMemcpyDtoHAsync_v2(void *h, CUdeviceptr d, size_t n, CUstream s) { (void)s; memcpy(h, (void *)(uintptr_t)d, n); return 0; }
CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr a, CUdeviceptr b, size_t n, CUstream s) { (void)s; memmove((void *)(uintptr_t)a, (void *)(uintptr_t)b, n); return 0; }
CUresult cuMemcpyHtoD_v2(CUdeviceptr d, const void *h, size_t n) { return cuMemcpyHtoDAsync_v2(d, h, n, 0); }
CUresult cuMemcpyDtoH_v2(void *h, CUdeviceptr d, size_t n) { return cuMemcpyDtoHAsync_v2(h, d, n, 0); }
CUresult cuMemsetD8Async(CUdeviceptr d, unsigned char v, size_t n, CUstream s) { (void)s; memset((void *)(uintptr_t)d, v, n); return 0; }
CUresult cuMemsetD32Async(CUdeviceptr d, unsigned v, size_t n, CUstream s) {
    (void)s; unsigned *p = (unsigned *)(uintptr_t)d; for (size_t i = 0; i < n; i++) p[i] = v; return 0;
}

// CUDA_MEMCPY2D, as in cuda.h
typedef struct {
    size_t srcXInBytes, srcY; int srcMemoryType; const void *srcHost; CUdeviceptr srcDevice; void *srcArray; size_t srcPitch;
    size_t dstXInBytes, dstY; int dstMemoryType; void *dstHost; CUdeviceptr dstDevice; void *dstArray; size_t dstPitch;
    size_t WidthInBytes, Height;
} Copy2D;
CUresult cuMemcpy2DAsync_v2(const Copy2D *c, CUstream s) {
    (void)s;
    const char *src = c->srcMemoryType == 1 ? (const char *)c->srcHost : (const char *)(uintptr_t)c->srcDevice;
    char *dst = c->dstMemoryType == 1 ? (char *)c->dstHost : (char *)(uintptr_t)c->dstDevice;
    src += c->srcY * c->srcPitch + c->srcXInBytes;
    dst += c->dstY * c->dstPitch + c->dstXInBytes;
    for (size_t row = 0; row < c->Height; row++) memcpy(dst + row * c->dstPitch, src + row * c->srcPitch, c->WidthInBytes);
    return 0;
}

// Each module's PTX is kept (FAKE_CUDA_PTX_DIR) for ptxas to assemble afterwards.
CUresult cuModuleLoadData(CUmodule *m, const void *image) {
    unsigned long n = atomic_fetch_add(&modules, 1);
    const char *dir = ptx_dir();
    if (dir) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%06lu.ptx", dir, n);
        FILE *f = fopen(path, "w");
        if (!f) return 999;
        fputs((const char *)image, f);
        fclose(f);
    }
    *m = new_handle();
    return 0;
}
CUresult cuModuleLoadDataEx(CUmodule *m, const void *image, unsigned n, void *o, void *v) { (void)n; (void)o; (void)v; return cuModuleLoadData(m, image); }
// A function: its name (for the refusals) and the dynamic shared memory it may take.
typedef struct { char name[160]; int max_dynamic_smem; } Function;
enum { DEFAULT_SMEM = 49152, OPT_IN_SMEM = 232448, ATTRIBUTE_MAX_DYNAMIC_SMEM = 8 };
CUresult cuModuleGetFunction(CUfunction *f, CUmodule m, const char *name) {
    (void)m;
    Function *function = calloc(1, sizeof *function);
    snprintf(function->name, sizeof function->name, "%s", name);
    function->max_dynamic_smem = DEFAULT_SMEM;
    *f = function;
    return 0;
}
CUresult cuModuleUnload(CUmodule m) { (void)m; return 0; }
CUresult cuFuncSetAttribute(CUfunction f, int a, int v) {
    if (a == ATTRIBUTE_MAX_DYNAMIC_SMEM) {
        if (v < 0 || v > OPT_IN_SMEM) return 1; // CUDA_ERROR_INVALID_VALUE
        ((Function *)f)->max_dynamic_smem = v;
    }
    return 0;
}
CUresult cuFuncGetAttribute(int *v, int a, CUfunction f) { (void)f; *v = a == 0 ? 1024 : 0; return 0; }
// Why the driver would refuse a launch of `f` so shaped, or NULL.
static const char *refusal(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, unsigned smem) {
    if (!gx || !gy || !gz || !bx || !by || !bz) return "an empty grid or block";
    if (gx > 2147483647u || gy > 65535 || gz > 65535) return "more cubes than the grid's limits (2^31 - 1 x 65535 x 65535)";
    if (bx > 1024 || by > 1024 || bz > 64 || (unsigned long)bx * by * bz > 1024) return "more threads than a block's limits (1024 x 1024 x 64, 1024 in all)";
    if ((int)smem > ((Function *)f)->max_dynamic_smem) return "more dynamic shared memory than the kernel may take";
    return NULL;
}

static CUresult launch(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, unsigned smem) {
    const char *why = refusal(f, gx, gy, gz, bx, by, bz, smem);
    if (why) {
        atomic_fetch_add(&refused, 1);
        fprintf(stderr, "libcuda stand-in: launch of %s refused: grid %u x %u x %u, block %u x %u x %u, %u bytes of shared memory: %s\n",
                ((Function *)f)->name, gx, gy, gz, bx, by, bz, smem, why);
        return 1; // CUDA_ERROR_INVALID_VALUE
    }
    atomic_fetch_add(&launches, 1);
    return 0;
}

CUresult cuLaunchKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                        unsigned smem, CUstream s, void **params, void **extra) {
    (void)s; (void)params; (void)extra;
    return launch(f, gx, gy, gz, bx, by, bz, smem);
}
// CUlaunchConfig, as in cuda.h
typedef struct {
    unsigned gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ, sharedMemBytes;
    CUstream hStream; void *attrs; unsigned numAttrs;
} LaunchConfig;
CUresult cuLaunchKernelEx(const void *config, CUfunction f, void **params, void **extra) {
    (void)params; (void)extra;
    const LaunchConfig *c = config;
    return launch(f, c->gridDimX, c->gridDimY, c->gridDimZ, c->blockDimX, c->blockDimY, c->blockDimZ, c->sharedMemBytes);
}
CUresult cuTensorMapEncodeTiled(void *map, ...) { memset(map, 0, 128); return 0; }
CUresult cuTensorMapEncodeIm2col(void *map, ...) { memset(map, 0, 128); return 0; }
CUresult cuTensorMapEncodeIm2colWide(void *map, ...) { memset(map, 0, 128); return 0; }

// NVRTC 13 asks a loaded driver for its internal tables (its compile cache); there are none here.
CUresult cuGetExportTable(const void **table, const void *id) { (void)id; *table = NULL; return 500; }

CUresult cuGetErrorString(CUresult e, const char **s) { (void)e; *s = "libcuda stand-in error"; return 0; }
CUresult cuGetErrorName(CUresult e, const char **s) { (void)e; *s = "CUDA_ERROR_FAKE"; return 0; }

__attribute__((destructor)) static void report(void) {
    fprintf(stderr, "libcuda stand-in: %lu modules loaded, %lu kernels launched (none run), %lu launches refused\n",
            (unsigned long)modules, (unsigned long)launches, (unsigned long)refused);
}
