"""resflow.cli.train (scripts/train.py, `resflow-train`), called in-process: bad flags exit 2 and
write nothing; a tiny run writes its outputs. The SIGTERM test runs the scripts/train.py wrapper as a process."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from resflow.cli import PER_DATASET
from resflow.cli import train as cli

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train.py"  # the wrapper, run as a process below


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--epochs", "many"], "invalid int value"),
        (["--depth", "0"], "depth must be >= 1"),
        (["--samples", "0"], "--samples must be >= 1"),
        (["--activation", "swish"], "invalid choice"),
        (["--data", "cifar"], "invalid choice"),
        (["--lr", "-0.1"], "lr must be a finite number > 0"),
        (["--min-depth", "20"], "min_depth must be <="),
        (["--data", "mnist"], "train-images-idx3-ubyte"),
        (["--data", "fashion-mnist", "--data-path", "/nonexistent/fmnist"], "t10k-images-idx3-ubyte"),
        (["--resume"], "no checkpoint"),
        (["--noise", "-1", "--data", "circles"], "noise"),
        (["--label-column", "0"], "--label-column applies to --data csv only, not to --data digits"),
        (["--data", "circles", "--test-fraction", "0.3"], "--test-fraction applies to --data csv or digits only"),
        (["--test-fraction", "1.5"], "--test-fraction must be in (0, 1), got 1.5"),
        (["--data", "csv"], "csv reads the user's file"),
    ],
)
def test_bad_flags_exit_2_and_write_nothing(tmp_path, capsys, argv, message):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as e:
        cli.main([*argv, "--out", str(out)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and "usage:" not in err
    assert not out.exists()


def test_help_explains_every_flag(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for flag in "--data --data-path --model --width --depth --shared --no-shared --h --activation --epochs".split():
        assert flag in text
    for flag in "--batch-size --lr --seed --depth-adapt --depth-tol --out --resume --dtype --depth-warmup".split():
        assert flag in text
    # Each default is shown once: no argparse "(default: None)" after a hand-written default.
    flat = " ".join(text.split())
    assert flat.count("(default: runs/") == 1 and "runs/<data>-<model>-<weights>-d<depth>-s<seed>) (default" not in flat
    for action in cli.build_parser()._actions[1:]:
        assert action.help.count("default") <= 1, action.help


def test_every_option_has_a_flag_and_every_flag_an_option():
    """The trunk/training flags are generated from TrunkSpec and TrainConfig: one each, same name."""
    import dataclasses

    import resflow as rf

    parser = cli.build_parser()
    groups = {g.title: {a.dest for a in g._group_actions} for g in parser._action_groups}
    assert groups["trunk (resflow.TrunkSpec)"] == {f.name for f in dataclasses.fields(rf.TrunkSpec)}
    own = {f.name for f in dataclasses.fields(rf.TrainConfig)} - {"trunk"}
    assert groups["training (resflow.TrainConfig)"] == own
    # Parsed defaults (per-data-set ones filled in) give the library's defaults elsewhere.
    config = cli.config_from_args(parser.parse_args(["--data", "digits"]))
    assert config.trunk == rf.TrunkSpec()
    per_data = set(PER_DATASET)
    for name in own - per_data:
        assert getattr(config, name) == getattr(rf.TrainConfig(), name)
    assert config.epochs == PER_DATASET["epochs"]["digits"]
    flags = ["--no-shared", "--activation", "tanh", "--h", "0.5", "--lift", "--clip-norm", "1", "--multi-cut"]
    config = cli.config_from_args(parser.parse_args(flags))
    assert (config.trunk.shared, config.trunk.activation, config.trunk.h) == (False, "tanh", 0.5)
    assert (config.lift, config.clip_norm, config.multi_cut) == (True, 1.0, True)


def test_tiny_run_writes_metrics_and_figures(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["--data", "circles", "--width", "3", "--depth", "4", "--epochs", "2", "--batch-size", "100"]
    # Chunks of one epoch: the resumed run (3 epochs) runs the program of the first (not one of 3 epochs).
    argv += ["--depth-adapt", "--depth-warmup", "0", "--chunk-epochs", "1", "--no-progress", "--out", str(out)]
    assert cli.main(argv) == 0
    text = capsys.readouterr().out
    assert "test accuracy" in text and "depth 4 ->" in text
    assert "before pruning (just before the first cut)" in text and "final weights run at depth 4" in text
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 <= metrics["accuracy_final_params_at_max_depth"] <= 1
    assert metrics["initial_depth"] == 4 and metrics["config"]["depth_warmup"] == 0
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    for fig in ("training_curves.png", "depth_history.png", "residuals_by_class.png"):
        assert (out / fig).is_file()
    # Resume a finished run for more epochs; other changed options are refused.
    more = [a if a != "2" else "3" for a in argv]
    assert cli.main([*more, "--resume"]) == 0
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3
    with pytest.raises(SystemExit) as e:
        cli.main([*more, "--resume", "--lr", "0.5"])
    assert e.value.code == 2 and "only epochs may change" in capsys.readouterr().err


TINY = ["--data", "circles", "--width", "3", "--depth", "3", "--epochs", "1", "--batch-size", "500", "--no-progress"]


def _exit_2_one_line(capsys, argv) -> str:
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_bad_data_file_is_one_line_exit_2(tmp_path, capsys):
    bad = tmp_path / "table.csv"
    bad.write_text("a,label\n1.0,0\n2.0,0.5\n")
    err = _exit_2_one_line(capsys, ["--data", "csv", "--data-path", str(bad), "--out", str(tmp_path / "run")])
    assert str(bad) in err and "integer" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "text, message",
    [
        ("1,,0\n2,3,1\n4,5,0\n6,7,1\n", "line 1, column 1: an empty cell"),  # not taken as a header
        ("a,label\n1,0\n2,0\n3,0\n", "at least 2 classes"),
        ("1,0\n2,1\n3,0\n4,2\n5,1\n6,0\n", "occur only in the test split"),
    ],
)
def test_bad_csv_file_is_one_line_exit_2(tmp_path, capsys, text, message):
    bad = tmp_path / "table.csv"
    bad.write_text(text)
    argv = ["--data", "csv", "--data-path", str(bad), "--test-fraction", "0.5", "--out", str(tmp_path / "run")]
    err = _exit_2_one_line(capsys, argv)
    assert str(bad) in err and message in err
    assert not (tmp_path / "run").exists()


def test_csv_label_column_and_test_fraction_flags(tmp_path, capsys, monkeypatch):
    import resflow as rf
    import resflow.training._fit

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 2))
    kind = (x[:, 0] > 0).astype(int)
    table = tmp_path / "table.csv"
    table.write_text("kind,u,v\n" + "".join(f"{k},{a},{b}\n" for k, (a, b) in zip(kind, x, strict=True)))
    seen = {}

    def fake_fit(data, config, **kwargs):  # the flags' effect is in what reaches fit; no training needed
        seen.update(data=data, source=kwargs["data_source"])
        raise SystemExit(0)

    monkeypatch.setattr(resflow.training._fit, "fit", fake_fit)
    argv = ["--data", "csv", "--data-path", str(table), "--label-column", "kind", "--test-fraction", "0.25"]
    with pytest.raises(SystemExit):
        cli.main([*argv, "--out", str(tmp_path / "run")])
    assert "csv: 30 train / 10 test, dim 2" in capsys.readouterr().out
    data, source = seen["data"], seen["source"]
    assert source["options"] == {"label_column": "kind", "test_fraction": 0.25}
    np.testing.assert_array_equal(np.sort(np.concatenate([data.y_train, data.y_test])), np.sort(kind))
    mean, std = np.asarray(data.meta["mean"]), np.asarray(data.meta["std"])
    raw = np.concatenate([data.x_train, data.x_test]) * std + mean
    np.testing.assert_allclose(np.sort(raw, 0), np.sort(x, 0), rtol=1e-5, atol=1e-5)  # u, v: not the labels
    # The recorded source reloads the same arrays (what load_run(...).load_data() does), also from
    # the data's own meta when fit is called from Python without data_source.
    from resflow.training._record import data_fingerprint, data_source

    for src in (source, data_source(data)):
        again = rf.load_dataset(src["name"], seed=src["seed"], path=src["path"], **src["options"])
        assert data_fingerprint(again) == data_fingerprint(data)


def test_existing_run_is_refused_overwrite_clears_only_run_files(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main([*TINY, "--out", str(out)]) == 0
    for name in ("checkpoint.msgpack", "run.json", "network.eqx", "data.json", "metrics.json"):
        assert (out / name).is_file(), name
    before = (out / "run.json").read_bytes()
    err = _exit_2_one_line(capsys, [*TINY, "--out", str(out)])
    assert "--resume" in err and "--overwrite" in err and str(out) in err
    assert (out / "run.json").read_bytes() == before  # nothing touched
    (out / "notes.txt").write_text("mine")
    (out / "checkpoint.msgpack").write_bytes(b"stale")
    (out / "analysis").mkdir()  # analyze.py's output for the old network: stale after a retrain
    (out / "analysis" / "noise.json").write_text('{"clean_accuracy": 1.0}')
    assert cli.main([*TINY, "--out", str(out), "--overwrite", "--lr", "0.02"]) == 0
    assert (out / "notes.txt").read_text() == "mine" and not (out / "analysis").exists()
    assert json.loads((out / "run.json").read_text())["config"]["lr"] == 0.02
    assert (out / "checkpoint.msgpack").read_bytes() != b"stale"
    _exit_2_one_line(capsys, [*TINY, "--out", str(out), "--overwrite", "--resume"])
    # Resuming on other data (another seed: another split; another data set) is refused before training.
    err = _exit_2_one_line(capsys, [*TINY, "--out", str(out), "--resume", "--seed", "7", "--lr", "0.02"])
    assert "data.json" in err and "seed 7" in err and "seed 0" in err
    err = _exit_2_one_line(capsys, [*TINY, "--out", str(out), "--resume", "--noise", "0.1", "--lr", "0.02"])
    assert "data" in err
    digits = ["--data", "digits", "--width", "3", "--depth", "3", "--epochs", "1", "--no-progress"]
    err = _exit_2_one_line(capsys, [*digits, "--out", str(out), "--resume", "--lr", "0.02"])
    assert "circles" in err and "digits" in err


def test_default_folder_names_tell_options_apart():
    parser = cli.build_parser()

    def name(*flags):
        args = parser.parse_args(list(flags))
        return cli.default_out(cli.config_from_args(args), cli.data_source_of(args)).name

    plain = name()
    assert plain.startswith("digits-resnet-shared-d15-s0-") and len(plain.rsplit("-", 1)[1]) == 8
    assert plain == name()  # deterministic
    others = {name("--depth-adapt"), name("--activation", "tanh"), name("--lr", "0.01"), name("--width", "32")}
    others |= {name("--seed", "1"), name("--data", "circles"), name("--data", "circles", "--noise", "0.1")}
    assert len(others) == 7 and plain not in others
    assert name("--samples", "100") == plain  # an option digits does not read changes nothing


BAD_FILES = [
    ("idx", "truncated_gz"),
    ("idx", "short_header"),
    ("idx", "bad_magic"),
    ("idx", "count_mismatch"),
    ("idx", "label_200"),
    ("npz", "random_bytes"),
    ("npz", "truncated"),
    ("npz", "label_20000"),
    ("npz", "float_labels"),
    ("npz", "nan_input"),
    ("npz", "dims_differ"),
]


@pytest.mark.parametrize("kind, case", BAD_FILES)
def test_every_bad_file_kind_exits_2_before_training(tmp_path, capsys, kind, case):
    """The broken files of tests/test_data_files.py, through the CLI: one line, exit 2, no run."""
    import test_data_files as bad

    if kind == "npz":
        path = bad.npz_case(tmp_path / "data.npz", case, np.random.default_rng(2))
    else:
        path = tmp_path / "idx"
        path.mkdir()
        bad.write_case(path, case)
    out = tmp_path / "run"
    err = _exit_2_one_line(capsys, ["--data", "mnist", "--data-path", str(path), "--out", str(out)])
    assert str(path) in err
    assert not out.exists() or not any(out.iterdir())  # nothing written: no metrics, no checkpoint


def test_sigterm_saves_the_last_chunk_exits_one_line_and_locks_out_a_second_writer(tmp_path, capsys):
    """A real process: a second writer is refused while it runs; SIGTERM (kill, timeout, SLURM)
    stops it with one line, its checkpoint holding the last chunk it logged; --resume then ends
    where an uninterrupted run ends."""
    import jax

    import resflow as rf
    from resflow.training._checkpoint import load_checkpoint

    out = tmp_path / "run"
    argv = ["--data", "circles", "--width", "3", "--depth", "3", "--batch-size", "500", "--lr", "0.02"]
    argv += ["--chunk-epochs", "1", "--no-progress", "--out", str(out)]
    # float64 enabled as in this process (conftest), so the resumed run can equal the reference bit for bit.
    env = dict(os.environ, PYTHONPATH=str(SCRIPT.parents[1]), JAX_PLATFORMS="cpu", JAX_ENABLE_X64="1")
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), *argv, "--epochs", "1000000"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        log, deadline = out / "metrics.jsonl", time.monotonic() + 300
        while not (log.is_file() and log.read_text().count("\n") >= 1):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        # Two writers on one folder used to both exit 0, mixing metrics.jsonl: now refused.
        for extra in ([], ["--overwrite"], ["--resume"]):
            err = _exit_2_one_line(capsys, [*argv, "--epochs", "3", *extra])
            assert f"another process (pid {proc.pid}) is writing" in err and str(out) in err
        with pytest.raises(rf.training.RunError, match="another process"):
            rf.fit(rf.load_dataset("circles"), key=jax.random.key(0), out_dir=out, epochs=1)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    # Was: killed at once (status -15), nothing saved since the last periodic checkpoint.
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    _, meta = load_checkpoint(out / "checkpoint.msgpack")
    logged = [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    epoch = meta["epoch"]
    assert logged == list(range(1, epoch + 1)) and [r["epoch"] for r in meta["history"]] == logged
    assert f"stopped by SIGTERM: checkpoint at epoch {epoch} in {out / 'checkpoint.msgpack'}" in err
    # Resume to two epochs more; compare with an uninterrupted run of as many epochs.
    assert cli.main([*argv, "--epochs", str(epoch + 2), "--resume"]) == 0
    run = rf.load_run(out)
    ref = rf.fit(run.load_data(), run.config, key=jax.random.key(0), figures=False)
    for a, b in zip(jax.tree.leaves(run.network), jax.tree.leaves(ref.network), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert run.metrics["test_accuracy"] == ref.metrics["test_accuracy"]


def test_bad_out_and_no_lift_width_exit_2_with_one_line(tmp_path, capsys):
    # Were tracebacks: an --out below a regular file or in /proc (OutputError from fit), and
    # --no-lift with a width other than the data's (circles: dim 2). Refused before any writing.
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    err = _exit_2_one_line(capsys, [*TINY, "--out", str(blocker / "run")])
    assert ": error: output folder" in err
    assert f"lies under the file {blocker}" in err
    assert "is not writable" in _exit_2_one_line(capsys, [*TINY, "--out", "/proc/resflow-run"])
    out = tmp_path / "run"
    err = _exit_2_one_line(capsys, [*TINY, "--no-lift", "--out", str(out)])
    assert "lift=False needs width equal to the data dimension 2" in err and "got width 3" in err
    assert not out.exists()
