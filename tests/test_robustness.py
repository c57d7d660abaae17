import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import count_compiles

import resflow as rf


def phi(z):
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def threshold_data(n=2000, m=0.8):
    # Class 1 sits at +m, class 0 at -m on the first coordinate; the second is a distractor.
    y = jnp.arange(n) % 2
    x = jnp.stack([m * (2.0 * y - 1.0), jnp.zeros(n)], axis=1)
    return x, y


@pytest.mark.parametrize("as_logits", [False, True])
def test_threshold_classifier_follows_phi(as_logits):
    # sign(±m + σ ε) is right with probability Φ(m / σ).
    m = 0.8
    x, y = threshold_data(m=m)
    if as_logits:
        fn = lambda z: jnp.stack([-z[:, 0], z[:, 0]], axis=1)  # noqa: E731
    else:
        fn = lambda z: (z[:, 0] > 0).astype(jnp.int32)  # noqa: E731
    sigmas = jnp.array([0.0, 0.4, 0.8, 2.0])
    res = rf.noise_accuracy(fn, x, y, sigmas, key=jax.random.key(3), num_draws=20)
    assert res.accuracy.shape == (4, 20)
    expected = [1.0] + [phi(m / s) for s in (0.4, 0.8, 2.0)]
    # Monte Carlo over 40000 samples: standard error <= 0.0025.
    np.testing.assert_allclose(np.asarray(res.mean), expected, atol=0.01)
    assert float(res.mean[0]) == 1.0 and float(res.std[0]) == 0.0
    np.testing.assert_allclose(np.asarray(res.std), np.asarray(res.accuracy).std(axis=1), rtol=1e-12)
    # Common random numbers: for each draw the accuracy cannot increase with σ here.
    assert np.all(np.diff(np.asarray(res.accuracy), axis=0) <= 0)


def test_matches_numpy_loop_with_the_same_noise():
    rng = np.random.default_rng(0)  # numpy: no random program to build
    W = jnp.asarray(rng.normal(size=(3, 4)))
    x = jnp.asarray(rng.normal(size=(50, 3)))
    y = jnp.arange(50) % 4
    sigmas = jnp.array([0.1, 1.0])
    res = rf.noise_accuracy(lambda z: z @ W, x, y, sigmas, key=jax.random.key(7), num_draws=3)
    keys = jax.random.split(jax.random.key(7), 3)
    noise = np.asarray(jax.vmap(lambda k: jax.random.normal(k, x.shape, x.dtype))(keys))
    for i, s in enumerate(np.asarray(sigmas)):
        for k in range(3):
            e = noise[k]
            pred = np.argmax((np.asarray(x) + s * e) @ np.asarray(W), axis=1)
            assert float(res.accuracy[i, k]) == pytest.approx(np.mean(pred == np.asarray(y)))
    again = rf.noise_accuracy(lambda z: z @ W, x, y, sigmas, key=jax.random.key(7), num_draws=3)
    np.testing.assert_array_equal(np.asarray(res.accuracy), np.asarray(again.accuracy))


def test_bad_input_rejected():
    x, y = threshold_data(n=10)
    fn = lambda z: (z[:, 0] > 0).astype(jnp.int32)  # noqa: E731
    k = jax.random.key(0)
    with pytest.raises(TypeError, match="callable"):
        rf.noise_accuracy(None, x, y, jnp.array([0.1]), key=k)
    with pytest.raises(TypeError, match="must return logits"):
        rf.noise_accuracy(lambda z: z[:, 0], x, y, jnp.array([0.1]), key=k)
    with pytest.raises(ValueError, match="sigmas must be >= 0"):
        rf.noise_accuracy(fn, x, y, jnp.array([-0.1]), key=k)
    with pytest.raises(ValueError, match="labels must have shape"):
        rf.noise_accuracy(fn, x, y[:5], jnp.array([0.1]), key=k)
    with pytest.raises(ValueError, match="x must have 2 dimensions"):
        rf.noise_accuracy(fn, x[:, 0], y, jnp.array([0.1]), key=k)
    with pytest.raises(ValueError, match="num_draws"):
        rf.noise_accuracy(fn, x, y, jnp.array([0.1]), key=k, num_draws=0)
    with pytest.raises(ValueError, match="x must contain only finite"):
        rf.noise_accuracy(fn, x.at[0, 0].set(jnp.nan), y, jnp.array([0.1]), key=k)
    with pytest.raises(ValueError, match="labels must be >= 0"):
        rf.noise_accuracy(fn, x, y.at[0].set(-1), jnp.array([0.1]), key=k)
    with pytest.raises(ValueError, match="sigmas must contain only finite"):
        rf.noise_accuracy(fn, x, y, jnp.array([jnp.inf]), key=k)
    with pytest.raises(TypeError, match="key"):
        rf.noise_accuracy(fn, x, y, jnp.array([0.1]), key=0)


class Unhashable:
    """A callable with an array and no hash: compiled per call, still right."""

    __hash__ = None

    def __init__(self, W):
        self.W = W

    def __call__(self, z):
        return z @ self.W


class Linear(eqx.Module):
    """A classifier module (as a trained network is): logits z @ W."""

    W: jax.Array

    def __call__(self, z):
        return z @ self.W


def test_module_classifier_compiles_once_and_matches_closure():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(40, 3)))
    y = jnp.arange(40) % 4
    sigmas, k = jnp.array([0.0, 0.5]), jax.random.key(5)
    compiles = []
    for _ in range(3):  # new weights each time (as new training seeds give)
        W = jnp.asarray(rng.normal(size=(3, 4)))
        res, n = count_compiles(lambda W=W: rf.noise_accuracy(Linear(W), x, y, sigmas, key=k, num_draws=3))
        compiles.append(n)
        ref = rf.noise_accuracy(lambda z, W=W: z @ W, x, y, sigmas, key=k, num_draws=3)
        np.testing.assert_array_equal(np.asarray(res.accuracy), np.asarray(ref.accuracy))
        other = rf.noise_accuracy(Unhashable(W), x, y, sigmas, key=k, num_draws=3)
        np.testing.assert_array_equal(np.asarray(other.accuracy), np.asarray(ref.accuracy))
    assert compiles[0] >= 1 and compiles[1:] == [0, 0]
