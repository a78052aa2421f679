#!/usr/bin/env python3
"""Carry burn's compiled CUDA kernels from one machine to another (cubecl's kernel cache).

  kernel_cache.py export OUT.db.xz DB...   the PTX of every DB (cubecl's default.db), nothing else
  kernel_cache.py import IN.db.xz DB       add them to DB (made if missing; entries it has are kept)

brasa keeps the kernels NVRTC compiled for CUDA in cubecl's cache, an SQLite file (default.db in
target/environment under a Cargo project, else ~/.cache/cubecl), beside the autotune results.
A cache filled by scripts/cuda-dry-run.sh on a machine without a GPU holds every kernel a real
card's first run would compile, but its autotune results and throughput figures come from a
device that ran nothing: only the kernel namespaces travel ("cuda/…" and "cuda-second-line/…",
named by cubecl's version and the compute capability). An entry is keyed by the kernel and the
brasa binary's build id, so it is used only by the very binary that compiled it (strip keeps the
id) on a card of the same compute capability; any other kernel is compiled as usual.
"""
import lzma
import os
import shutil
import sqlite3
import sys
import tempfile

KERNELS = "namespace LIKE 'cuda/%' OR namespace LIKE 'cuda-second-line/%'"
PTX = "SELECT count(*) FROM entries WHERE namespace LIKE 'cuda/%'"


def copy_kernels(src: str, dest: sqlite3.Connection) -> int:
    """Adds src's kernels to dest; returns how many kernels (PTX entries) dest gained."""
    before = dest.execute(PTX).fetchone()[0]
    dest.execute("ATTACH DATABASE ? AS src", (src,))
    try:
        dest.execute(f"INSERT OR IGNORE INTO main.entries SELECT * FROM src.entries WHERE {KERNELS}")
        dest.commit()
    finally:
        dest.execute("DETACH DATABASE src")
    return dest.execute(PTX).fetchone()[0] - before


def export(out: str, sources: list[str]) -> None:
    with tempfile.TemporaryDirectory() as work:
        path = os.path.join(work, "kernels.db")
        # the first cache as cubecl made it (its schema and format version; SQLite's backup reads
        # what its write-ahead log still holds), less everything but the kernels; then the others
        db = sqlite3.connect(path)
        with sqlite3.connect(sources[0]) as first:
            first.backup(db)
        db.execute(f"DELETE FROM entries WHERE NOT ({KERNELS})")
        db.commit()
        added = db.execute(PTX).fetchone()[0] + sum(copy_kernels(src, db) for src in sources[1:])
        if added == 0:
            sys.exit(f"kernel_cache.py: no CUDA kernels in {' '.join(sources)}")
        db.execute("VACUUM")
        db.close()
        with open(path, "rb") as raw, lzma.open(out + ".part", "wb", preset=6) as packed:
            shutil.copyfileobj(raw, packed)
        os.replace(out + ".part", out)
    print(f"{out}: {added} kernels, {os.path.getsize(out)} bytes")


def import_(packed: str, dest_path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(dest_path)), exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        path = os.path.join(work, "kernels.db")
        with lzma.open(packed, "rb") as src, open(path, "wb") as raw:
            shutil.copyfileobj(src, raw)
        if not os.path.exists(dest_path):
            shutil.copyfile(path, dest_path)
            added = sqlite3.connect(dest_path).execute(PTX).fetchone()[0]
        else:
            db = sqlite3.connect(dest_path)
            added = copy_kernels(path, db)
            db.close()
    print(f"{dest_path}: {added} kernels added from {packed}")


def main() -> None:
    command, files = sys.argv[1:2], sys.argv[2:]
    if command == ["export"] and len(files) >= 2:
        inputs, run = files[1:], lambda: export(files[0], files[1:])
    elif command == ["import"] and len(files) == 2:
        inputs, run = files[:1], lambda: import_(files[0], files[1])
    else:
        sys.exit(__doc__)
    missing = [path for path in inputs if not os.path.isfile(path)]
    if missing:
        sys.exit(f"kernel_cache.py: no such file: {', '.join(missing)}")
    run()


if __name__ == "__main__":
    main()
