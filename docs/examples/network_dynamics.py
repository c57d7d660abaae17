"""Builds the figures of docs/dynamics/network.md and prints the numbers quoted there.

A circles network as in the paper (2-D data, trained linear lift to 3 residuals, 15 shared
sigmoid layers, h = 1; Adam 1e-2, batch 50, 300 epochs, seed 1), then every network-specific
analysis on it. Run from the repository root: ``.venv/bin/python docs/examples/network_dynamics.py``
(about a minute on a laptop CPU).
"""

import os

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import resflow as rf  # noqa: E402
from resflow.data import circles  # noqa: E402
from resflow.plots import plot_attractor_portrait, plot_interaction_matrix, plot_residual_trajectories  # noqa: E402
from resflow.train import TrainConfig, accuracy, fit  # noqa: E402

FIG = os.path.join(os.path.dirname(__file__), "..", "figures")
np.set_printoptions(precision=3, suppress=True)

data = circles(seed=0)
config = TrainConfig(width=3, depth=15, lift=True, lr=1e-2, batch_size=50, epochs=300)
result = fit(data, config, key=jax.random.key(1), figures=False)
print(f"circles: test accuracy {accuracy(result, data.x_test, data.y_test):.3f}, depth {result.depth}")
params = result.trunk_params()
params = rf.TrunkParams(jnp.asarray(params.W, jnp.float64), jnp.asarray(params.b, jnp.float64))
x0 = jnp.asarray(result.classifier.apply({"params": result.params}, data.x_test, method="embed"), jnp.float64)
y = jnp.asarray(data.y_test)
T = result.depth
print("W =\n", np.asarray(params.W))

# --- jacobians -------------------------------------------------------------------------------
traj = rf.trajectory(params, x0, depth=T)
J = rf.state_jacobians(params, traj)
r = rf.residuals(params, traj)
Jr = rf.residual_jacobians(params, r)
print("state_jacobians", J.shape, "residual_jacobians", Jr.shape)
lyap = rf.network_lyapunov_spectrum(params, x0, depth=T)
for c in (0, 1):
    print(f"  class {c}: mean finite-time Lyapunov spectrum {np.asarray(lyap.exponents[y == c].mean(0))}")
mlp = rf.network_lyapunov_spectrum(params, x0, depth=T, model="mlp")
print(f"  same W as an MLP: mean spectrum {np.asarray(mlp.exponents.mean(0))}")

# --- interactions ----------------------------------------------------------------------------
C = rf.interaction_coefficients(params, r)
summ = rf.interaction_summary(C, y)
codes = np.asarray(rf.pair_classes(params.W))
names = {rf.PAIR_CLASSES[k]: int((codes[np.triu_indices(3, 1)] == k).sum()) for k in range(4)}
print("pair classes (upper triangle):", names)
print("cooperative share per layer, class 0:", np.asarray(summ.cooperative_share[0]))
print("cooperative share per layer, class 1:", np.asarray(summ.cooperative_share[1]))
plot_interaction_matrix(
    np.stack([params.W, summ.class_mean[0, 0], summ.class_mean[1, 0]]),
    titles=["W", "mean $C_0$, class 0 (r = 0.5)", "mean $C_0$, class 1 (r = 1.0)"],
    save=os.path.join(FIG, "network_interactions.png"),
)

# --- attractors ------------------------------------------------------------------------------
fps = rf.residual_fixed_points(params)
print(f"residual_fixed_points: {len(fps.points)} fixed-point patterns, {int(fps.attracting.sum())} attracting")
for p, pat, lam, mu, att in zip(
    fps.points, fps.patterns, fps.flow_eigenvalues, fps.multipliers, fps.attracting, strict=True
):
    print(
        f"  {'attracting' if att else 'not attracting'} {pat}: r* = {p}, flow eigenvalues {lam.real}, multipliers {np.abs(mu)}"
    )
print("interior_fixed_points:", len(rf.interior_fixed_points(params).points), "(W is non-singular)")
ss = rf.steady_state(params, x0, y, depth=1000)
print(
    f"steady_state (1000 layers): converged {float(ss.converged.mean()):.3f}, class means\n{np.asarray(ss.class_means)}"
    f"\n  class_distance {float(ss.class_distance):.2e}, dominant {np.asarray(ss.dominant)}, "
    f"fraction {float(ss.dominant_fraction):.3f}"
)
xT = traj[-1]
print(
    "x_T class means (same attractor, different transients):",
    np.asarray(xT[y == 0].mean(0)),
    np.asarray(xT[y == 1].mean(0)),
)

plot_residual_trajectories(
    r, y, title="circles: residuals by class (mean ± std)", save=os.path.join(FIG, "network_residuals_band.png")
)
plot_residual_trajectories(
    r,
    y,
    mode="lines",
    max_lines=15,
    title="circles: individual residual trajectories",
    save=os.path.join(FIG, "network_residuals_lines.png"),
)
long_r = rf.residuals(params, rf.trajectory(params, x0[:80], depth=60))
plot_attractor_portrait(
    long_r,
    fps,
    y[:80],
    title="circles network: residuals over 60 layers",
    save=os.path.join(FIG, "network_attractor_portrait.png"),
)

# a 2-D winner-take-all example: two corner attractors, class = which one an input reaches
W2 = rf.TrunkParams(jnp.array([[1.0, -2.0], [-2.0, 1.0]]), jnp.zeros(2))
x2 = jax.random.uniform(jax.random.key(1), (60, 2), jnp.float64, -1.0, 1.0)
y2 = (x2[:, 0] > x2[:, 1]).astype(int)
fps2 = rf.residual_fixed_points(W2)
print("winner-take-all patterns:", [tuple(int(v) for v in p) for p in fps2.patterns], "attracting:", fps2.attracting)
ss2 = rf.steady_state(W2, x2, y2, depth=200)
print(
    f"  steady_state: class_distance {float(ss2.class_distance):.3f}, dominant fraction {float(ss2.dominant_fraction):.3f}"
)
plot_attractor_portrait(
    rf.residuals(W2, rf.trajectory(W2, x2, depth=25)),
    fps2,
    y2,
    title="winner-take-all W = [[1, -2], [-2, 1]]",
    save=os.path.join(FIG, "network_portrait_2d.png"),
)
