"""Training: an optax loop around the flax `Classifier`, with depth adaptation.

    fit(data: Dataset, config: TrainConfig | None = None, *, key, out_dir=None, resume=False,
        progress=False, callback=None, figures=True, **overrides) -> TrainResult
    predict(result, x) -> logits            accuracy(result, x, y) -> float
    evaluate(result, x, y) -> {"loss", "accuracy"}

``TrainResult(network, config, history, metrics)``: ``result.network`` is the trained
`resflow.Network` (a pure function of x: jit / vmap / grad it), ``result.trunk`` its `Trunk`
pruned to the final depth ``result.depth``. Options are the fields of `TrunkSpec` and
`TrainConfig`, given as a config or as keyword overrides, e.g.
``fit(load_dataset("digits"), model="mlp", depth=3, epochs=40, key=jax.random.key(0))``.

`fit` is a loop over small steps: `init_state` (or `restore_state`), `train_epoch`,
`adapt_depth` (whose decision is the pure `depth_policy`), `log_and_checkpoint` and
`finish`. One epoch is one jitted call: the shuffled mini-batches (from
``fold_in(key, epoch)``) are stepped with `jax.lax.scan`. The trunk is always scanned over
the initial depth with a *traced* ``active_depth`` (layers t >= active_depth are the
identity), so a cut never recompiles; removed layers cost their compute until the end, when
the network is pruned (untied weights: sliced) to the final depth.

With ``out_dir`` the run writes ``data.json`` (the data's source and fingerprint),
``metrics.jsonl`` (one line per epoch), ``checkpoint.msgpack`` (params, optimiser state,
epoch, depth, RNG key, config, histories; atomic, checksummed, every ``checkpoint_every``
epochs), then ``metrics.json``, the saved network (``network.eqx``, ``run.json``; see
`resflow.runs`) and figures; ``resume=True`` continues from the checkpoint and ends
bit-identical to an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import serialization
from jaxtyping import Array, Float, Int

from ._checks import all_true, as_float_array, check_finite, check_labels, is_concrete
from .checkpoint import CheckpointError, OutputError, load_checkpoint, prepare_out_dir, save_checkpoint
from .data import Dataset
from .depth import depth_rule, fold_drift
from .layers import Classifier
from .model import Trunk
from .network import Network, from_flax
from .runs import save_run, start_run, write_json
from .spec import TrainConfig
from .steps import Steps, chunks, compile_key, make_steps, xent

__all__ = [
    "TrainResult",
    "fit",
    "predict",
    "accuracy",
    "evaluate",
    "depth_policy",
    "NonFiniteLossError",
]

CHECKPOINT = "checkpoint.msgpack"


class NonFiniteLossError(FloatingPointError, ValueError):
    """A training or test loss that is NaN or infinite; the message names the epoch.

    Also a `ValueError`, so command lines report it like any bad input (exit 2).
    """


class TrainResult(NamedTuple):
    """A trained classifier at its final depth.

    - `network`: the `resflow.Network` (lift, trunk pruned to the final depth, readout).
    - `config`: the `TrainConfig` used.
    - `history`: one dict per epoch (loss, accuracies, depth, residual change, time).
    - `metrics`: the final metrics (also written to metrics.json).
    """

    network: Network
    config: TrainConfig
    history: list
    metrics: dict

    @property
    def trunk(self) -> Trunk:
        """The trained `Trunk` at the final depth (= ``network.trunk``)."""
        return self.network.trunk

    @property
    def depth(self) -> int:
        """The final depth."""
        return self.network.depth


class RunState(NamedTuple):
    """Everything a checkpoint restores: after `epoch` epochs, at depth `depth`."""

    params: dict
    opt_state: optax.OptState
    key: jax.Array
    epoch: int
    depth: int
    history: list
    cuts: list
    elapsed: float


class Setup(NamedTuple):
    """What stays fixed during a run: the options, the module, its compiled steps, the data."""

    config: TrainConfig
    module: Classifier
    steps: Steps
    x_train: jax.Array
    y_train: jax.Array
    x_test: jax.Array
    y_test: jax.Array


def build_classifier(config: TrainConfig, dim: int, n_classes: int) -> Classifier:
    """The `Classifier` of `config` for `dim`-dimensional data (width None → dim)."""
    width = config.trunk.width or dim
    use_lift = config.lift if config.lift is not None else dim != width
    if not use_lift and dim != width:
        raise ValueError(f"lift=False needs width == data dimension {dim}, got width {width}")
    spec = dataclasses.replace(config.trunk, width=width)
    return Classifier(n_classes=n_classes, spec=spec, use_lift=use_lift, param_dtype=jnp.dtype(config.dtype))


def evaluate_params(run: Setup, params: dict, x, y, depth: int) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of `params` run for `depth` layers on (x, y), chunked."""
    loss = correct = 0.0
    for xc, yc, w in chunks(x, run.config.eval_chunk, y):
        lsum, csum = run.steps.eval(params, xc, yc, w, jnp.asarray(depth, jnp.int32))
        loss, correct = loss + float(lsum), correct + float(csum)
    return loss / x.shape[0], correct / x.shape[0]


def depth_statistics(run: Setup, params: dict, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """On the training data: the per-layer residual changes d_k, ``(T_max − 1,)``, and the
    mean states x̄_t, ``(T_max + 1, n)`` (float64 host arrays)."""
    changes = states = 0.0
    for xc, w in chunks(run.x_train, run.config.eval_chunk):
        c, s = run.steps.stats(params, xc, w, jnp.asarray(depth, jnp.int32))
        changes, states = changes + np.asarray(c, np.float64), states + np.asarray(s, np.float64)
    n = run.x_train.shape[0]
    return changes / n, states / n


def _plateaued(losses: Sequence[float], patience: int) -> bool:
    if patience == 0:
        return True
    if len(losses) <= patience:
        return False
    return min(losses[-patience:]) > 0.99 * min(losses[:-patience])


def depth_policy(losses: Sequence[float], changes, depth: int, config: TrainConfig) -> int:
    """The depth after an epoch: pure, host-only.

    With `losses` the training loss of every epoch so far (the last one just trained) and
    d_k = ``changes[k-1]`` the residual changes of the current parameters: no cut without
    ``config.depth_adapt``, at depth 1, during the first ``depth_warmup`` epochs, or (with
    ``depth_plateau`` = p > 0) while min(last p losses) ≤ 0.99 · min(earlier losses);
    otherwise `resflow.depth_rule` (d_{T−1} < depth_tol, down to ``min_depth``; with
    ``multi_cut`` several layers at once).

    **Returns:** the new depth (≤ `depth`).
    """
    if not config.depth_adapt or depth <= 1 or len(losses) <= config.depth_warmup:
        return depth
    if not _plateaued(losses, config.depth_plateau):
        return depth
    return depth_rule(changes, depth, tol=config.depth_tol, min_depth=config.min_depth, multi=config.multi_cut)


def _check_key(key) -> jax.Array:
    """A typed `jax.random` key (a legacy uint32 ``(2,)`` key is wrapped), or a `TypeError`."""
    if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key) and key.shape == ():
        return key
    if isinstance(key, jax.Array | np.ndarray) and key.dtype == np.uint32 and key.shape == (2,):
        return jax.random.wrap_key_data(jnp.asarray(key))
    raise TypeError(f"key must be a jax.random key, e.g. key=jax.random.key(0), got {key!r}")


def _check_data(data) -> int:
    """Validate a `Dataset`: float inputs, integer labels, classes.

    **Returns:** the number of classes.

    **Raises:** `TypeError` for another type or non-float inputs / non-integer labels;
    `ValueError` for shapes, non-finite inputs or labels out of range.
    """
    if not isinstance(data, Dataset):
        raise TypeError(f"data must be a resflow.data.Dataset, got {type(data).__name__}")
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


def setup_run(data: Dataset, config: TrainConfig, n_classes: int) -> Setup:
    """The module, its compiled steps and the data as device arrays of the config's dtype.

    **Raises:** `ValueError` when the data overflow the config's dtype (before any epoch).
    """
    dtype = jnp.dtype(config.dtype)
    module = build_classifier(config, data.x_train.shape[1], n_classes)
    steps_per_epoch = -(-data.x_train.shape[0] // config.batch_size)
    steps = make_steps(module, compile_key(config), steps_per_epoch)
    arrays = (_as_dtype("x_train", data.x_train, dtype), jnp.asarray(data.y_train, jnp.int32))
    arrays += (_as_dtype("x_test", data.x_test, dtype), jnp.asarray(data.y_test, jnp.int32))
    return Setup(config, module, steps, *arrays)


def _as_dtype(name: str, x, dtype) -> jax.Array:
    """`x` on the device in `dtype`; a `ValueError` if the cast overflows (finite data, inf after)."""
    with np.errstate(over="ignore"):  # an overflow is reported just below, with the data's name
        a = jnp.asarray(x, dtype)
    if not bool(jnp.isfinite(a).all()):
        big = float(np.max(np.abs(np.asarray(x, np.float64))))
        raise ValueError(
            f"data.{name} overflows dtype {dtype} (largest |x| = {big:.3g}); standardise it or use float64"
        )
    return a


def init_state(run: Setup, key: jax.Array) -> RunState:
    """Fresh parameters and optimiser state; `key` splits into the init and shuffling keys."""
    k_init, k_shuffle = jax.random.split(key)
    params = run.module.init(k_init, run.x_train[:1])["params"]
    return RunState(params, run.steps.tx.init(params), k_shuffle, 0, run.config.trunk.depth, [], [], 0.0)


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
    arrays = _fill(path, target, raw)
    key = jax.random.wrap_key_data(jnp.asarray(arrays["key"]))
    return RunState(arrays["params"], arrays["opt_state"], key, *rest)


def _fill(path: Path, target, raw):
    """`target`'s leaves replaced by the saved arrays; a `CheckpointError` if any shape or dtype differs."""
    try:
        arrays = serialization.from_state_dict(target, raw)
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: arrays do not fit this run ({e})") from e
    for (where, want), got in zip(jax.tree_util.tree_leaves_with_path(target), jax.tree.leaves(arrays), strict=True):
        if np.shape(got) != np.shape(want) or np.asarray(got).dtype != np.asarray(want).dtype:
            name = jax.tree_util.keystr(where)
            raise CheckpointError(
                f"{path}: array {name} is {np.asarray(got).dtype}{list(np.shape(got))}, this run needs "
                f"{np.asarray(want).dtype}{list(np.shape(want))} (another data set or model?)"
            )
    return arrays


def _check_resume(config: TrainConfig, saved: TrainConfig, epoch: int) -> None:
    """Refuse a resume whose options would not continue the saved run (see `restore_state`)."""
    if dataclasses.replace(saved, epochs=config.epochs) != config:
        new, old = _flat(config), _flat(saved)
        diff = {k: (v, new[k]) for k, v in old.items() if k != "epochs" and new[k] != v}
        raise ValueError(f"resume: options differ from the checkpoint's (saved, given): {diff}; only epochs may change")
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


def train_epoch(run: Setup, state: RunState) -> tuple[RunState, dict]:
    """One epoch of mini-batch steps at the current depth, then the test metrics.

    **Raises:** `NonFiniteLossError` (naming the epoch) when the training or test loss is not
    finite; `state` is then left as it was, so nothing of the diverged epoch is kept.
    """
    k = jax.random.fold_in(state.key, state.epoch)
    ad = jnp.asarray(state.depth, jnp.int32)
    params, opt_state, loss, acc = run.steps.epoch(state.params, state.opt_state, k, ad, run.x_train, run.y_train)
    test_loss, test_acc = evaluate_params(run, params, run.x_test, run.y_test, state.depth)
    record = {"epoch": state.epoch + 1, "loss": float(loss), "train_accuracy": float(acc)}
    record |= {"test_loss": test_loss, "test_accuracy": test_acc, "depth": state.depth}
    if not (math.isfinite(record["loss"]) and math.isfinite(test_loss)):
        raise NonFiniteLossError(
            f"epoch {state.epoch + 1}: training loss {record['loss']}, test loss {test_loss}; stopped "
            f"(the state after epoch {state.epoch} is kept; try a smaller lr or clip_norm)"
        )
    return state._replace(params=params, opt_state=opt_state, epoch=state.epoch + 1), record


def adapt_depth(run: Setup, state: RunState, record: dict) -> tuple[RunState, dict]:
    """Apply `depth_policy` after an epoch; a cut (optionally drift-folded) is logged in `cuts`."""
    config, depth = run.config, state.depth
    if not config.depth_adapt or depth <= 1:
        return state, record
    changes, states = depth_statistics(run, state.params, depth)
    record = dict(record, residual_change=float(changes[depth - 2]))
    new = depth_policy([r["loss"] for r in state.history] + [record["loss"]], changes, depth, config)
    if new == depth:
        return state, record
    params = state.params
    if config.fold_drift:
        # states are already sample means: one-row "batches" for fold_drift.
        rd = params["readout"]
        x_old, x_new = (jnp.asarray(states[t][None], run.x_train.dtype) for t in (depth, new))
        params = dict(params, readout=dict(rd, bias=fold_drift(rd["bias"], rd["kernel"], x_old, x_new)))
    after = evaluate_params(run, params, run.x_test, run.y_test, new)[1]
    cut = {"epoch": state.epoch, "from": depth, "to": new}
    cut |= {"test_accuracy_before": record["test_accuracy"], "test_accuracy_after": after}
    return state._replace(params=params, depth=new, cuts=state.cuts + [cut]), dict(record, depth_after_cut=new)


def log_and_checkpoint(out: Path | None, config: TrainConfig, state: RunState, record: dict) -> None:
    """Append `record` to metrics.jsonl; save the checkpoint every ``checkpoint_every`` epochs and at the end.

    **Raises:** `OutputError` naming the file that could not be written (the checkpoint
    written before it stays intact).
    """
    if out is None:
        return
    try:
        with open(out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
    except OSError as e:
        raise OutputError(f"cannot write {out / 'metrics.jsonl'}: {e.strerror or e}") from e
    if _checkpoint_due(config, state.epoch):
        save_state(out, config, state)


def _checkpoint_due(config: TrainConfig, epoch: int) -> bool:
    return epoch % config.checkpoint_every == 0 or epoch == config.epochs


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
    """Train from `state` to ``run.config.epochs``: epoch, depth policy, log, checkpoint, callback.

    A run stopped by an exception (a non-finite loss, Ctrl-C, a raising `callback`) first
    saves its last complete epoch, so ``resume=True`` loses nothing; a failed write
    (`OutputError`) is not retried.
    """
    config = run.config
    try:
        while state.epoch < config.epochs:
            state, record = adapt_depth(run, *train_epoch(run, state))
            record["time"] = time.perf_counter() - t0
            state = state._replace(history=state.history + [record], elapsed=record["time"])
            bar.set_postfix(loss=f"{record['loss']:.4f}", test=f"{record['test_accuracy']:.3f}", depth=state.depth)
            bar.update()
            log_and_checkpoint(out, config, state, record)
            if callback is not None:
                callback(state.epoch, record)
    except BaseException as e:
        unsaved = state.epoch > 0 and not _checkpoint_due(config, state.epoch)
        if out is not None and unsaved and not isinstance(e, OutputError):
            # Best effort: a failing save must not hide the error that stopped the run.
            with contextlib.suppress(OutputError):
                save_state(out, config, state)
        raise
    return state


def finish(run: Setup, state: RunState, data: Dataset, wall_time: float) -> TrainResult:
    """The pruned `Network` and the final metrics of a finished run."""
    config, spec = run.config, run.config.trunk
    full_acc = evaluate_params(run, state.params, run.x_test, run.y_test, spec.depth)[1]
    network = from_flax(state.params, h=spec.h, model=spec.model, activation=spec.activation, depth=state.depth)
    result = TrainResult(network, config, state.history, {})
    test = evaluate(result, data.x_test, data.y_test)
    cuts = state.cuts
    metrics = {
        "data": {k: v for k, v in data.meta.items() if k not in ("mean", "std")},
        "test_accuracy": test["accuracy"],
        "test_loss": test["loss"],
        "train_accuracy": evaluate(result, data.x_train, data.y_train)["accuracy"],
        "depth_before": spec.depth,
        "depth_after": state.depth,
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
    return result._replace(metrics=metrics)


def _write_outputs(out: Path, result: TrainResult, data: Dataset, figures: bool, record: dict) -> None:
    """metrics.json, the saved run (network.eqx, run.json; see `resflow.runs`) and the figures.

    A write error names the file; what was written before it (the checkpoint, metrics.jsonl,
    the files before the failing one) stays.
    """
    try:
        _write_files(out, result, data, figures, record)
    except OSError as e:
        if isinstance(e, OutputError):
            raise
        raise OutputError(f"cannot write {e.filename or out}: {e.strerror or e}") from e


def _write_files(out: Path, result: TrainResult, data: Dataset, figures: bool, record: dict) -> None:
    write_json(out / "metrics.json", result.metrics)
    save_run(out, result.network, result.config, data, record)
    if figures:
        from .plots.training import plot_depth_history, plot_residuals_by_class, plot_training_curves

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
) -> TrainResult:
    """Train a classifier on `data`, optionally adapting its depth.

    **Arguments:**

    - `data`: a `resflow.data.Dataset` (standardised inputs, integer labels).
    - `config`: a `TrainConfig` (defaults: ResNet, width = data dim, 15 shared sigmoid
      layers, h = 1, Adam 3e-3, 40 epochs of batch 64, no depth adaptation).
    - `key`: a `jax.random` key; it alone fixes init and shuffling (same key, same result).
    - `out_dir`: folder for metrics.jsonl, metrics.json, checkpoint.msgpack, figures and the
      saved run (data.json at the start; network.eqx and run.json at the end, loaded by
      `resflow.load_run`).
    - `resume`: continue from ``out_dir/checkpoint.msgpack``; the options must equal the
      checkpoint's, except `epochs`, which may change only under ``schedule="constant"``, and
      the data's fingerprint must equal the one in ``out_dir/data.json``.
    - `progress`: show a tqdm bar with loss / accuracy / depth.
    - `callback`: called as ``callback(epoch, record)`` after each epoch's checkpoint
      (raise in it to stop a run).
    - `figures`: with `out_dir`, save training-curve, depth-history and residual figures.
    - `data_source`: the `resflow.load_dataset` arguments of `data` (``name``, ``seed``,
      ``path``, ``standardize``, ``options``), recorded so that `resflow.load_run(...).load_data()`
      reloads it; default: read from ``data.meta`` (`resflow.runs.data_source`).
    - `provenance`: extra JSON-able entries for run.json's provenance (e.g. ``{"seed": 0}``).
    - `overrides`: fields of `TrunkSpec` or `TrainConfig`, e.g. ``depth=5, model="mlp", epochs=3``.

    **Returns:** `TrainResult` (its network pruned to the final depth).

    **Raises:** `TypeError` for a `key` that is not a `jax.random` key or an unknown option;
    `TypeError`/`ValueError` for bad data or options; `resflow.runs.RunError` (a `ValueError`)
    when resuming on other data than the run's; `FileNotFoundError` when resuming without a
    checkpoint; `CheckpointError` for a damaged or foreign checkpoint; `NonFiniteLossError`
    when the loss stops being finite (the last good epoch is checkpointed first);
    `OutputError` naming the path when the output folder or a file in it cannot be written.
    """
    key = _check_key(key)
    n_classes = _check_data(data)
    config = (config or TrainConfig()).replace(**overrides).validate()
    out = prepare_out_dir(out_dir) if out_dir is not None else None
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
    if out is not None:
        _write_outputs(out, result, data, figures, saved)
    return result


def _check_inputs(result: TrainResult, x, y=None):
    """(network, x[, y]) of a public call: x finite ``(N, dim)``, y labels in [0, classes).

    Shapes and dtypes first; the value checks of x and y are one reduction (one host read,
    none for tracers), and only a failure re-runs them one by one for the message.
    """
    if not isinstance(result, TrainResult):
        raise TypeError(f"result must be a TrainResult (from resflow.fit), got {type(result).__name__}")
    network = result.network
    x = as_float_array("x", x)
    if x.ndim != 2 or x.shape[1] != network.dim:
        raise ValueError(f"x must have shape (N, {network.dim}) (the training data dimension), got {x.shape}")
    checks = {"x": (x, lambda xp, a: xp.isfinite(a))}
    if y is not None:
        y = y if isinstance(y, jax.core.Tracer) else jnp.asarray(y)
        if not jnp.issubdtype(y.dtype, jnp.integer):
            raise TypeError(f"y must be an array of integer class labels, got dtype {y.dtype}")
        if y.shape != (x.shape[0],):
            raise ValueError(f"y must have shape {(x.shape[0],)} to match the data, got {y.shape}")
        checks["y"] = (y, lambda xp, a: (a >= 0) & (a < network.n_classes))
    if all(is_concrete(a) for a, _ in checks.values()) and not all_true(checks):
        check_finite("x", x)
        check_labels("y", y, x.shape[0])
        raise ValueError(f"y must be < n_classes = {network.n_classes}, got a label {int(jnp.max(y))}")
    return (network, x) if y is None else (network, x, y)


@jax.jit
def _logits(network: Network, x):
    return network(x)


def predict(result: TrainResult, x: Float[Array, "batch dim"]) -> Float[Array, "batch classes"]:
    """Logits of the trained network (jitted).

    **Raises:** `ValueError` (naming x) unless x is a finite ``(N, dim)`` array, as `evaluate`.
    """
    network, x = _check_inputs(result, x)
    return _logits(network, x)


def evaluate(result: TrainResult, x: Float[Array, "batch dim"], y: Int[Array, " batch"]) -> dict:
    """Mean cross-entropy ``loss`` and ``accuracy`` of the trained network on (x, y).

    **Raises:** `TypeError` for non-integer labels; `ValueError` unless x is finite ``(N, dim)``
    and y is ``(N,)`` with labels in [0, classes).
    """
    network, x, y = _check_inputs(result, x, y)
    logits = _logits(network, x)
    return {"loss": float(xent(logits, y).mean()), "accuracy": float(jnp.mean(jnp.argmax(logits, -1) == y))}


def accuracy(result: TrainResult, x: Float[Array, "batch dim"], y: Int[Array, " batch"]) -> float:
    """Fraction of samples whose largest logit is the label (arguments and errors as `evaluate`)."""
    return evaluate(result, x, y)["accuracy"]
