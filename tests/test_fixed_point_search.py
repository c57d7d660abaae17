"""The data-driven fixed-point search, per-class spectra and readout alignment, against
independent references: the 3^n enumeration, the pattern solve, numpy float64 and autodiff."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import resflow as rf
from resflow.analysis._attractors import Saturation
from resflow.analysis._class_spectra import class_mean_spectra, flow_jacobian, map_jacobian, readout_alignment
from resflow.analysis._fixed_point_search import search_residual_fixed_points
from resflow.trunk._network import Affine, Network
from resflow.trunk._residuals import preactivation_scan


def _trunk(seed, n, shift=2.0, scale=1.5):
    W = jax.random.normal(jax.random.key(seed), (n, n)) * scale - shift * jnp.eye(n)
    return rf.Trunk(W, jnp.zeros(n), 1.0)


def _end_states(trunk, seed, batch, depth):
    a0 = jax.random.normal(jax.random.key(seed), (batch, trunk.width)) * 3
    return preactivation_scan(trunk, a0, depth=depth)[-1]


@pytest.mark.parametrize("seed", [0, 1])
def test_search_attractors_are_enumerated_fixed_points(seed):
    """n = 6: every point the search reaches is a row of the 3^n enumeration with the same
    pattern and r*, and the same verdict (linear attractor ↔ attractor; the linear test's open
    cases ↔ marginal)."""
    trunk = _trunk(seed, 6)
    found = search_residual_fixed_points(trunk, _end_states(trunk, 10 + seed, 64, 1000))
    ref = rf.residual_fixed_points(trunk)
    assert len(found.points) >= 1
    assert found.start_counts.sum() == (found.start_solution >= 0).sum() == 64
    for j in range(len(found.points)):
        i = np.flatnonzero((ref.patterns == found.patterns[j]).all(1))
        assert len(i) == 1, "the search reached a pattern the enumeration does not have"
        i = i[0]
        np.testing.assert_allclose(found.points[j], ref.points[i], atol=1e-10)
        np.testing.assert_allclose(found.multipliers[j], ref.multipliers[i], atol=1e-10)
        if found.stability[j] == rf.dynamics.Stability.ATTRACTOR:
            assert ref.attracting[i] and ref.classified_by[i] == "linear"
            assert found.saturation_margin[j] > 0
        else:
            assert found.stability[j] == rf.dynamics.Stability.MARGINAL and ref.classified_by[i] == "perturbation"
        assert found.num_low[j] + found.num_high[j] + found.num_free[j] == 6
    # seed 1 reaches attractors with free components (a non-trivial solve)
    if seed == 1:
        assert (found.num_free > 0).sum() == 2 and (found.stability == rf.dynamics.Stability.ATTRACTOR).all()


def test_unheld_pattern_is_reported_as_not_attracting():
    """A start saturated at a corner whose saturation condition fails: margin < 0, and the
    corner's multipliers are e^{h λ_i}, λ_i = (1 − 2 r_i)(W r)_i (numpy float64), some > 1."""
    trunk = _trunk(1, 6)
    W = np.asarray(trunk.W)
    corners = np.array(np.meshgrid(*[[0.0, 1.0]] * 6)).reshape(6, -1).T
    lam = (1 - 2 * corners) * (corners @ W.T)
    r = corners[np.flatnonzero((lam > 0).any(1) & (corners.sum(1) > 0))[0]]
    found = search_residual_fixed_points(trunk, jnp.asarray(np.where(r > 0.5, 50.0, -50.0)[None]))
    np.testing.assert_array_equal(found.points[0], r)
    assert found.num_free[0] == 0 and found.saturation_margin[0] < 0
    assert found.stability[0] in (rf.dynamics.Stability.SADDLE, rf.dynamics.Stability.REPELLER)
    expected = np.exp((1 - 2 * r) * (W @ r))
    np.testing.assert_allclose(found.multipliers[0].real, expected, rtol=1e-12)
    np.testing.assert_allclose(found.saturation_margin[0], -np.log(expected).max(), rtol=1e-12)


def _np_pattern_solve(W, pattern):
    """Float64 numpy: r_S from the pattern, r_F = −W_FF⁻¹ W_FS r_S (the free equations (W r)_F = 0)."""
    free = pattern == Saturation.FREE
    r = np.where(free, 0.0, pattern).astype(np.float64)
    r[free] = -np.linalg.solve(W[np.ix_(free, free)], W[free] @ r)
    return r


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_search_at_width_64_matches_the_pattern_solve(dtype):
    """n = 64, starts from a 1000-layer run: each point found is the float64 numpy solve of its
    pattern to 1e-12 (LM alone stopped up to 1.3e-3 off in float32, and so split one point in
    two), one point per pattern, and every start that reaches a pattern with an interior
    solution converges (LM alone dropped one in float64, residual 1e7 × the tolerance)."""
    trunk = _trunk(3, 64, shift=0.5, scale=1.0 / 8).astype(dtype)
    found = search_residual_fixed_points(trunk, _end_states(trunk, 4, 32, 1000).astype(dtype))
    W = np.asarray(trunk.W, np.float64)
    assert len(found.points) >= 2 and (found.num_free > 0).all()
    assert len({p.tobytes() for p in found.patterns}) == len(found.points)
    for j in range(len(found.points)):
        ref = _np_pattern_solve(W, found.patterns[j])
        np.testing.assert_allclose(found.points[j], ref, rtol=0, atol=1e-12)
        assert found.residual_norm[j] <= 1e-13
    if dtype == jnp.float64:
        assert (found.start_solution >= 0).all()


def test_search_bad_inputs():
    trunk = _trunk(0, 4)
    with pytest.raises(ValueError, match="starts must be pre-activations of shape"):
        search_residual_fixed_points(trunk, jnp.zeros((3, 5)))
    with pytest.raises(TypeError, match="starts has dtype"):
        search_residual_fixed_points(trunk, jnp.zeros((3, 4), jnp.float32))
    with pytest.raises(ValueError, match="NaN"):
        search_residual_fixed_points(trunk, jnp.full((1, 4), jnp.nan))
    with pytest.raises(ValueError, match="saturation"):
        search_residual_fixed_points(trunk, jnp.zeros((1, 4)), saturation=0.0)
    untied = rf.Trunk(jnp.zeros((2, 4, 4)), jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match="shared weights"):
        search_residual_fixed_points(untied, jnp.zeros((1, 4)))


def _np_map_jacobian(W, h, r):
    r_next = 1 / (1 + np.exp(-(np.log(r) - np.log1p(-r) + h * W @ r)))
    return (r_next * (1 - r_next))[:, None] * (np.diag(1 / (r * (1 - r))) + h * W)


def test_flow_jacobian_against_autodiff_and_map_jacobian_against_numpy():
    W = jax.random.normal(jax.random.key(0), (5, 5))
    y = jax.random.uniform(jax.random.key(1), (5,), minval=0.05, maxval=0.95)
    auto = jax.jacfwd(lambda v: v * (1 - v) * (W @ v))(y)
    np.testing.assert_allclose(flow_jacobian(W, y), auto, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(map_jacobian(W, 0.7, y), _np_map_jacobian(np.asarray(W), 0.7, np.asarray(y)), rtol=1e-12)
    trunk = rf.Trunk(W, jnp.zeros(5), 0.7)
    r_next = jax.nn.sigmoid(jnp.log(y) - jnp.log1p(-y) + 0.7 * W @ y)
    np.testing.assert_allclose(
        map_jacobian(W, 0.7, y), rf.residual_jacobians(trunk, jnp.stack([y, r_next]))[0], rtol=1e-12
    )
    # a saturated component: its row is the limit multiplier e^{h λ_i} on the diagonal
    r = y.at[2].set(1.0).at[4].set(0.0)
    J = np.asarray(map_jacobian(W, 0.7, r))
    g = np.asarray(W) @ np.asarray(r)
    np.testing.assert_allclose(J[2], np.eye(5)[2] * np.exp(-0.7 * g[2]), rtol=1e-12)
    np.testing.assert_allclose(J[4], np.eye(5)[4] * np.exp(0.7 * g[4]), rtol=1e-12)
    # nearly saturated rows converge to the same limit (continuity of the log-space ratio)
    near = np.asarray(map_jacobian(W, 0.7, y.at[2].set(1 - 1e-12).at[4].set(0.0)))
    np.testing.assert_allclose(near[2], J[2], atol=1e-9)


def test_class_mean_spectra_against_numpy():
    n, depth = 5, 4
    trunk = rf.Trunk(jax.random.normal(jax.random.key(2), (n, n)), jax.random.normal(jax.random.key(3), (n,)), 0.5)
    x0 = jax.random.normal(jax.random.key(4), (30, n))
    y = jnp.arange(30) % 3
    out = class_mean_spectra(trunk, x0, y, depth=depth, small=0.5, zero_tol=1e-3)
    W, b = np.asarray(trunk.W), np.asarray(trunk.b)
    x = np.asarray(x0)
    for _ in range(depth - 1):
        x = x + 0.5 / (1 + np.exp(-(x @ W.T + b)))
    r_last = 1 / (1 + np.exp(-(x @ W.T + b)))
    for c in range(3):
        m = r_last[np.asarray(y) == c].mean(0)
        np.testing.assert_allclose(out.class_means[c], m, rtol=1e-12)
        mu = np.linalg.eigvals(_np_map_jacobian(W, 0.5, m))
        np.testing.assert_allclose(np.sort(np.abs(out.multipliers[c]))[::-1], np.sort(np.abs(mu))[::-1], rtol=1e-10)
        flow = np.linalg.eigvals(np.diag(m * (1 - m)) @ W + np.diag((1 - 2 * m) * (W @ m)))
        np.testing.assert_allclose(out.flow_eigenvalues[c].real, np.sort(flow.real)[::-1], atol=1e-12)
        positive = flow.real > 1e-3
        assert int(out.num_positive[c]) == positive.sum()
        assert bool(out.near_saddle[c]) == (positive.sum() == 1 and flow.real.max() <= 0.5)
    assert list(np.asarray(out.counts)) == [10, 10, 10]
    jitted = jax.jit(lambda t, x, y: class_mean_spectra(t, x, y, depth=depth, num_classes=3, small=0.5, zero_tol=1e-3))
    np.testing.assert_allclose(jitted(trunk, x0, y).flow_eigenvalues, out.flow_eigenvalues, rtol=1e-12)
    with pytest.raises(ValueError, match="labels must have shape"):
        class_mean_spectra(trunk, x0, y[:5], depth=depth)
    with pytest.raises(ValueError, match="small"):
        class_mean_spectra(trunk, x0, y, depth=depth, small=-1.0)


def test_readout_alignment_against_numpy():
    n, K = 4, 3
    trunk = rf.Trunk(jax.random.normal(jax.random.key(5), (n, n)), jnp.zeros(n), 1.0)
    V = jnp.array([[2.0, 0.0, 0.1], [0.0, 3.0, 0.0], [0.5, 0.2, 0.0], [0.0, 0.0, 1.0]])
    net = Network(None, trunk, Affine(V, jnp.zeros(K)), 3)
    x = jax.random.normal(jax.random.key(6), (40, n)) + 2.0 * jnp.eye(n)[jnp.arange(40) % n]
    y = jnp.arange(40) % K
    out = readout_alignment(net, x, y)
    xT = np.asarray(x)
    for _ in range(3):
        xT = xT + 1 / (1 + np.exp(-(xT @ np.asarray(trunk.W).T)))
    means = np.stack([xT[np.asarray(y) == c].mean(0) for c in range(K)])
    np.testing.assert_allclose(out["class_mean_output"], means, rtol=1e-12)
    np.testing.assert_array_equal(out["strongest_neuron"], [0, 1, 3])
    np.testing.assert_array_equal(out["top_neuron"], means.argmax(1))
    np.testing.assert_array_equal(out["aligned"], means.argmax(1) == [0, 1, 3])
    assert out["num_aligned"] == int((means.argmax(1) == [0, 1, 3]).sum())
    np.testing.assert_array_equal(
        out["rank_of_strongest"], [(means[c] > means[c, s]).sum() for c, s in enumerate([0, 1, 3])]
    )
    with pytest.raises(TypeError, match="resflow.Network"):
        readout_alignment(trunk, x, y)
    with pytest.raises(ValueError, match="x must have shape"):
        readout_alignment(net, x[:, :2], y)
