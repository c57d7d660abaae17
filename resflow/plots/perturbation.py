"""Figures for perturbation growth, injection layers, class separability and noise robustness."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..analysis._perturbation import InjectionResponse, PerturbationGrowth
from ..analysis._robustness import NoiseRobustness
from ..analysis._separability import Separability
from ._common import figure_legend, finish, integer_ticks, legend_outside, new_figure, readable_log_axis

__all__ = ["plot_perturbation_growth", "plot_injection_response", "plot_separability", "plot_noise_robustness"]


def _band(ax, x, values, *, color, label, ls="-", quantiles=(0.1, 0.9), fill=True, marked=False):
    """Median over every axis but the first, with a shaded inter-quantile band.

    `marked`: open markers on the line (about 12), drawn above the others, so that a
    dashed curve lying on a solid one of the same colour still shows (and its legend entry
    differs from the solid one's).
    """
    v = np.asarray(values, np.float64).reshape(len(x), -1)
    marks = {"marker": "o", "mfc": "white", "ms": 4.5, "markevery": max(1, len(x) // 12), "zorder": 3} if marked else {}
    (line,) = ax.plot(x, np.median(v, axis=1), color=color, ls=ls, lw=1.8, label=label, **marks)
    if fill and v.shape[1] > 1:
        lo, hi = np.quantile(v, quantiles, axis=1)
        ax.fill_between(x, lo, hi, color=color, alpha=0.18, lw=0)
    return line


def _legend(ax):
    """The legend to the right of the data area, so that it covers no line or band."""
    legend_outside(ax)


def _as_mapping(results, kind):
    if isinstance(results, kind):
        return {"": results}
    if not isinstance(results, Mapping) or not results:
        raise TypeError(f"expected a {kind.__name__} or a non-empty mapping label -> {kind.__name__}")
    return results


def plot_perturbation_growth(
    growths: Mapping[str, PerturbationGrowth | np.ndarray],
    *,
    quantiles=(0.1, 0.9),
    title: str = "perturbation growth",
    save=None,
):
    """||δx_t|| / ||δx_0|| against layer t (log scale), one colour per model.

    `growths` maps a label (e.g. ``"ResNet"``, ``"MLP"``) to a `PerturbationGrowth` (linearised:
    solid line, nonlinear: dashed with open circles, drawn on top, so that it shows where the
    two coincide) or to an array ``(T + 1, ...)`` of growth ratios. Lines are
    medians over draws and inputs, bands the `quantiles` (default 10 %–90 %) of the linearised
    growth (of the array).
    """
    growths = _as_mapping(growths, PerturbationGrowth)
    fig, axes = new_figure(1, 1, size=(6.0, 4.2))
    ax = axes[0, 0]
    for i, (label, g) in enumerate(growths.items()):
        c = f"C{i}"
        if isinstance(g, PerturbationGrowth):
            t = np.arange(g.linear.shape[0])
            _band(ax, t, g.linear, color=c, label=f"{label} linearised (JVP)", quantiles=quantiles)
            _band(ax, t, g.nonlinear, color=c, label=f"{label} nonlinear", ls="--", fill=False, marked=True)
        else:
            t = np.arange(np.shape(g)[0])
            _band(ax, t, g, color=c, label=label, quantiles=quantiles)
    ax.axhline(1.0, color="0.5", lw=0.8, ls=":")
    ax.set(xlabel="layer t", ylabel="||δx_t|| / ||δx_0||", yscale="log", title=title)
    integer_ticks(ax, "x")
    readable_log_axis(ax, "y")
    _legend(ax)
    return finish(fig, save)


def plot_injection_response(
    responses: Mapping[str, InjectionResponse], *, quantiles=(0.1, 0.9), title: str | None = None, save=None
):
    """Output change ||Δx_T|| / ||δ|| against the layer s where δ is injected (log scale).

    One colour per model; solid: nonlinear (median and inter-quantile band), dashed with open
    circles (on top): linearised.
    s = 0 perturbs the input, s = T the output itself (gain 1).
    """
    responses = _as_mapping(responses, InjectionResponse)
    fig, axes = new_figure(1, 1, size=(6.0, 4.2))
    ax = axes[0, 0]
    for i, (label, r) in enumerate(responses.items()):
        s = np.asarray(r.layers)
        _band(ax, s, r.nonlinear, color=f"C{i}", label=f"{label} nonlinear", quantiles=quantiles)
        _band(ax, s, r.linear, color=f"C{i}", label=f"{label} linearised", ls="--", fill=False, marked=True)
    ax.axhline(1.0, color="0.5", lw=0.8, ls=":")
    ax.set(
        xlabel="injection layer s",
        ylabel="||Δx_T|| / ||δ||",
        yscale="log",
        title=title or "output change vs injection layer",
    )
    _legend(ax)
    return finish(fig, save)


def plot_separability(separability: Separability | Mapping[str, Separability], *, save=None):
    """Probe accuracy (left) and Fisher ratio (right, log scale) against layer.

    Solid: residuals r_t (t = 0 … T-1); dashed: running integral S_t = x_0 + h Σ_{s<t} r_s
    (t = 0 … T). A mapping label -> `Separability` draws one colour per label. The accuracy axis
    starts just below the lowest accuracy; the Fisher axis is logarithmic when the ratios span
    more than a decade. Ratios of exactly 0 (e.g. S_0 = 0 without x_0) are not drawn.
    """
    seps = _as_mapping(separability, Separability)
    fig, axes = new_figure(1, 2, size=(5.0, 4.0))
    acc_ax, fis_ax = axes[0]
    for i, (label, s) in enumerate(seps.items()):
        c = f"C{i}"
        pre = f"{label} " if label else ""
        tr, ti = np.arange(len(s.residual_accuracy)), np.arange(len(s.integral_accuracy))
        acc_ax.plot(tr, s.residual_accuracy, color=c, marker=".", label=f"{pre}residual r_t")
        acc_ax.plot(ti, s.integral_accuracy, color=c, ls="--", marker=".", label=f"{pre}integral S_t")
        # Fisher ratio 0 (identical class means, e.g. S_0 = 0) has no place on a log axis.
        fr, fi = np.asarray(s.residual_fisher, float), np.asarray(s.integral_fisher, float)
        fis_ax.plot(tr, np.where(fr > 0, fr, np.nan), color=c, marker=".", label=f"{pre}residual r_t")
        fis_ax.plot(ti, np.where(fi > 0, fi, np.nan), color=c, ls="--", marker=".", label=f"{pre}integral S_t")
    accs = np.concatenate([np.ravel(np.asarray(a, float)) for s in seps.values() for a in s[:2]])
    fishers = np.concatenate([np.ravel(np.asarray(f, float)) for s in seps.values() for f in s[2:]])
    fishers = fishers[np.isfinite(fishers) & (fishers > 0)]
    # Zoom on the accuracies (they are often all high); a log axis only where the ratio spans decades.
    low = max(0.0, np.floor(10 * np.nanmin(accs)) / 10 - 0.05) if accs.size else 0.0
    acc_ax.set(xlabel="layer t", ylabel="linear-probe accuracy", title="probe accuracy", ylim=(low, 1.005))
    log = fishers.size > 0 and fishers.max() > 10 * fishers.min()
    fis_ax.set(xlabel="layer t", ylabel="between / within class spread", yscale="log" if log else "linear")
    fis_ax.set_title("Fisher ratio")
    figure_legend(fig, acc_ax, where="bottom")
    return finish(fig, save)


def plot_noise_robustness(
    results: Mapping[str, NoiseRobustness], *, chance: float | None = None, title: str | None = None, save=None
):
    """Test accuracy against input-noise σ, one line per model (mean over draws, ± 1 std band).

    When every result includes σ = 0, a second panel shows the accuracy relative to the clean
    one, acc(σ) / acc(0), which compares models whose clean accuracies differ (models whose
    clean accuracy is not above `chance` are left out of it).
    `chance`: draw the chance level (e.g. 1 / number of classes) as a dotted line.
    """
    results = _as_mapping(results, NoiseRobustness)
    relative = all(np.any(np.asarray(r.sigmas) == 0) for r in results.values())
    fig, axes = new_figure(1, 2 if relative else 1, size=(5.5, 4.2))
    ax = axes[0, 0]
    markers = "osD^v<>"
    for i, (label, r) in enumerate(results.items()):
        s, m, sd = np.asarray(r.sigmas), np.asarray(r.mean), np.asarray(r.std)
        style = dict(color=f"C{i}", marker=markers[i % len(markers)], ms=4, lw=1.6, label=label)
        ax.plot(s, m, **style)
        ax.fill_between(s, m - sd, m + sd, color=f"C{i}", alpha=0.2, lw=0)
        clean = m[np.flatnonzero(s == 0)[0]] if relative else 0.0
        # A model at chance level keeps its (non-)accuracy under any noise: its ratio says nothing.
        if relative and clean > (chance or 0.0):
            axes[0, 1].plot(s, m / clean, **style)
    if chance is not None:
        ax.axhline(chance, color="0.5", lw=0.8, ls=":", label="chance")
    ax.set(xlabel="input noise σ", ylabel="test accuracy", ylim=(0, 1.02), title=title or "accuracy under input noise")
    figure_legend(fig, ax, where="bottom")
    if relative:
        axes[0, 1].set(
            xlabel="input noise σ", ylabel="accuracy / clean accuracy", ylim=(0, 1.05), title="relative to σ = 0"
        )
    return finish(fig, save)
