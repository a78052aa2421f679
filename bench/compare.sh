#!/usr/bin/env bash
# brasa against PyTorch + transformers + torchvision on this machine's CPU, one after the other in
# one invocation: `brasa bench` and bench/torch_bench.py on the same model, image size, batch and
# thread count, then a table of ratios (brasa / PyTorch; above 1 means brasa is faster).
#
#   bench/compare.sh                      # threads "1 2", the cases below
#   THREADS="1 2 4 8 16" bench/compare.sh
#   PYTHON=~/.venvs/peer/bin/python BRASA=target/release/brasa OUT=/tmp/cmp bench/compare.sh
#
# Cases: cvt-tiny at 96 px batch 32 (the quickstart's model) train + infer; CvT-13 at 224 px batch 16
# train + infer (fewer steps: slow on a CPU); the data path (decode + preprocessing + the reference
# augmentation chain + normalised batch) at 96 px over the Training folder.
# Prints the raw JSON lines to $OUT/compare.jsonl and the table to stdout.
set -uo pipefail
cd "$(dirname "$0")/.."
BRASA=${BRASA:-target/release/brasa}
PYTHON=${PYTHON:-python3}
THREADS=${THREADS:-"1 2"}
OUT=${OUT:-$(mktemp -d)}
SPEC=${SPEC:-experiments/quickstart.toml}
TINY_STEPS=${TINY_STEPS:-20}
BIG_STEPS=${BIG_STEPS:-3}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
mkdir -p "$OUT"
: > "$OUT/compare.jsonl"
echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; $("$BRASA" --version); $("$PYTHON" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)')"
record() { sed "s/^{/{\"case\":\"$1\",\"threads\":$2,/" >> "$OUT/compare.jsonl"; }
for threads in $THREADS; do
  echo "# threads $threads" >&2
  "$BRASA" bench "$SPEC" --threads "$threads" --backend flex --what train,infer --steps "$TINY_STEPS" --json | record cvt-tiny-96-b32 "$threads"
  "$PYTHON" bench/torch_bench.py --model cvt-tiny --size 96 --batch 32 --threads "$threads" --steps "$TINY_STEPS" | record cvt-tiny-96-b32 "$threads"
  "$BRASA" bench "$SPEC" --threads "$threads" --backend flex --what train,infer --steps "$BIG_STEPS" --warmup 1 --json \
    --set 'model.arch="cvt-13"' --set 'preprocess.resize=[224, 224]' --set 'augment.chain=[]' --set train.batch_size=16 | record cvt13-224-b16 "$threads"
  "$PYTHON" bench/torch_bench.py --model cvt13 --size 224 --batch 16 --threads "$threads" --steps "$BIG_STEPS" --warmup 1 | record cvt13-224-b16 "$threads"
  "$BRASA" bench "$SPEC" --threads "$threads" --backend flex --what data --json | record data-96 "$threads"
  "$PYTHON" bench/torch_bench.py --what data --size 96 --threads "$threads" | record data-96 "$threads"
done
"$PYTHON" - "$OUT/compare.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def pick(case, threads, stack):
    for r in rows:
        if r["case"] == case and r["threads"] == threads and (r.get("stack") == "pytorch") == (stack == "pytorch"):
            return r
    return {}
print("| case | threads | what | brasa | PyTorch | brasa / PyTorch |")
print("|---|---|---|---|---|---|")
for case in dict.fromkeys(r["case"] for r in rows):
    for threads in dict.fromkeys(r["threads"] for r in rows):
        b, p = pick(case, threads, "brasa"), pick(case, threads, "pytorch")
        for what, key, unit in [("train", "samples_per_s", "samples/s"), ("infer", "samples_per_s", "samples/s"), ("data", "full_per_s", "images/s")]:
            bv, pv = b.get(what, {}).get(key), p.get(what, {}).get(key)
            if bv is None and pv is None:
                continue
            ratio = f"**{bv / pv:.2f}×**" if bv and pv else "–"
            fmt = lambda v: f"{v:.1f} {unit}" if v else "–"
            print(f"| {case} | {threads} | {what} | {fmt(bv)} | {fmt(pv)} | {ratio} |")
        bm, pm = b.get("peak_rss_bytes"), p.get("peak_rss_bytes")
        if bm and pm and case != "data-96":
            print(f"| {case} | {threads} | peak RSS | {bm / 1e6:.0f} MB | {pm / 1e6:.0f} MB | {bm / pm:.2f}× |")
PY
