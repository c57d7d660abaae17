"""The training engine: module-level pure functions, in the style of the flax examples.

The parameters are the `resflow.Network` itself (lift → `Trunk` → readout, an equinox
pytree). optax updates its trainable partition (`trainable`: every floating array except
the trunk's step size ``h``, which stays as initialised), so the trained value needs no
conversion and ``h`` lives in one place, the trunk's leaf.

Every function takes the `resflow.training._config.Static` options first (hashable: the
static argument of the jitted forms, so runs with equal statics share one compiled program)
and, where it needs them, the `resflow.training._config.Traced` numbers (lr, h, w_std,
depth_tol, weight_decay; a sweep vmaps over them):

- `init` → (network, optimiser state, shuffle key); `init_network` draws W ~ N(0, w_std²/n)
  with w_std traced;
- `train_step` (one mini-batch), `train_epoch` (a shuffled epoch under `jax.lax.scan`);
- `evaluate` (mean loss and accuracy over zero-weight-padded chunks);
- `residual_statistics` (residual changes d_k and mean states on the training set);
- `depth_step` (the `resflow.training._depth.DepthRule`, drift folding, accuracy after a cut);
- `epoch` and `chunk` (a `jax.lax.scan` over epochs: one jitted call).

The current depth is data (``Loop.depth``): the trunk is scanned over the initial depth (or
``Static.span`` layers) with layers past the current depth the identity, so a cut needs no new
program. An epoch whose training or test loss
is not finite leaves the state as it was (and every later epoch of that run does nothing);
its index is recorded for the host to report. `resflow.fit` runs `chunk` in a host loop with
checkpoints; `resflow.sweep` runs ``jax.vmap`` of the same functions.
"""

from __future__ import annotations

import functools
import hashlib
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .._checks import device_array
from ..trunk._network import Affine, Network
from ..trunk._trunk import Trunk, init_arrays, scan_trunk
from ._config import Static, Traced, TrainConfig
from ._depth import DepthRule, Plateau, change_sums, fold_shift
from ._preprocess import batch_indices

__all__ = [
    "Loop",
    "Records",
    "Data",
    "make_optimizer",
    "trainable",
    "depth_rule_of",
    "init_network",
    "init",
    "forward",
    "train_step",
    "train_epoch",
    "evaluate",
    "residual_statistics",
    "depth_step",
    "epoch",
    "chunk",
    "start_loop",
    "final_network",
    "init_jit",
    "chunk_jit",
    "evaluate_jit",
    "padded_chunks",
    "chunk_length",
    "epoch_flops",
    "RESPAN_FLOPS",
    "xent",
]


class Loop(NamedTuple):
    """The state of one run between epochs, on the device.

    `params` is the `Network` (trainable partition and the fixed ``h``); `depth` the current
    (active) depth; `plateau` the losses the plateau test needs; `bad` the first epoch
    (1-based) whose loss was not finite, 0 while all were.
    """

    params: Network
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


def make_optimizer(static: Static, lr, weight_decay):
    """The optax transformation: clipping → optimiser with its lr schedule.

    `lr` and `weight_decay` may be traced scalars; whether weight decay is used at all
    (``static.weight_decay``) is part of the code.
    """
    total = static.epochs * static.steps_per_epoch
    if static.schedule == "cosine":
        lr = optax.cosine_decay_schedule(lr, total)
    elif static.schedule == "warmup-cosine":
        # optax checks the peak value on the host, so a traced lr (a sweep's grid) scales a unit
        # schedule instead; from 0 to 0 through the peak, the schedule is linear in the peak.
        unit, peak = optax.warmup_cosine_decay_schedule(0.0, 1.0, max(1, total // 20), total), lr
        lr = lambda step: peak * unit(step)  # noqa: E731
    if static.optimizer == "sgd":
        opt = optax.sgd(lr, momentum=0.9)
        if static.weight_decay:
            opt = optax.chain(optax.add_decayed_weights(weight_decay), opt)
    elif static.optimizer == "adamw" or static.weight_decay:
        opt = optax.adamw(lr, weight_decay=weight_decay)
    else:
        opt = optax.adam(lr)
    if static.clip_norm is not None:
        opt = optax.chain(optax.clip_by_global_norm(static.clip_norm), opt)
    return opt


def optimizer(static: Static, traced: Traced):
    return make_optimizer(static, traced.lr, traced.weight_decay)


def xent(logits, y):
    return optax.softmax_cross_entropy_with_integer_labels(logits, y)


def trainable(network: Network):
    """The filter spec of what training changes: every floating array but ``trunk.h``."""
    spec = jax.tree.map(eqx.is_inexact_array, network)
    return eqx.tree_at(lambda n: n.trunk.h, spec, replace=False)


def depth_rule_of(static: Static, traced: Traced) -> DepthRule:
    """The run's `DepthRule`: the static options of `static` and the traced tolerance."""
    return DepthRule(
        traced.depth_tol,
        min_depth=static.min_depth,
        warmup=static.warmup,
        plateau=static.plateau,
        multi_cut=static.multi_cut,
        fold_drift=static.fold_drift,
    )


def _path_key(key: jax.Array, name: str) -> jax.Array:
    """The key of the first parameter of the layer `name`: `key` folded with the first 4 bytes of
    SHA-1(name + b"\\x01"), as flax derives it. Kept so that a seed gives the same initial network
    (and so the same run) as resflow's earlier flax-based training did."""
    digest = hashlib.sha1(name.encode() + b"\x01").digest()
    return jax.random.fold_in(key, jnp.uint32(int.from_bytes(digest[:4], "big")))


def init_network(static: Static, traced: Traced, key: jax.Array) -> Network:
    """A fresh `Network`: trunk W ~ N(0, w_std²/n) (w_std traced), b = 0, h = ``traced.h``;
    lift and readout LeCun-normal kernels and zero biases (flax's ``Dense``), each layer's
    key derived from `key` and the layer's name."""
    dtype, n = jnp.dtype(static.dtype), static.width
    depth = None if static.shared else static.depth
    W, b = init_arrays(_path_key(key, "trunk"), n, depth=depth, w_std=1.0, b_std=0.0, dtype=dtype)
    W = W * jnp.asarray(traced.w_std).astype(dtype)  # N(0, 1/n) scaled: w_std is data (vmapped in sweeps)
    trunk = Trunk(W, b, traced.h, model=static.model, activation=static.activation)
    dense = jax.nn.initializers.lecun_normal()
    lift = None
    if static.lift:
        lift = Affine(dense(_path_key(key, "lift"), (static.dim, n), dtype), jnp.zeros((n,), dtype))
    readout = Affine(
        dense(_path_key(key, "readout"), (n, static.n_classes), dtype), jnp.zeros((static.n_classes,), dtype)
    )
    return Network(lift, trunk, readout, static.depth)


def init(static: Static, traced: Traced, key: jax.Array):
    """(network, optimiser state, shuffle key): `key` splits into the init and shuffle keys."""
    k_init, k_shuffle = jax.random.split(key)
    network = init_network(static, traced, k_init)
    params = eqx.filter(network, trainable(network))
    return network, optimizer(static, traced).init(params), k_shuffle


def _constrain(static: Static, a):
    return a if static.sharding is None else jax.lax.with_sharding_constraint(a, static.sharding)


def forward(static: Static, network: Network, x, depth, *, keep: bool = False):
    """Logits of `x` through the first ``static.span`` (default ``static.depth``) layers, those
    t ≥ `depth` (traced) the identity; with `keep`, the trunk states x_0 … x_span instead."""
    x0 = network.embed(_constrain(static, x))
    span = static.span or static.depth
    out = scan_trunk(network.trunk, x0, depth, depth=span, keep=keep, remat=static.remat and not keep)
    return out if keep else network.readout(out)


def _loss(params, rest, static, x, y, w, depth):
    logits = forward(static, eqx.combine(params, rest), x, depth)
    return (xent(logits, y) * w).sum() / w.sum(), logits


def train_step(static: Static, traced: Traced, state, batch, depth):
    """One optimiser step on a weighted mini-batch ``(x, y, w)``.

    **Returns:** ``((network, opt_state), (loss · Σw, correct · w))``.
    """
    network, opt_state = state
    x, y, w = batch
    params, rest = eqx.partition(network, trainable(network))
    (loss, logits), grads = jax.value_and_grad(_loss, has_aux=True)(params, rest, static, x, y, w, depth)
    updates, opt_state = optimizer(static, traced).update(grads, opt_state, params)
    network = eqx.combine(optax.apply_updates(params, updates), rest)
    correct = ((jnp.argmax(logits, -1) == y) * w).sum()
    return (network, opt_state), (loss * w.sum(), correct)


def train_epoch(static: Static, traced: Traced, network, opt_state, key, depth, x, y):
    """One shuffled epoch (from `key`) at active depth `depth`.

    **Returns:** ``(network, opt_state, mean loss, accuracy)`` (running over the batches).
    """
    idx, w = batch_indices(key, x.shape[0], static.batch_size)

    def body(state, batch):
        i, wb = batch
        return train_step(static, traced, state, (x[i], y[i], wb.astype(x.dtype)), depth)

    (network, opt_state), (losses, correct) = jax.lax.scan(body, (network, opt_state), (idx, w))
    n = x.shape[0]
    return network, opt_state, losses.sum() / n, correct.sum() / n


def evaluate(static: Static, network: Network, depth, chunks):
    """(mean loss, accuracy) over padded `chunks` ``(x, y, w)`` at active depth `depth`."""

    def body(sums, chunk):
        x, y, w = chunk
        logits = forward(static, network, x, depth)
        part = jnp.stack([(xent(logits, y) * w).sum(), ((jnp.argmax(logits, -1) == y) * w).sum()])
        return sums + part, None

    sums = jax.lax.scan(body, jnp.zeros(2, chunks[0].dtype), chunks)[0]
    total = chunks[2].sum()
    return sums[0] / total, sums[1] / total


def residual_statistics(static: Static, network: Network, depth, chunks):
    """Residual changes d_k ``(T−1,)`` and mean states x̄_t ``(T+1, n)`` over padded `chunks`
    (zero past ``static.span`` layers, and the states zero unless ``static.fold_drift`` reads them)."""
    h = network.trunk.h
    span = static.span or static.depth

    def body(sums, chunk):
        x, _, w = chunk
        traj = forward(static, network, x, depth, keep=True)
        # The residuals are read off the states (x_{t+1} = x_t + h r_t, or r_t = x_{t+1} for the
        # MLP) instead of recomputing act(W x_t + b): one forward pass, not two. Layers past the
        # active depth give r_t = 0 here, but the rule reads only d_k for k < depth.
        r = (traj[1:] - traj[:-1]) / h if static.model == "resnet" else traj[1:]
        states = sums[1] + jnp.einsum("tbn,b->tn", traj, w) if static.fold_drift else sums[1]
        return (sums[0] + change_sums(r, w), states), None

    dtype = chunks[0].dtype
    zeros = (jnp.zeros(span - 1, dtype), jnp.zeros((span + 1, static.width), dtype))
    changes, states = jax.lax.scan(body, zeros, chunks)[0]
    n = chunks[2].sum()
    pad = static.depth - span
    return jnp.pad(changes / n, (0, pad)), jnp.pad(states / n, ((0, pad), (0, 0)))


def depth_step(static: Static, rule: DepthRule, network, depth, n_epochs, plateau, data: Data, test_accuracy):
    """The depth rule after epoch `n_epochs`: (network, new depth, d_{T−1}, test accuracy
    after the cut); with ``rule.fold_drift`` a cut's mean output shift goes into the readout bias."""
    changes, states = residual_statistics(static, network, depth, data.train)
    change = changes[jnp.maximum(depth - 2, 0)]
    new = rule(changes, depth, n_epochs, plateau).astype(depth.dtype)
    if rule.fold_drift:
        rd = network.readout
        bias = fold_shift(rd.b, rd.W, states[depth], states[new])
        network = eqx.tree_at(lambda n: n.readout.b, network, jnp.where(new < depth, bias, rd.b))
    after = jax.lax.cond(
        new < depth, lambda: evaluate(static, network, new, data.test)[1], lambda: jnp.asarray(test_accuracy)
    )
    return network, new, change, after


def epoch(static: Static, traced: Traced, key, data: Data, loop: Loop, e):
    """Epoch `e` (0-based): train, test, depth rule. **Returns:** ``(loop, Records row)``."""
    rule = depth_rule_of(static, traced)
    network, opt_state, loss, acc = train_epoch(
        static, traced, loop.params, loop.opt_state, jax.random.fold_in(key, e), loop.depth, data.x_train, data.y_train
    )
    test_loss, test_acc = evaluate(static, network, loop.depth, data.test)
    plateau = loop.plateau.push(loss)
    depth, change, after = loop.depth, jnp.full_like(loss, jnp.nan), test_acc
    if static.depth_adapt and static.depth > 1:
        # No cut can happen in the warm-up epochs, so their residual statistics (a pass over
        # the training set) are skipped; `e` is the same for every run of a sweep, so this
        # stays a real branch under vmap.
        network, depth, change, after = jax.lax.cond(
            e + 1 > rule.warmup,
            lambda: depth_step(static, rule, network, loop.depth, e + 1, plateau, data, test_acc),
            lambda: (network, depth, change, after),
        )
    ok = jnp.isfinite(loss) & jnp.isfinite(test_loss) & (loop.bad == 0)
    new = Loop(network, opt_state, depth, plateau, loop.bad)
    # A non-finite epoch (and every one after it) keeps the last good state.
    kept = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, loop)
    bad = jnp.where((loop.bad == 0) & ~ok, e + 1, loop.bad).astype(loop.bad.dtype)
    record = Records(loss, acc, test_loss, test_acc, loop.depth, change, depth, after, ~ok)
    return kept._replace(bad=bad), record


def chunk(static: Static, traced: Traced, key, loop: Loop, start, epochs, data: Data, length: int):
    """Epochs start … start + length − 1 (0-based) under `jax.lax.scan`; those ≥ `epochs` are
    skipped (zero records). **Returns:** ``(loop, Records)``."""

    def skip(loop, e):
        shapes = jax.eval_shape(functools.partial(epoch, static), traced, key, data, loop, e)[1]
        return loop, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

    def body(loop, e):
        # e is the same for every run of a sweep, so this stays a real branch under vmap.
        return jax.lax.cond(e < epochs, functools.partial(epoch, static, traced, key, data), skip, loop, e)

    return jax.lax.scan(body, loop, start + jnp.arange(length, dtype=jnp.int32))


init_jit = jax.jit(init, static_argnames="static")
chunk_jit = jax.jit(chunk, static_argnames=("static", "length"))
evaluate_jit = jax.jit(evaluate, static_argnames="static")


def start_loop(static: Static, network: Network, opt_state, depth, losses=()) -> Loop:
    """The `Loop` after the epochs whose training `losses` are given (exact rebuild)."""
    plateau = Plateau.start(losses, static.plateau, jnp.dtype(static.dtype))
    return Loop(network, opt_state, jnp.asarray(depth, jnp.int32), plateau, jnp.asarray(0, jnp.int32))


def final_network(network: Network, depth: int) -> Network:
    """`network` (host or device arrays of one run) pruned to `depth` layers, rebuilt through
    the constructors so that their checks (shapes, finite weights, h > 0) run once more."""
    network = jax.tree.map(jnp.asarray, network)
    t = network.trunk
    trunk = Trunk(t.W, t.b, t.h, model=t.model, activation=t.activation)
    lift = None if network.lift is None else Affine(network.lift.W, network.lift.b)
    return Network(lift, trunk.truncate(depth), Affine(network.readout.W, network.readout.b), depth)


def padded_chunks(x, y, size: int, multiple: int = 1):
    """(x, y, w) cut into ``(chunks, size', ...)`` with size' = min(size, n) rounded up to
    `multiple`; pads have weight 0 (so every chunk has one shape). `x` and `y` are host arrays:
    they are laid out in NumPy and put on the device once."""
    n = x.shape[0]
    size = -(-min(size, n) // multiple) * multiple
    count = -(-n // size)
    pad = count * size - n
    w = np.concatenate([np.ones(n, x.dtype), np.zeros(pad, x.dtype)]).reshape(count, size)

    def cut(a):
        a = np.concatenate([a, np.zeros((pad,) + a.shape[1:], a.dtype)])
        return device_array(a.reshape((count, size) + a.shape[1:]))

    return cut(x), cut(y), device_array(w)


# About a second of work on the 2-core CPU this project is tested on (≈ 10 GFLOP/s sustained).
CHUNK_FLOPS = 1e10
# An epoch this long (≈ 10 s) repays a recompilation (a few seconds) at each new depth.
RESPAN_FLOPS = 1e11


def epoch_flops(config: TrainConfig, dim: int, n_classes: int, n_train: int, n_test: int) -> float:
    """The FLOPs of one epoch of one run at the initial depth: f·(3·n_train + n_test [+ n_train
    with depth adaptation]), with f = 2(T·n² + lift·dim·n + n·classes) per sample."""
    n = config.trunk.width or dim
    lift = dim if (config.lift if config.lift is not None else dim != n) else 0
    per_sample = 2.0 * (config.trunk.depth * n * n + lift * n + n * n_classes)
    return per_sample * (3 * n_train + n_test + (n_train if config.depth_adapt else 0))


def chunk_length(config: TrainConfig, dim: int, n_classes: int, n_train: int, n_test: int, runs: int = 1) -> int:
    """Epochs per compiled chunk: ``config.chunk_epochs``, or (0) the number of epochs of
    `CHUNK_FLOPS` by `epoch_flops` (at least 1), evened out so the epochs fall into equal
    chunks. Deterministic in the config and data shapes (no timing), so a resumed run
    compiles the same chunk.
    """
    if config.chunk_epochs:  # as given (not capped at epochs: a resumed run keeps its program)
        return config.chunk_epochs
    wanted = max(1, int(CHUNK_FLOPS // (epoch_flops(config, dim, n_classes, n_train, n_test) * runs)))
    count = -(-config.epochs // wanted)
    return -(-config.epochs // count)
