"""The depth rule (the validated host call and the DepthRule value) and drift folding against numpy references on constructed residuals."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import np_act, np_trajectory
from hypothesis import given, settings
from hypothesis import strategies as st

import resflow as rf
from resflow.training._depth import DepthRule, Plateau


def depth_rule_jax(changes, depth, *, tol, min_depth, multi):
    """The paper's rule alone, as the training engine applies it."""
    return DepthRule(tol, min_depth=min_depth, multi_cut=multi).cut(changes, depth)


def np_changes(r):
    """d_k = mean_b ||r_k,b - r_{k-1},b||_1 / N, a plain loop."""
    T, B, N = r.shape
    return np.array([np.mean([np.abs(r[k, b] - r[k - 1, b]).sum() / N for b in range(B)]) for k in range(1, T)])


def converging_residuals(T=8, B=5, N=4, settle=3, seed=0):
    """Residuals that move for `settle` layers, then stay fixed (converged)."""
    rng = np.random.default_rng(seed)
    r = rng.uniform(0.1, 0.9, (T, B, N))
    r[settle:] = r[settle - 1]
    return r


@pytest.mark.parametrize("shape", [(6, 3, 2), (4, 7, 5)])
def test_residual_changes_match_numpy(shape):
    r = np.random.default_rng(1).uniform(size=shape)
    np.testing.assert_allclose(rf.training.residual_changes(jnp.asarray(r)), np_changes(r), rtol=1e-12)
    w = np.array([1.0, 0.0] + [1.0] * (shape[1] - 2))
    keep = w > 0
    np.testing.assert_allclose(
        rf.training.residual_changes(jnp.asarray(r), weights=w), np_changes(r[:, keep]), rtol=1e-12
    )


def test_rule_prunes_converged_and_keeps_moving():
    r = converging_residuals(T=8, settle=3)
    changes = np_changes(r)
    # One layer per call (the paper), as many as allowed with multi: layers 3..7 repeat layer 2.
    assert rf.training.depth_rule(changes, 8) == 7
    assert rf.training.depth_rule(changes, 8, multi=True) == 3
    assert rf.training.depth_rule(changes, 8, multi=True, min_depth=5) == 5
    # A larger tolerance than every change prunes down to depth 1; a tiny one keeps all.
    moving = np.random.default_rng(2).uniform(0.1, 0.9, (8, 5, 4))
    assert rf.training.depth_rule(np_changes(moving), 8, multi=True) == 8
    assert rf.training.depth_rule(np_changes(moving), 8, tol=1e3, multi=True) == 1
    # A candidate deeper than the current depth is ignored: depth 3 checks only d_2.
    assert rf.training.depth_rule(changes, 3) == 3


def test_rule_bad_values():
    with pytest.raises(ValueError, match="changes"):
        rf.training.depth_rule(np.zeros(2), 8)
    with pytest.raises(ValueError, match="tol"):
        rf.training.depth_rule(np.zeros(7), 8, tol=0.0)
    with pytest.raises(ValueError, match="at least|>= 2"):
        rf.training.residual_changes(jnp.zeros((1, 3, 2)))


def test_rule_on_a_real_trunk():
    """Residuals of a trunk whose sigmoid saturates converge; an oscillating one's do not."""
    n, T = 3, 12
    x0 = jnp.asarray(np.random.default_rng(0).normal(size=(20, n)))  # numpy: no random program to build
    calm = rf.Trunk(jnp.zeros((n, n)) + 0.01, jnp.array([6.0, -6.0, 6.0]))
    traj = rf.trajectory(calm, x0, depth=T)
    ref = np_trajectory(calm.W, calm.b, x0, T)
    r = np_act("sigmoid", ref[:-1] @ np.asarray(calm.W).T + np.asarray(calm.b))
    np.testing.assert_allclose(rf.training.residual_changes(rf.residuals(calm, traj)), np_changes(r), atol=1e-12)
    assert rf.training.depth_rule(np_changes(r), T, multi=True) == 1
    # a_{t+1} = a_t − 3 tanh(a_t): the fixed point 0 has multiplier −2, residuals flip sign forever.
    wild = rf.Trunk(-3.0 * jnp.eye(n), jnp.zeros(n), activation="tanh")
    traj = rf.trajectory(wild, x0, depth=T)
    changes = rf.training.residual_changes(rf.residuals(wild, traj))
    assert changes[-4:].min() > 0.5
    assert rf.training.depth_rule(np.asarray(changes), T, multi=True) == T


def np_rule(changes, depth, tol, min_depth, multi):
    """The rule as the paper states it: a plain loop removing the last layer while it is converged."""
    d = depth
    while d > max(min_depth, 1) and changes[d - 2] < tol:
        d -= 1
        if not multi:
            break
    return d


# Each example builds the rule's programs anew (its static options and the length of `changes`):
# 12 examples, not 30.
@settings(max_examples=12, deadline=None)
@given(
    depth=st.integers(1, 12),
    extra=st.integers(0, 3),
    min_depth=st.integers(1, 14),
    multi=st.booleans(),
    seed=st.integers(0, 2**16),
    tol=st.floats(0.05, 0.95),
)
def test_depth_rule_jax_matches_the_loop(depth, extra, min_depth, multi, seed, tol):
    changes = np.random.default_rng(seed).uniform(size=max(depth - 1 + extra, 0))
    changes[np.random.default_rng(seed + 1).uniform(size=changes.shape) < 0.5] = 0.0  # long converged runs
    want = np_rule(changes, depth, tol, min_depth, multi)
    assert rf.training.depth_rule(changes, depth, tol=tol, min_depth=min_depth, multi=multi) == want
    got = depth_rule_jax(jnp.asarray(changes), depth, tol=tol, min_depth=min_depth, multi=multi)
    assert jnp.issubdtype(got.dtype, jnp.integer) and int(got) == want


def test_depth_rule_jax_under_jit_and_vmap():
    r = converging_residuals(T=8, settle=3)
    changes = jnp.asarray(np_changes(r))
    rule = jax.jit(lambda c, d, tol: depth_rule_jax(c, d, tol=tol, min_depth=2, multi=True))
    assert int(rule(changes, 8, 0.01)) == 3
    depths = jax.vmap(lambda d: depth_rule_jax(changes, d, tol=0.01, min_depth=1, multi=False))(jnp.arange(1, 9))
    np.testing.assert_array_equal(depths, [np_rule(np.asarray(changes), d, 0.01, 1, False) for d in range(1, 9)])
    # NaN (diverged training) never cuts in the jittable form; depth_rule raises instead.
    assert int(depth_rule_jax(changes.at[6].set(jnp.nan), 8, tol=0.01, min_depth=1, multi=True)) == 8


@pytest.mark.parametrize("h", [1.0, 0.5])
def test_fold_drift_keeps_logits(h):
    """Cutting converged layers and folding their drift h·V·r* keeps the logits; without it they jump."""
    n, T, cut, classes = 4, 15, 6, 3
    rng = np.random.default_rng(0)
    x0 = rng.normal(size=(30, n))
    W = 0.05 * rng.normal(size=(n, n))
    b = np.array([5.0, -5.0, 4.0, -4.0])  # residuals sit near σ(±5): converged from the start
    kernel = np.arange(n * classes, dtype=float).reshape(n, classes) / 10 - 0.5
    bias = np.array([0.1, -0.2, 0.3])
    ref = np_trajectory(W, b, x0, T, h=h)  # independent float64 reference
    logits_full = ref[T] @ kernel + bias
    logits_cut = ref[cut] @ kernel + bias
    new_bias = rf.training.fold_drift(jnp.asarray(bias), jnp.asarray(kernel), ref[T], ref[cut])
    logits_fold = ref[cut] @ kernel + np.asarray(new_bias)
    # The folded shift is h V Σ_{t >= cut} mean_samples r_t (the removed layers' drift), ≈ h V r* per layer.
    r = np_act("sigmoid", ref[:-1] @ W.T + b)
    np.testing.assert_allclose(np.asarray(new_bias) - bias, h * r[cut:].sum(0).mean(0) @ kernel, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(new_bias) - bias, h * (T - cut) * np_act("sigmoid", b) @ kernel, atol=0.2)
    assert np.abs(logits_fold - logits_full).max() < 0.05 * np.abs(logits_cut - logits_full).max()
    assert np.abs(logits_fold - logits_full).max() < 0.05


def test_changes_and_rule_reject_degenerate_input():
    r = jnp.asarray(np.random.default_rng(0).uniform(size=(4, 3, 2)))
    for w in ([0.0, 0.0, 0.0], [1.0, -1.0, 1.0]):
        with pytest.raises(ValueError, match="weights"):
            rf.training.residual_changes(r, weights=jnp.asarray(w))
    for bad in (np.nan, np.inf):
        changes = np.array([0.5, bad, 0.5])
        with pytest.raises(ValueError, match="changes"):
            rf.training.depth_rule(changes, 4)


def test_fold_drift_bad_input():
    bias, kernel, x = jnp.zeros(3), jnp.ones((4, 3)), jnp.ones((5, 4))
    with pytest.raises(ValueError, match="x_new"):
        rf.training.fold_drift(bias, kernel, x, x[:3])
    with pytest.raises(ValueError, match="kernel"):
        rf.training.fold_drift(bias, jnp.ones((4, 2)), x, x)
    with pytest.raises(ValueError, match="x_old"):
        rf.training.fold_drift(bias, kernel, x.at[0, 0].set(jnp.nan), x)
    with pytest.raises(ValueError, match="bias"):
        rf.training.fold_drift(jnp.array([0.0, jnp.inf, 0.0]), kernel, x, x)


def test_one_value_read_per_call(monkeypatch):
    """residual_changes and fold_drift read values back once (`_checks.read_bool`), never under jit."""
    import resflow._checks as checks

    r = jnp.asarray(converging_residuals())
    w = jnp.ones(r.shape[1])
    bias, x = jnp.zeros(3), jnp.ones((5, 4))
    reads = []
    monkeypatch.setattr(checks, "read_bool", lambda v: reads.append(1) or bool(v))
    calls = {
        "residual_changes": lambda r, w, x: rf.training.residual_changes(r, weights=w),
        "fold_drift": lambda r, w, x: rf.training.fold_drift(bias + w[0], x.T[:, :3], x, x),
    }
    for name, f in calls.items():
        reads.clear()
        f(r, w, x)
        assert len(reads) == 1, name
        reads.clear()
        jax.jit(f)(r, w, x)
        assert len(reads) == 0, name


def py_policy(losses, changes, depth, *, warmup, patience, tol, min_depth=1, multi=False):
    """Reference policy: plain Python over the whole loss list."""
    if depth <= 1 or len(losses) <= warmup:
        return depth
    if patience and (len(losses) <= patience or min(losses[-patience:]) <= 0.99 * min(losses[:-patience])):
        return depth
    floor = max(min_depth, 1)
    while depth > floor and changes[depth - 2] < tol:
        depth -= 1
        if not multi:
            break
    return depth


def policy(losses, changes, depth, *, warmup=2, patience=0, tol=0.1, min_depth=1, multi=False):
    """The jnp policy, its plateau carry built by pushing the losses one by one (as the loop does)."""
    plateau = Plateau.start([], patience, jnp.float64)
    for loss in losses:
        plateau = plateau.push(loss)
    # The host rebuild (resume) gives the same carry as the pushes.
    rebuilt = Plateau.start(losses, patience, jnp.float64)
    np.testing.assert_array_equal(rebuilt.window, plateau.window)
    assert float(rebuilt.best) == float(plateau.best)
    rule = DepthRule(tol, min_depth=min_depth, warmup=warmup, plateau=patience, multi_cut=multi)
    return int(_apply_rule(rule, changes, depth, len(losses), plateau))


# The rule is an argument (a pytree: its static options are part of the program's key), so rules
# with equal options share one compiled program; jax.jit(rule) compiled each new rule object anew.
_apply_rule = jax.jit(lambda rule, *args: rule(*args))


def test_depth_policy_on_hand_made_inputs():
    # d_k = changes[k-1]; at depth 6 the rule looks at d_5 = changes[4], then d_4, ...
    changes = jnp.array([0.5, 0.5, 0.05, 0.05, 0.05])
    assert policy([1.0, 0.9, 0.8], changes, 6) == 5  # one layer per epoch
    assert policy([1.0, 0.9], changes, 6) == 6  # warm-up: no cut during the first 2 epochs
    assert policy([1.0, 0.9, 0.8], changes, 6, multi=True) == 3  # every converged last layer at once
    assert policy([1.0, 0.9, 0.8], changes, 6, multi=True, min_depth=4) == 4
    assert policy([1.0, 0.9, 0.8], jnp.full(5, 0.5), 6) == 6  # not converged
    assert policy([1.0, 0.9, 0.8], changes, 1) == 1
    # plateau: the best of the last 2 epochs must be no better than 0.99 x the best before
    assert policy([1.0, 0.9, 0.5, 0.4], changes, 6, patience=2) == 6  # still improving
    assert policy([1.0, 0.5, 0.5, 0.499], changes, 6, patience=2) == 5  # stalled
    assert policy([1.0, 0.5], changes, 6, patience=2, warmup=0) == 6  # too few epochs to tell
    assert policy([1.0, 0.5, 0.6], changes, 6, patience=2, warmup=0) == 6  # 0.5 is in the window


# Each example compiles the rule for its own static options (warm-up, patience, multi): 12, not 30.
@settings(max_examples=12, deadline=None)
@given(
    losses=st.lists(st.floats(0.1, 2.0), min_size=0, max_size=8),
    patience=st.integers(0, 3),
    warmup=st.integers(0, 3),
    depth=st.integers(1, 6),
    multi=st.booleans(),
    seed=st.integers(0, 100),
)
def test_depth_policy_matches_the_reference(losses, patience, warmup, depth, multi, seed):
    changes = np.random.default_rng(seed).uniform(0.0, 0.2, 5)
    want = py_policy(losses, changes, depth, warmup=warmup, patience=patience, tol=0.1, multi=multi)
    got = policy(losses, jnp.asarray(changes), depth, warmup=warmup, patience=patience, tol=0.1, multi=multi)
    assert got == want
