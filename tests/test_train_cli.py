"""scripts/train.py, called in-process: bad flags exit 2 and write nothing; a tiny run writes its outputs."""

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train.py"
spec = importlib.util.spec_from_file_location("train_cli", SCRIPT)
cli = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cli)


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
    ],
)
def test_bad_flags_exit_2_and_write_nothing(tmp_path, capsys, argv, message):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as e:
        cli.main([*argv, "--out", str(out)])
    assert e.value.code == 2
    assert message in capsys.readouterr().err
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
    per_data = set(cli.PER_DATASET)
    for name in own - per_data:
        assert getattr(config, name) == getattr(rf.TrainConfig(), name)
    assert config.epochs == cli.PER_DATASET["epochs"]["digits"]
    flags = ["--no-shared", "--activation", "tanh", "--h", "0.5", "--lift", "--clip-norm", "1", "--multi-cut"]
    config = cli.config_from_args(parser.parse_args(flags))
    assert (config.trunk.shared, config.trunk.activation, config.trunk.h) == (False, "tanh", 0.5)
    assert (config.lift, config.clip_norm, config.multi_cut) == (True, 1.0, True)


def test_tiny_run_writes_metrics_and_figures(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["--data", "circles", "--width", "3", "--depth", "4", "--epochs", "2", "--batch-size", "100"]
    argv += ["--depth-adapt", "--depth-warmup", "0", "--no-progress", "--out", str(out)]
    assert cli.main(argv) == 0
    text = capsys.readouterr().out
    assert "test accuracy" in text and "depth 4 ->" in text
    assert "before pruning (just before the first cut)" in text and "final weights run at depth 4" in text
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 <= metrics["accuracy_final_params_at_max_depth"] <= 1
    assert metrics["depth_before"] == 4 and metrics["config"]["depth_warmup"] == 0
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
