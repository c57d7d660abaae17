"""The compiled steps of a training run: the optimiser, one epoch, chunked evaluation sums,
and the residual statistics of the depth rule.

Each is jitted once per (module, options that change compiled code, steps per epoch) and
takes the active depth as a traced argument, so depth cuts never recompile.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .data import batch_indices
from .depth import change_sums
from .layers import Classifier
from .model import Trunk
from .residuals import residuals
from .spec import TrainConfig

__all__ = ["make_optimizer", "make_steps", "compile_key", "chunks", "xent", "Steps"]


def make_optimizer(config: TrainConfig, steps_per_epoch: int) -> optax.GradientTransformation:
    """The optax transformation of `config`: clipping → optimiser with its lr schedule."""
    total = config.epochs * steps_per_epoch
    if config.schedule == "constant":
        lr = config.lr
    elif config.schedule == "cosine":
        lr = optax.cosine_decay_schedule(config.lr, total)
    else:
        lr = optax.warmup_cosine_decay_schedule(0.0, config.lr, max(1, total // 20), total)
    if config.optimizer == "sgd":
        opt = optax.sgd(lr, momentum=0.9)
        if config.weight_decay:
            opt = optax.chain(optax.add_decayed_weights(config.weight_decay), opt)
    elif config.optimizer == "adamw" or config.weight_decay:
        opt = optax.adamw(lr, weight_decay=config.weight_decay)
    else:
        opt = optax.adam(lr)
    if config.clip_norm is not None:
        opt = optax.chain(optax.clip_by_global_norm(config.clip_norm), opt)
    return opt


def xent(logits, y):
    return optax.softmax_cross_entropy_with_integer_labels(logits, y)


class Steps(NamedTuple):
    epoch: Callable
    eval: Callable
    stats: Callable
    tx: optax.GradientTransformation


def compile_key(config: TrainConfig) -> TrainConfig:
    """`config` with the fields that do not change compiled code set to their defaults."""
    host_only = ("depth_adapt", "depth_tol", "min_depth", "depth_warmup", "depth_plateau", "multi_cut", "fold_drift")
    base = TrainConfig()
    config = dataclasses.replace(config, checkpoint_every=1, **{k: getattr(base, k) for k in host_only})
    # The number of epochs only enters through a learning-rate schedule.
    return dataclasses.replace(config, epochs=1) if config.schedule == "constant" else config


@functools.lru_cache(maxsize=16)
def make_steps(module: Classifier, config: TrainConfig, steps_per_epoch: int) -> Steps:
    """The jitted functions of a run (compiled once each; depth is a traced argument).

    Cached on (module, config, steps per epoch), so runs that differ only in their key or
    data values (seeds, resumed runs) reuse the compiled code.
    """
    tx = make_optimizer(config, steps_per_epoch)
    batch_size = config.batch_size
    spec = module.spec

    def loss_fn(params, xb, yb, wb, active_depth):
        logits = module.apply({"params": params}, xb, active_depth)
        return (xent(logits, yb) * wb).sum() / wb.sum(), logits

    @jax.jit
    def epoch(params, opt_state, key, active_depth, x, y):
        idx, w = batch_indices(key, x.shape[0], batch_size)

        def body(carry, batch):
            params, opt_state = carry
            i, wb = batch
            wb = wb.astype(x.dtype)
            (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, x[i], y[i], wb, active_depth)
            updates, opt_state = tx.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
            correct = ((jnp.argmax(logits, -1) == y[i]) * wb).sum()
            return (params, opt_state), (loss * wb.sum(), correct)

        (params, opt_state), (losses, correct) = jax.lax.scan(body, (params, opt_state), (idx, w))
        n = x.shape[0]
        return params, opt_state, losses.sum() / n, correct.sum() / n

    @jax.jit
    def eval_sums(params, x, y, w, active_depth):
        logits = module.apply({"params": params}, x, active_depth)
        return (xent(logits, y) * w).sum(), ((jnp.argmax(logits, -1) == y) * w).sum()

    @jax.jit
    def stats(params, x, w, active_depth):
        traj = module.apply({"params": params}, x, active_depth, method=Classifier.trajectory)
        p = params["trunk"]
        trunk = Trunk(p["W"], p["b"], spec.h, model=spec.model, activation=spec.activation)
        return change_sums(residuals(trunk, traj), w), jnp.einsum("tbn,b->tn", traj, w)

    return Steps(epoch, eval_sums, stats, tx)


def chunks(x, chunk, *rest):
    """Fixed-shape chunks (padded, weight 0) so every call hits the same compiled function."""
    n = x.shape[0]
    size = min(chunk, n)
    for s in range(0, n, size):
        e = min(s + size, n)
        pad = size - (e - s)
        w = np.concatenate([np.ones(e - s), np.zeros(pad)])
        parts = [
            jnp.concatenate([a[s:e], jnp.zeros((pad,) + a.shape[1:], a.dtype)]) if pad else a[s:e] for a in (x, *rest)
        ]
        yield (*parts, jnp.asarray(w, x.dtype))
