"""The compiled training loop: one kernel for `resflow.fit` (one run) and `resflow.sweep`
(`jax.vmap` of the same kernel over runs).

A *chunk* of epochs is one jitted call running `jax.lax.scan` over epochs. Each epoch:
shuffled mini-batch steps, test metrics (the test set in fixed, zero-weighted padded chunks
reduced with `jax.lax.scan`), and with depth adaptation the residual changes on the training
set, the depth policy (`resflow.training._depth.depth_policy`) and drift folding. The current depth is
data (``active_depth``), so a cut never recompiles; an epoch whose training or test loss is
not finite leaves the state as it was (and every later epoch of that run does nothing), and
its index is recorded for the host to report.

The options that change no code are traced scalars, `Hyper` (lr, h, w_std, depth_tol,
weight_decay): runs that differ only in them share one compiled program, and a sweep vmaps
over them. `code_key` is the config with those options set to defaults: the cache key.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from ._config import TrainConfig
from ._depth import Plateau, change_sums, depth_policy, fold_shift, plateau_push
from ._layers import Classifier
from ._preprocess import batch_indices

__all__ = [
    "Hyper",
    "HYPER",
    "Loop",
    "Records",
    "Data",
    "Kernel",
    "make_optimizer",
    "make_kernel",
    "code_key",
    "hyper_of",
    "padded_chunks",
    "chunk_length",
    "xent",
]

HYPER = ("lr", "h", "w_std", "depth_tol", "weight_decay")


class Hyper(NamedTuple):
    """The numeric options of a run that keep shapes and code: traced scalars (or ``(runs,)``)."""

    lr: jax.Array
    h: jax.Array
    w_std: jax.Array
    depth_tol: jax.Array
    weight_decay: jax.Array


class Loop(NamedTuple):
    """The state of one run between epochs, on the device.

    `depth` is the current (active) depth; `plateau` the losses the plateau test needs;
    `bad` the first epoch (1-based) whose loss was not finite, 0 while all were.
    """

    params: dict
    opt_state: optax.OptState
    depth: jax.Array
    plateau: Plateau
    bad: jax.Array


class Records(NamedTuple):
    """Per-epoch outputs of a chunk, each ``(epochs_in_chunk,)``: the epoch's training loss and
    accuracy (running over its batches), test loss and accuracy, the depth it trained at, the
    residual change d_{T−1} (depth adaptation only), the depth after the policy, the test
    accuracy after a cut, and whether the epoch's losses were not finite."""

    loss: jax.Array
    train_accuracy: jax.Array
    test_loss: jax.Array
    test_accuracy: jax.Array
    depth: jax.Array
    residual_change: jax.Array
    depth_after: jax.Array
    test_accuracy_after: jax.Array
    nonfinite: jax.Array


class Data(NamedTuple):
    """A run's data on the device: the training set (for the steps), and the test and
    training sets cut into fixed chunks ``(chunks, size, ...)`` with weights 0 on the pads."""

    x_train: jax.Array
    y_train: jax.Array
    test: tuple
    train: tuple


class Kernel(NamedTuple):
    """The pure functions of a run (unjitted; `fit` jits them, `sweep` vmaps then jits them).

    - ``init(key, hyper, x1) -> (params, opt_state, shuffle_key)``
    - ``chunk(hyper, key, loop, start, epochs, data, length) -> (loop, Records)``: epochs
      start … start + length − 1 (0-based), those ≥ `epochs` skipped.
    - ``evaluate(params, depth, h, chunks) -> (mean loss, accuracy)``
    """

    init: Callable
    chunk: Callable
    evaluate: Callable


def make_optimizer(config: TrainConfig, steps_per_epoch: int, lr=None, weight_decay=None):
    """The optax transformation of `config`: clipping → optimiser with its lr schedule.

    `lr` and `weight_decay` (default: the config's) may be traced scalars; whether weight
    decay is used at all (``config.weight_decay > 0``) is part of the code.
    """
    lr = config.lr if lr is None else lr
    weight_decay = config.weight_decay if weight_decay is None else weight_decay
    total = config.epochs * steps_per_epoch
    if config.schedule == "cosine":
        lr = optax.cosine_decay_schedule(lr, total)
    elif config.schedule == "warmup-cosine":
        # optax checks the peak value on the host, so a traced lr (a sweep's grid) scales a unit
        # schedule instead; from 0 to 0 through the peak, the schedule is linear in the peak.
        unit, peak = optax.warmup_cosine_decay_schedule(0.0, 1.0, max(1, total // 20), total), lr
        lr = lambda step: peak * unit(step)  # noqa: E731
    if config.optimizer == "sgd":
        opt = optax.sgd(lr, momentum=0.9)
        if config.weight_decay:
            opt = optax.chain(optax.add_decayed_weights(weight_decay), opt)
    elif config.optimizer == "adamw" or config.weight_decay:
        opt = optax.adamw(lr, weight_decay=weight_decay)
    else:
        opt = optax.adam(lr)
    if config.clip_norm is not None:
        opt = optax.chain(optax.clip_by_global_norm(config.clip_norm), opt)
    return opt


def xent(logits, y):
    return optax.softmax_cross_entropy_with_integer_labels(logits, y)


def code_key(config: TrainConfig) -> TrainConfig:
    """`config` with everything that changes no compiled code set to defaults: the `Hyper`
    options (weight decay kept as on/off), checkpointing, chunking, and `epochs` under a
    constant schedule (it only enters through a decaying schedule's horizon)."""
    base = TrainConfig()
    trunk = dataclasses.replace(config.trunk, h=base.trunk.h, w_std=base.trunk.w_std)
    config = dataclasses.replace(
        config,
        trunk=trunk,
        lr=base.lr,
        depth_tol=base.depth_tol,
        weight_decay=float(config.weight_decay > 0),
        checkpoint_every=base.checkpoint_every,
        checkpoint_seconds=base.checkpoint_seconds,
        chunk_epochs=base.chunk_epochs,
    )
    return dataclasses.replace(config, epochs=1) if config.schedule == "constant" else config


def hyper_of(configs, dtype) -> Hyper:
    """The `Hyper` of one config (scalars) or of a list of configs (``(runs,)`` arrays)."""
    one = isinstance(configs, TrainConfig)
    configs = [configs] if one else configs

    def value(c, name):
        return getattr(c.trunk, name) if name in ("h", "w_std") else getattr(c, name)

    arrays = [jnp.asarray([value(c, name) for c in configs], dtype) for name in HYPER]
    return Hyper(*(a[0] for a in arrays)) if one else Hyper(*arrays)


def padded_chunks(x, y, size: int, multiple: int = 1):
    """(x, y, w) cut into ``(chunks, size', ...)`` with size' = min(size, n) rounded up to
    `multiple`; pads have weight 0 (so every chunk has one shape)."""
    n = x.shape[0]
    size = -(-min(size, n) // multiple) * multiple
    count = -(-n // size)
    pad = count * size - n
    w = jnp.concatenate([jnp.ones(n, x.dtype), jnp.zeros(pad, x.dtype)]).reshape(count, size)

    def cut(a):
        a = jnp.concatenate([a, jnp.zeros((pad,) + a.shape[1:], a.dtype)])
        return a.reshape((count, size) + a.shape[1:])

    return cut(x), cut(y), w


# About a second of work on the 2-core CPU this project is tested on (≈ 10 GFLOP/s sustained).
CHUNK_FLOPS = 1e10


def chunk_length(config: TrainConfig, dim: int, n_classes: int, n_train: int, n_test: int, runs: int = 1) -> int:
    """Epochs per compiled chunk: ``config.chunk_epochs``, or (0) a FLOP-count model.

    One sample through the network costs f = 2(T·n² + lift·dim·n + n·classes) FLOPs; an
    epoch ≈ f·(3·n_train + n_test [+ n_train with depth adaptation]) per run. The chunk is
    the number of epochs of `CHUNK_FLOPS` (at least 1), evened out so the epochs fall into
    equal chunks. Deterministic in the config and data shapes (no timing), so a resumed run
    compiles the same chunk.
    """
    if config.chunk_epochs:  # as given (not capped at epochs: a resumed run keeps its program)
        return config.chunk_epochs
    n = config.trunk.width or dim
    lift = dim if (config.lift if config.lift is not None else dim != n) else 0
    per_sample = 2.0 * (config.trunk.depth * n * n + lift * n + n * n_classes)
    passes = 3 * n_train + n_test + (n_train if config.depth_adapt else 0)
    wanted = max(1, int(CHUNK_FLOPS // (per_sample * passes * runs)))
    count = -(-config.epochs // wanted)
    return -(-config.epochs // count)


@functools.lru_cache(maxsize=32)
def make_kernel(module: Classifier, config: TrainConfig, steps_per_epoch: int, sharding=None) -> Kernel:
    """The `Kernel` of a run; cached on (module, `code_key` config, steps per epoch, batch sharding).

    `sharding` (data parallel): a `jax.sharding.NamedSharding` the mini-batches and the
    evaluation chunks are constrained to (batch axis over devices), or None.
    """
    spec = module.spec
    batch_size = config.batch_size

    def constrain(a):
        return a if sharding is None else jax.lax.with_sharding_constraint(a, sharding)

    def optimizer(hyper):
        return make_optimizer(config, steps_per_epoch, hyper.lr, hyper.weight_decay)

    def init(key, hyper, x1):
        k_init, k_shuffle = jax.random.split(key)
        params = module.init(k_init, x1)["params"]
        # The module initialises W ~ N(0, 1/n) (its spec has w_std = 1): scaled here, so w_std is data.
        trunk = dict(params["trunk"], W=params["trunk"]["W"] * hyper.w_std.astype(params["trunk"]["W"].dtype))
        params = dict(params, trunk=trunk)
        return params, optimizer(hyper).init(params), k_shuffle

    def loss_fn(params, xb, yb, wb, depth, h):
        logits = module.apply({"params": params}, constrain(xb), depth, h)
        return (xent(logits, yb) * wb).sum() / wb.sum(), logits

    def train_epoch(params, opt_state, key, depth, hyper, x, y):
        tx = optimizer(hyper)
        idx, w = batch_indices(key, x.shape[0], batch_size)

        def body(carry, batch):
            params, opt_state = carry
            i, wb = batch
            wb = wb.astype(x.dtype)
            grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
            (loss, logits), grads = grad_fn(params, x[i], y[i], wb, depth, hyper.h)
            updates, opt_state = tx.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
            correct = ((jnp.argmax(logits, -1) == y[i]) * wb).sum()
            return (params, opt_state), (loss * wb.sum(), correct)

        (params, opt_state), (losses, correct) = jax.lax.scan(body, (params, opt_state), (idx, w))
        n = x.shape[0]
        return params, opt_state, losses.sum() / n, correct.sum() / n

    def evaluate(params, depth, h, chunks):
        def body(sums, chunk):
            x, y, w = chunk
            logits = module.apply({"params": params}, constrain(x), depth, h)
            part = jnp.stack([(xent(logits, y) * w).sum(), ((jnp.argmax(logits, -1) == y) * w).sum()])
            return sums + part, None

        sums = jax.lax.scan(body, jnp.zeros(2, chunks[0].dtype), chunks)[0]
        total = chunks[2].sum()
        return sums[0] / total, sums[1] / total

    def statistics(params, depth, h, chunks):
        """Residual changes d_k ``(T−1,)`` and mean states x̄_t ``(T+1, n)`` on the training set."""

        def body(sums, chunk):
            x, _, w = chunk
            traj = module.apply({"params": params}, constrain(x), depth, h, method=Classifier.trajectory)
            # The residuals are read off the states (x_{t+1} = x_t + h r_t, or r_t = x_{t+1} for the
            # MLP) instead of recomputing act(W x_t + b): one forward pass, not two. Layers past the
            # active depth give r_t = 0 here, but the policy reads only d_k for k < depth.
            r = (traj[1:] - traj[:-1]) / h if spec.model == "resnet" else traj[1:]
            return (sums[0] + change_sums(r, w), sums[1] + jnp.einsum("tbn,b->tn", traj, w)), None

        dtype = chunks[0].dtype
        zeros = (jnp.zeros(spec.depth - 1, dtype), jnp.zeros((spec.depth + 1, spec.width), dtype))
        changes, states = jax.lax.scan(body, zeros, chunks)[0]
        n = chunks[2].sum()
        return changes / n, states / n

    def adapt(params, depth, e, plateau, hyper, data, test_accuracy):
        """(params, new depth, d_{T−1}, test accuracy after the cut) under the depth policy."""
        changes, states = statistics(params, depth, hyper.h, data.train)
        change = changes[jnp.maximum(depth - 2, 0)]
        new = depth_policy(
            changes,
            depth,
            e + 1,
            plateau,
            hyper.depth_tol,
            min_depth=config.min_depth,
            warmup=config.depth_warmup,
            multi=config.multi_cut,
        ).astype(depth.dtype)
        if config.fold_drift:
            rd = params["readout"]
            bias = fold_shift(rd["bias"], rd["kernel"], states[depth], states[new])
            params = dict(params, readout=dict(rd, bias=jnp.where(new < depth, bias, rd["bias"])))
        after = jax.lax.cond(new < depth, lambda: evaluate(params, new, hyper.h, data.test)[1], lambda: test_accuracy)
        return params, new, change, after

    def epoch(hyper, key, data, loop, e):
        params, opt_state, loss, acc = train_epoch(
            loop.params, loop.opt_state, jax.random.fold_in(key, e), loop.depth, hyper, data.x_train, data.y_train
        )
        test_loss, test_acc = evaluate(params, loop.depth, hyper.h, data.test)
        plateau = plateau_push(loop.plateau, loss)
        depth, change, after = loop.depth, jnp.full_like(loss, jnp.nan), test_acc
        if config.depth_adapt and spec.depth > 1:
            # No cut can happen in the warm-up epochs, so their residual statistics (a pass over
            # the training set) are skipped; `e` is the same for every run of a sweep, so this
            # stays a real branch under vmap.
            params, depth, change, after = jax.lax.cond(
                e + 1 > config.depth_warmup,
                lambda: adapt(params, loop.depth, e, plateau, hyper, data, test_acc),
                lambda: (params, depth, change, after),
            )
        ok = jnp.isfinite(loss) & jnp.isfinite(test_loss) & (loop.bad == 0)
        new = Loop(params, opt_state, depth, plateau, loop.bad)
        # A non-finite epoch (and every one after it) keeps the last good state.
        kept = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, loop)
        bad = jnp.where((loop.bad == 0) & ~ok, e + 1, loop.bad).astype(loop.bad.dtype)
        record = Records(loss, acc, test_loss, test_acc, loop.depth, change, depth, after, ~ok)
        return kept._replace(bad=bad), record

    def chunk(hyper, key, loop, start, epochs, data, length: int):
        def skip(loop, e):
            shapes = jax.eval_shape(epoch, hyper, key, data, loop, e)[1]
            return loop, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

        def body(loop, e):
            # e is the same for every run of a sweep, so this stays a real branch under vmap.
            return jax.lax.cond(e < epochs, functools.partial(epoch, hyper, key, data), skip, loop, e)

        return jax.lax.scan(body, loop, start + jnp.arange(length, dtype=jnp.int32))

    return Kernel(init, chunk, evaluate)
