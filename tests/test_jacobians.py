"""Analytic Jacobians vs jax.jacfwd of the maps themselves; matrix-free vs dense; Lyapunov vs numpy QR."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import resflow as rf


def _setup(shared, dtype, n=4, T=5, batch=3, seed=0):
    k1, k2 = jax.random.split(jax.random.key(seed))
    params = rf.init_trunk(k1, n, shared=shared, depth=None if shared else T, w_std=2.0, b_std=0.5, dtype=dtype)
    x0 = jax.random.normal(k2, (batch, n), dtype)
    return params, x0


@pytest.mark.parametrize("model", ["resnet", "mlp"])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
@pytest.mark.parametrize("shared", [True, False])
def test_state_jacobians_equal_jacfwd_of_step(model, activation, shared):
    params, x0 = _setup(shared, jnp.float64)
    T = 5
    h = 0.7
    traj = rf.trajectory(params, x0, depth=T, model=model, activation=activation, h=h)
    J = rf.state_jacobians(params, traj, model=model, activation=activation, h=h)
    assert J.shape == (T, 3, 4, 4)
    for t in range(T):
        f = functools.partial(rf.step, rf.layer_params(params, t), model=model, activation=activation, h=h)
        ref = jax.vmap(jax.jacfwd(f))(traj[t])
        np.testing.assert_allclose(J[t], ref, rtol=1e-12, atol=1e-13)


def test_state_jacobians_float32_dtype_and_unbatched():
    params, x0 = _setup(True, jnp.float32)
    traj = rf.trajectory(params, x0[0], depth=3)
    J = rf.state_jacobians(params, traj)
    assert J.dtype == jnp.float32 and J.shape == (3, 4, 4)
    ref = jax.jacfwd(functools.partial(rf.step, params))(traj[1])
    np.testing.assert_allclose(J[1], ref, rtol=1e-5, atol=1e-6)


def _residual_map(W, h, r):
    return jax.nn.sigmoid(jnp.log(r) - jnp.log1p(-r) + h * (W @ r))


@pytest.mark.parametrize("h", [1.0, 0.3])
def test_residual_jacobians_equal_jacfwd_of_recurrence(h):
    params, x0 = _setup(True, jnp.float64)
    r = rf.residuals(params, rf.trajectory(params, x0, depth=6, h=h))
    Jr = rf.residual_jacobians(params, r, h=h)
    assert Jr.shape == (5, 3, 4, 4)
    for t in range(5):
        ref = jax.vmap(jax.jacfwd(functools.partial(_residual_map, params.W, h)))(r[t])
        np.testing.assert_allclose(Jr[t], ref, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("model", ["resnet", "mlp"])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_state_products_equal_dense(model, dtype):
    params, x0 = _setup(False, dtype)
    traj = rf.trajectory(params, x0, depth=5, model=model, activation="tanh", h=0.5)
    a = rf.preactivations(params, traj)
    J = rf.state_jacobians(params, traj, model=model, activation="tanh", h=0.5)
    Q = jax.random.normal(jax.random.key(3), (3, 4, 2), dtype)
    tol = 1e-5 if dtype == jnp.float32 else 1e-13
    for t in range(5):
        layer = rf.layer_params(params, t)
        JQ = rf.state_jacobian_product(layer, a[t], Q, model=model, activation="tanh", h=0.5)
        JtQ = rf.state_jacobian_product(layer, a[t], Q, model=model, activation="tanh", h=0.5, transpose=True)
        assert JQ.dtype == dtype
        np.testing.assert_allclose(JQ, J[t] @ Q, rtol=tol, atol=tol)
        np.testing.assert_allclose(JtQ, jnp.swapaxes(J[t], -1, -2) @ Q, rtol=tol, atol=tol)


def test_residual_products_equal_dense():
    params, x0 = _setup(True, jnp.float64)
    r = rf.residuals(params, rf.trajectory(params, x0, depth=4))
    Jr = rf.residual_jacobians(params, r)
    Q = jax.random.normal(jax.random.key(4), (3, 4, 3))
    for t in range(3):
        np.testing.assert_allclose(rf.residual_jacobian_product(params, r[t], r[t + 1], Q), Jr[t] @ Q, rtol=1e-13)
        np.testing.assert_allclose(
            rf.residual_jacobian_product(params, r[t], r[t + 1], Q, transpose=True),
            jnp.swapaxes(Jr[t], -1, -2) @ Q,
            rtol=1e-13,
        )


def test_bad_inputs():
    params, x0 = _setup(True, jnp.float64)
    untied, _ = _setup(False, jnp.float64)
    traj = rf.trajectory(params, x0, depth=3)
    r = rf.residuals(params, traj)
    with pytest.raises(ValueError, match="model"):
        rf.state_jacobians(params, traj, model="cnn")
    with pytest.raises(ValueError, match="h"):
        rf.state_jacobians(params, traj, h=0.0)
    with pytest.raises(ValueError, match="trailing dimension"):
        rf.state_jacobians(params, traj[..., :2])
    with pytest.raises(ValueError, match="shared"):
        rf.residual_jacobians(untied, r)
    with pytest.raises(ValueError, match="strictly inside"):
        rf.residual_jacobians(params, r.at[0, 0, 0].set(1.0))
    with pytest.raises(ValueError, match="at least 2"):
        rf.residual_jacobians(params, r[:1])
    with pytest.raises(ValueError, match="Q must have shape"):
        rf.state_jacobian_product(params, r[0], jnp.ones((3, 2, 2)))
    with pytest.raises(ValueError, match="same shape"):
        rf.residual_jacobian_product(params, r[0], r[1, :2], jnp.ones((3, 4, 2)))
