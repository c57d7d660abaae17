"""Reproduce every claim of the paper: train (or reuse) the runs, analyse, write results and figures.

    python scripts/reproduce.py            # full mode: docs/results/reproduce/ and docs/results.md
    python scripts/reproduce.py --quick    # <= 10 min on 2 CPU cores: runs/reproduce-quick/
    python scripts/reproduce.py --tiny     # a few minutes: runs/reproduce-tiny/

`--help` lists every flag. A thin wrapper: the command is `resflow.cli.reproduce.main`, also installed
as the `resflow-reproduce` entry point (pyproject.toml).
"""

from resflow.cli.reproduce import main

if __name__ == "__main__":
    raise SystemExit(main())
