"""Empirical steady state of a network's residuals: run the shared-weight residual map far past
its depth and describe where the inputs settle (`steady_state`)."""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from .._checks import as_float_array, check_int, check_positive
from ..trunk._activations import get_activation
from ..trunk._residuals import advance_preactivations, preactivation_scan
from ..trunk._trunk import Trunk, check_state, check_trunk, require_shared
from ._separability import class_means, class_weights, optional_labels

__all__ = ["SteadyState", "steady_state"]


class SteadyState(NamedTuple):
    """Where each input's residuals end up after many layers of the shared-weight map.

    - `final`: ``(*batch, n)`` r_{T−1}, the last residual.
    - `change`: ``(*batch,)`` ‖r_{T−1} − r_{T−2}‖_∞, the last step's movement.
    - `converged`: ``(*batch,)`` change ≤ tol and `escaping` = 0 (r has stopped moving, and no
      unit hides a pre-activation drift behind a saturated σ).
    - `class_counts`: ``(K,)`` number of inputs of each class 0 … K−1.
    - `class_means`: ``(K, n)`` mean final residual of each class (NaN for an empty class).
    - `class_spread`: ``(K,)`` RMS Euclidean distance of a class's final residuals to its mean.
    - `class_distance`: max over pairs of non-empty classes of ‖mean_c − mean_c'‖_∞ (0: a
      class-independent r*; residuals live in [0, 1], so this is on an absolute scale).
    - `dominant`: ``(n,)`` the final residual with the most other final residuals within `atol`
      (searched among the first 2048 inputs, batch axes flattened): the most common attractor.
    - `dominant_fraction`: fraction of all inputs whose final residual lies within `atol`
      (Euclidean) of `dominant`; 1.0 means every input reaches the same attractor.
    - `escaping`: ``(*batch,)`` int, the number of units whose pre-activation still moves back
      towards 0 by more than tol per layer: |h (W r_{T−1})_i| > tol with a sign opposite to
      a_{T−1,i}. Such a unit may sit at r_i = 0 or 1 to machine precision (no change in r) while
      a_i drifts linearly out of saturation: the input is near a saddle and leaves it later.
    """

    final: Float[Array, "*batch n"]
    change: Float[Array, " *batch"]
    converged: Bool[Array, " *batch"]
    class_counts: Int[Array, " K"]
    class_means: Float[Array, "K n"]
    class_spread: Float[Array, " K"]
    class_distance: Float[Array, ""]
    dominant: Float[Array, " n"]
    dominant_fraction: Float[Array, ""]
    escaping: Int[Array, " *batch"]


@functools.partial(jax.jit, static_argnames=("depth",))
def _last_two_residuals(trunk, a0, *, depth):
    """(r_{T−2}, r_{T−1}), a_{T−1} of a_{t+1} = a_t + h W act(a_t), without storing earlier layers."""
    a = preactivation_scan(trunk, advance_preactivations(trunk, a0, steps=depth - 2), depth=2)
    return get_activation(trunk.activation).fn(a), a[1]


def _escaping_units(trunk, a, r, tol):
    """Units whose pre-activation moves back towards 0 by more than `tol` in the next layer.

    The next step is a_T − a_{T−1} = h (W r_{T−1}), computed from r (no cancellation against a
    large |a|). A unit is held when that step is at most `tol` or has the sign of a (it moves
    deeper into the flat part of the activation: r_i → 1 needs (W r)_i > 0, r_i → 0 needs
    (W r)_i < 0). A unit moving back while σ has saturated shows no change in r yet, but
    leaves the saturation some layers later (a saddle's unstable direction).
    """
    step = trunk.h * r @ trunk.W.T
    return jnp.sum((jnp.abs(step) > tol) & (step * a <= 0), axis=-1)


def _within(points, centre, atol):
    # Differences first: ‖p‖² + ‖q‖² − 2 p·q cancels catastrophically in float32 (errors ~1e-5 at
    # n = 64 against atol² = 1e-6), so distances are computed from p − q directly.
    return jnp.linalg.norm(points - centre, axis=-1) <= atol


@jax.jit
def _dominant(final, atol):
    probe = final[:2048]
    # One probe row at a time (in blocks): O(block · probe · n) memory, not probe² · n.
    counts = jax.lax.map(lambda p: jnp.sum(_within(probe, p, atol)), probe, batch_size=64)
    centre = probe[jnp.argmax(counts)]
    return centre, jnp.mean(_within(final, centre, atol).astype(final.dtype))


def _class_statistics(final, y, num_classes):
    """Class counts, means, spreads and the largest distance between non-empty class means."""
    counts, w = class_weights(y, num_classes, final.dtype)
    means = class_means(w, counts, final)
    present = counts > 0
    sq = jnp.sum((final[:, None, :] - jnp.where(present[:, None], means, 0)[None]) ** 2, -1)
    spread = jnp.where(present, jnp.sqrt(jnp.sum(sq * w, axis=0)), jnp.nan)
    gaps = jnp.max(jnp.abs(means[:, None] - means[None, :]), axis=-1)
    distance = jnp.max(jnp.where(present[:, None] & present[None, :], gaps, 0))
    return counts.astype(jnp.int32), means, spread, distance


def steady_state(
    trunk: Trunk,
    x0: Float[Array, "*batch n"],
    labels: Int[Array, " *batch"] | None = None,
    *,
    depth: int,
    num_classes: int | None = None,
    tol: float = 1e-6,
    atol: float = 1e-3,
) -> SteadyState:
    """Run a network's residual dynamics for `depth` layers and describe where inputs settle.

    From a_0 = W x_0 + b the residuals follow a_{t+1} = a_t + h W act(a_t), r_t = act(a_t)
    (shared-weight resnet; the trained depth is irrelevant: the same layer is applied `depth`
    times, as in a 1000-layer run of a 15-layer network). Only the last two residuals and the
    last pre-activation are kept. Jittable with `num_classes` given.

    An input has *converged* when ‖r_{T−1} − r_{T−2}‖_∞ ≤ tol and, in pre-activation space,
    every unit is held: its next step h (W r_{T−1})_i is at most tol in size or has the sign of
    a_{T−1,i} (moves it deeper into saturation). The change of r alone cannot tell a saddle
    from an attractor once σ has saturated: r_i = 1 − 10⁻⁴⁰ does not move while a_i falls by
    h |(W r)_i| per layer and r_i leaves 1 about a_i / (h |(W r)_i|) layers later. At a saturated attractor
    the sign conditions are those of the linear test, s_i (W r*)_i > 0 (s_i = +1 at 1, −1 at 0);
    a free unit must stop moving in a as well as in r.

    **Arguments:**

    - `trunk`: a shared-weight resnet `Trunk` (any activation; h and the activation are its own).
    - `x0`: inputs (trunk states) ``(*batch, n)`` in the trunk's dtype; the batch axes are
      flattened for the class and attractor statistics and restored in `final`, `change`, `converged`.
    - `labels`: ``(*batch,)`` integer classes in 0 … K−1, or None (one class).
    - `depth`: T ≥ 2 layers (e.g. 1000).
    - `num_classes`: K; inferred as max label + 1 when omitted (give it under `jax.jit`).
    - `tol`: convergence threshold on ‖r_{T−1} − r_{T−2}‖_∞ and on the size of a pre-activation
      step back towards 0.
    - `atol`: Euclidean radius within which two final residuals count as the same attractor.

    **Returns:** `SteadyState` (``final (*batch, n)``, ``change``/``converged``/``escaping`` ``(*batch,)``).

    **Raises:** `ValueError`/`TypeError` for an untied or MLP trunk, x0 of the wrong width or
    dtype or non-finite, labels not of x0's batch shape, non-integer, negative or
    ≥ `num_classes`, depth < 2, non-positive tol/atol. One device-to-host read for the values.
    """
    trunk = require_shared(check_trunk(trunk), "running the residual map past its depth")
    if trunk.model != "resnet":
        raise ValueError(f"steady_state needs a resnet trunk (the residual recurrence), got model={trunk.model!r}")
    n = trunk.width
    x0 = as_float_array("x0", x0)
    if x0.ndim < 1 or x0.shape[-1] != n:
        raise ValueError(f"x0 must have shape (*batch, {n}), got {x0.shape}")
    if x0.dtype != trunk.dtype:
        check_state(trunk, x0)  # raises its dtype TypeError
    batch = x0.shape[:-1]
    depth = check_int("depth", depth, minimum=2)
    check_positive("tol", tol)
    check_positive("atol", atol)
    checks = {"x0": (x0, lambda xp, a: xp.isfinite(a))}
    y, K = optional_labels(labels, batch, num_classes, checks, lambda: check_state(trunk, x0))
    return _settle(trunk, x0, y, tol, atol, depth=depth, num_classes=K)


@functools.partial(jax.jit, static_argnames=("depth", "num_classes"))
def _settle(trunk, x0, y, tol, atol, *, depth, num_classes) -> SteadyState:
    # One program for the run and every statistic (as eager ops they were dozens of programs
    # per input shape).
    batch, n = x0.shape[:-1], x0.shape[-1]
    a0 = x0.reshape(-1, n) @ trunk.W.T + trunk.b
    (r_prev, final), a = _last_two_residuals(trunk, a0, depth=depth)
    change = jnp.max(jnp.abs(final - r_prev), axis=-1)
    escaping = _escaping_units(trunk, a, final, tol)
    counts, means, spread, distance = _class_statistics(final, y.reshape(-1), num_classes)
    dominant, fraction = _dominant(final, jnp.asarray(atol, final.dtype))
    final, change, escaping = final.reshape(batch + (n,)), change.reshape(batch), escaping.reshape(batch)
    converged = (change <= tol) & (escaping == 0)
    return SteadyState(final, change, converged, counts, means, spread, distance, dominant, fraction, escaping)
