"""Classification by the integrated transient, against a float64 numpy loop."""

import jax.numpy as jnp
import numpy as np
import pytest

import resflow as rf
from resflow.trunk._network import Affine


def _sigmoid(z):
    return 0.5 * (1 + np.tanh(z / 2))  # no overflow for saturated pre-activations


def _network(rng, *, shared=True, depth=6, dim=3, n=4, k=3):
    W = rng.normal(0, 1.5, (n, n) if shared else (depth, n, n))
    b = rng.normal(0, 0.5, W.shape[:-1])
    lift = Affine(jnp.asarray(rng.normal(size=(dim, n))), jnp.asarray(rng.normal(size=n)))
    readout = Affine(jnp.asarray(rng.normal(size=(n, k))), jnp.asarray(rng.normal(size=k)))
    return rf.Network(lift, rf.Trunk(W, b, 0.8), readout, depth)


def np_curves(net, x, y, steady=None):
    """Reference: residuals stored, then x_0 + h Σ_{t<T'} r_t by a cumulative sum."""
    W, b, h, T = np.asarray(net.trunk.W), np.asarray(net.trunk.b), float(net.trunk.h), net.depth
    x0 = x @ np.asarray(net.lift.W) + np.asarray(net.lift.b)
    xs, rs = x0, []
    for t in range(T):
        Wt, bt = (W, b) if W.ndim == 2 else (W[t], b[t])
        rs.append(_sigmoid(xs @ Wt.T + bt))
        xs = xs + h * rs[-1]
    S = np.concatenate([x0[None], x0 + h * np.cumsum(rs, axis=0)])  # (T + 1, N, n)
    V, c = np.asarray(net.readout.W), np.asarray(net.readout.b)

    def acc(s):
        return np.mean(np.argmax(s @ V + c, -1) == y)

    plain = np.array([acc(S[t]) for t in range(T + 1)])
    if steady is None:
        return plain, None
    return plain, np.array([acc(S[t] + h * (T - t) * steady) for t in range(T + 1)])


def np_steady(net, x, depth):
    """r_{depth-1} of a_{t+1} = a_t + h W σ(a_t) from a_0 = W x_0 + b."""
    W, b, h = np.asarray(net.trunk.W), np.asarray(net.trunk.b), float(net.trunk.h)
    a = (x @ np.asarray(net.lift.W) + np.asarray(net.lift.b)) @ W.T + b
    for _ in range(depth - 1):
        a = a + h * _sigmoid(a) @ W.T
    return _sigmoid(a)


def _first(acc, full):
    return int(np.argmax(acc >= 0.99 * full))


def test_shared_network_matches_reference():
    rng = np.random.default_rng(0)
    net = _network(rng)
    x, y = rng.normal(size=(60, 3)), rng.integers(0, 3, 60)
    logits = np.asarray(net(x))  # one batch shape: one set of compiled network ops
    y[:30] = np.argmax(logits[:30], -1)  # half the labels agree with the network
    res = rf.transient_accuracy(net, x, y, steady_depth=300)
    plain, steady = np_curves(net, x, y, np_steady(net, x, 300))
    np.testing.assert_array_equal(res.depths, np.arange(7))
    np.testing.assert_allclose(res.accuracy, plain, atol=1e-12)
    np.testing.assert_allclose(res.steady_accuracy, steady, atol=1e-12)
    assert res.full_accuracy == pytest.approx(float(np.mean(np.argmax(logits, -1) == y)))
    assert int(res.transient_depth) == _first(plain, plain[-1])
    assert int(res.steady_transient_depth) == _first(steady, plain[-1])
    assert not np.allclose(plain, steady)  # the two curves are different measurements


def test_given_steady_state_and_untied_network():
    rng = np.random.default_rng(1)
    net = _network(rng, shared=False, depth=5)
    x, y = rng.normal(size=(40, 3)), rng.integers(0, 3, 40)
    res = rf.transient_accuracy(net, x, y)
    plain, _ = np_curves(net, x, y)
    np.testing.assert_allclose(res.accuracy, plain, atol=1e-12)
    assert np.isnan(np.asarray(res.steady_accuracy)).all() and int(res.steady_transient_depth) == -1
    r_star = rng.uniform(size=4)
    res = rf.transient_accuracy(net, x, y, steady=r_star)
    _, steady = np_curves(net, x, y, r_star)
    np.testing.assert_allclose(res.steady_accuracy, steady, atol=1e-12)


def test_bad_inputs():
    rng = np.random.default_rng(2)
    net = _network(rng)
    x, y = rng.normal(size=(10, 3)), rng.integers(0, 3, 10)
    with pytest.raises(TypeError, match="network"):
        rf.transient_accuracy(net.trunk, x, y)
    with pytest.raises(ValueError, match="x"):
        rf.transient_accuracy(net, x[:, :2], y)
    with pytest.raises(ValueError, match="y"):
        rf.transient_accuracy(net, x, np.full(10, 3))
    with pytest.raises(ValueError, match="steady"):
        rf.transient_accuracy(net, x, y, steady=np.zeros(3))
    with pytest.raises(ValueError, match="steady"):
        rf.transient_accuracy(net, x, y, steady=np.full(4, np.nan))
    mlp = rf.Network(net.lift, rf.Trunk(net.trunk.W, net.trunk.b, model="mlp"), net.readout, 3)
    with pytest.raises(ValueError, match="resnet"):
        rf.transient_accuracy(mlp, x, y)
