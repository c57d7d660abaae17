"""The flax adapter: ResidualTrunk computes the trunk map (float64 numpy loop as the reference),
equals the equinox Trunk on the same W, b, h, masks layers, and jit and grad go through it."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import np_trajectory

import resflow as rf
from resflow.adapters import ResidualTrunk, to_trunk


def test_residual_trunk_matches_numpy_and_the_equinox_trunk(key):
    spec = rf.TrunkSpec(width=3, depth=4, shared=False, h=0.5, activation="tanh", w_std=2.0)
    layer = ResidualTrunk(spec=spec, param_dtype=jnp.float64)
    x = jax.random.normal(key, (5, 3), jnp.float64)
    variables = layer.init(key, x)
    W, b = variables["params"]["W"], variables["params"]["b"]
    assert W.shape == (4, 3, 3) and b.shape == (4, 3)
    assert np.all(np.asarray(b) == 0)  # b = 0 at init
    ref = np_trajectory(W, b, x, 4, activation="tanh", h=0.5)
    np.testing.assert_allclose(layer.apply(variables, x), ref[-1], rtol=1e-12)
    np.testing.assert_allclose(layer.apply(variables, x, return_trajectory=True), ref, rtol=1e-12)
    # The equinox Trunk on the same W, b, h: the same map (to_trunk builds it from the params).
    trunk = to_trunk(variables["params"], spec)
    assert (float(trunk.h), trunk.model, trunk.activation) == (0.5, "resnet", "tanh")
    np.testing.assert_allclose(rf.forward(trunk, x, depth=4), ref[-1], rtol=1e-12)
    np.testing.assert_allclose(rf.forward(rf.Trunk(W, b, 0.5, activation="tanh"), x), ref[-1], rtol=1e-12)
    # Traced active_depth: layers t >= 2 are the identity, one compiled function for every depth.
    f = jax.jit(lambda v, d: layer.apply(v, x, d))
    np.testing.assert_allclose(f(variables, jnp.int32(2)), ref[2], rtol=1e-12)
    np.testing.assert_allclose(f(variables, jnp.int32(4)), ref[4], rtol=1e-12)
    # Remat changes what the backward pass stores, not the values.
    remat = ResidualTrunk(spec=rf.TrunkSpec(**{**spec.__dict__, "remat": True}), param_dtype=jnp.float64)
    np.testing.assert_allclose(remat.apply(variables, x), ref[-1], rtol=1e-12)


def test_init_scale_is_w_std_over_sqrt_width(key):
    # W ~ N(0, w_std² / n): the sample std of a large shared W, against the closed form.
    layer = ResidualTrunk(spec=rf.TrunkSpec(width=200, depth=1, w_std=3.0), param_dtype=jnp.float64)
    W = layer.init(key, jnp.zeros((1, 200), jnp.float64))["params"]["W"]
    assert np.std(np.asarray(W)) == pytest.approx(3.0 / np.sqrt(200), rel=0.02)


def test_grad_through_it_matches_finite_differences(key):
    """jax.grad of a loss through the flax layer, against central differences of the numpy loop."""
    spec = rf.TrunkSpec(width=3, depth=3, h=0.7)
    layer = ResidualTrunk(spec=spec, param_dtype=jnp.float64)
    x = jax.random.normal(key, (4, 3), jnp.float64)
    params = layer.init(key, x)["params"]
    params = {"W": params["W"], "b": params["b"] + 0.1}

    def loss(p):
        return jnp.sum(jnp.sin(layer.apply({"params": p}, x)))

    grads = jax.jit(jax.grad(loss))(params)

    def np_loss(W, b):
        return np.sum(np.sin(np_trajectory(W, b, x, 3, h=0.7)[-1]))

    W, b, eps = np.asarray(params["W"]), np.asarray(params["b"]), 1e-6
    for name, arr in (("W", W), ("b", b)):
        fd = np.zeros_like(arr)
        for i in np.ndindex(arr.shape):
            up, down = arr.copy(), arr.copy()
            up[i] += eps
            down[i] -= eps
            args_up = (up, b) if name == "W" else (W, up)
            args_down = (down, b) if name == "W" else (W, down)
            fd[i] = (np_loss(*args_up) - np_loss(*args_down)) / (2 * eps)
        np.testing.assert_allclose(grads[name], fd, rtol=1e-6, atol=1e-8)


def test_trunk_module_in_a_user_model(key):
    """ResidualTrunk drops into any flax model and computes the trunk map."""

    class Mine(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.Dense(3, name="lift")(x)
            x = ResidualTrunk(spec=rf.TrunkSpec(width=3, depth=5, h=0.5), name="trunk")(x)
            return nn.Dense(2, name="head")(x)

    x = jax.random.normal(key, (7, 4))
    variables = Mine().init(key, x)
    trunk, lift = variables["params"]["trunk"], variables["params"]["lift"]
    x0 = np.asarray(x) @ np.asarray(lift["kernel"]) + np.asarray(lift["bias"])
    xT = np_trajectory(trunk["W"], trunk["b"], x0, 5, h=0.5)[-1]
    out = jax.jit(Mine().apply)(variables, x)
    ro = variables["params"]["head"]
    np.testing.assert_allclose(out, xT @ np.asarray(ro["kernel"]) + np.asarray(ro["bias"]), rtol=1e-5, atol=1e-5)


def test_width_is_required(key):
    with pytest.raises(ValueError, match="spec.width"):
        ResidualTrunk(spec=rf.TrunkSpec(depth=2)).init(key, jnp.zeros((1, 3)))
