#!/usr/bin/env bash
# brasa on a real GPU, side by side with PyTorch eager on the same card, in about 8 minutes:
#   1. what `brasa validate` chooses here;
#   2. training and inference throughput of CvT-13 and ViT-B/16 at 224 px, batch 16 and 64:
#      `brasa bench` on the GPU backend, then bench/torch_bench.py (PyTorch eager, fp32) on CUDA;
#   3. one full experiments/reference.toml run (CvT-13 from scratch, 224 px, 10 epochs, batch 16,
#      validation every epoch, test at the end) with its wall time.
# Results go to $OUT (default ./gpu-check-out): gpu-check.log, bench.jsonl, table.md, the run's
# report and meta.json.
#
# For a Linux machine without network: carry a brasa built with `cargo build --release --features gpu`
# (BRASA=path, default target/release/brasa), the dataset at data/brain-tumor-mri (or in DATA; at 93 MB it
# takes two 64 MiB transfers: scripts/carry.sh cuts it into parts and gathers them), and — if `ldconfig -p` shows no
# libvulkan — the Vulkan loader packages as .deb files in GL_DEBS (default .gl/), which are unpacked
# into / first. python3 with torch + transformers + torchvision must be there for step 2's reference.
#
# Knobs: STEPS (timed steps, default 10), WARMUP (default 3), MODELS ("cvt13 vitb16"; "" skips step 2), BATCHES
# ("16 64"), REFERENCE=0 skips step 3, REFERENCE_LIMIT=seconds stops the reference run early (its
# epochs so far and their times are still reported; the same command with the same REFERENCE_OUT
# resumes it), BRASA_ALT=path also benches another build beside it, e.g. one with `--features vulkan` (SPIR-V), at the batches in ALT_BATCHES ("16").
# PROFILE=cvt13 (or vitb16): step 4, the device time of each kernel of a few training steps at
# PROFILE_BATCH (16), PROFILE_STEPS (3), summed by kernel name into $OUT/kernels.md (on BACKEND, with
# the kernels and autotune results of the steps before; it starts only before BENCH_DEADLINE)
# (KEEP_PROFILE=1 also keeps cubecl's whole log there, kernels.log).
# BENCH_ARGS adds options to every `brasa bench` (e.g. "--phases": where a training step's time goes).
# BENCH_DEADLINE=unix-seconds: no benchmark starts after it, and none runs past it.
# TUNE_LOG=1: step 3 logs cubecl's autotune trials and compiled kernels, summed into $OUT/autotune.md
# (on a fresh machine, what the first run's autotuning and compiling cost).
# DATA=folder: the dataset is there instead (data/brain-tumor-mri is linked to it), e.g. where
# scripts/carry.sh gathered it from several transfers.
# BACKEND=cuda runs steps 3 and 4 on burn's CUDA backend (a brasa built with `--features gpu,cuda`),
# BACKENDS="wgpu cuda" benches each in step 2 (default: BACKEND). For cuda the script finds NVRTC
# (a toolkit's, else PyTorch's wheels' under site-packages/nvidia) and the CUDA headers (CUDA_PATH, a
# toolkit, the wheels' nvidia/cuNN prefix, else CUDA_HEADERS, default .cuda/cuda-headers.tar.xz from
# scripts/cuda-headers.sh, unpacked for NVRTC's major version). KERNELS=file adds the CUDA kernels
# scripts/cuda-dry-run.sh compiled (its KERNELS=…, with the same binary) to cubecl's cache first, so
# a first CUDA run loads them instead of spending minutes in NVRTC (`brasa cache import`; into the
# cache of step 3's folder too when TUNE_LOG runs it elsewhere).
# TORCH_TF32=1 (the default when BACKENDS has cuda) also benches PyTorch with TF32 matmuls
# (torch.backends.cuda.matmul.allow_tf32; its default computes matmuls in full fp32): burn's CUDA
# tensor-core matmuls take f32 operands as TF32, so its fair reference is that one.
# GPU utilisation is sampled every second into $OUT/gpu-util.txt (nvidia-smi dmon) while the script runs.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-check-out}
mkdir -p "$OUT"
BRASA=${BRASA:-target/release/brasa}
case $BRASA in /*) ;; *) BRASA=$PWD/$BRASA ;; esac   # steps 3 and 4 may run from another folder
STEPS=${STEPS:-10}
WARMUP=${WARMUP:-3}
MODELS=${MODELS-"cvt13 vitb16"}      # MODELS="" skips the throughput step
BATCHES=${BATCHES:-"16 64"}
REFERENCE=${REFERENCE:-1}
REFERENCE_LIMIT=${REFERENCE_LIMIT:-0}
REFERENCE_OUT=$(realpath -m "${REFERENCE_OUT:-$OUT/reference-run}")   # an unfinished run there is resumed
# REFERENCE_DEADLINE=unix-seconds: stop the reference run then (instead of REFERENCE_LIMIT)
GL_DEBS=${GL_DEBS:-.gl}
if [ -n "${DATA:-}" ]; then
  [ -d "$DATA" ] || { echo "gpu-check.sh: DATA=$DATA is no folder" >&2; exit 1; }
  rm -rf data/brain-tumor-mri && ln -s "$(cd "$DATA" && pwd -P)" data/brain-tumor-mri
fi
BACKEND=${BACKEND:-wgpu}          # flex: a dry run of this script on a machine without a GPU
BACKENDS=${BACKENDS:-$BACKEND}    # step 2's brasa backends
CUDA_HEADERS=${CUDA_HEADERS:-.cuda/cuda-headers.tar.xz}
TORCH_DEVICE=${TORCH_DEVICE:-cuda}
if [[ " $BACKENDS " == *" cuda "* ]]; then TORCH_TF32=${TORCH_TF32:-1}; else TORCH_TF32=${TORCH_TF32:-0}; fi
SIZE=${SIZE:-224}
log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" | tee -a "$OUT/gpu-check.log" >&2; }
# cubecl_logs DIR SECTION:LEVEL:FILE...: a cubecl.toml in DIR turning on cubecl's loggers (its
# [SECTION.logger] at LEVEL, into DIR/FILE) for whatever runs from DIR; summed by scripts/cubecl_log.py
cubecl_logs() {
  local dir=$1 spec section level file; shift
  for spec in "$@"; do
    IFS=: read -r section level file <<< "$spec"
    printf '[%s.logger]\nlevel = "%s"\nfile = "%s/%s"\nappend = false\n' "$section" "$level" "$dir" "$file"
  done > "$dir/cubecl.toml"
}
started=$(date +%s)

if ! ldconfig -p | grep -q libvulkan.so.1 && ls "$GL_DEBS"/*.deb >/dev/null 2>&1; then
  log "unpacking the Vulkan loader from $GL_DEBS"
  for f in "$GL_DEBS"/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
  if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f "$icd" ]; then export VK_DRIVER_FILES=$icd; fi
done
# the driver's EGL vendor file where the GPU machines keep it, which libglvnd does not search
egl=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
if [ -z "${__EGL_VENDOR_LIBRARY_FILENAMES:-}" ] && [ -f "$egl" ]; then export __EGL_VENDOR_LIBRARY_FILENAMES=$egl; fi
log "VK_DRIVER_FILES=${VK_DRIVER_FILES:-unset}"
# what burn's CUDA backend compiles its kernels with: NVRTC and the CUDA headers (see the knobs above)
cuda_env() {
  local wheels lib major
  wheels=$(python3 -c 'import nvidia; print(list(nvidia.__path__)[0])' 2>/dev/null)
  lib=$(ldconfig -p | grep -oE '/[^ ]*/libnvrtc\.so\.[0-9]+' | head -n 1)
  if [ -z "$lib" ] && [ -n "$wheels" ]; then
    lib=$(find "$wheels" -name 'libnvrtc.so.[0-9]*' ! -name '*alt*' 2>/dev/null | sort | tail -n 1)
    [ -n "$lib" ] && export LD_LIBRARY_PATH=$(dirname "$lib")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  fi
  [ -z "$lib" ] && { log "cuda: no libnvrtc.so found (neither ldconfig nor python's nvidia wheels)"; return; }
  major=${lib##*.so.}; major=${major%%.*}
  if [ -z "${CUDA_PATH:-}" ] && [ ! -e /usr/local/cuda/include/crt/mma.h ]; then
    if [ -e "$wheels/cu$major/include/crt/mma.h" ] && [ -e "$wheels/cu$major/include/mma.h" ]; then
      export CUDA_PATH=$wheels/cu$major
    elif [ -f "$CUDA_HEADERS" ]; then
      mkdir -p /tmp/cuda-headers && tar -C /tmp/cuda-headers -xJf "$CUDA_HEADERS"
      CUDA_PATH=$(ls -d /tmp/cuda-headers/cuda-"$major".* 2>/dev/null | tail -n 1)
      export CUDA_PATH
    fi
  fi
  log "cuda: NVRTC $lib, CUDA_PATH=${CUDA_PATH:-unset (a toolkit in /usr/local/cuda?)}"
}
[[ " $BACKEND $BACKENDS " == *" cuda "* ]] && cuda_env
# the carried kernels into cubecl's cache of runs started in this folder (a Cargo project:
# target/environment/default.db); `import_kernels DIR` for another folder's
kernels_bundle=""
import_kernels() {
  [ -n "$kernels_bundle" ] || return 0
  (cd "$1" && HOME=/tmp/home-$(basename "$BRASA") "$BRASA" cache import "$kernels_bundle") 2>&1 | tee -a "$OUT/gpu-check.log" >&2
}
if [ -n "${KERNELS:-}" ]; then
  kernels_bundle=$(mktemp --suffix=.bundle)
  xz -dc "$KERNELS" > "$kernels_bundle" || { log "KERNELS=$KERNELS could not be unpacked"; kernels_bundle=""; }
  import_kernels "$PWD"
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee -a "$OUT/gpu-check.log" >&2
log "$("$BRASA" --version)"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi dmon -s u -o T > "$OUT/gpu-util.txt" 2>/dev/null &
  dmon=$!
  trap 'kill $dmon 2>/dev/null' EXIT
fi
# seconds a benchmark may run: 240, less when BENCH_DEADLINE is near (0: skip it)
bench_limit() {
  local limit=240
  if [ -n "${BENCH_DEADLINE:-}" ]; then
    local left=$(( BENCH_DEADLINE - $(date +%s) ))
    (( left < limit )) && limit=$left
    (( limit < 20 )) && limit=0
  fi
  echo "$limit"
}

log "1. brasa validate experiments/reference.toml (the device lines)"
"$BRASA" validate experiments/reference.toml 2>&1 | grep -E '^# (device|data)' | tee -a "$OUT/gpu-check.log" >&2
for b in $(printf '%s\n' wgpu $BACKEND $BACKENDS | sort -u); do
  "$BRASA" validate experiments/reference.toml --set "runtime.backend=\"$b\"" 2>&1 | grep -E '^# device|error:' | tee -a "$OUT/gpu-check.log" >&2
done

# the table's short names as brasa's model.arch; any other name is taken as an arch (torch_bench.py knows the short ones)
arch_of() { case $1 in cvt13) echo cvt-13 ;; vitb16) echo vit-base-patch16-224 ;; *) echo "$1" ;; esac; }
if [ -n "$MODELS" ]; then
log "2. throughput: brasa bench (GPU backend) and PyTorch eager fp32 on CUDA$([ "$TORCH_TF32" = 1 ] && echo ", then with TF32 matmuls"), $STEPS timed steps after $WARMUP"
: > "$OUT/bench.jsonl"
for model in $MODELS; do
  for batch in $BATCHES; do
    runs=()   # binary:backend
    for b in $BACKENDS; do runs+=("$BRASA:$b"); done
    [ -n "${BRASA_ALT:-}" ] && [[ " ${ALT_BATCHES:-16} " == *" $batch "* ]] && runs+=("$BRASA_ALT:$BACKEND")
    for run in "${runs[@]}"; do
      binary=${run%:*} backend=${run##*:}
      # the table's label: the binary's name, with the backend when several are benched
      name=$(basename "$binary"); [ "$(wc -w <<< "$BACKENDS")" -gt 1 ] && name="$name $backend"
      limit=$(bench_limit)
      if [ "$limit" = 0 ]; then log "skipping brasa $name $model batch $batch: BENCH_DEADLINE"; continue; fi
      log "brasa $name $model batch $batch"
      # each binary keeps its own autotune cache (~/.cache/cubecl)
      HOME=/tmp/home-$(basename "$binary") timeout "$limit" "$binary" bench experiments/reference.toml --backend "$backend" --what train,infer --json ${BENCH_ARGS:-} \
        --steps "$STEPS" --warmup "$WARMUP" --set "model.arch=\"$(arch_of "$model")\"" \
        --set "preprocess.resize=$SIZE" --set "preprocess.center_crop=$SIZE" --set "augment.chain=[]" \
        --set train.batch_size="$batch" 2>>"$OUT/gpu-check.log" \
        | sed "s/^{/{\"stack\":\"brasa\",\"binary\":\"$name\",\"key\":\"$model-$batch\",/" >> "$OUT/bench.jsonl" \
        || log "brasa bench $name $model $batch failed (see above)"
    done
    variants=("")
    if [ "$TORCH_TF32" = 1 ]; then variants+=(--tf32); fi
    for tf32 in "${variants[@]}"; do
      limit=$(bench_limit)
      if [ "$limit" = 0 ]; then log "skipping pytorch $model batch $batch $tf32: BENCH_DEADLINE"; continue; fi
      log "pytorch $model batch $batch $tf32"
      timeout "$limit" python3 bench/torch_bench.py --device "$TORCH_DEVICE" --model "$model" --size "$SIZE" --batch "$batch" \
        --steps "$STEPS" --warmup "$WARMUP" --what train,infer $tf32 2>>"$OUT/gpu-check.log" \
        | sed "s/^{/{\"key\":\"$model-$batch\",/" >> "$OUT/bench.jsonl" || log "torch_bench $model $batch $tf32 failed"
    done
  done
done
python3 - "$OUT/bench.jsonl" > "$OUT/table.md" <<'PY'
import json, sys
rows = {}
for line in open(sys.argv[1]):
    try:
        r = json.loads(line)
    except ValueError:
        continue
    if r.get("stack") == "brasa":
        who = r.get("binary", "brasa")
    else:
        who = "pytorch tf32" if r.get("tf32_matmul") else "pytorch"
    rows.setdefault(r["key"], {})[who] = r
tf32 = any("pytorch tf32" in by for by in rows.values())
head = "| model, batch | brasa train | PyTorch train | ratio | brasa infer | PyTorch infer | ratio |"
if tf32:
    head += " PyTorch TF32 train | ratio | PyTorch TF32 infer | ratio |"
print(head)
print("|---" * (head.count("|") - 1) + "|")
cell = lambda r, what: r.get(what, {}).get("samples_per_s")
ratio = lambda a, b: f"{a / b:.2f}×" if a and b else "–"
fmt = lambda v: f"{v:.1f}" if v else "–"
for key, by in rows.items():
    for name, b in by.items():
        if name.startswith("pytorch"):
            continue
        t, f = by.get("pytorch", {}), by.get("pytorch tf32", {})
        bt, bi, pt, pi, ft, fi = cell(b, "train"), cell(b, "infer"), cell(t, "train"), cell(t, "infer"), cell(f, "train"), cell(f, "infer")
        label = key if name == "brasa" else f"{key} ({name})"
        line = f"| {label} | {fmt(bt)} | {fmt(pt)} | {ratio(bt, pt)} | {fmt(bi)} | {fmt(pi)} | {ratio(bi, pi)} |"
        if tf32:
            line += f" {fmt(ft)} | {ratio(bt, ft)} | {fmt(fi)} | {ratio(bi, fi)} |"
        print(line)
for key, by in rows.items():
    for name, b in by.items():
        p = b.get("train", {}).get("phases") if not name.startswith("pytorch") else None
        if p:
            print(f"\n{key} ({name}), ms per training step waiting after each part: forward {p['forward_ms']:.1f}, "
                  f"backward {p['backward_ms']:.1f}, clip + optimizer {p['optimizer_ms']:.1f}; "
                  f"queued without waiting {p['queue_ms']:.1f} of {p['step_ms']:.1f}")
PY
cat "$OUT/table.md" | tee -a "$OUT/gpu-check.log" >&2
fi

if [ "$REFERENCE" = 1 ]; then
  log "3. experiments/reference.toml end to end on the GPU (CvT-13 from scratch, 224 px, 10 epochs)"
  limit=()
  if [ -n "${REFERENCE_DEADLINE:-}" ]; then REFERENCE_LIMIT=$(( REFERENCE_DEADLINE - $(date +%s) )); fi
  # one SIGINT, to brasa alone (without --foreground timeout signals its whole process group too,
  # and a second SIGINT stops brasa at once instead of after the step, with its checkpoint), and
  # a kill a minute later should it not stop
  [ "$REFERENCE_LIMIT" != 0 ] && limit=(timeout --foreground --kill-after=60 --signal=INT "$REFERENCE_LIMIT") \
    && log "stopping it after $REFERENCE_LIMIT s if not done"
  run_start=$(date +%s.%N)
  # TUNE_LOG: run it from a folder whose cubecl.toml logs every autotune trial and compiled kernel
  root=$PWD tune=$PWD
  if [ -n "${TUNE_LOG:-}" ]; then
    tune=$(mktemp -d)
    cubecl_logs "$tune" autotune:minimal:autotune.log compilation:basic:compile.log
    import_kernels "$tune"   # its cache is another one (HOME's): the kernels, not the autotune results
  fi
  (cd "$tune" && HOME=/tmp/home-$(basename "$BRASA") "${limit[@]}" "$BRASA" run "$root/experiments/reference.toml" --backend "$BACKEND" --out "$REFERENCE_OUT" \
    ${REFERENCE_SET:-} 2>&1 | tr '\r' '\n' > "$OUT/reference.log")
  grep -v '^\s*$' "$OUT/reference.log" | grep -vE '[0-9]+/[0-9]+ *$' | tail -n 40 | tee -a "$OUT/gpu-check.log" >&2
  run_end=$(date +%s.%N)
  log "reference run wall time: $(python3 -c "print(f'{$run_end - $run_start:.1f} s')")"
  cut -d, -f1-5,14 "$REFERENCE_OUT/epochs.csv" 2>/dev/null | tee -a "$OUT/gpu-check.log" >&2
  # beside the log, for when REFERENCE_OUT is not under $OUT (the device tool returns 8 files)
  for f in meta.json epochs.csv; do cp -f "$REFERENCE_OUT/$f" "$OUT/reference-$f" 2>/dev/null; done
  python3 - "$REFERENCE_OUT/meta.json" <<'PY' 2>&1 | tee -a "$OUT/gpu-check.log" >&2
import json, sys
m = json.load(open(sys.argv[1]))
print("status:", m["status"], "| epochs:", m.get("epochs_run"), "| wall:", m.get("wall_seconds"), "s | device:", m.get("device"), "| GPU memory peak:", m.get("gpu_memory_peak_bytes"))
PY
  if [ "$tune" != "$root" ]; then
    # what the first run's autotuning and compiling cost, from cubecl's logs
    python3 scripts/cubecl_log.py autotune "$tune/autotune.log" "$tune/compile.log" > "$OUT/autotune.md"
    head -n 12 "$OUT/autotune.md" | tee -a "$OUT/gpu-check.log" >&2
    rm -rf "$tune"
  fi
fi
if [ -n "${PROFILE:-}" ]; then
  # where the device's time goes: cubecl times every kernel it launches (GPU timestamps) and logs
  # it with the kernel's name; summed by name over the timed steps of one short bench
  log "4. device time per kernel: $PROFILE at batch ${PROFILE_BATCH:-16}, ${PROFILE_STEPS:-3} training steps (cubecl's profiling log)"
  limit=$(bench_limit)
  if [ "$limit" = 0 ]; then log "skipping the profile: BENCH_DEADLINE"; else
    prof=$(mktemp -d)
    cubecl_logs "$prof" profiling:basic:kernels.log
    # with the cache of runs started here (a Cargo project: target/environment), which holds the
    # carried kernels and the autotune results of the runs before: the profile times those kernels
    # instead of autotuning and compiling anew
    printf '[environment]\npath = { directory = "%s" }\n' "$PWD/target/environment" >> "$prof/cubecl.toml"
    root=$PWD
    (cd "$prof" && HOME=/tmp/home-$(basename "$BRASA") timeout "$limit" "$BRASA" bench "$root/experiments/reference.toml" \
      --backend "$BACKEND" --what train --steps "${PROFILE_STEPS:-3}" --warmup "$WARMUP" --set "model.arch=\"$(arch_of "$PROFILE")\"" \
      --set "preprocess.resize=$SIZE" --set "preprocess.center_crop=$SIZE" --set "augment.chain=[]" \
      --set train.batch_size="${PROFILE_BATCH:-16}" 2>>"$OUT/gpu-check.log" | tee -a "$OUT/gpu-check.log" >&2) \
      || log "the profiled bench failed (see above)"
    python3 scripts/cubecl_log.py kernels "$prof/kernels.log" "$WARMUP" "${PROFILE_STEPS:-3}" > "$OUT/kernels.md"
    head -n 30 "$OUT/kernels.md" | tee -a "$OUT/gpu-check.log" >&2
    [ -n "${KEEP_PROFILE:-}" ] && cp "$prof/kernels.log" "$OUT/" ; rm -rf "$prof"
  fi
fi
log "done in $(( $(date +%s) - started )) s"
