"""The analyses of a saved run, on its own test data with its own trunk (``scripts/analyze.py``).

    analyze_run(run, what=ANALYSES, out="RUN_DIR/analysis") -> {name: JSON-able dict}

Each analysis writes ``<name>.json`` and ``<name>.png`` into `out`. Inputs are the run's
test data (reloaded with `Run.load_data`, fingerprint-checked) after the network's lift,
x_0 = lift(x), at most `max_samples` of them; the trunk runs for the run's final depth.

- ``lyapunov``: `resflow.network_lyapunov_spectrum` per input (and its running estimate).
- ``fixed-points``: `resflow.residual_fixed_points` (shared sigmoid resnets of width ≤ 12;
  otherwise the JSON says why not) and `resflow.steady_state` after `steady_depth` layers.
  Figure: the attractor portrait at width 2 or 3; otherwise the steady state, with a note
  saying why no fixed point is drawn (or, without a steady state, the residuals by class).
- ``interactions``: `resflow.interaction_coefficients` and `resflow.interaction_summary`.
- ``perturbation``: `resflow.perturbation_growth` (linearised and nonlinear).
- ``separability``: `resflow.class_separability` (probes fitted on training data, scored on test).
- ``noise``: `resflow.noise_accuracy` of the whole network under Gaussian noise on the *raw*
  inputs (σ as fractions of the mean of the standardisation's divisors, i.e. of the raw
  stds with the floor of `resflow.training._preprocess.standardize`), standardised as in training.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ..analysis._attractors import residual_fixed_points
from ..analysis._interactions import interaction_coefficients, interaction_summary
from ..analysis._jacobians import network_lyapunov_spectrum
from ..analysis._perturbation import perturbation_growth
from ..analysis._robustness import noise_accuracy
from ..analysis._separability import class_separability
from ..analysis._steady_state import steady_state
from ..training._runs import Run, write_json
from ..trunk._residuals import residuals
from ..trunk._trunk import trajectory

__all__ = ["ANALYSES", "analyze_run", "Inputs"]

ANALYSES = ("lyapunov", "fixed-points", "interactions", "perturbation", "separability", "noise")
FIXED_POINT_MAX_WIDTH = 12
STEADY_STATE_SKIPPED = "steady_state needs a shared-weight resnet trunk"
NOISE_FRACTIONS = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0)


def _tolist(a):
    a = np.asarray(a)
    return a.tolist() if a.dtype != object else [str(v) for v in a]


class Inputs:
    """The run's data as the analyses see it: raw and standardised test inputs, x_0 after the lift."""

    def __init__(self, run: Run, max_samples: int):
        data = run.load_data()
        n = min(max_samples, len(data.x_test))
        self.run, self.num_classes = run, run.network.n_classes
        self.x, self.y = data.x_test[:n], jnp.asarray(data.y_test[:n])
        self.x_train, self.y_train = data.x_train[:max_samples], jnp.asarray(data.y_train[:max_samples])
        self.x0 = run.network.embed(self.x)
        # Raw inputs: undo the standardisation (x_raw = x·std + mean), as the user would feed them.
        p = run.preprocessing
        self.mean = np.asarray(p["mean"] if p.get("standardized") else np.zeros(self.x.shape[1]))
        self.std = np.asarray(p["std"] if p.get("standardized") else np.ones(self.x.shape[1]))
        self.raw = (self.x * self.std + self.mean).astype(np.float32)


def lyapunov(inp: Inputs, plots) -> dict:
    run = inp.run
    res = network_lyapunov_spectrum(run.trunk, inp.x0, depth=run.depth, return_running=True)
    plots.plot_lyapunov_convergence(
        np.asarray(res.running).mean(0), title="running Lyapunov exponents (mean over test inputs)", save=inp.fig
    )
    ex = np.asarray(res.exponents)
    return {"depth": run.depth, "exponents": ex.tolist(), "mean": ex.mean(0).tolist(), "max": float(ex.max())}


def _shared_sigmoid_resnet(trunk) -> str | None:
    """Why `residual_fixed_points` cannot enumerate this trunk, or None."""
    if not trunk.shared or trunk.model != "resnet" or trunk.activation != "sigmoid":
        return "residual_fixed_points needs a shared-weight sigmoid resnet trunk"
    if trunk.width > FIXED_POINT_MAX_WIDTH:
        return f"width {trunk.width} > {FIXED_POINT_MAX_WIDTH}: 3^n patterns are too many to enumerate"
    return None


def fixed_points(inp: Inputs, plots, *, steady_depth: int = 1000) -> dict:
    trunk, out = inp.run.trunk, {}
    why = _shared_sigmoid_resnet(trunk)
    fps = None
    if why is None:
        fps = residual_fixed_points(trunk)
        out["fixed_points"] = {k: _tolist(getattr(fps, k)) for k in ("points", "patterns", "dimension", "attracting")}
        out["fixed_points"]["spectral_radius"] = _tolist(fps.spectral_radius)
        out["fixed_points"]["classified_by"] = _tolist(fps.classified_by)
    else:
        out["fixed_points"] = {"skipped": why}
    ss = None
    if trunk.shared and trunk.model == "resnet":
        ss = steady_state(trunk, inp.x0, inp.y, depth=steady_depth, num_classes=inp.num_classes)
        out["steady_state"] = {"depth": steady_depth, "converged_fraction": float(jnp.mean(ss.converged))}
        out["steady_state"] |= {k: _tolist(getattr(ss, k)) for k in ("class_counts", "class_distance", "dominant")}
        out["steady_state"]["dominant_fraction"] = float(ss.dominant_fraction)
    else:
        out["steady_state"] = {"skipped": STEADY_STATE_SKIPPED}
    _plot_fixed_points(inp, plots, fps, why, ss, steady_depth)
    return out


def _plot_fixed_points(inp: Inputs, plots, fps, why: str | None, ss, steady_depth: int) -> None:
    """The portrait with the fixed points (width 2 or 3); else the steady state, the figure
    saying why no fixed point is drawn; else the residuals by class, saying what was skipped."""
    trunk = inp.run.trunk
    if trunk.width in (2, 3) and fps is not None:
        r = residuals(trunk, trajectory(trunk, inp.x0, depth=inp.run.depth))
        plots.plot_attractor_portrait(r, fps, np.asarray(inp.y), title="residuals and fixed points", save=inp.fig)
        return
    if why is not None:
        fixed = f"Fixed points not enumerated: {why}."
    else:
        fixed = f"{len(fps.points)} fixed points enumerated (in fixed-points.json); a portrait needs width 2 or 3."
    if ss is not None:
        note = f"{fixed}\nShown instead: where the test inputs' residuals settle after {steady_depth} layers."
        plots.plot_steady_state(ss, depth=steady_depth, note=note, title="fixed points: steady state", save=inp.fig)
        return
    r = residuals(trunk, trajectory(trunk, inp.x0, depth=inp.run.depth))
    plots.plot_residual_trajectories(
        r, np.asarray(inp.y), activation=trunk.activation,
        title=f"{fixed}\nNot computed: {STEADY_STATE_SKIPPED}. Shown: residuals by class.",
        save=inp.fig,
    )  # fmt: skip


def interactions(inp: Inputs, plots) -> dict:
    trunk = inp.run.trunk
    if trunk.activation != "sigmoid" or trunk.model != "resnet":
        return {"skipped": "interaction_coefficients needs a logistic (sigmoid) resnet trunk"}
    r = residuals(trunk, trajectory(trunk, inp.x0, depth=inp.run.depth))
    C = interaction_coefficients(trunk, r)
    s = interaction_summary(C, inp.y, num_classes=inp.num_classes)
    W = trunk.W if trunk.shared else trunk.W[-1]
    shown = [c for c in range(inp.num_classes) if int(s.class_counts[c]) > 0][:3]
    panels = np.stack([np.asarray(W)] + [np.asarray(s.class_mean[c, -1]) for c in shown])
    titles = ["W"] + [f"class {c}: mean C at layer {C.shape[0] - 1}" for c in shown]
    plots.plot_interaction_matrix(panels, titles=titles, mark_pairs=trunk.width <= 16, save=inp.fig)
    names = ("class_counts", "cooperative_fraction", "competitive_fraction", "cooperative_share")
    return {k: _tolist(getattr(s, k)) for k in names}


def perturbation(inp: Inputs, plots) -> dict:
    run = inp.run
    g = perturbation_growth(run.trunk, inp.x0, depth=run.depth, key=jax.random.key(0))
    plots.plot_perturbation_growth({"trained trunk": g}, save=inp.fig)
    lin, non = (np.asarray(a).reshape(a.shape[0], -1) for a in g)
    return {
        "depth": run.depth,
        "linear_median": np.median(lin, 1).tolist(),
        "nonlinear_median": np.median(non, 1).tolist(),
    }


def separability(inp: Inputs, plots) -> dict:
    run = inp.run
    x0_train = run.network.embed(inp.x_train)
    s = class_separability(
        run.trunk, x0_train, inp.y_train, depth=run.depth, test_x0=inp.x0, test_labels=inp.y,
        num_classes=inp.num_classes,
    )  # fmt: skip
    plots.plot_separability(s, save=inp.fig)
    return {k: _tolist(v) for k, v in s._asdict().items()}


def noise(inp: Inputs, plots) -> dict:
    network, mean, std = inp.run.network, jnp.asarray(inp.mean), jnp.asarray(inp.std)
    scale = float(np.mean(inp.std)) if inp.run.preprocessing.get("standardized") else 1.0
    sigmas = np.asarray(NOISE_FRACTIONS) * scale

    def classifier(x_raw):
        return network(((x_raw - mean) / std).astype(network.trunk.dtype))

    res = noise_accuracy(classifier, inp.raw, inp.y, sigmas, key=jax.random.key(0))
    plots.plot_noise_robustness({"trained network": res}, chance=1 / inp.num_classes, save=inp.fig)
    return {
        "sigma_unit": "raw input units (fractions of the mean standardisation divisor: raw std, floored)",
        "fractions": list(NOISE_FRACTIONS),
        "sigmas": sigmas.tolist(),
        "accuracy_mean": _tolist(res.mean),
        "accuracy_std": _tolist(res.std),
    }


RUNNERS = {
    "lyapunov": lyapunov,
    "fixed-points": fixed_points,
    "interactions": interactions,
    "perturbation": perturbation,
    "separability": separability,
    "noise": noise,
}


def analyze_run(run: Run, *, what=ANALYSES, out=None, max_samples: int = 512) -> dict:
    """Run the analyses `what` on `run` and write ``<name>.json`` / ``<name>.png`` into `out`.

    **Arguments:** `run` (from `resflow.load_run`); `what`, names from `ANALYSES`; `out`, the
    folder (default ``<run folder>/analysis``); `max_samples`, the test (and probe training)
    inputs used.

    **Returns:** ``{name: the JSON-able result}``.

    **Raises:** `ValueError` for an unknown analysis name; `resflow.training.RunError` when the
    run's data cannot be reloaded as recorded.
    """
    unknown = [w for w in what if w not in RUNNERS]
    if unknown:
        raise ValueError(f"unknown analysis {unknown}; choose from {list(ANALYSES)}")
    from .. import plots

    out = Path(out) if out is not None else run.path / "analysis"
    out.mkdir(parents=True, exist_ok=True)
    inp = Inputs(run, max_samples)
    results = {}
    for name in what:
        inp.fig = out / f"{name}.png"
        results[name] = RUNNERS[name](inp, plots)
        write_json(out / f"{name}.json", json.loads(json.dumps(results[name])))
        import matplotlib.pyplot as plt

        plt.close("all")
    return results
