"""Slow points: minima of q(x) = ½‖F(x) − x‖², kept apart from fixed points."""

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
    assert np.all(q > 0) and np.all(q < 0.05 * np.asarray(res.initial_q))
    assert not np.any(res.is_fixed)
    assert res.eigenvalues.shape == (6, 3) and set(res.labels) <= {s.label for s in rf.Stability}


def test_known_fixed_points_are_reached_with_q_near_zero():
    # F(x) = x − 0.2(x³ − x) componentwise: fixed points at every x ∈ {−1, 0, 1}²; ±1 attract
    # (F' = 0.6), 0 repels (F' = 1.2)
    def F(x):
        return x - 0.2 * (x**3 - x)

    starts = jnp.array([[0.7, -1.4], [1.3, 1.2], [-0.6, 0.9], [-1.5, -0.8]])
    res = rf.find_slow_points(F, starts, num_iters=3000)
    assert np.all(np.asarray(res.q) < 1e-6)
    np.testing.assert_allclose(np.asarray(res.points), np.sign(starts), atol=1e-3)
    np.testing.assert_allclose(np.abs(np.asarray(res.eigenvalues)), 0.6, atol=1e-3)
    assert list(res.labels) == ["attractor"] * 4
    saddle = rf.find_slow_points(F, jnp.array([[0.0, 0.9]]), num_iters=3000, tol=1e-6)
    assert saddle.is_fixed[0] and saddle.labels[0] == "saddle"
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
