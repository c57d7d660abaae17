"""Residual fixed points and attractors on hand-built W with known answers, checked by iterating the map."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import resflow as rf
from resflow.analysis._attractors import Saturation

FREE = Saturation.FREE

# The steady-state tests of 2-unit float64 trunks share one batch (12 inputs) and depth where
# they can, so that they share the compiled programs (the trunk's values are traced).
DEPTH = 200
# One program per width for 200 inputs over 1000 layers (steady_state eagerly builds some thirty
# small programs per input shape); the trunk's values are traced, so every W of a width shares it.
_steady_at_1000 = jax.jit(lambda trunk, x0: rf.steady_state(trunk, x0, depth=1000))


def _params(W, h=1.0):
    W = np.asarray(W, np.float64)
    return rf.Trunk(jnp.asarray(W), jnp.zeros(W.shape[0]), h)


def _iterate(W, r0, steps, h=1.0, complement=False):
    """Float64 numpy reference in pre-activation space: a ← a + h W σ(a); also 1 − r = σ(−a) if asked."""
    a = np.log(r0) - np.log1p(-np.asarray(r0))
    rs, cs = [], []
    for _ in range(steps):
        r = 1 / (1 + np.exp(-a))
        rs.append(r)
        cs.append(1 / (1 + np.exp(a)))
        a = a + h * (W @ r)
    return (np.array(rs), np.array(cs)) if complement else np.array(rs)


def _projector_complement(vs):
    Q, _ = np.linalg.qr(np.asarray(vs, np.float64).T)
    return np.eye(Q.shape[0]) - Q @ Q.T


def test_interior_fixed_point_on_a_null_line():
    v = np.array([0.3, 0.5, 0.7])
    W = -_projector_complement([v])  # W v = 0; D W is negative semidefinite-like: transversally attracting
    res = rf.analysis.interior_fixed_points(_params(W))
    assert res.points.shape == (1, 3) and res.dimension[0] == 1
    # the segment {c v : 0 < c < 1/0.7}: its deepest point balances 0.3 c = 1 − 0.7 c, i.e. c = 1
    np.testing.assert_allclose(res.points[0], v, atol=1e-8)
    np.testing.assert_allclose(W @ res.points[0], 0, atol=1e-12)
    D = np.diag(v * (1 - v))
    ref = np.linalg.eigvals(np.eye(3) + D @ W)
    np.testing.assert_allclose(np.sort_complex(res.multipliers[0]), np.sort_complex(ref), atol=1e-12)
    np.testing.assert_allclose(res.spectral_radius[0], 1.0, atol=1e-12)  # the null direction: multiplier 1
    assert res.attracting[0] and np.all(res.patterns[0] == FREE)
    # iterating from a nearby point lands on the line of fixed points, inside the cube
    r = _iterate(W, v + np.array([0.05, -0.04, 0.03]), 400)[-1]
    np.testing.assert_allclose(W @ r, 0, atol=1e-9)
    assert np.all((r > 0) & (r < 1))
    # the opposite sign repels transversally
    assert not rf.analysis.interior_fixed_points(_params(-W)).attracting[0]


def test_interior_fixed_points_two_dimensional_and_absent():
    vs = [[0.2, 0.4, 0.6, 0.3], [0.5, 0.1, 0.2, 0.4]]
    W = -_projector_complement(vs) @ np.diag([1.0, 2.0, 0.5, 1.5])
    res = rf.analysis.interior_fixed_points(_params(W))
    assert res.dimension[0] == 2
    r = res.points[0]
    np.testing.assert_allclose(W @ r, 0, atol=1e-10)
    assert np.all((r > 0) & (r < 1))
    # a non-singular W has no interior fixed point; nor does a null line leaving the cube's orthant
    assert rf.analysis.interior_fixed_points(_params(np.eye(3))).points.shape == (0, 3)
    assert rf.analysis.interior_fixed_points(_params(-_projector_complement([[0.3, -0.5, 0.7]]))).points.shape == (0, 3)


def _circles_like_W():
    # the paper's circles run: the corner (0, 0, 1) with eigenvalues w13 = -1.95, w23 = -0.87, -w33 = -0.8
    return np.array([[0.6, -0.4, -1.95], [0.3, 0.9, -0.87], [-0.5, 1.2, 0.8]])


def test_corner_attractor_of_the_paper_example():
    W = _circles_like_W()
    h = 0.8
    res = rf.analysis.fixed_point_pattern(_params(W, h), [0, 0, 1])
    np.testing.assert_allclose(res.points[0], [0, 0, 1])
    np.testing.assert_allclose(res.flow_eigenvalues[0], [-1.95, -0.87, -0.8], atol=1e-14)
    np.testing.assert_allclose(res.multipliers[0], np.exp(h * np.array([-1.95, -0.87, -0.8])), atol=1e-14)
    assert res.attracting[0] and res.dimension[0] == 0
    # the discrete map contracts each coordinate by e^{h λ_i}: measure it along an orbit
    rs, one_minus = _iterate(W, np.array([0.05, 0.1, 0.9]), 40, h=h, complement=True)
    np.testing.assert_allclose(rs[-1], [0, 0, 1], atol=1e-6)
    np.testing.assert_allclose(rs[-1, :2] / rs[-2, :2], np.exp(h * np.array([-1.95, -0.87])), rtol=1e-6)
    np.testing.assert_allclose(one_minus[-1, 2] / one_minus[-2, 2], np.exp(h * -0.8), rtol=1e-6)


def test_enumeration_sign_conditions_and_approach():
    W = _circles_like_W()
    res = rf.residual_fixed_points(_params(W))
    pats = [tuple(p) for p in res.patterns]
    assert len(set(pats)) == len(pats)
    corners = [p for p in pats if FREE not in p]
    assert len(corners) == 8  # every corner is a fixed point of the closed-cube map
    # corner attraction by hand: s_i (W c)_i > 0 for all i, s = +1 at 1 and -1 at 0
    for c, att in zip(res.points, res.attracting, strict=True):
        if np.all((c == 0) | (c == 1)):
            assert att == bool(np.all((2 * c - 1) * (W @ c) > 0))
    for r, p in zip(res.points, res.patterns, strict=True):  # free parts solve (W r)_F = 0 inside (0, 1)
        free = p == FREE
        np.testing.assert_allclose((W @ r)[free], 0, atol=1e-12)
        assert np.all((r[free] > 0) & (r[free] < 1))
    att = rf.residual_fixed_points(_params(W), attractors_only=True)
    assert [0, 0, 1] in att.points.tolist()
    for r in att.points:  # every attractor found is approached from nearby points
        # near, not far: (0, 1, 1) attracts with λ_2 = -(w22 + w23) = -0.03 only, a thin basin
        start = np.where(r == 0, 0.002, np.where(r == 1, 0.998, r + 1e-3))
        np.testing.assert_allclose(_iterate(W, start, 300)[-1], r, atol=1e-4)


def test_mixed_pattern_by_hand():
    # pattern (free, 1): w11 r1 + w12 = 0 → r1 = 0.5; (W r)_2 = 0.5 w21 + w22 = 1.5 > 0 keeps r2 at 1
    W = np.array([[-2.0, 1.0], [1.0, 1.0]])
    res = rf.analysis.fixed_point_pattern(_params(W), [FREE, 1])
    np.testing.assert_allclose(res.points[0], [0.5, 1.0])
    np.testing.assert_allclose(res.multipliers[0], [1 + 0.25 * -2.0, np.exp(-1.5)], atol=1e-14)
    np.testing.assert_allclose(res.flow_eigenvalues[0], [-0.5, -1.5], atol=1e-14)
    assert res.attracting[0]
    np.testing.assert_allclose(_iterate(W, np.array([0.3, 0.8]), 200)[-1], [0.5, 1.0], atol=1e-8)
    assert rf.analysis.fixed_point_pattern(_params(W), [FREE, 0]).points.shape == (0, 2)  # r1 = 0 is not interior


def test_steady_state_against_numpy():
    W = np.array([[-2.0, 1.0], [1.0, 1.0]])
    b = np.array([0.1, -0.2])
    params = rf.Trunk(jnp.asarray(W), jnp.asarray(b))
    x0 = jax.random.uniform(jax.random.key(0), (12, 2), minval=-1.0, maxval=1.0)
    labels = jnp.arange(12) % 3
    res = rf.steady_state(params, x0, labels, depth=DEPTH)
    a0 = np.asarray(x0) @ W.T + b
    ref = np.array([_iterate(W, 1 / (1 + np.exp(-a)), DEPTH)[-2:] for a in a0])
    np.testing.assert_allclose(res.final, ref[:, -1], atol=1e-12)
    np.testing.assert_allclose(res.change, np.abs(ref[:, -1] - ref[:, -2]).max(-1), atol=1e-12)
    assert bool(res.converged.all())
    np.testing.assert_allclose(res.class_means, np.tile([0.5, 1.0], (3, 1)), atol=1e-8)
    assert float(res.class_distance) < 1e-8 and float(res.dominant_fraction) == 1.0
    np.testing.assert_array_equal(res.class_counts, [4, 4, 4])
    np.testing.assert_allclose(res.dominant, [0.5, 1.0], atol=1e-8)


def test_steady_state_two_attractors_float32():
    # winner-take-all competition: corners (1, 0) and (0, 1) both satisfy s_i (W c)_i > 0
    W = np.array([[1.0, -2.0], [-2.0, 1.0]])
    params = rf.Trunk(jnp.asarray(W, jnp.float32), jnp.zeros(2, jnp.float32))
    x0 = jnp.asarray([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.2, 0.8]], jnp.float32)
    res = rf.steady_state(params, x0, jnp.array([0, 0, 1, 1]), depth=100)
    assert res.final.dtype == jnp.float32
    np.testing.assert_allclose(res.class_means, [[1, 0], [0, 1]], atol=1e-4)
    assert float(res.class_distance) > 0.99 and float(res.dominant_fraction) == 0.5


def test_bad_inputs():
    W = _params(_circles_like_W())
    untied = rf.Trunk.init(jax.random.key(0), 3, shared=False, depth=2)
    with pytest.raises(ValueError, match="shared"):
        rf.residual_fixed_points(untied)
    with pytest.raises(ValueError, match="max_width"):
        rf.residual_fixed_points(_params(np.eye(13)))
    with pytest.raises(ValueError, match="pattern"):
        rf.analysis.fixed_point_pattern(W, [0, 2, 1])
    with pytest.raises(ValueError, match="activation 'sigmoid'"):
        rf.analysis.interior_fixed_points(rf.Trunk(W.W, W.b, activation="tanh"))
    with pytest.raises(ValueError, match="resnet"):
        rf.residual_fixed_points(rf.Trunk(W.W, W.b, model="mlp"))
    with pytest.raises(ValueError, match="resnet"):
        rf.steady_state(rf.Trunk(W.W, W.b, model="mlp"), jnp.zeros((4, 3)), depth=10)
    with pytest.raises(TypeError, match="Trunk"):
        rf.residual_fixed_points(_circles_like_W())
    x0 = jnp.zeros((4, 3))
    with pytest.raises(ValueError, match="labels"):
        rf.steady_state(W, x0, jnp.zeros(3, int), depth=10)
    with pytest.raises(TypeError, match="labels"):
        rf.steady_state(W, x0, jnp.zeros(4), depth=10)
    with pytest.raises(ValueError, match="shared"):
        rf.steady_state(untied, x0, depth=10)
    with pytest.raises(ValueError, match="depth"):
        rf.steady_state(W, x0, depth=1)


def _np_dominant_fraction(final, atol):
    """Float64 reference: the largest fraction of inputs within `atol` (Euclidean) of one input."""
    f = np.asarray(final, np.float64).reshape(-1, final.shape[-1])
    d = np.linalg.norm(f[:, None, :] - f[None, :, :], axis=-1)
    return (d <= atol).sum(1).max() / len(f)


@pytest.mark.parametrize("n", [32, 64])
def test_dominant_attractor_float32_minority_listed_first(n):
    # Two clusters of final residuals ~0.7, 0.002 apart per component (Euclidean 0.002·√n ≫ atol),
    # the minority (100 inputs) first. ‖p‖² + ‖q‖² − 2p·q in float32 misses atol² = 1e-6 here.
    params = rf.Trunk(0.01 * jnp.eye(n, dtype=jnp.float32), jnp.full(n, 0.85, jnp.float32))
    x0 = jnp.concatenate([jnp.full((100, n), 0.8, jnp.float32), jnp.zeros((400, n), jnp.float32)])
    res = rf.steady_state(params, x0, depth=2, atol=1e-3)
    assert res.final.dtype == jnp.float32
    gap = np.linalg.norm(np.asarray(res.final[0], np.float64) - np.asarray(res.final[-1], np.float64))
    assert gap > 5e-3
    assert _np_dominant_fraction(res.final, 1e-3) == 0.8
    assert float(res.dominant_fraction) == pytest.approx(0.8, abs=1e-6)
    np.testing.assert_array_equal(res.dominant, res.final[-1])


def test_steady_state_batch_shapes():
    W = np.array([[-2.0, 1.0], [1.0, 1.0]])
    params = rf.Trunk(jnp.asarray(W), jnp.asarray([0.1, -0.2]))
    x0 = jax.random.uniform(jax.random.key(1), (2, 6, 2), minval=-1.0, maxval=1.0)
    labels = jnp.array([[0, 1, 0, 2, 1, 0], [1, 1, 0, 2, 2, 0]])
    res = rf.steady_state(params, x0, labels, depth=DEPTH)
    flat = rf.steady_state(params, x0.reshape(12, 2), labels.reshape(12), depth=DEPTH)
    assert res.final.shape == (2, 6, 2) and res.change.shape == res.converged.shape == (2, 6)
    np.testing.assert_array_equal(res.final.reshape(12, 2), flat.final)
    np.testing.assert_array_equal(res.class_means, flat.class_means)
    a0 = np.asarray(x0[1, 2]) @ W.T + np.array([0.1, -0.2])
    np.testing.assert_allclose(res.final[1, 2], _iterate(W, 1 / (1 + np.exp(-a0)), DEPTH)[-1], atol=1e-12)
    one = rf.steady_state(params, x0[0, 0], depth=DEPTH)  # a single input (n,)
    assert one.final.shape == (2,) and one.change.shape == ()
    np.testing.assert_array_equal(one.final, res.final[0, 0])
    with pytest.raises(ValueError, match=r"labels must have shape \(2, 6\)"):
        rf.steady_state(params, x0, labels.reshape(12), depth=DEPTH)
    with pytest.raises(ValueError, match="labels must be >= 0"):
        rf.steady_state(params, x0, labels - 1, depth=DEPTH)


def test_origin_is_reported_as_an_attractor():
    # W r* = 0 at r* = 0: every flow eigenvalue is 0, every multiplier exactly 1; the linear test
    # is inconclusive, yet inputs converge to 0 like 1/t (issue 9, finding 1).
    W = -np.array([[1.0, 0.5], [0.5, 1.0]])
    trunk = _params(W)
    att = rf.residual_fixed_points(trunk, attractors_only=True)
    assert [0.0, 0.0] in att.points.tolist()
    origin = att.points.tolist().index([0.0, 0.0])
    assert att.classified_by[origin] == "perturbation"
    np.testing.assert_array_equal(att.multipliers[origin], [1.0, 1.0])
    x0 = 2.0 * jax.random.normal(jax.random.key(0), (200, 2))
    ss = _steady_at_1000(trunk, x0)
    np.testing.assert_allclose(ss.dominant, [0, 0], atol=2e-3)
    assert float(ss.dominant_fraction) == 1.0
    # the float64 reference orbit decays algebraically: r_t ≈ 1 / (1.5 t) along the diagonal
    r = _iterate(W, np.array([0.1, 0.1]), 4001)
    np.testing.assert_allclose(r[4000] * 1.5 * 4000, 1.0, rtol=0.05)
    # with a positive coupling the origin repels along the diagonal: reported, not attracting
    everything = rf.residual_fixed_points(_params(-W))
    origin = everything.points.tolist().index([0.0, 0.0])
    assert everything.classified_by[origin] == "perturbation" and not everything.attracting[origin]
    # hyperbolic points are decided by the linearisation
    assert set(everything.classified_by[1:]) <= {"linear"}


def _preactivations_after(W, a, steps):
    """a_steps of a ← a + W σ(a): float64 numpy loop (the reference for steady_state's stream)."""
    for _ in range(steps):
        a = a + (1 / (1 + np.exp(-a))) @ W.T
    return a


def test_every_reached_fixed_point_is_reported_for_random_W():
    # W ~ N(0, 4/n), b = 0, n = 2..6: every fixed point that >= 1 % of 200 inputs converge to within
    # 1000 layers is among residual_fixed_points(attractors_only=True) (float64).
    rng = np.random.default_rng(9)
    reached_origin = 0
    for n in range(2, 7):
        x0 = jnp.asarray(rng.normal(0.0, 2.0, (200, n)))
        for _ in range(8):
            W = rng.normal(0.0, 2.0 / np.sqrt(n), (n, n))
            trunk = _params(W)
            final = np.asarray(_steady_at_1000(trunk, x0).final)
            with np.errstate(over="ignore"):  # exp(-a) overflows to inf for a saturated σ(a) = 0
                a = _preactivations_after(W, np.asarray(x0) @ W.T, 999)
                np.testing.assert_allclose(1 / (1 + np.exp(-a)), final, rtol=1e-9, atol=1e-300)
                later = _preactivations_after(W, a, 1000) - a
            everything = rf.residual_fixed_points(trunk)
            attractors = everything.points[everything.attracting]
            d = np.linalg.norm(final[:, None, :] - everything.points[None], axis=-1)
            nearest = d.argmin(1)
            # Reached: near a fixed point at layer 1000 and still moving towards it over the next
            # 1000 layers, in pre-activation space (a residual saturated to 1e-300 or to 0.0 still has
            # a finite a_i that shows whether the input is arriving or, past a saddle, leaving).
            pattern = everything.patterns[nearest]
            towards = np.where(pattern == 0, later <= 0, np.where(pattern == 1, later >= 0, True))
            settled = (d.min(1) < 0.02) & np.all(towards, axis=1)
            for k in np.unique(nearest[settled]):
                if np.mean(settled & (nearest == k)) >= 0.01:
                    r = everything.points[k]
                    assert np.any(np.all(np.abs(attractors - r) < 1e-9, axis=1)), (n, r, everything.patterns[k])
                    reached_origin += bool(np.all(r == 0))
    assert reached_origin >= 3  # the case the linear test alone missed does occur in this sweep


def test_steady_state_under_jit_equals_eager():
    W = np.array([[-2.0, 1.0], [1.0, 1.0]])
    trunk = rf.Trunk(jnp.asarray(W), jnp.asarray([0.1, -0.2]), 0.7)
    x0 = jax.random.uniform(jax.random.key(3), (12, 2), minval=-1.0, maxval=1.0)
    labels = jnp.arange(12) % 3
    eager = rf.steady_state(trunk, x0, labels, depth=DEPTH)
    jitted = jax.jit(lambda t, x, y: rf.steady_state(t, x, y, depth=DEPTH, num_classes=3))(trunk, x0, labels)
    for a, b in zip(jitted, eager, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-15)
    # the chunked stream is the plain recurrence: float64 numpy reference, h = 0.7
    a0 = np.asarray(x0) @ W.T + np.array([0.1, -0.2])
    ref = np.array([_iterate(W, 1 / (1 + np.exp(-a)), DEPTH, h=0.7)[-1] for a in a0])
    np.testing.assert_allclose(eager.final, ref, atol=1e-12)
    with pytest.raises(ValueError, match="num_classes must be given"):
        jax.jit(lambda x, y: rf.steady_state(trunk, x, y, depth=10))(x0, labels)
    # an empty class: NaN statistics, ignored by class_distance
    sparse = rf.steady_state(trunk, x0, 2 * (labels % 2), depth=DEPTH, num_classes=3)
    np.testing.assert_array_equal(sparse.class_counts, [8, 0, 4])
    assert np.isnan(np.asarray(sparse.class_means[1])).all() and np.isfinite(float(sparse.class_distance))
    with pytest.raises(ValueError, match="num_classes = 2"):
        rf.steady_state(trunk, x0, labels, depth=10, num_classes=2)
    with pytest.raises(ValueError, match="x0 must contain only finite"):
        rf.steady_state(trunk, x0.at[0, 0].set(jnp.nan), labels, depth=10)
    with pytest.raises(ValueError, match="x0 must contain only finite"):
        rf.steady_state(trunk, x0.at[0, 0].set(jnp.nan), depth=10)


def test_candidates_with_different_free_counts_are_decided_together():
    # W = [[-1, .5], [0, 0]] (a zero row): a_2 never moves, so r_2 is constant, and the free
    # unit 1 solves -r_1 + r_2 / 2 = 0. By hand, in enumeration order (h = 1):
    # - corners: (0, 0) has W r* = 0 (every λ = 0: undecided); at (0, 1), (1, 0), (1, 1) unit 1
    #   has λ_1 = (1 - 2 r_1)(W r*)_1 = 0.5, 1, 0.5 > 0: repelling;
    # - (F, 1): r_1 = 1/2, λ_2 = -(W r*)_2 = 0 (undecided), free multiplier 1 + r(1-r)(-1) = 3/4;
    #   (F, 0) would need r_1 = 0, not inside;
    # - (0, F), (1, F): W_FF = [0], a line r_2 ∈ (0, 1) (dimension 1, deepest point r_2 = 1/2) with
    #   λ_1 = 1/4 and 3/4 > 0: repelling;
    # - (F, F): the line r = s (1, 2), s ∈ (0, 1/2), deepest where s = 1 - 2s: (1/3, 2/3); the
    #   transverse multiplier 1 - 2/9 = 7/9 < 1: normally attracting.
    # The two undecided candidates have 0 and 1 free components (different perturbation sets).
    W = np.array([[-1.0, 0.5], [0.0, 0.0]])
    res = rf.residual_fixed_points(_params(W))
    np.testing.assert_allclose(
        res.points, [[0, 0], [0, 1], [1, 0], [1, 1], [0.5, 1], [0, 0.5], [1, 0.5], [1 / 3, 2 / 3]], atol=1e-12
    )
    np.testing.assert_array_equal(
        res.patterns, [[0, 0], [0, 1], [1, 0], [1, 1], [FREE, 1], [0, FREE], [1, FREE], [FREE, FREE]]
    )
    np.testing.assert_array_equal(res.dimension, [0, 0, 0, 0, 0, 1, 1, 1])
    np.testing.assert_allclose(res.flow_eigenvalues[:7, 0], [0, 0.5, 1, 0.5, -0.25, 0.25, 0.75], atol=1e-12)
    np.testing.assert_allclose(res.multipliers[4], [0.75, 1.0], atol=1e-12)
    np.testing.assert_allclose(np.sort(np.abs(res.multipliers[7])), [7 / 9, 1.0], atol=1e-12)
    np.testing.assert_array_equal(res.attracting, [True, False, False, False, True, False, False, True])
    assert res.classified_by.tolist() == ["perturbation"] + ["linear"] * 3 + ["perturbation"] + ["linear"] * 3
    # The two perturbation verdicts, by the float64 reference: r_2 stays put and r_1 → r_2 / 2, so
    # a start near (0, 0) or (1/2, 1) with a small r_2 (resp. 1 - r_2) ends closer to the point.
    for point, start in (([0.0, 0.0], [0.05, 1e-5]), ([0.5, 1.0], [0.55, 1 - 1e-5])):
        r = _iterate(W, np.array(start), 2000)
        assert np.linalg.norm(r[-1] - point) <= 0.5 * np.linalg.norm(r[0] - point)
        assert r[-1, 1] == pytest.approx(start[1], rel=1e-12)
