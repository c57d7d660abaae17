"""resflow.cli.sweep (scripts/sweep.py, `resflow-sweep`): seed ranges and grid values parsed with each option's type, bad flags exit 2
with one line and write nothing, and a tiny sweep run as a subprocess writes its table and
figures with rows equal to single `fit` runs of the same seeds."""

import dataclasses
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import resflow as rf
from resflow.cli import config_from_args
from resflow.cli import sweep as cli

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "sweep.py"  # the wrapper, run as a process below


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
        ("4294967296", "seeds must be < 2**32"),  # jax.random.key(2**32) is key(0)
        # Counted before any list is built (this one hung, building and scanning 10^8 seeds).
        ("0-100000000", "lists 100000001 seeds, more than the 1000000"),
        ("0-99999999999999999999", "seeds must be < 2**32"),
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


def test_bad_out_no_lift_and_oversized_sweeps_exit_2_before_training(tmp_path, capsys, monkeypatch):
    # Were tracebacks after the whole sweep had trained (the folder is made at the end), or
    # mid-sweep (--no-lift, from the first group's setup).
    monkeypatch.setattr(importlib.import_module("resflow.training._sweep"), "_run_group", _no_training)
    tiny = ["--data", "circles", "--width", "3", "--depth", "3", "--epochs", "1", "--seeds", "0", "--no-progress"]
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert f"lies under the file {blocker}" in _exit_2_one_line(capsys, [*tiny, "--out", str(blocker / "sweep")])
    assert "is not writable" in _exit_2_one_line(capsys, [*tiny, "--out", "/proc/resflow-sweep"])
    err = _exit_2_one_line(capsys, [*tiny, "--no-lift", "--out", str(tmp_path / "a")])
    assert "lift=False needs width equal to the data dimension 2" in err
    # 1000 runs of 10^8 epochs: their histories alone are tens of terabytes
    many = [*tiny[:-3], "--epochs", "100000000", "--seeds", "0-999", "--out", str(tmp_path / "b")]
    err = _exit_2_one_line(capsys, many)
    assert "1000 runs (1000 seeds x 1 grid points) need at least" in err and "GiB of" in err


def _no_training(*args, **kwargs):
    raise AssertionError("a refused sweep trained")


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
    config = config_from_args(parser.parse_args(["--data", "circles"]))
    assert (config.epochs, config.lr, config.trunk.w_std) == (300, 1e-1, 1.0)
    assert (config.depth_warmup, config.multi_cut) == (0, True)


# Chunks of one epoch: the SIGTERM test stops a sweep between them. Both sweeps below run the same
# 6 runs (one vmapped program, built once for the file).
TINY = ["--data", "circles", "--width", "3", "--depth", "3", "--epochs", "2", "--batch-size", "500"]
TINY += ["--depth-adapt", "--depth-warmup", "0", "--dtype", "float64", "--chunk-epochs", "1", "--no-progress"]
SWEEP = [*TINY, "--seeds", "0-2", "--grid", "lr=1e-2,3e-3"]


def _run_script(argv, env_extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESFLOW_")} | {"PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), *argv],
        env=env | (env_extra or {}),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_tiny_sweep_writes_table_and_figures_and_two_processes_write_the_same(tmp_path, capsys, monkeypatch):
    """One process (in this one: `main(argv)`): sweep.json (rows in grid × seed order, the options
    the flags give) and the figures. Then the multi-host path on localhost, as two real processes
    of the scripts/sweep.py wrapper: process i trains seeds i, i + 2, ...; process 0 gathers and
    writes; its table must equal the one-process table (times aside).
    (Vmapped runs equal single `fit` runs: tests/test_sweep.py.)"""
    import matplotlib.pyplot as plt
    from test_distributed import free_port

    for name in ("RESFLOW_COORDINATOR", "RESFLOW_NUM_PROCESSES", "RESFLOW_PROCESS_ID"):
        monkeypatch.delenv(name, raising=False)
    argv = SWEEP
    assert cli.main([*argv, "--out", str(tmp_path / "one")]) == 0
    plt.close("all")  # the in-process CLI leaves its figures open
    log = capsys.readouterr().out
    assert "lr=0.01" in log and "lr=0.003" in log and "test accuracy mean" in log
    a = json.loads((tmp_path / "one" / "sweep.json").read_text())
    expected = config_from_args(cli.build_parser().parse_args(TINY))
    assert a["config"] == json.loads(json.dumps(dataclasses.asdict(expected)))
    assert a["seeds"] == [0, 1, 2] and a["grid"] == {"lr": [0.01, 0.003]} and a["processes"] == 1
    assert [(r["lr"], r["seed"]) for r in a["rows"]] == [(lr, s) for lr in (0.01, 0.003) for s in range(3)]
    for row, hist in zip(a["rows"], a["histories"], strict=True):
        assert len(hist) == 2 and row["test_accuracy"] == hist[-1]["test_accuracy"]
        assert row["depth"] == hist[-1].get("depth_after_cut", hist[-1]["depth"])
    for name in cli.OUTPUTS[1:]:
        assert (tmp_path / "one" / name).stat().st_size > 0
    # One run folder per run, as scripts/train.py writes it: load_run reloads each.
    for row in a["rows"]:
        run = rf.load_run(tmp_path / "one" / "runs" / f"lr={row['lr']}-s{row['seed']}")
        assert (run.metrics["test_accuracy"], run.depth, run.provenance["seed"]) == (
            row["test_accuracy"],
            row["depth"],
            row["seed"],
        )
    # A second sweep into the same folder is refused, in one line.
    assert "--overwrite" in _exit_2_one_line(capsys, [*argv, "--out", str(tmp_path / "one")])

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
    b = json.loads((tmp_path / "two" / "sweep.json").read_text())
    assert b["processes"] == 2
    assert sorted(p.name for p in (tmp_path / "two" / "runs").iterdir()) == sorted(
        f"lr={lr}-s{s}" for lr in (0.01, 0.003) for s in range(3)
    )  # each process wrote its runs' folders
    # Equal up to float64 round-off: a vmapped program over 3 runs may round unlike one over 6.
    for got, want in zip(b["rows"] + sum(b["histories"], []), a["rows"] + sum(a["histories"], []), strict=True):
        assert got.keys() == want.keys()
        for k in set(got) - {"time"}:
            if isinstance(want[k], float):
                np.testing.assert_allclose(got[k], want[k], rtol=1e-12, err_msg=k)
            else:
                assert got[k] == want[k], k


def test_a_sigterm_sweep_exits_one_line_and_resumes_to_the_uninterrupted_table(tmp_path, capsys, monkeypatch):
    import importlib
    import signal

    from test_train_failures import send

    sw = importlib.import_module("resflow.training._sweep")
    for name in ("RESFLOW_COORDINATOR", "RESFLOW_NUM_PROCESSES", "RESFLOW_PROCESS_ID"):
        monkeypatch.delenv(name, raising=False)
    argv = SWEEP
    import matplotlib.pyplot as plt

    assert cli.main([*argv, "--out", str(tmp_path / "whole")]) == 0
    whole = json.loads((tmp_path / "whole" / "sweep.json").read_text())
    plt.close("all")  # the in-process CLI leaves its figures open
    capsys.readouterr()
    real = sw._vmapped

    def killing(kernel, length):  # SIGTERM while the first chunk computes
        init, chunk, evaluate = real(kernel, length)

        def chunk_then_kill(*args):
            out = chunk(*args)
            send(signal.SIGTERM)
            return out

        return init, chunk_then_kill, evaluate

    out = tmp_path / "cut"
    monkeypatch.setattr(sw, "_vmapped", killing)
    assert cli.main([*argv, "--out", str(out)]) == 128 + signal.SIGTERM
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "stopped by SIGTERM" in err and "--resume" in err
    assert not (out / "sweep.json").exists()
    [group] = (out / "checkpoints").glob("group-*.msgpack")
    from resflow.training._checkpoint import load_checkpoint

    assert load_checkpoint(group)[1]["epoch"] == 1  # the chunk that was computing
    # Another sweep in its place, or a plain rerun, is refused in one line; --resume finishes it.
    assert "holds another sweep" in _exit_2_one_line(capsys, [*argv, "--out", str(out), "--resume", "--w-std", "2"])
    assert "--resume" in _exit_2_one_line(capsys, [*argv, "--out", str(out)])
    assert cli.main([*argv, "--out", str(out), "--resume"]) == 0
    plt.close("all")
    cut = json.loads((out / "sweep.json").read_text())
    strip = [{k: v for k, v in r.items() if k != "time"} for r in whole["rows"]]
    assert [{k: v for k, v in r.items() if k != "time"} for r in cut["rows"]] == strip
    assert cut["histories"] == whole["histories"]
