#!/usr/bin/env python3
"""brasa at dataset scale (issue 12): peak memory and speed against the number of images.

Generates synthetic image folders (MRI-like grey pictures: smooth blobs, a ring, noise; JPEG at
quality 90, sizes drawn from 430 to 600 px like the brain-MRI set), each size hard-linking the
first pictures of one shared pool, then for each size:

- `brasa data audit`: wall time and peak RSS (fingerprints only);
- per `data.cache` mode (memory; disk with an empty cache, then with a full one; none):
  - `brasa run` of cvt-tiny at 224 px with the reference's augmentation chain (append, one copy),
    stopped after 2 training steps (`train.max_steps`): wall time and peak RSS, i.e. what making
    the dataset available costs a run before training proper;
  - `brasa bench --what epoch`: the same preparation, then one epoch of training batches
    (clean images and augmented copies) assembled through the prefetch pipeline: seconds to
    ready, files decoded, samples/s, peak RSS.

Needs Pillow and numpy (bench/requirements.txt). Folders are kept in --work and reused; the
disk cache of each size is --work/cache-<size>.

    python3 bench/scale.py --sizes 5000,20000,100000 --work /tmp/brasa-scale
    python3 bench/scale.py --sizes 100000 --modes disk-cold,disk-warm --skip run

Prints a markdown table, and the raw figures as JSON lines into --work/scale.jsonl.
"""

import argparse
import datetime
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageDraw

CLASSES = ["a", "b", "c", "d"]


def picture(rng: np.random.Generator, label: int) -> Image.Image:
    """A grey picture about 512 px with class-dependent structure, stored as RGB like the MRI set:
    smooth blobs (drawn at 64 px, scaled up), a skull-like ring and sensor noise."""
    side = int(rng.integers(430, 600))
    n = 64
    y, x = np.mgrid[0:n, 0:n] / n
    image = 40 + 80 * np.exp(-((x - 0.5) ** 2 + (y - 0.5) ** 2) / 0.08)
    for _ in range(3 + label):
        cx, cy, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.02, 0.1)
        image += 90 * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (r * r))
    grey = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).resize((side, side), Image.BILINEAR)
    ImageDraw.Draw(grey).ellipse([side * 0.08, side * 0.08, side * 0.92, side * 0.92], outline=200, width=max(1, side // 100))
    grey = ImageChops.add(grey, Image.effect_noise((side, side), 6), offset=-128)
    return grey.convert("RGB")


def pool_file(pool: Path, i: int) -> Path:
    return pool / f"{i:06d}.jpg"


def make_picture(job: tuple[Path, int]) -> None:
    pool, i = job
    path = pool_file(pool, i)
    if not path.exists():
        rng = np.random.default_rng(i)  # one generator per picture: resumable, parallel, the same every time
        partial = path.with_suffix(".part")
        picture(rng, i % len(CLASSES)).save(partial, format="JPEG", quality=90)
        partial.rename(path)


def generate_pool(pool: Path, count: int, processes: int) -> None:
    """`pool/NNNNNN.jpg` for i < count (picture i has class i % 4); what exists is kept."""
    pool.mkdir(parents=True, exist_ok=True)
    jobs = [(pool, i) for i in range(count) if not pool_file(pool, i).exists()]
    if not jobs:
        return
    started = time.time()
    with multiprocessing.Pool(processes) as workers:
        for done, _ in enumerate(workers.imap_unordered(make_picture, jobs, chunksize=64), 1):
            if done % 5000 == 0:
                print(f"  generated {done}/{len(jobs)} ({time.time() - started:.0f} s)", file=sys.stderr)


def generate(root: Path, count: int, pool: Path, processes: int) -> None:
    """`root/{train,test}/<class>/*.jpg`: the pool's first `count` pictures hard-linked, a sixth
    of them in test (folders of several sizes share one pool, so no picture is made twice)."""
    done = root / ".complete"
    if done.exists():
        return
    generate_pool(pool, count, processes)
    test = count // 6
    for i in range(count):
        split = "test" if i < test else "train"
        folder = root / split / CLASSES[i % len(CLASSES)]
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{i:06d}.jpg"
        if not target.exists():
            os.link(pool_file(pool, i), target)
    done.write_text("")


def timed(command: list[str], env: dict | None = None) -> dict:
    """Runs `command` under /usr/bin/time -v: wall seconds, peak RSS bytes, exit code, stdout."""
    result = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True, text=True, env=env)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", result.stderr)
    seconds = sum(float(part) * 60**i for i, part in enumerate(reversed(wall.group(1).split(":")))) if wall else None
    if result.returncode != 0:
        print(f"  {' '.join(command)} exited {result.returncode}: {result.stderr[-2000:]}", file=sys.stderr)
    return {"seconds": seconds, "peak_rss_bytes": int(rss.group(1)) * 1024 if rss else None, "code": result.returncode, "stdout": result.stdout}


SPEC = """
[experiment]
name = "scale"
seed = 1

[data]
root = "{root}"
train = "train"
test = "test"
cache = "{cache}"

[data.split]
validation = 0.2

[preprocess]
resize = [224, 224]

[augment]
mode = "append"
copies = 1
chain = [
  {{ op = "resize", size = [224, 224] }},
  {{ op = "random_rotation", degrees = 15 }},
  {{ op = "random_resized_crop", size = 224, scale = [0.8, 1.0] }},
  {{ op = "horizontal_flip", p = 0.5 }},
  {{ op = "vertical_flip", p = 0.5 }},
  {{ op = "color_jitter", brightness = 0.2, contrast = 0.2 }},
]

[model]
arch = "cvt-tiny"

[train]
epochs = 1
batch_size = 16
max_steps = 2

[runtime]
backend = "flex"
threads = {threads}

[report]
formats = []
attention_maps = 0
prediction_grid = 0
mistakes = 0
"""

# Each size: the audit, then per cache mode a run to step 2 and the epoch's data preparation.
# "disk (cold)" fills an empty cache; "disk (warm)" finds it full (what every later run and
# trial sees).
MODES = ["memory", "disk-cold", "disk-warm", "none"]


def gigabytes(value):
    return "—" if value is None else f"{value / 1e9:.2f} GB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="5000,20000", help="comma-separated image counts")
    parser.add_argument("--work", default="/tmp/brasa-scale", help="where the folders and results go")
    parser.add_argument("--brasa", default="target/release/brasa")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}")
    parser.add_argument("--skip", default="", help="comma-separated: audit, run, epoch")
    args = parser.parse_args()
    work = Path(args.work).absolute()
    work.mkdir(parents=True, exist_ok=True)
    skip = set(filter(None, args.skip.split(",")))
    modes = [m for m in args.modes.split(",") if m]
    brasa = str(Path(args.brasa).absolute())
    version = subprocess.run([brasa, "--version"], capture_output=True, text=True).stdout.strip()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"# {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%dT%H:%M:%SZ} {cpu}, {os.cpu_count()} cores, {args.threads} threads; {version}")
    print("| images | data.cache | run to step 2: s | run peak RSS | ready s (decoded) | epoch samples/s | epoch peak RSS | audit s | audit peak RSS |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    with open(work / "scale.jsonl", "a") as log:
        for count in [int(n) for n in args.sizes.split(",")]:
            root = work / f"images-{count}"
            generate(root, count, work / "pool", os.cpu_count())
            audit = None if "audit" in skip else timed([brasa, "data", "audit", str(root), "--quiet"])
            cache_dir = work / f"cache-{count}"
            for mode in modes:
                cache = mode.split("-")[0]
                env = dict(os.environ, BRASA_CACHE=str(cache_dir))
                if mode == "disk-cold":
                    subprocess.run([brasa, "cache", "prune", "--all", "--dir", str(cache_dir)], capture_output=True)
                spec = work / f"scale-{count}-{cache}.toml"
                spec.write_text(SPEC.format(root=root, threads=args.threads, cache=cache))
                row = {"images": count, "mode": mode, "threads": args.threads, "version": version}
                if "run" not in skip:
                    out = work / f"run-{count}-{mode}-{time.time_ns()}"
                    row["run"] = timed([brasa, "run", str(spec), "--out", str(out), "--quiet"], env)
                    shutil.rmtree(out, ignore_errors=True)
                    if mode == "disk-cold":  # the epoch below would find the cache full: empty it again
                        subprocess.run([brasa, "cache", "prune", "--all", "--dir", str(cache_dir)], capture_output=True)
                if "epoch" not in skip:
                    ran = timed([brasa, "bench", str(spec), "--what", "epoch", "--json"], env)
                    try:
                        row["epoch"] = json.loads(ran["stdout"])["epoch"]
                    except (ValueError, KeyError, TypeError):
                        row["epoch"] = None
                    ran.pop("stdout", None)
                    row["epoch_process"] = ran
                if audit is not None and mode == modes[0]:
                    row["audit"] = {k: v for k, v in audit.items() if k != "stdout"}
                row.get("run", {}).pop("stdout", None)
                log.write(json.dumps(row) + "\n")
                log.flush()

                def cell(part, key, scale=1.0, unit=""):
                    value = (row.get(part) or {}).get(key)
                    return "—" if value is None else f"{value / scale:.1f}{unit}"

                epoch = row.get("epoch") or {}
                ready = "—" if not epoch else f"{epoch['load_seconds']:.1f} ({epoch['decoded']})"
                rate = "—" if not epoch else f"{epoch['samples_per_s']:.0f}"
                print(
                    f"| {count} | {mode} | {cell('run', 'seconds')} | {gigabytes((row.get('run') or {}).get('peak_rss_bytes'))} "
                    f"| {ready} | {rate} | {gigabytes((row.get('epoch_process') or {}).get('peak_rss_bytes'))} "
                    f"| {cell('audit', 'seconds')} | {cell('audit', 'peak_rss_bytes', 1e6, ' MB')} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
