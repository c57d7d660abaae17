"""resflow.cli.analyze (scripts/analyze.py) on a run made like `make train` (--depth-adapt, few epochs; circles
with a 2 → 3 lift, so the test is fast and the fixed points can be enumerated)."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

import resflow as rf
from resflow.cli import analyze as analyze_cli
from resflow.cli import train as train_cli

ROOT = Path(__file__).resolve().parents[1]

ANALYSES = ("lyapunov", "fixed-points", "interactions", "perturbation", "separability", "noise")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "circles"
    argv = [
        "--data",
        "circles",
        "--width",
        "3",
        "--depth-adapt",
        "--depth",
        "4",
        "--epochs",
        "2",
        "--depth-warmup",
        "0",
        "--no-progress",
        "--out",
        str(out),
    ]
    assert train_cli.main(argv) == 0
    return out


def _numbers(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _numbers(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _numbers(v)
    elif isinstance(obj, int | float) and not isinstance(obj, bool):
        yield obj


def test_analyze_writes_every_json_and_figure(run_dir, tmp_path, capsys):
    out = tmp_path / "analysis"
    assert analyze_cli.main([str(run_dir), "--out", str(out), "--max-samples", "48"]) == 0
    printed = capsys.readouterr().out
    results = {}
    for name in ANALYSES:
        assert (out / f"{name}.png").stat().st_size > 0, name
        results[name] = json.loads((out / f"{name}.json").read_text())
        assert name in printed
        values = list(_numbers(results[name]))
        assert values and all(math.isfinite(v) for v in values), name
    # Width 3: all 3^3 saturation patterns enumerated; every point is in [0, 1]^3.
    points = np.asarray(results["fixed-points"]["fixed_points"]["points"])
    assert points.shape[1:] == (3,) and np.all((points >= 0) & (points <= 1))
    assert 0 <= results["fixed-points"]["steady_state"]["converged_fraction"] <= 1
    # The Lyapunov JSON is a direct call on the loaded trunk, with the run's own test data.
    run = rf.load_run(run_dir)
    x = rf.load_dataset("circles").x_test[:48]
    direct = rf.network_lyapunov_spectrum(
        run.trunk, run.network.embed(x), depth=run.depth, return_running=True
    ).exponents
    np.testing.assert_array_equal(np.asarray(results["lyapunov"]["exponents"], np.float32), np.asarray(direct))
    assert results["lyapunov"]["depth"] == run.depth == run.metrics["depth"]
    # Noise on raw inputs, σ = 0: the clean accuracy of the first 48 test inputs through run.predict.
    raw = rf.load_dataset("circles", standardize=False)
    clean = np.mean(np.argmax(np.asarray(run.predict(raw.x_test[:48])), -1) == raw.y_test[:48])
    assert results["noise"]["accuracy_mean"][0] == pytest.approx(clean, abs=1e-6)
    assert len(results["separability"]["integral_accuracy"]) == run.depth + 1


def test_analyze_one_line_errors(run_dir, tmp_path, capsys):
    def refused(argv):
        with pytest.raises(SystemExit) as e:
            analyze_cli.main(argv)
        err = capsys.readouterr().err
        assert e.value.code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        return err

    assert "invalid choice" in refused([str(run_dir), "--what", "entropy"])
    assert "not a folder" in refused([str(tmp_path / "nowhere")])
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "run.json").write_text("{")
    assert "run.json" in refused([str(broken)])
    (broken / "run.json").write_text((run_dir / "run.json").read_text())
    assert "network.eqx: missing" in refused([str(broken)])
    # A preprocessing entry that cannot standardise the inputs (was an AttributeError or a
    # numpy broadcasting error at the first analysis).
    info = json.loads((run_dir / "run.json").read_text())
    for name in ("network.eqx", "metrics.json", "data.json"):
        (broken / name).write_bytes((run_dir / name).read_bytes())
    for wrong in ("x", dict(info["preprocessing"], mean="a"), dict(info["preprocessing"], std=[1.0, 1.0, 1.0])):
        (broken / "run.json").write_text(json.dumps(dict(info, preprocessing=wrong)))
        assert "run.json" in refused([str(broken), "--what", "noise", "--max-samples", "8"])
