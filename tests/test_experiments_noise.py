"""The noise-robustness experiment driver and its CLI (fit is mocked: no training here)."""

import json
from types import SimpleNamespace

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import resflow as rf
import resflow.training._fit
from resflow.cli import noise as noise_cli
from resflow.experiments.noise import ModelSpec, compare_noise_robustness, parse_model_spec


def blob_data():
    from resflow.training import Dataset

    rng = np.random.default_rng(0)

    def blobs(n):
        y = np.arange(n) % 2
        return (rng.normal(size=(n, 2)) + 3.0 * (2 * y[:, None] - 1)).astype(np.float32), y.astype(np.int32)

    (xa, ya), (xb, yb) = blobs(128), blobs(64)
    return Dataset(xa, ya, xb, yb, {"name": "blobs", "n_classes": 2})


class Network(eqx.Module):
    """What fit's result.network is: a module whose call gives logits (here: trunk + readout)."""

    trunk: rf.Trunk
    readout: jax.Array
    depth: int = eqx.field(static=True)

    def __call__(self, x):
        return rf.forward(self.trunk, x, depth=self.depth) @ self.readout


def fake_fit(data, *, key, model, depth, w_std, **options):
    # Readout: the sign of the first coordinate after the trunk (the blobs sit at ±3 on both axes).
    trunk = rf.Trunk(0.01 * jnp.eye(2, dtype=jnp.float32), jnp.zeros(2, jnp.float32), model=model)
    network = Network(trunk, jnp.array([[-1.0, 1.0], [0.0, 0.0]], jnp.float32), depth)
    x, y = jnp.asarray(data.x_test), jnp.asarray(data.y_test)
    acc = float(jnp.mean(jnp.argmax(network(x), -1) == y))
    return SimpleNamespace(trunk=trunk, network=network, depth=depth, metrics={"test_accuracy": acc})


def test_parse_model_spec():
    assert parse_model_spec("resnet:15") == ModelSpec("resnet", 15, 1.0)
    spec = parse_model_spec("mlp:15:6")
    assert spec == ModelSpec("mlp", 15, 6.0) and spec.label == "MLP-15 (w_std 6)"
    for bad in ["cnn:3", "mlp", "mlp:0", "mlp:3:-1", "resnet:x", "mlp:3:1:2"]:
        with pytest.raises(ValueError, match="model:depth"):
            parse_model_spec(bad)


def test_compare_noise_robustness_evaluates_each_trained_network(monkeypatch):
    monkeypatch.setattr(resflow.training._fit, "fit", fake_fit)
    out = compare_noise_robustness(
        blob_data(), ["resnet:1"], sigmas=[0.0, 30.0], key=jax.random.key(0), num_draws=4, seeds=(0, 1)
    )
    rows = out.table["rows"]
    assert [r["seed"] for r in rows] == [0, 1]
    row = rows[0]
    assert row["label"] == "ResNet-1" and row["depth"] == row["initial_depth"] == 1
    # sigma = 0 reproduces the clean test accuracy that fit reported; huge noise destroys it.
    assert row["clean_accuracy"] > 0.95
    assert row["accuracy_mean"][0] == pytest.approx(row["clean_accuracy"])
    assert row["accuracy_mean"][1] < 0.75
    assert row["growth_median_T"] > 0
    assert out.curves["ResNet-1"].accuracy.shape == (2, 8)
    json.dumps(out.table)


def test_compare_noise_robustness_trains_with_fit():
    out = compare_noise_robustness(
        blob_data(), ["resnet:1"], sigmas=[0.0, 30.0], key=jax.random.key(0), num_draws=4, epochs=5, lr=3e-2
    )
    (row,) = out.table["rows"]
    assert row["clean_accuracy"] > 0.95
    assert row["accuracy_mean"][0] == pytest.approx(row["clean_accuracy"])
    assert row["accuracy_mean"][1] < 0.75


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
    def no_training(*args, **kwargs):
        raise AssertionError("fit must not run before the options are checked")

    monkeypatch.setattr(resflow.training._fit, "fit", no_training)
    kw = dict(dict(sigmas=[0.0, 1.0], key=jax.random.key(0), seeds=(0,), epochs=1), **bad)
    with pytest.raises(err, match=match):
        compare_noise_robustness(blob_data(), ["resnet:2"], **kw)


@pytest.mark.parametrize("argv", [["--models", "cnn:3"], ["--draws", "0"], ["--sigmas", "-1"], ["--data", "nope"]])
def test_script_rejects_bad_flags_with_exit_2(argv, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        noise_cli.main(argv + ["--out", str(tmp_path / "out")])
    assert e.value.code == 2
    assert not (tmp_path / "out").exists()
    assert capsys.readouterr().err.strip().count("\n") == 0  # one line, no usage dump


def test_script_help_has_no_duplicate_defaults():
    text = noise_cli.build_parser().format_help()
    assert "(default: None)" not in text
    for line in text.splitlines():
        assert line.count("default") <= 1, line


def test_flat_numbers_of_a_table():
    from resflow.experiments.noise import flat_numbers

    rows = [
        {"label": "MLP-15 (w_std 6)", "seed": s, "clean_accuracy": c, "accuracy_mean": [c, a]}
        for s, c, a in [(0, 0.8, 0.4), (1, 0.9, 0.5)]
    ]
    summary = {"MLP-15 (w_std 6)": {"clean_accuracy": 0.85, "accuracy_mean": [0.85, 0.45], "growth_median_T": 0.2}}
    flat = flat_numbers({"sigmas": [0.0, 1.5], "rows": rows, "summary": summary})
    k = "mlp_15_w_std_6"
    assert flat[f"{k}_clean"] == 0.85 and flat[f"{k}_growth"] == 0.2
    assert flat[f"{k}_sigma1p5"] == 0.45 and flat[f"{k}_relative_percent_sigma1p5"] == pytest.approx(100 * 0.45 / 0.85)
    assert flat[f"{k}_seed1_clean"] == 0.9
    assert flat[f"{k}_seed_spread_sigma1p5"] == pytest.approx(0.05)
    assert all(isinstance(v, float | int) for v in flat.values())
    table = {"sigmas": [0.0, 1.5], "rows": rows, "summary": summary, "seeds": [0, 1], "num_draws": 20}
    sizes = flat_numbers(table | {"data": {"name": "digits", "n_train": 1438, "n_test": 359}})
    assert (sizes["n_train"], sizes["n_test"], sizes["noisy_images_per_point"]) == (1438, 359, 359 * 2 * 20)
