"""Benchmark 1: depth stepped by `lax.scan` vs a Python loop unrolled under `jax.jit`.

The shared-weight ResNet x_{t+1} = x_t + σ(W x_t + b), batch 256, for widths 64 and 784 and
depths 10 … 1000. For each (width, depth) and each variant we measure compile time
(trace + XLA compile), steady-state run time (median after warm-up) and XLA's planned peak
buffer memory, for the forward pass and for a train step (loss = mean squared error of x_T
against a target, gradient w.r.t. (W, b), one SGD update).

Variants:

- ``scan``: `resflow.forward` (``lax.scan``, ``unroll=1``);
- ``unrolled``: `_common.forward_unrolled` (Python loop under jit); deeper depths are skipped
  once the previous compile time, scaled linearly in depth, would pass ``--compile-limit``;
- ``scan_unroll<k>``: `resflow.forward(..., unroll=k)`;
- ``scan_remat`` (train only): `resflow.forward(..., remat=True)`: depth cut into ⌈√T⌉
  segments under `jax.checkpoint` inside an outer scan, so the backward pass stores O(√T)
  states instead of O(T) and recomputes each segment once.

Run ``python benchmarks/scan_vs_unrolled.py [--quick]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

import resflow as rf  # noqa: E402

LR = 1e-3


def forward_fn(variant: str, depth: int):
    """x0 ↦ x_T for one variant as a function of (params, x0) (not yet jitted)."""
    if variant == "scan":
        return lambda p, x: rf.forward(p, x, depth=depth)
    if variant == "unrolled":
        return lambda p, x: C.forward_unrolled(p, x, depth=depth)
    if variant.startswith("scan_unroll"):
        k = int(variant.removeprefix("scan_unroll"))
        return lambda p, x: rf.forward(p, x, depth=depth, unroll=k)
    if variant == "scan_remat":
        return lambda p, x: rf.forward(p, x, depth=depth, remat=True)
    raise ValueError(f"unknown variant {variant!r}")


def train_step_fn(forward):
    """(params, x, y) ↦ (loss, params − lr·∇loss) with loss = mean((forward(params, x) − y)²)."""

    def loss(p, x, y):
        # Only W and b train (as in the torch rows): no gradient is computed for h.
        p = eqx.tree_at(lambda t: t.h, p, jax.lax.stop_gradient(p.h))
        return jnp.mean((forward(p, x) - y) ** 2)

    def train_step(p, x, y):
        value, g = jax.value_and_grad(loss)(p, x, y)
        return value, jax.tree.map(lambda a, ga: a - LR * ga, p, g)

    return train_step


def make_inputs(width: int, batch: int, *, seed: int = 0, dtype=jnp.float32):
    kp, kx, ky = jax.random.split(jax.random.key(seed), 3)
    params = rf.Trunk.init(kp, width, w_std=1.0, b_std=0.1, dtype=dtype)
    # Inputs of unit scale so the sigmoid is neither saturated nor linear.
    x = jax.random.normal(kx, (batch, width), dtype)
    y = jax.random.normal(ky, (batch, width), dtype)
    return params, x, y


def measure(fn, args, *, repeats: int, max_time: float) -> dict:
    compiled, info = C.compile_jit(fn, *args)
    info.update(C.time_call(lambda: compiled(*args), repeats=repeats, max_time=max_time))
    return info


def run(
    *,
    widths=(64, 784),
    depths=(10, 30, 100, 300, 1000),
    batch: int = 256,
    unroll_ks=(2, 4, 8),
    unroll_depths=(100, 1000),
    compile_limit: float = 120.0,
    repeats: int = 5,
    max_time: float = 20.0,
    modes=("forward", "train"),
    dtype=jnp.float32,
    verbose: bool = True,
) -> dict:
    """Measure every (mode, width, variant, depth); returns ``{"config": ..., "rows": [...], "stops": [...]}``.

    Each row: mode, width, depth, variant, trace_s, compile_s, total_compile_s,
    memory_bytes, median_s (run), min_s, repeats, flops (2·batch·n²·T for the forward pass,
    ×3 for a train step).
    """
    rows, stops = [], []
    for mode in modes:
        for width in widths:
            params, x, y = make_inputs(width, batch, dtype=dtype)
            args = (params, x) if mode == "forward" else (params, x, y)
            variants = ["scan", "unrolled"] + [f"scan_unroll{k}" for k in unroll_ks]
            if mode == "train":
                variants.append("scan_remat")
            last_unrolled = None  # (depth, compile seconds) of the last unrolled compile
            for depth in depths:
                for variant in variants:
                    if variant.startswith("scan_unroll") and depth not in unroll_depths:
                        continue
                    if variant == "unrolled" and last_unrolled is not None:
                        d0, c0 = last_unrolled
                        predicted = c0 * depth / d0
                        if c0 > compile_limit or predicted > compile_limit:
                            if not any(s["mode"] == mode and s["width"] == width for s in stops):
                                stops.append(
                                    {
                                        "mode": mode,
                                        "width": width,
                                        "last_depth": d0,
                                        "last_compile_s": c0,
                                        "skipped_from_depth": depth,
                                        "predicted_compile_s": predicted,
                                        "limit_s": compile_limit,
                                    }
                                )
                            continue
                    fwd = forward_fn(variant, depth)
                    fn = fwd if mode == "forward" else train_step_fn(fwd)
                    info = measure(fn, args, repeats=repeats, max_time=max_time)
                    if variant == "unrolled":
                        last_unrolled = (depth, info["total_compile_s"])
                    flops = 2.0 * batch * width * width * depth * (1 if mode == "forward" else 3)
                    row = {"mode": mode, "width": width, "depth": depth, "variant": variant, "flops": flops, **info}
                    row["gflops_per_s"] = flops / row["median_s"] / 1e9
                    rows.append(row)
                    if verbose:
                        print(
                            f"{mode:7s} n={width:4d} T={depth:5d} {variant:14s} compile {info['total_compile_s']:8.3f}s"
                            f"  run {info['median_s'] * 1e3:10.3f}ms  mem {(info['memory_bytes'] or 0) / 2**20:9.1f}MiB",
                            flush=True,
                        )
    config = {
        "widths": list(widths),
        "depths": list(depths),
        "batch": batch,
        "unroll_ks": list(unroll_ks),
        "unroll_depths": list(unroll_depths),
        "compile_limit_s": compile_limit,
        "dtype": jnp.dtype(dtype).name,
        "activation": "sigmoid",
        "h": 1.0,
    }
    return {"config": config, "rows": rows, "stops": stops}


def _get(rows, **kw):
    for r in rows:
        if all(r.get(k) == v for k, v in kw.items()):
            return r
    return None


def summarise(result: dict) -> dict:
    """Ratio rows: scan vs unrolled per (mode, width, depth), and the headline targets."""
    rows = result["rows"]
    out = []
    keys = sorted({(r["mode"], r["width"], r["depth"]) for r in rows}, key=lambda k: (k[0] != "forward", k[1], k[2]))
    for mode, width, depth in keys:
        s = _get(rows, mode=mode, width=width, depth=depth, variant="scan")
        u = _get(rows, mode=mode, width=width, depth=depth, variant="unrolled")
        m = _get(rows, mode=mode, width=width, depth=depth, variant="scan_remat")
        out.append(
            {
                "mode": mode,
                "width": width,
                "depth": depth,
                "scan compile s": s and s["total_compile_s"],
                "unrolled compile s": u and u["total_compile_s"],
                "compile unrolled/scan": u and s and C.ratio(u["total_compile_s"], s["total_compile_s"]),
                "scan run ms": s and s["median_s"] * 1e3,
                "unrolled run ms": u and u["median_s"] * 1e3,
                "run scan/unrolled": u and s and C.ratio(s["median_s"], u["median_s"]),
                "scan MiB": s and s["memory_bytes"] and s["memory_bytes"] / 2**20,
                "unrolled MiB": u and u["memory_bytes"] and u["memory_bytes"] / 2**20,
                "remat MiB": m and m["memory_bytes"] and m["memory_bytes"] / 2**20,
                "remat run ms": m and m["median_s"] * 1e3,
            }
        )
    unroll_rows = []
    for r in rows:
        if r["variant"].startswith("scan_unroll"):
            s = _get(rows, mode=r["mode"], width=r["width"], depth=r["depth"], variant="scan")
            unroll_rows.append(
                {
                    "mode": r["mode"],
                    "width": r["width"],
                    "depth": r["depth"],
                    "k": int(r["variant"].removeprefix("scan_unroll")),
                    "compile s": r["total_compile_s"],
                    "run ms": r["median_s"] * 1e3,
                    "run vs unroll=1": C.ratio(r["median_s"], s["median_s"]),
                }
            )
    return {"ratios": out, "unroll": unroll_rows}


COLS = [
    "mode",
    "width",
    "depth",
    "scan compile s",
    "unrolled compile s",
    "compile unrolled/scan",
    "scan run ms",
    "unrolled run ms",
    "run scan/unrolled",
    "scan MiB",
    "unrolled MiB",
    "remat MiB",
    "remat run ms",
]
UNROLL_COLS = ["mode", "width", "depth", "k", "compile s", "run ms", "run vs unroll=1"]


def plot(result: dict, save=None):
    """Compile time, run time and memory vs depth (log-log); rows forward / train."""
    from resflow.plots._common import finish, new_figure

    rows = result["rows"]
    modes = [m for m in ("forward", "train") if any(r["mode"] == m for r in rows)]
    fig, axes = new_figure(len(modes), 3, size=(4.6, 3.6))
    colors = {"scan": "C0", "unrolled": "C3", "scan_remat": "C2"}
    styles = {}
    for i, mode in enumerate(modes):
        for variant in ("scan", "unrolled", "scan_remat"):
            for width in sorted({r["width"] for r in rows}):
                sel = sorted(
                    (r for r in rows if r["mode"] == mode and r["variant"] == variant and r["width"] == width),
                    key=lambda r: r["depth"],
                )
                if not sel:
                    continue
                ls = styles.setdefault(width, ["-", "--", ":", "-."][len(styles) % 4])
                d = [r["depth"] for r in sel]
                kw = {"color": colors[variant], "ls": ls, "marker": "o", "ms": 3, "label": f"{variant} n={width}"}
                axes[i, 0].plot(d, [r["total_compile_s"] for r in sel], **kw)
                axes[i, 1].plot(d, [r["median_s"] for r in sel], **kw)
                axes[i, 2].plot(d, [(r["memory_bytes"] or float("nan")) / 2**20 for r in sel], **kw)
        for j, (name, unit) in enumerate(
            [("compile time", "s"), ("run time (median)", "s"), ("peak buffers (XLA)", "MiB")]
        ):
            ax = axes[i, j]
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("depth T")
            ax.set_ylabel(f"{name} [{unit}]")
            ax.set_title(f"{mode}: {name}")
            ax.grid(True, which="both", alpha=0.3)
        axes[i, 0].legend(fontsize=7)
    return finish(fig, save)


def _options(ap):
    ap.add_argument("--compile-limit", type=float, default=None, help="stop the unrolled variant past this (s)")


def main(argv=None):
    a = C.cli_args(__doc__, argv, extra=_options)
    if a.quick:
        kw = dict(
            widths=(64, 256),
            depths=(10, 100, 1000),
            batch=256,
            unroll_ks=(4,),
            unroll_depths=(1000,),
            compile_limit=a.compile_limit or 8.0,
            repeats=3,
            max_time=2.0,
        )
    else:
        kw = dict(compile_limit=a.compile_limit or 120.0, max_time=12.0)
    result = run(**kw)
    result["summary"] = summarise(result)
    for s in result["stops"]:
        print(
            f"unrolled {s['mode']} n={s['width']}: stopped after depth {s['last_depth']} "
            f"(compile {s['last_compile_s']:.1f}s; depth {s['skipped_from_depth']} predicted "
            f"{s['predicted_compile_s']:.0f}s > limit {s['limit_s']:.0f}s)"
        )
    tables = [
        (result["summary"]["ratios"], COLS, "scan vs unrolled"),
        (result["summary"]["unroll"], UNROLL_COLS, "scan unroll=k"),
    ]
    return C.report("scan_vs_unrolled", result, quick=a.quick, out=a.out, tables=tables, plot=plot)


if __name__ == "__main__":
    main()
