#!/usr/bin/env python3
"""brasa at dataset scale (issue 12): peak memory and speed against the number of images.

Generates synthetic image folders (MRI-like grey pictures: smooth blobs, a ring, noise; JPEG at
quality 90, sizes drawn around 512 px like the brain-MRI set) of each size asked for, then for each:

- `brasa data audit`: wall time and peak RSS (fingerprints only);
- the run's data preparation: `brasa run` of cvt-tiny at 224 px with a random-resized-crop chain,
  stopped after 2 training steps (`train.max_steps`): peak RSS and wall time, i.e. what decoding
  and keeping the dataset costs before training proper;
- `brasa bench --what data`: images/s of the data path.

Needs Pillow and numpy (bench/requirements.txt). Folders are kept in --work and reused.

    python3 bench/scale.py --sizes 2000,5000 --work /tmp/brasa-scale
    python3 bench/scale.py --sizes 100000 --skip run,data     # the audit alone at 100,000

Prints a markdown table, and the raw figures as JSON lines into --work/scale.jsonl.
"""

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ["a", "b", "c", "d"]


def picture(rng: np.random.Generator, label: int) -> Image.Image:
    """A grey picture about 512 px with class-dependent structure, stored as RGB like the MRI set."""
    side = int(rng.integers(430, 600))
    y, x = np.mgrid[0:side, 0:side] / side
    image = 40 + 80 * np.exp(-((x - 0.5) ** 2 + (y - 0.5) ** 2) / 0.08)
    for _ in range(3 + label):
        cx, cy, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.02, 0.1)
        image += 90 * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (r * r))
    ring = np.abs(np.hypot(x - 0.5, y - 0.5) - 0.42) < 0.01
    image[ring] = 200
    image += rng.normal(0, 6, image.shape)
    grey = np.clip(image, 0, 255).astype(np.uint8)
    return Image.fromarray(np.stack([grey] * 3, axis=-1))


def generate(root: Path, count: int, seed: int) -> None:
    """`root/{train,test}/<class>/*.jpg`: `count` images, a sixth of them in test."""
    done = root / ".complete"
    if done.exists():
        return
    rng = np.random.default_rng(seed)
    test = count // 6
    started = time.time()
    for i in range(count):
        split = "test" if i < test else "train"
        label = i % len(CLASSES)
        folder = root / split / CLASSES[label]
        folder.mkdir(parents=True, exist_ok=True)
        picture(rng, label).save(folder / f"{i:06d}.jpg", quality=90)
        if i % 1000 == 999:
            print(f"  generated {i + 1}/{count} ({time.time() - started:.0f} s)", file=sys.stderr)
    done.write_text("")


def timed(command: list[str]) -> dict:
    """Runs `command` under /usr/bin/time -v: wall seconds, peak RSS bytes, exit code, stdout."""
    result = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True, text=True)
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

[data.split]
validation = 0.2

[preprocess]
resize = [224, 224]

[augment]
mode = "online"
chain = [
  {{ op = "random_resized_crop", size = 224, scale = [0.8, 1.0] }},
  {{ op = "horizontal_flip", p = 0.5 }},
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="2000,5000", help="comma-separated image counts")
    parser.add_argument("--work", default="/tmp/brasa-scale", help="where the folders and results go")
    parser.add_argument("--brasa", default="target/release/brasa")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--skip", default="", help="comma-separated: audit, run, data")
    args = parser.parse_args()
    work = Path(args.work).absolute()
    work.mkdir(parents=True, exist_ok=True)
    skip = set(filter(None, args.skip.split(",")))
    brasa = str(Path(args.brasa).absolute())
    version = subprocess.run([brasa, "--version"], capture_output=True, text=True).stdout.strip()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"# {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%dT%H:%M:%SZ} {cpu}, {os.cpu_count()} cores, {args.threads} threads; {version}")
    print("| images | audit s | audit peak RSS | run to step 2: s | run peak RSS | data path images/s |")
    print("|---:|---:|---:|---:|---:|---:|")
    with open(work / "scale.jsonl", "a") as log:
        for count in [int(n) for n in args.sizes.split(",")]:
            root = work / f"images-{count}"
            generate(root, count, seed=count)
            spec = work / f"scale-{count}.toml"
            spec.write_text(SPEC.format(root=root, threads=args.threads))
            row = {"images": count, "threads": args.threads, "version": version}
            if "audit" not in skip:
                row["audit"] = timed([brasa, "data", "audit", str(root), "--quiet"])
            if "run" not in skip:
                out = work / f"run-{count}-{time.time_ns()}"
                row["run"] = timed([brasa, "run", str(spec), "--out", str(out), "--quiet"])
            if "data" not in skip:
                ran = timed([brasa, "bench", str(spec), "--what", "data", "--json"])
                row["data"] = ran
                try:
                    row["data_images_per_s"] = json.loads(ran["stdout"])["data"]["full_per_s"]
                except (ValueError, KeyError):
                    row["data_images_per_s"] = None
            for part in ("audit", "run", "data"):
                row.get(part, {}).pop("stdout", None)
            log.write(json.dumps(row) + "\n")

            def cell(part, key, scale=1.0, unit=""):
                value = row.get(part, {}).get(key)
                return "—" if value is None else f"{value / scale:.1f}{unit}"

            rate = row.get("data_images_per_s")
            print(
                f"| {count} | {cell('audit', 'seconds')} | {cell('audit', 'peak_rss_bytes', 1e6, ' MB')} "
                f"| {cell('run', 'seconds')} | {cell('run', 'peak_rss_bytes', 1e9, ' GB')} | {'—' if rate is None else f'{rate:.0f}'} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
