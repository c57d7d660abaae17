"""Reproduce every claim of the paper: train (or reuse) the runs, analyse, write results and figures.

    python scripts/reproduce.py            # full mode: docs/results/reproduce/ and docs/results.md
    python scripts/reproduce.py --quick    # <= 10 min on 2 CPU cores: runs/reproduce-quick/
    python scripts/reproduce.py --tiny     # a few minutes (the test's mode): runs/reproduce-tiny/

Trained runs are saved under OUT/runs (or --runs) and reused: a second call only analyses, and
a killed call resumes. Writes OUT/results.json (every number, per seed and mean ± spread), one
PNG per claim, and the results page (full mode with the default --out: docs/results.md; else
OUT/results.md). Fashion-MNIST comes from `make data`. See docs/results.md for the modes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._common import one_line_errors

DOCS = Path(__file__).resolve().parents[2] / "docs"  # the repository checkout's docs/
FULL_OUT = DOCS / "results" / "reproduce"


def build_parser():
    from ._common import OneLineParser

    p = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes, <= 10 minutes on 2 CPU cores")
    size.add_argument("--tiny", action="store_true", help="a few minutes: every section, meaningless numbers")
    p.add_argument("--out", help="folder for results.json and figures (default: per mode, see above)")
    p.add_argument("--runs", help="folder of the saved runs (default: OUT/runs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


@one_line_errors
def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "tiny" if args.tiny else "full"
    out = Path(args.out) if args.out else FULL_OUT if mode == "full" else Path(f"runs/reproduce-{mode}")
    if out.exists() and not out.is_dir():
        parser.error(f"--out {out}: exists and is not a folder")
    if args.runs:
        from ..training._runs import is_run_folder

        found = is_run_folder(args.runs)
        if found:  # its seeds' folders would be mixed into another run's files
            parser.error(
                f"--runs {args.runs}: is a scripts/train.py run folder (holds {', '.join(found)}); "
                "give the reproduction a folder of its own"
            )
    docs_page = out.resolve() == FULL_OUT.resolve()
    markdown = DOCS / "results.md" if docs_page else out / "results.md"
    prefix = "results/reproduce/" if docs_page else ""

    import jax

    jax.config.update("jax_enable_x64", True)  # claim 1 measures in float64; training stays float32
    from ..experiments.reproduce import reproduce

    try:
        results = reproduce(
            mode, out, runs=args.runs, markdown=markdown, figures_prefix=prefix, progress=not args.no_progress
        )
    except FileNotFoundError as e:  # e.g. Fashion-MNIST not installed: the loader says `make data`
        parser.error(str(e))
    for name, claim in results["claims"].items():
        print(f"{name:14s} {claim['verdict']['verdict']}: {claim['verdict']['reason']}")
    print(f"wrote {out / 'results.json'} and {markdown} in {results['meta']['wall_time_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
