import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

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


def test_matches_numpy_loop_with_the_same_noise(key):
    kw, kx = jax.random.split(key)
    W = jax.random.normal(kw, (3, 4))
    x = jax.random.normal(kx, (50, 3))
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


def test_parse_model_spec():
    assert rf.parse_model_spec("resnet:15") == rf.ModelSpec("resnet", 15, 1.0)
    spec = rf.parse_model_spec("mlp:15:6")
    assert spec == rf.ModelSpec("mlp", 15, 6.0) and spec.label == "MLP-15 (w_std 6)"
    for bad in ["cnn:3", "mlp", "mlp:0", "mlp:3:-1", "resnet:x", "mlp:3:1:2"]:
        with pytest.raises(ValueError, match="model:depth"):
            rf.parse_model_spec(bad)


def blob_data():
    from resflow.data import Dataset

    rng = np.random.default_rng(0)

    def blobs(n):
        y = np.arange(n) % 2
        return (rng.normal(size=(n, 2)) + 3.0 * (2 * y[:, None] - 1)).astype(np.float32), y.astype(np.int32)

    (xa, ya), (xb, yb) = blobs(128), blobs(64)
    return Dataset(xa, ya, xb, yb, {"name": "blobs", "n_classes": 2})


def test_compare_noise_robustness_trains_and_evaluates():
    # Two well-separated Gaussian blobs in 2-D: a one-layer network learns them in a few epochs.
    # (One model only: every fit compiles its own training step.)
    data = blob_data()
    out = rf.compare_noise_robustness(
        data, ["resnet:1"], sigmas=[0.0, 30.0], key=jax.random.key(0), num_draws=4, seeds=(0,), epochs=5, lr=3e-2
    )
    (row,) = out.table["rows"]
    assert row["label"] == "ResNet-1" and row["seed"] == 0 and row["depth"] == row["initial_depth"] == 1
    # sigma = 0 reproduces the clean test accuracy that fit reported; huge noise destroys it.
    assert row["clean_accuracy"] > 0.95
    assert row["accuracy_mean"][0] == pytest.approx(row["clean_accuracy"])
    assert row["accuracy_mean"][1] < 0.75
    assert row["growth_median_T"] > 0
    assert out.curves["ResNet-1"].accuracy.shape == (2, 4)
    assert out.table["summary"]["ResNet-1"]["accuracy_mean"] == row["accuracy_mean"]
    json.dumps(out.table)


@pytest.mark.parametrize("argv", [["--models", "cnn:3"], ["--draws", "0"], ["--sigmas", "-1"], ["--data", "nope"]])
def test_script_rejects_bad_flags_with_exit_2(argv, tmp_path):
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).parents[1] / "scripts" / "noise_robustness.py"
    spec = importlib.util.spec_from_file_location("noise_robustness_script", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    with pytest.raises(SystemExit) as e:
        script.main(argv + ["--out", str(tmp_path / "out")])
    assert e.value.code == 2
    assert not (tmp_path / "out").exists()


class Unhashable:
    __hash__ = None

    def __call__(self, W, z):
        return z @ W


def test_params_form_compiles_once_and_matches_closure(key):
    from resflow.robustness import _noise_run

    def logits(W, z):
        return z @ W

    x = jax.random.normal(key, (40, 3))
    y = jnp.arange(40) % 4
    sigmas, k = jnp.array([0.0, 0.5]), jax.random.key(5)
    before = _noise_run._cache_size()
    for seed in range(3):  # new weights each time (as new training seeds give)
        W = jax.random.normal(jax.random.key(seed), (3, 4))
        res = rf.noise_accuracy(logits, x, y, sigmas, key=k, num_draws=3, params=W)
        ref = rf.noise_accuracy(lambda z, W=W: z @ W, x, y, sigmas, key=k, num_draws=3)
        np.testing.assert_array_equal(np.asarray(res.accuracy), np.asarray(ref.accuracy))
    assert _noise_run._cache_size() == before + 1
    with pytest.raises(TypeError, match="hashable"):
        rf.noise_accuracy(Unhashable(), x, y, sigmas, key=k, params=W)


@pytest.mark.parametrize(
    "bad, err, match",
    [
        (dict(sigmas=[0.0, -1.0]), ValueError, "sigmas"),
        (dict(sigmas=[0.0, float("nan")]), ValueError, "sigmas"),
        (dict(seeds=(0.7,)), TypeError, "seed"),
        (dict(depth=3), ValueError, "train_options"),
        (dict(model="mlp"), ValueError, "train_options"),
        (dict(w_std=2.0), ValueError, "train_options"),
    ],
)
def test_compare_rejects_bad_options_before_training(bad, err, match, monkeypatch):
    import resflow.train

    def no_training(*args, **kwargs):
        raise AssertionError("fit must not run before the options are checked")

    monkeypatch.setattr(resflow.train, "fit", no_training)
    kw = dict(dict(sigmas=[0.0, 1.0], key=jax.random.key(0), seeds=(0,), epochs=1), **bad)
    with pytest.raises(err, match=match):
        rf.compare_noise_robustness(blob_data(), ["resnet:2"], **kw)
