"""Perturbation growth, injection layers and class separability (docs/dynamics/perturbation.md).

Builds docs/figures/perturbation_*.png and prints the numbers quoted in the guide:

1. random shared-weight trunks (width 16, depth 15, sigmoid): ResNet vs MLP with the *same* W, b;
2. networks trained on digits (width 64, 15 shared layers, Adam 3e-3, 40 epochs, seed 0):
   ResNet-15, MLP-15 with init scale w_std = 6 (with w_std = 1 it does not train) and MLP-3;
   perturbation growth of their trunks on the test inputs, output change vs injection layer,
   and per-layer separability of the ResNet's residuals and running integral.

Run: .venv/bin/python docs/examples/perturbation_dynamics.py   (about a minute on 2 CPU cores)
"""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import resflow as rf
from resflow.plots import plot_injection_response, plot_perturbation_growth, plot_separability

FIG = Path(__file__).resolve().parents[1] / "figures"
key = jax.random.key(0)


def median_at(g, t):
    return float(np.median(np.asarray(g)[t]))


# 1. Random trunks: the same W, b run as a ResNet and as an MLP.
width, depth = 16, 15
params = rf.init_trunk(jax.random.key(1), width, w_std=2.0, b_std=0.5)
x0 = jax.random.normal(jax.random.key(2), (64, width))
random = {
    name: rf.perturbation_growth(params, x0, key=jax.random.key(3), num_draws=8, sigma=0.1, depth=depth, model=model)
    for name, model in [("ResNet", "resnet"), ("MLP", "mlp")]
}
plot_perturbation_growth(
    random,
    title="random trunk (width 16, w_std 2): growth of input perturbations",
    save=FIG / "perturbation_growth_random.png",
)
print("random trunk, median growth at layer 15 (linearised / nonlinear sigma=0.1):")
for name, g in random.items():
    print(f"  {name:<8} {median_at(g.linear, depth):.3g} / {median_at(g.nonlinear, depth):.3g}")

# 2. Trained on digits.
data = rf.load_dataset("digits")
specs = {"ResNet-15": dict(model="resnet", depth=15), "MLP-15 (w_std 6)": dict(model="mlp", depth=15, w_std=6.0)}
specs["MLP-3"] = dict(model="mlp", depth=3)
trained = {name: rf.fit(data, key=jax.random.key(0), epochs=40, figures=False, **kw) for name, kw in specs.items()}
x_test = jnp.asarray(data.x_test)
growth, injection = {}, {}
for name, res in trained.items():
    kw = dict(depth=res.depth, model=res.config.model, key=jax.random.key(4), num_draws=4, sigma=0.1)
    p = res.trunk_params()
    growth[name] = rf.perturbation_growth(p, x_test, **kw)
    injection[name] = rf.injection_response(p, x_test[:100], **kw)
    print(
        f"{name:<17} clean test acc {res.metrics['test_accuracy']:.3f}; median growth at T={res.depth}: "
        f"linear {median_at(growth[name].linear, -1):.3g}, nonlinear {median_at(growth[name].nonlinear, -1):.3g}; "
        f"injection gain s=0: {median_at(injection[name].nonlinear, 0):.3g}, "
        f"s=T-1: {median_at(injection[name].nonlinear, -2):.3g}"
    )
plot_perturbation_growth(
    growth, title="trained on digits: growth of input perturbations", save=FIG / "perturbation_growth_digits.png"
)
plot_injection_response(
    {k: injection[k] for k in ("ResNet-15", "MLP-15 (w_std 6)")},
    title="trained on digits: output change vs injection layer",
    save=FIG / "perturbation_injection.png",
)

# 3. Separability of the trained ResNet's residuals and of their running integral (= the states).
res = trained["ResNet-15"]
p = res.trunk_params()
r_train = rf.residuals(p, rf.trajectory(p, jnp.asarray(data.x_train), depth=res.depth))
r_test = rf.residuals(p, rf.trajectory(p, x_test, depth=res.depth))
sep = rf.class_separability(
    r_train,
    jnp.asarray(data.y_train),
    x0=jnp.asarray(data.x_train),
    test_residuals=r_test,
    test_labels=jnp.asarray(data.y_test),
    test_x0=x_test,
    ridge=1e-2,
)
plot_separability({"ResNet-15": sep}, save=FIG / "perturbation_separability.png")
np.set_printoptions(precision=3, suppress=True)
print("ResNet-15 probe test accuracy on r_t:", np.asarray(sep.residual_accuracy))
print("ResNet-15 probe test accuracy on S_t:", np.asarray(sep.integral_accuracy))
print("ResNet-15 Fisher ratio of r_t:       ", np.asarray(sep.residual_fisher))
print("ResNet-15 Fisher ratio of S_t:       ", np.asarray(sep.integral_fisher))
