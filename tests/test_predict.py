"""predict / evaluate / accuracy on a `Network` (and on a `Run`), against a float64 numpy forward pass."""

import jax.numpy as jnp
import numpy as np
import pytest

import resflow as rf
from resflow.trunk._network import Affine

# float64: conftest enables jax_enable_x64 for the suite.


def make_network(dtype=jnp.float64, h=0.7, depth=4):
    """Untied tanh trunk of width 5 on 3-dim inputs with a lift, 4 classes (random weights)."""
    rng = np.random.default_rng(0)
    W, b = rng.normal(0, 0.8, (depth, 5, 5)), rng.normal(0, 0.3, (depth, 5))
    trunk = rf.Trunk(jnp.asarray(W, dtype), jnp.asarray(b, dtype), h, model="resnet", activation="tanh")
    lift = Affine(jnp.asarray(rng.normal(0, 1, (3, 5)), dtype), jnp.asarray(rng.normal(0, 0.1, 5), dtype))
    readout = Affine(jnp.asarray(rng.normal(0, 1, (5, 4)), dtype), jnp.asarray(rng.normal(0, 0.1, 4), dtype))
    return rf.Network(lift, trunk, readout, depth)


def np_logits(net, x):
    """Float64 numpy: lift, x_{t+1} = x_t + h tanh(W_t x_t + b_t) for each layer, readout."""
    f = lambda a: np.asarray(a, np.float64)  # noqa: E731
    z = f(x) @ f(net.lift.W) + f(net.lift.b)
    for t in range(net.depth):
        z = z + float(net.trunk.h) * np.tanh(z @ f(net.trunk.W[t]).T + f(net.trunk.b[t]))
    return z @ f(net.readout.W) + f(net.readout.b)


def test_predict_evaluate_accuracy_on_a_network_equal_numpy():
    net = make_network()
    x = np.random.default_rng(1).normal(0, 1, (50, 3))
    ref = np_logits(net, x)
    np.testing.assert_allclose(np.asarray(rf.predict(net, x)), ref, rtol=1e-12, atol=1e-12)
    y = np.argmax(ref + np.random.default_rng(2).normal(0, 1.0, ref.shape), -1).astype(np.int32)  # not all right
    shifted = ref - ref.max(-1, keepdims=True)
    loss = np.mean(np.log(np.exp(shifted).sum(-1)) - shifted[np.arange(len(y)), y])
    acc = np.mean(np.argmax(ref, -1) == y)
    assert 0 < acc < 1
    got = rf.evaluate(net, x, y)
    assert got["loss"] == pytest.approx(loss, rel=1e-12) and got["accuracy"] == acc
    assert rf.accuracy(net, x, y) == acc
    # A shallower network is another function: the depth in force is used.
    np.testing.assert_allclose(
        np.asarray(rf.predict(net.with_depth(2), x)), np_logits(net.with_depth(2), x), rtol=1e-12
    )


def test_a_run_predicts_with_its_network_and_bad_arguments_are_named():
    net = make_network()
    config = rf.TrainConfig().replace(depth=4, width=5)
    run = rf.Run(net, config, [], {})
    x = np.random.default_rng(3).normal(0, 1, (7, 3))
    np.testing.assert_array_equal(np.asarray(rf.predict(run, x)), np.asarray(rf.predict(net, x)))
    assert run.depth == 4 and run.trunk is net.trunk and run.path is None
    with pytest.raises(TypeError, match="network must be a resflow.Network or a resflow.Run"):
        rf.predict({"network": net}, x)
    with pytest.raises(ValueError, match=r"x must have shape \(N, 3\)"):
        rf.predict(net, x[:, :2])
    with pytest.raises(ValueError, match="x must contain only finite values"):
        rf.predict(net, np.where(np.arange(21).reshape(7, 3) == 4, np.nan, x))
    with pytest.raises(ValueError, match="n_classes"):
        rf.evaluate(net, x, np.full(7, 4, np.int32))
