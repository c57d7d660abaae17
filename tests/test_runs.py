"""Saved runs: train with out_dir, load_run, predict on raw inputs, analyses equal, bad files named."""

import json

import jax
import numpy as np
import pytest

import resflow as rf
from resflow.training._preprocess import STD_FLOOR
from resflow.training._runs import RunError

SIZES = {"n_train": 64, "n_test": 32}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    data = rf.load_dataset("circles", **SIZES)
    options = {"width": 3, "depth": 4, "epochs": 3, "batch_size": 32, "w_std": 2.0, "lr": 0.05}
    result = rf.fit(data, key=jax.random.key(0), out_dir=out, figures=False, provenance={"seed": 0}, **options)
    return out, data, result


def test_load_run_predicts_raw_inputs_with_the_recorded_accuracy(saved):
    out, data, result = saved
    run = rf.load_run(out)
    raw = rf.load_dataset("circles", standardize=False, **SIZES)
    assert not np.allclose(raw.x_test, data.x_test)  # the standardisation matters here
    predicted = np.argmax(np.asarray(run.predict(raw.x_test)), -1)
    assert np.mean(predicted == raw.y_test) == result.metrics["test_accuracy"] == run.metrics["test_accuracy"]
    # The network is the trained one, leaf for leaf.
    for a, b in zip(jax.tree.leaves(run.network), jax.tree.leaves(result.network), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert run.depth == result.depth and run.config == result.config
    x0 = run.network.embed(data.x_test)
    lyap = rf.network_lyapunov_spectrum(run.trunk, x0, depth=run.depth).exponents
    ref = rf.network_lyapunov_spectrum(result.trunk, result.network.embed(data.x_test), depth=result.depth)
    np.testing.assert_array_equal(np.asarray(lyap), np.asarray(ref.exponents))
    # One type: what fit returned and what load_run read back hold the same run.
    assert isinstance(result, rf.Run) and isinstance(run, rf.Run) and result.path == run.path == out
    assert run.history == result.history and len(run.history) == 3 and run.metrics == result.metrics
    assert run.metrics["depth"] == run.depth and run.metrics["initial_depth"] == 4
    assert (run.provenance, run.data, run.preprocessing) == (result.provenance, result.data, result.preprocessing)
    np.testing.assert_array_equal(np.asarray(rf.predict(run, data.x_test)), np.asarray(run.network(data.x_test)))
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        run.predict(np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError, match="finite"):
        run.predict(np.full((3, 2), np.nan, np.float32))


def test_run_json_holds_provenance_preprocessing_and_the_data_record(saved):
    out, data, _ = saved
    info = json.loads((out / "run.json").read_text())
    prov = info["provenance"]
    assert {"argv", "python", "versions", "git_commit", "key", "seed"} <= set(prov)
    assert prov["versions"]["jax"] == jax.__version__ and prov["key"]["data"] == [0, 0]
    np.testing.assert_array_equal(info["preprocessing"]["mean"], data.meta["mean"])
    net = info["network"]
    assert (net["dim"], net["width"], net["lift"], net["n_classes"], net["model"]) == (2, 3, True, 2, "resnet")
    source = info["data"]["source"]
    assert (source["name"], source["seed"], source["options"]["n_train"]) == ("circles", 0, 64)
    reloaded = rf.load_run(out).load_data()
    np.testing.assert_array_equal(reloaded.x_test, data.x_test)


def _copy(src, dst):
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def test_metrics_with_the_old_depth_names_load_under_the_new_ones(saved, tmp_path):
    out = saved[0]
    old = _copy(out, tmp_path / "old-names")
    metrics = json.loads((old / "metrics.json").read_text())
    metrics["depth_after"], metrics["depth_before"] = metrics.pop("depth"), metrics.pop("initial_depth")
    (old / "metrics.json").write_text(json.dumps(metrics))
    loaded = rf.load_run(old).metrics
    assert (loaded["depth"], loaded["initial_depth"]) == (metrics["depth_after"], metrics["depth_before"])
    assert "depth_after" not in loaded and "depth_before" not in loaded


def test_bad_run_files_raise_run_error_naming_the_file(saved, tmp_path):
    out = saved[0]
    with pytest.raises(RunError, match="not a folder"):
        rf.load_run(tmp_path / "none")
    with pytest.raises(TypeError, match="path must be a run folder .* got NoneType"):
        rf.load_run(None)
    bad = _copy(out, tmp_path / "eqx")
    blob = bytearray((bad / "network.eqx").read_bytes())
    blob[-1] ^= 0xFF  # one weight altered: deserialises, but the checksum differs
    (bad / "network.eqx").write_bytes(bytes(blob))
    with pytest.raises(RunError, match=r"network\.eqx.*sha256"):
        rf.load_run(bad)
    (bad / "network.eqx").write_bytes(b"")
    with pytest.raises(RunError, match=r"network\.eqx"):
        rf.load_run(bad)
    (bad / "network.eqx").unlink()
    with pytest.raises(RunError, match=r"network\.eqx: missing"):
        rf.load_run(bad)
    bad = _copy(out, tmp_path / "json")
    (bad / "run.json").write_text('{"format": "resflow-run", "version"')
    with pytest.raises(RunError, match=r"run\.json: not readable JSON"):
        rf.load_run(bad)
    (bad / "run.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(RunError, match=r"run\.json: not a resflow-run"):
        rf.load_run(bad)
    info = json.loads((out / "run.json").read_text())
    # A version-1 file (no sha256 over its entries) whose skeleton does not fit network.eqx.
    legacy = {k: v for k, v in info.items() if k != "sha256"} | {"version": 1}
    (bad / "run.json").write_text(json.dumps(dict(legacy, network=dict(info["network"], width=4))))
    with pytest.raises(RunError, match=r"network\.eqx: does not hold"):
        rf.load_run(bad)
    (bad / "run.json").write_text(json.dumps({k: v for k, v in info.items() if k != "provenance"}))
    with pytest.raises(RunError, match=r"run\.json: incomplete"):
        rf.load_run(bad)
    (bad / "run.json").unlink()
    with pytest.raises(RunError, match=r"run\.json: missing"):
        rf.load_run(bad)
    # A preprocessing entry that cannot standardise inputs (was an AttributeError or a numpy
    # error at the first predict).
    p = info["preprocessing"]
    for wrong in ("x", None, dict(p, mean="a"), dict(p, std=[1.0]), dict(p, std=[1.0, 0.0]), dict(p, standardized=1)):
        (bad / "run.json").write_text(json.dumps(dict(info, preprocessing=wrong)))
        (bad / "network.eqx").write_bytes((out / "network.eqx").read_bytes())
        with pytest.raises(RunError, match=r"run\.json"):
            rf.load_run(bad)


def test_load_data_and_resume_refuse_other_data(saved, tmp_path):
    out, data, _ = saved
    bad = _copy(out, tmp_path / "moved")
    info = json.loads((bad / "run.json").read_text())
    info["data"]["source"]["seed"] = 7
    (bad / "run.json").write_text(json.dumps(info))
    with pytest.raises(RunError, match="differs from the one trained on"):
        rf.load_run(bad).load_data()
    other = rf.load_dataset("circles", seed=7, **SIZES)
    with pytest.raises(RunError, match=r"data\.json.*seed 7"):
        rf.fit(other, key=jax.random.key(0), out_dir=bad, resume=True, width=3, depth=4, epochs=3, batch_size=32)


def test_std_floor_is_saved_and_runs_without_one_are_refused(saved, tmp_path):
    out, data, _ = saved
    info = json.loads((out / "run.json").read_text())
    assert info["preprocessing"]["std_floor"] == data.meta["std_floor"] == STD_FLOOR
    raw = rf.load_dataset("circles", standardize=False, **SIZES)
    np.testing.assert_array_equal(rf.load_run(out).standardize(raw.x_test), data.x_test)
    old = _copy(out, tmp_path / "old")
    del info["preprocessing"]["std_floor"]  # as written before the floor existed (and before the sha256)
    del info["sha256"]
    info["version"] = 1
    (old / "run.json").write_text(json.dumps(info))
    with pytest.raises(RunError, match=r"run\.json: saved before standardisation had a std floor.*train the run again"):
        rf.load_run(old)


@pytest.mark.parametrize(
    "entry, field, value",
    [
        ("network", "activation", "tanh"),
        ("network", "model", "mlp"),
        ("network", "depth", 2),
        ("network", "h", 0.5),
        ("config", "lr", 0.1),
        ("preprocessing", "standardized", False),
        ("preprocessing", "std", [1.0, 1.0]),
    ],
)
def test_an_edited_run_json_is_refused_naming_it(saved, tmp_path, entry, field, value):
    # Each edit, alone, used to load: another map, depth or input scaling on the same weights.
    out, _, _ = saved
    bad = _copy(out, tmp_path / "edited")
    info = json.loads((bad / "run.json").read_text())
    info[entry][field] = value
    (bad / "run.json").write_text(json.dumps(info, indent=2))
    with pytest.raises(RunError, match=r"run\.json: its sha256 does not match") as e:
        rf.load_run(bad)
    assert str(bad / "run.json") in str(e.value)
    # Whitespace and key order are not edits: the same entries load.
    (bad / "run.json").write_text(json.dumps(json.loads((out / "run.json").read_text()), sort_keys=True))
    assert rf.load_run(bad).network.depth == rf.load_run(out).network.depth
