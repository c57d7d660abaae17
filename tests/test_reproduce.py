"""scripts/reproduce.py: the tiny mode end to end, the results page, the verdict rules, the CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from resflow.experiments.reproduce import SECTIONS, render_markdown, reproduce
from resflow.experiments.reproduce.stats import finite_numbers, summary
from resflow.experiments.reproduce.verdicts import VERDICTS

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "docs" / "results" / "reproduce" / "results.json"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce")
    return out, reproduce("tiny", out)


def _scalars(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _scalars(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _scalars(v)
    elif isinstance(obj, int | float) and not isinstance(obj, bool):
        yield obj


def test_tiny_mode_writes_every_section_with_finite_numbers_and_figures(tiny):
    out, results = tiny
    saved = json.loads((out / "results.json").read_text())
    assert saved == results
    assert [k for k, *_ in SECTIONS] == list(saved["claims"])
    for key, claim in saved["claims"].items():
        numbers = list(_scalars(claim["numbers"]))
        assert numbers, key
        assert all(math.isfinite(v) for v in numbers), key
        assert claim["verdict"]["verdict"] in ("reproduced", "partly", "not reproduced")
        png = out / claim["figure"]
        assert png.is_file() and png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size < 200_000
    # Claim 1 is algebra: float64 round-off, whatever the training did.
    assert saved["claims"]["disentangling"]["numbers"]["max_rel_err"]["max"] < 1e-10
    page = (out / "results.md").read_text()
    assert page == render_markdown(saved)
    for _, title, _ in SECTIONS:
        assert f"## {title}" in page
    # Every run is saved where a second call finds it (and reloads it instead of training).
    assert (out / "runs" / "circles" / "resnet" / "seed0" / "run.json").is_file()


def test_committed_results_page_is_rendered_from_committed_json():
    results = json.loads(COMMITTED.read_text())
    assert (ROOT / "docs" / "results.md").read_text() == render_markdown(results, figures="results/reproduce/")
    # The committed results are the full mode's (the issue: >= 8 seeds, >= 3 on Fashion-MNIST).
    assert results["meta"]["mode"] == "full"
    assert len(results["meta"]["seeds"]["images"]) >= 3 and len(results["meta"]["seeds"]["circles/digits"]) >= 8
    assert not finite_numbers(results)


def test_summary_against_numpy_free_reference():
    s = summary([1.0, 2.0, 4.0])
    mean = 7 / 3
    assert s["mean"] == pytest.approx(mean)
    assert s["std"] == pytest.approx(math.sqrt(sum((v - mean) ** 2 for v in (1, 2, 4)) / 3))
    assert (s["min"], s["max"], s["n"]) == (1.0, 4.0, 3)
    assert finite_numbers({"a": [1.0, float("nan")], "b": {"c": float("inf")}}) == ["/a[1]", "/b/c"]


def test_verdict_thresholds():
    ok = {"max_rel_err": summary([1e-15, 3e-16])}
    assert VERDICTS["disentangling"](ok)["verdict"] == "reproduced"
    assert VERDICTS["disentangling"]({"max_rel_err": summary([1e-15, 1e-6])})["verdict"] == "not reproduced"
    coop = {"cooperative_fraction": summary([0.5]), "competitive_fraction": summary([0.01])}
    assert VERDICTS["cooperation"](coop)["verdict"] == "not reproduced"


def test_cli_bad_arguments_exit_2_with_one_line():
    for args in (["--quick", "--tiny"], ["--bogus"]):
        done = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "reproduce.py"), *args], capture_output=True, text=True, cwd=ROOT
        )
        assert done.returncode == 2
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_cli_refuses_a_train_run_folder_as_runs(tmp_path, monkeypatch, capsys):
    import importlib.util

    import resflow.experiments.reproduce as rp

    spec = importlib.util.spec_from_file_location("reproduce_cli", ROOT / "scripts" / "reproduce.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    run = tmp_path / "run"
    run.mkdir()
    (run / "data.json").write_text("{}")  # what scripts/train.py writes first
    (run / "metrics.jsonl").write_text("")
    monkeypatch.setattr(rp, "reproduce", lambda *a, **k: pytest.fail("reproduce wrote into a train.py run folder"))
    with pytest.raises(SystemExit) as e:
        script.main(["--tiny", "--out", str(tmp_path / "out"), "--runs", str(run), "--no-progress"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert f"--runs {run}" in err and "data.json" in err
    assert sorted(p.name for p in run.iterdir()) == ["data.json", "metrics.jsonl"]


def test_cli_bad_out_exits_2_with_one_line_and_tiny_writes_under_runs(tmp_path, monkeypatch, capsys):
    # --out under a regular file or in /proc were tracebacks; refused before any data or training.
    import importlib.util

    spec = importlib.util.spec_from_file_location("reproduce_cli", ROOT / "scripts" / "reproduce.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    package = sys.modules["resflow.experiments.reproduce"]
    monkeypatch.setattr(package, "load_data", lambda mode: pytest.fail("loaded data"))
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    for out, message in [(blocker / "out", f"lies under the file {blocker}"), ("/proc/resflow", "is not writable")]:
        with pytest.raises(SystemExit) as info:
            script.main(["--tiny", "--out", str(out), "--no-progress"])
        err = capsys.readouterr().err
        assert info.value.code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    # Without --out, the small modes write into runs/ (git-ignored), not the current folder.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(package, "load_data", _stop)
    with pytest.raises(SystemExit):
        script.main(["--tiny", "--no-progress"])
    assert (tmp_path / "runs" / "reproduce-tiny").is_dir() and not (tmp_path / "reproduce-tiny").exists()
    assert "runs/" in (ROOT / ".gitignore").read_text().splitlines()


def _stop(mode):
    raise FileNotFoundError("stopped after the output folders were made")
