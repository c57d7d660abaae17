"""Long runs streamed: per-layer statistics against a float64 numpy loop over the full trajectory."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import np_trajectory

import resflow as rf
from resflow.analysis._long_run import attractor_regime, long_run_memory, long_run_statistics


def np_statistics(W, b, h, x0, y, K, depth):
    """Reference: store x_0 … x_T, then reduce (float64, nothing streamed)."""
    traj = np_trajectory(W, b, x0, depth, h=h)
    Wt = W if W.ndim == 3 else np.broadcast_to(W, (depth,) + W.shape)
    bt = b if b.ndim == 2 else np.broadcast_to(b, (depth,) + b.shape)
    r = 0.5 * (1 + np.tanh((np.einsum("tij,tbj->tbi", Wt[:depth], traj[:-1]) + bt[:depth, None]) / 2))
    change = np.max(np.abs(np.diff(r, axis=0)), axis=-1)  # (T-1, B)
    cls = np.stack([r[:, y == c].mean(1) for c in range(K)], axis=1)
    return {
        "residual_mean": r.mean(1),
        "residual_std": r.std(1).mean(-1),
        "class_means": cls,
        "change_max": np.concatenate([[np.nan], change.max(-1)]),
        "change_mean": np.concatenate([[np.nan], change.mean(-1)]),
        "class_counts": np.bincount(y, minlength=K),
        "final_state": traj[-1],
        "final_residual": r[-1],
    }


def _close(run, ref):
    for name, want in ref.items():
        got = np.asarray(getattr(run, name), np.float64)
        assert got.shape == want.shape, name
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("chunk", [None, 4, 13, 50])
def test_shared_matches_full_trajectory(chunk):
    rng = np.random.default_rng(0)
    W, b = rng.normal(0, 1.5, (5, 5)), rng.normal(0, 0.5, 5)
    x0, y = rng.normal(size=(13, 5)), rng.integers(0, 3, 13)
    run = long_run_statistics(rf.Trunk(W, b, 0.7), x0, y, depth=30, batch_chunk=chunk)
    _close(run, np_statistics(W, b, 0.7, x0, y, 3, 30))


def test_untied_batch_axes_and_no_labels():
    rng = np.random.default_rng(1)
    W, b = rng.normal(0, 1.0, (6, 4, 4)), rng.normal(0, 0.5, (6, 4))
    x0 = rng.normal(size=(2, 5, 4))
    run = long_run_statistics(rf.Trunk(W, b), x0, depth=5, batch_chunk=3)
    ref = np_statistics(W, b, 1.0, x0.reshape(10, 4), np.zeros(10, int), 1, 5)
    ref["final_state"] = ref["final_state"].reshape(2, 5, 4)
    ref["final_residual"] = ref["final_residual"].reshape(2, 5, 4)
    _close(run, ref)


def test_empty_class_is_nan_and_float32_stays_accurate_over_1000_layers():
    # x_t grows like t·h; recomputing a_t = W x_t + b from it in float32 drifts by ~6e-6 here at
    # t = 1000 (the residuals then jitter by ~1e-5 per layer); stepping a_t does not.
    rng = np.random.default_rng(0)
    W, b = rng.normal(0, 1.5, (6, 6)), rng.normal(0, 0.5, 6)
    x0 = rng.normal(size=(50, 6))
    run = long_run_statistics(
        rf.Trunk(W, b).astype(jnp.float32),
        x0.astype(np.float32),
        np.zeros(50, int),
        depth=1000,
        num_classes=2,
        batch_chunk=16,
    )
    ref = np_statistics(W, b, 1.0, x0, np.zeros(50, int), 1, 1000)
    assert np.isnan(np.asarray(run.class_means)[:, 1]).all()
    np.testing.assert_allclose(run.residual_mean, ref["residual_mean"], atol=1e-6)
    np.testing.assert_allclose(run.final_state, ref["final_state"], rtol=1e-5)


def test_memory_does_not_grow_like_the_trajectory():
    trunk = rf.Trunk.init(jax.random.key(0), 8, dtype=jnp.float32)
    B, n = 64, 8
    small = long_run_memory(trunk, B, depth=10, num_classes=2, batch_chunk=16)
    big = long_run_memory(trunk, B, depth=1000, num_classes=2, batch_chunk=16)
    trajectory_growth = 990 * B * n * 4
    # the per-layer statistics grow like T·(K + 2)·n (a few copies), far below T·B·n at B = 64
    assert big["total"] - small["total"] < trajectory_growth / 4
    assert big["total"] - small["total"] > 990 * (2 + 2) * n * 4  # the statistics themselves are counted


def test_bad_inputs():
    trunk = rf.Trunk(np.eye(3), np.zeros(3))
    x0 = np.zeros((4, 3))
    with pytest.raises(ValueError, match="x0"):
        long_run_statistics(trunk, np.zeros((4, 2)), depth=3)
    with pytest.raises(ValueError, match="x0"):
        long_run_statistics(trunk, np.full((4, 3), np.nan), depth=3)
    with pytest.raises(ValueError, match="labels"):
        long_run_statistics(trunk, x0, np.zeros(3, int), depth=3)
    with pytest.raises(ValueError, match="labels"):
        long_run_statistics(trunk, x0, np.full(4, 5), depth=3, num_classes=2)
    with pytest.raises(ValueError, match="batch_chunk"):
        long_run_statistics(trunk, x0, depth=3, batch_chunk=0)
    with pytest.raises(ValueError, match="depth"):
        long_run_statistics(trunk, x0, depth=0)
    with pytest.raises(ValueError, match="resnet"):
        long_run_statistics(rf.Trunk(np.eye(3), np.zeros(3), model="mlp"), x0, depth=3)


# ---------------------------------------------------------------------------------------------
# The regime detector


def test_stable_corner_is_a_class_independent_attractor():
    # W = [[-2, -2], [1, 2]]: a_1 moves by h(-2 r_1 - 2 r_2) < 0 and a_2 by h(r_1 + 2 r_2) > 0
    # at every layer, so every input goes to the corner r* = (0, 1); its multipliers are
    # e^{h λ} with λ_1 = (W r*)_1 = -2, λ_2 = -(W r*)_2 = -2 (a stable corner).
    trunk = rf.Trunk(np.array([[-2.0, -2.0], [1.0, 2.0]]), np.zeros(2))
    x0 = np.random.default_rng(0).normal(size=(40, 2))
    labels = (x0[:, 0] > 0).astype(int)
    reg = attractor_regime(trunk, x0, labels, depth=200)
    assert reg.label == "attractor" and reg.class_independent
    assert reg.converged_fraction == 1.0 and reg.num_end_states == 1 and reg.dominant_fraction == 1.0
    assert reg.class_spread < 1e-12
    corner = rf.analysis.fixed_point_pattern(trunk, [0, 1])
    assert corner.attracting[0]
    np.testing.assert_allclose(reg.steady.dominant, corner.points[0], atol=1e-12)


def test_line_of_fixed_points_is_a_class_dependent_attractor():
    # W = c [[1, -1], [1, -1]], b = 0: a_0 = c (x_1 - x_2)(1, 1), so r_1 = r_2 and W r = 0: every
    # input sits at once on the line of fixed points r_1 = r_2, at r* = σ(c (x_1 - x_2))(1, 1).
    c = 3.0
    trunk = rf.Trunk(c * np.array([[1.0, -1.0], [1.0, -1.0]]), np.zeros(2))
    x0 = np.random.default_rng(1).normal(size=(30, 2))
    labels = (x0[:, 0] > x0[:, 1]).astype(int)
    reg = attractor_regime(trunk, x0, labels, depth=50, atol=1e-4)  # inputs lie >= 6.6e-4 apart
    r_end = np.repeat(1 / (1 + np.exp(-c * (x0[:, :1] - x0[:, 1:]))), 2, axis=1)
    means = np.stack([r_end[labels == k].mean(0) for k in (0, 1)])
    spread = np.sqrt(np.mean(np.sum((means - means.mean(0)) ** 2, -1)))
    assert reg.label == "attractor" and not reg.class_independent
    assert reg.converged_fraction == 1.0 and reg.num_end_states == 30  # no two inputs within atol
    np.testing.assert_allclose(reg.class_spread, spread, rtol=1e-12)
    np.testing.assert_allclose(reg.class_dependence, spread / np.linalg.norm(means, axis=1).mean(), rtol=1e-12)


def test_rotation_keeps_moving_non_attractor():
    # Antisymmetric W (W^T = -W) with null vector (1, 1, 1): the flow da/dt = W σ(a) conserves
    # V(a) = Σ_i softplus(a_i) - a_i / 2, since dV/dt = (σ(a) - 1/2)^T W σ(a) = 0 (both
    # quadratic forms of an antisymmetric W vanish; 1^T W = 0). V is convex with its minimum on
    # the line a ∝ (1, 1, 1) of fixed points, so residuals circle that line for ever. A small
    # step h keeps the Euler map close to the flow over 1000 layers.
    A = np.array([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]])
    W, h, depth = 2 * A, 0.05, 1000
    x0 = 0.1 * np.random.default_rng(2).normal(size=(20, 3))
    labels = (x0[:, 0] > 0).astype(int)
    reg = attractor_regime(rf.Trunk(W, np.zeros(3), h), x0, labels, depth=depth)
    # reference: the float64 loop; the last 100 changes stay far above tol (no slow decay)
    a = x0 @ W.T
    changes, r_prev = [], None
    for _ in range(depth):
        r = 1 / (1 + np.exp(-a))
        if r_prev is not None:
            changes.append(np.abs(r - r_prev).max(-1))
        r_prev, a = r, a + h * r @ W.T
    changes = np.array(changes)
    assert changes[-100:].min() > 10 * 1e-5
    np.testing.assert_allclose(reg.steady.change, changes[-1], rtol=1e-9)
    assert reg.label == "non-attractor" and not reg.class_independent
    assert reg.converged_fraction == 0.0 and reg.num_end_states == 20


def _run_past(W, h, x0, depth, extra):
    """Float64 numpy reference (b = 0): r_{T−2}, r_{T−1}, and each input's largest move
    max_{T ≤ t < T + extra} ‖r_t − r_{T−1}‖_∞ over `extra` layers past the end."""
    a, moved = x0 @ W.T, np.zeros(len(x0))
    with np.errstate(over="ignore"):  # exp(-a) = inf for a saturated σ(a) = 0
        for t in range(depth + extra):
            r = 1 / (1 + np.exp(-a))
            if t == depth - 2:
                r_prev = r
            elif t == depth - 1:
                r_end = r
            elif t >= depth:
                moved = np.maximum(moved, np.abs(r - r_end).max(-1))
            a = a + h * r @ W.T
    return r_prev, r_end, moved


def test_saturated_saddles_are_not_converged():
    # W = [[1, -2, 1], [1, 1, -2], [-2, 1, 1]], b = 0, h = 0.5: a heteroclinic cycle between the six
    # saddle corners with one 1 or two 1s, the time spent at each doubling. At each corner one unit
    # has s_i (W r*)_i = -1 < 0: it sits at 0 or 1 to machine precision while its pre-activation
    # moves back by h = 0.5 per layer. After 3000 layers r has stopped moving (last change <= tol for
    # nearly every input), yet every input leaves its corner later.
    W, h, depth, tol = np.array([[1.0, -2.0, 1.0], [1.0, 1.0, -2.0], [-2.0, 1.0, 1.0]]), 0.5, 3000, 1e-5
    x0 = np.random.default_rng(0).normal(size=(30, 3))
    reg = attractor_regime(rf.Trunk(W, np.zeros(3), h), x0, depth=depth, tol=tol)
    # float64 numpy reference, run 20 000 layers past the end
    r_prev, r_end, moved = _run_past(W, h, x0, depth, 20_000)
    np.testing.assert_allclose(reg.steady.final, r_end, atol=1e-12)
    np.testing.assert_allclose(reg.steady.change, np.abs(r_end - r_prev).max(-1), atol=1e-12)
    assert np.mean(np.abs(r_end - r_prev).max(-1) <= tol) >= 0.95  # r alone looks converged
    assert moved.min() > 0.5  # ... but every input moves on
    assert reg.label == "non-attractor" and not reg.class_independent
    assert reg.converged_fraction == 0.0 and not np.asarray(reg.steady.converged).any()
    # at a corner c the escaping units are those with s_i (W c)_i < 0 (s_i = +1 at 1, -1 at 0):
    # exactly one at each of the six saddle corners
    corner = np.round(r_end)
    assert np.abs(r_end - corner).max() < 1e-6
    escaping = np.sum((2 * corner - 1) * (corner @ W.T) < 0, axis=-1)
    np.testing.assert_array_equal(escaping, 1)
    np.testing.assert_array_equal(reg.steady.escaping, escaping)


def test_random_trunk_converged_inputs_stay_and_flagged_ones_leave():
    # A random n = 64 trunk (W ~ N(0, 9/n), b = 0, h = 1) after 10 000 layers: r has stopped moving
    # for 95 % of the inputs (the change test called it an attractor network), but most of them sit
    # at saddles with saturated units drifting back. Float64 reference run 20 000 layers further:
    # the inputs called converged do not move, every input flagged only in a-space moves by > 0.5.
    rng = np.random.default_rng(4)
    W, x0, depth, tol = rng.normal(0.0, 3.0 / 8.0, (64, 64)), rng.normal(size=(40, 64)), 10_000, 1e-5
    reg = attractor_regime(rf.Trunk(W, np.zeros(64)), x0, depth=depth, tol=tol)
    r_prev, r_end, moved = _run_past(W, 1.0, x0, depth, 20_000)
    np.testing.assert_allclose(reg.steady.final, r_end, atol=1e-9)
    still = np.abs(r_end - r_prev).max(-1) <= tol
    assert still.mean() >= 0.95
    converged = np.asarray(reg.steady.converged)
    assert 0 < converged.sum() and moved[converged].max() < 1e-9
    assert (still & ~converged).any() and moved[still & ~converged].min() > 0.5
    assert reg.label == "non-attractor" and reg.converged_fraction == converged.mean() < 0.5


def test_jit_and_gradient():
    rng = np.random.default_rng(3)
    trunk = rf.Trunk(rng.normal(0, 1.0, (3, 3)), rng.normal(0, 0.5, 3))
    x0, y = rng.normal(size=(7, 3)), np.arange(7) % 2

    def loss(x):
        run = long_run_statistics(trunk, x, y, depth=12, num_classes=2, batch_chunk=3)
        return run.residual_std.sum() + run.class_means[-1, 1].sum()

    g = jax.jit(jax.grad(loss))(x0)  # traced x0: the value checks step aside, the shape checks run
    d = rng.normal(size=x0.shape)
    eps = 1e-6
    fd = (loss(x0 + eps * d) - loss(x0 - eps * d)) / (2 * eps)
    np.testing.assert_allclose(np.sum(g * d), fd, rtol=1e-6)
