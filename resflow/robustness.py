"""Accuracy under additive Gaussian input noise (science.md §5, §7 claim 6).

For a classifier f (logits or class predictions of a batch of inputs), test data (X, y) and a
grid of noise levels σ, the accuracy of draw k at level σ is

    acc(σ, k) = mean_i [ argmax f(x_i + σ ε_{k,i}) = y_i ],      ε_{k,i} ~ N(0, I),

with the *same* ε_k for every σ (common random numbers: the curve acc(σ) varies only through
σ, and two classifiers evaluated with the same key see the same noise). Draws are batched with
`jax.vmap`, noise levels stepped with `jax.lax.map` so that memory holds one level at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from ._checks import check_array, check_int, is_concrete
from .separability import _check_labels

__all__ = ["NoiseRobustness", "noise_accuracy"]


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

    **Returns:** `NoiseRobustness` (``sigmas``, ``accuracy (S, draws)``, ``mean``, ``std``).

    **Raises:** `TypeError` if `predict_fn` is not callable or returns neither ``(N, C)`` floats nor
    ``(N,)`` integers; `ValueError` for non-finite or wrongly shaped `x`/`labels`, negative or
    non-finite σ, or ``num_draws < 1``.
    """
    if not callable(predict_fn):
        raise TypeError(f"predict_fn must be a callable of a batch (N, d), got {type(predict_fn).__name__}")
    x = check_array("x", x, ndim=2)
    y = _check_labels("labels", labels, x.shape[0])
    s = check_array("sigmas", sigmas, ndim=1).astype(x.dtype)
    if is_concrete(s) and np.any(np.asarray(s) < 0):
        raise ValueError(f"sigmas must be >= 0, got {np.asarray(s)}")
    num_draws = check_int("num_draws", num_draws)

    out = jax.eval_shape(predict_fn, x)
    is_logits = out.shape[:1] == (x.shape[0],) and len(out.shape) == 2 and jnp.issubdtype(out.dtype, jnp.floating)
    is_classes = out.shape == (x.shape[0],) and jnp.issubdtype(out.dtype, jnp.integer)
    if not (is_logits or is_classes):
        raise TypeError(
            f"predict_fn must return logits ({x.shape[0]}, C) or integer classes ({x.shape[0]},), "
            f"got {out.dtype} {out.shape}"
        )

    @jax.jit
    def run(x, y, s, key):
        noise = jax.vmap(lambda k: jax.random.normal(k, x.shape, x.dtype))(jax.random.split(key, num_draws))

        def acc(xn):
            pred = predict_fn(xn)
            pred = jnp.argmax(pred, axis=-1) if is_logits else pred
            return jnp.mean(pred == y)

        return jax.lax.map(lambda sig: jax.vmap(lambda e: acc(x + sig * e))(noise), s)

    accuracy = run(x, y, s, key).astype(x.dtype)
    return NoiseRobustness(s, accuracy, accuracy.mean(axis=1), accuracy.std(axis=1))
