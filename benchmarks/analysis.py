"""Benchmark 2: resflow's analytic / matrix-free analyses vs plain `jax.jacfwd`-based ones.

For the shared-weight ResNet (sigmoid, h = 1) at widths 64, 256, 784, along the trajectories
of a batch of inputs (depth T), each task is computed two or three ways and timed side by
side (all under `jax.jit`, median after warm-up):

- ``jacobians``: the T·B dense layer Jacobians J_t = I + D_t W. analytic:
  `resflow.state_jacobians`; jacfwd: ``vmap(jacfwd(step))`` over the trajectory states.
- ``jacobian spectrum``: eigenvalues of J at the first S states of one input. analytic:
  ``eigvals(resflow.state_jacobians(...))``; jacfwd: `resflow.jacobian_spectrum` (generic,
  builds J with `jax.jacfwd`). Both are dominated by the O(n³) eigensolver at large n.
- ``lyapunov k=n`` / ``lyapunov k=10``: the k largest finite-time exponents per input.
  matrix-free: `resflow.network_lyapunov_spectrum` (analytic products Q + D_t (W Q), O(n²k)
  per layer); jvp: `resflow.lyapunov_spectrum` (generic, k JVPs of the step per layer);
  jacfwd: dense J_t by ``jacfwd`` (O(n³) per layer) then `resflow.lyapunov_spectrum_from_jacobians`;
  for k = 10 also "matrix-free, QR every 5": the same products with one QR per 5 layers
  (via `resflow.lyapunov_spectrum_from_products`), to see what the per-layer QR costs.
- ``perturbation growth``: ||δx_t|| / ||δx_0|| for D random directions per input.
  matrix-free: `resflow.analysis.linear_growth` (JVP of the trajectory); jacfwd: dense J_t by
  ``jacfwd``, then δ_{t+1} = J_t δ_t.
- ``fixed points``: Newton on F(x) = step(x) − x for the MLP map x ↦ σ(W x + b) (the
  ResNet map with a sigmoid has none), fixed 20 iterations from S starts. analytic:
  J_F = diag(σ'(a)) W − I; jacfwd: J_F = jacfwd(step) − I. Also `resflow.find_fixed_points`
  (jacfwd, damped, adaptive, and it also computes the stability eigenvalues) for reference.

Every row also records the largest difference between the variants' results (they must agree).
Run ``python benchmarks/analysis.py [--quick]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

import resflow as rf  # noqa: E402

NEWTON_ITERS = 20
QR_EVERY = 5


def _traj(p, x0, T):
    return rf.trajectory(p, x0, depth=T)


def _jacfwd_along(p, xs):
    """Dense Jacobians of one layer by `jax.jacfwd` at every state in `xs` (…, n) → (…, n, n)."""
    f = jax.jacfwd(p.step)
    flat = xs.reshape(-1, xs.shape[-1])
    return jax.vmap(f)(flat).reshape(xs.shape + xs.shape[-1:])


# ---- the tasks: each returns {variant: fn(params, x0, extra) -> array} ------------------


def jacobian_tasks(T):
    def analytic(p, x0, _):
        return rf.state_jacobians(p, _traj(p, x0, T))

    def jacfwd(p, x0, _):
        return _jacfwd_along(p, _traj(p, x0, T)[:-1])

    return {"analytic": analytic, "jacfwd": jacfwd}


def spectrum_tasks(T, S):
    def analytic(p, x0, _):
        traj = _traj(p, x0[0], min(S, T))
        ev = jnp.linalg.eigvals(rf.state_jacobians(p, traj))
        # Sorted like resflow.jacobian_spectrum (modulus, descending) so the two can be compared.
        return jnp.take_along_axis(ev, jnp.argsort(-jnp.abs(ev), axis=-1), axis=-1)

    def jacfwd(p, x0, _):
        traj = _traj(p, x0[0], min(S, T))
        return rf.jacobian_spectrum(p.step, traj[:-1]).eigenvalues

    return {"analytic": analytic, "jacfwd": jacfwd}


def lyapunov_tasks(T, k, *, grouped_qr: bool = False):
    key = jax.random.key(0)

    def matrix_free(p, x0, _):
        return rf.network_lyapunov_spectrum(p, x0, depth=T, num_exponents=k, key=key).exponents

    def jvp(p, x0, _):
        return rf.lyapunov_spectrum(p.step, x0, T, num_exponents=k, key=key).exponents

    def jacfwd(p, x0, _):
        J = _jacfwd_along(p, _traj(p, x0, T)[:-1])  # (T, B, n, n)
        one = lambda Jb: rf.lyapunov_spectrum_from_jacobians(Jb, num_exponents=k, key=key).exponents  # noqa: E731
        return jax.vmap(one, in_axes=1)(J)

    def grouped(p, x0, _):
        # The same analytic products, but one QR per QR_EVERY layers (public API only):
        # measures how much of the matrix-free time is the per-layer QR.
        d = rf.trunk.get_activation("sigmoid").grad(rf.preactivations(p, _traj(p, x0, T)))  # (T, B, n)

        def one(db):
            def jvp(t, Q):
                for j in range(QR_EVERY):
                    Q = Q + db[t * QR_EVERY + j][:, None] * (p.W @ Q)
                return Q

            res = rf.lyapunov_spectrum_from_products(
                jvp, T // QR_EVERY, n=p.W.shape[0], num_exponents=k, key=key, dtype=d.dtype
            )
            return res.exponents / QR_EVERY

        return jax.vmap(one, in_axes=1)(d)

    fns = {"matrix-free": matrix_free, "jvp": jvp, "jacfwd": jacfwd}
    if grouped_qr and T % QR_EVERY == 0:
        fns[f"matrix-free, QR every {QR_EVERY}"] = grouped
    return fns


def perturbation_tasks(T):
    def matrix_free(p, x0, dirs):
        return rf.analysis.linear_growth(p, x0, directions=dirs, depth=T)

    def jacfwd(p, x0, dirs):
        J = _jacfwd_along(p, _traj(p, x0, T)[:-1])  # (T, B, n, n)

        def push(d, Jt):
            d = jnp.einsum("bij,sbj->sbi", Jt, d)
            return d, jnp.linalg.norm(d, axis=-1)

        _, norms = jax.lax.scan(push, dirs, J)
        n0 = jnp.linalg.norm(dirs, axis=-1)
        return jnp.concatenate([jnp.ones_like(n0)[None], norms / n0], axis=0)

    return {"matrix-free": matrix_free, "jacfwd": jacfwd}


def _newton(p, starts, jac_F):
    def one(x):
        def body(_, x):
            F = p.step(x) - x
            return x - jnp.linalg.solve(jac_F(x), F)

        return jax.lax.fori_loop(0, NEWTON_ITERS, body, x)

    return jax.vmap(one)(starts)


def fixed_point_tasks():
    def analytic(p, _, starts):
        n = starts.shape[-1]
        act = rf.trunk.get_activation("sigmoid")
        return _newton(p, starts, lambda x: act.grad(p.W @ x + p.b)[:, None] * p.W - jnp.eye(n, dtype=x.dtype))

    def jacfwd(p, _, starts):
        n = starts.shape[-1]
        return _newton(p, starts, lambda x: jax.jacfwd(p.step)(x) - jnp.eye(n, dtype=x.dtype))

    def resflow_find(p, _, starts):
        return rf.find_fixed_points(p.step, starts, max_iter=NEWTON_ITERS).points

    return {"analytic": analytic, "jacfwd": jacfwd, "resflow.find_fixed_points": resflow_find}


# ------------------------------------------------------------------------------------------


def _inputs(n, B, D, S, *, dtype=jnp.float32):
    kp, kx, kd, ks = jax.random.split(jax.random.key(0), 4)
    params = rf.Trunk.init(kp, n, w_std=1.0, b_std=0.1, dtype=dtype)
    x0 = jax.random.normal(kx, (B, n), dtype)
    dirs = jax.random.normal(kd, (D, B, n), dtype)
    # MLP fixed points: a strong W so several exist; starts uniform in the sigmoid's range.
    mlp = rf.Trunk.init(kp, n, w_std=3.0, b_std=0.1, model="mlp", dtype=dtype)
    starts = jax.random.uniform(ks, (S, n), dtype)
    return params, x0, dirs, mlp, starts


def _max_diff(a, b):
    a, b = jnp.asarray(a), jnp.asarray(b)
    if a.shape != b.shape:
        return None
    return float(jnp.max(jnp.abs(a - b)))


def run(
    *,
    widths=(64, 256, 784),
    depth: int = 30,
    batch: int = 4,
    draws: int = 8,
    points: int = 4,
    tasks=("jacobians", "jacobian spectrum", "lyapunov k=n", "lyapunov k=10", "perturbation growth", "fixed points"),
    repeats: int = 5,
    max_time: float = 15.0,
    verbose: bool = True,
) -> dict:
    """One row per (task, width) with each variant's compile/run time and ratios to the baseline.

    `points` is the number of states for the eigenvalue task and of Newton starts.
    """
    rows = []
    for n in widths:
        params, x0, dirs, mlp, starts = _inputs(n, batch, draws, points)
        for task in tasks:
            if task == "jacobians":
                fns, args, base = jacobian_tasks(depth), (params, x0, None), "analytic"
            elif task == "jacobian spectrum":
                fns, args, base = spectrum_tasks(depth, points), (params, x0, None), "analytic"
            elif task.startswith("lyapunov"):
                k = n if task.endswith("k=n") else min(10, n)
                fns = lyapunov_tasks(depth, k, grouped_qr=task.endswith("k=10"))
                args, base = (params, x0, None), "matrix-free"
            elif task == "perturbation growth":
                fns, args, base = perturbation_tasks(depth), (params, x0, dirs), "matrix-free"
            elif task == "fixed points":
                fns, args, base = fixed_point_tasks(), (mlp, None, starts), "analytic"
            else:
                raise ValueError(f"unknown task {task!r}")
            row = {"task": task, "width": n, "depth": depth, "batch": batch}
            timed, outs = C.compile_and_time(fns, args, repeats=repeats, max_time=max_time)
            row |= timed
            for name in fns:
                if name != base:
                    row[f"{name}/{base}"] = row[f"{name} ms"] / row[f"{base} ms"]
                    if name != "resflow.find_fixed_points":
                        row[f"max |{name} − {base}|"] = _max_diff(outs[name], outs[base])
            rows.append(row)
            if verbose:
                print("  ".join(f"{k}={C.fmt(v)}" for k, v in row.items()), flush=True)
    config = {
        "widths": list(widths),
        "depth": depth,
        "batch": batch,
        "draws": draws,
        "points": points,
        "newton_iters": NEWTON_ITERS,
        "dtype": "float32",
    }
    return {"config": config, "rows": rows}


def speedup_rows(result: dict) -> list[dict]:
    """Flat table: task, width, fast ms, slow (jacfwd) ms, speed-up = jacfwd / fast."""
    out = []
    for r in result["rows"]:
        base = "matrix-free" if "matrix-free ms" in r else "analytic"
        out.append(
            {
                "task": r["task"],
                "width": r["width"],
                "fast variant": base,
                "fast ms": r[f"{base} ms"],
                "jvp ms": r.get("jvp ms"),
                "jacfwd ms": r["jacfwd ms"],
                "speed-up vs jacfwd": r[f"jacfwd/{base}"],
                "speed-up vs jvp": r.get(f"jvp/{base}"),
                f"QR every {QR_EVERY} ms": r.get(f"matrix-free, QR every {QR_EVERY} ms"),
                "rf.find_fixed_points ms": r.get("resflow.find_fixed_points ms"),
                "max |diff|": r.get(f"max |jacfwd − {base}|"),
            }
        )
    return out


COLS = [
    "task",
    "width",
    "fast variant",
    "fast ms",
    "jvp ms",
    "jacfwd ms",
    "speed-up vs jacfwd",
    "speed-up vs jvp",
    f"QR every {QR_EVERY} ms",
    "rf.find_fixed_points ms",
    "max |diff|",
]


def plot(result: dict, save=None):
    """Speed-up of the analytic/matrix-free path over jacfwd vs width, one line per task."""
    from resflow.plots._common import finish, new_figure

    rows = speedup_rows(result)
    fig, axes = new_figure(size=(6.0, 4.2))
    ax = axes[0, 0]
    for i, task in enumerate(dict.fromkeys(r["task"] for r in rows)):
        sel = [r for r in rows if r["task"] == task]
        ax.plot(
            [r["width"] for r in sel], [r["speed-up vs jacfwd"] for r in sel], "o-", color=f"C{i}", label=task, ms=4
        )
    ax.axhline(1.0, color="k", lw=1)
    ax.axhline(10.0, color="grey", lw=1, ls=":", label="10× target (Lyapunov k=10)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("width n")
    ax.set_ylabel("jacfwd time / analytic (matrix-free) time")
    ax.set_title(f"analyses: speed-up over jacfwd (T={result['config']['depth']})")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    return finish(fig, save)


def main(argv=None):
    a = C.cli_args(__doc__, argv)
    kw = dict(widths=(64, 256), depth=10, batch=2, draws=4, points=2, repeats=3, max_time=2.0) if a.quick else {}
    result = run(**kw)
    result["summary"] = speedup_rows(result)
    tables = [(result["summary"], COLS, "analytic / matrix-free vs jacfwd")]
    return C.report("analysis", result, quick=a.quick, out=a.out, tables=tables, plot=plot)


if __name__ == "__main__":
    main()
