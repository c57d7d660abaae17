"""Sweeps: many training runs as one vmapped, compiled program per group, sharded over devices.

    sweep(data, config=None, *, seeds, grid=None, progress=False, devices=None, out_dir=None,
          runs_dir=None, resume=False, data_source=None, **overrides) -> SweepResult(runs, seeds, grid)

The runs are the cartesian product of `grid` (option name → values) times `seeds`. Runs
whose compiled code agrees (the same `resflow.training._config.Static`: shapes, model,
optimiser, ...; and the same epochs and chunking) form a group and train together: the
engine functions of `resflow.fit` under `jax.vmap`, the numeric options of
`resflow.training._config.Traced` (lr, h, w_std, depth_tol, weight_decay) and the key traced
per run. A group's runs are padded to a multiple of the device count and sharded over
``Mesh(devices, ("runs",))`` (``NamedSharding(mesh, P("runs"))``), the data replicated. Run
``seed`` uses ``jax.random.key(seed)``, the key ``fit(..., key=jax.random.key(seed))`` uses,
so each run equals its single `fit` (to float round-off of the batched arithmetic).

With `out_dir` each group checkpoints its state (every run's parameters, optimiser state,
depth, plateau losses, histories) to ``out_dir/group-<hash>.msgpack`` as `resflow.fit` does:
every ``checkpoint_every`` epochs or ``checkpoint_seconds`` of wall time, at its end, and
when stopped by an exception, Ctrl-C or SIGTERM (the last complete chunk). ``resume=True``
reloads finished groups and continues the others from their chunk, ending where an
uninterrupted sweep ends. The hash covers the group's configs, seeds and the data's
fingerprint, so another sweep never picks up a foreign state. The folder is locked for the
sweep's life (`resflow.training._files.lock_folder`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import itertools
import json
import math
import numbers
import os
import re
import time
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from ..trunk._network import Network
from ._checkpoint import (
    CheckpointError,
    deferred_signals,
    fill_arrays,
    load_checkpoint,
    prepare_out_dir,
    save_checkpoint,
    stop_on_signals,
)
from ._config import Static, TrainConfig, static_of, traced_of
from ._dataset import Dataset
from ._engine import Loop, chunk, evaluate, final_network, init, start_loop
from ._files import lock_folder, write_json
from ._record import data_fingerprint, key_record, provenance
from ._record import data_source as source_of
from ._runs import Run, preprocessing_of, write_run
from ._setup import check_data, check_lift, epoch_records, setup_run

__all__ = ["sweep", "SweepResult"]


@dataclasses.dataclass(frozen=True, eq=False)
class SweepResult:
    """The runs of a sweep, in grid order (the grid's product, then the seeds), and the grid.

    - `runs`: one `resflow.Run` per run (network pruned to its final depth, config, history
      as `resflow.fit`'s without ``time``, metrics, provenance with ``seed`` and the grid
      ``options``; ``path`` its run folder when the sweep had an ``out_dir``);
    - `seeds`: the seeds, in order;
    - `grid`: option name → values, as given (``{}`` without a grid).

    A sequence of its runs: ``len(res)``, ``res[i]``, ``for run in res``. `table` gives one row per run.
    """

    runs: tuple
    seeds: tuple = ()
    grid: dict = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.runs)

    def __iter__(self):
        return iter(self.runs)

    def __getitem__(self, i) -> Run:
        return self.runs[i]

    def table(self) -> list[dict]:
        """One dict per run: its grid options, ``seed``, final ``depth``, ``train_accuracy``,
        ``test_accuracy``, ``test_loss`` (at the final depth, over the whole sets),
        ``nonfinite_epoch`` (the epoch whose loss stopped being finite, else None; the run then
        stopped at the epoch before) and ``time``: its group's wall time (compile included)
        divided by the group's runs."""
        return [table_row(run) for run in self.runs]

    def to_json(self, path) -> None:
        """Write the table, configs and histories to `path` as JSON.

        **Raises:** `resflow._errors.OutputError` (an `OSError`) naming `path` when it cannot
        be written (e.g. its folder does not exist).
        """
        configs = [dataclasses.asdict(r.config) for r in self.runs]
        write_json(path, {"rows": self.table(), "configs": configs, "histories": [r.history for r in self.runs]})


def table_row(run: Run) -> dict:
    """`SweepResult.table`'s row of one run of a sweep (from its provenance and metrics)."""
    m = run.metrics
    row = dict(run.provenance.get("options", {}), seed=run.provenance.get("seed"), depth=m["depth"])
    row |= {k: m[k] for k in ("train_accuracy", "test_accuracy", "test_loss", "nonfinite_epoch")}
    return row | {"time": m["wall_time"]}


def run_name(options: dict, seed: int) -> str:
    """A run's folder name in a sweep's ``runs`` folder: ``lr=0.01-w_std=2-s3`` (unsafe characters → ``_``)."""
    parts = [f"{k}={v}" for k, v in options.items()] + [f"s{seed}"]
    return re.sub(r"[^A-Za-z0-9._=+-]", "_", "-".join(parts))


SEED_LIMIT = 2**32
"""Seeds lie in [0, 2**32): ``jax.random.key`` keeps only a seed's low 32 bits, so 2**32 would
be seed 0 again and −1 seed 2**32 − 1."""

# Lower bounds of what one run holds, for `_check_size`: bytes of host memory per epoch of
# history (a dict of about ten numbers), and copies of the parameters on the device
# (parameters, gradients, at least one optimiser moment).
HISTORY_BYTES_PER_EPOCH = 500
PARAMETER_COPIES = 3


def _check_seeds(seeds) -> list[int]:
    """The seeds as a non-empty list of distinct ints in [0, 2**32), or a `TypeError`/`ValueError`
    naming `seeds`."""
    try:
        seeds = list(seeds)
    except TypeError:
        raise TypeError(f"seeds must be an iterable of integers, got {seeds!r}") from None
    if not seeds:
        raise ValueError("seeds must hold at least one integer, got none")
    bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, numbers.Integral)]
    if bad:
        raise TypeError(f"seeds must be integers, got {bad[0]!r}")
    seeds = [int(s) for s in seeds]
    outside = [s for s in seeds if not 0 <= s < SEED_LIMIT]
    if outside:
        raise ValueError(f"seeds must lie in [0, 2**32) (jax.random.key's range), got {outside[0]}")
    seen, repeated = set(), set()
    for s in seeds:
        (repeated if s in seen else seen).add(s)
    if repeated:
        raise ValueError(
            f"seeds must be distinct (a repeated seed is the same run again), got {sorted(repeated)} twice"
        )
    return seeds


def _run_bytes(config: TrainConfig, dim: int, n_classes: int) -> int:
    """A lower bound on one run's device memory: `PARAMETER_COPIES` copies of its parameters and
    one mini-batch's states through the trunk (kept for the backward pass; √depth with remat)."""
    width, use_lift = check_lift(config, dim)
    spec = config.trunk
    params = (width * width + width) * (1 if spec.shared else spec.depth) + width * n_classes + n_classes
    params += (dim * width + width) if use_lift else 0
    states = config.batch_size * width * (math.isqrt(spec.depth) + 1 if spec.remat else spec.depth)
    return (PARAMETER_COPIES * params + states) * jnp.dtype(config.dtype).itemsize


def _group_key(config: TrainConfig, dim: int, n_classes: int, n_train: int) -> tuple:
    """Runs with equal keys train as one compiled, vmapped program: the `Static` part, and the
    host loop's epochs, chunking and evaluation chunks."""
    return static_of(config, dim, n_classes, n_train), config.epochs, config.chunk_epochs, config.eval_chunk


def _check_size(
    dim: int, n_classes: int, n_train: int, configs: list[TrainConfig], num_seeds: int, devices: list
) -> None:
    """Refuse a sweep that cannot fit in memory, before anything is built.

    Every seed of a grid point (one of `configs`) is a run; the runs of one group (`_group_key`)
    train at once, split over the `devices`, and every run's history stays on the host. Lower
    bounds are compared with the memory there is: per device, the largest group's runs per
    device × `_run_bytes`; on the host, all runs' epochs × `HISTORY_BYTES_PER_EPOCH` (on a CPU
    the device memory is the host's, so both count against it).

    **Raises:** `ValueError` naming the number of runs, the memory they need at least and the
    memory there is.
    """
    groups: dict = {}
    for c in configs:
        groups.setdefault(_group_key(c, dim, n_classes, n_train), []).append(c)
    per_device = max(-(-num_seeds * len(g) // len(devices)) * _run_bytes(g[0], dim, n_classes) for g in groups.values())
    history = num_seeds * sum(c.epochs for c in configs) * HISTORY_BYTES_PER_EPOCH
    host_memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if devices[0].platform == "cpu":  # the devices' memory is the host's
        checks = [("host", per_device + history, host_memory)]
    else:
        device_memory = (devices[0].memory_stats() or {}).get("bytes_limit", host_memory)
        checks = [("device", per_device, device_memory), ("host", history, host_memory)]
    for where, need, have in checks:
        if need > have:
            raise ValueError(
                f"sweep: {num_seeds * len(configs)} runs ({num_seeds} seeds x {len(configs)} grid points) need at "
                f"least {need / 2**30:.3g} GiB of {where} memory, more than the {have / 2**30:.3g} GiB there is; "
                f"use fewer seeds or grid values, or split the sweep"
            )


def _expand(base: TrainConfig, grid) -> list[tuple[dict, TrainConfig]]:
    """(options, config) for each point of the grid's cartesian product, validated.

    **Raises:** `TypeError`/`ValueError` naming the grid entry at fault.
    """
    grid = {} if grid is None else grid
    if not isinstance(grid, dict):
        raise TypeError(f"grid must be a dict option name -> list of values, got {type(grid).__name__}")
    for name, values in grid.items():
        if name in ("seed", "seeds", "key"):
            raise ValueError(f"grid: {name!r} is not an option; pass seeds=...")
        try:
            base.replace(**{name: getattr(base, name, None)})
        except TypeError:
            raise TypeError(
                f"grid: unknown option {name!r}; options are the fields of TrunkSpec and TrainConfig"
            ) from None
        if isinstance(values, str) or not isinstance(values, list | tuple) or not values:
            raise ValueError(f"grid: {name!r} needs a non-empty list of values, got {values!r}")
    points = []
    for combo in itertools.product(*grid.values()):
        options = dict(zip(grid, combo, strict=True))
        try:
            config = base.replace(**options).validate()
        except (TypeError, ValueError) as e:
            raise type(e)(f"grid: {options}: {e}") from None
        points.append((options, config))
    return points


def sweep(
    data: Dataset,
    config: TrainConfig | None = None,
    *,
    seeds,
    grid: dict | None = None,
    progress: bool = False,
    devices=None,
    out_dir=None,
    runs_dir=None,
    resume: bool = False,
    data_source: dict | None = None,
    **overrides,
) -> SweepResult:
    """Train every (grid point, seed) run; runs of one compiled shape train as one program.

    **Arguments:**

    - `data`: a `resflow.training.Dataset`, as for `resflow.fit`.
    - `config`, `overrides`: the base options, as for `resflow.fit`.
    - `seeds`: distinct integers in [0, 2**32); run key = ``jax.random.key(seed)``.
    - `grid`: option name → list of values (e.g. ``{"lr": [1e-2, 3e-3], "depth": [5, 10]}``).
      Options of `resflow.training._config.Traced` are vmapped; others (width, depth, model, optimizer,
      batch_size, ...) make separate groups, each one compiled program.
    - `progress`: a tqdm bar counting epochs × runs.
    - `devices`: the jax devices to shard runs over (default ``jax.local_devices()``).
    - `out_dir`: folder for the groups' checkpoints (see the module's docstring) and, in
      ``out_dir/runs``, one run folder per run (`run_name`), as `resflow.fit` writes it
      without checkpoint and figures, so that `resflow.load_run` loads each; locked while the
      sweep runs.
    - `runs_dir`: where the run folders go instead of ``out_dir/runs`` (also without `out_dir`).
    - `data_source`: the `resflow.load_dataset` arguments of `data`, recorded in each run
      (as `resflow.fit`'s); default: read from ``data.meta``.
    - `resume`: reload the groups checkpointed in `out_dir` (finished ones are not trained
      again; unfinished ones continue from their last chunk; groups without one start).

    **Returns:** `SweepResult` (its runs in grid order, then seeds).

    **Raises:** `TypeError`/`ValueError` for bad data, a `config` that is not a `TrainConfig`,
    seeds (negative, ≥ 2**32 or repeated), grid names or values (naming them),
    ``data_parallel=True`` (a sweep shards runs, not batches), ``lift=False`` with a width
    other than the data's, or runs that cannot fit in the device or host memory (checked
    before anything is built); `ValueError` for `resume` without `out_dir`;
    `resflow.training.RunError` when another process writes to `out_dir`;
    `resflow._errors.CheckpointError` for a damaged group checkpoint; `KeyboardInterrupt`
    (`resflow.training._checkpoint.Interrupted` for SIGTERM) after the groups' last complete chunks are
    saved.
    """
    n_classes = check_data(data)
    base = TrainConfig.resolve(config, overrides)
    seeds = _check_seeds(seeds)
    points = _expand(base, grid)
    if any(c.data_parallel for _, c in points):
        raise ValueError("sweep: data_parallel must be False (a sweep shards its runs over the devices)")
    devices = list(jax.local_devices() if devices is None else devices)
    if not devices:
        raise ValueError("devices must hold at least one jax device")
    if resume and out_dir is None:
        raise ValueError("resume=True needs out_dir (where the groups' checkpoints are)")
    dim, n_train = data.x_train.shape[1], data.x_train.shape[0]
    _check_size(dim, n_classes, n_train, [c for _, c in points], len(seeds), devices)
    runs = [(options, seed, c) for options, c in points for seed in seeds]
    groups: dict = {}
    for i, (_, _, c) in enumerate(runs):
        groups.setdefault(_group_key(c, dim, n_classes, n_train), []).append(i)

    from tqdm.auto import tqdm

    total = sum(c.epochs for _, _, c in runs)
    folder = prepare_out_dir(out_dir) if out_dir is not None else None
    out: list = [None] * len(runs)
    if runs_dir is None and folder is not None:
        runs_dir = folder / "runs"
    with lock_folder(folder) if folder is not None else contextlib.nullcontext(), stop_on_signals():
        record = {"source": data_source or source_of(data), "fingerprint": data_fingerprint(data)}
        base = provenance(jax.random.key(seeds[0]))
        bar = tqdm(total=total, disable=not progress, desc="sweep", unit="epoch")
        for index in groups.values():
            group = [runs[i] for i in index]
            name = f"group-{group_hash(group, record['fingerprint']['sha256'])}.msgpack"
            store = None if folder is None else GroupStore(folder / name, resume)
            for i, result in zip(index, _run_group(data, n_classes, group, devices, bar, store), strict=True):
                options, seed, config = runs[i]
                out[i] = as_run(result, options, config, data, record, base)
                if runs_dir is not None:
                    out[i] = write_run(Path(runs_dir) / run_name(options, seed), out[i])
        bar.close()
    return SweepResult(tuple(out), tuple(seeds), {k: list(v) for k, v in (grid or {}).items()})


def as_run(result: tuple, options: dict, config: TrainConfig, data: Dataset, record: dict, base: dict) -> Run:
    """One run of a sweep as a `Run`: `_run_group`'s (row, history, network) with its grid
    `options`; the row's numbers become metrics, the seed and options provenance (`base` +
    the run's key)."""
    row, history, network = result
    metrics = {
        "data": {k: v for k, v in data.meta.items() if k not in ("mean", "std")},
        "test_accuracy": row["test_accuracy"],
        "test_loss": row["test_loss"],
        "train_accuracy": row["train_accuracy"],
        "initial_depth": config.trunk.depth,
        "depth": row["depth"],
        "depth_history": [r["depth"] for r in history] + [row["depth"]],
        "nonfinite_epoch": row["nonfinite_epoch"],
        "epochs": config.epochs,
        "wall_time": row["time"],
        "config": dataclasses.asdict(config),
    }
    seed = row["seed"]
    prov = base | {"key": key_record(jax.random.key(seed)), "seed": seed, "options": options}
    data_record = {"source": record["source"], "fingerprint": record["fingerprint"]}
    return Run(network, config, history, metrics, None, prov, preprocessing_of(data), data_record)


@functools.lru_cache(maxsize=32)
def _vmapped(static: Static, length: int):
    """The engine's init, chunk (of `length` epochs) and evaluate for `static`, vmapped over
    runs and jitted: ``init(traced, keys)``, ``chunk(traced, keys, loop, start, epochs, data)``,
    ``evaluate(networks, depths, chunks)``."""
    bind = functools.partial
    return (
        jax.jit(jax.vmap(bind(init, static))),
        jax.jit(jax.vmap(bind(chunk, static, length=length), in_axes=(0, 0, 0, None, None, None))),
        jax.jit(jax.vmap(bind(evaluate, static), in_axes=(0, 0, None))),
    )


def group_hash(runs: list, data_sha: str) -> str:
    """16 hex digits of the sha256 of a group's (options, seed, config) runs and the data's sha256."""
    blob = json.dumps(
        {"runs": [[options, seed, dataclasses.asdict(c)] for options, seed, c in runs], "data": data_sha},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class GroupStore(NamedTuple):
    """Where one group checkpoints (`path`), and whether to continue from what is there (`resume`)."""

    path: Path
    resume: bool

    def load(self, loop: Loop):
        """``(loop, meta)`` from the checkpoint (the arrays in `loop`'s structure), or None to start.

        **Raises:** `resflow._errors.CheckpointError` naming the file if it is damaged or does not fit.
        """
        if not (self.resume and self.path.is_file()):
            return None
        raw, meta = load_checkpoint(self.path)
        if not isinstance(meta, dict) or not {"epoch", "histories", "bad", "elapsed"} <= meta.keys():
            raise CheckpointError(f"{self.path}: incomplete metadata (not a sweep group's checkpoint?)")
        return fill_arrays(self.path, jax.device_get(loop), raw), meta

    def save(self, loop: Loop, epoch: int, histories: list, bad: list, elapsed: float) -> None:
        """Write the group's state after `epoch` epochs (atomic). **Raises:** `OutputError`."""
        meta = {"epoch": epoch, "histories": histories, "bad": bad, "elapsed": elapsed}
        save_checkpoint(self.path, jax.device_get(loop), meta)


def _run_group(data: Dataset, n_classes: int, runs: list, devices: list, bar, store: GroupStore | None = None) -> list:
    """(row, history, network) of each run of one group, trained as one sharded program;
    with `store`, checkpointed (and resumed) as the module's docstring says."""
    t0 = time.perf_counter()
    first = runs[0][2]
    padded = -(-len(runs) // len(devices)) * len(devices)
    # The last run repeated fills the device slots; its copies are dropped at the end.
    configs = [c for _, _, c in runs] + [runs[-1][2]] * (padded - len(runs))
    seeds = [s for _, s, _ in runs] + [runs[-1][1]] * (padded - len(runs))
    run = setup_run(data, first, n_classes, runs=padded // len(devices))
    mesh = Mesh(np.array(devices), ("runs",))
    split, replicated = NamedSharding(mesh, P("runs")), NamedSharding(mesh, P())
    arrays = jax.device_put(run.data, replicated)
    traced = jax.device_put(traced_of(configs, jnp.dtype(first.dtype)), split)
    keys = jax.device_put(jnp.stack([jax.random.key(s) for s in seeds]), split)
    init_runs, chunk_runs, evaluate_runs = _vmapped(run.static, run.length)
    params, opt_state, shuffle = init_runs(traced, keys)
    loop = jax.vmap(lambda p, o: start_loop(run.static, p, o, first.trunk.depth))(params, opt_state)
    histories, bad, done, before = [[] for _ in runs], [None] * len(runs), 0, 0.0
    restored = None if store is None else store.load(loop)
    if restored is not None:
        loop, meta = restored
        histories, bad, done, before = meta["histories"], meta["bad"], int(meta["epoch"]), float(meta["elapsed"])
        bar.update(done * len(runs))
    loop = jax.device_put(loop, split)
    saved, saved_at = done, time.monotonic()
    try:
        for start in range(done, first.epochs, run.length):
            with deferred_signals():  # a Ctrl-C / SIGTERM during the chunk stops after it is recorded
                after, rec = chunk_runs(
                    traced, shuffle, loop, jnp.asarray(start, jnp.int32), jnp.asarray(first.epochs, jnp.int32), arrays
                )
                rec = jax.device_get(rec)
                count = min(run.length, first.epochs - start)
                added, flagged = [[] for _ in runs], list(bad)
                for i in range(len(runs)):
                    if bad[i] is None:
                        records, _, flagged[i] = epoch_records(
                            jax.tree.map(lambda a, i=i: a[i], rec), start, count, first.depth_adapt
                        )
                        added[i] = records[:-1] if flagged[i] else records
                # All or nothing, so that a save in `except` below sees a consistent state.
                loop, bad, done = after, flagged, start + count
                for history, new in zip(histories, added, strict=True):
                    history += new
                bar.update(count * len(runs))
                every, late = first.checkpoint_every, time.monotonic() - saved_at >= first.checkpoint_seconds
                if store is not None and (done // every > start // every or done == first.epochs or late):
                    store.save(loop, done, histories, bad, before + time.perf_counter() - t0)
                    saved, saved_at = done, time.monotonic()
    except BaseException:
        if store is not None and done > saved:
            store.save(loop, done, histories, bad, before + time.perf_counter() - t0)
        raise
    test = jax.device_get(evaluate_runs(loop.params, loop.depth, arrays.test))
    train = jax.device_get(evaluate_runs(loop.params, loop.depth, arrays.train))
    params, depths = jax.device_get((loop.params, loop.depth))
    seconds = (before + time.perf_counter() - t0) / len(runs)
    results = []
    for i, (options, seed, _) in enumerate(runs):
        network: Network = final_network(jax.tree.map(lambda a, i=i: a[i], params), int(depths[i]))
        row = dict(options, seed=seed, depth=int(depths[i]), train_accuracy=float(train[1][i]))
        row |= {"test_accuracy": float(test[1][i]), "test_loss": float(test[0][i]), "nonfinite_epoch": bad[i]}
        results.append((row | {"time": seconds}, histories[i], network))
    return results
