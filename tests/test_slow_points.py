"""Slow points: minima of q(x) = ½‖F(x) − x‖², kept apart from fixed points."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import resflow as rf


def test_trunk_has_slow_points_but_no_fixed_points():
    # F(x) − x = σ(W x + b) > 0 componentwise, so q > 0 everywhere: descent lowers q a lot but
    # never to zero, and nothing is reported fixed
    trunk = rf.Trunk.init(jax.random.key(5), 3, w_std=2)
    starts = jax.random.normal(jax.random.key(1), (6, 3))
    res = rf.find_slow_points(trunk.step, starts, num_iters=1000)
    q = np.asarray(res.q)
    s = 1 / (1 + np.exp(-(np.asarray(res.points) @ np.asarray(trunk.W).T + np.asarray(trunk.b))))
    np.testing.assert_allclose(q, 0.5 * np.sum(s**2, -1), rtol=1e-12)  # q is the speed at the point
    s0 = 1 / (1 + np.exp(-(np.asarray(starts) @ np.asarray(trunk.W).T + np.asarray(trunk.b))))
    assert np.all(q > 0) and np.all(q < 0.05 * 0.5 * np.sum(s0**2, -1))  # q at the starts (numpy)
    assert not np.any(res.converged)
    assert res.multipliers.shape == (6, 3) and set(res.labels) <= {s.label for s in rf.dynamics.Stability}


def _np_speed_terms(W, b, h, x):
    """Float64 numpy: F(x) − x = hσ(z), z = Wx + b, J_F = h diag(σ') W and
    ∇²q = h² Wᵀ diag(σ'² + σσ'') W (σ' = σ(1 − σ), σ'' = σ'(1 − 2σ)), for one point x."""
    s = 1 / (1 + np.exp(-(W @ x + b)))
    d1 = s * (1 - s)
    d2 = d1 * (1 - 2 * s)
    F = h * s
    JF = h * d1[:, None] * W
    return F, JF, h**2 * W.T @ ((d1**2 + s * d2)[:, None] * W)


def test_saturated_states_are_not_fixed_and_plateaus_are_stalled():
    """x = W⁻¹(−30 − b) makes q ≈ 1e-26, yet the trunk has no fixed point: `converged` follows
    the error bound of `find_fixed_points`, e = ‖J_F⁻¹‖(‖F − x‖ + ε(‖x‖ + ‖F‖)) ≫ 1 there. Wide
    starts stall where a unit saturates at σ = 1 (q ≈ ½): the gradient vanishes with σ', but
    q is concave there (not a minimum) and the map moves the point by √(2q) ≈ 1 per step.
    Both against float64 numpy."""
    trunk = rf.Trunk.init(jax.random.key(5), 3, w_std=2)
    W, b, h = np.asarray(trunk.W), np.asarray(trunk.b), float(trunk.h)
    deep = np.linalg.solve(W, -30 - b)
    starts = jnp.concatenate([jnp.asarray(deep[None]), 5 * jax.random.normal(jax.random.key(1), (31, 3))])
    res = rf.find_slow_points(trunk.step, starts, num_iters=1000)
    q, x = np.asarray(res.q), np.asarray(res.points)
    assert q[0] < 1e-20  # the old absolute test, q ≤ 1e-20, called this a fixed point
    assert not np.any(res.converged)
    eps = np.finfo(np.float64).eps
    for i in range(len(x)):
        F, JF, H = _np_speed_terms(W, b, h, x[i])
        e = (np.linalg.norm(F) + eps * (np.linalg.norm(x[i]) + np.linalg.norm(x[i] + F))) / np.linalg.svd(JF)[1][-1]
        # J_F = ∂step/∂x − I loses digits to the cancellation where ∂step/∂x ≈ I + 1e-13 W
        np.testing.assert_allclose(res.error[i], e, rtol=0.05)
        curv = np.linalg.eigvalsh(H)  # stalled: not a minimum of q, ∇²q has a negative direction
        assert bool(res.stalled[i]) == (curv[0] < -np.sqrt(eps) * np.abs(curv).max())
    assert res.error[0] > 1
    assert not rf.find_fixed_points(trunk.step, jnp.asarray(deep)).converged  # same verdict
    stalled = np.asarray(res.stalled)
    assert not stalled[0] and stalled.sum() >= 3 and (~stalled).sum() >= 3
    assert np.all(q[stalled] > 0.4) and np.all(q[~stalled] < 0.1)


def test_known_fixed_points_are_reached_with_q_near_zero():
    # F(x) = x − 0.2(x³ − x) componentwise: fixed points at every x ∈ {−1, 0, 1}²; ±1 attract
    # (F' = 0.6), 0 repels (F' = 1.2)
    def F(x):
        return x - 0.2 * (x**3 - x)

    starts = jnp.array([[0.7, -1.4], [1.3, 1.2], [-0.6, 0.9], [-1.5, -0.8]])
    res = rf.find_slow_points(F, starts, num_iters=3000)
    assert np.all(np.asarray(res.q) < 1e-6)
    np.testing.assert_allclose(np.asarray(res.points), np.sign(starts), atol=1e-3)
    np.testing.assert_allclose(np.abs(np.asarray(res.multipliers)), 0.6, atol=1e-3)
    assert list(res.labels) == ["attractor"] * 4
    saddle = rf.find_slow_points(F, jnp.array([[0.0, 0.9]]), num_iters=3000, tol=1e-6)
    assert saddle.converged[0] and saddle.labels[0] == "saddle" and not saddle.stalled[0]
    assert np.all(np.asarray(res.converged)) and not np.any(res.stalled)
    # e = ‖J_F⁻¹‖ (‖F − x‖ + ε(‖x‖ + ‖F‖)) with J_F = diag(0.2 − 0.6 x²) = −0.4 I at ±1
    x = np.asarray(res.points)
    Fx = x - 0.2 * (x**3 - x)
    norm = functools.partial(np.linalg.norm, axis=-1)
    e = 2.5 * (norm(Fx - x) + np.finfo(np.float64).eps * (norm(x) + norm(Fx)))
    np.testing.assert_allclose(res.error, e, rtol=1e-6)
    assert np.all(np.asarray(res.error) >= norm(x - np.sign(starts)))
    # plain gradient descent reaches the same points
    sgd = rf.find_slow_points(F, starts, num_iters=500, optimiser="sgd", learning_rate=0.5)
    np.testing.assert_allclose(np.asarray(sgd.points), np.sign(starts), atol=1e-6)


@pytest.mark.parametrize(
    "kw, exc, match",
    [
        (dict(num_iters=0), ValueError, "num_iters"),
        (dict(learning_rate=-1.0), ValueError, "learning_rate"),
        (dict(optimiser="lbfgs"), ValueError, "optimiser"),
        (dict(starts=jnp.array([[jnp.nan, 0.0]])), ValueError, "finite"),
        (dict(starts=jnp.float64(1.0)), ValueError, "starts"),
        (dict(starts=jnp.ones((0, 2))), ValueError, r"starts must hold at least one point.*\(0, 2\)"),
        (dict(step=lambda x: x[:1]), ValueError, "shape"),
        (dict(step="F"), TypeError, "callable"),
    ],
)
def test_bad_inputs(kw, exc, match):
    kw = {"step": lambda x: 0.5 * x, "starts": jnp.ones((2, 2)), **kw}
    with pytest.raises(exc, match=match):
        rf.find_slow_points(kw.pop("step"), kw.pop("starts"), **kw)
