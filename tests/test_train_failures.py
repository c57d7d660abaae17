"""fit fails fast: non-finite loss, dtype problems and bad output folders stop it before (or at) the epoch
at fault, naming it; what was written before stays; resume never makes metrics disagree."""

import errno
import json
from pathlib import Path

import jax
import numpy as np
import pytest

import resflow as rf
from resflow.training import Dataset, load_dataset
from resflow.training import _checkpoint as ck
from resflow.training import _fit as tr
from resflow.training._checkpoint import CheckpointError, OutputError

# The compiled steps of test_train.py's tiny circles runs (same shapes and optimiser): no new compile.
OPTS = dict(width=3, depth=6, epochs=4, batch_size=40, lr=2e-2, figures=False, chunk_epochs=2)


def tiny():
    return load_dataset("circles", seed=0, n_train=120, n_test=120)


def no_epoch(monkeypatch):
    """Make any epoch an error: the checks must come before the first one."""

    def boom(*args):
        raise AssertionError("an epoch ran")

    monkeypatch.setattr(tr, "train_chunk", boom)


def test_nan_from_epoch_1_stops_there(tmp_path, monkeypatch):
    real = tr.setup_run

    def poisoned(*args):  # a NaN sample on the device, past fit's data checks
        run = real(*args)
        return run._replace(data=run.data._replace(x_train=run.data.x_train.at[5, 0].set(np.nan)))

    monkeypatch.setattr(tr, "setup_run", poisoned)
    with pytest.raises(tr.NonFiniteLossError, match="epoch 1: training loss nan") as info:
        rf.fit(tiny(), key=jax.random.key(0), out_dir=tmp_path, **OPTS)
    assert isinstance(info.value, FloatingPointError) and isinstance(info.value, ValueError)
    # Nothing of the diverged epoch is kept: no checkpoint, no logged epoch, no metrics.
    assert (tmp_path / "metrics.jsonl").read_text() == ""
    assert not (tmp_path / tr.CHECKPOINT).exists() and not (tmp_path / "metrics.json").exists()


def test_nan_later_keeps_the_last_good_epoch(tmp_path, monkeypatch):
    ds, key = tiny(), jax.random.key(1)
    good = rf.fit(ds, key=key, **dict(OPTS, epochs=2))  # the reference: two clean epochs
    real = tr.setup_run

    def poisoned(*args):  # NaN weights going into the chunk of epochs 3-4 (inside the compiled loop)
        run = real(*args)

        def chunk(hyper, key, loop, start, *rest, **kw):
            if int(start) == 2:
                loop = loop._replace(params=jax.tree.map(lambda a: a * np.nan, loop.params))
            return run.jit.chunk(hyper, key, loop, start, *rest, **kw)

        return run._replace(jit=run.jit._replace(chunk=chunk))

    monkeypatch.setattr(tr, "setup_run", poisoned)
    with pytest.raises(tr.NonFiniteLossError, match="epoch 3"):
        rf.fit(ds, key=key, out_dir=tmp_path, **OPTS)  # default checkpoint_every > 2
    monkeypatch.undo()
    # Epoch 4 (after the bad one, in the same chunk) was skipped: 2 logged epochs.
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 2
    # The checkpoint holds epoch 2, equal to the clean run's weights; resuming finishes the run.
    resumed = rf.fit(ds, key=key, out_dir=tmp_path, resume=True, **dict(OPTS, epochs=2))
    assert len(resumed.history) == 2
    for a, b in zip(jax.tree.leaves(good.network), jax.tree.leaves(resumed.network), strict=True):
        np.testing.assert_array_equal(a, b)


def test_integer_inputs_are_refused_before_training(tmp_path, monkeypatch):
    ds = tiny()
    no_epoch(monkeypatch)
    ints = Dataset((ds.x_train * 10).astype(np.int32), ds.y_train, ds.x_test, ds.y_test, ds.meta)
    with pytest.raises(TypeError, match="data.x_train must have a floating dtype.*int32"):
        rf.fit(ints, key=jax.random.key(0), out_dir=tmp_path / "run", **OPTS)
    assert not (tmp_path / "run").exists()
    # Finite in float64 but not in the float32 the run computes in.
    huge = Dataset(ds.x_train, ds.y_train, np.asarray(ds.x_test, np.float64) * 1e40, ds.y_test, ds.meta)
    with pytest.raises(ValueError, match="data.x_test overflows dtype float32"):
        rf.fit(huge, key=jax.random.key(0), **OPTS)


@pytest.mark.parametrize("kind", ["file", "under a file", "not writable"])
def test_bad_out_dir_is_refused_before_training(tmp_path, monkeypatch, kind):
    blocker = tmp_path / "taken"
    blocker.write_text("a file")
    out = {"file": blocker, "under a file": blocker / "run", "not writable": tmp_path / "ro"}[kind]
    if kind == "not writable":  # root ignores chmod: fail the write probe instead
        monkeypatch.setattr(ck.Path, "write_bytes", lambda self, b: (_ for _ in ()).throw(PermissionError(13, "no")))
    no_epoch(monkeypatch)
    with pytest.raises(OutputError) as info:
        rf.fit(tiny(), key=jax.random.key(0), out_dir=out, **OPTS)
    assert str(out) in str(info.value)


def test_write_error_during_training_names_the_file_and_keeps_the_checkpoint(tmp_path, monkeypatch):
    real, calls = ck.os.replace, []

    def fail_second(src, dst):
        # Only the checkpoint's own replaces count (data.json is written the same way first).
        if Path(dst).name == tr.CHECKPOINT:
            calls.append(dst)
        if len(calls) == 2 and Path(dst).name == tr.CHECKPOINT:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(src, dst)

    monkeypatch.setattr(ck.os, "replace", fail_second)
    with pytest.raises(OutputError, match="No space left") as info:
        rf.fit(tiny(), key=jax.random.key(0), out_dir=tmp_path, **dict(OPTS, checkpoint_every=1))
    monkeypatch.undo()
    assert str(tmp_path / tr.CHECKPOINT) in str(info.value)
    _, meta = ck.load_checkpoint(tmp_path / tr.CHECKPOINT)
    # Checkpoints fall on chunk ends: the first (kept) one is after the first chunk of 2 epochs.
    assert meta["epoch"] == 2 and [p.name for p in tmp_path.iterdir() if ".tmp" in p.name] == []


def test_resume_with_fewer_epochs_is_refused_and_metrics_agree(tmp_path):
    ds, key = tiny(), jax.random.key(2)

    def stop_at_2(epoch, record):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rf.fit(ds, key=key, out_dir=tmp_path, callback=stop_at_2, **OPTS)  # saved on the interrupt
    with pytest.raises(ValueError, match="already trained 2 epochs; epochs must be >= 2, got 1"):
        rf.fit(ds, key=key, out_dir=tmp_path, resume=True, **dict(OPTS, epochs=1))
    res = rf.fit(ds, key=key, out_dir=tmp_path, resume=True, **dict(OPTS, epochs=3))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["epochs"] == len(res.history) == len(metrics["depth_history"]) - 1 == 3
    assert [json.loads(x)["epoch"] for x in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]


def test_resume_from_a_corrupted_checkpoint_names_it(tmp_path):
    rf.fit(tiny(), key=jax.random.key(0), out_dir=tmp_path, **dict(OPTS, epochs=1))
    path = tmp_path / tr.CHECKPOINT
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(CheckpointError, match="checkpoint.msgpack") as info:
        rf.fit(tiny(), key=jax.random.key(0), out_dir=tmp_path, resume=True, **dict(OPTS, epochs=2))
    assert str(path) in str(info.value)


def test_resume_with_other_shapes_names_the_array(tmp_path):
    ds = tiny()
    rf.fit(ds, key=jax.random.key(0), out_dir=tmp_path, **dict(OPTS, epochs=1))
    three = Dataset(
        ds.x_train, ds.y_train % 2 + np.arange(120) % 3 // 2, ds.x_test, ds.y_test, dict(ds.meta, n_classes=3)
    )
    # The data check (data.json) refuses other data first; without it (a checkpoint copied
    # on its own) the array check still names what does not fit.
    (tmp_path / "data.json").unlink()
    with pytest.raises(CheckpointError, match=r"readout.W is float32\[3, 2\], this run needs float32\[3, 3\]"):
        rf.fit(three, key=jax.random.key(0), out_dir=tmp_path, resume=True, **dict(OPTS, epochs=1))


def test_noise_robustness_checks_out_before_training(tmp_path, monkeypatch, capsys):
    import resflow.experiments.noise as noise
    from resflow.cli import noise as script

    monkeypatch.setattr(noise, "compare_noise_robustness", lambda *a, **k: pytest.fail("trained"))
    blocker = tmp_path / "taken"
    blocker.write_text("a file")
    with pytest.raises(SystemExit) as info:
        script.main(["--data", "circles", "--out", str(blocker / "out"), "--epochs", "1"])
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2 and len(err.splitlines()) == 1 and str(blocker) in err


def send(signum):
    """`signum` to this process, unless nothing handles it (SIGTERM would then kill the test run)."""
    import os
    import signal

    if signal.getsignal(signum) in (signal.SIG_DFL, signal.SIG_IGN, None):
        raise AssertionError(f"{signal.Signals(signum).name} is not handled while training: the process would die")
    os.kill(os.getpid(), signum)


def _signal_inside_chunk(monkeypatch, signum, at_start: int):
    """Send `signum` to this process while the chunk starting after epoch `at_start` computes
    (the compiled call in progress when a real signal arrives)."""
    real = tr.setup_run

    def patched(*args):
        run = real(*args)

        def chunk(hyper, key, loop, start, *rest, **kw):
            out = run.jit.chunk(hyper, key, loop, start, *rest, **kw)
            if int(start) == at_start:
                send(signum)
            return out

        return run._replace(jit=run.jit._replace(chunk=chunk))

    monkeypatch.setattr(tr, "setup_run", patched)


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_a_signal_during_a_chunk_keeps_that_chunk_and_resume_matches(tmp_path, monkeypatch, signame):
    import signal

    signum = getattr(signal, signame)
    ds, key = tiny(), jax.random.key(3)
    opts = dict(OPTS, epochs=6)
    reference = rf.fit(ds, key=key, **opts)  # uninterrupted
    _signal_inside_chunk(monkeypatch, signum, at_start=2)
    # SIGTERM used to kill the process at once (nothing saved after the last periodic checkpoint).
    with pytest.raises(KeyboardInterrupt) as info:
        rf.fit(ds, key=key, out_dir=tmp_path, **opts)
    monkeypatch.undo()
    assert isinstance(info.value, ck.Interrupted) == (signame == "SIGTERM")
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # fit put the handlers back
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    # The chunk in progress (epochs 3-4) finished, was logged and checkpointed before the stop.
    _, meta = ck.load_checkpoint(tmp_path / tr.CHECKPOINT)
    assert meta["epoch"] == 4 and len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 4
    resumed = rf.fit(ds, key=key, out_dir=tmp_path, resume=True, **opts)
    for a, b in zip(jax.tree.leaves(reference.network), jax.tree.leaves(resumed.network), strict=True):
        np.testing.assert_array_equal(a, b)


def test_checkpoints_also_fall_due_by_wall_time(tmp_path, monkeypatch):
    saves = []
    real = tr.save_state
    monkeypatch.setattr(
        tr, "save_state", lambda out, config, state: saves.append(state.epoch) or real(out, config, state)
    )
    # checkpoint_every (100) never falls due in 6 epochs: only the end is saved ...
    rf.fit(tiny(), key=jax.random.key(0), out_dir=tmp_path / "a", **dict(OPTS, epochs=6))
    assert saves == [6]
    # ... unless the wall-time interval has passed: then every chunk end is one.
    saves.clear()
    rf.fit(tiny(), key=jax.random.key(0), out_dir=tmp_path / "b", **dict(OPTS, epochs=6, checkpoint_seconds=1e-9))
    assert saves == [2, 4, 6]
    with pytest.raises(ValueError, match="checkpoint_seconds must be a finite number > 0"):
        rf.fit(tiny(), key=jax.random.key(0), **dict(OPTS, checkpoint_seconds=0))
    # The intervals are bookkeeping: a resume may change them.
    rf.fit(tiny(), key=jax.random.key(0), out_dir=tmp_path / "b", resume=True, **dict(OPTS, epochs=6))


def test_a_second_writer_is_refused(tmp_path):
    import fcntl
    import os

    from resflow.training._runs import LOCK, RunError

    ds = tiny()
    tmp_path.mkdir(exist_ok=True)
    # Another process's lock: a separate open file description on the lock file.
    fd = os.open(tmp_path / LOCK, os.O_RDWR | os.O_CREAT)
    os.write(fd, b"4242\n")
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        with pytest.raises(RunError, match=r"another process \(pid 4242\) is writing") as info:
            rf.fit(ds, key=jax.random.key(0), out_dir=tmp_path, **OPTS)
        assert str(tmp_path) in str(info.value)
        assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK]  # nothing written
    finally:
        os.close(fd)
    rf.fit(ds, key=jax.random.key(0), out_dir=tmp_path, **dict(OPTS, epochs=1))  # free again
    assert (tmp_path / "run.json").is_file()
