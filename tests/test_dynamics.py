"""Generic dynamics tools against systems with known answers (closed forms, numpy float64)."""

import jax
import jax.numpy as jnp
import numpy as np

import resflow as rf

A_HENON, B_HENON = 1.4, 0.3


def henon(x):
    return jnp.stack([1 - A_HENON * x[0] ** 2 + x[1], B_HENON * x[0]])


def np_henon_jacobian(x):
    return np.array([[-2 * A_HENON * x[0], 1.0], [B_HENON, 0.0]])


# non-normal upper-triangular map: exponents log|diag| (sorted), reached only asymptotically
A_TRI = np.array([[0.5, 3.0, 0.0], [0.0, 2.0, 1.0], [0.0, 0.0, -0.1]])


def linear(A):
    A = jnp.asarray(A)
    return lambda x: A @ x


def test_linear_map_exponents_are_log_moduli():
    res = rf.lyapunov_spectrum(linear(A_TRI), jnp.ones(3), 5000)
    want = np.sort(np.log(np.abs(np.linalg.eigvals(A_TRI))))[::-1]
    np.testing.assert_allclose(res.exponents, want, atol=2e-3)
    assert res.running is None


def test_henon_exponents_and_sum():
    res = rf.lyapunov_spectrum(henon, jnp.array([0.1, 0.1]), 100_000, burn_in=1000, return_running=True)
    # det J = -b everywhere, so λ1 + λ2 = ln b exactly (up to round-off)
    np.testing.assert_allclose(res.exponents.sum(), np.log(B_HENON), atol=1e-12)
    np.testing.assert_allclose(res.exponents[0], 0.419, atol=3e-3)
    assert res.running.shape == (100_000, 2)
    np.testing.assert_allclose(res.running[-1], res.exponents, rtol=1e-12)


def test_logistic_map_ln2():
    res = rf.lyapunov_spectrum(lambda x: 4 * x * (1 - x), jnp.array([np.sqrt(2) - 1]), 100_000, burn_in=100)
    np.testing.assert_allclose(res.exponents[0], np.log(2), rtol=5e-4)


def test_from_products_stateless_and_stateful_agree_with_jacobians():
    # short horizon: the Hénon orbit is chaotic, so two orbits that differ by round-off
    # (eager numpy loop vs compiled scan) separate like e^{0.42 t}
    T = 30
    x = np.array([0.1, 0.1])
    orbit = []
    for _ in range(T):
        orbit.append(x)
        x = np.array([1 - A_HENON * x[0] ** 2 + x[1], B_HENON * x[0]])
    jacs = np.stack([np_henon_jacobian(p) for p in orbit])
    from_j = rf.lyapunov_spectrum_from_jacobians(jacs)
    jacs_j = jnp.asarray(jacs)
    stateless = rf.lyapunov_spectrum_from_products(lambda t, q: jacs_j[t] @ q, T, n=2)
    stateful = rf.lyapunov_spectrum_from_products(
        lambda t, s, q: (henon(s), jnp.stack([jnp.stack([-2 * A_HENON * s[0], 1.0]), jnp.array([B_HENON, 0.0])]) @ q),
        T,
        n=2,
        init_state=jnp.array([0.1, 0.1]),
    )
    via_step = rf.lyapunov_spectrum(henon, jnp.array([0.1, 0.1]), T)
    # independent reference: QR of the explicit float64 product, column by column
    Q = np.linalg.qr(np.asarray(jax.random.normal(jax.random.key(0), (2, 2))))[0]
    total = np.zeros(2)
    for J in jacs:
        Q, R = np.linalg.qr(J @ Q)
        total += np.log(np.abs(np.diag(R)))
    np.testing.assert_allclose(from_j.exponents, total / T, rtol=1e-10)
    np.testing.assert_allclose(stateless.exponents, from_j.exponents, rtol=1e-12)
    np.testing.assert_allclose(stateful.exponents, from_j.exponents, rtol=1e-8)
    np.testing.assert_allclose(via_step.exponents, from_j.exponents, rtol=1e-8)
    np.testing.assert_allclose(stateful.final_state, x, rtol=1e-8)
    np.testing.assert_allclose(via_step.final_state, x, rtol=1e-8)
    assert stateless.final_state is None
