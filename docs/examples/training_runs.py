"""The training results quoted in docs/training.md and the README, rerun from scratch.

    .venv/bin/python docs/examples/training_runs.py

Trains `make train`'s digits run, then the paper's circles experiment over 8 seeds with and
without the depth rule, at three init scales and at four tolerances of the rule, and writes
every number the docs quote to docs/results/training_runs.json (about 6 minutes on 2 idle CPU
cores; the machine's load
average at the start is recorded with the timings). Then
``python scripts/docs_numbers.py --write`` updates the marked numbers in the docs
(``make docs-numbers`` does both). tests/test_docs_numbers.py reruns the headline run
(`HEADLINE`, seed 0) and compares it with the stored numbers.
"""

from __future__ import annotations

import json
import os
import time

import jax

import resflow as rf

HERE = os.path.dirname(__file__)
RESULTS = os.path.join(HERE, "..", "results", "training_runs.json")
FIGURES = os.path.join(HERE, "..", "figures")
# The circles study's columns, as the figure names them (docs/training.md's table).
COLUMNS = {
    "circles_fixed_w2": "fixed, w 2",
    "circles_adapt_w2": "rule, w 2",
    "circles_adapt_previous": "before: 3e-2, warm-up, 1 cut",
    "circles_fixed_w1": "fixed, w 1",
    "circles_adapt_w1": "rule, w 1 (default)",
    "circles_adapt_w3": "rule, w 3",
}

# scripts/train.py's per-data-set defaults (digits and circles).
DIGITS = dict(epochs=40, batch_size=64, lr=3e-3, depth_warmup=5, w_std=1.0, depth=15)
CIRCLES = dict(epochs=300, batch_size=50, lr=1e-1, depth_warmup=0, multi_cut=True, width=3, depth=15)
# The circles recipe before the recipe search's last study: Adam 3e-2, 100 epochs before the
# first cut, one cut per epoch (mean final depth 10.1 over these seeds).
PREVIOUS = dict(w_std=1.0, depth_adapt=True, lr=3e-2, depth_warmup=100, multi_cut=False)
SEEDS = range(8)
# The README's circles run (scripts/train.py --data circles --width 3 --depth 15 --depth-adapt,
# whose default init is w_std 1): the "circles_adapt_w1" column.
HEADLINE = dict(w_std=1.0, depth_adapt=True)
# The depth rule's tolerance (mean change per unit; the paper's and the default: 0.01): the
# depth-accuracy trade-off, on the headline recipe.
TOLERANCES = (0.01, 0.02, 0.03, 0.05)
DEFAULT_TOL = rf.TrainConfig().depth_tol


def tol_key(tol: float) -> str:
    return f"tol{tol:g}".replace(".", "p")


def summary(result) -> dict:
    m = result.metrics
    out = {
        "test_accuracy": m["test_accuracy"],
        "train_accuracy": m["train_accuracy"],
        "depth": m["depth"],
        "accuracy_final_params_at_max_depth": m["accuracy_final_params_at_max_depth"],
        "accuracy_before_pruning": m["accuracy_before_pruning"],
        "wall_time": m["wall_time"],
    }
    for i, c in enumerate(m["cuts"][:2]):
        out[f"cut{i}"] = {k: c[k] for k in ("epoch", "from", "to", "test_accuracy_before", "test_accuracy_after")}
    return out


def circles_run(seed: int, **options) -> rf.Run:
    """One circles run of the study; `seed` draws the data, the init and the shuffling."""
    data = rf.load_dataset("circles", seed=seed)
    return rf.fit(data, key=jax.random.key(seed), figures=False, **(CIRCLES | options))


def circles_runs(name: str, **options) -> dict:
    rows = {}
    for seed in SEEDS:
        result = circles_run(seed, **options)
        rows[str(seed)] = summary(result)
        print(f"circles {name} seed {seed}: {rows[str(seed)]['test_accuracy']:.4f}, depth {result.depth}", flush=True)
    accs = [r["test_accuracy"] for r in rows.values()]
    return {
        "seeds": rows,
        "num_seeds": len(accs),
        "num_at_least_999": sum(a >= 0.999 for a in accs),
        "min_depth": min(r["depth"] for r in rows.values()),
        "max_depth": max(r["depth"] for r in rows.values()),
        "mean_depth": sum(r["depth"] for r in rows.values()) / len(rows),
    }


def main():
    load = os.getloadavg()[0]  # timings below are for a machine this busy
    t0 = time.perf_counter()
    out = {}
    digits = rf.fit(rf.load_dataset("digits"), key=jax.random.key(0), figures=False, depth_adapt=True, **DIGITS)
    out["digits"] = summary(digits)
    print("digits:", out["digits"], flush=True)
    out["circles_fixed_w2"] = circles_runs("fixed depth, w_std 2", w_std=2.0)
    out["circles_adapt_w2"] = circles_runs("depth rule, w_std 2", w_std=2.0, depth_adapt=True)
    out["circles_adapt_w1"] = circles_runs("depth rule, w_std 1", **HEADLINE)
    out["circles_fixed_w1"] = circles_runs("fixed depth, w_std 1", w_std=1.0)
    out["circles_adapt_w3"] = circles_runs("depth rule, w_std 3", w_std=3.0, depth_adapt=True)
    out["circles_adapt_previous"] = circles_runs("depth rule, the previous recipe", **PREVIOUS)
    # keyed "tol0p01" (a dot would split the docs' marker paths)
    out["circles_tol"] = {
        tol_key(tol): out["circles_adapt_w1"] if tol == DEFAULT_TOL else
        circles_runs(f"depth rule, tol {tol:g}", **(HEADLINE | {"depth_tol": tol}))
        for tol in TOLERANCES
    }  # fmt: skip
    out["total_seconds"] = time.perf_counter() - t0
    out["machine"] = {
        "device": str(jax.devices()[0]),
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "load_average": load,
    }
    with open(RESULTS, "w") as f:
        json.dump(out, f, indent=1)
    print(f"written {RESULTS} in {out['total_seconds']:.0f} s")
    plot(out)


def plot(out: dict) -> None:
    """docs/figures/training_runs_{accuracy,depth}.png: the circles table, a dot per seed."""
    from resflow.plots import plot_sweep_distribution

    rows = [
        {"recipe": name, "test_accuracy": seed["test_accuracy"], "final depth": seed["depth"]}
        for key, name in COLUMNS.items()
        for seed in out[key]["seeds"].values()
    ]
    tol_rows = [
        {"depth_tol": tol, "test_accuracy": seed["test_accuracy"], "final depth": seed["depth"]}
        for tol in TOLERANCES
        for seed in out["circles_tol"][tol_key(tol)]["seeds"].values()
    ]
    for metric, file in (("test_accuracy", "accuracy"), ("final depth", "depth")):
        plot_sweep_distribution(
            rows, metric, options=["recipe"], save=os.path.join(FIGURES, f"training_runs_{file}.png")
        )
        plot_sweep_distribution(
            tol_rows,
            metric,
            options=["depth_tol"],
            save=os.path.join(FIGURES, f"training_runs_tol_{file}.png"),
        )


if __name__ == "__main__":
    main()
