"""Builds the figures of docs/dynamics/generic.md (Hénon map, a trunk map, close roots) and
writes the numbers the page quotes to docs/results/generic_dynamics.json.

Run from the repository root: ``.venv/bin/python docs/examples/generic_dynamics.py``.
"""

import json
import os

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import resflow as rf  # noqa: E402
from resflow.plots.dynamics import plot_eigenvalue_cloud, plot_lyapunov_convergence  # noqa: E402

FIG = os.path.join(os.path.dirname(__file__), "..", "figures")
RESULTS = os.path.join(os.path.dirname(__file__), "..", "results", "generic_dynamics.json")
a, b = 1.4, 0.3
out = {}  # name -> number quoted in docs/dynamics/generic.md


def henon(x):
    return jnp.stack([1 - a * x[0] ** 2 + x[1], b * x[0]])


# 1. Jacobian spectrum along a chaotic orbit
orbit = [jnp.array([0.1, 0.1])]
for _ in range(1100):
    orbit.append(henon(orbit[-1]))
orbit = jnp.stack(orbit[100:])
spec = rf.jacobian_spectrum(henon, orbit)
print("jacobian_spectrum: eigenvalues", spec.eigenvalues.shape, "jacobian", spec.jacobian.shape)
print("  |mu1 mu2| = |det J| = b:", float(jnp.abs(spec.eigenvalues.prod(-1)).max()))
print("  complex pairs:", int((jnp.abs(spec.eigenvalues.imag) > 0).any(-1).sum()), "of", len(orbit))
out["orbit_points"] = len(orbit)
out["det_error"] = float(jnp.abs(jnp.abs(spec.eigenvalues.prod(-1)) - b).max())

# 2. Lyapunov spectrum
T = 100_000
lyap = rf.lyapunov_spectrum(henon, jnp.array([0.1, 0.1]), T, burn_in=1000, return_running=True)
l1, l2 = (float(v) for v in lyap.exponents)
print(f"lyapunov_spectrum T={T}: l1={l1:.5f} l2={l2:.5f} sum-ln(b)={l1 + l2 - np.log(b):.2e}")
out.update(henon_l1=l1, henon_l2=l2, henon_sum_error=abs(l1 + l2 - np.log(b)))
logistic = rf.lyapunov_spectrum(lambda x: 4 * x * (1 - x), jnp.array([np.sqrt(2) - 1]), T, burn_in=100)
lam = float(logistic.exponents[0])
print(f"logistic r=4: lambda={lam:.6f}, error vs ln 2 = {lam - np.log(2):.2e}")
out.update(logistic_lambda=lam, logistic_error=abs(lam - np.log(2)))
plot_lyapunov_convergence(
    lyap,
    reference=[0.41922, np.log(b) - 0.41922],
    title="Hénon map (a=1.4, b=0.3): running Lyapunov estimates",
    save=os.path.join(FIG, "generic_lyapunov_convergence.png"),
)

# 3. Fixed points from a grid of starts
g = jnp.linspace(-2, 2, 10)
starts = jnp.stack(jnp.meshgrid(g, g), -1).reshape(-1, 2)
fps = rf.find_fixed_points(henon, starts)
uniq, counts = rf.unique_fixed_points(fps, return_counts=True)
print(
    f"find_fixed_points: {int(fps.converged.sum())}/{len(starts)} converged, max iters {int(fps.num_iterations.max())}"
)
out.update(henon_converged=int(fps.converged.sum()), henon_starts=len(starts))
out["henon_max_iterations"] = int(fps.num_iterations.max())
disc = np.sqrt((1 - b) ** 2 + 4 * a)
closed = (-(1 - b) + np.array([disc, -disc])) / (2 * a)
print("  closed form x:", closed)
order = np.argsort(-np.asarray(uniq.points[:, 0]))  # the + root first, as in the page's table
for i, k in enumerate(order, start=1):
    p, ev, lab, c = uniq.points[k], uniq.eigenvalues[k], uniq.labels[k], counts[k]
    r, e = uniq.residual_norm[k], uniq.error[k]
    print(f"  x*={np.round(p, 6)} mu={np.round(ev.real, 5)} {lab} starts={c} residual={r:.1e} error={e:.1e}")
    out.update({f"fp{i}_x": float(p[0]), f"fp{i}_y": float(p[1]), f"fp{i}_starts": int(c)})
    out.update({f"fp{i}_mu1": float(ev[0].real), f"fp{i}_mu2": float(ev[1].real)})
    out.update({f"fp{i}_residual": float(r), f"fp{i}_error": float(e)})
    out[f"fp{i}_closed_form_distance"] = float(np.hypot(p[0] - closed[i - 1], p[1] - b * closed[i - 1]))

# 4. A trunk map has no fixed point (σ > 0), although it barely moves where σ saturates
for dtype in ("float32", "float64"):
    trunk = rf.Trunk.init(jax.random.key(5), 3, w_std=2.0, dtype=dtype)
    trunk_starts = 10 * jax.random.normal(jax.random.key(0), (64, 3), dtype)
    res = rf.find_fixed_points(trunk.step, trunk_starts)
    out[f"trunk_converged_{dtype}"] = int(res.converged.sum())
    out[f"trunk_min_residual_{dtype}"] = float(res.residual_norm.min())
    print(f"trunk map {dtype}: {int(res.converged.sum())}/64 converged, min ||F|| {float(res.residual_norm.min()):.1e}")


# 5. Close roots: x -> x + 0.5 x (x - 0.002)(x - 1) in float32
def cubic(x):
    return x + 0.5 * x * (x - 0.002) * (x - 1)


res = rf.find_fixed_points(cubic, jnp.linspace(-0.5, 1.5, 201, dtype=jnp.float32)[:, None])
pts = np.asarray(res.points[res.converged, 0], np.float64)
roots = np.array([0.0, 0.002, 1.0])
cubic_uniq = rf.unique_fixed_points(res)
out.update(cubic_converged=int(res.converged.sum()), cubic_distinct=len(cubic_uniq.points))
out["cubic_max_distance"] = float(np.abs(pts[:, None] - roots).min(axis=1).max())
print(
    f"cubic float32: {out['cubic_converged']}/201 converged, {out['cubic_distinct']} distinct, "
    f"max distance to a true root {out['cubic_max_distance']:.1e}"
)

# eigenvalues along the orbit (grey) and at the two fixed points (coloured by point)
ev_all = np.concatenate([np.asarray(spec.eigenvalues), np.asarray(uniq.eigenvalues)])
names = ["orbit"] * len(orbit) + [
    f"x* = ({p[0]:.3f}, {p[1]:.3f}) {lab}" for p, lab in zip(uniq.points, uniq.labels, strict=True)
]
plot_eigenvalue_cloud(
    ev_all,
    labels=np.array(names),
    title="Hénon map: Jacobian eigenvalues",
    save=os.path.join(FIG, "generic_eigenvalue_cloud.png"),
)
with open(RESULTS, "w") as f:
    json.dump(out, f, indent=1, sort_keys=True)
print("figures written to", os.path.abspath(FIG), "and numbers to", os.path.abspath(RESULTS))
