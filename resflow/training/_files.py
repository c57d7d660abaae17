"""Files: the one atomic writer, JSON, and the write lock of an output folder.

Every file resflow writes (run folders, checkpoints, the data cache, sweep tables) goes through
`write_atomic`: the bytes go to ``.NAME.tmpPID`` in the same folder, are fsynced, then
``os.replace``-d onto the name, so a process killed mid-write leaves the previous version
intact; a failed write removes its temporary file and raises `OutputError` naming the file
(not the temporary one). Temporary files of dead processes are removed by `remove_stale_temps`.

One writer per folder: `lock_folder` holds ``fcntl.flock`` on the folder's ``.resflow.lock``.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from pathlib import Path

from .._errors import OutputError, RunError

__all__ = ["write_atomic", "write_json", "remove_stale_temps", "temp_name", "lock_folder", "LOCK"]

LOCK = ".resflow.lock"


def temp_name(path: Path, pid: int | None = None) -> Path:
    """The temporary name `write_atomic` writes `path` under: ``.NAME.tmpPID`` beside it."""
    return path.with_name(f".{path.name}.tmp{os.getpid() if pid is None else pid}")


def write_atomic(path, blob: bytes) -> None:
    """Write `blob` to `path` atomically: a temporary file in the same folder, fsync, `os.replace`.

    **Raises:** `OutputError` (an `OSError`) naming `path` when it cannot be written (e.g. its
    folder does not exist, the disk is full); the previous file, if any, is then left as it was
    and no temporary file remains.
    """
    path = Path(path)
    tmp = temp_name(path)
    try:
        with open(tmp, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        why = "its folder does not exist" if not path.parent.is_dir() else e.strerror or e
        raise OutputError(f"cannot write {path}: {why}") from e
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path, obj) -> None:
    """`obj` as indented JSON at `path`, atomically (see `write_atomic`)."""
    write_atomic(Path(path), (json.dumps(obj, indent=2) + "\n").encode())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def remove_stale_temps(path) -> list[Path]:
    """Remove the temporary files of `path` left by processes that no longer run.

    A live writer's file is kept (removing it would break its ``os.replace``).

    **Returns:** the removed paths.
    """
    path = Path(path)
    removed = []
    for tmp in path.parent.glob(f".{path.name}.tmp*"):
        suffix = tmp.name.rsplit(".tmp", 1)[1]
        if suffix.isdigit() and int(suffix) != os.getpid() and _alive(int(suffix)):
            continue
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


_held: dict[Path, list] = {}  # folder (resolved) -> [lock file descriptor, nesting count]


def _holder(fd: int) -> str:
    """The pid the lock file's holder wrote into it, for the message ("unknown" if none)."""
    try:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    return text if text.isdigit() else "unknown"


@contextlib.contextmanager
def lock_folder(folder):
    """Hold the write lock of the output folder `folder` (it must exist) for the block.

    The lock is ``fcntl.flock`` on ``folder/.resflow.lock``, which holds the writer's pid; the
    operating system releases it when the process ends, however it ends. Nested uses in one
    process share it (`resflow.fit` inside ``scripts/train.py``).

    **Raises:** `RunError` naming the folder and the pid when another process holds the lock;
    `OutputError` when the lock file cannot be created. A file system without ``flock`` (some
    network mounts) gives a warning instead, and no lock.
    """
    folder = Path(folder)
    where = folder.resolve()
    if where in _held:
        _held[where][1] += 1
        try:
            yield
        finally:
            _held[where][1] -= 1
        return
    import fcntl

    path = folder / LOCK
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise OutputError(f"cannot create the lock file {path}: {e.strerror or e}") from e
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = _holder(fd)
        os.close(fd)
        raise RunError(
            f"{folder}: another process (pid {pid}) is writing to this run folder; wait for it to end "
            "or use another output folder"
        ) from None
    except OSError as e:  # a file system without locks (some network mounts): train, but say so
        warnings.warn(
            f"cannot lock {path} ({e.strerror or e}): a second writer to {folder} would not be refused", stacklevel=3
        )
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _held[where] = [fd, 1]
    try:
        yield
    finally:
        del _held[where]
        os.close(fd)  # releases the flock
