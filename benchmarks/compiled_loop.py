"""The compiled training loop and vmapped seeds, against the epoch loop and one run after another.

    python benchmarks/compiled_loop.py [--quick] [--gpu]

Two comparisons, each timed side by side in interleaved rounds (`_common.time_interleaved`)
on the `make train` run (digits, 15 shared sigmoid layers of width 64, depth adaptation,
40 epochs, batch 64, Adam 3e-3):

1. `resflow.fit` with chunks of epochs compiled into one program (``chunk_epochs=0``:
   automatic) against the epoch-by-epoch loop (``chunk_epochs=1``: the host sees every epoch);
2. 8 seeds as one vmapped program (`resflow.sweep`) against the same 8 `fit` calls one after
   another (each with the compiled loop).

Times are of warm calls (compiled code cached by the first call); the first, cold call of each
variant is recorded too. Both variants must give the same numbers: their test accuracies are
compared and the largest difference recorded. Writes docs/results/compiled_loop.json (quoted
by docs/scaling.md), ``<out>/compiled_loop.png`` and the same figure as
docs/figures/scaling_compiled_loop.png (drawn in docs/scaling.md); with --quick
``<out>/compiled_loop_quick.json`` and ``.png``. ``--replot`` measures nothing and redraws the
docs figure from docs/results/compiled_loop.json.

``--gpu`` (on a machine with a GPU) measures instead: 64 circles seeds in one program against
one seed, and the `make train` run on the GPU against the same run on the host CPU; writes
``<out>/compiled_loop_gpu.json``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
import jax  # noqa: E402

import resflow as rf  # noqa: E402
from resflow.cli import PER_DATASET  # noqa: E402

DOCS_RESULT = Path(__file__).resolve().parents[1] / "docs" / "results"
DOCS_FIGURE = Path(__file__).resolve().parents[1] / "docs" / "figures" / "scaling_compiled_loop.png"


def make_train_config(data: str, **overrides) -> rf.TrainConfig:
    """The options `make train` / scripts/train.py use for `data` (its per-data-set defaults),
    with depth adaptation on."""
    options = {name: table[data] for name, table in PER_DATASET.items()}
    return rf.TrainConfig().replace(**(options | {"depth_adapt": True} | overrides))


def _fit(data, config, seed: int):
    return rf.fit(data, config, key=jax.random.key(seed), figures=False)


def _timed(fns: dict, *, repeats: int, max_time: float) -> dict:
    """Cold (first) call and warm median of every variant, interleaved; ``{name: {...}}``."""
    cold, outs = {}, {}
    for name, fn in fns.items():
        t = time.perf_counter()
        outs[name] = fn()
        cold[name] = time.perf_counter() - t
    warm = C.time_interleaved(
        {n: (lambda f=f: (f(), None)[1]) for n, f in fns.items()}, repeats=repeats, max_time=max_time
    )
    return {name: {"cold_s": cold[name], **warm[name]} for name in fns}, outs


def compiled_vs_epoch_loop(data, config, *, repeats: int, max_time: float) -> dict:
    """Comparison 1: chunk_epochs=0 (automatic chunks) vs 1 (epoch by epoch), same key."""
    fns = {
        "compiled": lambda: _fit(data, config.replace(chunk_epochs=0), 0),
        "epoch_loop": lambda: _fit(data, config.replace(chunk_epochs=1), 0),
    }
    times, outs = _timed(fns, repeats=repeats, max_time=max_time)
    acc = {name: out.metrics["test_accuracy"] for name, out in outs.items()}
    return {
        "times": times,
        "speedup": times["epoch_loop"]["median_s"] / times["compiled"]["median_s"],
        "speedup_cold": times["epoch_loop"]["cold_s"] / times["compiled"]["cold_s"],
        "test_accuracy": acc,
        "max_test_accuracy_difference": abs(acc["compiled"] - acc["epoch_loop"]),
        "depth": {name: out.metrics["depth"] for name, out in outs.items()},
    }


def vmapped_vs_sequential(data, config, seeds: list[int], *, repeats: int, max_time: float) -> dict:
    """Comparison 2: `resflow.sweep` over `seeds` vs one `fit` per seed, one after another."""
    fns = {
        "vmapped": lambda: rf.sweep(data, config, seeds=seeds),
        "sequential": lambda: [_fit(data, config, s) for s in seeds],
    }
    times, outs = _timed(fns, repeats=repeats, max_time=max_time)
    swept = [row["test_accuracy"] for row in outs["vmapped"].table()]
    single = [res.metrics["test_accuracy"] for res in outs["sequential"]]
    return {
        "seeds": seeds,
        "times": times,
        "speedup": times["sequential"]["median_s"] / times["vmapped"]["median_s"],
        "speedup_cold": times["sequential"]["cold_s"] / times["vmapped"]["cold_s"],
        "test_accuracy": {"vmapped": swept, "sequential": single},
        "max_test_accuracy_difference": max(abs(a - b) for a, b in zip(swept, single, strict=True)),
    }


def gpu_section(*, seeds: int, repeats: int, max_time: float) -> dict:
    """On a GPU: `seeds` circles seeds in one program vs one seed; `make train` on GPU vs host CPU."""
    circles, digits = rf.load_dataset("circles"), rf.load_dataset("digits")
    ccfg = make_train_config("circles")
    many, _ = _timed(
        {
            "one_seed": lambda: rf.sweep(circles, ccfg, seeds=[0]),
            "many_seeds": lambda: rf.sweep(circles, ccfg, seeds=range(seeds)),
        },
        repeats=repeats,
        max_time=max_time,
    )
    dcfg = make_train_config("digits")
    cpu = jax.devices("cpu")[0]

    def on_cpu():
        with jax.default_device(cpu):
            return _fit(digits, dcfg, 0)

    train, _ = _timed(
        {"make_train_gpu": lambda: _fit(digits, dcfg, 0), "make_train_cpu": on_cpu}, repeats=repeats, max_time=max_time
    )
    return {
        "circles_seeds": seeds,
        "circles": many,
        "many_over_one": many["many_seeds"]["median_s"] / many["one_seed"]["median_s"],
        "make_train": train,
        "make_train_gpu_over_cpu": train["make_train_gpu"]["median_s"] / train["make_train_cpu"]["median_s"],
    }


def plot(result: dict, save=None):
    """Warm and first-call time per variant, one panel per comparison (the speed-up in the title)."""
    from resflow.plots.training import plot_timings

    seeds = len(result["seeds"]["seeds"])
    return plot_timings(
        {
            "one digits run": result["compiled_loop"]["times"],
            f"{seeds} digits seeds": result["seeds"]["times"],
        },
        save=save,
    )


def summary_rows(result: dict) -> list[dict]:
    rows = []
    for key, (fast, slow) in {"compiled_loop": ("compiled", "epoch_loop"), "seeds": ("vmapped", "sequential")}.items():
        part = result[key]
        rows.append(
            {
                "comparison": f"{fast} vs {slow}",
                "fast s": part["times"][fast]["median_s"],
                "slow s": part["times"][slow]["median_s"],
                "speedup": part["speedup"],
                "cold speedup": part["speedup_cold"],
                "max |Δ test acc|": part["max_test_accuracy_difference"],
            }
        )
    return rows


def main(argv=None):
    def extra(ap):
        ap.add_argument("--gpu", action="store_true", help="the GPU section")
        ap.add_argument(
            "--replot", action="store_true", help=f"measure nothing: redraw {DOCS_FIGURE.name} from the saved results"
        )

    a = C.cli_args(__doc__, argv, extra=extra)
    if a.replot:
        result = json.loads((DOCS_RESULT / "compiled_loop.json").read_text())
        plot(result, save=DOCS_FIGURE)
        print("wrote", DOCS_FIGURE)
        return result
    repeats, max_time = (3, 5.0) if a.quick else (3, 120.0)
    if a.gpu:
        result = gpu_section(seeds=8 if a.quick else 64, repeats=repeats, max_time=max_time)
        print(C.save_json("compiled_loop_gpu" + ("_quick" if a.quick else ""), result, a.out))
        print(result)
        return result
    data = rf.load_dataset("digits")
    config = make_train_config("digits", **({"epochs": 4} if a.quick else {}))
    seeds = list(range(2 if a.quick else 8))
    result = {
        "config": {"data": "digits", "epochs": config.epochs, "depth": config.trunk.depth, "width": data.meta["dim"]},
        "compiled_loop": compiled_vs_epoch_loop(data, config, repeats=repeats, max_time=max_time),
        "seeds": vmapped_vs_sequential(data, config, seeds, repeats=repeats, max_time=max_time),
    }
    cols = ["comparison", "fast s", "slow s", "speedup", "cold speedup", "max |Δ test acc|"]
    result["quick"] = a.quick
    result["tables_markdown"] = [C.table(summary_rows(result), cols)]
    name = "compiled_loop" + ("_quick" if a.quick else "")
    # The full run's numbers are quoted by docs/scaling.md, whose markers read docs/results.
    print("wrote", C.save_json(name, result, a.out if a.quick else DOCS_RESULT))
    plot(result, save=Path(a.out) / f"{name}.png")
    if not a.quick:
        plot(result, save=DOCS_FIGURE)  # drawn in docs/scaling.md
    return result


if __name__ == "__main__":
    main()
