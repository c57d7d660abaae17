"""Saved runs: a run folder is a complete, self-describing artifact.

    run = load_run("runs/digits-resnet-shared-d15-s0-1a2b3c4d")
    run.predict(x_raw)            # logits; the saved standardisation is applied first
    run.trunk, run.depth          # the trained Trunk at its final depth, ready for analysis
    run.load_data()               # the run's own data set, reloaded and fingerprint-checked

`resflow.fit` with ``out_dir`` writes, besides metrics and figures:

- ``network.eqx``: the trained `Network` at its final depth (``eqx.tree_serialise_leaves``:
  plain numpy bytes, no device information, so a run trained on a GPU loads on a CPU);
- ``run.json``: what rebuilds the network's skeleton (dims, classes, lift, width, depth,
  model, activation, h, dtype), the sha256 of ``network.eqx``, the full config, the
  preprocessing (standardisation mean, std and std floor), the data record (how to reload the data
  set and its fingerprint) and the provenance (command line, versions, git commit, key);
- ``data.json``: the data record alone, written when training starts; ``resume`` refuses
  data whose fingerprint differs from it.

Every file is written to a temporary name and moved into place (``os.replace``), so a run
killed mid-write keeps the previous version. A file that is missing, unreadable or altered
is reported as a `RunError` naming the file and the problem. run.json's ``sha256`` covers what
defines the network and its inputs (the network entry, the config, the preprocessing), so an
edited run.json is refused rather than loading another network.

One writer at a time: `lock_folder` holds ``fcntl.flock`` on the folder's ``.resflow.lock``
for a run's life (`resflow.fit` with ``out_dir``); a second process is refused with a `RunError`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import as_float_array
from .._errors import InputError
from ..trunk._network import Affine, Network
from ..trunk._trunk import Trunk
from ._checkpoint import OutputError
from ._config import TrainConfig
from ._dataset import Dataset
from ._datasets import load_dataset
from ._preprocess import standardize

__all__ = [
    "RunError",
    "Run",
    "load_run",
    "data_fingerprint",
    "data_source",
    "provenance",
    "start_run",
    "save_run",
    "write_json",
    "lock_folder",
    "is_run_folder",
    "RUN_FILES",
    "RUN_FOLDERS",
]

RUN_JSON, NETWORK, DATA_JSON, METRICS = "run.json", "network.eqx", "data.json", "metrics.json"
RUN_FILES = (
    RUN_JSON,
    NETWORK,
    DATA_JSON,
    METRICS,
    "metrics.jsonl",
    "checkpoint.msgpack",
    "training_curves.png",
    "depth_history.png",
    "residuals_by_class.png",
)
"""The files a training run writes into its folder (``--overwrite`` removes these and `RUN_FOLDERS` only)."""
RUN_FOLDERS = ("analysis",)
"""Folders derived from a run's network (``scripts/analyze.py``'s default output): stale once it is retrained."""
LOCK = ".resflow.lock"

# Version 2 added run.json's sha256 over the network entry, config and preprocessing; version 1
# files (without it) still load.
FORMAT, VERSION, VERSIONS = "resflow-run", 2, (1, 2)
# Options of load_dataset that a Dataset's meta records, per data set (the rest are defaults).
_META_OPTIONS = {"circles": ("noise", "radii", "n_train", "n_test"), "csv": ("label_column", "test_fraction")}


class RunError(InputError):
    """A run folder or file that cannot be loaded or resumed; the message names the file."""


# --------------------------------------------------------------------------------------------
# One writer per folder

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
    """Hold the write lock of the run folder `folder` (it must exist) for the block.

    The lock is ``fcntl.flock`` on ``folder/.resflow.lock``, which holds the writer's pid; the
    operating system releases it when the process ends, however it ends. Nested uses in one
    process share it (`resflow.fit` inside ``scripts/train.py``).

    **Raises:** `RunError` naming the folder and the pid when another process holds the lock;
    `resflow.training._checkpoint.OutputError` when the lock file cannot be created. A file system
    without ``flock`` (some network mounts) gives a warning instead, and no lock.
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

    from ._checkpoint import OutputError

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
        import warnings

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


def is_run_folder(folder) -> list[str]:
    """The training-run files (`RUN_FILES`) that `folder` holds: empty unless it is a run folder."""
    folder = Path(folder)
    return [name for name in RUN_FILES if (folder / name).exists()]


# --------------------------------------------------------------------------------------------
# Writing


def write_bytes(path: Path, blob: bytes) -> None:
    """Write `blob` to `path` atomically: a temporary file in the same folder, then `os.replace`.

    **Raises:** `resflow.training._checkpoint.OutputError` (an `OSError`) naming `path`, not the
    temporary file, when it cannot be written (e.g. its folder does not exist).
    """
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(blob)
        os.replace(tmp, path)
    except OSError as e:
        why = "its folder does not exist" if not path.parent.is_dir() else e.strerror or e
        raise OutputError(f"cannot write {path}: {why}") from e
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path, obj) -> None:
    """`obj` as indented JSON at `path`, atomically (see `write_bytes`)."""
    write_bytes(Path(path), (json.dumps(obj, indent=2) + "\n").encode())


def _sha256(*arrays) -> str:
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
    return {"name": data.meta.get("name"), "shapes": shapes, "sha256": _sha256(*arrays)}


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
        "key": {"impl": str(jax.random.key_impl(key)), "data": np.asarray(jax.random.key_data(key)).tolist()},
        "backend": jax.default_backend(),
        **extra,
    }


def _describe(record: dict) -> str:
    src, fp = record["source"], record["fingerprint"]
    return f"{src['name']} (seed {src['seed']}, x_train {tuple(fp['shapes']['x_train'])}, sha256 {fp['sha256'][:12]})"


def start_run(out, data: Dataset, key, *, resume: bool, source: dict | None = None, extra: dict | None = None) -> dict:
    """The run's record (data source and fingerprint, provenance); written to ``out/data.json``,
    or, on `resume`, checked against it.

    **Raises:** `RunError` on resume when the data's fingerprint differs from the saved one (or
    data.json cannot be read).
    """
    out = Path(out)
    record = {"source": source or data_source(data), "fingerprint": data_fingerprint(data)}
    record["provenance"] = provenance(key, **(extra or {}))
    saved_path = out / DATA_JSON
    if resume:
        if saved_path.is_file():
            saved = _read_json(saved_path)
            if saved.get("fingerprint", {}).get("sha256") != record["fingerprint"]["sha256"]:
                raise RunError(
                    f"{saved_path}: resume: the run was trained on {_describe(saved)} but the data given now are "
                    f"{_describe(record)}; resume with the run's data options, or start a new run"
                )
        return record
    out.mkdir(parents=True, exist_ok=True)
    write_json(saved_path, {k: record[k] for k in ("source", "fingerprint")})
    return record


def _skeleton(network: Network) -> dict:
    t = network.trunk
    return {
        "dim": network.dim,
        "n_classes": network.n_classes,
        "lift": network.lift is not None,
        "width": t.width,
        "depth": network.depth,
        "shared": t.shared,
        "num_layers": t.num_layers,
        "model": t.model,
        "activation": t.activation,
        "h": float(t.h),
        "dtype": str(t.dtype),
    }


def save_run(out, network: Network, config: TrainConfig, data: Dataset, record: dict) -> None:
    """Write ``network.eqx`` then ``run.json`` (the latter last: it names the former's sha256)."""
    out = Path(out)
    path = out / NETWORK
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        eqx.tree_serialise_leaves(tmp, network)
        blob = tmp.read_bytes()
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    meta = data.meta
    info = {
        "format": FORMAT,
        "version": VERSION,
        "network": {**_skeleton(network), "file": NETWORK, "sha256": hashlib.sha256(blob).hexdigest()},
        "config": dataclasses.asdict(config),
        "preprocessing": {
            "standardized": bool(meta.get("standardized")),
            "mean": meta.get("mean"),
            "std": meta.get("std"),
            "std_floor": meta.get("std_floor"),
        },
        "data": {"source": record["source"], "fingerprint": record["fingerprint"]},
        "provenance": record["provenance"],
    }
    info["sha256"] = _defining_sha256(info)
    write_json(out / RUN_JSON, info)


DEFINING = ("network", "config", "preprocessing")
"""The run.json entries that define what `load_run` builds and feeds it; run.json's sha256 covers them."""


def _defining_sha256(info: dict) -> str:
    """sha256 of the `DEFINING` entries as canonical JSON (sorted keys, no spaces)."""
    blob = json.dumps({k: info.get(k) for k in DEFINING}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


# --------------------------------------------------------------------------------------------
# Loading


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise RunError(f"{path}: missing (not a resflow run folder, or the run did not finish)")
    try:
        obj = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunError(f"{path}: not readable JSON ({e})") from None
    if not isinstance(obj, dict):
        raise RunError(f"{path}: expected a JSON object, got {type(obj).__name__}")
    return obj


def _like(net: dict) -> Network:
    """A `Network` of ones with the saved shapes and dtypes (the target of deserialisation)."""
    dtype, n, dim, k = jnp.dtype(net["dtype"]), net["width"], net["dim"], net["n_classes"]
    w_shape = (n, n) if net["shared"] else (net["num_layers"], n, n)
    trunk = Trunk(jnp.ones(w_shape, dtype), jnp.ones(w_shape[:-1], dtype), net["h"], **_map_of(net))
    lift = Affine(jnp.ones((dim, n), dtype), jnp.ones((n,), dtype)) if net["lift"] else None
    return Network(lift, trunk, Affine(jnp.ones((n, k), dtype), jnp.ones((k,), dtype)), net["depth"])


def _map_of(net: dict) -> dict:
    return {"model": net["model"], "activation": net["activation"]}


def _load_network(folder: Path, net: dict) -> Network:
    path = folder / net.get("file", NETWORK)
    if not path.is_file():
        raise RunError(f"{path}: missing (the run's trained network)")
    blob = path.read_bytes()
    if hashlib.sha256(blob).hexdigest() != net.get("sha256"):
        raise RunError(f"{path}: its sha256 differs from the one in {RUN_JSON} (the file is corrupted or was altered)")
    if net["dtype"] == "float64" and not jax.config.jax_enable_x64:
        raise RunError(f"{path}: a float64 run; enable it first: jax.config.update('jax_enable_x64', True)")
    import io

    try:
        loaded = eqx.tree_deserialise_leaves(io.BytesIO(blob), _like(net))
        # Rebuilt through the constructors: their checks (shapes, finite weights, h > 0) run again.
        t = loaded.trunk
        trunk = Trunk(t.W, t.b, t.h, **_map_of(net))
        return Network(loaded.lift, trunk, loaded.readout, net["depth"])
    except (ValueError, TypeError, RuntimeError, OSError) as e:
        raise RunError(f"{path}: does not hold the network {RUN_JSON} describes ({e})") from None


@dataclasses.dataclass(frozen=True)
class Run:
    """A saved run, loaded by `load_run`.

    **Fields:** `path` (the folder), `network` (the trained `Network`, final depth), `config`
    (`TrainConfig`), `metrics` (metrics.json), `provenance` (command line, versions, commit,
    key), `preprocessing` (``standardized``, ``mean``, ``std``: the divisors, ``std_floor``; see
    `resflow.training._preprocess.standardize`), `data` (the data record:
    ``source`` and ``fingerprint``), `info` (the whole run.json).
    """

    path: Path
    network: Network
    config: TrainConfig
    metrics: dict
    provenance: dict
    preprocessing: dict
    data: dict
    info: dict

    @property
    def trunk(self) -> Trunk:
        """The trained `Trunk` at the final depth."""
        return self.network.trunk

    @property
    def depth(self) -> int:
        return self.network.depth

    def standardize(self, x_raw) -> np.ndarray:
        """Raw inputs ``(N, dim)`` mapped as in training: (x − mean) / std, as float32 (std holds
        the divisors, floored as in `resflow.training._preprocess.standardize`).

        The arithmetic is `resflow.training._preprocess.standardize`'s (float64 statistics on float32 inputs),
        so raw test data map to exactly the arrays the run was evaluated on.

        **Raises:** `TypeError` for non-float inputs; `ValueError` for a shape other than ``(N, dim)``.
        """
        x = np.asarray(as_float_array("x", x_raw), np.float32)
        if x.ndim != 2 or x.shape[1] != self.network.dim:
            raise ValueError(f"x must have shape (N, {self.network.dim}) (the training data dimension), got {x.shape}")
        p = self.preprocessing
        if not p.get("standardized"):
            return x
        return ((x - np.asarray(p["mean"])) / np.asarray(p["std"])).astype(np.float32)

    def predict(self, x_raw):
        """Logits of raw (unstandardised) inputs ``(N, dim)``: the saved standardisation, then the network.

        **Raises:** `TypeError`/`ValueError` as `resflow.predict` (x must be a finite ``(N, dim)`` array).
        """
        from ._fit import TrainResult, predict

        return predict(TrainResult(self.network, self.config, [], self.metrics), self.standardize(x_raw))

    def load_data(self, *, path=None) -> Dataset:
        """The run's data set, reloaded as recorded (name, seed, path, options) and fingerprint-checked.

        `path` replaces the recorded file path (data moved to another machine).

        **Raises:** `RunError` when the reloaded data differ from the ones trained on;
        `resflow.training._dataset.DataError`/`FileNotFoundError` from the loader.
        """
        src = self.data["source"]
        ds = load_dataset(
            src["name"],
            seed=src["seed"],
            path=path if path is not None else src.get("path"),
            standardize=False,
            **src.get("options", {}),
        )
        if src.get("standardize", True):  # with the std floor the run was trained with
            ds = standardize(ds, floor=self.preprocessing["std_floor"])
        got, want = data_fingerprint(ds), self.data["fingerprint"]
        if got["sha256"] != want["sha256"]:
            raise RunError(
                f"{self.path / RUN_JSON}: the data set reloaded as recorded ({src['name']}, seed {src['seed']}, "
                f"x_train {tuple(got['shapes']['x_train'])}, sha256 {got['sha256'][:12]}) differs from the one "
                f"trained on (x_train {tuple(want['shapes']['x_train'])}, sha256 {want['sha256'][:12]})"
            )
        return ds


def load_run(path) -> Run:
    """Load a run folder written by `resflow.fit` (``out_dir``) or ``scripts/train.py``.

    Needs no training code: the network is rebuilt from run.json's skeleton and network.eqx
    (checked against its recorded sha256), on jax's default device.

    **Returns:** `Run`.

    **Raises:** `TypeError` naming `path` unless it is a str or path; `RunError` naming the
    file for a missing folder, a missing, unreadable or foreign run.json / metrics.json, a
    run.json whose network, config or preprocessing entries were edited (its sha256 differs),
    a malformed preprocessing entry, a missing, altered or mismatched network.eqx, or a run
    standardised without a std floor (saved by an earlier resflow: its network amplifies
    changes of features that were constant in training; train it again).
    """
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"path must be a run folder (str or os.PathLike), got {type(path).__name__}")
    folder = Path(path)
    if not folder.is_dir():
        raise RunError(f"{folder}: not a folder (expected a run folder with {RUN_JSON} and {NETWORK})")
    file = folder / RUN_JSON
    info = _read_json(file)
    if info.get("format") != FORMAT or info.get("version") not in VERSIONS:
        raise RunError(
            f"{file}: not a {FORMAT} file of version {' or '.join(map(str, VERSIONS))} "
            f"(format {info.get('format')!r}, version {info.get('version')!r})"
        )
    if info["version"] >= 2 and info.get("sha256") != _defining_sha256(info):
        raise RunError(
            f"{file}: its sha256 does not match its {', '.join(DEFINING)} entries (the file was edited or "
            "corrupted; these define the network and its inputs, so it is not loaded)"
        )
    try:
        config = TrainConfig.from_dict(info["config"])
        parts = (info["network"], info["preprocessing"], info["data"], info["provenance"])
    except (KeyError, TypeError) as e:
        raise RunError(f"{file}: incomplete or malformed ({type(e).__name__}: {e})") from None
    pre = parts[1]
    if isinstance(pre, dict) and pre.get("standardized") and pre.get("std_floor") is None:
        raise RunError(
            f"{file}: saved before standardisation had a std floor (its inputs are divided by std + 1e-6, "
            "so a feature constant in training amplifies any change up to 10^6 times and decides the "
            "prediction); train the run again"
        )
    try:
        network = _load_network(folder, parts[0])
    except KeyError as e:
        raise RunError(f"{file}: the network entry lacks {e}") from None
    _check_preprocessing(file, parts[1], network.dim)
    metrics = _read_json(folder / METRICS)
    return Run(folder, network, config, metrics, parts[3], parts[1], parts[2], info)


def _check_preprocessing(file: Path, p, dim: int) -> None:
    """run.json's ``preprocessing``: ``standardized`` a bool and, when true, ``mean`` and ``std``
    lists of `dim` finite numbers (std > 0). **Raises:** `RunError` naming `file` and the entry."""
    if not isinstance(p, dict) or not isinstance(p.get("standardized"), bool):
        raise RunError(f"{file}: preprocessing must be an object with a boolean 'standardized', got {p!r}")
    if not p["standardized"]:
        return
    for name in ("mean", "std"):
        try:
            a = np.asarray(p.get(name), dtype=np.float64)
        except (TypeError, ValueError):
            a = None
        if a is None or a.shape != (dim,) or not np.all(np.isfinite(a)) or (name == "std" and np.any(a <= 0)):
            must = "finite numbers" + (" > 0" if name == "std" else "")
            raise RunError(
                f"{file}: preprocessing.{name} must be a list of {dim} {must} (the network's input dimension), "
                f"got {str(p.get(name))[:80]}"
            )
