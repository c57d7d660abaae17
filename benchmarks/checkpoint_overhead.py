"""Checkpoint overhead of `resflow.fit` on the 3000-epoch circles run.

    python benchmarks/checkpoint_overhead.py [--every 1 25 100] [--quick]

For each `checkpoint_every`, the same run (same key) is timed without an output folder and
with one, side by side in one process; the time spent inside `train.log_and_checkpoint` is
measured directly (wall-clock differences between two runs are noisier than the overhead on
a shared machine). Writes docs/results/checkpoint_overhead.json, quoted by docs/training.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
import jax  # noqa: E402

import resflow as rf  # noqa: E402
from resflow import train as tr  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs" / "results" / "checkpoint_overhead.json"
OPTIONS = dict(width=3, depth=15, lr=1e-2, batch_size=50, depth_adapt=True, depth_warmup=100, w_std=2.0, figures=False)


def measure(every: int, epochs: int, data) -> dict:
    """One pair of runs: no folder, then a folder checkpointing every `every` epochs."""
    real, spent = tr.log_and_checkpoint, [0.0]

    def timed(*args):
        t = time.perf_counter()
        saved = real(*args)
        spent[0] += time.perf_counter() - t
        return saved

    opts = dict(OPTIONS, epochs=epochs)
    t = time.perf_counter()
    rf.fit(data, key=jax.random.key(0), **opts)
    without = time.perf_counter() - t
    folder = tempfile.mkdtemp()
    tr.log_and_checkpoint = timed
    try:
        t = time.perf_counter()
        rf.fit(data, key=jax.random.key(0), out_dir=folder, **dict(opts, checkpoint_every=every))
        with_folder = time.perf_counter() - t
    finally:
        tr.log_and_checkpoint = real
        shutil.rmtree(folder)
    return {
        "checkpoint_every": every,
        "without_folder_s": without,
        "with_folder_s": with_folder,
        "in_log_and_checkpoint_s": spent[0],
        "share": spent[0] / without,
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--every", type=int, nargs="+", default=[1, 100])
    ap.add_argument("--quick", action="store_true", help="300 epochs instead of 3000 (not written to docs)")
    a = ap.parse_args(argv)
    epochs = 300 if a.quick else 3000
    data = rf.load_dataset("circles")
    rf.fit(data, key=jax.random.key(0), **dict(OPTIONS, epochs=2))  # compile once, outside the timings
    rows = []
    for every in a.every:
        rows.append(measure(every, epochs, data))
        r = rows[-1]
        print(
            f"checkpoint_every {every:>4}: {r['in_log_and_checkpoint_s']:.2f} s in log_and_checkpoint, "
            f"{100 * r['share']:.1f} % of the {r['without_folder_s']:.1f} s run without a folder "
            f"(wall clock with a folder {r['with_folder_s']:.1f} s)",
            flush=True,
        )
    result = {"epochs": epochs, "rows": {str(r["checkpoint_every"]): r for r in rows}, "machine": C.machine_info()}
    if not a.quick:
        OUT.write_text(json.dumps(result, indent=1))
        print(f"written {os.path.relpath(OUT)}")


if __name__ == "__main__":
    main()
