"""Builds the figures of docs/dynamics/generic.md (Hénon map) and prints the quoted numbers.

Run from the repository root: ``.venv/bin/python docs/examples/generic_dynamics.py``.
"""

import os

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import resflow as rf  # noqa: E402
from resflow.plots.dynamics import plot_eigenvalue_cloud, plot_lyapunov_convergence  # noqa: E402

FIG = os.path.join(os.path.dirname(__file__), "..", "figures")
a, b = 1.4, 0.3


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

# 2. Lyapunov spectrum
T = 100_000
lyap = rf.lyapunov_spectrum(henon, jnp.array([0.1, 0.1]), T, burn_in=1000, return_running=True)
l1, l2 = (float(v) for v in lyap.exponents)
print(f"lyapunov_spectrum T={T}: l1={l1:.5f} l2={l2:.5f} sum-ln(b)={l1 + l2 - np.log(b):.2e}")
logistic = rf.lyapunov_spectrum(lambda x: 4 * x * (1 - x), jnp.array([np.sqrt(2) - 1]), T, burn_in=100)
print(
    f"logistic r=4: lambda={float(logistic.exponents[0]):.6f}, error vs ln 2 = {float(logistic.exponents[0]) - np.log(2):.2e}"
)
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
for p, ev, lab, c, r in zip(uniq.points, uniq.eigenvalues, uniq.labels, counts, uniq.residual_norm, strict=True):
    print(f"  x*={np.round(p, 6)} mu={np.round(ev.real, 5)} {lab} starts={c} residual={r:.1e}")
disc = np.sqrt((1 - b) ** 2 + 4 * a)
print("  closed form x:", (-(1 - b) + np.array([disc, -disc])) / (2 * a))

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
print("figures written to", os.path.abspath(FIG))
