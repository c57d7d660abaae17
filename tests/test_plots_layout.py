"""Every figure of resflow.plots reads at a glance: drawn with small synthetic inputs, each is
checked for text that overlaps other text or leaves the canvas, legends over plotted data,
legend entries that cannot be told apart or whose line is hidden, raw TeX outside $...$,
panels without a title, and warnings printed while drawing.

The checks measure the rendered figure (window extents from the Agg renderer), independently
of how the plot functions place things.
"""

import functools
import json
import warnings
from pathlib import Path

import jax.numpy as jnp
import matplotlib
import matplotlib.collections as mcoll
import matplotlib.patches as mpatches
import matplotlib.pyplot as plt
import matplotlib.text as mtext
import numpy as np
import pytest
from test_plots_sweep import ROWS, history_of

import resflow as rf
from resflow import plots
from resflow.analysis._class_spectra import ClassSpectra
from resflow.analysis._steady_state import SteadyState
from resflow.continuous import Convergence
from resflow.dynamics._fixed_points import FixedPoints
from resflow.plots import reproduce
from resflow.plots.fixed_points import plot_fixed_point_search
from resflow.plots.training import plot_residuals_by_class
from resflow.trunk._network import Affine, Network

TOL = 1.0  # pixels two boxes may share (anti-aliasing; abutting tick labels)


# --------------------------------------------------------------------------- the checks


def _drawn_texts(fig):
    """Draw `fig` once; the visible, non-empty Text artists the renderer actually drew."""
    drawn = {}
    original = mtext.Text.draw

    def record(self, renderer):
        original(self, renderer)
        if self.get_visible() and self.get_text().strip():
            drawn[id(self)] = self

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mtext.Text.draw = record
        try:
            fig.canvas.draw()
        finally:
            mtext.Text.draw = original
    return list(drawn.values()), [str(w.message) for w in caught]


def _corners(text, renderer):
    """The text's glyph box as a (4, 2) polygon in pixels: rotated texts are rotated
    rectangles centred on their (axis-aligned) window extent."""
    box = text.get_window_extent(renderer)
    angle = text.get_rotation() % 180
    if angle == 0:
        return np.array([[box.x0, box.y0], [box.x1, box.y0], [box.x1, box.y1], [box.x0, box.y1]])
    text.set_rotation(0)
    flat = text.get_window_extent(renderer)
    text.set_rotation(angle)
    w, h = flat.width / 2, flat.height / 2
    c, s = np.cos(np.radians(angle)), np.sin(np.radians(angle))
    local = np.array([[-w, -h], [w, -h], [w, h], [-w, h]])
    return local @ np.array([[c, s], [-s, c]]) + [(box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2]


def _overlap(p, q) -> bool:
    """Two convex polygons overlap by more than TOL pixels along every separating axis."""
    for poly in (p, q):
        for i in range(len(poly)):
            edge = poly[(i + 1) % len(poly)] - poly[i]
            axis = np.array([-edge[1], edge[0]]) / (np.hypot(*edge) or 1.0)
            a, b = p @ axis, q @ axis
            if min(a.max(), b.max()) - max(a.min(), b.min()) <= TOL:
                return False
    return True


def _colorbar_axes(fig):
    return {id(cb.ax) for ax in fig.axes for cb in [getattr(ax, "_colorbar", None)] if cb is not None}


def _data_points(ax):
    """Display coordinates of what `ax` plots: line vertices (densified along each segment)
    and scatter offsets, inside the axes box."""
    pts = []
    for line in ax.lines:
        if not line.get_visible() or len(line.get_xydata()) == 0:
            continue
        xy = line.get_transform().transform(np.asarray(line.get_xydata(), float))
        xy = xy[np.all(np.isfinite(xy), axis=1)]
        if len(xy) > 1:
            f = np.linspace(0, 1, 20)[:, None, None]
            xy = (xy[:-1] * (1 - f) + xy[1:] * f).reshape(-1, 2)
        pts.append(xy)
    for coll in ax.collections:
        if isinstance(coll, mcoll.PathCollection) and coll.get_visible():
            off = np.asarray(coll.get_offsets(), float)
            if off.size:
                pts.append(coll.get_offset_transform().transform(off))
    if not pts:
        return np.zeros((0, 2))
    pts = np.concatenate(pts)
    box = ax.get_window_extent()
    inside = (pts[:, 0] >= box.x0) & (pts[:, 0] <= box.x1) & (pts[:, 1] >= box.y0) & (pts[:, 1] <= box.y1)
    return pts[inside]


def _style(handle):
    """What tells a legend entry apart: colour, line style and marker (face colour for patches)."""
    rgba = matplotlib.colors.to_rgba
    if isinstance(handle, mcoll.Collection):
        return ("collection", tuple(np.round(handle.get_facecolor().ravel()[:4], 3)))
    if isinstance(handle, mpatches.Patch):
        return ("patch", tuple(np.round(rgba(handle.get_facecolor()), 3)), handle.get_hatch())
    face = handle.get_markerfacecolor()
    return (
        tuple(np.round(rgba(handle.get_color()), 3)),
        handle.get_linestyle(),
        handle.get_marker(),
        None if face is None or isinstance(face, str) and face == "none" else tuple(np.round(rgba(face), 3)),
    )


def layout_problems(fig) -> list[str]:
    """Everything that keeps `fig` from reading at a glance (empty list: none)."""
    texts, warned = _drawn_texts(fig)
    renderer = fig.canvas.get_renderer()
    problems = [f"warning while drawing: {w}" for w in warned]
    canvas = fig.bbox
    polys = [_corners(t, renderer) for t in texts]
    for t, p in zip(texts, polys, strict=True):
        lo, hi = p.min(0), p.max(0)
        if lo[0] < canvas.x0 - TOL or lo[1] < canvas.y0 - TOL or hi[0] > canvas.x1 + TOL or hi[1] > canvas.y1 + TOL:
            problems.append(f"text off the canvas: {t.get_text()!r}")
        raw = t.get_text().replace(r"\$", "")
        if "$" not in raw and any(tok in raw for tok in ("_{", "^{", "\\")):
            problems.append(f"raw TeX outside $...$: {t.get_text()!r}")
    for i in range(len(texts)):
        for j in range(i + 1, len(texts)):
            if _overlap(polys[i], polys[j]):
                problems.append(f"texts overlap: {texts[i].get_text()!r} / {texts[j].get_text()!r}")
    cbars = _colorbar_axes(fig)
    axes = [ax for ax in fig.axes if ax.get_visible() and id(ax) not in cbars]
    legends = list(fig.legends) + [ax.get_legend() for ax in axes if ax.get_legend() is not None]
    for leg in legends:
        box = leg.get_window_extent(renderer)
        for ax in axes:
            pts = _data_points(ax)
            covered = np.sum((pts[:, 0] > box.x0) & (pts[:, 0] < box.x1) & (pts[:, 1] > box.y0) & (pts[:, 1] < box.y1))
            if covered or (ax.images and box.overlaps(ax.get_window_extent(renderer))):
                problems.append(f"legend over {covered} data points of panel {ax.get_title()!r}")
        styles = {}
        for handle, label in zip(leg.legend_handles, [t.get_text() for t in leg.get_texts()], strict=True):
            if handle is not None:
                styles.setdefault(_style(handle), []).append(label)
        problems += [f"legend entries look alike: {labels}" for labels in styles.values() if len(labels) > 1]
    for ax in axes:
        labelled = [ln for ln in ax.lines if ln.get_visible() and not ln.get_label().startswith("_")]
        for k, a in enumerate(labelled):
            for b in labelled[k + 1 :]:
                xa, xb = (ln.get_transform().transform(np.asarray(ln.get_xydata(), float)) for ln in (a, b))
                same_place = xa.shape == xb.shape and np.nanmax(np.abs(xa - xb), initial=0) < 1.0
                same_look = (
                    matplotlib.colors.same_color(a.get_color(), b.get_color()) and a.get_marker() == b.get_marker()
                )
                if same_place and same_look:
                    problems.append(f"legend line hidden under another: {a.get_label()!r} / {b.get_label()!r}")
    # A panel is titled unless it is a twin sharing its box with a titled one (3D: the figure title).
    titled = {tuple(np.round(ax.get_position().bounds, 4)) for ax in axes if ax.get_title()}
    for ax in axes:
        if not ax.get_title() and tuple(np.round(ax.get_position().bounds, 4)) not in titled:
            has_data = ax.lines or ax.collections or ax.images or ax.patches
            if has_data:
                problems.append(f"panel without a title (x label {ax.get_xlabel()!r})")
    return problems


# --------------------------------------------------------------------------- the checks can fail


def test_checks_catch_overlaps_off_canvas_legends_and_raw_tex():
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1], [0, 1], label="a")
    ax.plot([0, 1], [0, 1], label="b", ls="--", color="C0")
    ax.text(0.5, 0.5, "one label")
    ax.text(0.5, 0.5, "another")
    ax.text(3.0, 0.5, "far right")
    ax.set_xlabel("x_{t}")
    ax.set_xticks([0, 0.02], ["a long tick label", "another long one"], rotation=20)
    ax.legend(loc="center")
    found = " | ".join(layout_problems(fig))
    for what in ("texts overlap: 'one label'", "off the canvas", "raw TeX", "legend over",
                 "hidden under", "panel without a title", "'a long tick label' / 'another long one'"):  # fmt: skip
        assert what in found, what
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(4, 3), layout="constrained")
    ax.plot([0, 1], [0, 1], label="$x_t$")
    ax.set_xticks([0, 0.5, 1], ["tick one", "tick two", "tick three"], rotation=45, ha="right")
    ax.set(title="clean", xlabel=r"$\sum_t r_t$")
    fig.legend(loc="outside right upper")
    assert layout_problems(fig) == []
    plt.close(fig)


# --------------------------------------------------------------------------- small inputs

RNG = np.random.default_rng(0)
RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results" / "reproduce" / "results.json"


def _lyapunov_running(T=15, k=64):
    """Running estimates of k exponents over T steps, settling on a spread from 0.07 to -0.07."""
    final = np.linspace(0.07, -0.07, k)
    return final + 0.02 * np.sin(np.arange(1, T + 1))[:, None] / np.arange(1, T + 1)[:, None]


def _steady(n=64, K=10, B=40):
    final = RNG.uniform(size=(B, n))
    return SteadyState(
        final, 10.0 ** RNG.uniform(-9, -3, B), RNG.uniform(size=B) < 0.7, np.full(K, B // K),
        RNG.uniform(size=(K, n)), RNG.uniform(0, 0.1, K), np.float64(0.4), final[0], np.float64(0.3),
        np.zeros(B, int),
    )  # fmt: skip


def _long_run(T=150, n=4, K=3):
    return rf.analysis.LongRun(
        RNG.uniform(size=(T, n)), RNG.uniform(0, 0.2, T), RNG.uniform(size=(T, K, n)),
        np.r_[np.nan, np.geomspace(1, 1e-9, T - 1)], np.r_[np.nan, np.geomspace(0.1, 1e-10, T - 1)],
        np.full(K, 4), np.zeros((12, n)), np.zeros((12, n)),
    )  # fmt: skip


def _search():
    mult = np.array([[0.5, 0.3, 0.9], [1.5, 0.2, 0.1]], complex)
    return FixedPoints(
        np.zeros((2, 3)), np.ones(2, bool), np.zeros(2), mult, np.array([0, 2], np.int32),
        start_counts=np.array([7, 1]), start_solution=np.array([0] * 7 + [1]),
        patterns=np.array([[0, 1, -1], [0, 0, 1]], np.int8), flow_eigenvalues=np.log(mult),
        saturation_margin=np.array([0.3, -0.2]),
    )  # fmt: skip


def _spectra():
    flow = np.array([[0.02, -0.5, -1.0], [-0.1, -0.2 + 0.3j, -0.2 - 0.3j]])
    return ClassSpectra(
        np.full((2, 3), 0.5), np.array([4, 5]), 1 + flow, flow, np.array([1, 0]), np.array([1, 0], bool)
    )


def _growth(T=15):
    lin = np.exp(np.linspace(0, 1, T + 1))[:, None, None] * RNG.uniform(0.8, 1.2, (T + 1, 3, 8))
    return rf.analysis.PerturbationGrowth(lin, lin * (1 + 1e-4))  # nonlinear ≈ linearised: same pixels


def _two_unit_run():
    trunk = rf.Trunk(jnp.array([[1.0, -2.0], [-2.0, 1.0]]), jnp.zeros(2))
    x0 = RNG.uniform(size=(10, 2))
    r = np.asarray(rf.residuals(trunk, rf.trajectory(trunk, x0, depth=8)))
    return trunk, r, (x0[:, 0] > x0[:, 1]).astype(int)


def _three_unit_run():
    W = jnp.array([[1.0, -2.0, 0.5], [-2.0, 1.0, 0.3], [0.2, -0.4, 1.0]])
    trunk = rf.Trunk(W, jnp.zeros(3))
    x0 = RNG.uniform(size=(10, 3))
    return trunk, np.asarray(rf.residuals(trunk, rf.trajectory(trunk, x0, depth=8))), np.arange(10) % 2


def _history():
    hist = [{"epoch": e, "depth": 6 if e < 4 else 5, "loss": 1 / e, "test_loss": 1.2 / e, "train_accuracy": 0.5 + e / 20,
             "test_accuracy": 0.45 + e / 20, "residual_change": 10.0**-e} for e in range(1, 8)]  # fmt: skip
    hist[2]["depth_after_cut"] = 5
    return hist


def _noise(levels=(0.0, 0.5, 1.0)):
    acc = RNG.uniform(0.5, 1, size=(len(levels), 3))
    return rf.analysis.NoiseRobustness(np.asarray(levels), acc, acc.mean(1), acc.std(1))


def _separability(T=8):
    return rf.analysis.Separability(
        RNG.uniform(size=T), RNG.uniform(size=T + 1), RNG.uniform(size=T), RNG.uniform(size=T + 1)
    )


def _residuals_by_class():
    data = rf.load_dataset("circles", n_train=64, n_test=32)
    trunk = rf.Trunk(jnp.array([[1.0, -2.0], [-2.0, 1.0]]), jnp.zeros(2))
    net = Network(None, trunk, Affine(jnp.zeros((2, 2)), jnp.zeros(2)), 5)
    return plot_residuals_by_class(net, data.x_test, data.y_test)


@functools.cache
def _claims():
    return json.loads(RESULTS.read_text())["claims"]


def _reproduce_figure(name):
    """The reproduction's figure of claim `name`, from the numbers it stored (docs/results/reproduce)."""
    return reproduce.FIGURES[name](_claims()[name]["numbers"])


FIGURES = {
    "convergence": lambda: plots.plot_convergence(
        Convergence(
            np.array([0.5, 0.25, 0.125, 0.0625]),
            np.array([2, 4, 8, 16]),
            np.array([1e-1, 5e-2, 2.5e-2, 1.3e-2]),
            1.0,
            0.0,
            1.0,
        )  # fmt: skip
    ),
    "eigenvalue_cloud": lambda: plots.plot_eigenvalue_cloud(
        RNG.normal(size=(3, 8)) + 1j * RNG.normal(size=(3, 8)), labels=np.array(["a", "b", "c"])
    ),
    "lyapunov_64": lambda: plots.plot_lyapunov_convergence(_lyapunov_running(), title="running Lyapunov exponents"),
    "lyapunov_2": lambda: plots.plot_lyapunov_convergence(
        _lyapunov_running(T=400, k=2), reference=np.array([0.07, -0.07])
    ),
    "lyapunov_close": lambda: plots.plot_lyapunov_convergence(np.full((30, 3), [0.01, 0.0099, -0.5])),
    "steady_state_64": lambda: plots.plot_steady_state(
        _steady(), depth=1000, note="fixed points not enumerated: width 64 > 12"
    ),
    "fixed_point_search": lambda: plot_fixed_point_search(_spectra(), _search()),
    "residual_statistics": lambda: plots.plot_residual_statistics(_long_run()),
    "class_residual_norms": lambda: plots.plot_class_residual_norms(_long_run()),
    "transient_accuracy": lambda: plots.plot_transient_accuracy(
        rf.analysis.TransientAccuracy(
            np.arange(6),
            np.linspace(0.3, 0.96, 6),
            np.linspace(0.5, 0.96, 6),
            np.float64(0.96),
            np.int64(4),
            np.int64(4),
        )  # fmt: skip
    ),
    "residual_trajectories": lambda: plots.plot_residual_trajectories(
        RNG.uniform(size=(15, 40, 64)), np.arange(40) % 10
    ),
    "interaction_64": lambda: plots.plot_interaction_matrix(
        RNG.normal(size=(4, 64, 64)), titles=["W"] + [f"class {c}: mean C" for c in range(3)], mark_pairs=False
    ),
    "interaction_marked": lambda: plots.plot_interaction_matrix(RNG.normal(size=(2, 6, 6)), titles=["W", "C"]),
    "attractor_2d": lambda: plots.plot_attractor_portrait(
        *(lambda t, r, y: (r, rf.residual_fixed_points(t), y))(*_two_unit_run())
    ),
    "attractor_3d": lambda: plots.plot_attractor_portrait(*(lambda t, r, y: (r, None, y))(*_three_unit_run())),
    "perturbation_growth": lambda: plots.plot_perturbation_growth({"trained trunk": _growth()}),
    "perturbation_two": lambda: plots.plot_perturbation_growth({"ResNet": _growth(), "MLP": np.ones((16, 4))}),
    "injection": lambda: plots.plot_injection_response(
        {
            "ResNet": rf.analysis.InjectionResponse(
                np.arange(6), np.ones((6, 4)) * 2, np.ones((6, 4)) * 2.5, np.ones((6, 4))
            )
        }
    ),
    "separability": lambda: plots.plot_separability(_separability()),
    "noise_robustness": lambda: plots.plot_noise_robustness({"ResNet": _noise(), "MLP": _noise()}, chance=0.1),
    "sweep_distribution": lambda: plots.plot_sweep_distribution(ROWS, "test_accuracy", options=("lr", "w_std")),
    "sweep_depths": lambda: plots.plot_sweep_depth_histories(
        [history_of(r) for r in ROWS], ROWS, options=("lr", "w_std")
    ),
    "training_curves": lambda: plots.plot_training_curves(_history()),
    "depth_history": lambda: plots.plot_depth_history(_history(), max_depth=6, tol=1e-3, warmup=2),
    "residuals_by_class": _residuals_by_class,
    "recurrence_accuracy": lambda: plots.plot_recurrence_accuracy(
        {
            label: {
                "errors": 10.0 ** RNG.uniform(-7, top, 20),
                "warned_each": RNG.uniform(size=20) < frac,
                "preactivation_errors": 10.0 ** RNG.uniform(-7, -5, 20),
            }
            for label, top, frac in [("w_std 1", -6, 0.0), ("w_std 3", -4, 0.1), ("w_std 4, b_std 2", -2, 0.6)]
        }
    ),
    "timings": lambda: plots.plot_timings(
        {
            "one digits run": {
                "compiled": {"median_s": 1.1, "cold_s": 11.4},
                "epoch_loop": {"median_s": 1.3, "cold_s": 4.2},
            },
            "8 digits seeds": {
                "vmapped": {"median_s": 11.8, "cold_s": 23.7},
                "sequential": {"median_s": 9.1, "cold_s": 9.6},
            },
        }
    ),
} | {f"reproduce_{name}": functools.partial(_reproduce_figure, name) for name in reproduce.FIGURES}


@pytest.mark.parametrize("name", list(FIGURES))
def test_figure_reads_at_a_glance(name):
    fig = FIGURES[name]()
    try:
        assert layout_problems(fig) == []
    finally:
        plt.close(fig)


# --------------------------------------------------------------------------- analyze.py's figures


class _Inputs:
    """What `resflow.experiments.analysis.fixed_points` reads of its inputs: a run's trunk, depth
    and test inputs (here a random width-16 trunk: too wide to enumerate 3^16 patterns)."""

    def __init__(self, trunk, x0, y, fig):
        self.run = type("Run", (), {"trunk": trunk, "depth": 6})()
        self.x0, self.y, self.num_classes, self.fig = x0, y, 3, fig


@pytest.mark.parametrize("shared", [True, False])
def test_analysis_fixed_points_figure_says_what_was_skipped(tmp_path, shared):
    from resflow.experiments.analysis import fixed_points

    rng = np.random.default_rng(1)
    W = rng.normal(0, 0.3, (16, 16) if shared else (6, 16, 16))
    trunk = rf.Trunk(jnp.asarray(W), jnp.zeros(W.shape[:-1]))
    x0 = jnp.asarray(rng.normal(size=(24, 16)))
    plt.close("all")
    out = fixed_points(_Inputs(trunk, x0, jnp.arange(24) % 3, tmp_path / "fp.png"), plots, steady_depth=40)
    assert (tmp_path / "fp.png").stat().st_size > 0
    fig = plt.gcf()
    words = " ".join([fig.get_suptitle(), fig.get_supxlabel()] + [ax.get_title() for ax in fig.axes])
    assert "residuals by class" != fig.get_suptitle()
    assert "not enumerated" in words or "needs a shared-weight" in words
    if shared:
        assert "width 16 > 12" in words and "after 40 layers" in words
        # The steady state is drawn: the class-mean end states, one row per class, all 16 units.
        image = fig.axes[0].images[0].get_array()
        np.testing.assert_allclose(image, np.asarray(
            rf.steady_state(trunk, x0, jnp.arange(24) % 3, depth=40, num_classes=3).class_means), atol=1e-12)  # fmt: skip
        assert out["steady_state"]["depth"] == 40
    else:
        assert "steady_state needs a shared-weight resnet trunk" in words
    assert layout_problems(fig) == []
    plt.close("all")
