"""Train a residual network (or its MLP baseline) classifier, optionally adapting its depth.

    python scripts/train.py --depth-adapt        # `make train`: digits, 15 shared layers, depth adaptation
    python scripts/train.py --data circles --width 3 --depth 15 --depth-adapt
    python scripts/train.py ... --out runs/x --resume  # continue a stopped run (the same flags)

`--help` lists every flag. A thin wrapper: the command is `resflow.cli.train.main`, also installed
as the `resflow-train` entry point (pyproject.toml).
"""

from resflow.cli.train import main

if __name__ == "__main__":
    raise SystemExit(main())
