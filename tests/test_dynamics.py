"""Generic dynamics tools against systems with known answers (closed forms, numpy float64)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import count_compiles

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


class Poly2(eqx.Module):
    """x ↦ c + A x + q x₀² + d ⊙ x³ on R²: the fixed-point tests' maps (Hénon, linear, shifted,
    quadratic, cubic) as one family. Its coefficients are arrays, traced by `find_fixed_points`,
    so every member with the same starts shape shares one compiled program (a fresh function
    would build its own, about a second each)."""

    c: jax.Array
    A: jax.Array
    q: jax.Array
    d: jax.Array

    def __call__(self, x):
        return self.c + self.A @ x + self.q * x[0] ** 2 + self.d * x**3


def poly2(*, c=(0.0, 0.0), A=((0.0, 0.0), (0.0, 0.0)), q=(0.0, 0.0), d=(0.0, 0.0), dtype=jnp.float64):
    return Poly2(*(jnp.asarray(v, dtype) for v in (c, A, q, d)))


def henon_map(dtype=jnp.float64):
    """`henon` as a `Poly2`: 1 − a x₀² + x₁, b x₀."""
    return poly2(c=(1.0, 0.0), A=[[0.0, 1.0], [B_HENON, 0.0]], q=(-A_HENON, 0.0), dtype=dtype)


NUM_STARTS = 36  # one starts shape for the fixed-point tests (36 = 9 fixed points × 4 for `cubic`)
STARTS = jax.random.uniform(jax.random.key(1), (NUM_STARTS, 2), minval=-2, maxval=2)


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


# --------------------------------------------------------------------------------------------
# more Lyapunov


def test_top_k_of_diagonal_map_and_rotation_scaling():
    d = np.array([0.3, 2.0, -1.5, 0.8])
    want = np.sort(np.log(np.abs(d)))[::-1]
    full = rf.lyapunov_spectrum(linear(np.diag(d)), jnp.ones(4), 5000).exponents
    # finite-time error ~ log(projection of the initial frame) / T
    np.testing.assert_allclose(full, want, atol=2e-3)
    for k in (1, 2, 3):
        res = rf.lyapunov_spectrum(linear(np.diag(d)), jnp.ones(4), 5000, num_exponents=k)
        np.testing.assert_allclose(res.exponents, full[:k], rtol=1e-12)
    th = 0.7
    rot = 1.5 * np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    res = rf.lyapunov_spectrum(linear(rot), jnp.ones(2), 10)
    np.testing.assert_allclose(res.exponents, [np.log(1.5)] * 2, rtol=1e-12)


def test_running_estimates_match_numpy_qr():
    T = 20
    res = rf.lyapunov_spectrum_from_jacobians(np.broadcast_to(A_TRI, (T, 3, 3)), return_running=True)
    Q = np.linalg.qr(np.asarray(jax.random.normal(jax.random.key(0), (3, 3))))[0]
    total, running = np.zeros(3), []
    for t in range(T):
        Q, R = np.linalg.qr(A_TRI @ Q)
        total += np.log(np.abs(np.diag(R)))
        running.append(total / (t + 1))
    np.testing.assert_allclose(res.running, np.array(running), rtol=1e-10)
    # the same system through a step map and through stateless products
    via_step = rf.lyapunov_spectrum(linear(A_TRI), jnp.ones(3), T)
    via_prod = rf.lyapunov_spectrum_from_products(lambda t, q: jnp.asarray(A_TRI) @ q, T, n=3)
    np.testing.assert_allclose(via_step.exponents, res.exponents, rtol=1e-12)
    np.testing.assert_allclose(via_prod.exponents, res.exponents, rtol=1e-12)


def test_initial_q_and_key_select_the_frame():
    d = np.diag([0.5, 3.0])
    # a frame aligned with the slow axis never sees the fast one: the explicit frame is used
    slow = rf.lyapunov_spectrum_from_products(
        lambda t, q: jnp.asarray(d) @ q, 5, n=2, initial_q=jnp.array([[1.0], [0.0]])
    )
    np.testing.assert_allclose(slow.exponents, [np.log(0.5)], rtol=1e-12)
    keyed = rf.lyapunov_spectrum_from_products(
        lambda t, q: jnp.asarray(d) @ q, 200, n=2, num_exponents=1, key=jax.random.key(3)
    )
    np.testing.assert_allclose(keyed.exponents, [np.log(3.0)], atol=1e-2)


def test_henon_float32():
    res = rf.lyapunov_spectrum(henon, jnp.array([0.1, 0.1], jnp.float32), 20_000, burn_in=100)
    assert res.exponents.dtype == jnp.float32
    np.testing.assert_allclose(res.exponents.sum(), np.log(B_HENON), atol=1e-4)
    np.testing.assert_allclose(res.exponents[0], 0.419, atol=1e-2)


def test_lyapunov_jit_and_vmap_over_x0():
    x0s = jnp.array([[0.1, 0.1], [0.2, -0.1], [-0.3, 0.05]])
    fn = jax.jit(lambda x: rf.lyapunov_spectrum(henon, x, 40).exponents)
    batched = jax.vmap(fn)(x0s)
    builtin = rf.lyapunov_spectrum(henon, x0s, 40).exponents
    for i in range(3):
        one = rf.lyapunov_spectrum(henon, x0s[i], 40).exponents
        np.testing.assert_allclose(batched[i], one, rtol=1e-8)
        np.testing.assert_allclose(builtin[i], one, rtol=1e-8)


# --------------------------------------------------------------------------------------------
# Jacobian spectrum


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_jacobian_spectrum_matches_numpy(dtype):
    pts = np.random.default_rng(0).uniform(-1, 1, (2, 3, 2))
    spec = rf.jacobian_spectrum(henon, jnp.asarray(pts, dtype))
    assert spec.eigenvalues.shape == (2, 3, 2) and spec.jacobian.shape == (2, 3, 2, 2)
    rtol = 1e-5 if dtype == jnp.float32 else 1e-12
    for p, ev, J in zip(
        pts.reshape(-1, 2), spec.eigenvalues.reshape(-1, 2), spec.jacobian.reshape(-1, 2, 2), strict=True
    ):
        ref = np.linalg.eigvals(np_henon_jacobian(p))
        ref = ref[np.argsort(-np.abs(ref), kind="stable")]
        np.testing.assert_allclose(J, np_henon_jacobian(p), rtol=rtol, atol=rtol)
        np.testing.assert_allclose(np.abs(ev), np.abs(ref), rtol=rtol)
        np.testing.assert_allclose(np.sort_complex(ev), np.sort_complex(ref), rtol=rtol, atol=rtol)
    jitted = jax.jit(lambda x: rf.jacobian_spectrum(henon, x).eigenvalues)(jnp.asarray(pts, dtype))
    np.testing.assert_allclose(jitted, spec.eigenvalues, rtol=rtol)


# --------------------------------------------------------------------------------------------
# fixed points


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_henon_fixed_points_closed_form(dtype):
    res = rf.find_fixed_points(henon_map(dtype), STARTS.astype(dtype))
    assert bool(res.converged.all())
    uniq, counts = rf.unique_fixed_points(res, return_counts=True)
    assert counts.sum() == NUM_STARTS and len(counts) == 2
    disc = np.sqrt((1 - B_HENON) ** 2 + 4 * A_HENON)
    xs = (-(1 - B_HENON) + np.array([disc, -disc])) / (2 * A_HENON)
    want = np.stack([xs, B_HENON * xs], axis=1)
    order = np.argsort(-np.asarray(uniq.points[:, 0]))
    tol = 1e-4 if dtype == jnp.float32 else 1e-12
    np.testing.assert_allclose(uniq.points[order], want, atol=tol)
    for p, ev in zip(want, uniq.eigenvalues[order], strict=True):
        ref = np.linalg.eigvals(np_henon_jacobian(p))
        np.testing.assert_allclose(np.sort(np.abs(ev)), np.sort(np.abs(ref)), rtol=tol)
        assert (np.abs(ref) > 1).sum() == 1  # one unstable multiplier: a saddle
    assert list(uniq.labels) == ["saddle", "saddle"]
    assert uniq.points.dtype == dtype


@pytest.mark.parametrize(
    "A, label",
    [
        (np.diag([0.5, -0.2]), "attractor"),
        (np.array([[2.0, 1.0], [0.0, -3.0]]), "repeller"),
        (np.array([[0.5, 3.0], [0.0, 2.0]]), "saddle"),
        (np.array([[0.0, -1.0], [1.0, 0.0]]), "marginal"),  # rotation by π/2: |μ| = 1
    ],
)
def test_linear_map_fixed_point_is_origin(A, label):
    res = rf.find_fixed_points(poly2(A=A), 2 * STARTS)
    np.testing.assert_allclose(res.points, 0.0, atol=1e-12)
    assert list(res.labels) == [label] * NUM_STARTS
    assert int(res.stability[0]) == rf.dynamics.Stability[label.upper()]
    ref = np.linalg.eigvals(A)
    np.testing.assert_allclose(np.sort_complex(res.eigenvalues[0]), np.sort_complex(ref), atol=1e-12)


def test_newton_fallback_from_singular_jacobian():
    # F(x, y) = (x² − y, x + y − 2): roots (1, 1) and (−2, 4); det J_F = 2x + 1 = 0 at the start
    # step(v) = v + (v₀² − v₁, v₀ + v₁ − 2); the start of interest is row 0 of a shared batch
    step = poly2(A=[[1.0, -1.0], [1.0, 2.0]], c=(0.0, -2.0), q=(1.0, 0.0))
    res = rf.find_fixed_points(step, STARTS.at[0].set(jnp.array([-0.5, 0.0])))
    assert bool(res.converged[0])
    p = np.asarray(res.points[0])
    assert min(np.abs(p - [1, 1]).max(), np.abs(p - [-2, 4]).max()) < 1e-10


def test_no_fixed_point_is_reported_unconverged():
    res = rf.find_fixed_points(poly2(A=np.eye(2), c=(1.0, 1.0)), STARTS)  # x ↦ x + 1
    assert not bool(res.converged.any())
    assert list(res.labels) == ["unconverged"] * NUM_STARTS
    assert len(rf.unique_fixed_points(res).points) == 0


@pytest.mark.parametrize(
    "matrix, label",
    [
        (np.diag([0.5, 0.2]), "attractor"),  # stable node
        (np.array([[0.5, -0.5], [0.5, 0.5]]), "attractor"),  # stable focus, |μ| = 0.71
        (np.diag([2.0, 0.5]), "saddle"),
        (np.array([[0.5, 3.0], [0.0, -2.0]]), "saddle"),  # non-normal, μ = 0.5, −2
        (np.diag([2.0, -3.0]), "repeller"),  # unstable node
        (np.array([[1.2, -1.2], [1.2, 1.2]]), "repeller"),  # unstable focus
        (np.array([[0.0, -1.0], [1.0, 0.0]]), "marginal"),  # rotation: |μ| = 1
        (np.diag([1.0, 0.5]), "marginal"),  # inconclusive: a neutral direction, the other stable
        (np.diag([1.0, 2.0]), "saddle"),  # unstable whatever the neutral direction does
    ],
)
def test_classifier_labels_known_linearisations(matrix, label):
    mult = np.linalg.eigvals(matrix)  # float64 numpy: the multipliers in closed form
    code = rf.dynamics.classify_stability(jnp.asarray(mult), marginal_tol=1e-8)
    assert rf.dynamics.Stability(int(code)).label == label
    assert int(rf.dynamics.classify_stability(mult, np.False_, marginal_tol=1e-8)) == rf.dynamics.Stability.UNCONVERGED


def test_classifier_band_neutral_mask_and_batches():
    classify = rf.dynamics.classify_stability
    near = np.array([[1 + 1e-9, 0.5], [1 - 1e-9, 0.5]])
    np.testing.assert_array_equal(classify(near, marginal_tol=1e-6), [rf.dynamics.Stability.MARGINAL] * 2)
    np.testing.assert_array_equal(
        classify(near, marginal_tol=1e-12), [rf.dynamics.Stability.SADDLE, rf.dynamics.Stability.ATTRACTOR]
    )
    # a continuum of fixed points: the multiplier 1 along it left out, the point attracts transversally
    along = np.array([[True, False]])
    assert int(classify(np.array([[1.0, 0.5]]), marginal_tol=1e-8, neutral=along)[0]) == rf.dynamics.Stability.ATTRACTOR
    assert int(classify(np.array([[1.0, 1.5]]), marginal_tol=1e-8, neutral=along)[0]) == rf.dynamics.Stability.REPELLER
    batch = np.stack([np.linalg.eigvals(np.diag(d)) for d in ([0.1, 0.2], [3.0, 0.2], [3.0, 4.0])]).reshape(3, 1, 2)
    codes = jax.jit(lambda m: classify(m, marginal_tol=1e-8))(jnp.asarray(batch))
    assert codes.shape == (3, 1) and codes.dtype == jnp.int32
    np.testing.assert_array_equal(
        codes[:, 0], [rf.dynamics.Stability.ATTRACTOR, rf.dynamics.Stability.SADDLE, rf.dynamics.Stability.REPELLER]
    )


# per coordinate x ↦ x − 0.2(x³ − x) = 1.2 x − 0.2 x³: fixed points {−1, 0, 1}², f'(0) = 1.2, f'(±1) = 0.6
cubic = poly2(A=1.2 * np.eye(2), d=(-0.2, -0.2))


def _cubic_reference():
    """The 9 fixed points and their labels in closed form."""
    grid = np.array([(a, b) for a in (-1.0, 0.0, 1.0) for b in (-1.0, 0.0, 1.0)])
    zeros = (grid == 0).sum(1)
    return grid, np.array(["attractor", "saddle", "repeller"], dtype=object)[zeros]


@pytest.mark.parametrize("method", ["lm", "newton", "descent", "solver"])
def test_every_method_finds_the_closed_form_fixed_points_with_one_classifier(method):
    import optimistix as optx

    want, labels = _cubic_reference()
    # starts near each fixed point (descent is drawn to minima of q, which all nine are)
    starts = jnp.asarray(
        np.repeat(want, 4, axis=0) + jax.random.uniform(jax.random.key(3), (NUM_STARTS, 2), minval=-0.1, maxval=0.1)
    )
    if method == "descent":
        res = rf.find_fixed_points(cubic, starts, method="descent", max_iter=3000, tol=1e-6, xtol=1e-4)
    elif method == "solver":
        res = rf.find_fixed_points(cubic, starts, method=optx.Dogleg(rtol=1e-10, atol=1e-10))
    else:
        res = rf.find_fixed_points(cubic, starts, method=method)
    descent = method == "descent"  # only as precise as the optimiser: some starts end short of the tests
    converged = np.asarray(res.converged)
    assert converged.all() or (descent and converged.mean() >= 0.5)
    idx = np.abs(np.asarray(res.points)[:, None] - want).max(-1).argmin(1)
    dist = np.linalg.norm(np.asarray(res.points) - want[idx], axis=-1)
    assert dist.max() < (1e-3 if descent else 1e-12)
    assert np.all(dist[converged] <= np.asarray(res.error)[converged] + 1e-15)  # the bound holds
    assert list(res.labels) == list(labels[idx])
    slope = np.where(want[idx] == 0, 1.2, 0.6)  # f' at each coordinate: the multipliers
    mult = np.sort(np.abs(res.multipliers), -1)
    np.testing.assert_allclose(mult, np.sort(slope, -1), atol=1e-2 if descent else 1e-10)
    uniq = rf.unique_fixed_points(res)
    assert len(uniq.points) == len(np.unique(idx[converged])) and uniq.start_counts.sum() == converged.sum()


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="method"):
        rf.find_fixed_points(henon, jnp.ones(2), method="bisection")
    with pytest.raises(TypeError, match="method"):
        rf.find_fixed_points(henon, jnp.ones(2), method=3)


def test_find_fixed_points_jit_matches_eager():
    step = henon_map()
    eager = rf.find_fixed_points(step, STARTS)
    jitted = jax.jit(lambda s: rf.find_fixed_points(step, s))(STARTS)
    np.testing.assert_allclose(jitted.points, eager.points, rtol=1e-12)
    np.testing.assert_array_equal(jitted.stability, eager.stability)


# --------------------------------------------------------------------------------------------
# bad inputs


def bad_step_shape(x):
    return x[:1]


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: rf.lyapunov_spectrum(3.0, jnp.ones(2), 10), TypeError, "step"),
        (lambda: rf.lyapunov_spectrum(bad_step_shape, jnp.ones(2), 10), ValueError, "step"),
        (lambda: rf.lyapunov_spectrum(henon, jnp.ones(2), 10, num_exponents=3), ValueError, "num_exponents"),
        (lambda: rf.lyapunov_spectrum(henon, jnp.ones(2), 10, num_exponents=0), ValueError, "num_exponents"),
        (lambda: rf.lyapunov_spectrum(henon, jnp.ones(2), 0), ValueError, "num_steps"),
        (lambda: rf.lyapunov_spectrum(henon, jnp.ones(2), 10, burn_in=-1), ValueError, "burn_in"),
        (lambda: rf.lyapunov_spectrum(henon, jnp.array([np.nan, 0.0]), 10), ValueError, "x0"),
        (lambda: rf.lyapunov_spectrum_from_products("f", 10, n=2), TypeError, "jvp_fn"),
        (lambda: rf.lyapunov_spectrum_from_products(lambda t, q: q[:1], 10, n=2), ValueError, "jvp_fn"),
        (
            lambda: rf.lyapunov_spectrum_from_products(lambda t, q: q, 10, n=2, num_exponents=5),
            ValueError,
            "num_exponents",
        ),
        (
            lambda: rf.lyapunov_spectrum_from_products(
                lambda t, q: q, 10, n=2, num_exponents=2, initial_q=jnp.ones((2, 1))
            ),
            ValueError,
            "initial_q",
        ),
        (lambda: rf.lyapunov_spectrum_from_jacobians(jnp.ones((4, 2, 3))), ValueError, "jacobians"),
        (lambda: rf.jacobian_spectrum(None, jnp.ones(2)), TypeError, "step"),
        (lambda: rf.jacobian_spectrum(bad_step_shape, jnp.ones(2)), ValueError, "step"),
        (lambda: rf.find_fixed_points(henon, jnp.array([[0.0, np.inf]])), ValueError, "initial_points"),
        (lambda: rf.find_fixed_points(bad_step_shape, jnp.ones(2)), ValueError, "step"),
        (lambda: rf.find_fixed_points(henon, jnp.ones(2), tol=0.0), ValueError, "tol"),
        (lambda: rf.find_fixed_points(henon, jnp.ones(2), max_iter=0), ValueError, "max_iter"),
        (lambda: rf.find_fixed_points(henon, jnp.ones(2), xtol=-1.0), ValueError, "xtol"),
        (lambda: rf.unique_fixed_points(rf.find_fixed_points(henon_map(), STARTS), atol=0.0), ValueError, "atol"),
        (lambda: rf.unique_fixed_points(jnp.ones(2)), TypeError, "result"),
    ],
)
def test_bad_inputs(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


class UnhashableHenon:
    """A callable holding an array and no hash (like a module with array fields)."""

    __hash__ = None

    def __init__(self):
        self.b = jnp.asarray(B_HENON)

    def __call__(self, x):
        return jnp.stack([1 - A_HENON * x[0] ** 2 + x[1], self.b * x[0]])


def test_unhashable_step_and_repeated_calls():
    x = jnp.array([0.3, -0.2])
    ref = rf.jacobian_spectrum(henon, x)
    again = rf.jacobian_spectrum(henon, x)  # reuses the compiled function for the same step
    other = rf.jacobian_spectrum(UnhashableHenon(), x)
    np.testing.assert_allclose(again.jacobian, ref.jacobian, rtol=0)
    np.testing.assert_allclose(other.jacobian, np_henon_jacobian(np.asarray(x)), rtol=1e-14)


# --------------------------------------------------------------------------------------------
# convergence is scale-aware: slow points are not fixed points, close roots stay apart


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_trunk_map_has_no_fixed_point(dtype):
    # x ↦ x + h σ(Wx + b) moves every point (σ > 0): no start may come back converged,
    # although the map barely moves where σ saturates (‖F‖ ~ 1e-6 and below).
    trunk = rf.Trunk.init(jax.random.key(5), 3, w_std=2.0, dtype=dtype)
    starts = 10 * jax.random.normal(jax.random.key(0), (64, 3), dtype)
    res = rf.find_fixed_points(trunk.step, starts)
    assert int(res.converged.sum()) == 0
    assert set(res.labels) == {"unconverged"}
    assert len(rf.unique_fixed_points(res).points) == 0


def test_close_roots_found_precisely_and_kept_apart():
    # F(x) = 0.5 x (x - 0.002)(x - 1): roots 0, 0.002 and 1, two of them 0.002 apart
    def step(x):
        return x + 0.5 * x * (x - 0.002) * (x - 1)

    starts = jnp.linspace(-0.5, 1.5, 201, dtype=jnp.float32)[:, None]
    res = rf.find_fixed_points(step, starts)
    roots = np.array([0.0, 0.002, 1.0])
    pts = np.asarray(res.points[res.converged, 0], np.float64)
    assert len(pts) > 100
    dist = np.abs(pts[:, None] - roots).min(axis=1)
    assert dist.max() < 1e-6
    uniq = rf.unique_fixed_points(res)
    found = np.sort(np.asarray(uniq.points[:, 0], np.float64))
    assert len(found) == 3
    np.testing.assert_allclose(found, roots, atol=1e-6)


def test_error_bound_covers_the_true_distance():
    starts = jax.random.uniform(jax.random.key(2), (NUM_STARTS, 2), minval=-2, maxval=2)
    res = rf.find_fixed_points(henon_map(), starts)
    disc = np.sqrt((1 - B_HENON) ** 2 + 4 * A_HENON)
    xs = (-(1 - B_HENON) + np.array([disc, -disc])) / (2 * A_HENON)
    want = np.stack([xs, B_HENON * xs], axis=1)
    dist = np.linalg.norm(np.asarray(res.points)[:, None] - want, axis=-1).min(axis=1)
    assert bool(res.converged.all())
    assert np.all(dist <= np.asarray(res.error) + 1e-15)


class Counting(eqx.Module):
    """trunk.step behind a module (a pytree callable like trunk.step itself)."""

    trunk: rf.Trunk

    def __call__(self, x):
        return self.trunk.step(x)


@pytest.mark.parametrize("wrap", [lambda t: t.step, Counting])
def test_trunk_step_new_weights_reuse_the_compiled_code(wrap):
    t1, t2 = (rf.Trunk.init(jax.random.key(s), 3, w_std=1.5, b_std=0.5) for s in (1, 2))
    x0 = jnp.array([0.1, -0.2, 0.3])

    def run(trunk):
        step = wrap(trunk)
        lyap = rf.lyapunov_spectrum(step, x0, 20)
        fp = rf.find_fixed_points(step, x0[None])
        spec = rf.jacobian_spectrum(step, x0)
        return lyap, fp, spec

    (lyap1, fp1, _), first = count_compiles(lambda: run(t1))
    (lyap2, fp2, spec2), second = count_compiles(lambda: run(t2))
    assert first >= 3 and second == 0
    # the second trunk's own numbers, not the first's (numpy reference of its Jacobian)
    W, b = np.asarray(t2.W), np.asarray(t2.b)
    s = 1 / (1 + np.exp(-(W @ np.asarray(x0) + b)))
    np.testing.assert_allclose(spec2.jacobian, np.eye(3) + (s * (1 - s))[:, None] * W, rtol=1e-12)
    assert not np.allclose(lyap1.exponents, lyap2.exponents)
    assert not bool(fp2.converged.any())  # a resnet step has no fixed point (σ > 0)


def _np_qr_every_step(mats, q0):
    """Float64 numpy reference: a QR after every product, λ = mean log|diag R|, descending."""
    q = np.linalg.qr(np.asarray(q0, np.float64))[0]
    total = np.zeros(q.shape[1])
    for A in mats:
        q, r = np.linalg.qr(A @ q)
        total += np.log(np.abs(np.diag(r)))
    return np.sort(total / len(mats))[::-1]


@pytest.mark.parametrize("qr_every", [5, 40])
def test_qr_every_matches_numpy_qr_every_step(qr_every):
    # random products (mixed growth and contraction): blocks of m steps with one QR give the
    # exponents of a QR every step; 23 steps leave a shorter last block for m = 5; m = 40 > T is one block
    rng = np.random.default_rng(0)
    mats = rng.normal(size=(23, 7, 7)) * rng.uniform(0.3, 2.0, size=(23, 1, 1))
    q0 = rng.normal(size=(7, 4))
    ref = _np_qr_every_step(mats, q0)
    res = rf.lyapunov_spectrum_from_products(
        lambda t, q: jnp.asarray(mats)[t] @ q, 23, n=7, initial_q=q0, qr_every=qr_every
    )
    np.testing.assert_allclose(res.exponents, ref, rtol=1e-12, atol=1e-13)
    # stateful form: the carried state comes back after all 23 steps
    res_s = rf.lyapunov_spectrum_from_products(
        lambda t, s, q: (s + 1, jnp.asarray(mats)[t] @ q),
        23,
        n=7,
        initial_q=q0,
        init_state=jnp.int32(0),
        qr_every=qr_every,
    )
    np.testing.assert_allclose(res_s.exponents, ref, rtol=1e-12, atol=1e-13)
    assert int(res_s.final_state) == 23


@pytest.mark.parametrize("dtype, scale", [(jnp.float64, 1e40), (jnp.float32, 1e10)])
def test_qr_every_guard_keeps_small_directions_and_avoids_overflow(dtype, scale):
    # A = scale · V diag(e^3, 1, e^-3) V⁻¹: over a block of 10 steps the columns align to
    # within e^-60 (far below ε) and grow by scale^10 (overflows the dtype): the column
    # rescaling and the guard's per-step redo must still give the QR-every-step exponents
    # (float64 numpy), which tend to log|eigenvalues| + log(scale)
    V = np.array([[1.0, 0.4, 0.1], [0.0, 1.0, 0.5], [0.3, 0.0, 1.0]])
    A = scale * V @ np.diag(np.exp([3.0, 0.0, -3.0])) @ np.linalg.inv(V)
    Aj = jnp.asarray(A, dtype)
    q0 = np.linalg.qr(np.random.default_rng(2).normal(size=(3, 3)))[0]
    res = rf.lyapunov_spectrum_from_products(
        lambda t, q: Aj @ q, 200, n=3, initial_q=jnp.asarray(q0, dtype), qr_every=10
    )
    exact = np.array([3.0, 0.0, -3.0]) + np.log(scale)
    assert np.all(np.isfinite(res.exponents))
    rtol = 1e-12 if dtype == jnp.float64 else 1e-5  # float32: rounding of A and of 200 QRs
    np.testing.assert_allclose(res.exponents, _np_qr_every_step(np.broadcast_to(A, (200, 3, 3)), q0), rtol=rtol)
    every = rf.lyapunov_spectrum_from_products(lambda t, q: Aj @ q, 200, n=3, initial_q=jnp.asarray(q0, dtype))
    np.testing.assert_allclose(res.exponents, every.exponents, rtol=1e-12 if dtype == jnp.float64 else 1e-6)
    np.testing.assert_allclose(res.exponents, exact, atol=0.02)  # finite-T transient of a non-normal A
    # without the redo, the third direction is lost: the block's QR alone is far off
    unguarded = _np_block_qr(A, 200, 10, dtype)
    assert abs(unguarded[2] - exact[2]) > 0.1


def _np_block_qr(A, T, m, dtype):
    """Blocks of m column-normalised products, one QR each, no guard (what the guard prevents)."""
    q = np.eye(3, dtype=np.dtype(dtype))
    total = np.zeros(3)
    for _ in range(T // m):
        for _ in range(m):
            q = A.astype(q.dtype) @ q
            norm = np.linalg.norm(q, axis=0)
            q = q / norm
            total += np.log(norm)
        q, r = np.linalg.qr(q)
        total += np.log(np.abs(np.diag(r)) + np.finfo(q.dtype).tiny)
    return np.sort(total / T)[::-1]


def test_qr_every_running_and_bad_values():
    rng = np.random.default_rng(1)
    mats = jnp.asarray(rng.normal(size=(9, 4, 4)))
    every = rf.lyapunov_spectrum_from_products(lambda t, q: mats[t] @ q, 9, n=4, return_running=True)
    blocks = rf.lyapunov_spectrum_from_products(lambda t, q: mats[t] @ q, 9, n=4, return_running=True, qr_every=4)
    np.testing.assert_allclose(blocks.running, every.running, rtol=1e-12)  # running: a QR every step
    with pytest.raises(ValueError, match="qr_every"):
        rf.lyapunov_spectrum_from_products(lambda t, q: mats[t] @ q, 9, n=4, qr_every=0)
