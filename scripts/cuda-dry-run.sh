#!/usr/bin/env bash
# brasa's CUDA backend on a machine without a GPU: every kernel a CUDA training and inference step
# generates, compiled by NVRTC against the CUDA headers and assembled for the GPU by ptxas.
#
#   BRASA=path/to/brasa scripts/cuda-dry-run.sh      (a build with --features cuda; needs cc, pip)
#
# burn's CUDA backend writes each kernel as CUDA C++ when it first launches it, compiles it with
# NVRTC and hands the PTX to the driver, whose JIT assembles it for the card. Here the driver is
# scripts/libcuda-stand-in.c: an H100 (sm_90) whose memory is host memory and which runs no kernel.
# `brasa bench` on it goes through the whole CUDA path (device setup, every operation of a training
# step and of inference, autotuning, which launches each candidate kernel, so those are compiled
# too) and the stand-in keeps each module's PTX, which ptxas then assembles for ARCH. What is
# proven: brasa's kernels, NVRTC and the headers agree, the PTX is valid for the card, and every
# launch keeps within an H100's grid, block and shared-memory limits (the stand-in refuses one
# that does not, as the driver would, and names it; autotuning may try such candidates and
# drop them). What is not: any number (no kernel runs; losses and timings are meaningless), the driver's own behaviour.
# First it checks that `runtime.backend = "auto"` picks CUDA there (no real Vulkan/Metal adapter):
# summary.md's first line under the title says what `brasa validate` printed.
# The log holds panics of cubecl's peak-throughput probe (scalar.rs, "unwrap on None"): timed on the
# host, a device that runs nothing looks infinitely fast and the probe's iteration count overflows;
# cubecl catches them and goes on, as the bench's exit status shows.
#
# Knobs: MODELS ("cvt13 vitb16"; also cvt-tiny, vit-tiny), SIZE (224), BATCHES ("16"), ARCH (sm_90a),
# CUDA_MAJOR (13: NVRTC, ptxas and headers of CUDA 13.0; 12: of 12.8), OUT (./cuda-dry-run-out),
# WHEELS (~/.cache/brasa/cuda-wheels: NVIDIA's NVRTC and nvcc wheels from PyPI, downloaded once),
# CUDA_HEADERS (.cuda/cuda-headers.tar.xz, made by scripts/cuda-headers.sh when missing),
# KERNELS=file.bundle.xz: also write the compiled kernels there (`brasa cache export --kernels-only`,
# xz'd), for a GPU machine's first run (scripts/gpu-check.sh KERNELS=…, or `brasa cache import`
# there; used only by this very binary, stripped or not, on an sm_90 card).
# Results: $OUT/summary.md (a row a model and batch), $OUT/<model>-<batch>.log, $OUT/ptx/<model>-<batch>/*.ptx, and for a
# module ptxas refuses, its errors beside it (*.ptx.err). Exit 1 when a bench or ptxas failed.
set -uo pipefail
cd "$(dirname "$0")/.."   # paths are relative to the repository
BRASA=${BRASA:-target/release/brasa}
MODELS=${MODELS:-cvt13 vitb16}
SIZE=${SIZE:-224}
BATCHES=${BATCHES:-${BATCH:-16}}
ARCH=${ARCH:-sm_90a}
CUDA_MAJOR=${CUDA_MAJOR:-13}
OUT=${OUT:-cuda-dry-run-out}
WHEELS=${WHEELS:-$HOME/.cache/brasa/cuda-wheels}
CUDA_HEADERS=${CUDA_HEADERS:-.cuda/cuda-headers.tar.xz}
die() { echo "cuda-dry-run.sh: $*" >&2; exit 2; }
# cubecl's cache is each run's HOME's (~/.cache/cubecl, below): no other place or name
unset XDG_CACHE_HOME CUBECL_ENVIRONMENT
[ -x "$BRASA" ] || die "no brasa binary at $BRASA (BRASA=…; build it with --features cuda)"
BRASA=$(realpath "$BRASA")
spec=$(realpath experiments/reference.toml)
mkdir -p "$OUT" "$WHEELS"
OUT=$(cd "$OUT" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

case $CUDA_MAJOR in
  13) wheels=(nvidia-cuda-nvrtc==13.0.88 nvidia-cuda-nvcc==13.0.88) lib=nvidia/cu13/lib bin=nvidia/cu13/bin headers=cuda-13.0 ;;
  12) wheels=(nvidia-cuda-nvrtc-cu12==12.8.93 nvidia-cuda-nvcc-cu12==12.8.93) lib=nvidia/cuda_nvrtc/lib bin=nvidia/cuda_nvcc/bin headers=cuda-12.8 ;;
  *) die "CUDA_MAJOR must be 12 or 13" ;;
esac
# the downloaded file of a pinned wheel, e.g. nvidia-cuda-nvrtc==13.0.88 → nvidia_cuda_nvrtc-13.0.88-…whl
wheel_file() { ls "$WHEELS/$(tr - _ <<< "${1%%==*}")-${1##*==}"-*.whl 2>/dev/null | head -n 1; }
for w in "${wheels[@]}"; do
  [ -n "$(wheel_file "$w")" ] || python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
    --platform manylinux2014_x86_64 -d "$WHEELS" "$w" || die "could not download $w from PyPI"
  python3 -m zipfile -e "$(wheel_file "$w")" "$work/x" || die "could not unpack $w"
done
nvrtc_dir=$work/x/$lib
ptxas=$work/x/$bin/ptxas
chmod +x "$ptxas"
[ -f "$CUDA_HEADERS" ] || scripts/cuda-headers.sh "$(dirname "$CUDA_HEADERS")" >&2 || die "no CUDA headers"
tar -C "$work" -xJf "$CUDA_HEADERS" "./$headers" || die "$CUDA_HEADERS lacks $headers"
mkdir -p "$work/driver"
cc -O2 -shared -fPIC -Wall -Wl,-soname,libcuda.so.1 -o "$work/driver/libcuda.so.1" scripts/libcuda-stand-in.c \
  || die "could not build scripts/libcuda-stand-in.c"

# what `auto` picks on the stand-in H100 beside no real Vulkan/Metal adapter: CUDA, by the driver's name for it
auto=$(cd "$work" && HOME=$work LD_LIBRARY_PATH=$work/driver:$nvrtc_dir CUDA_PATH=$work/$headers \
  "$BRASA" validate "$spec" --set 'runtime.backend="auto"' 2>&1 | grep -m1 -E '^# device|error')
failed=0
[[ "$auto" == "# device: cuda: "* ]] || { echo "cuda-dry-run.sh: runtime.backend = \"auto\" did not pick CUDA: $auto" >&2; failed=1; }

arch_of() { case $1 in cvt13) echo cvt-13 ;; vitb16) echo vit-base-patch16-224 ;; *) echo "$1" ;; esac; }
{
  echo "brasa CUDA dry run ($(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores): $("$BRASA" --version),"
  echo "NVRTC $(ls "$nvrtc_dir" | grep -oE '^libnvrtc\.so\.[0-9.]+$' | head -n 1), $headers headers,"
  echo "$("$ptxas" --version | tail -n 1 | sed 's/^Build //'), ptxas -arch=$ARCH; train + infer at $SIZE px"
  echo
  echo "runtime.backend = \"auto\" with no Vulkan GPU: $auto"
  echo
  echo "| model | batch | bench | wall (s) | modules loaded | kernels launched | launches refused | ptxas failed |"
  echo "|---|---|---|---|---|---|---|---|"
} > "$OUT/summary.md"
for model in $MODELS; do
# one HOME a model: its later batches compile only the kernels the first did not
home=$work/home-$model
mkdir -p "$home"
for BATCH in $BATCHES; do
  ptx=$OUT/ptx/$model-$BATCH
  rm -rf "$ptx" && mkdir -p "$ptx"
  echo "cuda-dry-run.sh: $model at $SIZE px, batch $BATCH …" >&2
  start=$(date +%s.%N)
  # cubecl keeps its autotune and kernel caches in target/environment under a Cargo project's
  # folder, else in ~/.cache/cubecl: run in a HOME of the model's own outside the project, so its
  # first batch starts from empty caches (every module loaded, compiled or cached, goes to ptxas)
  (cd "$home" && HOME=$home FAKE_CUDA_PTX_DIR=$ptx LD_LIBRARY_PATH=$work/driver:$nvrtc_dir CUDA_PATH=$work/$headers \
    "$BRASA" bench "$spec" --backend cuda --what train,infer --steps 1 --warmup 1 \
    --set "model.arch=\"$(arch_of "$model")\"" --set "preprocess.resize=$SIZE" --set "preprocess.center_crop=$SIZE" \
    --set 'augment.chain=[]' --set "train.batch_size=$BATCH") > "$OUT/$model-$BATCH.log" 2>&1
  rc=$?
  wall=$(awk "BEGIN { print $(date +%s.%N) - $start }")
  modules=$(ls "$ptx" | grep -c '\.ptx$')
  # the stand-in's last words: "N modules loaded, M kernels launched (none run), K launches refused"
  launches=$(grep -aoE '[0-9]+ kernels launched' "$OUT/$model-$BATCH.log" | tail -n 1 | cut -d' ' -f1)
  over=$(grep -aoE '[0-9]+ launches refused' "$OUT/$model-$BATCH.log" | tail -n 1 | cut -d' ' -f1)
  grep -a -m 5 'stand-in: launch of' "$OUT/$model-$BATCH.log" >&2
  # ptxas on every module, as many at once as there are cores; a refused one keeps its errors
  find "$ptx" -name '*.ptx' -print0 | xargs -0 -P "$(nproc)" -I{} sh -c \
    '"$0" -arch="$1" -o /dev/null "$2" 2> "$2.err" && rm -f "$2.err"' "$ptxas" "$ARCH" {}
  refused=$(find "$ptx" -name '*.ptx.err' | wc -l)
  [ "$rc" = 0 ] && status=ok || status="exit $rc"
  (( rc != 0 || refused > 0 )) && failed=1
  printf '| %s | %s | %s | %.0f | %s | %s | %s | %s |\n' "$model" "$BATCH" "$status" "$wall" "$modules" "${launches:-?}" "${over:-?}" "$refused" >> "$OUT/summary.md"
  for err in $(find "$ptx" -name '*.ptx.err' | sort | head -n 5); do
    echo "ptxas refused ${err%.err} ($(grep -m1 -oE '\.entry [A-Za-z0-9_]+' "${err%.err}")): $(head -n 3 "$err")" >&2
  done
  [ "$rc" = 0 ] || tail -n 15 "$OUT/$model-$BATCH.log" >&2
done
done
if [ -n "${KERNELS:-}" ]; then
  # each model's kernels (no autotune results: the stand-in's timings mean nothing) into one
  # cache, exported as one bundle, xz'd (`brasa cache export | import`)
  all=$work/all-kernels
  mkdir -p "$all"
  for home in "$work"/home-*; do
    (cd "$home" && HOME=$home "$BRASA" cache export "$work/$(basename "$home").bundle" --kernels-only \
      && cd "$all" && HOME=$all "$BRASA" cache import "$work/$(basename "$home").bundle") >&2 || failed=1
  done
  (cd "$all" && HOME=$all "$BRASA" cache export "$work/kernels.bundle" --kernels-only) >&2 \
    && xz -T0 -9 -c "$work/kernels.bundle" > "$KERNELS" && echo "cuda-dry-run.sh: $KERNELS: $(du -h "$KERNELS" | cut -f1)" >&2 || failed=1
fi
cat "$OUT/summary.md"
exit "$failed"
