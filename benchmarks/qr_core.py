"""Benchmark 5: the QR core of `resflow.network_lyapunov_spectrum` against a plain JAX loop.

The k largest finite-time Lyapunov exponents of a shared-weight sigmoid ResNet (h = 1,
float32) over T layers, for B inputs, computed five ways and timed in interleaved rounds
(all under `jax.jit`, median after warm-up):

- ``plain``: the textbook loop: a `lax.scan` over layers, each step ``vmap(jax.jvp(step))``
  over the k columns of Q, then ``jnp.linalg.qr`` (vmapped over inputs). The baseline.
- ``before``: resflow's previous core, rebuilt from the public API: the trajectory first,
  then per input (vmapped) `resflow.lyapunov_spectrum_from_products` with the analytic
  product Q + h·act'(a_t) ⊙ (W Q) and a QR every layer.
- ``resflow``: `resflow.network_lyapunov_spectrum` as shipped: states and frames of all
  inputs in one scan, one W [x | Q_1 … Q_B] matmul per layer (columns padded to a multiple
  of 8), and the default guarded QR every 10 layers.
- ``resflow, qr_every=1``: the same with a QR every layer.
- ``fused, CholeskyQR2``: the same products with CholeskyQR2 (P'P = R'R by Cholesky,
  twice, Q = P R⁻¹ with a k × k triangular solve) instead of Householder QR, every layer.

Every row records each variant's time, its ratio to ``plain`` and the largest difference
of its exponents from ``plain``'s. Run ``python benchmarks/qr_core.py [--quick]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

import resflow as rf  # noqa: E402
from resflow.analysis._jacobians import QR_EVERY  # noqa: E402
from resflow.dynamics._common import random_frame  # noqa: E402

BASE = "plain"


def _sorted(x):
    return -jnp.sort(-x, axis=-1)


def plain(trunk, x0, q0, T):
    """vmap(jvp) over Q's columns + jnp.linalg.qr per layer, vmapped over inputs."""
    k = q0.shape[1]

    def one(x):
        def body(carry, _):
            x, q, total = carry
            tangent = jax.vmap(lambda v: jax.jvp(trunk.step, (x,), (v,)), in_axes=1, out_axes=(None, 1))
            x, jq = tangent(q)
            q, r = jnp.linalg.qr(jq)
            return (x, q, total + jnp.log(jnp.abs(jnp.diag(r)))), None

        (_, _, total), _ = jax.lax.scan(body, (x, q0, jnp.zeros(k, q0.dtype)), None, length=T)
        return _sorted(total / T)

    return jax.vmap(one)(x0)


def before(trunk, x0, q0, T):
    """The previous core: stored trajectory, then one QR per layer per input (vmapped)."""
    d = rf.trunk.get_activation(trunk.activation).grad(rf.preactivations(trunk, rf.trajectory(trunk, x0, depth=T)))

    def one(d_i):
        def jvp(t, Q):
            return Q + trunk.h * d_i[t][:, None] * (trunk.W @ Q)

        return rf.lyapunov_spectrum_from_products(jvp, T, n=q0.shape[0], initial_q=q0).exponents

    return jax.vmap(one, in_axes=1)(d)


def cholesky_qr2(trunk, x0, q0, T):
    """Fused products (as resflow) with CholeskyQR2 every layer, batched over inputs."""
    act = rf.trunk.get_activation(trunk.activation)

    def chol_qr(P):
        R = jnp.swapaxes(jnp.linalg.cholesky(jnp.swapaxes(P, 1, 2) @ P), 1, 2)  # upper, P = Q R
        eye = jnp.broadcast_to(jnp.eye(R.shape[-1], dtype=R.dtype), R.shape)
        return P @ jax.scipy.linalg.solve_triangular(R, eye, lower=False), R  # k × k solve only

    def body(carry, _):
        X, Q, total = carry
        WZ = jnp.einsum("ij,bjc->bic", trunk.W, jnp.concatenate([X[:, :, None], Q], axis=2))
        a = WZ[:, :, 0] + trunk.b
        X = X + trunk.h * act.fn(a)
        P = Q + trunk.h * act.grad(a)[:, :, None] * WZ[:, :, 1:]
        Q1, R1 = chol_qr(P)
        Q, R2 = chol_qr(Q1)
        diag = jnp.diagonal(R1, axis1=1, axis2=2) * jnp.diagonal(R2, axis1=1, axis2=2)
        return (X, Q, total + jnp.log(jnp.abs(diag))), None

    Q0 = jnp.broadcast_to(q0, x0.shape[:1] + q0.shape)
    (_, _, total), _ = jax.lax.scan(body, (x0, Q0, jnp.zeros(Q0.shape[::2], q0.dtype)), None, length=T)
    return _sorted(total / T)


def variants(T):
    def fused(qr_every):
        def f(trunk, x0, q0):
            return rf.network_lyapunov_spectrum(trunk, x0, depth=T, initial_q=q0, qr_every=qr_every).exponents

        return f

    return {
        "plain": lambda p, x, q: plain(p, x, q, T),
        "before": lambda p, x, q: before(p, x, q, T),
        "fused, CholeskyQR2": lambda p, x, q: cholesky_qr2(p, x, q, T),
        "resflow": fused(QR_EVERY),
        "resflow, qr_every=1": fused(1),
    }


def run(*, cases=((784, 10, 100, 1), (784, 10, 100, 16), (256, 10, 100, 1)), repeats=7, max_time=20.0, verbose=True):
    """One row per (width, k, depth, batch) case: each variant's ms, ratio to plain, |Δλ|."""
    rows = []
    for n, k, T, B in cases:
        kp, kx, kq = jax.random.split(jax.random.key(0), 3)
        trunk = rf.Trunk.init(kp, n, w_std=1.0, b_std=0.1, dtype=jnp.float32)
        x0 = jax.random.normal(kx, (B, n), jnp.float32)
        q0 = random_frame(n, k, kq, jnp.float32)
        args = (trunk, x0, q0)
        row = {"width": n, "k": k, "depth": T, "batch": B}
        timed, outs = C.compile_and_time(variants(T), args, repeats=repeats, max_time=max_time)
        row |= timed
        for name in outs:
            row[f"{BASE}/{name}"] = row[f"{BASE} ms"] / row[f"{name} ms"]
            row[f"max |{name} − {BASE}|"] = float(jnp.max(jnp.abs(outs[name] - outs[BASE])))
        rows.append(row)
        if verbose:
            print("  ".join(f"{key}={C.fmt(v)}" for key, v in row.items()), flush=True)
    return {
        "config": {"cases": [list(c) for c in cases], "dtype": "float32", "qr_every": QR_EVERY},
        "rows": rows,
    }


def summary_rows(result: dict) -> list[dict]:
    """Flat table: per case, each variant's ms and speed-up over plain, and the largest |Δλ|."""
    out = []
    for r in result["rows"]:
        names = [key[:-3] for key in r if key.endswith(" ms") and not key.endswith("min ms")]
        for name in names:
            out.append(
                {
                    "case": f"n={r['width']} k={r['k']} T={r['depth']} B={r['batch']}",
                    "variant": name,
                    "ms": r[f"{name} ms"],
                    "min ms": r[f"{name} min ms"],
                    "speed-up vs plain": r[f"{BASE}/{name}"],
                    "max |Δλ| vs plain": r[f"max |{name} − {BASE}|"],
                }
            )
    return out


COLS = ["case", "variant", "ms", "min ms", "speed-up vs plain", "max |Δλ| vs plain"]


def plot(result: dict, save=None):
    """Speed-up over the plain loop, one group of bars per case."""
    from resflow.plots._common import finish, new_figure

    rows = summary_rows(result)
    cases = list(dict.fromkeys(r["case"] for r in rows))
    names = list(dict.fromkeys(r["variant"] for r in rows))
    fig, axes = new_figure(size=(7.0, 4.2))
    ax = axes[0, 0]
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        ys = [next(r["speed-up vs plain"] for r in rows if r["case"] == c and r["variant"] == name) for c in cases]
        ax.bar([j + i * width for j in range(len(cases))], ys, width, label=name, color=f"C{i}")
    ax.axhline(1.0, color="k", lw=1)
    ax.axhline(2.0, color="grey", lw=1, ls=":", label="2× target")
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(cases))], cases, fontsize=7)
    ax.set_ylabel("plain time / variant time")
    ax.set_title("Lyapunov QR core: speed-up over vmap(jvp) + QR (float32)")
    ax.legend(fontsize=7)
    return finish(fig, save)


def main(argv=None):
    a = C.cli_args(__doc__, argv)
    kw = dict(cases=((64, 4, 20, 1), (64, 4, 20, 4)), repeats=3, max_time=2.0) if a.quick else {}
    result = run(**kw)
    result["summary"] = summary_rows(result)
    tables = [(result["summary"], COLS, "Lyapunov QR core vs the plain vmap(jvp) + QR loop")]
    return C.report("qr_core", result, quick=a.quick, out=a.out, tables=tables, plot=plot)


if __name__ == "__main__":
    main()
