"""Training: the host loop around the training engine, with depth adaptation and checkpoints.

    fit(data: Dataset, config: TrainConfig | None = None, *, key, out_dir=None, resume=False,
        progress=False, callback=None, figures=True, **overrides) -> Run

The result is a `resflow.Run` (network, config, history, metrics, path, provenance, ...):
``run.network`` is the trained `resflow.Network` (a pure function of x: jit / vmap / grad it;
`resflow.predict` / `evaluate` / `accuracy` take it or the run), ``run.trunk`` its `Trunk`
pruned to the final depth ``run.depth``. Options are the fields of `TrunkSpec` and
`TrainConfig`, given as a config or as keyword overrides, e.g.
``fit(load_dataset("digits"), model="mlp", depth=3, epochs=40, key=jax.random.key(0))``.

`fit` is a short host loop around the pure functions of `resflow.training._engine` (shared
with `resflow.sweep`, which vmaps them): the parameters are the `resflow.Network` itself, with
the trunk's ``h`` a fixed leaf. `init_state` (or `restore_state`), then `train_chunk` until done, each
followed by `log_and_checkpoint`, and `finish`. A chunk of ``chunk_epochs`` epochs (0: about
a second of work, from a FLOP count) is one jitted call scanning epochs with `jax.lax.scan`:
the shuffled mini-batches (from ``fold_in(key, epoch)``), the test metrics, and with depth
adaptation the residual statistics, the depth policy and drift folding, all on the device.
The trunk is scanned over the initial depth with a *traced* ``active_depth`` (layers
t >= active_depth are the identity), so a cut needs no new program; a run whose epoch is long
(`Setup.respan`) is rebuilt for its new depth after a cut instead, so that the cut layers cost
nothing (same values). At the end the network is pruned (untied weights: sliced) to the final
depth. The host sees chunk ends only: progress bar, metrics.jsonl, checkpoint, callback.

With ``out_dir`` the run writes ``data.json`` (the data's source and fingerprint),
``metrics.jsonl`` (one line per epoch), ``checkpoint.msgpack`` (the network's leaves, as in
``network.eqx``, the optimiser state, epoch, depth, RNG key, config, histories; atomic,
checksummed, every ``checkpoint_every``
epochs or ``checkpoint_seconds`` of wall time, whichever comes first, at a chunk end, and
when the run is stopped by an exception, Ctrl-C or SIGTERM), then ``metrics.json``, the saved
network (``network.eqx``, ``run.json``; see `resflow.training._runs`) and figures; ``resume=True``
continues from the checkpoint and ends bit-identical to an uninterrupted run. The folder is
locked for the run's life (`resflow.training._files.lock_folder`): a second writer is refused.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from .._errors import InputError
from ..trunk._network import Network
from ._checkpoint import (
    CheckpointError,
    OutputError,
    deferred_signals,
    fill_arrays,
    load_checkpoint,
    prepare_out_dir,
    save_checkpoint,
    stop_on_signals,
)
from ._config import TrainConfig
from ._dataset import Dataset
from ._engine import final_network, start_loop
from ._files import lock_folder, write_json
from ._predict import evaluate
from ._record import run_record, start_run
from ._runs import Run, preprocessing_of, save_run
from ._setup import Setup, check_data, check_key, check_lift, epoch_records, setup_run

__all__ = ["fit", "NonFiniteLossError"]

CHECKPOINT = "checkpoint.msgpack"


class NonFiniteLossError(FloatingPointError, InputError):
    """A training or test loss that is NaN or infinite; the message names the epoch.

    Also an `InputError` (a `ValueError`), so command lines report it like any bad input (exit 2).
    """


class RunState(NamedTuple):
    """Everything a checkpoint restores: after `epoch` epochs, at depth `depth`."""

    params: Network
    opt_state: optax.OptState
    key: jax.Array
    epoch: int
    depth: int
    history: list
    cuts: list
    elapsed: float


def init_state(run: Setup, key: jax.Array) -> RunState:
    """A fresh network and optimiser state; `key` splits into the init and shuffling keys."""
    network, opt_state, k_shuffle = run.jit.init(run.traced, key)
    return RunState(network, opt_state, k_shuffle, 0, run.config.trunk.depth, [], [], 0.0)


def restore_state(state: RunState, out: Path | None, config: TrainConfig) -> RunState:
    """`state` (the structure) filled from ``out/checkpoint.msgpack``.

    **Raises:** `ValueError` without `out`, when `config` differs from the checkpoint's in
    anything but `epochs` (and in `epochs` under a decaying schedule, whose horizon is fixed
    by the saved epochs), or when `epochs` is below the epochs already trained (metrics.json
    would then disagree with the history); `FileNotFoundError` without a checkpoint;
    `CheckpointError` (naming the file) for a corrupted, altered or foreign checkpoint.
    """
    if out is None:
        raise ValueError("resume=True needs out_dir (where the checkpoint is)")
    path = out / CHECKPOINT
    raw, meta = load_checkpoint(path)
    try:
        saved = TrainConfig.from_dict(meta["config"])
        rest = (int(meta["epoch"]), int(meta["depth"]), meta["history"], meta["cuts"], meta["elapsed"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: incomplete metadata ({type(e).__name__}: {e})") from e
    _check_resume(config, saved, rest[0])
    target = {"params": state.params, "opt_state": state.opt_state, "key": jax.random.key_data(state.key)}
    arrays = fill_arrays(path, target, raw)
    key = jax.random.wrap_key_data(jnp.asarray(arrays["key"]))
    return RunState(arrays["params"], arrays["opt_state"], key, *rest)


def _check_resume(config: TrainConfig, saved: TrainConfig, epoch: int) -> None:
    """Refuse a resume whose options would not continue the saved run (see `restore_state`)."""
    # None of these changes what an epoch computes.
    free = ("epochs", "chunk_epochs", "checkpoint_every", "checkpoint_seconds")
    if dataclasses.replace(saved, **{k: getattr(config, k) for k in free}) != config:
        new, old = _flat(config), _flat(saved)
        diff = {k: (v, new.get(k)) for k, v in old.items() if k not in free and new.get(k) != v}
        raise ValueError(
            f"resume: options differ from the checkpoint's (saved, given): {diff}; only epochs may change "
            "(and chunk_epochs, checkpoint_every, checkpoint_seconds)"
        )
    if config.epochs != saved.epochs and config.schedule != "constant":
        # A new horizon would bend the lr curve mid-run: the result would match no uninterrupted run.
        raise ValueError(
            f"resume: epochs may change only with schedule='constant'; schedule={config.schedule!r} "
            f"decays over the saved epochs={saved.epochs}, got epochs={config.epochs}"
        )
    if config.epochs < epoch:
        # Training cannot be undone: fewer epochs would leave a history longer than `epochs`.
        raise ValueError(
            f"resume: the checkpoint has already trained {epoch} epochs; epochs must be >= {epoch}, got {config.epochs}"
        )


def _flat(config: TrainConfig) -> dict:
    d = dataclasses.asdict(config)
    return {**d.pop("trunk"), **d}


def train_chunk(run: Setup, state: RunState, t0: float) -> tuple[RunState, list, int | None]:
    """One compiled chunk of epochs from `state` (at most up to ``config.epochs``).

    Each record's ``time`` is the run's wall time, spread evenly over the chunk's epochs.

    **Returns:** ``(state, records, bad)`` as `epoch_records`; `state` is the last good one.
    """
    config = run.config
    loop = start_loop(run.static, state.params, state.opt_state, state.depth, [r["loss"] for r in state.history])
    epochs = jnp.asarray(config.epochs, jnp.int32)
    loop, rec = run.chunk_at(state.depth)(
        run.traced, state.key, loop, jnp.asarray(state.epoch, jnp.int32), epochs, run.data, length=run.length
    )
    count = min(run.length, config.epochs - state.epoch)
    records, cuts, bad = epoch_records(jax.device_get(rec), state.epoch, count, config.depth_adapt)
    now = time.perf_counter() - t0
    good = records[:-1] if bad else records
    for i, record in enumerate(good):
        record["time"] = state.elapsed + (now - state.elapsed) * (i + 1) / count
    if not good:  # the first epoch was already bad: the state stays as it came in
        return state, records, bad
    state = state._replace(
        params=loop.params,
        opt_state=loop.opt_state,
        epoch=state.epoch + len(good),
        depth=int(loop.depth),
        history=state.history + good,
        cuts=state.cuts + cuts,
        elapsed=good[-1]["time"],
    )
    return state, records, bad


def log_and_checkpoint(
    out: Path | None, config: TrainConfig, state: RunState, start: int, last_saved: float | None = None
) -> bool:
    """Append the epochs after `start` to metrics.jsonl; save the checkpoint when a multiple of
    ``checkpoint_every`` (or the last epoch) was passed, or when ``checkpoint_seconds`` have gone
    by since `last_saved` (a `time.monotonic` reading; None: no time rule): checkpoints fall on
    chunk ends.

    **Returns:** whether a checkpoint was saved.

    **Raises:** `OutputError` naming the file that could not be written (the checkpoint
    written before it stays intact).
    """
    if out is None:
        return False
    try:
        with open(out / "metrics.jsonl", "a") as f:
            f.writelines(json.dumps(r) + "\n" for r in state.history[start:])
    except OSError as e:
        raise OutputError(f"cannot write {out / 'metrics.jsonl'}: {e.strerror or e}") from e
    every = config.checkpoint_every
    late = last_saved is not None and time.monotonic() - last_saved >= config.checkpoint_seconds
    if state.epoch // every > start // every or state.epoch == config.epochs or late:
        save_state(out, config, state)
        return True
    return False


def save_state(out: Path, config: TrainConfig, state: RunState) -> None:
    """Write `state` to ``out/checkpoint.msgpack`` (atomic). **Raises:** `OutputError`."""
    meta = {"epoch": state.epoch, "depth": state.depth, "config": dataclasses.asdict(config)}
    meta |= {"history": state.history, "cuts": state.cuts, "elapsed": state.elapsed}
    arrays = {"params": state.params, "opt_state": state.opt_state, "key": jax.random.key_data(state.key)}
    save_checkpoint(out / CHECKPOINT, arrays, meta)


def start_log(out: Path, state: RunState) -> None:
    """Rewrite metrics.jsonl from the (restored) history. **Raises:** `OutputError`."""
    # A run killed after logging an epoch but before checkpointing it must not log that epoch twice.
    try:
        (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in state.history))
    except OSError as e:
        raise OutputError(f"cannot write {out / 'metrics.jsonl'}: {e.strerror or e}") from e


def run_epochs(run: Setup, state: RunState, out: Path | None, t0: float, bar, callback) -> RunState:
    """Train from `state` to ``run.config.epochs`` in compiled chunks; after each: progress,
    log, checkpoint (by epochs or wall time), then ``callback(epoch, record)`` for each of its epochs.

    A run stopped by an exception (a non-finite loss, Ctrl-C, SIGTERM under `stop_on_signals`,
    a raising `callback`) first saves its last complete chunk (the last good epoch after a
    non-finite loss), so ``resume=True`` loses nothing; a failed write (`OutputError`) is not
    retried.

    **Raises:** `NonFiniteLossError` naming the first epoch whose loss was not finite.
    """
    config, saved, saved_at = run.config, state.epoch, time.monotonic()
    try:
        while state.epoch < config.epochs:
            start = state.epoch
            with deferred_signals():  # a Ctrl-C / SIGTERM during the chunk stops the run after it is logged
                state, records, bad = train_chunk(run, state, t0)
                bar.update(state.epoch - start)
                if state.history:
                    last = state.history[-1]
                    bar.set_postfix(loss=f"{last['loss']:.4f}", test=f"{last['test_accuracy']:.3f}", depth=state.depth)
                if log_and_checkpoint(out, config, state, start, saved_at):
                    saved, saved_at = state.epoch, time.monotonic()
            if bad is not None:
                raise NonFiniteLossError(
                    f"epoch {bad}: training loss {records[-1]['loss']}, test loss {records[-1]['test_loss']}; "
                    f"stopped (the state after epoch {bad - 1} is kept; try a smaller lr or clip_norm)"
                )
            for record in state.history[start:]:
                if callback is not None:
                    callback(record["epoch"], record)
    except BaseException as e:
        if out is not None and state.epoch > saved and not isinstance(e, OutputError):
            # Best effort: a failing save must not hide the error that stopped the run.
            with contextlib.suppress(OutputError):
                save_state(out, config, state)
        raise
    return state


def finish(run: Setup, state: RunState, data: Dataset, wall_time: float) -> Run:
    """The finished run: the pruned `Network`, the history and the final metrics (no record yet)."""
    config, spec = run.config, run.config.trunk
    full_acc = float(run.jit.evaluate(state.params, jnp.asarray(spec.depth, jnp.int32), run.data.test)[1])
    network = final_network(state.params, state.depth)
    test = evaluate(network, data.x_test, data.y_test)
    cuts = state.cuts
    metrics = {
        "data": {k: v for k, v in data.meta.items() if k not in ("mean", "std")},
        "test_accuracy": test["accuracy"],
        "test_loss": test["loss"],
        "train_accuracy": evaluate(network, data.x_train, data.y_train)["accuracy"],
        "initial_depth": spec.depth,
        "depth": state.depth,
        # Test accuracy just before the first cut (no cut: the final accuracy).
        "accuracy_before_pruning": cuts[0]["test_accuracy_before"] if cuts else test["accuracy"],
        "accuracy_after_pruning": test["accuracy"],
        # The final weights (trained at the reduced depth, drift folded) run at the initial depth.
        "accuracy_final_params_at_max_depth": full_acc,
        "cuts": cuts,
        "depth_history": [r["depth"] for r in state.history] + [state.depth],
        "epochs": config.epochs,
        "wall_time": wall_time,
        "config": dataclasses.asdict(config),
    }
    return Run(network, config, state.history, metrics, preprocessing=preprocessing_of(data))


def _write_outputs(out: Path, result: Run, data: Dataset, figures: bool) -> None:
    """metrics.json, the saved run (network.eqx, run.json; see `resflow.training._runs`) and the figures.

    A write error names the file; what was written before it (the checkpoint, metrics.jsonl,
    the files before the failing one) stays.
    """
    try:
        _write_files(out, result, data, figures)
    except OSError as e:
        if isinstance(e, OutputError):
            raise
        raise OutputError(f"cannot write {e.filename or out}: {e.strerror or e}") from e


def _write_files(out: Path, result: Run, data: Dataset, figures: bool) -> None:
    write_json(out / "metrics.json", result.metrics)
    save_run(out, result)
    if figures:
        from ..plots.training import plot_depth_history, plot_residuals_by_class, plot_training_curves

        plot_training_curves(result.history, save=out / "training_curves.png")
        config = result.config
        warmup = config.depth_warmup if config.depth_adapt else None
        plot_depth_history(
            result.history,
            max_depth=config.trunk.depth,
            tol=config.depth_tol,
            warmup=warmup,
            save=out / "depth_history.png",
        )
        plot_residuals_by_class(result.network, data.x_test, data.y_test, save=out / "residuals_by_class.png")


def _data_record(record: dict) -> dict:
    return {"source": record["source"], "fingerprint": record["fingerprint"]}


def fit(
    data: Dataset,
    config: TrainConfig | None = None,
    *,
    key: jax.Array,
    out_dir=None,
    resume: bool = False,
    progress: bool = False,
    callback: Callable[[int, dict], None] | None = None,
    figures: bool = True,
    data_source: dict | None = None,
    provenance: dict | None = None,
    **overrides,
) -> Run:
    """Train a classifier on `data`, optionally adapting its depth.

    **Arguments:**

    - `data`: a `resflow.training.Dataset` (standardised inputs, integer labels).
    - `config`: a `TrainConfig` (defaults: ResNet, width = data dim, 15 shared sigmoid
      layers, h = 1, Adam 3e-3, 40 epochs of batch 64, no depth adaptation).
    - `key`: a `jax.random` key; it alone fixes init and shuffling (same key, same result).
    - `out_dir`: folder for metrics.jsonl, metrics.json, checkpoint.msgpack, figures and the
      saved run (data.json at the start; network.eqx and run.json at the end, loaded by
      `resflow.load_run`).
    - `resume`: continue from ``out_dir/checkpoint.msgpack``; the options must equal the
      checkpoint's, except `epochs`, which may change only under ``schedule="constant"``, and
      the chunking and checkpoint intervals, and the data's fingerprint must equal the one in
      ``out_dir/data.json``.
    - `progress`: show a tqdm bar with loss / accuracy / depth.
    - `callback`: called as ``callback(epoch, record)`` for each epoch once its compiled
      chunk has been logged and checkpointed (raise in it to stop the run at that chunk's
      end; ``chunk_epochs=1`` stops at the epoch itself).
    - `figures`: with `out_dir`, save training-curve, depth-history and residual figures.
    - `data_source`: the `resflow.load_dataset` arguments of `data` (``name``, ``seed``,
      ``path``, ``standardize``, ``options``), recorded so that `resflow.load_run(...).load_data()`
      reloads it; default: read from ``data.meta`` (`resflow.training._record.data_source`).
    - `provenance`: extra JSON-able entries for run.json's provenance (e.g. ``{"seed": 0}``).
    - `overrides`: fields of `TrunkSpec` or `TrainConfig`, e.g. ``depth=5, model="mlp", epochs=3``.

    **Returns:** the `resflow.Run` (its network pruned to the final depth; ``path`` is
    `out_dir` or None; its provenance and data record are those run.json holds).

    **Raises:** `TypeError` for a `key` that is not a `jax.random` key, a `config` that is not
    a `TrainConfig` (a dict of options goes in as keywords) or an unknown option;
    `TypeError`/`ValueError` for bad data or options (`InputError` for ``lift=False`` with a
    width other than the data's, before the output folder is made); `resflow.training.RunError` (a `ValueError`)
    when resuming on other data than the run's; `FileNotFoundError` when resuming without a
    checkpoint; `CheckpointError` for a damaged or foreign checkpoint; `NonFiniteLossError`
    when the loss stops being finite (the last good epoch is checkpointed first);
    `OutputError` naming the path when the output folder or a file in it cannot be written;
    `resflow.training.RunError` when another process is writing to `out_dir` (its lock is held).
    `KeyboardInterrupt` on Ctrl-C and `resflow.training._checkpoint.Interrupted` (a `KeyboardInterrupt`)
    on SIGTERM (`resflow.training._checkpoint.stop_on_signals`), raised once the chunk in progress has
    finished and been checkpointed.
    """
    key = check_key(key)
    n_classes = check_data(data)
    config = TrainConfig.resolve(config, overrides)
    check_lift(config, data.x_train.shape[1])  # before the output folder is made
    out = prepare_out_dir(out_dir) if out_dir is not None else None
    with lock_folder(out) if out is not None else contextlib.nullcontext(), stop_on_signals():
        run = setup_run(data, config, n_classes)
        state = init_state(run, key)
        saved = None if out is None else start_run(out, data, key, resume=resume, source=data_source, extra=provenance)
        if resume:
            state = restore_state(state, out, config)
        if out is not None:
            start_log(out, state)

        from tqdm.auto import tqdm

        bar = tqdm(total=config.epochs, initial=state.epoch, disable=not progress, desc="train", unit="epoch")
        t0 = time.perf_counter() - state.elapsed
        state = run_epochs(run, state, out, t0, bar, callback)
        bar.close()
        result = finish(run, state, data, time.perf_counter() - t0)
        record = saved or run_record(data, key, source=data_source, extra=provenance)
        result = result.replace(path=out, provenance=record["provenance"], data=_data_record(record))
        if out is not None:
            _write_outputs(out, result, data, figures)
    return result
