"""Cooperation/competition coefficients vs jax.jacfwd of the residual-only map; pair classes by hand."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import resflow as rf


def _residual_map(W, h, r):
    return jax.nn.sigmoid(jnp.log(r) - jnp.log1p(-r) + h * (W @ r))


def _residuals(trunk, traj):
    """r_t = σ(W_t x_t + b_t) for t < T, written out (shared or untied)."""
    if trunk.shared:
        return jax.nn.sigmoid(traj[:-1] @ trunk.W.T + trunk.b)
    T = traj.shape[0] - 1
    return jax.nn.sigmoid(jnp.einsum("tbj,tij->tbi", traj[:-1], trunk.W[:T]) + trunk.b[:T, None])


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
def test_coefficients_are_the_off_diagonal_of_the_residual_jacobian(dtype):
    h = 0.6
    params = rf.Trunk.init(jax.random.key(0), 4, w_std=2.0, b_std=0.5, h=h, dtype=dtype)
    x0 = jax.random.normal(jax.random.key(1), (3, 4), dtype)
    r = _residuals(params, rf.trajectory(params, x0, depth=5))
    C = rf.interaction_coefficients(params, r)
    assert C.shape == (4, 3, 4, 4) and C.dtype == dtype
    J = jax.vmap(jax.vmap(jax.jacfwd(functools.partial(_residual_map, params.W.astype(jnp.float64), h))))(
        r[:-1].astype(jnp.float64)
    )
    off = ~np.eye(4, dtype=bool)
    tol = 1e-5 if dtype == jnp.float32 else 1e-12
    np.testing.assert_allclose(np.asarray(C)[..., off], np.asarray(J)[..., off], rtol=tol, atol=tol)
    # diagonal: the Jacobian's diagonal minus the persistence term d_{t+1} / d_t
    d = np.asarray(r, np.float64) * (1 - np.asarray(r, np.float64))
    diag_ref = np.diagonal(np.asarray(J), axis1=-2, axis2=-1) - d[1:] / d[:-1]
    np.testing.assert_allclose(np.diagonal(np.asarray(C), axis1=-2, axis2=-1), diag_ref, rtol=tol, atol=tol)


def test_untied_coefficients_use_the_next_layer():
    h = 0.5
    params = rf.Trunk.init(jax.random.key(2), 3, shared=False, depth=4, w_std=2.0, b_std=0.5, h=h)
    x0 = jax.random.normal(jax.random.key(3), (2, 3))
    traj = rf.trajectory(params, x0, depth=4)
    r = _residuals(params, traj)
    C = rf.interaction_coefficients(params, r)
    for t in range(3):
        layer = params.layer(t + 1)

        def nxt(rt, x, layer=layer):
            return jax.nn.sigmoid(layer.W @ (x + h * rt) + layer.b)

        J = jax.vmap(jax.jacfwd(nxt))(r[t], traj[t])
        off = ~np.eye(3, dtype=bool)
        np.testing.assert_allclose(np.asarray(C[t])[:, off], np.asarray(J)[:, off], rtol=1e-12, atol=1e-14)


def test_pair_classes_by_hand():
    W = np.array([[0.5, 1.0, -1.0, -0.7], [2.0, -0.1, -3.0, 1.0], [-0.5, -1.0, 0.2, 0.3], [1e-3, -2.0, 0.4, 1.0]])
    got = np.asarray(rf.analysis.pair_classes(W))
    P = rf.analysis.PairClass
    S, N, M, C, E = P.SELF, P.NEUTRAL, P.MUTUALISM, P.COMPETITION, P.EXPLOITATION
    want = np.array([[S, M, C, E], [M, S, C, E], [C, C, S, M], [E, E, M, S]])
    np.testing.assert_array_equal(got, want)
    got_tol = np.asarray(rf.analysis.pair_classes(W, atol=0.01))
    assert got_tol[0, 3] == N and got_tol[3, 0] == N and got_tol[1, 2] == C
    stack = np.asarray(rf.analysis.pair_classes(np.stack([W, -W])))
    assert stack.shape == (2, 4, 4) and stack[1, 0, 1] == C and stack[1, 0, 3] == E
    assert rf.analysis.PairClass(M).label == "mutualism"
    assert [c.label for c in rf.analysis.PairClass] == ["self", "neutral", "mutualism", "competition", "exploitation"]


def test_summary_per_class():
    # hand-made coefficients: class 0 all +1 off-diagonal at layer 0; class 1 one -2 and one +1
    C = np.zeros((2, 3, 2, 2))
    C[0, 0] = [[5.0, 1.0], [1.0, 5.0]]
    C[0, 1] = [[0.0, -2.0], [1.0, 0.0]]
    C[0, 2] = [[0.0, -2.0], [1.0, 0.0]]
    labels = jnp.array([0, 1, 1])
    s = rf.interaction_summary(jnp.asarray(C), labels)
    np.testing.assert_array_equal(s.class_counts, [1, 2])
    np.testing.assert_allclose(s.class_mean[1, 0], C[0, 1])
    np.testing.assert_allclose(s.cooperative_fraction[:, 0], [1.0, 0.5])
    np.testing.assert_allclose(s.competitive_fraction[:, 0], [0.0, 0.5])
    np.testing.assert_allclose(s.cooperative_share[:, 0], [1.0, 1 / 3])
    np.testing.assert_allclose(s.cooperative_share[:, 1], [0.5, 0.5])  # all-zero layer: no balance


def test_bad_inputs():
    params = rf.Trunk.init(jax.random.key(0), 3)
    r = jnp.full((4, 2, 3), 0.5)
    with pytest.raises(ValueError, match="\\[0, 1\\]"):
        rf.interaction_coefficients(params, r.at[0, 0, 0].set(1.5))
    with pytest.raises(ValueError, match="at least 2"):
        rf.interaction_coefficients(params, r[:1])
    with pytest.raises(ValueError, match="trailing dimension"):
        rf.interaction_coefficients(params, r[..., :2])
    with pytest.raises(ValueError, match="finite"):
        rf.interaction_coefficients(params, r.at[1, 0, 0].set(jnp.nan))
    untied = rf.Trunk.init(jax.random.key(0), 3, shared=False, depth=2)
    with pytest.raises(ValueError, match="layers"):
        rf.interaction_coefficients(untied, r)
    with pytest.raises(ValueError, match="n, n"):
        rf.analysis.pair_classes(np.ones((2, 3)))
    C = rf.interaction_coefficients(params, r)
    with pytest.raises(ValueError, match="labels"):
        rf.interaction_summary(C, jnp.array([0]))
    with pytest.raises(TypeError, match="labels"):
        rf.interaction_summary(C, jnp.array([0.0, 1.0]))


def test_pair_classes_rejects_non_finite_W():
    W = np.array([[0.0, np.nan], [1.0, 0.0]])
    with pytest.raises(ValueError, match="W must contain only finite"):
        rf.analysis.pair_classes(W)
    with pytest.raises(ValueError, match="W must contain only finite"):
        rf.analysis.pair_classes(np.stack([np.eye(2), np.full((2, 2), np.inf)]))


def test_saturated_residuals_accepted_with_vanishing_coefficients():
    # r_{t+1} exactly 1 (float32 saturation): C_t = h σ'(a_{t+1}) W = 0 on that row, its limit.
    params = rf.Trunk.init(jax.random.key(0), 3, dtype=jnp.float32)
    r = jnp.full((3, 2, 3), 0.5, jnp.float32).at[1, 0, 2].set(1.0).at[2, 1, 0].set(0.0)
    C = np.asarray(rf.interaction_coefficients(params, r))
    assert np.all(C[0, 0, 2] == 0) and np.all(C[1, 1, 0] == 0)
    np.testing.assert_allclose(C[0, 1], 0.25 * np.asarray(params.W), rtol=1e-6)


def test_logistic_only_and_label_checks():
    r = jnp.full((4, 2, 3), 0.5)
    for act in ("tanh", "relu"):
        with pytest.raises(ValueError, match="activation 'sigmoid'"):
            rf.interaction_coefficients(rf.Trunk.init(jax.random.key(0), 3, activation=act), r)
    with pytest.raises(ValueError, match="resnet"):
        rf.interaction_coefficients(rf.Trunk.init(jax.random.key(0), 3, model="mlp"), r)
    with pytest.raises(TypeError, match="Trunk"):
        rf.interaction_coefficients(np.eye(3), r)
    C = rf.interaction_coefficients(rf.Trunk.init(jax.random.key(0), 3), r)
    with pytest.raises(ValueError, match="labels must be >= 0"):
        rf.interaction_summary(C, jnp.array([0, -1]))
    with pytest.raises(ValueError, match="num_classes = 1"):
        rf.interaction_summary(C, jnp.array([0, 1]), num_classes=1)
    with pytest.raises(ValueError, match="coefficients must contain only finite"):
        rf.interaction_summary(C.at[0, 0, 0, 1].set(jnp.inf), jnp.array([0, 1]))
    assert rf.analysis.PairClass.SELF == -1 and rf.analysis.PairClass(0).label == "neutral"


def test_summary_jits_with_num_classes_and_marks_empty_classes():
    C = rf.interaction_coefficients(
        rf.Trunk.init(jax.random.key(4), 3, w_std=2.0),
        jax.random.uniform(jax.random.key(5), (4, 6, 3)),
    )
    labels = jnp.array([0, 2, 2, 0, 2, 0])
    eager = rf.interaction_summary(C, labels, atol=1e-3)
    jitted = jax.jit(lambda c, y: rf.interaction_summary(c, y, num_classes=3, atol=1e-3))(C, labels)
    for a, b in zip(jitted, eager, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(eager.class_counts, [3, 0, 3])
    assert np.isnan(np.asarray(eager.class_mean[1])).all() and np.isnan(np.asarray(eager.cooperative_share[1])).all()
    # the present classes: plain means over their inputs, as numpy computes them
    np.testing.assert_allclose(eager.class_mean[2], np.asarray(C)[:, [1, 2, 4]].mean(1), rtol=1e-12)
    with pytest.raises(ValueError, match="num_classes must be given"):
        jax.jit(lambda c, y: rf.interaction_summary(c, y))(C, labels)
