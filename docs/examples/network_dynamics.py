"""Builds the figures of docs/dynamics/network.md and writes every number it quotes.

A circles network as in the paper (2-D data, trained linear lift to 3 residuals, 15 shared
sigmoid layers, h = 1; Adam 1e-2, batch 50, 300 epochs, seed 1), then every network-specific
analysis on its trunk. The numbers go to ``docs/results/network_dynamics.json`` (a flat
``name -> number`` dict); the page quotes them with ``<!--r:network_dynamics.NAME-->`` markers
and a test checks that the two agree. Run from the repository root:
``.venv/bin/python docs/examples/network_dynamics.py`` (a minute or two on a laptop CPU).
"""

import json
import os

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import resflow as rf  # noqa: E402
from resflow.plots import plot_attractor_portrait, plot_interaction_matrix, plot_residual_trajectories  # noqa: E402
from resflow.training import TrainConfig, accuracy, fit  # noqa: E402
from resflow.training._datasets import circles  # noqa: E402

HERE = os.path.dirname(__file__)
FIG = os.path.join(HERE, "..", "figures")
RESULTS = os.path.join(HERE, "..", "results", "network_dynamics.json")
np.set_printoptions(precision=3, suppress=True)
out: dict[str, float] = {}

data = circles(seed=0)
config = TrainConfig().replace(width=3, depth=15, lift=True, lr=1e-2, batch_size=50, epochs=300)
result = fit(data, config, key=jax.random.key(1), figures=False)
out["test_accuracy"] = float(accuracy(result, data.x_test, data.y_test))
trunk = result.trunk.astype(jnp.float64)  # the trained map (h, activation, model) at its final depth
x0 = jnp.asarray(result.network.embed(jnp.asarray(data.x_test)), jnp.float64)  # the trunk's inputs (after the lift)
y = jnp.asarray(data.y_test)
T = result.depth
out["depth"] = T
print(f"circles: test accuracy {out['test_accuracy']:.3f}, depth {T}\nW =\n{np.asarray(trunk.W)}")

# --- jacobians -------------------------------------------------------------------------------
traj = rf.trajectory(trunk, x0, depth=T)
J = rf.state_jacobians(trunk, traj)
r = rf.residuals(trunk, traj)
Jr = rf.residual_jacobians(trunk, r)
print("state_jacobians", J.shape, "residual_jacobians", Jr.shape)
lyap = rf.network_lyapunov_spectrum(trunk, x0, depth=T)
for c in (0, 1):
    mean = np.asarray(lyap.exponents[y == c].mean(0))
    out.update({f"lyapunov_class{c}_{i + 1}": float(v) for i, v in enumerate(mean)})
    print(f"  class {c}: mean finite-time Lyapunov spectrum {mean}")
mlp = rf.Trunk(trunk.W, trunk.b, trunk.h, model="mlp", activation=trunk.activation)
mlp_mean = np.asarray(rf.network_lyapunov_spectrum(mlp, x0, depth=T).exponents.mean(0))
out.update({f"lyapunov_mlp_{i + 1}": float(v) for i, v in enumerate(mlp_mean)})
print(f"  same W as an MLP: mean spectrum {mlp_mean}")

# --- interactions ----------------------------------------------------------------------------
C = rf.interaction_coefficients(trunk, r)
summ = rf.interaction_summary(C, y, num_classes=2)
codes = np.asarray(rf.analysis.pair_classes(trunk.W))[np.triu_indices(3, 1)]
for kind in (rf.analysis.PairClass.MUTUALISM, rf.analysis.PairClass.COMPETITION, rf.analysis.PairClass.EXPLOITATION):
    out[f"pairs_{kind.label}"] = int((codes == kind).sum())
share = np.asarray(summ.cooperative_share)
for c in (0, 1):
    out[f"share_class{c}_first"] = float(share[c, 0])
    out[f"share_class{c}_max"] = float(share[c].max())
    out[f"share_class{c}_argmax"] = int(share[c].argmax())
    out[f"share_class{c}_min"] = float(share[c].min())
    out[f"share_class{c}_argmin"] = int(share[c].argmin())
    print(f"cooperative share per layer, class {c}:", share[c])
plot_interaction_matrix(
    np.stack([trunk.W, summ.class_mean[0, 0], summ.class_mean[1, 0]]),
    titles=["W", "mean $C_0$, class 0", "mean $C_0$, class 1"],
    save=os.path.join(FIG, "network_interactions.png"),
)

# --- attractors ------------------------------------------------------------------------------
fps = rf.residual_fixed_points(trunk)
out["fixed_points"] = len(fps.points)
out["attracting"] = int(fps.attracting.sum())
out["attracting_by_perturbation"] = int((fps.attracting & (fps.classified_by == "perturbation")).sum())
print(f"residual_fixed_points: {len(fps.points)} fixed-point patterns, {out['attracting']} attracting")
for p, pat, lam, mu, att, how in zip(
    fps.points, fps.patterns, fps.flow_eigenvalues, fps.multipliers, fps.attracting, fps.classified_by, strict=True
):
    print(
        f"  {'attracting' if att else 'not attracting'} ({how}) {pat}: r* = {p}, "
        f"flow eigenvalues {lam.real}, multipliers {np.abs(mu)}"
    )
out["interior_fixed_points"] = len(rf.analysis.interior_fixed_points(trunk).points)
ss = rf.steady_state(trunk, x0, y, depth=1000, num_classes=2)
converged = np.asarray(ss.converged)
on_dominant = np.linalg.norm(np.asarray(ss.final) - np.asarray(ss.dominant), axis=-1) <= 1e-3
out["converged_fraction"] = float(converged.mean())
out["dominant_fraction"] = float(ss.dominant_fraction)
out["dominant_fraction_of_converged"] = float(on_dominant[converged].mean())
out.update({f"dominant_r{i}": float(v) for i, v in enumerate(np.asarray(ss.dominant))})
out["class_distance"] = float(ss.class_distance)
print(
    f"steady_state (1000 layers): converged {out['converged_fraction']:.3f}, on the dominant attractor "
    f"{np.asarray(ss.dominant)}: {out['dominant_fraction']:.3f} of all inputs, "
    f"{out['dominant_fraction_of_converged']:.3f} of the converged ones; class_distance {out['class_distance']:.3g}"
)
xT = np.asarray(traj[-1])
for c in (0, 1):
    out.update({f"xT_class{c}_{i}": float(v) for i, v in enumerate(xT[np.asarray(y) == c].mean(0))})
out["xT_class_distance"] = float(np.abs(xT[np.asarray(y) == 0].mean(0) - xT[np.asarray(y) == 1].mean(0)).max())
print("x_T class means:", xT[np.asarray(y) == 0].mean(0), xT[np.asarray(y) == 1].mean(0))

plot_residual_trajectories(
    r,
    y,
    title="circles: residuals by class (median, interquartile band)",
    activation=trunk.activation,
    save=os.path.join(FIG, "network_residuals_band.png"),
)
plot_residual_trajectories(
    r,
    y,
    mode="lines",
    max_lines=15,
    title="circles: individual residual trajectories",
    activation=trunk.activation,
    save=os.path.join(FIG, "network_residuals_lines.png"),
)
long_r = rf.residuals(trunk, rf.trajectory(trunk, x0[:80], depth=60))
plot_attractor_portrait(
    long_r,
    fps,
    y[:80],
    title="circles network: residuals over 60 layers",
    save=os.path.join(FIG, "network_attractor_portrait.png"),
)

# a 2-D winner-take-all example: two corner attractors, class = which one an input reaches
wta = rf.Trunk(jnp.array([[1.0, -2.0], [-2.0, 1.0]]), jnp.zeros(2))
x2 = jax.random.uniform(jax.random.key(1), (60, 2), jnp.float64, -1.0, 1.0)
y2 = (x2[:, 0] > x2[:, 1]).astype(int)
fps2 = rf.residual_fixed_points(wta)
out["wta_attracting"] = int(fps2.attracting.sum())
ss2 = rf.steady_state(wta, x2, y2, depth=200, num_classes=2)
out["wta_class_distance"] = float(ss2.class_distance)
out["wta_dominant_fraction"] = float(ss2.dominant_fraction)
print(f"winner-take-all: {out['wta_attracting']} attracting corners, class_distance {out['wta_class_distance']:.3f}")
plot_attractor_portrait(
    rf.residuals(wta, rf.trajectory(wta, x2, depth=25)),
    fps2,
    y2,
    title="winner-take-all W = [[1, -2], [-2, 1]]",
    save=os.path.join(FIG, "network_portrait_2d.png"),
)

# the origin r* = 0, where every multiplier is 1: decided by the perturbation test
origin = rf.Trunk(-jnp.array([[1.0, 0.5], [0.5, 1.0]]), jnp.zeros(2))
att0 = rf.residual_fixed_points(origin, attractors_only=True)
out["origin_attractors"] = len(att0.points)
ss0 = rf.steady_state(origin, 2.0 * jax.random.normal(jax.random.key(0), (200, 2)), depth=1000)
out["origin_dominant_fraction"] = float(ss0.dominant_fraction)
print(f"W = -[[1, .5], [.5, 1]]: attractors {att0.points.tolist()} ({att0.classified_by.tolist()})")

os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
with open(RESULTS, "w") as f:
    json.dump(out, f, indent=1, sort_keys=True)
    f.write("\n")
