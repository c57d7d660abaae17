"""Checkpoints: round trip, every kind of bad file refused with its path, no stray temp files, output folders."""

import errno
import hashlib
import io
import os
from pathlib import Path

import equinox as eqx
import msgpack
import numpy as np
import pytest

from resflow.training import _checkpoint as ck
from resflow.training._checkpoint import CheckpointError, OutputError, load_checkpoint, prepare_out_dir, save_checkpoint

DEAD_PID = 2**22 + 7  # above Linux's largest pid_max: no such process


def arrays():
    return {"params": {"W": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(3, np.float32)}}


def write(tmp_path, meta=None):
    path = tmp_path / "checkpoint.msgpack"
    save_checkpoint(path, arrays(), meta or {"epoch": 3, "history": [{"loss": 0.5}]})
    return path


def temps(folder):
    return sorted(p.name for p in Path(folder).iterdir() if ".tmp" in p.name)


def test_round_trip_and_no_temp_files(tmp_path):
    path = write(tmp_path)
    raw, meta = load_checkpoint(path)
    assert meta == {"epoch": 3, "history": [{"loss": 0.5}]}
    # Without a target: the saved arrays in leaf order (the dict's sorted keys: W, then b).
    assert len(raw) == 2
    np.testing.assert_array_equal(raw[0], arrays()["params"]["W"])
    target = {"params": {"W": np.zeros((2, 3), np.float32), "b": np.zeros(3, np.float32)}}
    filled, _ = load_checkpoint(path, target)
    np.testing.assert_array_equal(filled["params"]["b"], np.ones(3))
    assert temps(tmp_path) == []
    # The header's checksum is the SHA-256 of the payload bytes (read back with plain msgpack).
    header = msgpack.unpackb(path.read_bytes(), raw=False)
    assert header["format"] == "resflow-checkpoint"
    assert header["sha256"] == hashlib.sha256(header["payload"]).hexdigest()
    # The arrays are equinox leaves (the format of network.eqx): equinox itself reads them back.
    blob = msgpack.unpackb(header["payload"], raw=False)["arrays"]
    like = {"params": {"W": np.zeros((2, 3), np.float32), "b": np.zeros(3, np.float32)}}
    back = eqx.tree_deserialise_leaves(io.BytesIO(blob), like)
    np.testing.assert_array_equal(back["params"]["W"], arrays()["params"]["W"])
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.msgpack")


def altered(path):
    """The file with b[-1] changed and the old checksum kept (an edit that is not a resave)."""
    header = msgpack.unpackb(path.read_bytes(), raw=False)
    payload = msgpack.unpackb(header["payload"], raw=False)
    buf = bytearray(payload["arrays"])  # the last leaf's (b's) data end the blob
    buf[-1] ^= 0xFF
    payload["arrays"] = bytes(buf)
    header["payload"] = msgpack.packb(payload, use_bin_type=True)
    return msgpack.packb(header, use_bin_type=True)


@pytest.mark.parametrize(
    "kind, message",
    [
        ("altered weights", "checksum mismatch"),
        ("flipped byte", "checksum mismatch|not valid msgpack"),
        ("truncated", "not valid msgpack|checksum"),
        ("empty", "empty checkpoint"),
        ("random bytes", "not valid msgpack|not a resflow checkpoint"),
        ("old format", "not a resflow checkpoint"),
        ("other version", "version 2"),
    ],
)
def test_bad_checkpoints_are_refused_with_path(tmp_path, kind, message):
    path = write(tmp_path)
    blob = path.read_bytes()
    bad = {
        "altered weights": lambda: altered(path),
        "flipped byte": lambda: blob[:-20] + bytes([blob[-20] ^ 0x01]) + blob[-19:],
        "truncated": lambda: blob[: len(blob) // 2],
        "empty": lambda: b"",
        "random bytes": lambda: np.random.default_rng(0).bytes(300),
        "old format": lambda: msgpack.packb({"arrays": {}, "meta": "{}"}),
        "other version": lambda: msgpack.packb(dict(msgpack.unpackb(blob, raw=False), version=2), use_bin_type=True),
    }[kind]()
    path.write_bytes(bad)
    with pytest.raises(CheckpointError, match=message) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value) and isinstance(info.value, ValueError)


def test_arrays_that_do_not_fit_the_target(tmp_path):
    path = write(tmp_path)
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(path, {"other": np.zeros(2)})  # one array for two saved
    with pytest.raises(
        CheckpointError, match=r"array \['params'\]\['W'\] is float32\[2, 3\], this run needs float32\[3, 2\]"
    ):
        load_checkpoint(path, {"params": {"W": np.zeros((3, 2), np.float32), "b": np.zeros(3, np.float32)}})


def test_stale_temp_files_are_removed_live_ones_kept(tmp_path):
    name = ".checkpoint.msgpack.tmp"
    for suffix in (str(DEAD_PID), "garbage", str(os.getppid())):
        (tmp_path / f"{name}{suffix}").write_bytes(b"partial")
    (tmp_path / ".other.msgpack.tmp1").write_bytes(b"not ours")
    write(tmp_path)
    # A dead writer's and an unparsable file go; a running process's file and other names stay.
    assert temps(tmp_path) == sorted([f"{name}{os.getppid()}", ".other.msgpack.tmp1"])
    (tmp_path / f"{name}{DEAD_PID}").write_bytes(b"partial")
    load_checkpoint(tmp_path / "checkpoint.msgpack")
    assert f"{name}{DEAD_PID}" not in temps(tmp_path)


@pytest.mark.parametrize("where", ["fsync", "replace"])
def test_failed_save_keeps_the_old_checkpoint_and_no_temp(tmp_path, monkeypatch, where):
    path = write(tmp_path, {"epoch": 1})

    def disk_full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ck.os, where, disk_full)
    with pytest.raises(OutputError, match="No space left") as info:
        save_checkpoint(path, arrays(), {"epoch": 2})
    monkeypatch.undo()
    assert str(path) in str(info.value) and isinstance(info.value, OSError | ValueError)
    assert load_checkpoint(path)[1] == {"epoch": 1} and temps(tmp_path) == []


def test_prepare_out_dir(tmp_path, monkeypatch):
    made = prepare_out_dir(tmp_path / "a" / "b")
    assert made.is_dir() and list(made.iterdir()) == []  # the write probe is gone
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(OutputError, match="is a file") as info:
        prepare_out_dir(a_file)
    assert str(a_file) in str(info.value)
    with pytest.raises(OutputError, match=f"under the file {a_file}"):
        prepare_out_dir(a_file / "run" / "deeper")
    assert not (tmp_path / "run").exists()

    # Root ignores chmod, so a read-only folder is simulated at the write.
    def read_only(self, data):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(Path, "write_bytes", read_only)
    with pytest.raises(OutputError, match="not writable: Permission denied") as info:
        prepare_out_dir(tmp_path / "ro")
    assert str(tmp_path / "ro") in str(info.value)


def test_stop_on_signals_defers_to_the_block_end_and_leaves_own_handlers():
    import os
    import signal

    from resflow.training._checkpoint import Interrupted, deferred_signals, stop_on_signals

    done = []
    with stop_on_signals(), pytest.raises(Interrupted) as info:
        with deferred_signals():
            os.kill(os.getpid(), signal.SIGTERM)
            done.append("rest of the block")  # still runs: the signal waits for the block's end
    assert done == ["rest of the block"] and info.value.signum == signal.SIGTERM
    assert isinstance(info.value, KeyboardInterrupt)
    with stop_on_signals(), pytest.raises(KeyboardInterrupt), deferred_signals():
        os.kill(os.getpid(), signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):  # a second signal does not wait
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    # A handler the caller installed is left alone.
    seen = []
    old = signal.signal(signal.SIGTERM, lambda s, f: seen.append(s))
    try:
        with stop_on_signals():
            os.kill(os.getpid(), signal.SIGTERM)
        assert seen == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, old)
