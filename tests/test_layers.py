"""Flax layers: ResidualTrunk steps the trunk of its spec; active_depth masks layers."""

import jax
import jax.numpy as jnp
import numpy as np
from conftest import np_trajectory

import resflow as rf
from resflow.trunk._network import from_flax


def test_residual_trunk_matches_numpy_and_masks_layers(key):
    spec = rf.TrunkSpec(width=3, depth=4, shared=False, h=0.5, activation="tanh", w_std=2.0)
    layer = rf.ResidualTrunk(spec=spec, param_dtype=jnp.float64)
    x = jax.random.normal(key, (5, 3), jnp.float64)
    variables = layer.init(key, x)
    W, b = variables["params"]["W"], variables["params"]["b"]
    assert W.shape == (4, 3, 3) and b.shape == (4, 3)
    ref = np_trajectory(W, b, x, 4, activation="tanh", h=0.5)
    np.testing.assert_allclose(layer.apply(variables, x), ref[-1], rtol=1e-12)
    np.testing.assert_allclose(layer.apply(variables, x, return_trajectory=True), ref, rtol=1e-12)
    # Traced active_depth: layers t >= 2 are the identity, one compiled function for every depth.
    f = jax.jit(lambda v, d: layer.apply(v, x, d))
    np.testing.assert_allclose(f(variables, jnp.int32(2)), ref[2], rtol=1e-12)
    np.testing.assert_allclose(f(variables, jnp.int32(4)), ref[4], rtol=1e-12)
    # Remat changes what the backward pass stores, not the values.
    remat = rf.ResidualTrunk(spec=rf.TrunkSpec(**{**spec.__dict__, "remat": True}), param_dtype=jnp.float64)
    np.testing.assert_allclose(remat.apply(variables, x), ref[-1], rtol=1e-12)


def test_classifier_takes_the_spec_by_keyword(key):
    spec = rf.TrunkSpec(width=3, depth=2)
    clf = rf.Classifier(n_classes=4, spec=spec, use_lift=True, param_dtype=jnp.float64)
    x = jax.random.normal(key, (6, 2), jnp.float64)
    params = clf.init(key, x)["params"]
    assert set(params) == {"lift", "trunk", "readout"}
    net = from_flax(params, h=1.0, model="resnet", activation="sigmoid", depth=2)
    np.testing.assert_allclose(clf.apply({"params": params}, x), net(x), rtol=1e-12)
    traj = clf.apply({"params": params}, x, method=rf.Classifier.trajectory)
    np.testing.assert_allclose(traj, net.trajectory(x), rtol=1e-12)


def test_h_as_a_traced_call_argument(key):
    """h given at the call (traced under jit) equals h in the spec, against the numpy loop."""
    spec = rf.TrunkSpec(width=3, depth=4)
    x = jax.random.normal(key, (5, 3))
    layer = rf.ResidualTrunk(spec=spec)
    variables = layer.init(key, x)
    out = jax.jit(lambda h: layer.apply(variables, x, h=h))(0.3)
    p = variables["params"]
    np.testing.assert_allclose(out, np_trajectory(p["W"], p["b"], x, 4, h=0.3)[-1], rtol=1e-5, atol=1e-6)
    in_spec = rf.ResidualTrunk(spec=rf.TrunkSpec(width=3, depth=4, h=0.3)).apply(variables, x)
    np.testing.assert_allclose(out, in_spec, rtol=1e-6, atol=1e-7)
