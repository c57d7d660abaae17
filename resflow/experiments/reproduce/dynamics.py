"""Claims 3 (attractor regime) and 5 (classification by the integrated transient)."""

from __future__ import annotations

import numpy as np

from ...analysis._attractors import residual_fixed_points
from ...analysis._long_run import attractor_regime
from ...analysis._transients import transient_accuracy
from .context import Context, inputs
from .stats import curve_summary, summary
from .training import untrained_network
from .verdicts import THRESHOLDS, attractor_case

__all__ = ["claim_attractor", "claim_transient", "regime_numbers"]

CORNER_ATOL = 1e-3
CASES = ("shared", "different", "none")


def regime_numbers(run, data, mode, *, n: int | None = None) -> dict:
    """`resflow.attractor_regime` of one run (a `Run` or a `Network`) after `mode.long_depth`
    layers, as plain numbers, with the seed's case (`verdicts.attractor_case`)."""
    inp = inputs(run, data, n or mode.max_samples)
    reg = attractor_regime(
        run.trunk,
        inp.x0,
        inp.y,
        depth=mode.long_depth,
        num_classes=inp.K,
        atol=THRESHOLDS["class_independent_distance"],
    )
    return {
        "attractor": float(reg.label == "attractor"),
        "class_independent": float(reg.class_independent),
        "converged_fraction": reg.converged_fraction,
        "num_end_states": reg.num_end_states,
        "dominant_fraction": reg.dominant_fraction,
        "class_spread": reg.class_spread,
        "class_dependence": reg.class_dependence,
        "case": attractor_case(reg.converged_fraction, reg.class_spread),
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


def _cases(per: list[dict]) -> dict:
    return {c: sum(e["case"] == c for e in per) for c in CASES}


def claim_attractor(ctx: Context) -> dict:
    """Claim 3: where the residuals of the same weights end after `long_depth` layers.

    Per learned seed: one attractor shared by the classes, class-dependent attractors, or no
    convergence (`verdicts.attractor_case`). Circles (width 3): also whether the end state is
    a corner and the flow eigenvalues there; control: the untrained networks at the same init.
    Digits: the same cases. (Fashion-MNIST: the images section.)
    """
    m = ctx.mode
    numbers = {}
    keys = ("converged_fraction", "num_end_states", "dominant_fraction", "class_spread", "class_dependence")
    for k in m.trunk_data:
        learned = ctx.learned_runs(f"{k}/resnet")
        per = [regime_numbers(r, ctx.data[k], m) for _, r in learned]
        numbers[k] = {q: summary([e[q] for e in per]) for q in keys}
        numbers[k]["cases"] = _cases(per)
        numbers[k]["case_per_seed"] = {str(s): e["case"] for (s, _), e in zip(learned, per, strict=True)}
        if k == "circles":
            runs = [r for _, r in learned]
            corners = [_corner(r, e["end_state"]) for r, e in zip(runs, per, strict=True)]
            numbers[k]["corner"] = summary([c["corner"] for c in corners])
            numbers[k]["eigenvalues_per_seed"] = [c["eigenvalues"] for c in corners]
            numbers[k]["end_state_per_seed"] = [e["end_state"] for e in per]
            init = [regime_numbers(untrained_network(r, ctx.data[k], s), ctx.data[k], m) for s, r in learned]
            numbers[k]["control"] = {"name": "the untrained networks at the same init", "cases": _cases(init)}
    numbers["long_depth"] = m.long_depth
    paper = {"circles end state": "(0, 0, 1) for both classes", "eigenvalues": "w13 = −1.95, w23 = −0.87, −w33 = −0.8"}
    return {"numbers": numbers, "paper": paper}


def _transient_one(run, data, n: int) -> dict:
    """The readout's accuracy on the partial integrals and with the residuals after T'
    replaced by each input's steady state r*; the first T' < T where the latter reaches
    `transient_fraction` of the full accuracy (None: none), and whether T' = 0 does (r* alone)."""
    inp = inputs(run, data, n)
    t = transient_accuracy(run.network, inp.x, inp.y)
    acc, steady = np.asarray(t.accuracy), np.asarray(t.steady_accuracy)
    bar = THRESHOLDS["transient_fraction"] * acc[-1]
    reach = np.flatnonzero(steady[:-1] >= bar)
    return {"accuracy": acc.tolist(), "steady_accuracy": steady.tolist(),
            "first_depth": int(reach[0]) if reach.size else None, "steady_alone": bool(steady[0] >= bar)}  # fmt: skip


def claim_transient(ctx: Context) -> dict:
    """Claim 5: accuracy of the trained readout on x_0 + hΣ_{t<T'} r_t, T' = 0 … T, and with the
    residuals after T' replaced by the steady state r* (`resflow.transient_accuracy`).

    The test: does the readout still classify, for some T' < T, when the residuals after T'
    are replaced by r*? The control: T' = 0, the steady state alone (with x_0); where it
    classifies too, the classes end at different steady states and the transient is not needed."""
    numbers = {}
    for k in ctx.mode.trunk_data:
        learned = ctx.learned_runs(f"{k}/resnet")
        per = [_transient_one(r, ctx.data[k], ctx.mode.max_samples) for _, r in learned]
        n = len(per)
        numbers[k] = {
            "accuracy": curve_summary([e["accuracy"] for e in per]),
            "steady_accuracy": curve_summary([e["steady_accuracy"] for e in per]),
            "first_depth_per_seed": {str(s): e["first_depth"] for (s, _), e in zip(learned, per, strict=True)},
            "verdict_numbers": {
                "count": sum(e["first_depth"] is not None for e in per), "n": n, "at": "some T' < T",
                "control": {"name": "the steady state alone (T' = 0)", "count": sum(e["steady_alone"] for e in per),
                            "n": n, "at": "T' = 0"},
            },
        }  # fmt: skip
    numbers["data"] = list(ctx.mode.trunk_data)
    return {
        "numbers": numbers,
        "paper": {"transient": "a readout on the partial integral up to T' < T classifies well"},
    }
