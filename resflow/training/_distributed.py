"""Several hosts: start `jax.distributed`, and bring results to process 0 for writing.

The same script runs on every host. Each process is told three things — the coordinator's
``host:port`` (process 0 listens there), the number of processes and its own index — by
arguments or by the environment (``RESFLOW_COORDINATOR``, ``RESFLOW_NUM_PROCESSES``,
``RESFLOW_PROCESS_ID``). With none of them set, JAX's own cluster detection (SLURM, Open MPI,
Kubernetes, Cloud TPU) fills them in. After `initialize`, `jax.devices()` lists the devices of
every process and `jax.local_devices()` this process's own.

Files are written by process 0 only (`is_main`): arrays sharded over several processes are
first gathered with `gather` (every process must call it: it is a collective), small
per-process results (rows of a table) with `gather_objects`.

On CPU the cross-process collectives use gloo (``jax_cpu_collectives_implementation``), which
`initialize` selects, so the path can be tried with several processes on one machine.
"""

from __future__ import annotations

import json
import os
from typing import Any, NamedTuple

import jax
import numpy as np

__all__ = ["ENV", "Cluster", "initialize", "resolve", "is_main", "gather", "gather_objects"]

# The environment variables read for each setting of `initialize`.
ENV = {
    "coordinator": "RESFLOW_COORDINATOR",
    "num_processes": "RESFLOW_NUM_PROCESSES",
    "process_id": "RESFLOW_PROCESS_ID",
}


class Cluster(NamedTuple):
    """Where this process stands: `process_id` of `num_processes`; `coordinator` as given
    (None when JAX's cluster detection chose it)."""

    coordinator: str | None
    num_processes: int
    process_id: int


def _as_int(name: str, value, source: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} ({source}) must be an integer, got {value!r}") from None
    if isinstance(value, float) and number != value:
        raise ValueError(f"{name} ({source}) must be an integer, got {value!r}")
    return number


def resolve(coordinator=None, num_processes=None, process_id=None, *, env=None) -> dict | None:
    """The settings of `initialize`: each argument, or else its environment variable (`ENV`).

    **Arguments:** as `initialize`; `env`: the environment to read (default ``os.environ``).

    **Returns:** ``{"coordinator": "host:port", "num_processes": n, "process_id": i}`` with
    0 ≤ i < n, or None when no setting is given anywhere (leave it to JAX's cluster detection).

    **Raises:** `ValueError` naming the missing setting (argument and variable) when only some
    are given, or the bad one: a coordinator that is not ``host:port``, a count < 1, an index
    outside [0, n).
    """
    env = os.environ if env is None else env
    given = {"coordinator": coordinator, "num_processes": num_processes, "process_id": process_id}
    values, sources = {}, {}
    for name, value in given.items():
        if value is not None:
            values[name], sources[name] = value, f"argument {name}"
        elif env.get(ENV[name], "") != "":
            values[name], sources[name] = env[ENV[name]], f"environment {ENV[name]}"
    if not values:
        return None
    missing = [f"{name} (argument {name} or environment {ENV[name]})" for name in given if name not in values]
    if missing:
        raise ValueError(f"multi-host settings incomplete: missing {', '.join(missing)}")
    host, _, port = str(values["coordinator"]).rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"coordinator ({sources['coordinator']}) must be host:port, got {values['coordinator']!r}")
    n = _as_int("num_processes", values["num_processes"], sources["num_processes"])
    i = _as_int("process_id", values["process_id"], sources["process_id"])
    if n < 1:
        raise ValueError(f"num_processes ({sources['num_processes']}) must be >= 1, got {n}")
    if not 0 <= i < n:
        raise ValueError(f"process_id ({sources['process_id']}) must be in [0, {n}), got {i}")
    return {"coordinator": str(values["coordinator"]), "num_processes": n, "process_id": i}


def initialize(coordinator=None, num_processes=None, process_id=None, *, env=None) -> Cluster:
    """Join the processes of one job (`jax.distributed.initialize`); call it first, before any
    other JAX call.

    **Arguments:**

    - `coordinator`: ``"host:port"`` of process 0 (every process gives the same one).
    - `num_processes`: how many processes take part (n ≥ 1).
    - `process_id`: this process's index i, 0 ≤ i < n.
    - `env`: environment to read unset settings from (default ``os.environ``, see `ENV`).

    With none of the three given anywhere, JAX's cluster detection supplies them.

    **Returns:** `Cluster` (the coordinator, n and i).

    **Raises:** `ValueError` as `resolve`, or naming the three settings when neither they nor a
    detected cluster are there; `RuntimeError` from JAX when called twice or when the
    coordinator cannot be reached.
    """
    settings = resolve(coordinator, num_processes, process_id, env=env)
    # CPU devices need an explicit cross-process collective backend (GPUs/TPUs have their own).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if settings is None:
        try:
            jax.distributed.initialize()
        except ValueError as e:  # no cluster detected: say which settings would do
            names = ", ".join(f"{name} ({var})" for name, var in ENV.items())
            raise ValueError(f"no cluster detected and no multi-host settings given: set {names}; ({e})") from None
        return Cluster(None, jax.process_count(), jax.process_index())
    jax.distributed.initialize(
        coordinator_address=settings["coordinator"],
        num_processes=settings["num_processes"],
        process_id=settings["process_id"],
    )
    return Cluster(**settings)


def is_main() -> bool:
    """True on process 0, the one that writes files (also True without `initialize`)."""
    return jax.process_index() == 0


def gather(tree: Any) -> Any:
    """The full value of every array in `tree` on this process, as numpy arrays.

    Arrays sharded over the devices of several processes are assembled with
    `jax.experimental.multihost_utils.process_allgather` (a collective: every process calls
    it); arrays this process holds whole are just copied to the host.

    **Arguments:** `tree`: a pytree of `jax.Array` (global arrays of one program).

    **Returns:** the same pytree of `numpy.ndarray` holding the global values.
    """
    from jax.experimental import multihost_utils

    def full(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(x)

    return jax.tree_util.tree_map(full, tree)


def gather_objects(obj: Any) -> list:
    """Every process's `obj` (JSON-able), in process order, on every process.

    For per-process results (rows of a table, histories) that process 0 writes: the JSON text
    is sent as bytes, padded to the longest, with `process_allgather` (a collective: every
    process calls it). With one process: ``[obj]``.

    **Raises:** `TypeError` when `obj` is not JSON-able.
    """
    if jax.process_count() == 1:
        return [obj]
    from jax.experimental import multihost_utils

    blob = np.frombuffer(json.dumps(obj).encode(), dtype=np.uint8)
    sizes = np.asarray(multihost_utils.process_allgather(np.array([blob.size], np.int32)))
    padded = np.zeros(int(sizes.max()), np.uint8)
    padded[: blob.size] = blob
    parts = np.asarray(multihost_utils.process_allgather(padded))
    return [json.loads(bytes(part[:size])) for part, size in zip(parts, sizes.ravel(), strict=True)]
