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
        (["--depth", "0"], "--depth must be >= 1"),
        (["--data", "cifar"], "invalid choice"),
        (["--lr", "-0.1"], "lr must be a finite number > 0"),
        (["--min-depth", "20"], "min_depth must be <="),
        (["--shared", "--untied"], "not allowed with argument"),
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
    for flag in "--data --data-path --model --width --depth --shared --untied --h --activation --epochs".split():
        assert flag in text
    for flag in "--batch-size --lr --seed --depth-adapt --depth-tol --out --resume --x64 --depth-warmup".split():
        assert flag in text


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
