"""Builds docs/figures/continuous_convergence.png and docs/results/continuous_depth.json (docs/continuous.md).

Run from the repository root: ``.venv/bin/python docs/examples/continuous_depth.py`` (under two
minutes on two CPU cores). Every number docs/continuous.md quotes is written to the JSON file.
"""

import json
import os
import time

import diffrax
import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import resflow as rf  # noqa: E402
from resflow.plots.continuous import plot_convergence  # noqa: E402

HERE = os.path.dirname(__file__)
FIG = os.path.join(HERE, "..", "figures")
RESULTS = os.path.join(HERE, "..", "results", "continuous_depth.json")
start = time.time()
out = {}

# 1. The Euler map against the ODE: a width-8 sigmoid trunk, 16 inputs, depth-time S = 4
trunk = rf.Trunk.init(jax.random.key(1), 8, w_std=1.5, b_std=0.5)
x0 = jax.random.normal(jax.random.key(2), (16, 8))
S = 4.0
conv = rf.euler_convergence(trunk, x0, depth_time=S, steps=(4, 8, 16, 32, 64, 128, 256, 512))
print("h:", conv.h, "\nerrors:", conv.errors, f"\nslope {conv.slope:.4f}")
out["convergence"] = {
    "depth_time": S,
    "steps": conv.steps.tolist(),
    "errors": conv.errors.tolist(),
    "slope": conv.slope,
    "error_ratio_last": float(conv.errors[-2] / conv.errors[-1]),
}
plot_convergence(conv, save=os.path.join(FIG, "continuous_convergence.png"))

# the residual ODE against σ(W x(s) + b) from the state ODE
ts = jnp.linspace(0.0, S, 9)
tight = diffrax.PIDController(rtol=1e-11, atol=1e-13)
xs = rf.solve_depth(trunk, x0, depth_time=S, saveat=ts, stepsize_controller=tight)
rs = rf.solve_residuals(
    trunk, jax.nn.sigmoid(x0 @ trunk.W.T + trunk.b), depth_time=S, saveat=ts, stepsize_controller=tight
)
gap = float(jnp.abs(rs.ys - jax.nn.sigmoid(xs.ys @ trunk.W.T + trunk.b)).max())
out["residual_ode_max_gap"] = gap
out["tsit5_steps_mean"] = float(xs.num_steps.mean())
print(f"residual ODE vs sigmoid of state ODE: max gap {gap:.2e}; Tsit5 steps {float(xs.num_steps.mean()):.1f}")


# 2. Lyapunov spectrum of the Lorenz flow
def lorenz(t, y, args):
    sigma, rho, beta = args
    return jnp.stack([sigma * (y[1] - y[0]), y[0] * (rho - y[2]) - y[1], y[0] * y[1] - beta * y[2]])


args = (10.0, 28.0, 8.0 / 3.0)
t1, burn_in = 1010.0, 10.0
lor = rf.ode_lyapunov_spectrum(lorenz, jnp.array([1.0, 1.0, 20.0]), t1, burn_in=burn_in, dt=0.5, args=args)
lam = [float(v) for v in lor.exponents]
out["lorenz"] = {
    "t1": t1,
    "burn_in": burn_in,
    "exponents": lam,
    "sum": sum(lam),
    "sum_error": sum(lam) + (10 + 1 + 8 / 3),
    "kaplan_yorke": float(rf.kaplan_yorke_dimension(lor.exponents)),
}
print("Lorenz:", out["lorenz"])

# 3. Covariant vectors of the Hénon map: near-tangencies of the unstable and stable directions
clv = rf.covariant_lyapunov_vectors(
    lambda x: jnp.stack([1 - 1.4 * x[0] ** 2 + x[1], 0.3 * x[0]]), jnp.array([0.1, 0.1]), 5000, transient=200
)
angles = np.asarray(clv.angles[:, 0, 1])
out["henon"] = {
    "exponents": [float(v) for v in clv.exponents],
    "kaplan_yorke": float(rf.kaplan_yorke_dimension(clv.exponents)),
    "angle_min": float(angles.min()),
    "angle_median": float(np.median(angles)),
    "fraction_below_0_1": float((angles < 0.1).mean()),
}
print("Hénon:", out["henon"])

out["runtime_s"] = time.time() - start
with open(RESULTS, "w") as f:
    json.dump(out, f, indent=1)
print(f"wrote {RESULTS} in {out['runtime_s']:.1f} s")
