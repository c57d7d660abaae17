"""One Fashion-MNIST training epoch against this machine's measured matmul rate.

    python benchmarks/fmnist_epoch.py [--quick] [--repeats 3] [--data-path DIR] [--out DIR]

The paper-scale setting of issue #14: 60 000 images of 784 pixels, width 784 (no lift),
15 shared sigmoid layers, batch 256, Adam, float32. Measured, all after compilation:

- ``matmul``: one jitted ``(256, 784) @ (784, 784)`` product, the shape of every layer of a
  mini-batch; its rate R (FLOP/s) is this machine's ceiling for the epoch.
- ``fit``: `resflow.fit` run for ``1 + repeats`` epochs, the clocks read after each epoch
  (fit's `callback`); the first epoch also compiles and is dropped. This is what a user waits for per epoch (training steps and the test evaluation).
- the residual statistics that ``--depth-adapt`` adds after the warm-up (a forward pass
  with the trajectory over the 60 000 training images): the same `fit` with depth
  adaptation measured in every epoch (``depth_warmup=0``, a tolerance that never cuts), the
  difference of the two per-epoch times.
- an epoch after a cut to 10 layers: `fit` rebuilds a long run's program at its new depth,
  so it costs what an epoch of a 10-layer run costs (measured the same way); with the cut
  layers masked (before) it cost the 15-layer epoch.

FLOPs of the training scan: each layer is one ``n×n`` product per sample forward (2n² FLOPs)
and two backward (the gradients with respect to x and to W), so one epoch costs about
3 · 2 · N · n² · T = 3.3·10¹² FLOPs for N = 60 000, n = 784, T = 15; the ideal epoch time is
that over R. Forward-only passes cost a third of it per sample.

The machine is shared: every time is the minimum over repeats, the process's CPU time
(both cores together) is recorded beside each wall time, and so is the 1-minute load
average before and after. Writes ``results/fmnist_epoch[_quick].json``.
``--quick`` uses the first 4096 training and 1024 test images (a smoke run, not a measurement).
Without the data (``make data``, or ``--data-path``) it prints why and skips.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import resflow as rf  # noqa: E402

WIDTH, DEPTH, BATCH = 784, 15, 256
OPTIONS = dict(depth=DEPTH, batch_size=BATCH, lr=1e-3, figures=False, chunk_epochs=1)
TARGET_S, IDEAL_S = 30.0, 15.0  # issue #14
AFTER_CUT = 10  # the README recipe's final depth on seeds 0 and 1


def matmul_rate(*, batch: int = BATCH, n: int = WIDTH, repeats: int = 20) -> dict:
    """FLOP/s of one jitted ``(batch, n) @ (n, n)`` float32 product (best of `repeats`)."""
    kx, kw = jax.random.split(jax.random.key(0))
    x = jax.random.normal(kx, (batch, n), jnp.float32)
    w = jax.random.normal(kw, (n, n), jnp.float32) / n**0.5
    compiled, _ = C.compile_jit(lambda a, b: a @ b, x, w)
    t = C.time_call(lambda: compiled(x, w), repeats=repeats, min_time=1.0)
    flops = 2.0 * batch * n * n
    return {**t, "flops": flops, "gflops_per_s": flops / t["min_s"] / 1e9}


def epoch_flops(n_train: int, n: int = WIDTH, depth: int = DEPTH) -> float:
    """Forward + backward FLOPs of one epoch's layer products: 3 · 2 · N · n² · T."""
    return 3.0 * 2.0 * n_train * n * n * depth


def fit_epochs(data, repeats: int, **options) -> dict:
    """Per-epoch wall and CPU times of `resflow.fit` (``1 + repeats`` epochs; the first compiles).

    Clocks are read in fit's `callback`, after each epoch; the CPU time (all threads of this
    process, `time.process_time`) is what a loaded machine cannot inflate as much as wall time.
    """
    marks = [(time.perf_counter(), time.process_time())]

    def mark(epoch, record):
        marks.append((time.perf_counter(), time.process_time()))
        print(f"  fit epoch {epoch}: {marks[-1][0] - marks[-2][0]:.1f} s", flush=True)

    res = rf.fit(data, key=jax.random.key(0), epochs=1 + repeats, callback=mark, **(OPTIONS | options))
    wall = [b[0] - a[0] for a, b in zip(marks, marks[1:], strict=False)]
    cpu = [b[1] - a[1] for a, b in zip(marks, marks[1:], strict=False)]
    return {
        "first_epoch_s": wall[0],
        "epoch_s": wall[1:],
        "epoch_cpu_s": cpu[1:],
        "min_epoch_s": min(wall[1:]),
        "min_epoch_cpu_s": min(cpu[1:]),
        "test_accuracy": [h["test_accuracy"] for h in res.history],
    }


def depth_statistics_cost(data, repeats: int, plain: dict, depth: int = DEPTH) -> dict:
    """Per-epoch cost of the residual statistics: `fit` measuring them every epoch (at `depth`)
    minus `plain`, and the epoch with them."""
    adapt = fit_epochs(data, repeats, depth=depth, depth_adapt=True, depth_warmup=0, depth_tol=1e-30)
    return {
        "fit_with_statistics": adapt,
        "min_s": adapt["min_epoch_s"] - plain["min_epoch_s"],
        "min_cpu_s": adapt["min_epoch_cpu_s"] - plain["min_epoch_cpu_s"],
    }


def after_cut(data, repeats: int, adapt15: dict) -> dict:
    """An epoch with depth adaptation after a cut to 10 layers: `fit` recompiles a long run at
    its new depth, so that epoch costs a 10-layer epoch (measured); before, the cut layers were
    masked and it cost a 15-layer one (`adapt15`, the statistics epoch at depth 15)."""
    ten = fit_epochs(data, repeats, depth=AFTER_CUT, depth_adapt=True, depth_warmup=0, depth_tol=1e-30)
    return {
        "depth": AFTER_CUT,
        "fit_with_statistics": ten,
        "masked_min_s": adapt15["min_epoch_s"],
        "rescanned_min_s": ten["min_epoch_s"],
        "ratio": ten["min_epoch_s"] / adapt15["min_epoch_s"],
    }


def run(*, quick: bool = False, repeats: int = 2, data_path=None) -> dict:
    """Every number of this benchmark (see the module docstring)."""
    load = {"before": os.getloadavg()[0]}
    t0 = time.perf_counter()
    data = rf.load_dataset("fashion-mnist", path=data_path)
    load_s = time.perf_counter() - t0
    if quick:
        data = data._replace(x_train=data.x_train[:4096], y_train=data.y_train[:4096])
        data = data._replace(x_test=data.x_test[:1024], y_test=data.y_test[:1024])
    n_train, n_test = len(data.x_train), len(data.x_test)
    rate = matmul_rate()
    print(f"  matmul: {rate['gflops_per_s']:.1f} GFLOP/s", flush=True)
    flops = epoch_flops(n_train)
    ideal = flops / (rate["gflops_per_s"] * 1e9)
    fitted = fit_epochs(data, repeats)
    parts = {"depth_stats": depth_statistics_cost(data, repeats, fitted)}
    parts["after_cut"] = after_cut(data, repeats, parts["depth_stats"]["fit_with_statistics"])
    load["after"] = os.getloadavg()[0]
    # The epoch is the training scan plus a forward pass over the test set (a third of the
    # per-sample cost): its FLOP rate counts both.
    epoch_s = fitted["min_epoch_s"]
    return {
        "setting": {"n_train": n_train, "n_test": n_test, "width": WIDTH, "depth": DEPTH, "batch": BATCH},
        "options": {k: v for k, v in OPTIONS.items() if k != "figures"},
        "data_load_s": load_s,
        "matmul": rate,
        "epoch_flops": flops,
        "ideal_epoch_s": ideal,
        "fit": fitted,
        "parts": parts,
        "epoch_gflops_per_s": flops * (1 + n_test / (3 * n_train)) / epoch_s / 1e9,
        "epoch_fraction_of_matmul_rate": ideal * (1 + n_test / (3 * n_train)) / epoch_s,
        "epoch_vs_ideal": fitted["min_epoch_s"] / ideal,
        "target_s": TARGET_S,
        "meets_target": fitted["min_epoch_s"] <= TARGET_S * n_train / 60000,
        "load_1min": load,
    }


def summary(r: dict) -> list[str]:
    """The lines printed at the end (and stored in the JSON)."""
    p, f = r["parts"], r["fit"]
    return [
        f"matmul (256,784)@(784,784): {r['matmul']['gflops_per_s']:.1f} GFLOP/s (best of {r['matmul']['repeats']})",
        f"epoch FLOPs 3·2·N·n²·T = {r['epoch_flops']:.3g} → ideal epoch {r['ideal_epoch_s']:.1f} s",
        f"fit: epoch {f['min_epoch_s']:.1f} s (min of {len(f['epoch_s'])}: "
        + ", ".join(f"{t:.1f}" for t in f["epoch_s"])
        + f"; first epoch with compilation {f['first_epoch_s']:.1f} s), {r['epoch_vs_ideal']:.2f}× ideal, "
        f"target ≤ {r['target_s']:.0f} s: {'met' if r['meets_target'] else 'NOT met'}",
        f"epoch (training + test evaluation): {r['epoch_gflops_per_s']:.1f} GFLOP/s, "
        f"{100 * r['epoch_fraction_of_matmul_rate']:.0f} % of the matmul rate; depth statistics "
        f"(--depth-adapt, after the warm-up) add {p['depth_stats']['min_s']:.1f} s per epoch",
        f"CPU time (both cores together): epoch {f['min_epoch_cpu_s']:.1f} s, depth statistics "
        f"{p['depth_stats']['min_cpu_s']:.1f} s",
        f"after a cut to {p['after_cut']['depth']} layers an epoch with the statistics takes "
        f"{p['after_cut']['rescanned_min_s']:.1f} s (rescanned), against {p['after_cut']['masked_min_s']:.1f} s "
        f"with the cut layers masked: {p['after_cut']['ratio']:.2f}×",
        f"data loading {r['data_load_s']:.1f} s; 1-min load {r['load_1min']['before']:.2f} before, "
        f"{r['load_1min']['after']:.2f} after",
    ]


def main(argv=None):
    def extra(ap):
        ap.add_argument("--repeats", type=int, default=2, help="timed epochs / calls (default 2)")
        ap.add_argument("--data-path", default=None, help="Fashion-MNIST folder (default: Debian's package)")

    a = C.cli_args(__doc__, argv, extra=extra)
    try:
        result = run(quick=a.quick, repeats=a.repeats, data_path=a.data_path)
    except FileNotFoundError as e:  # no Fashion-MNIST here: say how to get it, as vs_torch does without torch
        print(f"fmnist_epoch skipped: {e}", flush=True)
        return {"skipped": str(e)}
    result["quick"] = a.quick
    result["summary"] = summary(result)
    print("\n".join(result["summary"]), flush=True)
    print("wrote", C.save_json("fmnist_epoch" + ("_quick" if a.quick else ""), result, a.out))
    return result


if __name__ == "__main__":
    main()
