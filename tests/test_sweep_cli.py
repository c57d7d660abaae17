"""scripts/sweep.py: seed ranges and grid values parsed with each option's type, bad flags exit 2
with one line and write nothing, and a tiny sweep run as a subprocess writes its table and
figures with rows equal to single `fit` runs of the same seeds."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import resflow as rf

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "sweep.py"
spec = importlib.util.spec_from_file_location("sweep_cli", SCRIPT)
cli = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cli)


@pytest.mark.parametrize(
    "text, seeds",
    [("0-7", list(range(8))), ("0-3,10", [0, 1, 2, 3, 10]), ("5", [5]), (" 2 , 4-5", [2, 4, 5]), ("3-3", [3])],
)
def test_seed_lists_and_ranges(text, seeds):
    assert cli.parse_seeds(text) == seeds


@pytest.mark.parametrize(
    "text, message",
    [
        ("a", "'a' is not a seed"),
        ("3-1", "ends before it starts"),
        ("-1", "'-1' is not a seed"),
        ("1,,2", "'' is not"),
        ("0-3,2", "[2] given twice"),
        ("1-x", "'1-x'"),
    ],
)
def test_bad_seeds_name_the_part(text, message):
    with pytest.raises(ValueError) as e:
        cli.parse_seeds(text)
    assert message in str(e.value) and "--seeds" in str(e.value)


def test_grid_values_take_the_option_type():
    grid = cli.parse_grid(
        ["lr=1e-2,3e-3", "w-std=1,2", "depth=3,5", "activation=tanh", "shared=false,true"], rf.TrainConfig()
    )
    assert grid == {
        "lr": [0.01, 0.003],
        "w_std": [1.0, 2.0],
        "depth": [3, 5],
        "activation": ["tanh"],
        "shared": [False, True],
    }
    assert [type(v) for v in grid["w_std"] + grid["depth"]] == [float, float, int, int]
    assert cli.parse_grid(["width=none,4"], rf.TrainConfig()) == {"width": [None, 4]}
    assert cli.parse_grid([], rf.TrainConfig()) == {}


def _exit_2_one_line(capsys, argv) -> str:
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and "usage:" not in err, err
    return err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--grid", "lr"], "'lr' is not NAME=VALUE"),
        (["--grid", "speed=1,2"], "unknown option 'speed'"),
        (["--grid", "lr=fast"], "--grid lr: 'fast' is not a valid float"),
        (["--grid", "depth=2.5"], "--grid depth: '2.5' is not a valid int"),
        (["--grid", "shared=maybe"], "not a boolean"),
        (["--grid", "lr=-0.1"], "--grid lr=-0.1: lr must be a finite number > 0"),
        (["--grid", "activation=swish"], "--grid activation=swish"),
        (["--grid", "lr=0.1", "lr=0.2"], "option 'lr' given twice"),
        (["--grid", "lr=0.1,0.1"], "a value is repeated"),
        (["--seeds", "4-2"], "ends before it starts"),
        (["--epochs", "many"], "invalid int value"),
        (["--depth", "0"], "depth must be >= 1"),
        (["--noise", "-1", "--data", "circles"], "--noise must be >= 0"),
        (["--data", "mnist"], "train-images-idx3-ubyte"),
        (["--coordinator", "localhost:1234"], "missing num_processes"),
        (["--coordinator", "x", "--num-processes", "2", "--process-id", "0"], "must be host:port"),
        (
            ["--coordinator", "h:1", "--num-processes", "2", "--process-id", "5"],
            "process_id (argument process_id) must be in [0, 2)",
        ),
    ],
)
def test_bad_flags_exit_2_and_write_nothing(tmp_path, capsys, monkeypatch, argv, message):
    for name in ("RESFLOW_COORDINATOR", "RESFLOW_NUM_PROCESSES", "RESFLOW_PROCESS_ID"):
        monkeypatch.delenv(name, raising=False)
    out = tmp_path / "sweep"
    err = _exit_2_one_line(capsys, [*argv, "--out", str(out)])
    assert message in err
    assert not out.exists()


def test_existing_non_empty_folder_is_refused_without_overwrite(tmp_path, capsys):
    out = tmp_path / "sweep"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    err = _exit_2_one_line(capsys, ["--data", "circles", "--out", str(out)])
    assert str(out) in err and "--overwrite" in err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    (tmp_path / "file").write_text("")
    assert "is a file" in _exit_2_one_line(capsys, ["--out", str(tmp_path / "file")])


def test_help_and_every_option_a_flag(capsys):
    import dataclasses

    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for (
        flag
    ) in "--seeds --grid --data --data-seed --out --overwrite --coordinator --num-processes --process-id".split():
        assert flag in text
    parser = cli.build_parser()
    dests = {a.dest for a in parser._actions}
    fields = {f.name for c in (rf.TrunkSpec, rf.TrainConfig) for f in dataclasses.fields(c)} - {"trunk"}
    assert fields <= dests
    # The shared generation: the same per-data-set defaults as scripts/train.py.
    config = cli.cli.config_from_args(parser.parse_args(["--data", "circles"]))
    assert (config.epochs, config.lr, config.trunk.w_std) == (300, 1e-2, 2.0)


TINY = ["--data", "circles", "--width", "3", "--depth", "3", "--epochs", "2", "--batch-size", "500"]
TINY += ["--depth-adapt", "--depth-warmup", "0", "--dtype", "float64", "--no-progress"]


def _run_script(argv, env_extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESFLOW_")} | {"PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), *argv],
        env=env | (env_extra or {}),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_tiny_sweep_writes_table_and_figures_equal_to_single_runs(tmp_path):
    out = tmp_path / "sweep"
    argv = [*TINY, "--seeds", "0-1", "--grid", "lr=1e-2,3e-3", "--out", str(out)]
    proc = _run_script(argv)
    log = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, log
    assert "lr=0.01" in log and "lr=0.003" in log and "test accuracy mean" in log
    record = json.loads((out / "sweep.json").read_text())
    assert record["seeds"] == [0, 1] and record["grid"] == {"lr": [0.01, 0.003]}
    assert [(r["lr"], r["seed"]) for r in record["rows"]] == [(0.01, 0), (0.01, 1), (0.003, 0), (0.003, 1)]
    assert all(len(h) == 2 for h in record["histories"])
    for name in cli.OUTPUTS[1:]:
        assert (out / name).stat().st_size > 0
    # Reference: the last run (lr 3e-3, seed 1) trained alone by fit with the same options.
    config = cli.cli.config_from_args(cli.build_parser().parse_args(TINY)).replace(lr=3e-3)
    single = rf.fit(rf.load_dataset("circles", seed=0), config, key=jax.random.key(1), figures=False)
    row, hist = record["rows"][-1], record["histories"][-1]
    assert row[cli.depth_key(record["rows"])] == single.metrics["depth_after"]
    np.testing.assert_allclose(row["test_accuracy"], single.metrics["test_accuracy"], rtol=1e-9)
    np.testing.assert_allclose([h["loss"] for h in hist], [h["loss"] for h in single.history], rtol=1e-9)
    # A second sweep into the same folder is refused; --overwrite rewrites it.
    proc = _run_script(argv)
    assert proc.communicate(timeout=60)[0].count("\n") == 1 and proc.returncode == 2


def test_two_processes_split_the_seeds_and_process_0_writes_the_same_table(tmp_path):
    """The multi-host path on localhost: process i trains seeds i, i + 2, ...; process 0
    gathers and writes. The table must equal a one-process sweep's (times aside)."""
    from test_distributed import free_port

    argv = [*TINY, "--seeds", "0-2", "--grid", "lr=1e-2,3e-3"]
    one = _run_script([*argv, "--out", str(tmp_path / "one")])
    log = one.communicate(timeout=300)[0]
    assert one.returncode == 0, log
    port = free_port()
    procs = [
        _run_script(
            [*argv, "--out", str(tmp_path / "two"), "--coordinator", f"127.0.0.1:{port}"],
            {"RESFLOW_NUM_PROCESSES": "2", "RESFLOW_PROCESS_ID": str(i)},  # flags and environment mixed
        )
        for i in range(2)
    ]
    logs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    assert "on 2 processes" in logs[0] and "test accuracy mean" not in logs[1]  # only process 0 reports
    a, b = (json.loads((tmp_path / d / "sweep.json").read_text()) for d in ("one", "two"))
    assert (a["processes"], b["processes"]) == (1, 2)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "time"} for r in rows]  # noqa: E731
    assert strip(b["rows"]) == strip(a["rows"])
    assert [strip(h) for h in b["histories"]] == [strip(h) for h in a["histories"]]
