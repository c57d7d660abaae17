import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import np_act, np_trajectory
from hypothesis import given, settings
from hypothesis import strategies as st

import resflow as rf


def net(seed, n, dtype, batch=(6,), w_std=2.0, b_std=0.5):
    kp, kx = jax.random.split(jax.random.key(seed))
    p = rf.init_trunk(kp, n, w_std=w_std, b_std=b_std, dtype=dtype)
    return p, jax.random.normal(kx, batch + (n,), dtype)


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
    p, x0 = net(n, n, jnp.float64)
    traj = rf.trajectory(p, x0, depth=depth, h=h)
    r = rf.residuals(p, traj)
    # Forward residuals against an independent numpy computation of σ(W x_t + b).
    ref_traj = np_trajectory(p.W, p.b, x0, depth, h=h)
    np.testing.assert_allclose(
        np.asarray(r), np_act("sigmoid", ref_traj[:-1] @ np.asarray(p.W).T + np.asarray(p.b)), rtol=1e-12
    )
    rr = rf.residual_recurrence(p, r[0], depth=depth, h=h)
    np.testing.assert_allclose(np.asarray(rr), np.asarray(r), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(np.asarray(rr), np_residual_loop(p.W, r[0], depth, h), rtol=1e-11, atol=1e-14)
    xT = rf.reconstruct_output(x0, rr, h=h)
    np.testing.assert_allclose(np.asarray(xT), ref_traj[-1], rtol=1e-12, atol=1e-12)


def test_recurrence_float32_tolerance():
    p, x0 = net(3, 8, jnp.float32)
    traj = rf.trajectory(p, x0, depth=15)
    r = rf.residuals(p, traj)
    rr = rf.residual_recurrence(p, r[0], depth=15)
    assert rr.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(rr), np.asarray(r), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(rf.reconstruct_output(x0, rr)), np.asarray(traj[-1]), rtol=1e-5, atol=1e-5)


def test_running_integral_is_the_trajectory():
    p, x0 = net(4, 5, jnp.float64)
    traj = rf.trajectory(p, x0, depth=9, h=0.4)
    S = rf.running_integral(rf.residuals(p, traj), h=0.4, x0=x0)
    np.testing.assert_allclose(np.asarray(S), np.asarray(traj), rtol=1e-12, atol=1e-12)
    S0 = rf.running_integral(rf.residuals(p, traj), h=0.4)
    np.testing.assert_allclose(np.asarray(S0[0]), 0.0)
    np.testing.assert_allclose(np.asarray(S0 + x0), np.asarray(traj), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_preactivation_recurrence_any_activation(activation):
    p, x0 = net(5, 4, jnp.float64)
    traj = rf.trajectory(p, x0, depth=10, activation=activation, h=0.5)
    a = rf.preactivations(p, traj)
    ref = np_trajectory(p.W, p.b, x0, 10, activation=activation, h=0.5)[:-1] @ np.asarray(p.W).T + np.asarray(p.b)
    np.testing.assert_allclose(np.asarray(a), ref, rtol=1e-12, atol=1e-12)
    aa = rf.preactivation_recurrence(p, a[0], depth=10, h=0.5, activation=activation)
    np.testing.assert_allclose(np.asarray(aa), ref, rtol=1e-11, atol=1e-11)


def test_untied_residuals_reconstruct():
    kp, kx = jax.random.split(jax.random.key(7))
    p = rf.init_trunk(kp, 4, shared=False, depth=6, w_std=2.0, b_std=0.3, dtype=jnp.float64)
    x0 = jax.random.normal(kx, (2, 3, 4), jnp.float64)
    traj = rf.trajectory(p, x0, h=0.8)
    r = rf.residuals(p, traj)
    ref = np_trajectory(p.W, p.b, x0, 6, h=0.8)
    refr = np.stack([np_act("sigmoid", ref[t] @ np.asarray(p.W[t]).T + np.asarray(p.b[t])) for t in range(6)])
    np.testing.assert_allclose(np.asarray(r), refr, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(rf.reconstruct_output(x0, r, h=0.8)), ref[-1], rtol=1e-12)


def test_saturated_residuals_are_rejected_not_clipped():
    p, _ = net(0, 3, jnp.float64)
    # float32 rounds σ(20) to exactly 1: the logit does not exist.
    r_sat = jax.nn.sigmoid(jnp.array([20.0, 0.0, -3.0], jnp.float32))
    assert float(r_sat[0]) == 1.0
    with pytest.raises(ValueError, match=r"r must lie strictly inside \(0, 1\)"):
        rf.residual_recurrence(p, r_sat.astype(jnp.float64), depth=3)
    with pytest.raises(ValueError, match=r"strictly inside"):
        rf.logit(jnp.array([0.0, 0.5]))
    with pytest.raises(ValueError, match=r"strictly inside"):
        rf.logit(jnp.array([1.5]))
    # The documented way around: step in pre-activation space from a_0, which stays exact.
    a0 = jnp.array([20.0, 0.0, -3.0])
    a = rf.preactivation_recurrence(p, a0, depth=4)
    assert np.all(np.isfinite(np.asarray(a)))


def test_recurrence_bad_inputs():
    p, x0 = net(0, 3, jnp.float64)
    r0 = jnp.full((3,), 0.5)
    pu = rf.init_trunk(jax.random.key(0), 3, shared=False, depth=2)
    with pytest.raises(ValueError, match="params must be shared"):
        rf.residual_recurrence(pu, r0, depth=3)
    with pytest.raises(ValueError, match="r0 must have trailing dimension 3"):
        rf.residual_recurrence(p, jnp.full((4,), 0.5), depth=3)
    with pytest.raises(ValueError, match="h must be"):
        rf.residual_recurrence(p, r0, depth=3, h=0)
    with pytest.raises(ValueError, match="depth must be >= 1"):
        rf.residual_recurrence(p, r0, depth=0)
    with pytest.raises(ValueError, match="r0 .*finite"):
        rf.residual_recurrence(p, jnp.array([0.5, jnp.nan, 0.5]), depth=3)
    with pytest.raises(ValueError, match="trajectory must hold at least 2"):
        rf.residuals(p, jnp.zeros((1, 3)))
    with pytest.raises(ValueError, match="trajectory must have trailing dimension 3"):
        rf.residuals(p, jnp.zeros((4, 2)))
    with pytest.raises(ValueError, match="untied params have 2 layers"):
        rf.residuals(pu, jnp.zeros((5, 3)))
    with pytest.raises(ValueError, match="x0 must have shape"):
        rf.running_integral(jnp.zeros((4, 3)), x0=jnp.zeros(2))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 8), depth=st.integers(1, 20), seed=st.integers(0, 2**16), h=st.floats(0.05, 1.5))
def test_property_recurrence_identity(n, depth, seed, h):
    p, x0 = net(seed, n, jnp.float64, batch=(3,), w_std=1.0)
    traj = rf.trajectory(p, x0, depth=depth, h=h)
    r = rf.residuals(p, traj)
    rr = rf.residual_recurrence(p, r[0], depth=depth, h=h)
    np.testing.assert_allclose(np.asarray(rr), np.asarray(r), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(
        np.asarray(rf.reconstruct_output(x0, rr, h=h)), np.asarray(traj[-1]), rtol=1e-11, atol=1e-11
    )
