"""Residuals, pre-activations and their recurrences against float64 numpy loops.

With a_t = W x_t + b and r_t = σ(a_t), a shared-weight resnet obeys r_{t+1} = σ(σ⁻¹(r_t) + h W r_t)
and x_T = x_0 + h Σ_{t<T} r_t (docs/model.md); the references below compute both literally.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import np_act, np_trajectory
from hypothesis import given, settings
from hypothesis import strategies as st

import resflow as rf


def net(seed, n, dtype, batch=(6,), w_std=2.0, b_std=0.5, h=1.0, activation="sigmoid"):
    kp, kx = jax.random.split(jax.random.key(seed))
    t = rf.Trunk.init(kp, n, w_std=w_std, b_std=b_std, h=h, activation=activation, dtype=dtype)
    return t, jax.random.normal(kx, batch + (n,), dtype)


def np_residual_loop(W, r0, depth, h):
    """Reference: the paper's recurrence literally, with logits, in float64 numpy."""
    W = np.asarray(W, np.float64)
    r = np.asarray(r0, np.float64)
    out = [r]
    with np.errstate(divide="ignore"):  # a residual that saturates to 1.0 has logit +inf, σ(inf) = 1
        for _ in range(depth - 1):
            r = 1 / (1 + np.exp(-(np.log(r / (1 - r)) + h * r @ W.T)))
            out.append(r)
    return np.stack(out)


@pytest.mark.parametrize("n", [1, 3, 10])
@pytest.mark.parametrize("h", [1.0, 0.3])
def test_recurrence_reproduces_forward_residuals_float64(n, h):
    depth = 15
    t, x0 = net(n, n, jnp.float64, h=h)
    traj = rf.trajectory(t, x0, depth=depth)
    r = rf.residuals(t, traj)
    # Forward residuals against an independent numpy computation of σ(W x_t + b).
    ref_traj = np_trajectory(t.W, t.b, x0, depth, h=h)
    np.testing.assert_allclose(
        np.asarray(r), np_act("sigmoid", ref_traj[:-1] @ np.asarray(t.W).T + np.asarray(t.b)), rtol=1e-12
    )
    rr = rf.residual_recurrence(t, r[0], depth=depth)
    np.testing.assert_allclose(np.asarray(rr), np.asarray(r), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(np.asarray(rr), np_residual_loop(t.W, r[0], depth, h), rtol=1e-11, atol=1e-14)
    xT = rf.reconstruct_output(t, x0, rr)
    np.testing.assert_allclose(np.asarray(xT), ref_traj[-1], rtol=1e-12, atol=1e-12)


def test_recurrence_float32_tolerance():
    t, x0 = net(3, 8, jnp.float32)
    traj = rf.trajectory(t, x0, depth=15)
    r = rf.residuals(t, traj)
    rr = rf.residual_recurrence(t, r[0], depth=15)
    assert rr.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(rr), np.asarray(r), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(rf.reconstruct_output(t, x0, rr)), np.asarray(traj[-1]), rtol=1e-5, atol=1e-5)


def test_saturated_float32_recurrence_warns_and_preactivation_form_is_accurate():
    # w_std 4, b_std 2: r_0 comes within 1.2e-7 of 1 (a_0 ≈ 16), so logit(r_0) is off by up to ~0.5.
    t, x0 = net(11, 8, jnp.float32, w_std=4.0, b_std=2.0)
    traj = rf.trajectory(t, x0, depth=15)
    r = rf.residuals(t, traj)
    with pytest.warns(rf.trunk.ConditioningWarning, match="preactivation_recurrence"):
        rr = rf.residual_recurrence(t, r[0], depth=15)
    assert np.abs(np.asarray(rr) - np.asarray(r)).max() > 1e-2  # why it warns: the error is real
    # The pre-activation form from a_0 = W x_0 + b takes no logit: float32 within 2e-5 of float64.
    ref_traj = np_trajectory(t.W, t.b, x0, 15)
    ref_r = np_act("sigmoid", ref_traj[:-1] @ np.asarray(t.W, np.float64).T + np.asarray(t.b, np.float64))
    a = rf.trunk.preactivation_recurrence(t, rf.preactivations(t, traj)[0], depth=15)
    assert a.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(jax.nn.sigmoid(a), np.float64), ref_r, rtol=0, atol=2e-5)
    # Under jit nothing is read back, so nothing warns.
    with warnings.catch_warnings():
        warnings.simplefilter("error", rf.trunk.ConditioningWarning)
        jax.jit(lambda r0: rf.residual_recurrence(t, r0, depth=15))(r[0])


def test_benign_float64_recurrence_does_not_warn():
    t, x0 = net(2, 8, jnp.float64, w_std=1.0)
    r = rf.residuals(t, rf.trajectory(t, x0, depth=15))
    with warnings.catch_warnings():
        warnings.simplefilter("error", rf.trunk.ConditioningWarning)
        rr = rf.residual_recurrence(t, r[0], depth=15)
    np.testing.assert_allclose(np.asarray(rr), np.asarray(r), rtol=1e-12, atol=1e-14)


def test_running_integral_is_the_trajectory():
    t, x0 = net(4, 3, jnp.float64, h=0.4)  # the width and depth of the tests above: shared programs
    traj = rf.trajectory(t, x0, depth=15)
    S = rf.running_integral(t, rf.residuals(t, traj), x0=x0)
    np.testing.assert_allclose(np.asarray(S), np.asarray(traj), rtol=1e-12, atol=1e-12)
    S0 = rf.running_integral(t, rf.residuals(t, traj))
    np.testing.assert_allclose(np.asarray(S0[0]), 0.0)
    np.testing.assert_allclose(np.asarray(S0 + x0), np.asarray(traj), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_preactivation_recurrence_any_activation(activation):
    t, x0 = net(5, 3, jnp.float64, h=0.5, activation=activation)
    traj = rf.trajectory(t, x0, depth=15)
    a = rf.preactivations(t, traj)
    ref = np_trajectory(t.W, t.b, x0, 15, activation=activation, h=0.5)[:-1] @ np.asarray(t.W).T + np.asarray(t.b)
    np.testing.assert_allclose(np.asarray(a), ref, rtol=1e-12, atol=1e-12)
    aa = rf.trunk.preactivation_recurrence(t, a[0], depth=15)
    np.testing.assert_allclose(np.asarray(aa), ref, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(np.asarray(rf.residuals(t, traj)), np_act(activation, ref), rtol=1e-12, atol=1e-12)


def test_untied_residuals_reconstruct():
    kp, kx = jax.random.split(jax.random.key(7))
    t = rf.Trunk.init(kp, 4, shared=False, depth=6, w_std=2.0, b_std=0.3, h=0.8, dtype=jnp.float64)
    x0 = jax.random.normal(kx, (2, 3, 4), jnp.float64)
    traj = rf.trajectory(t, x0)
    r = rf.residuals(t, traj)
    ref = np_trajectory(t.W, t.b, x0, 6, h=0.8)
    refr = np.stack([np_act("sigmoid", ref[s] @ np.asarray(t.W[s]).T + np.asarray(t.b[s])) for s in range(6)])
    np.testing.assert_allclose(np.asarray(r), refr, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(rf.reconstruct_output(t, x0, r)), ref[-1], rtol=1e-12)


def test_saturated_residuals_are_rejected_not_clipped():
    t, _ = net(0, 3, jnp.float64)
    # float32 rounds σ(20) to exactly 1: the logit does not exist.
    r_sat = jax.nn.sigmoid(jnp.array([20.0, 0.0, -3.0], jnp.float32))
    assert float(r_sat[0]) == 1.0
    with pytest.raises(ValueError, match=r"r0 must lie strictly inside \(0, 1\)"):
        rf.residual_recurrence(t, r_sat.astype(jnp.float64), depth=3)
    with pytest.raises(ValueError, match=r"strictly inside"):
        rf.trunk.logit(jnp.array([0.0, 0.5]))
    with pytest.raises(ValueError, match=r"strictly inside"):
        rf.trunk.logit(jnp.array([1.5]))
    with pytest.raises(ValueError, match=r"finite"):
        rf.trunk.logit(jnp.array([jnp.nan]))
    np.testing.assert_allclose(rf.trunk.logit(jnp.array([0.25])), np.log(1 / 3), rtol=1e-14)
    # The documented way around: step in pre-activation space from a_0, which stays exact.
    a = rf.trunk.preactivation_recurrence(t, jnp.array([20.0, 0.0, -3.0]), depth=4)
    assert np.all(np.isfinite(np.asarray(a)))


def test_recurrence_bad_inputs():
    t, x0 = net(0, 3, jnp.float64)
    r0 = jnp.full((3,), 0.5)
    untied = rf.Trunk.init(jax.random.key(0), 3, shared=False, depth=2, dtype=jnp.float64)
    with pytest.raises(ValueError, match="shared weights"):
        rf.residual_recurrence(untied, r0, depth=3)
    with pytest.raises(ValueError, match="shared weights"):
        rf.trunk.preactivation_recurrence(untied, r0, depth=3)
    with pytest.raises(ValueError, match="activation 'sigmoid'"):
        rf.residual_recurrence(rf.Trunk(t.W, t.b, activation="tanh"), r0, depth=3)
    with pytest.raises(ValueError, match="resnet"):
        rf.trunk.preactivation_recurrence(rf.Trunk(t.W, t.b, model="mlp"), r0, depth=3)
    with pytest.raises(ValueError, match="r0 must have trailing dimension 3"):
        rf.residual_recurrence(t, jnp.full((4,), 0.5), depth=3)
    with pytest.raises(TypeError, match="r0 has dtype float32"):
        rf.residual_recurrence(t, r0.astype(jnp.float32), depth=3)
    with pytest.raises(ValueError, match="depth must be >= 1"):
        rf.residual_recurrence(t, r0, depth=0)
    with pytest.raises(ValueError, match="r0 .*finite"):
        rf.residual_recurrence(t, jnp.array([0.5, jnp.nan, 0.5]), depth=3)
    with pytest.raises(ValueError, match="a0 .*finite"):
        rf.trunk.preactivation_recurrence(t, jnp.array([0.5, jnp.inf, 0.5]), depth=3)
    with pytest.raises(TypeError, match="resflow.Trunk"):
        rf.residual_recurrence((t.W, t.b), r0, depth=3)
    with pytest.raises(ValueError, match="trajectory must hold at least 2"):
        rf.residuals(t, jnp.zeros((1, 3)))
    with pytest.raises(ValueError, match="trajectory must have trailing dimension 3"):
        rf.residuals(t, jnp.zeros((4, 2)))
    with pytest.raises(ValueError, match="trajectory .*finite"):
        rf.preactivations(t, jnp.zeros((4, 3)).at[1, 1].set(jnp.nan))
    with pytest.raises(ValueError, match="untied trunk has 2 layers"):
        rf.residuals(untied, jnp.zeros((5, 3)))
    with pytest.raises(ValueError, match="x0 must have shape"):
        rf.running_integral(t, jnp.zeros((4, 3)), x0=jnp.zeros((2, 3)))
    with pytest.raises(ValueError, match="x0 .*finite"):
        rf.reconstruct_output(t, jnp.array([0.0, jnp.nan, 0.0]), jnp.zeros((4, 3)))
    with pytest.raises(ValueError, match="residuals .*finite"):
        rf.running_integral(t, jnp.zeros((4, 3)).at[0, 0].set(jnp.inf))
    with pytest.raises(ValueError, match="resnet"):
        rf.running_integral(rf.Trunk(t.W, t.b, model="mlp"), jnp.zeros((4, 3)))


# Widths and depths from a small pool (those of the test above, and depth 1): each new shape
# builds new programs, while new weights, inputs and h (arrays) reuse them.
@settings(max_examples=5, deadline=None)
@given(
    n=st.sampled_from([1, 3, 10]),
    depth=st.sampled_from([1, 2, 15]),
    seed=st.integers(0, 2**16),
    h=st.floats(0.05, 1.5),
)
def test_property_recurrence_identity(n, depth, seed, h):
    t, x0 = net(seed, n, jnp.float64, w_std=1.0, h=h)
    traj = rf.trajectory(t, x0, depth=depth)
    r = rf.residuals(t, traj)
    rr = rf.residual_recurrence(t, r[0], depth=depth)
    np.testing.assert_allclose(np.asarray(rr), np.asarray(r), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(
        np.asarray(rf.reconstruct_output(t, x0, rr)), np.asarray(traj[-1]), rtol=1e-11, atol=1e-11
    )


def test_one_value_read_per_call(monkeypatch):
    """Each public call reads values back at most once (`_checks.read_bool`), and not under jit."""
    import resflow._checks as checks

    t, x0 = net(1, 4, jnp.float64)
    traj = rf.trajectory(t, x0, depth=5)
    r = rf.residuals(t, traj)
    reads = []
    monkeypatch.setattr(checks, "read_bool", lambda v: reads.append(1) or bool(v))
    calls = {
        "preactivations": lambda x, r: rf.preactivations(t, x),
        "residuals": lambda x, r: rf.residuals(t, x),
        "logit": lambda x, r: rf.trunk.logit(r),
        "preactivation_recurrence": lambda x, r: rf.trunk.preactivation_recurrence(t, x[0], depth=3),
        "residual_recurrence": lambda x, r: rf.residual_recurrence(t, r[0], depth=3),
        "running_integral": lambda x, r: rf.running_integral(t, r, x0=x[0]),
        "reconstruct_output": lambda x, r: rf.reconstruct_output(t, x[0], r),
    }
    for name, f in calls.items():
        reads.clear()
        f(traj, r)
        assert len(reads) <= 1, name
        reads.clear()
        jax.jit(f)(traj, r)
        assert len(reads) == 0, name
