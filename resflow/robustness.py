"""Accuracy under additive Gaussian input noise (science.md §5, §7 claim 6).

For a classifier f (logits or class predictions of a batch of inputs), test data (X, y) and a
grid of noise levels σ, the accuracy of draw k at level σ is

    acc(σ, k) = mean_i [ argmax f(x_i + σ ε_{k,i}) = y_i ],      ε_{k,i} ~ N(0, I),

with the *same* ε_k for every σ (common random numbers: the curve acc(σ) varies only through
σ, and two classifiers evaluated with the same key see the same noise). Draws are batched with
`jax.vmap`, noise levels stepped with `jax.lax.map` so that memory holds one level at a time.

`compare_noise_robustness` is the experiment of science.md §7 claim 6: it trains ResNets and
MLPs with `resflow.fit` on the same data and seeds and evaluates each with `noise_accuracy`
under the same noise. How the MLP is matched to the ResNet (depth, init scale, clean accuracy)
decides the outcome (science.md §8), so every model is described by a `ModelSpec` and the
table records each one's clean accuracy next to its noise curve.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from ._checks import check_array, check_choice, check_int, check_labels, is_concrete
from .model import MODELS
from .perturbation import linear_growth

__all__ = [
    "NoiseRobustness",
    "noise_accuracy",
    "ModelSpec",
    "parse_model_spec",
    "NoiseComparison",
    "compare_noise_robustness",
]


class NoiseRobustness(NamedTuple):
    """Accuracy under input noise.

    - `sigmas`: ``(S,)`` noise standard deviations (per input component).
    - `accuracy`: ``(S, draws)``, accuracy of each noise draw at each σ.
    - `mean`, `std`: ``(S,)``, mean and standard deviation over draws.
    """

    sigmas: Float[Array, " S"]
    accuracy: Float[Array, "S draws"]
    mean: Float[Array, " S"]
    std: Float[Array, " S"]


def noise_accuracy(
    predict_fn: Callable[[Float[Array, "N d"]], Array],
    x: Float[Array, "N d"],
    labels: Int[Array, " N"],
    sigmas: Float[Array, " S"],
    *,
    key: jax.Array,
    num_draws: int = 10,
    params=None,
) -> NoiseRobustness:
    """Test accuracy of `predict_fn` on ``x + σ ε`` for every σ in `sigmas` and `num_draws` draws of ε.

    **Arguments:**

    - `predict_fn`: a JAX-traceable function of a batch ``(N, d)`` returning logits ``(N, C)``
      (the prediction is their argmax) or integer classes ``(N,)``; e.g. ``result.logits`` of a
      `resflow.fit` result.
    - `x`: ``(N, d)`` clean inputs, in the units the classifier sees (σ is in those units).
    - `labels`: ``(N,)`` integer classes.
    - `sigmas`: ``(S,)`` noise levels σ ≥ 0 (σ = 0 gives the clean accuracy).
    - `key`: `jax.random` key; draw k uses ``split(key, num_draws)[k]`` for every σ.
    - `num_draws`: number of noise draws per σ.
    - `params`: optional pytree; if given, the classifier is ``predict_fn(params, x)`` and the
      compiled evaluation is cached on `predict_fn` (hashable, compared by identity; keep it
      stable and capture no large arrays), so new `params` (other seeds or weights) reuse it.
      Without `params` every call compiles anew.

    **Returns:** `NoiseRobustness` (``sigmas``, ``accuracy (S, draws)``, ``mean``, ``std``).

    **Raises:** `TypeError` if `predict_fn` is not callable or returns neither ``(N, C)`` floats nor
    ``(N,)`` integers; `ValueError` for non-finite or wrongly shaped `x`/`labels`, negative or
    non-finite σ, or ``num_draws < 1``.
    """
    if not callable(predict_fn):
        raise TypeError(f"predict_fn must be a callable of a batch (N, d), got {type(predict_fn).__name__}")
    x = check_array("x", x, ndim=2)
    y = check_labels("labels", labels, x.shape[0])
    s = check_array("sigmas", sigmas, ndim=1).astype(x.dtype)
    if is_concrete(s) and np.any(np.asarray(s) < 0):
        raise ValueError(f"sigmas must be >= 0, got {np.asarray(s)}")
    num_draws = check_int("num_draws", num_draws)

    args = (params,) if params is not None else ()
    fn = predict_fn
    if params is not None:
        try:
            hash(fn)
        except TypeError as e:
            raise TypeError("with params, predict_fn must be hashable (it keys the compiled evaluation)") from e
    out = jax.eval_shape(fn, *args, x)
    is_logits = out.shape[:1] == (x.shape[0],) and len(out.shape) == 2 and jnp.issubdtype(out.dtype, jnp.floating)
    is_classes = out.shape == (x.shape[0],) and jnp.issubdtype(out.dtype, jnp.integer)
    if not (is_logits or is_classes):
        raise TypeError(
            f"predict_fn must return logits ({x.shape[0]}, C) or integer classes ({x.shape[0]},), "
            f"got {out.dtype} {out.shape}"
        )
    opts = dict(num_draws=num_draws, is_logits=bool(is_logits))
    if params is None:
        # A module-level cache keyed on a fresh closure would keep every closure (and the arrays
        # it captures) alive: compile per call instead.
        run = jax.jit(lambda x, y, s, key: _noise_core(fn, (), x, y, s, key, **opts))
        accuracy = run(x, y, s, key)
    else:
        accuracy = _noise_run(fn, args, x, y, s, key, **opts)
    accuracy = accuracy.astype(x.dtype)
    return NoiseRobustness(s, accuracy, accuracy.mean(axis=1), accuracy.std(axis=1))


def _noise_core(fn, args, x, y, s, key, *, num_draws, is_logits):
    """acc(σ, k) for every σ in s and draw k; `fn(*args, x)` gives logits or classes."""
    noise = jax.vmap(lambda k: jax.random.normal(k, x.shape, x.dtype))(jax.random.split(key, num_draws))

    def acc(xn):
        pred = fn(*args, xn)
        pred = jnp.argmax(pred, axis=-1) if is_logits else pred
        return jnp.mean(pred == y)

    return jax.lax.map(lambda sig: jax.vmap(lambda e: acc(x + sig * e))(noise), s)


_noise_run = jax.jit(_noise_core, static_argnames=("fn", "num_draws", "is_logits"))


@functools.lru_cache(maxsize=32)
def _logits_of(classifier):
    """``(params, x) -> logits`` of a flax classifier, one function object per (hashable) module."""

    def logits(params, x):
        return classifier.apply({"params": params}, x)

    return logits


class ModelSpec(NamedTuple):
    """One trunk of the comparison: ``model`` (``"resnet"``/``"mlp"``), ``depth`` and init scale ``w_std``."""

    model: str
    depth: int
    w_std: float = 1.0

    @property
    def label(self) -> str:
        name = {"resnet": "ResNet", "mlp": "MLP"}[self.model]
        return f"{name}-{self.depth}" + ("" if self.w_std == 1.0 else f" (w_std {self.w_std:g})")


def parse_model_spec(text: str) -> ModelSpec:
    """``"resnet:15"``, ``"mlp:3"`` or ``"mlp:15:6"`` (model:depth[:w_std]) → `ModelSpec`.

    **Raises:** `ValueError` naming the expected format.
    """
    parts = str(text).split(":")
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        model, depth = check_choice("model", parts[0], MODELS), int(parts[1])
        w_std = float(parts[2]) if len(parts) == 3 else 1.0
        if depth < 1 or not np.isfinite(w_std) or w_std <= 0:
            raise ValueError
    except ValueError as e:
        raise ValueError(
            f"model spec must be model:depth[:w_std] with model in {list(MODELS)}, depth >= 1, w_std > 0 "
            f"(e.g. resnet:15, mlp:3, mlp:15:6), got {text!r}"
        ) from e
    return ModelSpec(model, depth, w_std)


class NoiseComparison(NamedTuple):
    """Result of `compare_noise_robustness`.

    - `table`: JSON-able dict: ``sigmas``, ``seeds``, ``num_draws``, ``train_options``, ``rows`` (one
      per model and seed: label, model, initial_depth, depth (trained, final), w_std, seed, clean_accuracy, accuracy_mean/std per σ,
      median linearised perturbation growth of the trunk at its last layer, train time) and
      ``summary`` (per label, averaged over seeds).
    - `curves`: label → `NoiseRobustness` pooled over seeds (accuracy ``(S, seeds · draws)``).
    """

    table: dict
    curves: dict


def compare_noise_robustness(
    data,
    specs: Sequence[ModelSpec],
    *,
    sigmas,
    key: jax.Array,
    num_draws: int = 20,
    seeds: Sequence[int] = (0,),
    growth_draws: int = 4,
    progress: bool = False,
    **train_options,
) -> NoiseComparison:
    """Train each `ModelSpec` with `resflow.fit` for every seed, then measure accuracy under input noise.

    Training for seed s uses ``jax.random.key(s)`` for every model (same init key, same batch order);
    all models and seeds are evaluated with the same noise (`key`), on ``data.x_test`` in the data's
    (standardised) units. The trunk's linearised perturbation growth ||δx_T|| / ||δx_0|| (median over
    test inputs and `growth_draws` directions, `linear_growth`) is recorded too.

    **Arguments:**

    - `data`: a `resflow.data.Dataset`.
    - `specs`: the trunks to compare (`ModelSpec` or strings for `parse_model_spec`).
    - `sigmas`: noise levels σ ≥ 0; `key`, `num_draws`: as in `noise_accuracy`.
    - `seeds`: training seeds.
    - `growth_draws`: directions for the growth measurement.
    - `progress`: a tqdm bar over the runs.
    - `train_options`: further `resflow.TrainConfig` fields for every run (width, epochs, lr, ...).

    **Returns:** `NoiseComparison` (``table``, ``curves``).

    **Raises:** `ValueError` for an empty `specs`/`seeds`, a bad spec, negative or non-finite
    `sigmas`, or `train_options` that set ``model``, ``depth`` or ``w_std`` (the specs do);
    `TypeError` for non-integer seeds; whatever `resflow.fit` raises for bad options.
    All but the last are checked before any training.
    """
    from .train import fit  # train imports flax/optax; keep `noise_accuracy` light.

    specs = [s if isinstance(s, ModelSpec) else parse_model_spec(s) for s in specs]
    seeds = [check_int("seed", s, minimum=0) for s in seeds]
    if not specs or not seeds:
        raise ValueError("specs and seeds must be non-empty")
    clash = sorted(set(train_options) & {"model", "depth", "w_std"})
    if clash:
        raise ValueError(f"train_options must not set {clash}: each ModelSpec fixes model, depth and w_std")
    # Checked before the first (slow) training run.
    sigmas = np.asarray(check_array("sigmas", np.asarray(sigmas, np.float64), ndim=1), np.float64)
    if np.any(sigmas < 0):
        raise ValueError(f"sigmas must be >= 0, got {sigmas}")
    runs = [(seed, spec) for seed in seeds for spec in specs]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(runs), desc="noise robustness", unit="run")
    rows, pooled = [], {}
    for seed, spec in runs:
        if bar is not None:
            bar.set_postfix_str(f"{spec.label} seed {seed}")
        t0 = time.perf_counter()
        options = dict(train_options, model=spec.model, depth=spec.depth, w_std=spec.w_std)
        result = fit(data, key=jax.random.key(seed), figures=False, **options)
        train_time = time.perf_counter() - t0
        dtype = jnp.dtype(result.config.dtype)
        x_test = jnp.asarray(data.x_test, dtype)
        y_test = jnp.asarray(data.y_test, jnp.int32)
        noisy = noise_accuracy(
            _logits_of(result.classifier),
            x_test,
            y_test,
            jnp.asarray(sigmas, dtype),
            key=key,
            num_draws=num_draws,
            params=result.params,
        )
        x0 = result.classifier.apply({"params": result.params}, x_test, method="embed")
        growth = linear_growth(
            result.trunk_params(),
            x0,
            key=jax.random.fold_in(key, 1),
            num_draws=growth_draws,
            depth=result.depth,
            model=spec.model,
            activation=result.config.activation,
            h=result.config.h,
        )
        rows.append(
            {
                "label": spec.label,
                "model": spec.model,
                "initial_depth": spec.depth,
                "depth": result.depth,  # the trained depth (< initial_depth after depth_adapt cuts)
                "w_std": spec.w_std,
                "seed": seed,
                "clean_accuracy": float(result.metrics["test_accuracy"]),
                "accuracy_mean": [float(v) for v in noisy.mean],
                "accuracy_std": [float(v) for v in noisy.std],
                "growth_median_T": float(jnp.median(growth[-1])),
                "train_time_s": round(train_time, 2),
            }
        )
        pooled.setdefault(spec.label, []).append(np.asarray(noisy.accuracy))
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()

    curves, summary = {}, {}
    for label, accs in pooled.items():
        acc = np.concatenate(accs, axis=1)
        curves[label] = NoiseRobustness(sigmas, acc, acc.mean(axis=1), acc.std(axis=1))
        mine = [r for r in rows if r["label"] == label]
        summary[label] = {
            "clean_accuracy": float(np.mean([r["clean_accuracy"] for r in mine])),
            "accuracy_mean": [float(v) for v in acc.mean(axis=1)],
            "growth_median_T": float(np.median([r["growth_median_T"] for r in mine])),
        }
    table = {
        "sigmas": [float(s) for s in sigmas],
        "seeds": seeds,
        "num_draws": num_draws,
        "data": {k: v for k, v in data.meta.items() if isinstance(v, str | int | float | bool)},
        "train_options": dict(train_options),
        "rows": rows,
        "summary": summary,
    }
    return NoiseComparison(table, curves)
