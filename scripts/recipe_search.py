"""The circles recipe search: which training choices make every seed learn, at what final depth.

    python scripts/recipe_search.py            # docs/results/recipe_search.json and docs/figures/recipe_search.png
    python scripts/recipe_search.py --seeds 0-3 --epochs 100 --out /tmp/rs   # a smaller check

Each candidate is a set of `resflow.fit` options on top of the circles recipe of
`scripts/train.py --data circles --width 3 --depth 15 --depth-adapt`; the seeds of one
candidate train as one vmapped program (`resflow.sweep`). The same seeds for every candidate,
no seed selection: a candidate is judged by its worst seed. Writes a table (per candidate:
per-seed test accuracy and final depth, how many seeds reach 99 %, mean final depth) and a
figure (accuracy and final depth per seed, one column per candidate).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The circles recipe before the search (scripts/train.py's defaults then) and what changed.
BASE = {"width": 3, "depth": 15, "depth_adapt": True, "batch_size": 50, "depth_warmup": 100, "epochs": 300}
CANDIDATES = {
    "before: lr 1e-2, w_std 2": {"lr": 1e-2, "w_std": 2.0},
    "lr 1e-2, w_std 1": {"lr": 1e-2, "w_std": 1.0},
    "lr 3e-3, w_std 1": {"lr": 3e-3, "w_std": 1.0},
    "lr 3e-2, w_std 2": {"lr": 3e-2, "w_std": 2.0},
    "lr 3e-2, w_std 0.5": {"lr": 3e-2, "w_std": 0.5},
    "lr 3e-2, w_std 1 (new default)": {"lr": 3e-2, "w_std": 1.0},
}
TARGET = 0.99


def build_parser():
    from resflow.cli import OneLineParser

    p = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="0-7", help="seeds of every candidate (default: 0-7)")
    p.add_argument("--epochs", type=int, default=BASE["epochs"], help="epochs per run (default: 300)")
    p.add_argument("--out", default=None, help="folder of the table and figure (default: docs/results, docs/figures)")
    return p


def search(seeds, epochs: int) -> dict:
    """Every candidate's runs: ``{name: {"options", "accuracy", "depth", "learned", "mean_depth"}}``."""
    import jax

    from resflow import load_dataset, sweep

    data = load_dataset("circles")
    table = {}
    for name, options in CANDIDATES.items():
        opts = BASE | {"epochs": epochs, "depth_warmup": min(BASE["depth_warmup"], max(epochs // 3, 1))} | options
        res = sweep(data, seeds=seeds, **opts)
        acc = [float(r["test_accuracy"]) for r in res.rows]
        depth = [int(r["depth"]) for r in res.rows]
        table[name] = {
            "options": options,
            "seeds": list(seeds),
            "accuracy": acc,
            "depth": depth,
            "reached": sum(a >= TARGET for a in acc),
            "worst_accuracy": min(acc),
            "mean_depth": sum(depth) / len(depth),
        }
        print(f"{name:34s} {table[name]['reached']}/{len(acc)} >= {TARGET:.0%}, worst {min(acc):.3f}, "
              f"mean depth {table[name]['mean_depth']:.1f}", flush=True)  # fmt: skip
        jax.clear_caches()
    return {"base": BASE | {"epochs": epochs}, "target": TARGET, "candidates": table}


def figure(result: dict, save):
    import numpy as np

    from resflow.plots._common import finish, new_figure

    fig, axes = new_figure(1, 2, size=(4.6, 3.4))
    names = list(result["candidates"])
    for i, name in enumerate(names):
        c = result["candidates"][name]
        x = np.full(len(c["accuracy"]), i) + np.linspace(-0.15, 0.15, len(c["accuracy"]))
        axes[0, 0].scatter(x, c["accuracy"], s=14, color="C0")
        axes[0, 1].scatter(x, c["depth"], s=14, color="C1")
    axes[0, 0].axhline(result["target"], color="k", ls="--", lw=0.8)
    axes[0, 1].axhline(5, color="k", ls="--", lw=0.8)
    for ax, label in ((axes[0, 0], "test accuracy per seed"), (axes[0, 1], "final depth per seed (paper: 5)")):
        ax.set_xticks(range(len(names)), names, fontsize=7, rotation=35, ha="right")
        ax.set_ylabel(label)
    return finish(fig, save)


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from sweep import parse_seeds  # scripts/sweep.py: the same seed syntax

    from resflow.runs import write_json

    try:
        seeds = parse_seeds(args.seeds)
    except ValueError as e:
        parser.error(str(e))
    if args.epochs < 1:
        parser.error(f"--epochs must be >= 1, got {args.epochs}")
    table_dir = Path(args.out) if args.out else ROOT / "docs" / "results"
    fig_dir = Path(args.out) if args.out else ROOT / "docs" / "figures"
    table_dir.mkdir(parents=True, exist_ok=True)
    fig_dir.mkdir(parents=True, exist_ok=True)
    result = search(seeds, args.epochs)
    write_json(table_dir / "recipe_search.json", result)
    figure(result, fig_dir / "recipe_search.png")
    print(f"wrote {table_dir / 'recipe_search.json'} and {fig_dir / 'recipe_search.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
