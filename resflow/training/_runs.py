"""Trained runs: one type, `Run`, for a run just trained (`resflow.fit`, `resflow.sweep`) and a
run loaded from its folder (`load_run`); a run folder is a complete, self-describing artifact.

    run = rf.fit(data, key=jax.random.key(0), out_dir="runs/r0")   # or load_run("runs/r0")
    rf.predict(run, x)            # logits of standardised inputs (as trained on)
    run.predict(x_raw)            # logits of raw inputs: the saved standardisation first
    run.trunk, run.depth          # the trained Trunk at its final depth, ready for analysis
    run.history, run.metrics      # per-epoch records, final metrics
    run.load_data()               # the run's own data set, reloaded and fingerprint-checked

A run folder (`resflow.fit` with ``out_dir``, or one per run of `resflow.sweep` with ``out_dir``) holds:

- ``network.eqx``: the trained `Network` at its final depth (``eqx.tree_serialise_leaves``:
  plain numpy bytes, no device information, so a run trained on a GPU loads on a CPU);
- ``run.json``: what rebuilds the network's skeleton (dims, classes, lift, width, depth,
  model, activation, h, dtype), the sha256 of ``network.eqx``, the full config, the
  preprocessing (standardisation mean, std and std floor), the data record (how to reload the data
  set and its fingerprint) and the provenance (command line, versions, git commit, key);
- ``metrics.json`` (final metrics) and ``metrics.jsonl`` (the history, one line per epoch);
- ``data.json``: the data record alone, written when training starts; ``resume`` refuses
  data whose fingerprint differs from it.

Every file is written by `resflow.training._files.write_atomic` (a temporary name, fsync,
``os.replace``), so a run killed mid-write keeps the previous version. A file that is missing,
unreadable or altered is reported as a `RunError` naming the file and the problem. run.json's
``sha256`` covers what defines the network and its inputs (the network entry, the config, the
preprocessing), so an edited run.json is refused rather than loading another network.

One writer at a time: `resflow.training._files.lock_folder` holds ``fcntl.flock`` on the
folder's ``.resflow.lock`` for a run's life; a second process is refused with a `RunError`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import as_float_array, device_array
from .._errors import OutputError, RunError
from ..trunk._network import Affine, Network
from ..trunk._trunk import Trunk
from ._config import TrainConfig
from ._dataset import Dataset
from ._datasets import load_dataset
from ._files import LOCK, lock_folder, write_atomic, write_json
from ._predict import predict
from ._preprocess import standardize
from ._record import DATA_JSON, data_fingerprint, data_source, provenance, read_json, start_run

__all__ = [
    "RunError",
    "Run",
    "load_run",
    "save_run",
    "write_run",
    "preprocessing_of",
    "is_run_folder",
    "RUN_FILES",
    "RUN_FOLDERS",
    # re-exported for the scripts (defined in `_files` and `_record`)
    "LOCK",
    "lock_folder",
    "write_json",
    "data_fingerprint",
    "data_source",
    "provenance",
    "start_run",
]

RUN_JSON, NETWORK, METRICS, HISTORY = "run.json", "network.eqx", "metrics.json", "metrics.jsonl"
RUN_FILES = (
    RUN_JSON,
    NETWORK,
    DATA_JSON,
    METRICS,
    HISTORY,
    "checkpoint.msgpack",
    "training_curves.png",
    "depth_history.png",
    "residuals_by_class.png",
)
"""The files a training run writes into its folder (``--overwrite`` removes these and `RUN_FOLDERS` only)."""
RUN_FOLDERS = ("analysis",)
"""Folders derived from a run's network (``scripts/analyze.py``'s default output): stale once it is retrained."""

# Version 2 added run.json's sha256 over the network entry, config and preprocessing; version 1
# files (without it) still load.
FORMAT, VERSION, VERSIONS = "resflow-run", 2, (1, 2)
# Metrics keys of earlier runs and their names now (the final depth is `depth`, as Network.depth).
_RENAMED = {"depth_after": "depth", "depth_before": "initial_depth"}


def is_run_folder(folder) -> list[str]:
    """The training-run files (`RUN_FILES`) that `folder` holds: empty unless it is a run folder."""
    folder = Path(folder)
    return [name for name in RUN_FILES if (folder / name).exists()]


def preprocessing_of(data: Dataset) -> dict:
    """The standardisation `data` went through (``standardized``, ``mean``, ``std``, ``std_floor``)."""
    meta = data.meta
    return {
        "standardized": bool(meta.get("standardized")),
        "mean": meta.get("mean"),
        "std": meta.get("std"),
        "std_floor": meta.get("std_floor"),
    }


@dataclasses.dataclass(frozen=True, eq=False)
class Run:
    """A trained run: from `resflow.fit`, from `resflow.sweep` (one per run) or from `load_run`.

    **Fields:**

    - `network`: the trained `resflow.Network` (lift, trunk pruned to the final depth, readout);
    - `config`: the `TrainConfig` used;
    - `history`: one dict per epoch (loss, accuracies, depth, residual change, time), as
      metrics.jsonl;
    - `metrics`: the final metrics (as metrics.json): ``test_accuracy``, ``train_accuracy``,
      ``test_loss``, ``initial_depth``, ``depth`` (the final depth), ``cuts``, ...;
    - `path`: the run folder, or None for a run not written to disk;
    - `provenance`: command line, versions, git commit, key (and extras such as ``seed``);
    - `preprocessing`: ``standardized``, ``mean``, ``std`` (the divisors), ``std_floor`` (see
      `resflow.training._preprocess.standardize`);
    - `data`: the data record, ``source`` (how to reload the data set) and ``fingerprint``.
    """

    network: Network
    config: TrainConfig
    history: list
    metrics: dict
    path: Path | None = None
    provenance: dict = dataclasses.field(default_factory=dict)
    preprocessing: dict = dataclasses.field(default_factory=dict)
    data: dict = dataclasses.field(default_factory=dict)

    @property
    def trunk(self) -> Trunk:
        """The trained `Trunk` at the final depth (= ``network.trunk``)."""
        return self.network.trunk

    @property
    def depth(self) -> int:
        """The final depth (= ``network.depth``)."""
        return self.network.depth

    def replace(self, **changes) -> Run:
        """A copy with `changes` (fields), e.g. ``run.replace(network=run.network.with_depth(15))``."""
        return dataclasses.replace(self, **changes)

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
        return predict(self.network, self.standardize(x_raw))

    def load_data(self, *, path=None) -> Dataset:
        """The run's data set, reloaded as recorded (name, seed, path, options) and fingerprint-checked.

        `path` replaces the recorded file path (data moved to another machine).

        **Raises:** `RunError` when the reloaded data differ from the ones trained on;
        `resflow._errors.DataError`/`FileNotFoundError` from the loader.
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


def save_run(out, run: Run) -> None:
    """Write `run`'s ``network.eqx`` then ``run.json`` into the folder `out` (the latter last:
    it names the former's sha256). **Raises:** `OutputError` naming the file."""
    out = Path(out)
    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, run.network)
    blob = buffer.getvalue()
    write_atomic(out / NETWORK, blob)
    info = {
        "format": FORMAT,
        "version": VERSION,
        "network": {**_skeleton(run.network), "file": NETWORK, "sha256": hashlib.sha256(blob).hexdigest()},
        "config": dataclasses.asdict(run.config),
        "preprocessing": run.preprocessing,
        "data": {"source": run.data["source"], "fingerprint": run.data["fingerprint"]},
        "provenance": run.provenance,
    }
    info["sha256"] = _defining_sha256(info)
    write_json(out / RUN_JSON, info)


def write_run(out, run: Run) -> Run:
    """Write the whole run folder `out` (created if needed): data.json, metrics.jsonl (the
    history), metrics.json, network.eqx and run.json, as `resflow.fit` leaves it (no checkpoint,
    no figures), so that `load_run` reloads it.

    **Returns:** `run` with ``path=out``. **Raises:** `OutputError` naming the file or folder.
    """
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create the run folder {out}: {e.strerror or e}") from e
    write_json(out / DATA_JSON, {k: run.data[k] for k in ("source", "fingerprint")})
    write_atomic(out / HISTORY, "".join(json.dumps(r) + "\n" for r in run.history).encode())
    write_json(out / METRICS, run.metrics)
    save_run(out, run)
    return run.replace(path=out)


DEFINING = ("network", "config", "preprocessing")
"""The run.json entries that define what `load_run` builds and feeds it; run.json's sha256 covers them."""


def _defining_sha256(info: dict) -> str:
    """sha256 of the `DEFINING` entries as canonical JSON (sorted keys, no spaces)."""
    blob = json.dumps({k: info.get(k) for k in DEFINING}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


# Loading


def _like(net: dict) -> Network:
    """A `Network` of ones with the saved shapes and dtypes (the target of deserialisation)."""
    dtype, n, dim, k = jnp.dtype(net["dtype"]), net["width"], net["dim"], net["n_classes"]
    w_shape = (n, n) if net["shared"] else (net["num_layers"], n, n)

    def ones(shape):  # put on the device, not built there: no compiled program per shape
        return device_array(np.ones(shape, dtype))

    trunk = Trunk(ones(w_shape), ones(w_shape[:-1]), net["h"], **_map_of(net))
    lift = Affine(ones((dim, n)), ones((n,))) if net["lift"] else None
    return Network(lift, trunk, Affine(ones((n, k)), ones((k,))), net["depth"])


def _load_leaf(f, like):
    """An array leaf of network.eqx on the device (`device_array`: equinox's ``jnp.load``
    compiles a copy program per shape)."""
    if isinstance(like, jax.Array):
        return device_array(np.load(f))
    return eqx.default_deserialise_filter_spec(f, like)


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
    try:
        loaded = eqx.tree_deserialise_leaves(io.BytesIO(blob), _like(net), filter_spec=_load_leaf)
        # Rebuilt through the constructors: their checks (shapes, finite weights, h > 0) run again.
        t = loaded.trunk
        trunk = Trunk(t.W, t.b, t.h, **_map_of(net))
        return Network(loaded.lift, trunk, loaded.readout, net["depth"])
    except (ValueError, TypeError, RuntimeError, OSError) as e:
        raise RunError(f"{path}: does not hold the network {RUN_JSON} describes ({e})") from None


def load_run(path) -> Run:
    """Load a run folder written by `resflow.fit` (``out_dir``), `resflow.sweep` (``out_dir``:
    one folder per run) or ``scripts/train.py``.

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
    info = read_json(file)
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
    metrics = read_json(folder / METRICS)
    for old, new in _RENAMED.items():  # runs saved before the final depth was called `depth`
        if old in metrics and new not in metrics:
            metrics[new] = metrics.pop(old)
    history = _read_history(folder / HISTORY)
    return Run(network, config, history, metrics, folder, parts[3], parts[1], parts[2])


def _read_history(path: Path) -> list:
    """The records of metrics.jsonl (none if it is absent). **Raises:** `RunError` naming the file."""
    if not path.is_file():
        return []
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunError(f"{path}: not readable JSON lines ({e})") from None


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
