"""Covariant Lyapunov vectors and the Kaplan–Yorke dimension, on systems with known answers."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import resflow as rf
from tests.conftest import np_trajectory


def _unit_columns(P):
    return P / np.linalg.norm(P, axis=0)


def _assert_equal_up_to_sign(V, P, atol):
    # V: (T, n, k) CLVs; P: (n, k) expected unit vectors, matched column by column
    cos = np.abs(np.einsum("tik,ik->tk", np.asarray(V), P))
    np.testing.assert_allclose(cos, 1.0, atol=atol)


@pytest.mark.parametrize(
    "P, eig",
    [
        (np.array([[1.0, 1.0], [0.2, 1.0]]), [2.0, 0.5]),
        (np.array([[1.0, 0.6, 0.1], [0.0, 0.8, 0.5], [0.3, 0.0, 1.0]]), [3.0, -1.2, 0.4]),
    ],
    ids=["2x2", "3x3"],
)
def test_constant_matrix_clvs_are_its_eigenvectors(P, eig):
    # x ↦ A x with A = P diag(eig) P⁻¹, eigenvectors not orthogonal: the CLVs are P's columns
    # (ordered by |eigenvalue|), the exponents log|eig|; the QR vectors would be orthogonal instead
    A = jnp.asarray(P @ np.diag(eig) @ np.linalg.inv(P))
    res = rf.covariant_lyapunov_vectors(lambda x: A @ x, jnp.ones(len(eig)), 20, transient=60)
    _assert_equal_up_to_sign(res.vectors, _unit_columns(P), 1e-10)
    np.testing.assert_allclose(np.asarray(res.exponents), np.log(np.abs(eig)), atol=1e-10)
    cos01 = abs(_unit_columns(P)[:, 0] @ _unit_columns(P)[:, 1])
    np.testing.assert_allclose(np.asarray(res.angles[:, 0, 1]), np.arccos(cos01), atol=1e-8)
    assert res.vectors.shape == (20, len(eig), len(eig)) and res.times[0] == 60


def test_cat_map_clvs_are_its_orthogonal_eigenvectors():
    # Arnold's cat map on the torus, J = [[2, 1], [1, 1]] everywhere: exponents ±ln((3 + √5)/2),
    # eigenvectors orthogonal (J symmetric), so the CLVs meet at π/2
    def cat(x):
        return jnp.mod(jnp.array([[2.0, 1.0], [1.0, 1.0]]) @ x, 1.0)

    res = rf.covariant_lyapunov_vectors(cat, jnp.array([0.1, 0.3]), 10, transient=40)
    lam = np.log((3 + np.sqrt(5)) / 2)
    np.testing.assert_allclose(np.asarray(res.exponents), [lam, -lam], atol=1e-10)
    P = np.array([[2.0, 1 - np.sqrt(5)], [np.sqrt(5) - 1, 2.0]])  # eigenvectors for (3 ± √5)/2
    _assert_equal_up_to_sign(res.vectors, _unit_columns(P), 1e-10)
    np.testing.assert_allclose(np.asarray(res.angles[:, 0, 1]), np.pi / 2, atol=1e-8)


def henon(x, a=1.4, b=0.3):
    return jnp.stack([1 - a * x[0] ** 2 + x[1], b * x[0]])


def test_henon_clvs_are_covariant():
    res = rf.covariant_lyapunov_vectors(henon, jnp.array([0.1, 0.1]), 300, transient=100)
    J = jax.vmap(jax.jacfwd(henon))(res.orbit[:-1])
    Jv = np.einsum("tij,tjk->tik", J, res.vectors[:-1])
    Jv /= np.linalg.norm(Jv, axis=1, keepdims=True)
    # J_t v_t ∝ v_{t+1}, column by column
    np.testing.assert_allclose(np.abs(np.einsum("tik,tik->tk", Jv, res.vectors[1:])), 1.0, atol=1e-8)
    np.testing.assert_allclose(res.orbit[1:], jax.vmap(henon)(res.orbit[:-1]), atol=1e-12)
    angles = np.asarray(res.angles[:, 0, 1])
    assert np.all((angles > 0) & (angles <= np.pi / 2))
    np.testing.assert_allclose(np.asarray(rf.dynamics.subspace_angles(res.vectors, 1)), angles, atol=1e-10)
    # ln b sum rule and the literature spectrum (0.419, −1.623) at two digits
    assert abs(float(res.exponents.sum()) - np.log(0.3)) < 1e-10
    assert abs(float(res.exponents[0]) - 0.419) < 0.03


def test_vmap_over_starting_points():
    x0s = jnp.array([[0.1, 0.1], [0.2, -0.1]])
    batched = jax.vmap(lambda x: rf.covariant_lyapunov_vectors(henon, x, 20, transient=30).vectors)(x0s)
    one = rf.covariant_lyapunov_vectors(henon, x0s[1], 20, transient=30).vectors
    np.testing.assert_allclose(np.asarray(batched[1]), np.asarray(one), atol=1e-12)


def test_flow_clvs_linear_and_covariant():
    # y' = A y: the flow map over dt is expm(dt A), whose eigenvectors are A's; exponents = eigenvalues
    P = np.array([[1.0, 0.5], [0.3, 1.0]])
    A = jnp.asarray(P @ np.diag([0.2, -0.7]) @ np.linalg.inv(P))
    res = rf.covariant_lyapunov_vectors_flow(lambda t, y, a: A @ y, jnp.ones(2), 2.0, dt=0.5, transient=15.0)
    _assert_equal_up_to_sign(res.vectors, _unit_columns(P), 1e-7)
    np.testing.assert_allclose(np.asarray(res.exponents), [0.2, -0.7], atol=1e-5)
    np.testing.assert_allclose(np.asarray(res.times), 15.0 + 0.5 * np.arange(4))


def linear_field(t, y, A):
    return A @ y


@pytest.mark.parametrize(
    "dt, match",
    [
        (0.0, "dt must be a finite number > 0, got 0.0"),
        (-0.5, "dt must be a finite number > 0"),
        (float("inf"), "dt must be a finite number > 0, got inf"),
        (float("nan"), "dt must be a finite number > 0, got nan"),
        (np.array([0.1, 0.2]), "dt must be a scalar"),
        (3.0, "dt = 3.0 must not exceed the measured window .* 2"),
    ],
)
def test_flow_clvs_refuse_a_bad_dt(dt, match):
    with pytest.raises(ValueError, match=match):
        rf.covariant_lyapunov_vectors_flow(linear_field, jnp.ones(2), 2.0, dt=dt, transient=1.0, args=-jnp.eye(2))


def test_flow_clvs_refuse_a_dt_that_aligns_the_frame():
    # y' = diag(0.2, −40) y: over one interval the second column draws towards the first by
    # exp(−dt·40.2), 3e-18 at dt = 1, below 1e3·eps; the backward pass would divide by
    # rounding. At dt = 0.25 (exp(−10) ≈ 5e-5) the exponents are A's eigenvalues. (atol is
    # tiny so that the solver resolves the small components and rounding is the limit.)
    # Both runs have 2 transient and 4 measured intervals: one compiled program (dt is traced).
    A = jnp.diag(jnp.array([0.2, -40.0]))
    kw = dict(args=A, stepsize_controller=diffrax.PIDController(rtol=1e-10, atol=1e-40))
    with pytest.raises(ValueError, match=r"dt = 1.0 is too long for this flow"):
        rf.covariant_lyapunov_vectors_flow(linear_field, jnp.ones(2), 4.0, dt=1.0, transient=2.0, **kw)
    res = rf.covariant_lyapunov_vectors_flow(linear_field, jnp.ones(2), 1.0, dt=0.25, transient=0.5, **kw)
    np.testing.assert_allclose(np.asarray(res.exponents), [0.2, -40.0], rtol=1e-6)


def test_network_clvs_are_the_finite_time_vectors_of_the_product():
    # A T-layer network is the product M(0, T) = J_{T-1} ... J_0 = U diag(σ) Vᵀ. Its CLVs are
    # v_t^j ∝ M(0, t) V_j, exponents log(σ_j)/T: a float64 numpy construction from the SVD.
    trunk = rf.Trunk.init(jax.random.key(3), 4, shared=False, depth=12, w_std=2.0, b_std=0.5)
    x0 = jax.random.normal(jax.random.key(4), (4,))
    res = rf.network_covariant_vectors(trunk, x0)
    xs = np_trajectory(trunk.W, trunk.b, x0, 12)
    np.testing.assert_allclose(np.asarray(res.orbit), xs[:-1], atol=1e-12)
    # numpy closed form of the layer Jacobians: J_t = I + h diag(σ'(a_t)) W_t, a_t = W_t x_t + b_t
    W, b = np.asarray(trunk.W), np.asarray(trunk.b)
    s = 1 / (1 + np.exp(-(np.einsum("tij,tj->ti", W, xs[:-1]) + b)))
    J = np.eye(4) + (s * (1 - s))[:, :, None] * W
    Ms = [np.eye(4)]
    for Jt in J:
        Ms.append(Jt @ Ms[-1])
    _, sigma, Vt = np.linalg.svd(Ms[-1])
    ref = np.einsum("tij,jk->tik", np.stack(Ms[:-1]), Vt.T)
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    cos = np.abs(np.einsum("tik,tik->tk", np.asarray(res.vectors), ref))
    np.testing.assert_allclose(cos, 1.0, atol=1e-12)
    np.testing.assert_allclose(np.asarray(res.exponents), np.log(sigma) / 12, atol=1e-12)
    assert np.all(np.diff(np.asarray(res.exponents)) < 0)  # j = 0 the most expanding
    # covariance J_t v_t ∝ v_{t+1} against the numpy Jacobians
    Jv = np.einsum("tij,tjk->tik", J[:-1], res.vectors[:-1])
    Jv /= np.linalg.norm(Jv, axis=1, keepdims=True)
    np.testing.assert_allclose(np.abs(np.einsum("tik,tik->tk", Jv, res.vectors[1:])), 1.0, atol=1e-12)
    # the leading k vectors are those of the full set
    two = rf.network_covariant_vectors(trunk, x0, num_vectors=2)
    np.testing.assert_allclose(np.abs(np.einsum("tik,tik->tk", two.vectors, res.vectors[..., :2])), 1.0, atol=1e-12)


def test_network_clvs_of_a_constant_jacobian_are_its_eigenvectors():
    # relu in its linear region: a_{t+1} = (I + W) a_t with a_0 = b = p_0 > 0, so a_t = 2^t p_0 > 0
    # and J_t = A = P diag(2, 1, 1/2) P⁻¹ at every layer. Away from both ends (the gaps are ln 2
    # per layer) the CLVs are P's columns. 80 layers spread the singular values over 4^80 ≈ 10^48,
    # far beyond what the SVD of the explicit product resolves.
    P = np.array([[1.0, 0.6, 0.1], [0.5, 0.8, 0.5], [0.3, 0.0, 1.0]])
    A = P @ np.diag([2.0, 1.0, 0.5]) @ np.linalg.inv(P)
    trunk = rf.Trunk(jnp.asarray(A - np.eye(3)), jnp.asarray(P[:, 0]), activation="relu")
    res = rf.network_covariant_vectors(trunk, jnp.zeros(3), depth=80)
    _assert_equal_up_to_sign(res.vectors[30:50], _unit_columns(P), 1e-12)
    np.testing.assert_allclose(np.asarray(res.exponents), np.log([2.0, 1.0, 0.5]), atol=0.02)


@pytest.mark.parametrize(
    "spectrum, expected",
    [
        ([0.419, -1.623], 1 + 0.419 / 1.623),  # Hénon, 1.258
        ([0.9056, 0.0, -14.5723], 2 + 0.9056 / 14.5723),  # Lorenz, 2.062
        ([-0.1, -1.0], 0.0),  # stable fixed point
        ([0.5, 0.2], 2.0),  # no contraction
        ([0.3, -0.1, -0.5], 2 + 0.2 / 0.5),
        ([-1.623, 0.419], 1 + 0.419 / 1.623),  # any order
    ],
)
def test_kaplan_yorke_closed_form(spectrum, expected):
    assert abs(float(rf.kaplan_yorke_dimension(jnp.asarray(spectrum))) - expected) < 1e-12


def test_kaplan_yorke_of_integer_exponents():
    # integers are exponents too: 1 + 1/2
    assert float(rf.kaplan_yorke_dimension([1, -2])) == 1.5
    assert float(rf.kaplan_yorke_dimension(np.array([[2, 1, -4]]))[0]) == 2.75


def test_kaplan_yorke_batch_and_literature_values():
    d = np.asarray(rf.kaplan_yorke_dimension(jnp.array([[0.419, -1.623], [-1.0, -2.0]])))
    np.testing.assert_allclose(d, [1.258, 0.0], atol=1e-3)
    assert round(float(rf.kaplan_yorke_dimension(jnp.array([0.9056, 0.0, -14.5723]))), 2) == 2.06


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: rf.covariant_lyapunov_vectors(henon, jnp.ones(2), 0), ValueError, "num_steps"),
        (lambda: rf.covariant_lyapunov_vectors(henon, jnp.ones(2), 5, num_vectors=3), ValueError, "num_vectors"),
        (lambda: rf.covariant_lyapunov_vectors(henon, jnp.ones((2, 2)), 5), ValueError, "x0"),
        (lambda: rf.covariant_lyapunov_vectors(henon, jnp.array([jnp.nan, 0.0]), 5), ValueError, "finite"),
        (lambda: rf.covariant_lyapunov_vectors(lambda x: x[:1], jnp.ones(2), 5), ValueError, "shape"),
        (
            lambda: rf.covariant_lyapunov_vectors_flow(lambda t, y, a: y, jnp.ones(2), 1.0, transient=-1),
            ValueError,
            "transient",
        ),
        (lambda: rf.network_covariant_vectors(rf.Trunk.init(jax.random.key(0), 3), jnp.ones(3)), ValueError, "depth"),
        (
            lambda: rf.network_covariant_vectors(rf.Trunk.init(jax.random.key(0), 3), jnp.ones((2, 3)), depth=2),
            ValueError,
            "one input",
        ),
        (lambda: rf.dynamics.subspace_angles(jnp.ones((3, 2)), 2), ValueError, "num_unstable"),
        # W = 0: every layer is the identity, all singular values 1, no direction singled out
        (
            lambda: rf.network_covariant_vectors(rf.Trunk(jnp.zeros((3, 3)), jnp.ones(3)), jnp.ones(3), depth=5),
            ValueError,
            "not defined at num_vectors=3",
        ),
        (lambda: rf.kaplan_yorke_dimension(jnp.float64(1.0)), ValueError, "exponents"),
        (
            lambda: rf.kaplan_yorke_dimension(jnp.array([jnp.nan, jnp.nan])),
            ValueError,
            "exponents must not contain NaN",
        ),
        (lambda: rf.kaplan_yorke_dimension(jnp.array([0.5, jnp.nan])), ValueError, "NaN"),
        (lambda: rf.kaplan_yorke_dimension(object()), TypeError, "exponents"),
    ],
)
def test_bad_inputs(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_validation_page_names_existing_tests():
    # docs/dynamics/validation.md lists a test for every validation tier; each must exist
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    names = re.findall(r"`(tests/\w+\.py)::(\w+)`", (root / "docs/dynamics/validation.md").read_text())
    assert len(names) >= 20
    missing = [f"{f}::{t}" for f, t in names if f"def {t}(" not in (root / f).read_text()]
    assert not missing, missing
