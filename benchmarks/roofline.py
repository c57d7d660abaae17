"""Benchmark 4: the forward pass against this machine's measured matmul rate.

One layer of the ResNet is a ``(batch, n) @ (n, n)`` product plus a sigmoid and an add, so
the forward pass does FLOPs = 2·batch·n²·T. In the same run we measure:

- ``dot``: one jitted ``x @ W.T`` at exactly that shape (the rate the forward pass could
  reach if nothing but the matmul cost anything);
- ``dot_chain``: T such products chained in a ``lax.scan`` with no activation (the same
  loop without the sigmoid: isolates the loop overhead from the activation's cost);
- ``forward``: `resflow.forward` (scan, sigmoid, h = 1);
- ``dot_big``: a 2048×2048 @ 2048×2048 product, the machine's best matmul rate for reference.

The three at one width are timed in interleaved rounds (`_common.time_interleaved`) so load
drift on a shared machine affects them alike.

Reported: GFLOP/s of each and the forward pass's achieved fraction of the matmul rate,
max(``dot``, ``dot_chain``): at small widths one ``dot`` call is dominated by dispatch
(tens of µs), which the chained product does not pay, so the larger of the two is the
honest ceiling at that shape.
Run ``python benchmarks/roofline.py [--quick]``.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

import resflow as rf  # noqa: E402


def _rates(cases: dict, *, repeats, max_time) -> dict:
    """GFLOP/s of each ``name: (fn, args, flops)``, compiled first, then timed in interleaved rounds."""
    calls, flops = {}, {}
    for name, (fn, args, f) in cases.items():
        compiled, _ = C.compile_jit(fn, *args)
        calls[name], flops[name] = functools.partial(compiled, *args), f
    out = {}
    for name, t in C.time_interleaved(calls, repeats=repeats, max_time=max_time).items():
        out[name] = {**t, "flops": flops[name], "gflops_per_s": flops[name] / t["median_s"] / 1e9}
    return out


def run(
    *,
    widths=(64, 256, 784),
    batch: int = 256,
    depth: int = 300,
    big: int = 2048,
    repeats: int = 7,
    max_time: float = 10.0,
    dtype=jnp.float32,
    verbose: bool = True,
) -> dict:
    """Rows per width: dot / dot_chain / forward GFLOP/s and the forward fraction of the matmul rate."""
    kp, kx = jax.random.split(jax.random.key(0))
    rows = []
    for n in widths:
        params = rf.Trunk.init(kp, n, w_std=1.0, b_std=0.1, dtype=dtype)
        x = jax.random.normal(kx, (batch, n), dtype)
        per_layer = 2.0 * batch * n * n

        def chain(W, x):
            return jax.lax.scan(lambda x, _: (x @ W.T, None), x, None, length=depth)[0]

        # W scaled to spectral norm 1 (outside the timed function) so the chain stays finite.
        Ws = params.W / jnp.linalg.norm(params.W, 2)
        r = _rates(
            {
                "dot": (lambda W, x: x @ W.T, (params.W, x), per_layer),
                "dot_chain": (chain, (Ws, x), per_layer * depth),
                "forward": (lambda p, x: rf.forward(p, x, depth=depth), (params, x), per_layer * depth),
            },
            repeats=repeats,
            max_time=max_time,
        )
        dot, ch, fw = r["dot"], r["dot_chain"], r["forward"]
        matmul = max(dot["gflops_per_s"], ch["gflops_per_s"])
        row = {
            "width": n,
            "batch": batch,
            "depth": depth,
            "dot GFLOP/s": dot["gflops_per_s"],
            "dot_chain GFLOP/s": ch["gflops_per_s"],
            "forward GFLOP/s": fw["gflops_per_s"],
            "matmul GFLOP/s": matmul,
            "forward / matmul": fw["gflops_per_s"] / matmul,
            "forward / dot": fw["gflops_per_s"] / dot["gflops_per_s"],
            "forward / dot_chain": fw["gflops_per_s"] / ch["gflops_per_s"],
            "forward ms": fw["median_s"] * 1e3,
            "raw": {"dot": dot, "dot_chain": ch, "forward": fw},
        }
        rows.append(row)
        if verbose:
            print(
                f"n={n:4d}: dot {row['dot GFLOP/s']:.1f}  chain {row['dot_chain GFLOP/s']:.1f}  "
                f"forward {row['forward GFLOP/s']:.1f} GFLOP/s  -> {100 * row['forward / matmul']:.0f}% of matmul",
                flush=True,
            )
    A = jax.random.normal(kp, (big, big), dtype)
    peak = _rates({"big": (lambda a, b: a @ b, (A, A), 2.0 * big**3)}, repeats=repeats, max_time=max_time)["big"]
    if verbose:
        print(f"dot {big}^3: {peak['gflops_per_s']:.1f} GFLOP/s", flush=True)
    config = {"widths": list(widths), "batch": batch, "depth": depth, "dtype": jnp.dtype(dtype).name, "big": big}
    return {"config": config, "rows": rows, "dot_big": peak}


COLS = [
    "width",
    "batch",
    "depth",
    "dot GFLOP/s",
    "dot_chain GFLOP/s",
    "forward GFLOP/s",
    "forward / matmul",
    "forward / dot",
    "forward ms",
]


def plot(result: dict, save=None):
    """Bars of GFLOP/s per width: dot, dot_chain, forward; dashed line at the big-matmul rate."""
    import numpy as np

    from resflow.plots._common import finish, new_figure

    rows = result["rows"]
    fig, axes = new_figure(size=(6.0, 4.0))
    ax = axes[0, 0]
    xs = np.arange(len(rows))
    for i, (key, color) in enumerate([("dot GFLOP/s", "C7"), ("dot_chain GFLOP/s", "C1"), ("forward GFLOP/s", "C0")]):
        ax.bar(xs + (i - 1) * 0.27, [r[key] for r in rows], width=0.27, color=color, label=key.split()[0])
    for x, r in zip(xs, rows, strict=True):
        ax.text(
            x + 0.27, r["forward GFLOP/s"], f"{100 * r['forward / matmul']:.0f}%", ha="center", va="bottom", fontsize=8
        )
    ax.axhline(result["dot_big"]["gflops_per_s"], color="k", ls="--", lw=1, label=f"dot {result['config']['big']}³")
    ax.set_xticks(xs, [f"n={r['width']}" for r in rows])
    ax.set_ylabel("GFLOP/s")
    ax.set_title(f"forward (T={result['config']['depth']}, batch {result['config']['batch']}) vs matmul")
    ax.legend(fontsize=8)
    return finish(fig, save)


def main(argv=None):
    a = C.cli_args(__doc__, argv)
    kw = dict(depth=30, repeats=3, max_time=2.0, big=1024) if a.quick else {}
    result = run(**kw)
    return C.report(
        "roofline", result, quick=a.quick, out=a.out, tables=[(result["rows"], COLS, "roofline")], plot=plot
    )


if __name__ == "__main__":
    main()
