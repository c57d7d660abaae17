"""Training: a flax classifier around the residual trunk, an optax loop, depth adaptation.

    fit(data: Dataset, config: TrainConfig | None = None, *, key, out_dir=None, resume=False,
        progress=False, callback=None, figures=True, **overrides) -> TrainResult
    predict(result, x) -> logits            accuracy(result, x, y) -> float
    evaluate(result, x, y) -> {"loss", "accuracy"}

``TrainResult(params, classifier, config, depth, history, metrics)``; ``result.logits(x)`` is
a pure function of x (jit / vmap / grad it). Options are the fields of `TrainConfig`, passed
either as a config or as keyword overrides, e.g.
``fit(load_dataset("digits"), model="mlp", depth=3, epochs=40, key=jax.random.key(0))``.

Classifier = optional linear lift (when the data dimension differs from the width, or
``lift=True``) → `ResidualTrunk` (a flax module wrapping the pure `resflow.forward`; drop it
into your own flax models) → linear readout, trained with softmax cross-entropy.

One epoch is one jitted call: the shuffled mini-batches (from ``fold_in(key, epoch)``) are
stepped with `jax.lax.scan`. Depth adaptation (``depth_adapt=True``, see `resflow.depth`)
runs after each epoch on the training data. The trunk is always scanned over the initial
depth with a *traced* ``active_depth`` (layers t >= active_depth are the identity), so a
cut never recompiles; removed layers still cost their compute until the end of training,
when the parameters are pruned (untied: sliced) to the final depth.

With ``out_dir`` the run writes ``metrics.jsonl`` (one line per epoch), ``checkpoint.msgpack``
(params, optimiser state, epoch, depth, RNG key, config, histories; atomic), ``metrics.json``
and figures; ``resume=True`` continues from the checkpoint and ends bit-identical to an
uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import serialization
from jaxtyping import Array, Float, Int

from ._checks import check_array, check_choice, check_int, check_labels, check_positive, is_concrete
from .activations import ACTIVATIONS
from .checkpoint import load_checkpoint, save_checkpoint
from .data import Dataset, batch_indices
from .depth import change_sums, depth_rule, fold_drift, prune_trunk
from .model import MODELS, TrunkParams, forward, init_trunk, trajectory
from .residuals import residuals

__all__ = [
    "TrainConfig",
    "TrainResult",
    "ResidualTrunk",
    "Classifier",
    "fit",
    "predict",
    "accuracy",
    "evaluate",
    "make_optimizer",
    "OPTIMIZERS",
    "SCHEDULES",
]

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine", "warmup-cosine")
CHECKPOINT = "checkpoint.msgpack"


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Every hyper-parameter of a run (JSON-able; stored in checkpoints and metrics).

    - `model`: ``"resnet"`` (x + h·act(Wx + b)) or ``"mlp"`` (act(Wx + b)).
    - `width`: trunk width n; None = the data dimension.
    - `depth`: initial depth T (the maximum under depth adaptation).
    - `shared`: one (W, b) for all layers (True) or one per layer.
    - `h`, `activation`: Euler step and activation of the trunk.
    - `lift`: linear lift data → width; None = only when the dimensions differ.
    - `w_std`: trunk init scale (W ~ N(0, w_std²/n)).
    - `remat`: checkpoint the trunk in √T segments (`resflow.forward(remat=True)`): training
      memory O(√T) instead of O(T) states, for deep trunks, at ~1.1× the step time.
    - `epochs`, `batch_size`: training length and mini-batch size.
    - `optimizer` (adam / adamw / sgd with momentum 0.9), `lr`, `schedule` (constant / cosine
      decay to 0 / warmup-cosine with 5 % warm-up), `weight_decay` (decoupled, adam(w) only;
      sgd: L2), `clip_norm` (global-norm gradient clipping; None = off).
    - `dtype`: ``"float32"`` or ``"float64"`` (needs ``jax_enable_x64``).
    - `depth_adapt`, `depth_tol`, `min_depth`: the paper's rule (see `resflow.depth`).
    - `depth_warmup`: epochs trained before the first cut may happen.
    - `depth_plateau`: if > 0, cut only when the best training loss of the last
      `depth_plateau` epochs is no better than (1 − 0.01)× the best before them.
    - `multi_cut`: remove as many layers per epoch as the criterion allows.
    - `fold_drift`: move the mean output shift of each cut into the readout bias.
    - `eval_chunk`: samples per jitted evaluation call (memory bound for large data).
    - `checkpoint_every`: epochs between checkpoints (with out_dir).
    """

    model: str = "resnet"
    width: int | None = None
    depth: int = 15
    shared: bool = True
    h: float = 1.0
    activation: str = "sigmoid"
    lift: bool | None = None
    w_std: float = 1.0
    remat: bool = False
    epochs: int = 40
    batch_size: int = 64
    optimizer: str = "adam"
    lr: float = 3e-3
    schedule: str = "constant"
    weight_decay: float = 0.0
    clip_norm: float | None = None
    dtype: str = "float32"
    depth_adapt: bool = False
    depth_tol: float = 0.01
    min_depth: int = 1
    depth_warmup: int = 5
    depth_plateau: int = 0
    multi_cut: bool = False
    fold_drift: bool = False
    eval_chunk: int = 8192
    checkpoint_every: int = 1

    def validate(self) -> TrainConfig:
        """Check every field; returns self. **Raises:** `ValueError`/`TypeError` naming the field."""
        check_choice("model", self.model, MODELS)
        check_choice("activation", self.activation, ACTIVATIONS)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_choice("dtype", self.dtype, ("float32", "float64"))
        if self.width is not None:
            check_int("width", self.width)
        for name in ("depth", "epochs", "batch_size", "min_depth", "eval_chunk", "checkpoint_every"):
            check_int(name, getattr(self, name))
        for name in ("depth_warmup", "depth_plateau"):
            check_int(name, getattr(self, name), minimum=0)
        for name in ("h", "lr", "depth_tol", "w_std"):
            check_positive(name, getattr(self, name))
        if self.clip_norm is not None:
            check_positive("clip_norm", self.clip_norm)
        if not isinstance(self.remat, bool):
            raise TypeError(f"remat must be a bool, got {self.remat!r}")
        if not (isinstance(self.weight_decay, int | float) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be a number >= 0, got {self.weight_decay!r}")
        if self.min_depth > self.depth:
            raise ValueError(f"min_depth must be <= depth = {self.depth}, got {self.min_depth}")
        if self.dtype == "float64" and not jax.config.jax_enable_x64:
            raise ValueError('dtype="float64" needs jax.config.update("jax_enable_x64", True) (CLI: --x64)')
        return self


class ResidualTrunk(nn.Module):
    """The residual trunk as a flax module (params ``W``, ``b``; see `resflow.model`).

    ``__call__(x, active_depth=None, return_trajectory=False)`` returns x_T (or the whole
    trajectory x_0 … x_T) of `resflow.forward` / `resflow.trajectory`; `active_depth` may be
    a traced integer <= depth (later layers are the identity).
    """

    width: int
    depth: int
    model: str = "resnet"
    shared: bool = True
    h: float = 1.0
    activation: str = "sigmoid"
    w_std: float = 1.0
    param_dtype: Any = jnp.float32
    remat: bool = False

    @nn.compact
    def __call__(self, x, active_depth=None, return_trajectory: bool = False):
        def init(k):
            return init_trunk(
                k, self.width, shared=self.shared, depth=self.depth, w_std=self.w_std, dtype=self.param_dtype
            )

        params = TrunkParams(self.param("W", lambda k: init(k).W), self.param("b", lambda k: init(k).b))
        # flax's convention (as nn.Dense with dtype=None): compute in the promoted dtype of
        # inputs and params; resflow.forward itself refuses mixed dtypes.
        dtype = jnp.result_type(x, params.W)
        params, x = TrunkParams(params.W.astype(dtype), params.b.astype(dtype)), jnp.asarray(x, dtype)
        kw = dict(depth=self.depth, model=self.model, activation=self.activation, h=self.h, active_depth=active_depth)
        if return_trajectory:
            return trajectory(params, x, **kw)
        return forward(params, x, remat=self.remat, **kw)


class Classifier(nn.Module):
    """Optional linear lift → `ResidualTrunk` → linear readout (logits)."""

    n_classes: int
    width: int
    depth: int
    model: str = "resnet"
    shared: bool = True
    h: float = 1.0
    activation: str = "sigmoid"
    w_std: float = 1.0
    use_lift: bool = False
    param_dtype: Any = jnp.float32
    remat: bool = False

    def setup(self):
        kw = dict(dtype=self.param_dtype, param_dtype=self.param_dtype)
        self.lift = nn.Dense(self.width, **kw) if self.use_lift else None
        self.trunk = ResidualTrunk(
            self.width,
            self.depth,
            self.model,
            self.shared,
            self.h,
            self.activation,
            self.w_std,
            self.param_dtype,
            self.remat,
        )
        self.readout = nn.Dense(self.n_classes, **kw)

    def embed(self, x):
        return self.lift(x) if self.use_lift else x

    def __call__(self, x, active_depth=None):
        return self.readout(self.trunk(self.embed(x), active_depth))

    def trajectory(self, x, active_depth=None):
        """Trunk states x_0 … x_T (after the lift), ``(T + 1, batch, width)``."""
        return self.trunk(self.embed(x), active_depth, return_trajectory=True)


class TrainResult(NamedTuple):
    """A trained classifier, pruned to its final depth.

    - `params`: the flax params dict (``{"lift"?, "trunk": {"W", "b"}, "readout"}``).
    - `classifier`: the `Classifier` module at the final depth.
    - `config`: the `TrainConfig` used.
    - `depth`: the final depth.
    - `history`: one dict per epoch (loss, accuracies, depth, residual change, time).
    - `metrics`: the final metrics (also written to metrics.json).
    """

    params: dict
    classifier: Classifier
    config: TrainConfig
    depth: int
    history: list
    metrics: dict

    def logits(self, x: Float[Array, "batch dim"]) -> Float[Array, "batch classes"]:
        """Pure logits of the final network (jit / vmap / grad through it)."""
        return self.classifier.apply({"params": self.params}, x)

    def trunk_params(self) -> TrunkParams:
        """The trunk's `TrunkParams` (for the analyses in resflow)."""
        return TrunkParams(self.params["trunk"]["W"], self.params["trunk"]["b"])


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


def _classifier(config: TrainConfig, dim: int, n_classes: int, depth: int) -> Classifier:
    width = config.width or dim
    use_lift = config.lift if config.lift is not None else dim != width
    if not use_lift and dim != width:
        raise ValueError(f"lift=False needs width == data dimension {dim}, got width {width}")
    return Classifier(
        n_classes=n_classes,
        width=width,
        depth=depth,
        model=config.model,
        shared=config.shared,
        h=config.h,
        activation=config.activation,
        w_std=config.w_std,
        remat=config.remat,
        use_lift=use_lift,
        param_dtype=jnp.dtype(config.dtype),
    )


def _xent(logits, y):
    return optax.softmax_cross_entropy_with_integer_labels(logits, y)


class _Steps(NamedTuple):
    epoch: Callable
    eval: Callable
    stats: Callable
    tx: optax.GradientTransformation


def _compile_key(config: TrainConfig) -> TrainConfig:
    """`config` with the fields that do not change compiled code set to their defaults."""
    host_only = ("depth_adapt", "depth_tol", "min_depth", "depth_warmup", "depth_plateau", "multi_cut", "fold_drift")
    base = TrainConfig()
    config = dataclasses.replace(config, checkpoint_every=1, **{k: getattr(base, k) for k in host_only})
    # The number of epochs only enters through a learning-rate schedule.
    return dataclasses.replace(config, epochs=1) if config.schedule == "constant" else config


@functools.lru_cache(maxsize=16)
def _make_steps(module: Classifier, config: TrainConfig, steps_per_epoch: int) -> _Steps:
    """The jitted functions of a run (compiled once each; depth is a traced argument).

    Cached on (module, config, steps per epoch), so runs that differ only in their key or
    data values (seeds, resumed runs) reuse the compiled code.
    """
    tx = make_optimizer(config, steps_per_epoch)
    batch_size = config.batch_size

    def loss_fn(params, xb, yb, wb, active_depth):
        logits = module.apply({"params": params}, xb, active_depth)
        return (_xent(logits, yb) * wb).sum() / wb.sum(), logits

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
        return (_xent(logits, y) * w).sum(), ((jnp.argmax(logits, -1) == y) * w).sum()

    @jax.jit
    def stats(params, x, w, active_depth):
        traj = module.apply({"params": params}, x, active_depth, method=Classifier.trajectory)
        r = residuals(TrunkParams(params["trunk"]["W"], params["trunk"]["b"]), traj, activation=module.activation)
        return change_sums(r, w), jnp.einsum("tbn,b->tn", traj, w)

    return _Steps(epoch, eval_sums, stats, tx)


def _chunks(x, chunk, *rest):
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


def _evaluate(steps, params, x, y, active_depth, chunk):
    loss = correct = 0.0
    for xc, yc, w in _chunks(x, chunk, y):
        lsum, csum = steps.eval(params, xc, yc, w, active_depth)
        loss, correct = loss + float(lsum), correct + float(csum)
    return loss / x.shape[0], correct / x.shape[0]


def _depth_stats(steps, params, x, active_depth, chunk):
    """Per-layer residual changes d_k and mean states x_t over the training data."""
    changes = states = 0.0
    for xc, w in _chunks(x, chunk):
        c, s = steps.stats(params, xc, w, active_depth)
        changes, states = changes + np.asarray(c, np.float64), states + np.asarray(s, np.float64)
    return changes / x.shape[0], states / x.shape[0]


def _plateaued(losses, patience):
    if patience == 0:
        return True
    if len(losses) <= patience:
        return False
    return min(losses[-patience:]) > 0.99 * min(losses[:-patience])


def _prune_params(params, depth):
    trunk = prune_trunk(TrunkParams(params["trunk"]["W"], params["trunk"]["b"]), depth)
    return dict(params, trunk={"W": trunk.W, "b": trunk.b})


def _check_data(data):
    """Validate a `Dataset`; returns the number of classes."""
    if not isinstance(data, Dataset):
        raise TypeError(f"data must be a resflow.data.Dataset, got {type(data).__name__}")
    for name in ("x_train", "x_test"):
        a = np.asarray(getattr(data, name))
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
    **overrides,
) -> TrainResult:
    """Train a classifier on `data`, optionally adapting its depth.

    **Arguments:**

    - `data`: a `resflow.data.Dataset` (standardised inputs, integer labels).
    - `config`: a `TrainConfig` (defaults: ResNet, width = data dim, 15 shared sigmoid
      layers, h = 1, Adam 3e-3, 40 epochs of batch 64, no depth adaptation).
    - `key`: a `jax.random` key; it alone fixes init and shuffling (same key, same result).
    - `out_dir`: folder for metrics.jsonl, metrics.json, checkpoint.msgpack and figures.
    - `resume`: continue from ``out_dir/checkpoint.msgpack``; the options must equal the
      checkpoint's, except `epochs`, which may change only under ``schedule="constant"`` (a
      cosine schedule's horizon is fixed by the saved epochs).
    - `progress`: show a tqdm bar with loss / accuracy / depth.
    - `callback`: called as ``callback(epoch, record)`` after each epoch's checkpoint
      (raise in it to stop a run).
    - `figures`: with `out_dir`, save training-curve and depth-history figures at the end.
    - `overrides`: `TrainConfig` fields, e.g. ``depth=5, model="mlp"``.

    **Returns:** `TrainResult` (params pruned to the final depth).

    **Raises:** `TypeError`/`ValueError` for bad data or options; `FileNotFoundError` when
    resuming without a checkpoint.
    """
    n_classes = _check_data(data)
    config = dataclasses.replace(config or TrainConfig(), **overrides).validate()
    out = Path(out_dir) if out_dir is not None else None
    if resume:
        if out is None:
            raise ValueError("resume=True needs out_dir (where the checkpoint is)")
        raw, meta = load_checkpoint(out / CHECKPOINT)
        saved = TrainConfig(**meta["config"])
        if dataclasses.replace(saved, epochs=config.epochs) != config:
            diff = {
                k: (v, getattr(config, k))
                for k, v in dataclasses.asdict(saved).items()
                if k != "epochs" and getattr(config, k) != v
            }
            raise ValueError(
                f"resume: options differ from the checkpoint's (saved, given): {diff}; only epochs may change"
            )
        if config.epochs != saved.epochs and config.schedule != "constant":
            # The schedule's horizon is epochs × steps: a new value would bend the lr curve
            # mid-run, and the result would match no uninterrupted run.
            raise ValueError(
                f"resume: epochs may change only with schedule='constant'; schedule={config.schedule!r} "
                f"decays over the saved epochs={saved.epochs}, got epochs={config.epochs}"
            )

    dtype = jnp.dtype(config.dtype)
    dim = data.x_train.shape[1]
    max_depth = config.depth
    module = _classifier(config, dim, n_classes, max_depth)
    x_tr, y_tr = jnp.asarray(data.x_train, dtype), jnp.asarray(data.y_train, jnp.int32)
    x_te, y_te = jnp.asarray(data.x_test, dtype), jnp.asarray(data.y_test, jnp.int32)

    k_init, k_shuffle = jax.random.split(key)
    params = module.init(k_init, x_tr[:1])["params"]
    steps_per_epoch = -(-x_tr.shape[0] // config.batch_size)
    opt_state = make_optimizer(config, steps_per_epoch).init(params)
    steps = _make_steps(module, _compile_key(config), steps_per_epoch)

    depth, start, history, cuts, elapsed = max_depth, 0, [], [], 0.0
    if resume:
        target = {"params": params, "opt_state": opt_state, "key": jax.random.key_data(k_shuffle)}
        arrays = serialization.from_state_dict(target, raw)
        params, opt_state = arrays["params"], arrays["opt_state"]
        k_shuffle = jax.random.wrap_key_data(jnp.asarray(arrays["key"]))
        depth, start, history, cuts, elapsed = (
            meta["depth"],
            meta["epoch"],
            meta["history"],
            meta["cuts"],
            meta["elapsed"],
        )
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        # Rewritten from the checkpoint's history: a run killed after logging an epoch but
        # before checkpointing it must not log that epoch twice.
        (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in history))

    from tqdm.auto import tqdm

    bar = tqdm(total=config.epochs, initial=start, disable=not progress, desc="train", unit="epoch")
    t0 = time.perf_counter() - elapsed
    for epoch in range(start, config.epochs):
        ad = jnp.asarray(depth, jnp.int32)
        params, opt_state, loss, acc = steps.epoch(
            params, opt_state, jax.random.fold_in(k_shuffle, epoch), ad, x_tr, y_tr
        )
        test_loss, test_acc = _evaluate(steps, params, x_te, y_te, ad, config.eval_chunk)
        record = {
            "epoch": epoch + 1,
            "loss": float(loss),
            "train_accuracy": float(acc),
            "test_loss": test_loss,
            "test_accuracy": test_acc,
            "depth": depth,
        }
        if config.depth_adapt and depth > 1:
            changes, states = _depth_stats(steps, params, x_tr, ad, config.eval_chunk)
            record["residual_change"] = float(changes[depth - 2])
            losses = [r["loss"] for r in history] + [record["loss"]]
            if epoch + 1 > config.depth_warmup and _plateaued(losses, config.depth_plateau):
                new = depth_rule(
                    changes, depth, tol=config.depth_tol, min_depth=config.min_depth, multi=config.multi_cut
                )
                if new < depth:
                    if config.fold_drift:
                        # states are already sample means: one-row "batches" for fold_drift.
                        rd = params["readout"]
                        x_old, x_new = (jnp.asarray(states[t][None], dtype) for t in (depth, new))
                        params = dict(params, readout=dict(rd, bias=fold_drift(rd["bias"], rd["kernel"], x_old, x_new)))
                    after = _evaluate(steps, params, x_te, y_te, jnp.asarray(new, jnp.int32), config.eval_chunk)[1]
                    cuts.append(
                        {
                            "epoch": epoch + 1,
                            "from": depth,
                            "to": new,
                            "test_accuracy_before": test_acc,
                            "test_accuracy_after": after,
                        }
                    )
                    depth = new
                    record["depth_after_cut"] = depth
        elapsed = time.perf_counter() - t0
        record["time"] = elapsed
        history.append(record)
        bar.set_postfix(loss=f"{record['loss']:.4f}", acc=f"{acc:.3f}", test=f"{test_acc:.3f}", depth=depth)
        bar.update()
        if out is not None:
            with open(out / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
            if (epoch + 1) % config.checkpoint_every == 0 or epoch + 1 == config.epochs:
                meta = {
                    "epoch": epoch + 1,
                    "depth": depth,
                    "config": dataclasses.asdict(config),
                    "history": history,
                    "cuts": cuts,
                    "elapsed": elapsed,
                }
                save_checkpoint(
                    out / CHECKPOINT,
                    {"params": params, "opt_state": opt_state, "key": jax.random.key_data(k_shuffle)},
                    meta,
                )
        if callback is not None:
            callback(epoch + 1, record)
    bar.close()

    _, full_acc = _evaluate(steps, params, x_te, y_te, jnp.asarray(max_depth, jnp.int32), config.eval_chunk)
    final_params = _prune_params(params, depth)
    final_module = module.clone(depth=depth)
    result = TrainResult(final_params, final_module, config, depth, history, {})
    test_loss, test_acc = evaluate(result, data.x_test, data.y_test).values()
    train_acc = evaluate(result, data.x_train, data.y_train)["accuracy"]
    metrics = {
        "data": {k: v for k, v in data.meta.items() if k not in ("mean", "std")},
        "test_accuracy": test_acc,
        "test_loss": test_loss,
        "train_accuracy": train_acc,
        "depth_before": max_depth,
        "depth_after": depth,
        # Test accuracy just before the first cut (no cut: the final accuracy).
        "accuracy_before_pruning": cuts[0]["test_accuracy_before"] if cuts else test_acc,
        "accuracy_after_pruning": test_acc,
        # The final weights (trained at the reduced depth, drift folded) run at the initial depth.
        "accuracy_final_params_at_max_depth": full_acc,
        "cuts": cuts,
        "depth_history": [r["depth"] for r in history] + [depth],
        "epochs": config.epochs,
        "wall_time": time.perf_counter() - t0,
        "config": dataclasses.asdict(config),
    }
    result = result._replace(metrics=metrics)
    if out is not None:
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        if figures:
            from .plots.training import plot_depth_history, plot_training_curves

            plot_training_curves(history, save=out / "training_curves.png")
            plot_depth_history(history, max_depth=max_depth, save=out / "depth_history.png")
            _plot_test_residuals(result, data, save=out / "residuals_by_class.png")
    return result


def _plot_test_residuals(result: TrainResult, data, *, save, max_samples: int = 500, num_components: int = 6):
    """The trained trunk's residuals on test inputs by class: the components whose class
    means differ most at the last layer, i.e. where the classes' transients separate."""
    from .plots.network import plot_residual_trajectories
    from .residuals import residuals

    x, y = data.x_test[:max_samples], np.asarray(data.y_test[:max_samples])
    traj = result.classifier.apply(
        {"params": result.params}, jnp.asarray(x, jnp.dtype(result.config.dtype)), method=Classifier.trajectory
    )
    r = np.asarray(residuals(result.trunk_params(), traj, activation=result.config.activation))
    class_means = np.stack([r[-1, y == c].mean(0) for c in np.unique(y)])
    comps = np.argsort(-class_means.var(0))[:num_components]
    title = f"{result.config.model} residuals on test inputs by class (depth {result.depth})"
    plot_residual_trajectories(r, y, components=sorted(comps.tolist()), title=title, save=save)


def predict(result: TrainResult, x: Float[Array, "batch dim"]) -> Float[Array, "batch classes"]:
    """Logits of the trained network (jitted)."""
    return _apply(result.classifier, result.params, jnp.asarray(x, jnp.dtype(result.config.dtype)))


@functools.partial(jax.jit, static_argnums=0)
def _apply(module, params, x):
    return module.apply({"params": params}, x)


def _check_eval_inputs(result: TrainResult, x, y):
    if not isinstance(result, TrainResult):
        raise TypeError(f"result must be a TrainResult (from resflow.fit), got {type(result).__name__}")
    x = check_array("x", x, ndim=2)
    dim = result.classifier.width if not result.classifier.use_lift else result.params["lift"]["kernel"].shape[0]
    if x.shape[1] != dim:
        raise ValueError(f"x must have shape (N, {dim}) (the training data dimension), got {x.shape}")
    return x, check_labels("y", y, x.shape[0])


def evaluate(result: TrainResult, x: Float[Array, "batch dim"], y: Int[Array, " batch"]) -> dict:
    """Mean cross-entropy ``loss`` and ``accuracy`` of the trained network on (x, y).

    **Raises:** `TypeError` for non-integer labels; `ValueError` unless x is finite ``(N, dim)``
    and y is ``(N,)`` with labels in [0, classes).
    """
    x, y = _check_eval_inputs(result, x, y)
    n_classes = result.classifier.n_classes
    if is_concrete(y) and y.shape[0] and int(jnp.max(y)) >= n_classes:
        raise ValueError(f"y must be < n_classes = {n_classes}, got a label {int(jnp.max(y))}")
    logits = predict(result, x)
    return {"loss": float(_xent(logits, y).mean()), "accuracy": float(jnp.mean(jnp.argmax(logits, -1) == y))}


def accuracy(result: TrainResult, x: Float[Array, "batch dim"], y: Int[Array, " batch"]) -> float:
    """Fraction of samples whose largest logit is the label (arguments and errors as `evaluate`)."""
    return evaluate(result, x, y)["accuracy"]
