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


@pytest.mark.parametrize(
    "model, activation, shared",
    [("resnet", "sigmoid", True), ("resnet", "tanh", False), ("mlp", "relu", True), ("mlp", "sigmoid", False)],
)
def test_state_jacobians_equal_jacfwd_of_step(model, activation, shared):
    params, x0 = _setup(shared, jnp.float64)
    T = 5
    h = 0.7
    traj = rf.trajectory(params, x0, depth=T, model=model, activation=activation, h=h)
    J = rf.state_jacobians(params, traj, model=model, activation=activation, h=h)
    assert J.shape == (T, 3, 4, 4)

    def jac(layer, x):
        return jax.jacfwd(functools.partial(rf.step, layer, model=model, activation=activation, h=h))(x)

    per_t = jax.vmap(jax.vmap(jac, in_axes=(None, 0)), in_axes=(None if shared else 0, 0))
    np.testing.assert_allclose(J, per_t(params, traj[:-1]), rtol=1e-12, atol=1e-13)


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
    ref = jax.vmap(jax.vmap(jax.jacfwd(functools.partial(_residual_map, params.W, h))))(r[:-1])
    np.testing.assert_allclose(Jr, ref, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("model, dtype", [("resnet", jnp.float32), ("mlp", jnp.float64)])
def test_state_products_equal_dense(model, dtype):
    params, x0 = _setup(False, dtype)
    traj = rf.trajectory(params, x0, depth=5, model=model, activation="tanh", h=0.5)
    a = rf.preactivations(params, traj)
    J = rf.state_jacobians(params, traj, model=model, activation="tanh", h=0.5)
    Q = jax.random.normal(jax.random.key(3), (3, 4, 2), dtype)
    tol = 1e-5 if dtype == jnp.float32 else 1e-13
    for t in (0, 4):
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
    # the residual-map formulas are logistic-only: a tanh network's residuals are refused by name
    with pytest.raises(ValueError, match="logistic activation only"):
        rf.residual_jacobians(params, r, activation="tanh")
    with pytest.raises(ValueError, match="logistic activation only"):
        rf.residual_jacobian_product(params, r[0], r[1], jnp.ones((3, 4, 2)), activation="relu")
    np.testing.assert_array_equal(
        rf.residual_jacobians(params, r, activation="sigmoid"), rf.residual_jacobians(params, r)
    )


def _np_qr_lyapunov(J, q0):
    """Float64 numpy reference: Q_{t+1} R_t = J_t Q_t, λ = mean log|diag R|, largest first."""
    q, _ = np.linalg.qr(np.asarray(q0, np.float64))
    total = np.zeros(q.shape[1])
    for Jt in np.asarray(J, np.float64):
        q, r = np.linalg.qr(Jt @ q)
        total += np.log(np.abs(np.diag(r)))
    return np.sort(total / len(J))[::-1]


@pytest.mark.parametrize("model, shared", [("resnet", True), ("mlp", False)])
def test_network_lyapunov_matches_dense_and_numpy(model, shared):
    params, x0 = _setup(shared, jnp.float64, T=6)
    kw = dict(model=model, activation="tanh", h=0.5)
    traj = rf.trajectory(params, x0, depth=6, **kw)
    J = rf.state_jacobians(params, traj, **kw)
    key = jax.random.key(7)
    res = rf.network_lyapunov_spectrum(params, x0, depth=6, num_exponents=3, key=key, return_running=True, **kw)
    assert res.exponents.shape == (3, 3) and res.running.shape == (3, 6, 3)
    np.testing.assert_allclose(res.running[:, -1], res.exponents, rtol=1e-12)
    q0 = jax.random.normal(key, (4, 3))
    res_q = rf.network_lyapunov_spectrum(params, x0, depth=6, initial_q=q0, **kw)
    assert res_q.exponents.shape == (3, 3)
    for i in range(3):
        dense = rf.lyapunov_spectrum_from_jacobians(J[:, i], num_exponents=3, key=key)
        np.testing.assert_allclose(res.exponents[i], dense.exponents, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(res_q.exponents[i], _np_qr_lyapunov(J[:, i], q0), rtol=1e-10, atol=1e-12)


def test_network_lyapunov_full_spectrum_sums_to_log_det_float32():
    params, x0 = _setup(True, jnp.float32)
    res = rf.network_lyapunov_spectrum(params, x0, depth=5, key=jax.random.key(1))
    assert res.exponents.dtype == jnp.float32 and res.running is None
    J = np.asarray(rf.state_jacobians(params, rf.trajectory(params, x0, depth=5)), np.float64)
    # frame-independent: the sum of all n exponents is (1/T) Σ_t log|det J_t|
    ref = np.log(np.abs(np.linalg.det(J))).sum(axis=0) / 5
    np.testing.assert_allclose(res.exponents.sum(-1), ref, rtol=1e-4, atol=1e-5)
