#!/usr/bin/env bash
# The CUDA headers brasa's `cuda` build needs at run time, for a machine that has the NVIDIA
# driver and NVRTC (PyTorch's wheels bring libnvrtc) but no CUDA toolkit.
#
#   scripts/cuda-headers.sh [DEST]     (default .cuda; needs pip and access to PyPI)
#
# burn's CUDA backend compiles its kernels at run time with NVRTC, which reads mma.h, cuda_fp16.h,
# cuda_bf16.h, cuda/barrier … from $CUDA_PATH/include (and include/cccl). This downloads NVIDIA's
# header wheels for CUDA 12.8 and 13.0 (runtime, crt, cccl; pinned below) and packs their include
# folders into DEST/cuda-headers.tar.xz (about 1.6 MB) as cuda-12.8/include and cuda-13.0/include:
# use the one whose major version matches the machine's libnvrtc.so.N, e.g.
#   tar -C /tmp -xJf .cuda/cuda-headers.tar.xz && export CUDA_PATH=/tmp/cuda-13.0
# scripts/gpu-check.sh does that itself when it runs the cuda backend (CUDA_HEADERS=file).
set -euo pipefail
dest=${1:-.cuda}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
wheels=(
  nvidia-cuda-runtime-cu12==12.8.90 nvidia-cuda-cccl-cu12==12.8.90 nvidia-cuda-nvcc-cu12==12.8.93
  nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85 nvidia-cuda-crt==13.0.88
)
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 --platform manylinux2014_x86_64 \
  -d "$work/wheels" "${wheels[@]}"
for w in "$work"/wheels/*.whl; do python3 -m zipfile -e "$w" "$work/x"; done
mkdir -p "$work/out/cuda-12.8/include/cccl" "$work/out/cuda-13.0"
# 12.x wheels: one folder per component; crt/ comes with nvcc, cccl goes where cubecl looks (include/cccl)
cp -r "$work"/x/nvidia/cuda_runtime/include/. "$work/out/cuda-12.8/include/"
cp -r "$work"/x/nvidia/cuda_nvcc/include/crt "$work/out/cuda-12.8/include/"
cp -r "$work"/x/nvidia/cuda_cccl/include/. "$work/out/cuda-12.8/include/cccl/"
# 13.x wheels share one prefix, nvidia/cu13, laid out as a toolkit's
cp -r "$work"/x/nvidia/cu13/include "$work/out/cuda-13.0/"
find "$work/out" -name '__init__.py' -delete
for v in 12.8 13.0; do
  for h in mma.h cuda_fp16.h cuda_bf16.h crt/mma.h cccl/cuda/barrier; do
    [ -e "$work/out/cuda-$v/include/$h" ] || { echo "cuda-headers.sh: cuda-$v lacks include/$h" >&2; exit 1; }
  done
done
mkdir -p "$dest"
# the same bytes for the same wheels: sorted names, no owners or times
tar -C "$work/out" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -cf - . | xz -T1 -9 > "$dest/cuda-headers.tar.xz.part"
mv "$dest/cuda-headers.tar.xz.part" "$dest/cuda-headers.tar.xz"
echo "$dest/cuda-headers.tar.xz: $(wc -c < "$dest/cuda-headers.tar.xz") bytes (cuda-12.8, cuda-13.0)"
