"""Train many runs at once: seeds × a grid of options (`resflow.sweep`), then table and figures.

    python scripts/sweep.py --data circles --width 3 --depth-adapt --seeds 0-15 --grid lr=1e-2,3e-3 w_std=1,2
    python scripts/sweep.py ... --out runs/s --resume   # continue a stopped sweep

`--help` lists every flag. A thin wrapper: the command is `resflow.cli.sweep.main`, also installed
as the `resflow-sweep` entry point (pyproject.toml).
"""

from resflow.cli.sweep import main

if __name__ == "__main__":
    raise SystemExit(main())
