"""Training for the reproduction: every run saved under ``RUNS/<name>/seed<k>`` and reused.

`train_seeds` is the one place that trains: today a loop of `resflow.fit` over the seeds
(each run resumable from its checkpoint, reloaded with `resflow.load_run` once finished), so
that a second call is fast and a killed call resumes. A vmapped sweep can replace the loop
here without touching the claims.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
from pathlib import Path

import jax

from ...training import Dataset, load_dataset
from ...training import _fit as train
from ...training._engine import final_network
from ...training._recipes import recipe_options
from ...training._runs import Run, load_run
from ...trunk._network import Network
from .modes import Mode

__all__ = ["train_seeds", "recipe", "load_data", "untrained_network"]

# Per-data-set recipes: scripts/train.py's defaults (`PER_DATASET`), and circles' width 3.
RECIPES = {
    "circles": recipe_options("circles") | {"width": 3},
    "digits": recipe_options("digits"),
    "fashion-mnist": recipe_options("fashion-mnist"),
}


def recipe(mode: Mode, kind: str, **options) -> dict:
    """`resflow.fit` options of the ``circles``, ``digits`` or ``images`` runs of `mode`, updated by `options`."""
    dataset = mode.image_data if kind == "images" else kind
    epochs = {"circles": mode.circles_epochs, "digits": mode.digits_epochs, "images": mode.image_epochs}[kind]
    out = dict(RECIPES.get(dataset, {}), depth=mode.depth, epochs=epochs)
    if kind == "circles":
        out["depth_warmup"] = min(out["depth_warmup"], max(epochs // 3, 1))
    if kind == "images" and mode.image_depth_adapt:
        out["depth_adapt"] = True
    return out | options


def _subset(ds: Dataset, n_train: int | None, n_test: int | None) -> Dataset:
    """The first `n_train` / `n_test` samples (the standardisation stays that of the full split)."""
    a, b = slice(None, n_train), slice(None, n_test)
    meta = dict(ds.meta, n_train=len(ds.x_train[a]), n_test=len(ds.x_test[b]), subset=[n_train, n_test])
    return Dataset(ds.x_train[a], ds.y_train[a], ds.x_test[b], ds.y_test[b], meta)


def load_data(mode: Mode) -> dict[str, Dataset]:
    """The data sets of `mode`: ``circles``, ``digits`` and ``images`` (Fashion-MNIST or the stand-in).

    **Raises:** what `resflow.load_dataset` raises (a missing Fashion-MNIST says ``make data``).
    """
    images = _subset(load_dataset(mode.image_data), mode.image_train, mode.image_test)
    return {"circles": load_dataset("circles"), "digits": load_dataset("digits"), "images": images}


def _stale(run: Run, options: dict) -> list[str]:
    """The options whose saved value differs from the requested one, as ``name=saved (asked)``."""
    saved = dataclasses.asdict(run.config)
    saved |= saved.pop("trunk")
    return [f"{k}={saved.get(k)!r} (asked {v!r})" for k, v in options.items() if saved.get(k) != v]


def _train_one(data: Dataset, folder: Path, seed: int, options: dict) -> Run:
    if (folder / "run.json").is_file():
        run = load_run(folder)
        stale = _stale(run, options)
        if stale:  # a changed recipe must not silently reuse runs trained with the old one
            raise ValueError(
                f"{folder}: a finished run saved with other options ({', '.join(stale)}); "
                "delete the folder to retrain, or pass another runs folder"
            )
        return run
    resume = (folder / "checkpoint.msgpack").is_file()
    source = {"name": data.meta["name"], "seed": 0, "path": None, "standardize": True, "options": {}}
    # fit's own bar is off; the reproduction shows one bar over its steps.
    with contextlib.redirect_stdout(io.StringIO()):
        train.fit(
            data, key=jax.random.key(seed), out_dir=folder, resume=resume, figures=False,
            data_source=source, provenance={"seed": seed}, **options,
        )  # fmt: skip
    return load_run(folder)


def train_seeds(data: Dataset, seeds, folder, **options) -> list[Run]:
    """Train (or reload) one run per seed with ``resflow.fit(data, key=jax.random.key(seed), **options)``.

    **Arguments:** `data`; `seeds` (ints); `folder`, the runs' parent: seed k lives in
    ``folder/seed<k>`` (a finished run there is loaded, a checkpoint resumed); `options`,
    `resflow.fit` options.

    **Returns:** the `resflow.training._runs.Run` of each seed, in order.

    **Raises:** `ValueError` naming the folder and the options when a finished run there was
    trained with other options; what `resflow.fit` and `resflow.load_run` raise.
    """
    folder = Path(folder)
    return [_train_one(data, folder / f"seed{int(s)}", int(s), options) for s in seeds]


def untrained_network(run: Run, data: Dataset, seed: int) -> Network:
    """The network `run` started from: its config's parameters at init with
    ``jax.random.key(seed)`` (as `resflow.fit` draws them), at the run's final depth.

    The controls of the claims: what an untrained network of the same shape and init gives.
    Cached per (run folder, seed, depth): several claims read the same control.
    """
    key = (str(run.path), seed, run.depth)
    if key not in _UNTRAINED:
        _UNTRAINED[key] = _init_network(run, data, seed)
    return _UNTRAINED[key]


_UNTRAINED: dict = {}


def _init_network(run: Run, data: Dataset, seed: int) -> Network:
    setup = train.setup_run(data, run.config, run.network.n_classes)
    return final_network(train.init_state(setup, jax.random.key(seed)).params, run.depth)
