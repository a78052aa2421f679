#!/usr/bin/env python3
"""Sums cubecl's logs into markdown tables (for scripts/gpu-check.sh, which turns the loggers on).

  cubecl_log.py kernels KERNELS_LOG WARMUP STEPS
      the profiling log (level "basic": `| <duration> | <kernel>` per launch): each kernel's device
      time over the last STEPS training steps, a step being the period from one step's gradient
      gather (PackKernel launches) to the next
  cubecl_log.py autotune AUTOTUNE_LOG COMPILE_LOG
      the autotune log (level "minimal") and the compilation log (level "basic"): kernels compiled,
      operations tuned by kind, and the trials' compilation + benchmark time by candidate
"""
import re
import sys
from collections import defaultdict

UNIT = {"ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0}
DURATION = r"([0-9.]+)(ns|µs|us|ms|s)"


def seconds(value, unit):
    return float(value) * UNIT[unit]


def read(path, missing_ok=False):
    try:
        return open(path, errors="replace").read()
    except OSError as e:
        if missing_ok:
            return ""
        sys.exit(f"no profiling log: {e}")


def kernels(path, warmup, steps):
    rows = []
    for line in read(path).splitlines():
        m = re.match(r"\|\s*" + DURATION + r"\s*\|\s*(.*)", line)
        if m:
            rows.append((seconds(m.group(1), m.group(2)), m.group(3).strip()))
    packs = [i for i, (_, name) in enumerate(rows) if name.startswith("PackKernel")]
    opens = [i for k, i in enumerate(packs) if k == 0 or i - packs[k - 1] > 50]
    if len(opens) > steps:
        rows = rows[opens[-steps - 1]:opens[-1]]
    else:
        steps = warmup + steps  # no gathers told apart: everything, warm-up included
    total = sum(d for d, _ in rows)
    by = defaultdict(lambda: [0.0, 0])
    for d, name in rows:
        parts = [p.strip() for p in name.split("|")]
        # a matmul's name lists its arguments, then its family, partitioner, loaders and tiling
        key = " ".join(parts) if len(parts) <= 6 else " ".join(parts[:2]) + " … " + " ".join(parts[-10:])
        by[key][0] += d
        by[key][1] += 1
    print(f"{len(rows)} kernels timed over {steps} step(s): {total / steps * 1e3:.1f} ms of device time a step\n")
    print("| kernel | ms a step | share | launches a step |")
    print("|---|---|---|---|")
    for name, (d, n) in sorted(by.items(), key=lambda kv: -kv[1][0])[:40]:
        print(f"| `{name}` | {d / steps * 1e3:.2f} | {d / total:.1%} | {n / steps:.0f} |")


def autotune(tune_path, compile_path):
    tune, compiled = read(tune_path, missing_ok=True), read(compile_path, missing_ok=True)
    trials = [(n, seconds(v, u)) for n, v, u in re.findall(r"Tuning: (\S+) \(compilation & bench: " + DURATION + r"\)", tune)]
    keys = defaultdict(int)
    for kind in re.findall(r"Fastest result \S+?-(\w+Key)", tune):
        keys[kind] += 1
    print(f"{compiled.count('Compiling kernel')} kernels compiled; {sum(keys.values())} operations autotuned "
          f"({', '.join(f'{n} {k}' for k, n in sorted(keys.items(), key=lambda kv: -kv[1]))}), {len(trials)} trials "
          f"taking {sum(t for _, t in trials):.1f} s (compilation and benchmark)\n")
    by = defaultdict(lambda: [0, 0.0])
    for name, t in trials:
        by[name][0] += 1
        by[name][1] += t
    print("| candidate | trials | seconds |")
    print("|---|---|---|")
    for name, (n, t) in sorted(by.items(), key=lambda kv: -kv[1][1])[:20]:
        print(f"| {name} | {n} | {t:.1f} |")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "kernels":
        kernels(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif len(sys.argv) == 4 and sys.argv[1] == "autotune":
        autotune(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
