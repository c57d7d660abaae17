"""One figure per claim of the reproduction, drawn from the claim's numbers (results.json).

Each ``plot_<claim>(numbers, *, save=None)`` takes the ``numbers`` dict that
`resflow.experiments.reproduce` stores for that claim (curves as mean ± std over seeds) and
returns the Figure. Every panel has a title, legends sit outside the data, and a model or
series keeps one colour, line style and marker across the panels of a figure.
"""

from __future__ import annotations

import textwrap

import numpy as np

from ._common import figure_legend, finish, integer_ticks, legend_outside, new_figure

__all__ = ["FIGURES"] + [f"plot_{k}" for k in ("disentangling", "cooperation", "attractor", "separability",
                                                 "transient", "noise", "depth", "images")]  # fmt: skip


def _band(ax, curve: dict, label: str, *, x=None, color=None, **style):
    mean, std = np.asarray(curve["mean"]), np.asarray(curve["std"])
    x = np.arange(len(mean)) if x is None else np.asarray(x)
    style = {"marker": "." if len(mean) < 30 else None} | style
    (line,) = ax.plot(x, mean, label=label, color=color, **style)
    ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2, lw=0)
    return line


def _data_keys(numbers: dict) -> list[str]:
    """The data sets a claim was measured on (circles, digits, images), in that order."""
    return [k for k in ("circles", "digits", "images") if k in numbers]


def _group_label(name: str) -> str:
    """A short-lined tick label: "circles: converged_fraction" -> "circles\nconverged\nfraction"."""
    parts = name.replace("_", " ").split(": ")
    return "\n".join(textwrap.fill(p, width=12) for p in parts)


def _seeds_scatter(ax, groups: dict, ylabel: str, *, log=False):
    """One column of dots (one per seed) per group, the groups named under the axis (horizontal, wrapped)."""
    for i, values in enumerate(groups.values()):
        v = np.asarray(values, float)
        ax.scatter(np.full(len(v), i) + np.linspace(-0.1, 0.1, len(v)), v, s=14)
    ax.set_xticks(range(len(groups)), [_group_label(g) for g in groups], fontsize=7)
    ax.set_xlim(-0.5, len(groups) - 0.5)
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")


def plot_disentangling(numbers: dict, *, save=None):
    fig, axes = new_figure(size=(6.0, 3.6))
    groups = {f"{k}: {q}": np.maximum(v[q]["values"], 1e-18) for k, v in numbers["per_data"].items() for q in v}
    _seeds_scatter(axes[0, 0], groups, "max relative error (float64)", log=True)
    axes[0, 0].set_title(r"residual recurrence and $x_T = x_0 + h\,\Sigma_t\, r_t$ vs the forward pass", fontsize=9)
    return finish(fig, save)


def plot_cooperation(numbers: dict, *, save=None):
    fig, axes = new_figure(1, 2, size=(4.2, 3.4))
    for k in _data_keys(numbers):
        _band(axes[0, 0], numbers[k]["cooperative_share_over_layers"], k)
        pairs = numbers[k]["pairs"]
        axes[0, 1].bar(np.arange(len(pairs)) + (0.2 if k == "digits" else -0.2), [p["mean"] for p in pairs.values()],
                       0.4, yerr=[p["std"] for p in pairs.values()], label=k)  # fmt: skip
    axes[0, 0].set(xlabel="layer t", ylabel="cooperative share Σ C⁺ / Σ |C|", ylim=(0, 1))
    axes[0, 0].set_title("cooperation over layers", fontsize=10)
    integer_ticks(axes[0, 0])
    names = list(numbers[_data_keys(numbers)[0]]["pairs"])
    axes[0, 1].set_xticks(range(len(names)), names, fontsize=7)
    axes[0, 1].set_ylabel("fraction of pairs (i, j) of W")
    axes[0, 1].set_title("pair classes of W (mean ± std over seeds)", fontsize=10)
    figure_legend(fig, axes)
    return finish(fig, save)


def plot_attractor(numbers: dict, *, save=None):
    fig, axes = new_figure(1, 2, size=(4.6, 3.6), width_ratios=[1.5, 1.0])
    groups = {f"{k}: {q}": numbers[k][q]["values"] for k in _data_keys(numbers)
              for q in ("converged_fraction", "dominant_fraction", "class_dependence")}  # fmt: skip
    _seeds_scatter(axes[0, 0], groups, "fraction (one dot per seed)")
    axes[0, 0].set_title(f"end states after {numbers['long_depth']} layers", fontsize=10)
    eig = numbers["circles"]["eigenvalues_per_seed"]
    for s, e in enumerate(eig):
        axes[0, 1].scatter(np.full(len(e), s), e, s=14, color="C0", label="this run" if s == 0 else None)
    axes[0, 1].scatter([-1] * 3, [-1.95, -0.87, -0.8], marker="x", color="k", label="paper")
    axes[0, 1].axhline(0, color="grey", lw=0.8)
    axes[0, 1].set(xlabel="seed (−1: paper)", ylabel="flow eigenvalue Re λ")
    axes[0, 1].set_title("circles: flow eigenvalues at the end state", fontsize=10)
    integer_ticks(axes[0, 1])
    figure_legend(fig, axes, where="bottom")
    return finish(fig, save)


def _band_panels(numbers: dict, curves: dict, *, xlabel: str, ylabel: str, title: str, save):
    """One panel per data set, a mean ± spread band per entry of `curves` (key → label)."""
    keys = _data_keys(numbers)
    fig, axes = new_figure(1, len(keys), size=(4.2, 3.4), sharey=True)
    for ax, k in zip(axes[0], keys, strict=True):
        for name, label in curves.items():
            _band(ax, numbers[k][name], label)
        ax.set(xlabel=xlabel, title=f"{k}: {title}")
        integer_ticks(ax)
    axes[0, 0].set_ylabel(ylabel)
    figure_legend(fig, axes, where="bottom")
    return finish(fig, save)


def plot_separability(numbers: dict, *, save=None):
    curves = {"residual_probe": "probe on $r_t$", "integral_probe": r"probe on $x_t = x_0 + h\,\Sigma_{s<t}\, r_s$"}
    return _band_panels(
        numbers, curves, xlabel="layer t", ylabel="test accuracy of a linear probe", title="linear probes", save=save
    )


def plot_transient(numbers: dict, *, save=None):
    curves = {
        "accuracy": r"readout on $x_0 + h\,\Sigma_{t<T'}\, r_t$",
        "steady_accuracy": r"$\ldots + h\,(T - T')\,r^*$ (steady state after $T'$)",
    }
    return _band_panels(
        numbers, curves, xlabel=r"$T'$ (layers of the transient integrated)",
        ylabel="test accuracy of the trained readout", title="readout on the integrated transient", save=save,
    )  # fmt: skip


_MODEL_STYLES = (
    {"ls": "-", "marker": "o"},
    {"ls": "--", "marker": "s"},
    {"ls": ":", "marker": "^"},
    {"ls": "-.", "marker": "D"},
)


def plot_noise(numbers: dict, *, save=None):
    fig, axes = new_figure(2, 2, size=(4.4, 3.3))
    names = numbers["models"]
    # One colour, line style and marker per model in every panel (the ResNet's too, in the injection panel).
    styles = {k: {"color": f"C{i}", "ms": 4, **_MODEL_STYLES[i % len(_MODEL_STYLES)]} for i, k in enumerate(names)}
    for k, label in names.items():
        _band(axes[0, 0], numbers["noise_accuracy"][k], label, x=numbers["sigmas"], **styles[k])
        _band(axes[0, 1], numbers["growth_linear"][k], label, **styles[k])
        lyap = np.asarray(numbers["lyapunov"][k]["mean"])
        axes[1, 1].plot(np.arange(1, len(lyap) + 1), lyap, label=label, **styles[k] | {"marker": None})
    resnet = next(iter(names))
    axes[0, 0].set(
        xlabel="input noise σ (standardised units)", ylabel="test accuracy", title="accuracy under input noise"
    )
    axes[0, 1].set(xlabel="layer t", ylabel="linearised growth ‖δx_t‖/‖δx_0‖", yscale="log",
                   title="perturbation growth")  # fmt: skip
    _band(axes[1, 0], numbers["injection_output_change"], names[resnet], **styles[resnet])
    axes[1, 0].set(xlabel="injection layer s", ylabel="‖Δx_T‖ (median)", title=f"{names[resnet]}: output change")
    axes[1, 1].set(xlabel="index k", ylabel="finite-time Lyapunov exponent $λ_k$", title="Lyapunov spectrum")
    for ax in (axes[0, 1], axes[1, 0]):
        integer_ticks(ax)
    figure_legend(fig, axes)
    return finish(fig, save)


def plot_depth(numbers: dict, *, save=None):
    fig, axes = new_figure(1, 2, size=(4.6, 3.6))
    untied = numbers["shared"]["control"]  # the control: untied weights
    for k, color, n in (("shared", "C0", numbers["shared"]), ("untied", "C1", untied)):
        for i, h in enumerate(n["histories"]):
            axes[0, 0].step(np.arange(len(h)), h, where="post", color=color, alpha=0.7, label=k if i == 0 else None)
    axes[0, 0].set(xlabel="epoch", ylabel="depth", title="depth during training (one line per seed)")
    integer_ticks(axes[0, 0], "both")
    # The legend names the depth panel's lines: beside that panel, not at the figure's edge.
    legend_outside(axes[0, 0])
    groups = {
        "shared before 1st cut": numbers["shared"]["accuracy_before_first_cut"]["values"],
        "shared after": numbers["shared"]["accuracy_after"]["values"],
        "untied after": untied["accuracy_after"]["values"],
        "scratch at pruned depth": numbers["scratch_at_pruned_depth"]["values"],
        "unpruned": numbers["unpruned_accuracy"]["values"],
    }
    _seeds_scatter(axes[0, 1], groups, "test accuracy (circles)")
    axes[0, 1].set_title("accuracy per seed", fontsize=10)
    return finish(fig, save)


def plot_images(numbers: dict, *, save=None):
    fig, axes = new_figure(1, 3, size=(3.8, 3.4))
    s = numbers["shared"]
    _band(axes[0, 0], s["residual_std_layers"], "shared: std")
    _band(axes[0, 0], numbers["untied"]["residual_std_layers"], "untied: std")
    _band(axes[0, 0], s["residual_mean_layers"], "shared: mean")
    axes[0, 0].set(xlabel="layer t", ylabel="residual mean / std over inputs", title="residuals over the trained depth")
    integer_ticks(axes[0, 0])
    long = s["long_residual_std"]
    _band(axes[0, 1], long, "shared, long run", x=np.arange(1, len(long["mean"]) + 1))
    axes[0, 1].set(xscale="log", xlabel="layer t + 1", ylabel="residual std over inputs", title="shared, run long")
    acc = numbers["accuracy"]
    _seeds_scatter(axes[0, 2], {k: v["values"] for k, v in acc.items()}, f"test accuracy ({numbers['data']})")
    axes[0, 2].axhline(0.8833, color="k", ls="--", lw=0.8, label="MLP 256-128-100 reference")
    axes[0, 2].set_title("test accuracy per seed")
    figure_legend(fig, axes, where="bottom")
    return finish(fig, save)


FIGURES = {
    "disentangling": plot_disentangling,
    "cooperation": plot_cooperation,
    "attractor": plot_attractor,
    "separability": plot_separability,
    "transient": plot_transient,
    "noise": plot_noise,
    "depth": plot_depth,
    "images": plot_images,
}
