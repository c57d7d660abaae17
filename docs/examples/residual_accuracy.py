"""The float32 accuracy of the residual-only recurrence, quoted in docs/model.md.

    .venv/bin/python docs/examples/residual_accuracy.py

For random shared sigmoid trunks (n = 8, T = 15, 20 networks of 6 inputs per setting), the
residuals r_t = σ(W x_t + b) of the float32 forward pass are compared with
`residual_recurrence` from r_0 alone (one logit, then the map), and with
`preactivation_recurrence` from a_0 = W x_0 + b against a float64 numpy reference. Writes
docs/results/residual_accuracy.json (the per-network errors too) and draws them into
docs/figures/residual_accuracy.png.
"""

from __future__ import annotations

import json
import os
import warnings

import jax

jax.config.update("jax_enable_x64", True)  # the float64 reference; the trunks themselves are float32

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import resflow as rf  # noqa: E402
from resflow.plots.network import plot_recurrence_accuracy  # noqa: E402

HERE = os.path.dirname(__file__)
RESULTS = os.path.join(HERE, "..", "results", "residual_accuracy.json")
FIGURE = os.path.join(HERE, "..", "figures", "residual_accuracy.png")
LABELS = {"w1": "w_std 1", "w2": "w_std 2", "w3": "w_std 3", "w4_b2": "w_std 4, b_std 2"}
N, T, NETS, INPUTS = 8, 15, 20, 6
SETTINGS = {"w1": (1.0, 0.5), "w2": (2.0, 0.5), "w3": (3.0, 0.5), "w4_b2": (4.0, 2.0)}


def numpy_residuals(W, b, x0):
    """Float64 reference: the forward loop's residuals."""
    x, out = np.asarray(x0, np.float64), []
    for _ in range(T):
        r = 1 / (1 + np.exp(-(x @ W.T + b)))
        out.append(r)
        x = x + r
    return np.stack(out)


def setting(w_std, b_std):
    errors, warned, refused, pre_errors, quiet, flags = [], 0, 0, [], [], []
    for i in range(NETS):
        trunk = rf.Trunk.init(jax.random.key(i), N, w_std=w_std, b_std=b_std, dtype=jnp.float32)
        x0 = jax.random.normal(jax.random.key(1000 + i), (INPUTS, N), jnp.float32)
        r = rf.residuals(trunk, rf.trajectory(trunk, x0, depth=T))
        ref = numpy_residuals(np.asarray(trunk.W, np.float64), np.asarray(trunk.b, np.float64), x0)
        a0 = x0 @ trunk.W.T + trunk.b
        pre = jax.nn.sigmoid(rf.trunk.preactivation_recurrence(trunk, a0, depth=T))
        pre_errors.append(float(np.abs(np.asarray(pre, np.float64) - ref).max()))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                alone = rf.residual_recurrence(trunk, r[0], depth=T)
            except ValueError:  # a residual rounded to exactly 0 or 1: no logit
                refused += 1
                continue
        err = float(jnp.abs(alone - r).max())
        errors.append(err)
        flags.append(any(issubclass(w.category, rf.trunk.ConditioningWarning) for w in caught))
        if flags[-1]:
            warned += 1
        else:
            quiet.append(err)
    return {
        "max_error": max(errors),
        "median_error": float(np.median(errors)),
        "warned": warned,
        "networks": len(errors),
        "refused": refused,
        "max_error_not_warned": max(quiet) if quiet else None,
        "preactivation_max_error": max(pre_errors),
        # per network (the refused ones left out of the first two)
        "errors": errors,
        "warned_each": flags,
        "preactivation_errors": pre_errors,
    }


def main():
    out = {name: setting(*args) for name, args in SETTINGS.items()}
    out["preactivation_max_error"] = max(v["preactivation_max_error"] for v in out.values())
    with open(RESULTS, "w") as f:
        json.dump(out, f, indent=1)
    print(json.dumps({k: {m: v for m, v in s.items() if not isinstance(v, list)} for k, s in out.items() if k in SETTINGS},
                     indent=1))  # fmt: skip
    plot_recurrence_accuracy({LABELS[k]: out[k] for k in SETTINGS}, save=FIGURE)


if __name__ == "__main__":
    main()
