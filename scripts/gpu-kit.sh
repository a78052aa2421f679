#!/usr/bin/env bash
# scripts/gpu-check.sh on a GPU machine without network, in two transfers of at most 64 MiB each:
# everything it needs made here in one command, then one command per transfer there.
#
#   scripts/gpu-kit.sh make       here (needs cargo, cc, pip and apt-get with their registries;
#                                 about an hour on 2 cores, most of it compiling)
#   scripts/gpu-kit.sh call 1     there, carrying what `make` printed for call 1:
#                                 CvT-13's training and inference throughput, brasa's CUDA and
#                                 wgpu backends against PyTorch eager (gpu-check.sh step 2)
#   scripts/gpu-kit.sh call 2     there, straight after (the machine goes back when idle, and with
#                                 it what call 1 unpacked): the rest of the dataset, and
#                                 experiments/reference.toml end to end on the faster backend
#                                 (step 3); the same call again resumes an unfinished run
#
# `make` writes, all ignored by git:
#   .dev/brasa-cuda.xz            a stripped `--features gpu,cuda` build (BRASA=path: that binary instead)
#   .dev/kernels.bundle.xz        the CUDA kernels that binary compiles for KIT_MODELS at KIT_BATCHES
#                                 (scripts/cuda-dry-run.sh on a stand-in H100), so the first CUDA run
#                                 loads them instead of spending minutes in NVRTC (KIT_MODELS="" skips)
#   .gl/*.deb                     the Vulkan and EGL loaders (the GPU machines' image has none)
#   .cuda/cuda-headers.tar.xz     the CUDA headers NVRTC needs (scripts/cuda-headers.sh)
#   .carry/1, .carry/2            the dataset (DATA, default data/brain-tumor-mri) cut so that call 1
#                                 fits beside the binary, kernels, loaders and headers
#   .dev/kit.md                   the sizes, and each call's carry list and command
# Knobs of `make`: BRASA, DATA, KIT_MODELS ("cvt13"), KIT_BATCHES ("16 64"); of `call 1`: MODELS ("cvt13"),
# BATCHES ("16 64"), BACKENDS ("cuda wgpu"), BENCH_SECONDS (240: no benchmark runs past it); of
# `call 2`: BACKEND (default the faster for CvT-13 at batch 16 in call 1, else cuda),
# REFERENCE_SECONDS (480: the run stops then, resumable; a profile of a few CvT-13 steps, step 4,
# takes what the run leaves of it, PROFILE="" skips it); both: OUT (default $OUT, the device
# tool's folder that comes back, else ./gpu-check-out), and any other gpu-check.sh knob.
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "gpu-kit.sh: $*" >&2; exit 1; }
LIMIT=$(( 64 * 1024 * 1024 ))   # what one transfer holds: working tree plus carried paths
MARGIN=$(( 1024 * 1024 ))
BINARY=.dev/brasa-cuda.xz
KERNELS_FILE=.dev/kernels.bundle.xz
size() { du -sb "$@" 2>/dev/null | awk '{ s += $1 } END { print s + 0 }'; }
mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }

# what travels whatever is carried: tracked files and untracked ones git does not ignore
tree_bytes() {
  git ls-files -z --cached --others --exclude-standard | xargs -0 -r stat -c %s -- 2>/dev/null \
    | awk '{ s += $1 } END { print s + 0 }'
}

make_kit() {
  local data=${DATA:-data/brain-tumor-mri}
  [ -d "$data" ] || die "no dataset at $data (DATA=folder)"
  command -v xz >/dev/null || die "xz is needed"
  mkdir -p .dev
  local brasa=${BRASA:-}
  if [ -z "$brasa" ]; then
    echo "gpu-kit.sh: building brasa with the gpu and cuda backends …" >&2
    cargo build --release --features gpu,cuda >&2
    brasa=target/release/brasa
  fi
  [ -x "$brasa" ] || die "no brasa binary at $brasa"
  "$brasa" cache export --help >/dev/null 2>&1 || die "$brasa has no \`cache export\` (an older build)"
  strip -o .dev/brasa-cuda "$brasa" && xz -T0 -9 -f .dev/brasa-cuda

  local models=${KIT_MODELS-cvt13}
  rm -f "$KERNELS_FILE"
  if [ -n "$models" ]; then
    echo "gpu-kit.sh: compiling the CUDA kernels of $models at batch ${KIT_BATCHES:-16 64} on a stand-in H100 …" >&2
    OUT=.dev/dry-run BRASA=$brasa MODELS=$models BATCHES=${KIT_BATCHES:-16 64} KERNELS=$KERNELS_FILE \
      bash scripts/cuda-dry-run.sh >&2 || die "scripts/cuda-dry-run.sh failed (.dev/dry-run/summary.md)"
  fi

  [ -f .cuda/cuda-headers.tar.xz ] || bash scripts/cuda-headers.sh .cuda >&2
  if ! ls .gl/*.deb >/dev/null 2>&1; then
    # the loaders from Debian's amd64 archive, whatever this machine's architecture
    mkdir -p .gl /tmp/gpu-kit-apt/partial
    # (downloading as the user running this, whom apt would otherwise drop to '_apt' from, and
    # warn "unsandboxed" when '_apt' cannot write here)
    local o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/gpu-kit-apt "-oAPT::Sandbox::User=$(id -un)")
    apt-get "${o[@]}" update -qq >&2
    (cd .gl && apt-get "${o[@]}" download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 >&2)
  fi

  # the dataset: part 1 fills what call 1's other paths leave, part 2 a whole transfer
  local tree first rest
  tree=$(tree_bytes)
  first=$(( LIMIT - MARGIN - tree - $(size $BINARY "$KERNELS_FILE" .gl .cuda/cuda-headers.tar.xz) ))
  rest=$(( LIMIT - MARGIN - tree ))
  (( first > 1024 * 1024 )) || die "call 1 has no room left for the dataset ($(mb $(( LIMIT - first - MARGIN ))) without it)"
  rm -rf .carry
  bash scripts/carry.sh pack "$data" .carry "$first" "$rest" >&2
  local parts
  parts=$(ls -d .carry/[0-9]* | wc -l)
  (( parts <= 2 )) || die "the dataset needs $parts transfers; this kit makes two calls (carry.sh gather the others by hand)"

  local carry1 carry2
  carry1='[".carry/1", ".dev/brasa-cuda.xz", ".gl", ".cuda/cuda-headers.tar.xz"'
  [ -f "$KERNELS_FILE" ] && carry1+=", \"$KERNELS_FILE\""
  carry1+=']'
  carry2='[".carry/2"]'
  {
    echo "# GPU kit, made $(date -u '+%Y-%m-%d %H:%M UTC') from $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo ' (with uncommitted changes)')"
    echo
    echo "$("$brasa" --version); binary $(mb "$(size $BINARY)") xz'd, kernels $(mb "$(size "$KERNELS_FILE")")$([ -n "$models" ] && echo " ($models at batch ${KIT_BATCHES:-16 64})"),"
    echo "loaders $(mb "$(size .gl)"), headers $(mb "$(size .cuda/cuda-headers.tar.xz)"), working tree $(mb "$tree"), dataset $(mb "$(size .carry/1)") + $(mb "$(size .carry/2)")."
    echo "Call 1 carries $(mb $(( tree + $(size .carry/1 $BINARY "$KERNELS_FILE" .gl .cuda/cuda-headers.tar.xz) ))), call 2 $(mb $(( tree + $(size .carry/2) ))) (limit $(mb $LIMIT))."
    echo
    echo "1. carry $carry1, timeout_s 300:"
    echo "   bash scripts/gpu-kit.sh call 1"
    echo "2. at once (a machine idle for 30 s goes back), carry $carry2, timeout_s 540:"
    echo "   bash scripts/gpu-kit.sh call 2"
    echo "   (the same call again resumes the reference run where the first stopped)"
    echo "   With less device time left than call 2 takes (status's budget_left_s under 555), give it"
    echo "   timeout_s = budget_left_s - 15 and REFERENCE_SECONDS = budget_left_s - 75 before bash,"
    echo "   so the run stops with its checkpoint, and its epochs are reported, before the limit."
  } > .dev/kit.md
  cat .dev/kit.md
}

call() {
  local started out
  started=$(date +%s)
  out=${OUT:-$PWD/gpu-check-out}
  mkdir -p "$out" /tmp/stash
  case ${1:-} in
    1)
      [ -f $BINARY ] || die "no $BINARY: carry it (scripts/gpu-kit.sh make prints the list)"
      bash scripts/carry.sh gather .carry/1 /tmp/stash || [ $? = 3 ] || die "the dataset's first part is damaged"
      xz -dc $BINARY > /tmp/brasa && chmod +x /tmp/brasa
      local kernels=()
      if [ -f "$KERNELS_FILE" ]; then
        # kept for call 2, should its reference run start from another folder (TUNE_LOG)
        cp "$KERNELS_FILE" /tmp/kernels.bundle.xz
        kernels=(KERNELS=/tmp/kernels.bundle.xz)
      fi
      env OUT="$out" BRASA=/tmp/brasa "${kernels[@]}" BACKENDS="${BACKENDS:-cuda wgpu}" MODELS="${MODELS-cvt13}" \
        BATCHES="${BATCHES:-16 64}" REFERENCE=0 BENCH_DEADLINE=$(( started + ${BENCH_SECONDS:-240} )) \
        bash scripts/gpu-check.sh
      # the backend that trained CvT-13 fastest at batch 16, for call 2
      python3 - "$out/bench.jsonl" > /tmp/kit-backend <<'PY' || true
import json, sys
best = {}
for line in open(sys.argv[1]):
    try:
        r = json.loads(line)
    except ValueError:
        continue
    if r.get("stack") == "brasa" and r.get("key") == "cvt13-16":
        speed = (r.get("train") or {}).get("samples_per_s")
        if speed:
            best[r["device"]["backend"]] = speed
if best:
    print(max(best, key=best.get))
    print("CvT-13, batch 16, training samples/s:", best, file=sys.stderr)
PY
      echo "gpu-kit.sh: call 2 will use $(cat /tmp/kit-backend 2>/dev/null || true)" >&2
      ;;
    2)
      [ -x /tmp/brasa ] || die "no /tmp/brasa: this is not the machine call 1 prepared (it went back when idle?); make call 1 again, then this one at once"
      local data backend kernels=()
      data=$(bash scripts/carry.sh gather .carry/2 /tmp/stash | tail -n 1) || die "the dataset is not whole: $data"
      backend=${BACKEND:-$(cat /tmp/kit-backend 2>/dev/null)}
      backend=${backend:-cuda}
      [ "$backend" = cuda ] && [ -f /tmp/kernels.bundle.xz ] && [ -n "${TUNE_LOG:-}" ] && kernels=(KERNELS=/tmp/kernels.bundle.xz)
      # then, in what is left of the reference's time, where a training step's device time goes
      # (step 4: CvT-13 at batch 16, the kernels and autotune results of the run before)
      env OUT="$out" BRASA=/tmp/brasa DATA="$data" "${kernels[@]}" MODELS="" BACKEND="$backend" \
        REFERENCE_OUT=/tmp/reference-run REFERENCE_DEADLINE=$(( started + ${REFERENCE_SECONDS:-480} )) \
        PROFILE="${PROFILE-cvt13}" BENCH_DEADLINE=$(( started + ${REFERENCE_SECONDS:-480} + 15 )) \
        bash scripts/gpu-check.sh
      ;;
    *) die "usage: gpu-kit.sh call 1|2" ;;
  esac
}

case ${1:-} in
  make) make_kit ;;
  call) shift; call "$@" ;;
  *) die "usage: gpu-kit.sh make | gpu-kit.sh call 1|2" ;;
esac
