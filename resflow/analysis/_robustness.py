"""Accuracy under additive Gaussian input noise.

For a classifier f (logits or class predictions of a batch of inputs), test data (X, y) and a
grid of noise levels σ, the accuracy of draw k at level σ is

    acc(σ, k) = mean_i [ argmax f(x_i + σ ε_{k,i}) = y_i ],      ε_{k,i} ~ N(0, I),

with the *same* ε_k for every σ (common random numbers: the curve acc(σ) varies only through
σ, and two classifiers evaluated with the same key see the same noise). Draws come from
`resflow.analysis._perturbation.gaussian_draws` and are batched with `jax.vmap`; noise levels are
stepped with `jax.lax.map` so that memory holds one level at a time. The experiment that
trains and compares networks with this metric is `resflow.experiments.noise`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from .._checks import all_true, as_float_array, check_array, check_int, check_labels
from ..dynamics._common import callable_jit
from ._perturbation import check_key, gaussian_draws

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
    classifier: Callable[[Float[Array, "N d"]], Array],
    x: Float[Array, "N d"],
    labels: Int[Array, " N"],
    sigmas: Float[Array, " S"],
    *,
    key: jax.Array,
    num_draws: int = 10,
) -> NoiseRobustness:
    """Test accuracy of `classifier` on ``x + σ ε`` for every σ in `sigmas` and `num_draws` draws of ε.

    **Arguments:**

    - `classifier`: a JAX-traceable callable of a batch ``(N, d)`` returning logits
      ``(N, C)`` (the prediction is their argmax) or integer classes ``(N,)``. A pytree
      callable — an equinox Module such as a trained ``result.network``, or a bound method —
      is traced through its arrays, so new weights of the same shapes (another seed) reuse
      the compiled evaluation; a plain function compiles once per function object.
    - `x`: clean inputs ``(N, d)``; `labels`: integer classes ``(N,)``.
    - `sigmas`: noise standard deviations σ ≥ 0, ``(S,)``.
    - `key`: `jax.random` key of the noise (the same key gives the same ε for any classifier).
    - `num_draws`: noise draws per σ (≥ 1).

    **Returns:** `NoiseRobustness` (``sigmas``, ``accuracy (S, draws)``, ``mean``, ``std``).

    **Raises:** `TypeError` for a non-callable classifier, a bad key, or one that does not
    return logits or classes; `ValueError` for non-finite or wrongly shaped `x`/`labels`,
    negative labels, negative or non-finite σ, or ``num_draws < 1``. One value read per call.
    """
    if not callable(classifier):
        raise TypeError(f"classifier must be a callable of a batch (N, d), got {type(classifier).__name__}")
    check_key(key)
    x = as_float_array("x", x)
    if x.ndim != 2:
        raise ValueError(f"x must have 2 dimensions (N, d), got shape {x.shape}")
    y = jnp.asarray(labels)
    # Shapes and dtypes only (abstract evaluation reads no values); the values below, at once.
    jax.eval_shape(lambda y: check_labels("labels", y, x.shape[0]), y)
    s = as_float_array("sigmas", sigmas).astype(x.dtype)
    if s.ndim != 1:
        raise ValueError(f"sigmas must have 1 dimension, got shape {s.shape}")
    num_draws = check_int("num_draws", num_draws)
    ok = all_true(
        {
            "x": (x, lambda xp, a: xp.isfinite(a)),
            "labels": (y, lambda xp, a: a >= 0),
            "sigmas": (s, lambda xp, a: xp.isfinite(a) & (a >= 0)),
        }
    )
    if not ok:
        check_array("x", x)
        check_labels("labels", y, x.shape[0])
        check_array("sigmas", s)
        raise ValueError(f"sigmas must be >= 0, got {np.asarray(s)}")
    out = jax.eval_shape(classifier, x)
    is_logits = len(out.shape) == 2 and out.shape[0] == x.shape[0] and jnp.issubdtype(out.dtype, jnp.floating)
    is_classes = out.shape == (x.shape[0],) and jnp.issubdtype(out.dtype, jnp.integer)
    if not (is_logits or is_classes):
        raise TypeError(
            f"classifier must return logits ({x.shape[0]}, C) or integer classes ({x.shape[0]},), "
            f"got {out.dtype} {out.shape}"
        )
    accuracy = _noise_run(classifier, x, y, s, key, num_draws=num_draws, is_logits=bool(is_logits))
    accuracy = accuracy.astype(x.dtype)
    return NoiseRobustness(s, accuracy, accuracy.mean(axis=1), accuracy.std(axis=1))


@callable_jit
def _noise_run(classifier, x, y, s, key, *, num_draws, is_logits):
    noise = gaussian_draws(key, x.shape, num_draws, x.dtype)

    def acc(xn):
        pred = classifier(xn)
        pred = jnp.argmax(pred, axis=-1) if is_logits else pred
        return jnp.mean(pred == y)

    return jax.lax.map(lambda sig: jax.vmap(lambda e: acc(x + sig * e))(noise), s)
