"""Claims 3 (attractor regime) and 5 (classification by the integrated transient)."""

from __future__ import annotations

import numpy as np

from ...attractors import residual_fixed_points
from ...long_run import attractor_regime
from ...transients import transient_accuracy
from .context import Context, inputs
from .stats import curve_summary, summary
from .verdicts import THRESHOLDS

__all__ = ["claim_attractor", "claim_transient", "regime_numbers"]

CORNER_ATOL = 1e-3


def regime_numbers(run, data, mode, *, n: int | None = None) -> dict:
    """`resflow.attractor_regime` of one run after `mode.long_depth` layers, as plain numbers."""
    inp = inputs(run, data, n or mode.max_samples)
    reg = attractor_regime(run.trunk, inp.x0, inp.y, depth=mode.long_depth, num_classes=inp.K)
    return {
        "attractor": float(reg.label == "attractor"),
        "class_independent": float(reg.class_independent),
        "converged_fraction": reg.converged_fraction,
        "num_end_states": reg.num_end_states,
        "dominant_fraction": reg.dominant_fraction,
        "class_dependence": reg.class_dependence,
        "end_state": np.asarray(reg.steady.dominant).tolist(),
    }


def _corner(run, end) -> dict:
    """Is the dominant end state a corner of the cube; the flow eigenvalues of the enumerated
    fixed point nearest to it (width ≤ 12), sorted."""
    end = np.asarray(end)
    corner = bool(np.all(np.minimum(np.abs(end), np.abs(1 - end)) < CORNER_ATOL))
    fps = residual_fixed_points(run.trunk)
    k = int(np.argmin(np.linalg.norm(np.asarray(fps.points) - end, axis=1)))
    eig = np.sort(np.real(np.asarray(fps.flow_eigenvalues[k])))
    return {"corner": float(corner), "eigenvalues": eig.tolist(), "fixed_point": np.asarray(fps.points[k]).tolist()}


def claim_attractor(ctx: Context) -> dict:
    """Claim 3: where the residuals of the same weights end after `long_depth` layers.

    Circles (width 3): the attractor regime, whether the end state is a corner, the flow
    eigenvalues there; digits: the regime measures. (Fashion-MNIST: the images section.)
    """
    m = ctx.mode
    numbers, end_states = {}, []
    for k in m.trunk_data:
        per = [regime_numbers(r, ctx.data[k], m) for r in ctx.runs[f"{k}/resnet"]]
        keys = (
            "attractor",
            "class_independent",
            "converged_fraction",
            "num_end_states",
            "dominant_fraction",
            "class_dependence",
        )
        numbers[k] = {q: summary([e[q] for e in per]) for q in keys}
        if k == "circles":
            corners = [_corner(r, e["end_state"]) for r, e in zip(ctx.runs[f"{k}/resnet"], per, strict=True)]
            end_states = [e["end_state"] for e in per]
            numbers[k]["corner"] = summary([c["corner"] for c in corners])
            numbers[k]["corner_fraction"] = float(np.mean([c["corner"] for c in corners]))
            same = [e["class_independent"] * e["attractor"] for e in per]
            numbers[k]["same_attractor_fraction"] = float(np.mean(same))
            numbers[k]["eigenvalues_per_seed"] = [c["eigenvalues"] for c in corners]
            numbers[k]["end_state_per_seed"] = end_states
    numbers["long_depth"] = m.long_depth
    paper = {"circles end state": "(0, 0, 1) for both classes", "eigenvalues": "w13 = −1.95, w23 = −0.87, −w33 = −0.8"}
    return {"numbers": numbers, "paper": paper}


def _transient_one(run, data, n: int) -> dict:
    inp = inputs(run, data, n)
    t = transient_accuracy(run.network, inp.x, inp.y)
    acc, steady = np.asarray(t.accuracy), np.asarray(t.steady_accuracy)
    full = acc[-1]
    reach = np.flatnonzero(acc >= THRESHOLDS["transient_fraction"] * full)
    first = int(reach[0]) if reach.size else len(acc) - 1
    return {"accuracy": acc.tolist(), "steady_accuracy": steady.tolist(), "first_depth": first,
            "early": float(first < len(acc) - 1)}  # fmt: skip


def claim_transient(ctx: Context) -> dict:
    """Claim 5: accuracy of the trained readout on x_0 + hΣ_{t<T'} r_t, T' = 0 … T, and with the
    residuals after T' replaced by the steady state r* (`resflow.transient_accuracy`)."""
    numbers, early = {}, []
    for k in ctx.mode.trunk_data:
        per = [_transient_one(r, ctx.data[k], ctx.mode.max_samples) for r in ctx.runs[f"{k}/resnet"]]
        numbers[k] = {
            "accuracy": curve_summary([e["accuracy"] for e in per]),
            "steady_accuracy": curve_summary([e["steady_accuracy"] for e in per]),
            "first_depth_99": summary([e["first_depth"] for e in per]),
        }
        early += [e["early"] for e in per]
    numbers["early_fraction"] = summary(early)
    return {
        "numbers": numbers,
        "paper": {"transient": "a readout on the partial integral up to T' < T classifies well"},
    }
