"""The data-driven fixed-point search, per-class spectra and readout alignment, against
independent references: the 3^n enumeration, the pattern solve, numpy float64 and autodiff."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import resflow as rf
from resflow.attractors import Saturation
from resflow.fixed_point_search import (
    class_mean_spectra,
    flow_jacobian,
    map_jacobian,
    readout_alignment,
    search_residual_fixed_points,
)
from resflow.network import Affine, Network
from resflow.residuals import preactivation_scan


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
        if found.stability[j] == rf.Stability.ATTRACTOR:
            assert ref.attracting[i] and ref.classified_by[i] == "linear"
            assert found.saturation_margin[j] > 0
        else:
            assert found.stability[j] == rf.Stability.MARGINAL and ref.classified_by[i] == "perturbation"
        assert found.num_low[j] + found.num_high[j] + found.num_free[j] == 6
    # seed 1 reaches attractors with free components (a non-trivial solve)
    if seed == 1:
        assert (found.num_free > 0).sum() == 2 and (found.stability == rf.Stability.ATTRACTOR).all()


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
    assert found.stability[0] in (rf.Stability.SADDLE, rf.Stability.REPELLER)
    expected = np.exp((1 - 2 * r) * (W @ r))
    np.testing.assert_allclose(found.multipliers[0].real, expected, rtol=1e-12)
    np.testing.assert_allclose(found.saturation_margin[0], -np.log(expected).max(), rtol=1e-12)


def test_search_at_width_64_matches_the_pattern_solve():
    """n = 64, float32 starts from a 400-layer run: each point found solves (W r*)_F = 0 and
    equals `fixed_point_pattern` (SVD solve of W_FF r_F = −W_FS r_S, float64) on its pattern."""
    trunk = _trunk(3, 64, shift=0.5, scale=1.0 / 8).astype(jnp.float32)
    found = search_residual_fixed_points(trunk, _end_states(trunk, 4, 32, 400).astype(jnp.float32))
    assert len(found.points) >= 1 and (found.num_free > 0).any()
    for j in range(len(found.points)):
        ref = rf.fixed_point_pattern(trunk.astype(jnp.float64), found.patterns[j])
        assert len(ref.points) == 1
        np.testing.assert_allclose(found.points[j], ref.points[0], atol=2e-4)
        np.testing.assert_allclose(found.multipliers[j], ref.multipliers[0], atol=2e-3)


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
