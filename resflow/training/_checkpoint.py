"""Atomic, checksummed training checkpoints, and the checks of an output folder.

A checkpoint is one msgpack file: a header ``{"format": "resflow-checkpoint", "version",
"sha256", "payload"}`` whose payload (itself msgpack) holds the arrays and the metadata
(epoch, depth, config, histories) as a JSON string. The arrays (the `resflow.Network`, the
optimiser state, the RNG key data, …: any pytree) are stored as its leaves in
`equinox.tree_serialise_leaves` format, one ``.npy`` record per leaf in ``jax.tree.leaves``
order: the format of a run's ``network.eqx``, so parameters have one serialisation. Loading
fills a target pytree of the same structure and checks every leaf's shape and dtype. The
SHA-256 of the payload is checked on load, so a
truncated, corrupted or altered file is refused with a `CheckpointError` naming it instead of
resuming from wrong weights. Writes go through `resflow.training._files.write_atomic` (``.NAME.tmpPID``
in the same folder, fsynced, then ``os.replace``-d), so a run killed mid-write leaves the
previous checkpoint intact; temporary files of dead processes are removed at the next save or load.
The error classes live in `resflow._errors` (re-exported here).

Why not orbax-checkpoint: on CPU one `CheckpointManager` save of the tiny circles state costs
~0.2 s (threads, a folder of files per step) against ~6 ms here, so the 3000-epoch circles
run could checkpoint only every ~500 epochs within its 10 % budget; see docs/training.md.

    save_checkpoint(path, arrays, meta)          load_checkpoint(path, target=None) -> (arrays, meta)
    leaves_to_bytes(tree) -> bytes               fill_arrays(path, target, leaves) -> tree
    prepare_out_dir(path) -> Path                CheckpointError, OutputError
    with stop_on_signals(): ...                  Interrupted (SIGTERM raised like Ctrl-C)
    with deferred_signals(): ...                 (a signal waits for the block's end)
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import signal
import threading
from pathlib import Path

import equinox as eqx
import jax
import msgpack
import numpy as np

from .._errors import CheckpointError, OutputError
from ._files import remove_stale_temps, write_atomic

__all__ = [
    "save_checkpoint",
    "load_checkpoint",
    "leaves_to_bytes",
    "leaves_from_bytes",
    "fill_arrays",
    "prepare_out_dir",
    "remove_stale_temps",
    "CheckpointError",
    "OutputError",
    "Interrupted",
    "stop_on_signals",
    "deferred_signals",
    "stop_status",
]

FORMAT = "resflow-checkpoint"
VERSION = 3  # 3: equinox leaves (2: flax state dicts)


class Interrupted(KeyboardInterrupt):
    """A run stopped by a signal other than SIGINT (SIGTERM from ``kill``, ``timeout`` or SLURM).

    A `KeyboardInterrupt`, so whatever saves and stops on Ctrl-C does the same for it, and an
    ``except Exception`` does not swallow it. `signum` is the signal's number.
    """

    def __init__(self, signum: int):
        self.signum = int(signum)
        super().__init__(f"stopped by {signal.Signals(signum).name}")


def stop_status(e: KeyboardInterrupt) -> tuple[str, int]:
    """The name of the signal behind `e` and a command line's exit status for it (128 + number):
    ``("SIGTERM", 143)`` for `Interrupted` from SIGTERM, ``("SIGINT", 130)`` for Ctrl-C."""
    signum = e.signum if isinstance(e, Interrupted) else int(signal.SIGINT)
    return signal.Signals(signum).name, 128 + signum


class _Signals:
    """What `stop_on_signals`' handler needs: whether a block defers signals, and those it held back."""

    deferring = False
    pending: list = []


def _raise_for(signum: int):
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Interrupted(signum)


def _on_signal(signum, frame):
    if _Signals.deferring and not _Signals.pending:
        _Signals.pending.append(signum)  # raised when the deferring block ends
        return
    _raise_for(signum)  # no deferring block, or a second signal: stop now


@contextlib.contextmanager
def stop_on_signals(signals=(signal.SIGINT, signal.SIGTERM)):
    """While inside: SIGINT raises `KeyboardInterrupt` and SIGTERM `Interrupted` in the main
    thread, except inside `deferred_signals`, which raises them when its block ends.

    Python runs the handler between bytecodes, so a signal that arrives inside a compiled call
    takes effect when the call returns. Only signals whose handler is Python's default are
    taken over (a handler the caller installed is left alone), only in the main thread
    (elsewhere Python cannot install handlers), and nested uses keep the outer one's; the
    previous handlers come back on exit.
    """
    defaults = {signal.SIGINT: signal.default_int_handler}
    old = {}
    if threading.current_thread() is threading.main_thread():
        for s in signals:
            if signal.getsignal(s) is defaults.get(s, signal.SIG_DFL):
                old[s] = signal.signal(s, _on_signal)
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def deferred_signals():
    """Hold back a signal handled by `stop_on_signals` until the block ends, then raise it: a
    chunk that finished is recorded before the run stops. A second signal is raised at once.

    Without `stop_on_signals` around it (or outside the main thread) it changes nothing.
    """
    _Signals.deferring, _Signals.pending = True, []
    try:
        yield
    except BaseException:
        _Signals.deferring, _Signals.pending = False, []
        raise
    pending, _Signals.deferring, _Signals.pending = _Signals.pending, False, []
    if pending:
        _raise_for(pending[0])


def leaves_to_bytes(tree) -> bytes:
    """The leaves of `tree` in `equinox.tree_serialise_leaves` format (one ``.npy`` record each)."""
    f = io.BytesIO()
    eqx.tree_serialise_leaves(f, jax.device_get(tree))
    return f.getvalue()


def leaves_from_bytes(blob: bytes) -> list:
    """The arrays of `leaves_to_bytes`, in order (numpy; no pickles). **Raises:** `ValueError`."""
    f, leaves = io.BytesIO(blob), []
    while f.tell() < len(blob):
        leaves.append(np.load(f, allow_pickle=False))
    return leaves


def fill_arrays(path, target, leaves: list):
    """`target`'s leaves replaced by the saved `leaves` (numpy arrays, in ``jax.tree.leaves`` order).

    **Raises:** `CheckpointError` naming `path` and the first leaf whose shape or dtype differs,
    or when the counts differ.
    """
    where, treedef = jax.tree_util.tree_flatten_with_path(target)
    if len(where) != len(leaves):
        raise CheckpointError(
            f"{path}: arrays do not fit this run ({len(leaves)} saved arrays, this run has {len(where)})"
        )
    for (key, want), got in zip(where, leaves, strict=True):
        want = np.asarray(want)
        if got.shape != want.shape or got.dtype != want.dtype:
            raise CheckpointError(
                f"{path}: array {jax.tree_util.keystr(key)} is {got.dtype}{list(got.shape)}, this run needs "
                f"{want.dtype}{list(want.shape)} (another data set or model?)"
            )
    return jax.tree_util.tree_unflatten(treedef, leaves)


def _encode(arrays, meta: dict) -> bytes:
    payload = msgpack.packb({"arrays": leaves_to_bytes(arrays), "meta": json.dumps(meta)}, use_bin_type=True)
    header = {"format": FORMAT, "version": VERSION, "sha256": hashlib.sha256(payload).hexdigest()}
    return msgpack.packb(dict(header, payload=payload), use_bin_type=True)


def _restore(blob: bytes):
    return msgpack.unpackb(blob, raw=False)


def save_checkpoint(path, arrays, meta: dict) -> None:
    """Write `arrays` (any pytree of arrays) and JSON-able `meta` atomically to `path`.

    **Raises:** `OutputError` (naming `path`) when the file cannot be written; the previous
    checkpoint, if any, is then left as it was and no temporary file remains.
    """
    path = Path(path)
    remove_stale_temps(path)
    write_atomic(path, _encode(arrays, meta))


def _unpack(path: Path, blob: bytes, unpack, what: str):
    try:
        return unpack(blob)
    except Exception as e:  # msgpack raises several unrelated types for bad bytes
        raise CheckpointError(f"{path}: {what} is not valid msgpack ({type(e).__name__}: {e})") from e


def _verified_payload(path: Path) -> dict:
    """The payload dict of the checkpoint at `path`, or a `CheckpointError` saying what is wrong."""
    blob = path.read_bytes()
    if not blob:
        raise CheckpointError(f"{path}: empty checkpoint file")
    header = _unpack(path, blob, _restore, "the file (truncated or foreign?)")
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a resflow checkpoint (no {FORMAT!r} header)")
    if header.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {header.get('version')!r}, this resflow reads {VERSION}")
    payload = header.get("payload")
    if not isinstance(payload, bytes) or hashlib.sha256(payload).hexdigest() != header.get("sha256"):
        raise CheckpointError(f"{path}: checksum mismatch (the file was altered or corrupted)")
    raw = _unpack(path, payload, _restore, "the payload")
    if not isinstance(raw, dict) or not {"arrays", "meta"} <= raw.keys():
        raise CheckpointError(f"{path}: the payload lacks 'arrays' or 'meta'")
    return raw


def load_checkpoint(path, target=None):
    """Read and verify a checkpoint written by `save_checkpoint`.

    **Arguments:** `path`; `target`, a pytree with the structure of the saved arrays (its
    leaves are replaced, see `fill_arrays`), or None for the list of saved arrays in order.

    **Returns:** ``(arrays, meta)``.

    **Raises:** `FileNotFoundError` if there is no checkpoint at `path`; `CheckpointError`
    (naming `path` and the problem) for an empty, truncated, corrupted, altered or foreign
    file, or arrays that do not fit `target`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    remove_stale_temps(path)
    raw = _verified_payload(path)
    try:
        meta = json.loads(raw["meta"])
        leaves = leaves_from_bytes(raw["arrays"])
    except (ValueError, KeyError, TypeError, EOFError) as e:
        raise CheckpointError(f"{path}: contents do not fit this run ({type(e).__name__}: {e})") from e
    return (leaves if target is None else fill_arrays(path, target, leaves)), meta


def prepare_out_dir(path) -> Path:
    """Create the output folder `path` (and its parents) and check that files can be written in it.

    Called before any training, so a bad ``--out`` costs nothing: a path that is a file, lies
    under a file, or is not writable is refused at once.

    **Returns:** `path` as a `Path`.

    **Raises:** `OutputError` naming the path and the problem.
    """
    path = Path(path)
    for p in (path, *path.parents):
        if p.exists() and not p.is_dir():
            where = "is a file" if p == path else f"lies under the file {p}"
            raise OutputError(f"output folder {path} {where}")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise OutputError(f"output folder {path} is not writable: {e.strerror or e}") from e
    return path
