"""Perturbation growth, injection layers and class separability (docs/dynamics/perturbation.md).

Builds docs/figures/perturbation_*.png and writes the numbers quoted in the guide to
docs/results/perturbation_dynamics.json:

1. random shared-weight trunks (width 16, depth 15, sigmoid): ResNet vs MLP with the *same* W, b;
2. networks trained on digits (width 64, 15 shared layers, Adam 3e-3, 40 epochs, seed 0):
   ResNet-15, MLP-15 with init scale w_std = 6 (with w_std = 1 it does not train) and MLP-3;
   perturbation growth of their trunks on the test inputs, output change vs injection layer,
   and per-layer separability of the ResNet's residuals and running integral.

Run: .venv/bin/python docs/examples/perturbation_dynamics.py   (about a minute on 2 CPU cores)
"""

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import resflow as rf
from resflow.plots import plot_injection_response, plot_perturbation_growth, plot_separability

FIG = Path(__file__).resolve().parents[1] / "figures"
RESULTS = Path(__file__).resolve().parents[1] / "results" / "perturbation_dynamics.json"
out = {}  # name -> number quoted in docs/dynamics/perturbation.md


def median_at(g, t):
    return float(np.median(np.asarray(g)[t]))


# 1. Random trunks: the same W, b run as a ResNet and as an MLP.
width, depth = 16, 15
resnet = rf.Trunk.init(jax.random.key(1), width, w_std=2.0, b_std=0.5)
mlp = rf.Trunk(resnet.W, resnet.b, resnet.h, model="mlp")  # same arrays, the other map
x0 = jax.random.normal(jax.random.key(2), (64, width))
random = {
    name: rf.perturbation_growth(trunk, x0, depth=depth, key=jax.random.key(3), num_draws=8, sigma=0.1)
    for name, trunk in [("ResNet", resnet), ("MLP", mlp)]
}
plot_perturbation_growth(
    random,
    title="random trunk (width 16, w_std 2): growth of input perturbations",
    save=FIG / "perturbation_growth_random.png",
)
print("random trunk, median growth at layer 15 (linearised / nonlinear sigma=0.1):")
for name, g in random.items():
    lin, nonlin = median_at(g.linear, depth), median_at(g.nonlinear, depth)
    out.update({f"random_{name.lower()}_linear": lin, f"random_{name.lower()}_nonlinear": nonlin})
    print(f"  {name:<8} {lin:.3g} / {nonlin:.3g}")
# the MLP's contraction per layer: geometric mean of the median ratio over the 15 layers
out["random_mlp_rate"] = out["random_mlp_linear"] ** (1 / depth)

# 2. Trained on digits.
data = rf.load_dataset("digits")
out.update(n_train=len(data.y_train), n_test=len(data.y_test))
specs = {"ResNet-15": dict(model="resnet", depth=15), "MLP-15 (w_std 6)": dict(model="mlp", depth=15, w_std=6.0)}
specs["MLP-3"] = dict(model="mlp", depth=3)
keys = {"ResNet-15": "resnet15", "MLP-15 (w_std 6)": "mlp15", "MLP-3": "mlp3"}
trained = {name: rf.fit(data, key=jax.random.key(0), epochs=40, figures=False, **kw) for name, kw in specs.items()}
x_test = jnp.asarray(data.x_test)
growth, injection = {}, {}
for name, res in trained.items():
    kw = dict(depth=res.depth, key=jax.random.key(4), num_draws=4, sigma=0.1)
    trunk = res.trunk  # carries the model, activation and h it was trained with
    x = x_test.astype(trunk.dtype)
    growth[name] = rf.perturbation_growth(trunk, x, **kw)
    injection[name] = rf.injection_response(trunk, x[:100], **kw)
    k = keys[name]
    out[f"{k}_accuracy"] = float(res.metrics["test_accuracy"])
    out[f"{k}_growth_linear"] = median_at(growth[name].linear, -1)
    out[f"{k}_growth_nonlinear"] = median_at(growth[name].nonlinear, -1)
    out[f"{k}_gain_first"] = median_at(injection[name].nonlinear, 0)
    out[f"{k}_gain_last"] = median_at(injection[name].nonlinear, -2)
    print(
        f"{name:<17} clean test acc {out[f'{k}_accuracy']:.3f}; median growth at T={res.depth}: "
        f"linear {out[f'{k}_growth_linear']:.3g}, nonlinear {out[f'{k}_growth_nonlinear']:.3g}; "
        f"injection gain s=0: {out[f'{k}_gain_first']:.3g}, s=T-1: {out[f'{k}_gain_last']:.3g}"
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
trunk = res.trunk
x_train = jnp.asarray(data.x_train, trunk.dtype)
x_test = x_test.astype(trunk.dtype)
sep = rf.class_separability(
    trunk,
    x_train,
    jnp.asarray(data.y_train),
    depth=res.depth,
    test_x0=x_test,
    test_labels=jnp.asarray(data.y_test),
    ridge=1e-2,
)
plot_separability({"ResNet-15": sep}, save=FIG / "perturbation_separability.png")
for name, values in [
    ("probe_r", sep.residual_accuracy),
    ("probe_S", sep.integral_accuracy),
    ("fisher_r", sep.residual_fisher),
    ("fisher_S", sep.integral_fisher),
]:
    for t, v in enumerate(np.asarray(values)):
        out[f"{name}_{t}"] = float(v)
probe_S, fisher_r, fisher_S = (np.asarray(v) for v in (sep.integral_accuracy, sep.residual_fisher, sep.integral_fisher))
out["probe_S_gain_points"] = 100 * float(probe_S.max() - probe_S[0])  # what the trunk adds to the raw input
out["fisher_S_growth"] = float(fisher_S[-1] / fisher_S[0])
out["fisher_r_peak_layer"] = int(np.argmax(fisher_r))
np.set_printoptions(precision=3, suppress=True)
print("ResNet-15 probe test accuracy on r_t:", np.asarray(sep.residual_accuracy))
print("ResNet-15 probe test accuracy on S_t:", np.asarray(sep.integral_accuracy))
print("ResNet-15 Fisher ratio of r_t:       ", np.asarray(sep.residual_fisher))
print("ResNet-15 Fisher ratio of S_t:       ", np.asarray(sep.integral_fisher))
RESULTS.parent.mkdir(parents=True, exist_ok=True)
RESULTS.write_text(json.dumps(out, indent=1, sort_keys=True))
print("numbers written to", RESULTS)
