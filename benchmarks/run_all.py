"""Run the six benchmarks in one go: ``python benchmarks/run_all.py [--quick]``.

Each writes ``benchmarks/results/<name>[_quick].json`` and ``.png`` and prints its tables.
``--quick`` (what ``make bench`` runs) uses small sizes and low compile limits and takes a
few minutes on a 2-core CPU; without it, expect the better part of an hour.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
import analysis  # noqa: E402
import compiled_loop  # noqa: E402
import fmnist_epoch  # noqa: E402
import qr_core  # noqa: E402
import roofline  # noqa: E402
import scan_vs_unrolled  # noqa: E402
import vs_torch  # noqa: E402

BENCHMARKS = {
    "roofline": roofline,
    "analysis": analysis,
    "vs_torch": vs_torch,
    "scan_vs_unrolled": scan_vs_unrolled,
    "qr_core": qr_core,
    "compiled_loop": compiled_loop,
    "fmnist_epoch": fmnist_epoch,
}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", nargs="*", choices=list(BENCHMARKS), help="run only these")
    ap.add_argument("--out", type=Path, default=C.RESULTS)
    a = ap.parse_args(argv)
    flags = (["--quick"] if a.quick else []) + ["--out", str(a.out)]
    machine = C.machine_info()
    print(
        f"{machine['cpu_model']} ({machine['cpu_cores']} cores), load {machine['load_average_1_5_15']}, "
        f"jax {machine['jax']} on {machine['device']}, torch {machine['torch']}",
        flush=True,
    )
    for name in a.only or BENCHMARKS:
        t0 = time.perf_counter()
        print(f"\n=== {name} ===", flush=True)
        BENCHMARKS[name].main(flags)
        print(f"=== {name}: {time.perf_counter() - t0:.0f} s ===", flush=True)


if __name__ == "__main__":
    main()
