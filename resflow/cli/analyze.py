"""Analyse a saved run: Lyapunov spectra, fixed points and attractors, interactions,
perturbation growth, separability and noise accuracy, on the run's own test data with its
own trunk (no option needs repeating).

Example: `python scripts/analyze.py runs/digits-resnet-shared-d15-s0-1a2b3c4d` writes
<name>.json and <name>.png per analysis into RUN_DIR/analysis (see docs/runs.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ._common import one_line_errors


def build_parser() -> argparse.ArgumentParser:
    from ..experiments.analysis import ANALYSES
    from ._common import OneLineParser

    p = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by scripts/train.py or resflow.fit")
    p.add_argument("--what", nargs="+", choices=ANALYSES, default=list(ANALYSES), help="analyses to run (default: all)")
    p.add_argument("--out", default=None, help="output folder (default: RUN_DIR/analysis)")
    p.add_argument("--max-samples", type=int, default=512, help="test inputs analysed (default: 512)")
    return p


def _dtype_of(run_dir: str):
    """The network dtype recorded in run.json, or None (load_run then reports what is wrong)."""
    try:
        return json.loads((Path(run_dir) / "run.json").read_text())["network"]["dtype"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


@one_line_errors
def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.max_samples < 1:
        parser.error(f"--max-samples must be >= 1, got {args.max_samples}")
    if _dtype_of(args.run_dir) == "float64":
        import jax

        jax.config.update("jax_enable_x64", True)
    from .. import load_run
    from ..experiments.analysis import analyze_run

    try:
        run = load_run(args.run_dir)
        results = analyze_run(run, what=args.what, out=args.out, max_samples=args.max_samples)
    except (ValueError, FileNotFoundError, OSError) as e:  # RunError / DataError are ValueErrors
        parser.error(str(e))
    out = args.out or f"{run.path}/analysis"
    for name, res in results.items():
        note = f" ({res['skipped']})" if "skipped" in res else ""
        print(f"{name}: {out}/{name}.json{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
