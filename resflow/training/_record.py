"""A run's record: where its data came from (to reload them), their fingerprint, and its provenance.

record = run_record(data, key, source=None, extra=None)   # {"source", "fingerprint", "provenance"}
start_run(out, data, key, resume=...)                      # the same, written to / checked against data.json
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import jax
import numpy as np

from .._errors import RunError
from ._dataset import Dataset
from ._files import write_json

__all__ = [
    "DATA_JSON",
    "data_source",
    "data_fingerprint",
    "key_record",
    "provenance",
    "run_record",
    "start_run",
    "read_json",
]

DATA_JSON = "data.json"
# Options of load_dataset that a Dataset's meta records, per data set (the rest are defaults).
_META_OPTIONS = {"circles": ("noise", "radii", "n_train", "n_test"), "csv": ("label_column", "test_fraction")}


def read_json(path: Path) -> dict:
    """The JSON object in `path`. **Raises:** `RunError` naming the file when it is missing,
    unreadable or not an object."""
    if not path.is_file():
        raise RunError(f"{path}: missing (not a resflow run folder, or the run did not finish)")
    try:
        obj = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunError(f"{path}: not readable JSON ({e})") from None
    if not isinstance(obj, dict):
        raise RunError(f"{path}: expected a JSON object, got {type(obj).__name__}")
    return obj


def sha256_of(*arrays) -> str:
    """sha256 over the arrays' bytes, each preceded by its dtype and shape."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def data_source(data: Dataset) -> dict:
    """The `resflow.load_dataset` arguments that reproduce `data`, as far as its meta records them.

    Name, seed, path (for file-based sets) and the options kept in the meta (circles: noise,
    radii, sizes). Options the meta does not keep (digits' ``test_fraction``, mnist1d's
    ``num_samples``) take their defaults; pass the true arguments to `resflow.fit` as
    ``data_source=`` when they differ (the CLI does). The fingerprint catches any mismatch.
    """
    meta = data.meta
    name = meta.get("name")
    path = meta.get("source") if name in ("mnist", "fashion-mnist", "csv") else None
    seed = meta.get("seed", 0) if name != "mnist1d" else meta.get("seed", 42)
    options = {k: meta[k] for k in _META_OPTIONS.get(name, ()) if k in meta}
    return {"name": name, "seed": seed, "path": path, "standardize": bool(meta.get("standardized")), "options": options}


def data_fingerprint(data: Dataset) -> dict:
    """Name, array shapes and a sha256 over the four arrays' bytes (dtype and shape included)."""
    arrays = (data.x_train, data.y_train, data.x_test, data.y_test)
    shapes = {k: list(np.shape(a)) for k, a in zip(("x_train", "y_train", "x_test", "y_test"), arrays, strict=True)}
    return {"name": data.meta.get("name"), "shapes": shapes, "sha256": sha256_of(*arrays)}


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    """``git ARGS`` in the package's folder; None without git or outside a repository."""
    try:
        done = subprocess.run(
            ["git", *args], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def key_record(key: jax.Array) -> dict:
    """A `jax.random` key as JSON: its implementation and data."""
    return {"impl": str(jax.random.key_impl(key)), "data": np.asarray(jax.random.key_data(key)).tolist()}


def provenance(key: jax.Array, **extra) -> dict:
    """Command line, versions, git commit (None outside a repository), the key's data, and `extra`."""
    versions = {p: _version(p) for p in ("resflow", "jax", "jaxlib", "flax", "equinox", "optax", "numpy")}
    commit = _git("rev-parse", "HEAD")
    dirty = None if commit is None else bool(_git("status", "--porcelain", "--untracked-files=no"))
    return {
        "argv": list(sys.argv),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "git_commit": commit,
        "git_dirty": dirty,
        "key": key_record(key),
        "backend": jax.default_backend(),
        **extra,
    }


def run_record(data: Dataset, key, *, source: dict | None = None, extra: dict | None = None) -> dict:
    """``{"source", "fingerprint", "provenance"}`` of a run of `data` with `key` (nothing written)."""
    record = {"source": source or data_source(data), "fingerprint": data_fingerprint(data)}
    record["provenance"] = provenance(key, **(extra or {}))
    return record


def _describe(record: dict) -> str:
    src, fp = record["source"], record["fingerprint"]
    return f"{src['name']} (seed {src['seed']}, x_train {tuple(fp['shapes']['x_train'])}, sha256 {fp['sha256'][:12]})"


def start_run(out, data: Dataset, key, *, resume: bool, source: dict | None = None, extra: dict | None = None) -> dict:
    """The run's record (`run_record`); written to ``out/data.json``, or, on `resume`, checked against it.

    **Raises:** `RunError` on resume when the data's fingerprint differs from the saved one (or
    data.json cannot be read).
    """
    out = Path(out)
    record = run_record(data, key, source=source, extra=extra)
    saved_path = out / DATA_JSON
    if resume:
        if saved_path.is_file():
            saved = read_json(saved_path)
            if saved.get("fingerprint", {}).get("sha256") != record["fingerprint"]["sha256"]:
                raise RunError(
                    f"{saved_path}: resume: the run was trained on {_describe(saved)} but the data given now are "
                    f"{_describe(record)}; resume with the run's data options, or start a new run"
                )
        return record
    out.mkdir(parents=True, exist_ok=True)
    write_json(saved_path, {k: record[k] for k in ("source", "fingerprint")})
    return record
