"""Setting up a training run (shared by `resflow.fit` and `resflow.sweep`): the checks of the
data and key, the `Setup` (static and traced options, the jitted engine, the data on the
device), and the host records of a compiled chunk.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from .._checks import check_labels, device_array
from ._config import Static, Traced, TrainConfig, lift_of, static_of, traced_of
from ._dataset import Dataset
from ._engine import RESPAN_FLOPS, Data, chunk_jit, chunk_length, epoch_flops, evaluate_jit, init_jit, padded_chunks

__all__ = [
    "Setup",
    "Jitted",
    "jitted",
    "check_lift",
    "check_key",
    "check_data",
    "setup_run",
    "data_parallel",
    "as_dtype",
    "epoch_records",
]


class Setup(NamedTuple):
    """What stays fixed during a run: the options, their static and traced parts, the jitted
    engine functions, the data.

    `static` and `traced` are `resflow.training._config.static_of` / `traced_of` of `config`;
    `jit` the engine's jitted init, chunk and evaluate with `static` bound; `length` the
    epochs per compiled chunk; `respan` whether an epoch is long enough (`epoch_flops` ≥
    `RESPAN_FLOPS`) that `resflow.fit` recompiles the chunk at each new depth (`Static.span`)
    instead of running the removed layers as masked identities.
    """

    config: TrainConfig
    static: Static
    traced: Traced
    jit: Jitted
    data: Data
    length: int
    respan: bool = False

    def chunk_at(self, depth: int) -> Callable:
        """The jitted chunk for a run now at `depth`: scanned over `depth` layers when `respan`."""
        if not self.respan or depth == self.static.depth:
            return self.jit.chunk
        return jitted(dataclasses.replace(self.static, span=depth)).chunk


check_lift = lift_of  # the width and lift of a config for data of a dimension (InputError if impossible)


def check_key(key) -> jax.Array:
    """A typed `jax.random` key (a legacy uint32 ``(2,)`` key is wrapped), or a `TypeError`."""
    if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key) and key.shape == ():
        return key
    if isinstance(key, jax.Array | np.ndarray) and key.dtype == np.uint32 and key.shape == (2,):
        return jax.random.wrap_key_data(jnp.asarray(key))
    raise TypeError(f"key must be a jax.random key, e.g. key=jax.random.key(0), got {key!r}")


def check_data(data) -> int:
    """Validate a `Dataset`: float inputs, integer labels, classes.

    **Returns:** the number of classes.

    **Raises:** `TypeError` for another type or non-float inputs / non-integer labels;
    `ValueError` for shapes, non-finite inputs or labels out of range.
    """
    if not isinstance(data, Dataset):
        raise TypeError(f"data must be a resflow.Dataset, got {type(data).__name__}")
    for name in ("x_train", "x_test"):
        a = np.asarray(getattr(data, name))
        if not np.issubdtype(a.dtype, np.floating):
            # Caught here, not after the last epoch when predict/evaluate refuse it.
            raise TypeError(f"data.{name} must have a floating dtype (standardised inputs), got {a.dtype}")
        if a.ndim != 2 or a.shape[0] == 0 or not np.all(np.isfinite(a)):
            raise ValueError(f"data.{name} must be a finite non-empty (samples, dim) array, got shape {a.shape}")
    if data.x_test.shape[1] != data.x_train.shape[1]:
        raise ValueError(
            f"data.x_test must have the dimension of data.x_train ({data.x_train.shape[1]}), "
            f"got shape {data.x_test.shape}"
        )
    y_train = np.asarray(check_labels("data.y_train", data.y_train, len(data.x_train)))
    y_test = np.asarray(check_labels("data.y_test", data.y_test, len(data.x_test)))
    top = int(max(y_train.max(), y_test.max()))
    n_classes = data.meta.get("n_classes", top + 1)
    if isinstance(n_classes, bool) or not isinstance(n_classes, int | np.integer) or n_classes < 2:
        raise ValueError(f"data.meta['n_classes'] must be an integer >= 2, got {n_classes!r}")
    if top >= n_classes:
        raise ValueError(f"labels must be < data.meta['n_classes'] = {n_classes}, got a label {top}")
    return int(n_classes)


def setup_run(data: Dataset, config: TrainConfig, n_classes: int, *, runs: int = 1) -> Setup:
    """The static and traced options, the jitted engine and the data as device arrays of the
    config's dtype.

    Runs with equal `Static` parts share the compiled programs; `runs` (a sweep's runs per
    device) scales the automatic chunk length. With ``data_parallel`` the data are replicated
    over a ``Mesh(jax.local_devices(), ("data",))`` and the batches sharded over it.

    **Raises:** `ValueError` when the data overflow the config's dtype (before any epoch), or
    with ``data_parallel`` when the batch size is not a multiple of the device count.
    """
    dtype = jnp.dtype(config.dtype)
    dim = data.x_train.shape[1]
    batch, replicated = data_parallel(config)
    multiple = 1 if batch is None else batch.mesh.size
    static = static_of(config, dim, n_classes, data.x_train.shape[0], batch)
    # Cast and laid out on the host, each array put on the device once.
    x_train, y_train = as_dtype("x_train", data.x_train, dtype), np.asarray(data.y_train, np.int32)
    x_test, y_test = as_dtype("x_test", data.x_test, dtype), np.asarray(data.y_test, np.int32)
    arrays = Data(
        device_array(x_train),
        device_array(y_train),
        padded_chunks(x_test, y_test, config.eval_chunk, multiple),
        padded_chunks(x_train, y_train, config.eval_chunk, multiple),
    )
    if replicated is not None:
        arrays = jax.device_put(arrays, replicated)
    shapes = (config, dim, n_classes, len(data.x_train), len(data.x_test))
    length = chunk_length(*shapes, runs)
    # A sweep's runs cut at different epochs, so only a single run follows its depth.
    respan = runs == 1 and epoch_flops(*shapes) >= RESPAN_FLOPS
    return Setup(config, static, traced_of(config, dtype), jitted(static), arrays, length, respan)


def data_parallel(config: TrainConfig):
    """(batch sharding, replicated sharding) over the local devices, or (None, None)."""
    if not config.data_parallel:
        return None, None
    devices = jax.local_devices()
    if config.batch_size % len(devices):
        raise ValueError(
            f"data_parallel: batch_size must be a multiple of the {len(devices)} local devices, got {config.batch_size}"
        )
    mesh = Mesh(np.array(devices), ("data",))
    return NamedSharding(mesh, P("data")), NamedSharding(mesh, P())


class Jitted(NamedTuple):
    """The jitted engine functions of one `Static` (fit: one run; `resflow.sweep` vmaps its own):
    ``init(traced, key)``, ``chunk(traced, key, loop, start, epochs, data, length=)``,
    ``evaluate(network, depth, chunks)``."""

    init: Callable
    chunk: Callable
    evaluate: Callable


# The depth rule's static options: neither `init` (network and optimiser state) nor `evaluate`
# reads them (nor `init` remat), so they are reset in those two functions' static argument, and
# runs that differ only in them share those compiled programs (same code, same numbers).
_NO_DEPTH_RULE = dict(depth_adapt=False, min_depth=1, warmup=0, plateau=0, multi_cut=False, fold_drift=False)


@functools.lru_cache(maxsize=32)
def jitted(static: Static) -> Jitted:
    """The engine's jitted functions with `static` bound."""
    bind = functools.partial
    for_eval = dataclasses.replace(static, **_NO_DEPTH_RULE)
    for_init = dataclasses.replace(for_eval, remat=False)
    return Jitted(bind(init_jit, for_init), bind(chunk_jit, static), bind(evaluate_jit, for_eval))


def as_dtype(name: str, x, dtype) -> np.ndarray:
    """`x` cast to `dtype` on the host; a `ValueError` if the cast overflows (finite data, inf after)."""
    with np.errstate(over="ignore"):  # an overflow is reported just below, with the data's name
        a = np.asarray(x, dtype)  # on the host: no compiled program per data shape
    if not np.isfinite(a).all():
        big = float(np.max(np.abs(np.asarray(x, np.float64))))
        raise ValueError(
            f"data.{name} overflows dtype {dtype} (largest |x| = {big:.3g}); standardise it or use float64"
        )
    return a


def epoch_records(rec, start: int, count: int, depth_adapt: bool) -> tuple[list, list, int | None]:
    """The history dicts and cuts of `count` epochs of a chunk's `Records` (host arrays)
    starting after epoch `start`, up to the first non-finite one.

    **Returns:** ``(records, cuts, bad)``: `bad` the (1-based) epoch whose losses were not
    finite (its record is ``records[-1]``, not part of the history), or None.
    """
    records, cuts = [], []
    for i in range(count):
        epoch, depth, new = start + i + 1, int(rec.depth[i]), int(rec.depth_after[i])
        record = {"epoch": epoch, "loss": float(rec.loss[i]), "train_accuracy": float(rec.train_accuracy[i])}
        record |= {"test_loss": float(rec.test_loss[i]), "test_accuracy": float(rec.test_accuracy[i]), "depth": depth}
        if bool(rec.nonfinite[i]):
            return records + [record], cuts, epoch
        if depth_adapt and depth > 1 and math.isfinite(rec.residual_change[i]):  # NaN: warm-up, not measured
            record["residual_change"] = float(rec.residual_change[i])
        if new < depth:
            record["depth_after_cut"] = new
            cut = {"epoch": epoch, "from": depth, "to": new, "test_accuracy_before": record["test_accuracy"]}
            cuts.append(cut | {"test_accuracy_after": float(rec.test_accuracy_after[i])})
        records.append(record)
    return records, cuts, None
