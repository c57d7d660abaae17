"""Analytic Jacobians vs jax.jacfwd of the maps themselves; matrix-free vs dense; Lyapunov vs numpy QR."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import resflow as rf


def _normal(seed, shape, dtype=jnp.float64, scale=1.0):
    """Test data drawn by numpy: jax.random would build a program per shape and dtype."""
    return jnp.asarray(scale * np.random.default_rng(seed).standard_normal(shape), dtype)


def _setup(shared, dtype, n=4, T=5, batch=3, seed=0, **kw):
    # Trunk.init's draws (W ~ N(0, w_std²/n), b ~ N(0, b_std²)), from numpy
    layers = () if shared else (T,)
    W = _normal(seed, layers + (n, n), dtype, 2.0 / np.sqrt(n))
    b = _normal(seed + 100, layers + (n,), dtype, 0.5)
    trunk = rf.Trunk(W, b, **kw)
    x0 = _normal(seed + 200, (batch, n), dtype)
    return trunk, x0


@pytest.mark.parametrize(
    "model, activation, shared",
    [("resnet", "sigmoid", True), ("resnet", "tanh", False), ("mlp", "relu", True), ("mlp", "sigmoid", False)],
)
def test_state_jacobians_equal_jacfwd_of_step(model, activation, shared):
    trunk, x0 = _setup(shared, jnp.float64, model=model, activation=activation, h=0.7)
    T = 5
    traj = rf.trajectory(trunk, x0, depth=T)
    J = rf.state_jacobians(trunk, traj)
    assert J.shape == (T, 3, 4, 4)
    for t in range(T):
        ref = jax.vmap(jax.jacfwd(trunk.layer(t).step))(traj[t])
        np.testing.assert_allclose(J[t], ref, rtol=1e-12, atol=1e-13)


def test_state_jacobians_float32_dtype_and_unbatched():
    trunk, x0 = _setup(True, jnp.float32)
    traj = rf.trajectory(trunk, x0[0], depth=3)
    J = rf.state_jacobians(trunk, traj)
    assert J.dtype == jnp.float32 and J.shape == (3, 4, 4)
    ref = jax.jacfwd(trunk.step)(traj[1])
    np.testing.assert_allclose(J[1], ref, rtol=1e-5, atol=1e-6)


def _residual_map(W, h, r):
    return jax.nn.sigmoid(jnp.log(r) - jnp.log1p(-r) + h * (W @ r))


@pytest.mark.parametrize("h", [1.0, 0.3])
def test_residual_jacobians_equal_jacfwd_of_recurrence(h):
    trunk, x0 = _setup(True, jnp.float64, h=h)
    r = rf.residuals(trunk, rf.trajectory(trunk, x0, depth=6))
    Jr = rf.residual_jacobians(trunk, r)
    assert Jr.shape == (5, 3, 4, 4)
    ref = jax.vmap(jax.vmap(jax.jacfwd(lambda q: _residual_map(trunk.W, h, q))))(r[:-1])
    np.testing.assert_allclose(Jr, ref, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("model, dtype", [("resnet", jnp.float32), ("mlp", jnp.float64)])
def test_state_products_equal_dense(model, dtype):
    trunk, x0 = _setup(False, dtype, model=model, activation="tanh", h=0.5)
    traj = rf.trajectory(trunk, x0, depth=5)
    a = rf.preactivations(trunk, traj)
    J = rf.state_jacobians(trunk, traj)
    Q = _normal(3, (3, 4, 2), dtype)
    tol = 1e-5 if dtype == jnp.float32 else 1e-13
    for t in (0, 4):
        JQ = rf.analysis.state_jacobian_product(trunk.layer(t), a[t], Q)
        JtQ = rf.analysis.state_jacobian_product(trunk.layer(t), a[t], Q, transpose=True)
        assert JQ.dtype == dtype
        np.testing.assert_allclose(JQ, J[t] @ Q, rtol=tol, atol=tol)
        np.testing.assert_allclose(JtQ, jnp.swapaxes(J[t], -1, -2) @ Q, rtol=tol, atol=tol)


def test_residual_products_equal_dense():
    trunk, x0 = _setup(True, jnp.float64)
    r = rf.residuals(trunk, rf.trajectory(trunk, x0, depth=4))
    Jr = rf.residual_jacobians(trunk, r)
    Q = _normal(4, (3, 4, 3))
    for t in range(3):
        np.testing.assert_allclose(
            rf.analysis.residual_jacobian_product(trunk, r[t], r[t + 1], Q), Jr[t] @ Q, rtol=1e-13
        )
        np.testing.assert_allclose(
            rf.analysis.residual_jacobian_product(trunk, r[t], r[t + 1], Q, transpose=True),
            jnp.swapaxes(Jr[t], -1, -2) @ Q,
            rtol=1e-13,
        )


def test_bad_inputs():
    trunk, x0 = _setup(True, jnp.float64)
    untied, _ = _setup(False, jnp.float64)
    traj = rf.trajectory(trunk, x0, depth=3)
    r = rf.residuals(trunk, traj)
    Q = jnp.ones((3, 4, 2))
    with pytest.raises(TypeError, match="resflow.Trunk"):
        rf.state_jacobians((trunk.W, trunk.b), traj)
    with pytest.raises(ValueError, match="trailing dimension"):
        rf.state_jacobians(trunk, traj[..., :2])
    with pytest.raises(ValueError, match="trajectory .*finite"):
        rf.state_jacobians(trunk, traj.at[1, 0, 0].set(jnp.nan))
    with pytest.raises(TypeError, match="trajectory has dtype float32"):
        rf.state_jacobians(trunk, traj.astype(jnp.float32))
    with pytest.raises(ValueError, match="shared"):
        rf.residual_jacobians(untied, r)
    with pytest.raises(ValueError, match="strictly inside"):
        rf.residual_jacobians(trunk, r.at[0, 0, 0].set(1.0))
    with pytest.raises(ValueError, match="at least 2"):
        rf.residual_jacobians(trunk, r[:1])
    with pytest.raises(ValueError, match="Q must have shape"):
        rf.analysis.state_jacobian_product(trunk, r[0], jnp.ones((3, 2, 2)))
    with pytest.raises(TypeError, match="Q has dtype float32"):
        rf.analysis.state_jacobian_product(trunk, r[0], Q.astype(jnp.float32))
    with pytest.raises(ValueError, match="Q .*finite"):
        rf.analysis.state_jacobian_product(trunk, r[0], Q.at[0, 0, 0].set(jnp.nan))
    with pytest.raises(ValueError, match="a .*finite"):
        rf.analysis.state_jacobian_product(trunk, r[0].at[0, 0].set(jnp.inf), Q)
    with pytest.raises(ValueError, match=r"trunk.layer\(t\)"):
        rf.analysis.state_jacobian_product(untied, r[0], Q)
    with pytest.raises(ValueError, match="same shape"):
        rf.analysis.residual_jacobian_product(trunk, r[0], r[1, :2], Q)
    with pytest.raises(ValueError, match="r_next must lie strictly inside"):
        rf.analysis.residual_jacobian_product(trunk, r[0], r[1].at[0, 0].set(0.0), Q)
    with pytest.raises(ValueError, match="Q .*finite"):
        rf.analysis.residual_jacobian_product(trunk, r[0], r[1], Q.at[0, 0, 0].set(jnp.inf))
    # the residual-map formulas are logistic-resnet-only: a tanh or MLP trunk is refused by name
    tanh = rf.Trunk(trunk.W, trunk.b, activation="tanh")
    with pytest.raises(ValueError, match="activation 'sigmoid'"):
        rf.residual_jacobians(tanh, r)
    with pytest.raises(ValueError, match="activation 'sigmoid'"):
        rf.analysis.residual_jacobian_product(rf.Trunk(trunk.W, trunk.b, model="mlp"), r[0], r[1], Q)


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
    trunk, x0 = _setup(shared, jnp.float64, T=6, model=model, activation="tanh", h=0.5)
    traj = rf.trajectory(trunk, x0, depth=6)
    J = rf.state_jacobians(trunk, traj)
    key = jax.random.key(7)
    res = rf.network_lyapunov_spectrum(trunk, x0, depth=6, num_exponents=3, key=key, return_running=True)
    assert res.exponents.shape == (3, 3) and res.running.shape == (3, 6, 3)
    np.testing.assert_allclose(res.running[:, -1], res.exponents, rtol=1e-12)
    q0 = _normal(7, (4, 3))
    res_q = rf.network_lyapunov_spectrum(trunk, x0, depth=6, initial_q=q0)
    assert res_q.exponents.shape == (3, 3)
    for i in range(3):
        dense = rf.lyapunov_spectrum_from_jacobians(J[:, i], num_exponents=3, key=key)
        np.testing.assert_allclose(res.exponents[i], dense.exponents, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(res_q.exponents[i], _np_qr_lyapunov(J[:, i], q0), rtol=1e-10, atol=1e-12)


def test_network_lyapunov_full_spectrum_sums_to_log_det_float32():
    trunk, x0 = _setup(True, jnp.float32)
    res = rf.network_lyapunov_spectrum(trunk, x0, depth=5, key=jax.random.key(1))
    assert res.exponents.dtype == jnp.float32 and res.running is None
    J = np.asarray(rf.state_jacobians(trunk, rf.trajectory(trunk, x0, depth=5)), np.float64)
    # frame-independent: the sum of all n exponents is (1/T) Σ_t log|det J_t|
    ref = np.log(np.abs(np.linalg.det(J))).sum(axis=0) / 5
    np.testing.assert_allclose(res.exponents.sum(-1), ref, rtol=1e-4, atol=1e-5)


def test_network_lyapunov_bad_inputs_and_batch_shapes():
    trunk, x0 = _setup(True, jnp.float64)
    with pytest.raises(ValueError, match="depth must be given"):
        rf.network_lyapunov_spectrum(trunk, x0)
    with pytest.raises(ValueError, match="x0 .*finite"):
        rf.network_lyapunov_spectrum(trunk, x0.at[0, 0].set(jnp.nan), depth=3)
    with pytest.raises(ValueError, match="num_exponents|k"):
        rf.network_lyapunov_spectrum(trunk, x0, depth=3, num_exponents=5)
    one = rf.network_lyapunov_spectrum(trunk, x0[0], depth=3)
    many = rf.network_lyapunov_spectrum(trunk, jnp.stack([x0, x0]), depth=3)
    assert one.exponents.shape == (4,) and many.exponents.shape == (2, 3, 4)
    np.testing.assert_allclose(many.exponents[1, 0], one.exponents, rtol=1e-12)


def test_one_value_read_per_call(monkeypatch):
    """Each public call reads values back at most once (`_checks.read_bool`), and not under jit."""
    import resflow._checks as checks

    trunk, x0 = _setup(True, jnp.float64)
    traj = rf.trajectory(trunk, x0, depth=4)
    r = rf.residuals(trunk, traj)
    Q = jnp.ones((3, 4, 2))
    reads = []
    monkeypatch.setattr(checks, "read_bool", lambda v: reads.append(1) or bool(v))
    calls = {
        "state_jacobians": lambda t, x, r, Q: rf.state_jacobians(t, x),
        "residual_jacobians": lambda t, x, r, Q: rf.residual_jacobians(t, r),
        "state_jacobian_product": lambda t, x, r, Q: rf.analysis.state_jacobian_product(t, x[0], Q),
        "residual_jacobian_product": lambda t, x, r, Q: rf.analysis.residual_jacobian_product(t, r[0], r[1], Q),
        "network_lyapunov_spectrum": lambda t, x, r, Q: rf.network_lyapunov_spectrum(t, x[0], depth=3).exponents,
    }
    for name, f in calls.items():
        reads.clear()
        f(trunk, traj, r, Q)
        assert len(reads) <= 1, name
        reads.clear()
        jax.jit(f)(trunk, traj, r, Q)
        assert len(reads) == 0, name


@pytest.mark.parametrize("model, shared, qr_every", [("resnet", True, 4), ("mlp", False, 1)])
def test_network_lyapunov_fused_batched_core_matches_numpy(model, shared, qr_every):
    # n = 6, k = 3, 4 inputs: 16 matmul columns (padding path off), T = 10 not a multiple of
    # qr_every (a shorter last block); every input against the float64 numpy QR-every-step loop
    trunk, x0 = _setup(shared, jnp.float64, n=6, T=10, batch=4, model=model, activation="sigmoid", h=0.7)
    q0 = _normal(3, (6, 3))
    res = rf.network_lyapunov_spectrum(trunk, x0, depth=10, initial_q=q0, qr_every=qr_every)
    J = np.asarray(rf.state_jacobians(trunk, rf.trajectory(trunk, x0, depth=10)))
    for i in range(4):
        np.testing.assert_allclose(res.exponents[i], _np_qr_lyapunov(J[:, i], q0), rtol=1e-11, atol=1e-13)


def test_network_lyapunov_padded_columns_and_qr_every_checked():
    # 3 inputs × (k + 1) = 12 columns: padded to 16 for the matmul; the result must not change
    trunk, x0 = _setup(True, jnp.float64, n=5, T=7, batch=3)
    q0 = _normal(4, (5, 3))
    res = rf.network_lyapunov_spectrum(trunk, x0, depth=7, initial_q=q0, qr_every=2, return_running=True)
    J = np.asarray(rf.state_jacobians(trunk, rf.trajectory(trunk, x0, depth=7)))
    for i in range(3):
        np.testing.assert_allclose(res.exponents[i], _np_qr_lyapunov(J[:, i], q0), rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(res.running[:, -1], res.exponents, rtol=1e-12)
    with pytest.raises(ValueError, match="qr_every"):
        rf.network_lyapunov_spectrum(trunk, x0, depth=7, qr_every=0)
