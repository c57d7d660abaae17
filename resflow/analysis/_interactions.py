"""Cooperation and competition between residuals.

For the logistic residual map r_{t+1} = σ(σ⁻¹(r_t) + h W r_t) (a shared-weight sigmoid resnet:
from a_t = W x_t + b and x_{t+1} = x_t + h r_t follows a_{t+1} = a_t + h W r_t), for j ≠ i

    C_t[i, j] = ∂r_{t+1,i}/∂r_{t,j} = h · r_{t+1,i}(1 − r_{t+1,i}) · W_ij :

residual j cooperates with (excites) residual i when W_ij > 0 and competes with (inhibits) it
when W_ij < 0; r(1 − r) = σ'(a) sets the strength at layer t, never the sign. Pairs classify as
in ecology from the signs of W_ij and W_ji (`PairClass`).

Diagonal convention: C_t[i, i] = h r_{t+1,i}(1 − r_{t+1,i}) W_ii, the self-excitation
(W_ii > 0) or self-limitation (W_ii < 0) of the Lotka–Volterra form; it is the Jacobian's
diagonal minus the persistence term r_{t+1,i}(1 − r_{t+1,i}) / (r_{t,i}(1 − r_{t,i})).
Untied weights: r_{t+1} = σ(W_{t+1}(x_t + h r_t) + b_{t+1}), so C_t uses W_{t+1}.

Logistic resnets only: r(1 − r) is σ' of the logistic σ, so other trunks are refused rather
than given wrong coefficients.
"""

from __future__ import annotations

import enum
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from .._checks import all_true, as_float_array, check_array, check_unit_interval, label_array
from ..trunk._trunk import Trunk, check_trunk, depth_weights, require_logistic
from ._separability import class_count, class_means, class_weights

__all__ = ["PairClass", "interaction_coefficients", "pair_classes", "InteractionSummary", "interaction_summary"]


class PairClass(enum.IntEnum):
    """Codes of `pair_classes`: the ecological class of a pair (i, j) from the signs of W_ij, W_ji.

    ``SELF`` (−1) marks the diagonal. ``PairClass(code).label`` is the display name
    (``"mutualism"``, …); the members are ints, so they compare with the int8 codes directly.
    """

    SELF = -1
    NEUTRAL = 0
    MUTUALISM = 1
    COMPETITION = 2
    EXPLOITATION = 3

    @property
    def label(self) -> str:
        """The lower-case display name, e.g. ``"competition"``."""
        return self.name.lower()


def _in_unit(xp, a):
    # NaN and ±inf fail both comparisons, so this is also the finiteness check.
    return (a >= 0) & (a <= 1)


def interaction_coefficients(
    trunk: Trunk, residuals: Float[Array, "T *batch n"]
) -> Float[Array, "T_minus_1 *batch n n"]:
    """Cooperation/competition coefficients C_t[i, j] = h r_{t+1,i}(1 − r_{t+1,i}) W_ij.

    **Arguments:**

    - `trunk`: a logistic resnet `Trunk` (sigmoid activation), shared (W) or untied (layer
      t + 1's W_{t+1} couples r_t to r_{t+1}); h is read from it.
    - `residuals`: logistic residuals r_0 … r_{T−1}, ``(T, *batch, n)`` with T ≥ 2, in the closed
      [0, 1]: C_t needs only r_{t+1}(1 − r_{t+1}) = σ'(a_{t+1}), never 1/(r(1 − r)) or σ⁻¹, so a
      saturated residual (exactly 0 or 1, as float32 rounds σ(a) for |a| ≳ 17) is valid and its
      coefficients vanish, their limit. (`resflow.residual_jacobians` needs the open interval.)

    **Returns:** ``(T − 1, *batch, n, n)``; entry t couples r_t to r_{t+1}. Off the diagonal it
    equals the residual Jacobian ∂r_{t+1}/∂r_t; the diagonal is the self term (module docstring).

    **Raises:** `ValueError`/`TypeError` for a trunk that is not a logistic resnet, residuals
    outside [0, 1], T < 2, a width that does not match W, too few untied layers. One
    device-to-host read.
    """
    trunk = require_logistic(check_trunk(trunk), "interaction_coefficients")
    n = trunk.width
    r = as_float_array("residuals", residuals)
    if r.ndim < 2 or r.shape[-1] != n:
        raise ValueError(f"residuals must have shape (T, *batch, {n}) with trailing dimension {n}, got {r.shape}")
    T = r.shape[0]
    if T < 2:
        raise ValueError(f"residuals must hold at least 2 layers along axis 0, got shape {r.shape}")
    if not trunk.shared and trunk.num_layers < T:
        raise ValueError(f"the untied trunk has {trunk.num_layers} layers but residuals have T = {T}")
    if not all_true({"residuals": (r, _in_unit)}):
        check_array("residuals", r, min_ndim=2)
        check_unit_interval("residuals", r, closed=True)
    return _coefficients(trunk, r)


@jax.jit
def _coefficients(trunk: Trunk, r):
    W = depth_weights(trunk, r.shape[0], extra=r.ndim - 2)[0]
    W = W if trunk.shared else W[1:]
    d_next = r[1:] * (1 - r[1:])
    return trunk.h.astype(r.dtype) * d_next[..., :, None] * W


def pair_classes(W: Float[Array, "*layers n n"], *, atol: float = 0.0) -> Int[Array, "*layers n n"]:
    """Ecological class of each pair (i, j) from the signs of W_ij and W_ji (`PairClass` codes).

    `MUTUALISM` (both > atol), `COMPETITION` (both < −atol), `EXPLOITATION` (one > atol, the
    other < −atol), `NEUTRAL` (either |W| ≤ atol); `SELF` on the diagonal. The result is symmetric.

    **Arguments:** `W` ``(*layers, n, n)`` (a weight matrix such as ``trunk.W``, a stack of
    them, or coefficients C_t, whose signs are W's); `atol` ≥ 0, magnitudes at or below it
    count as zero.

    **Returns:** int8 array of W's shape.

    **Raises:** `ValueError`/`TypeError` for non-square or non-finite W (NaN has no sign), a negative atol.
    """
    W = check_array("W", W, min_ndim=2)
    if W.shape[-1] != W.shape[-2]:
        raise ValueError(f"W must have shape (..., n, n), got {W.shape}")
    _check_atol(atol)
    return _pair_classes(W, atol)


@jax.jit
def _pair_classes(W, atol):
    sign = jnp.where(W > atol, 1, jnp.where(W < -atol, -1, 0))
    sign_t = jnp.swapaxes(sign, -1, -2)
    code = jnp.where(
        (sign == 0) | (sign_t == 0),
        PairClass.NEUTRAL,
        jnp.where(
            sign == sign_t, jnp.where(sign > 0, PairClass.MUTUALISM, PairClass.COMPETITION), PairClass.EXPLOITATION
        ),
    )
    eye = jnp.eye(W.shape[-1], dtype=bool)
    return jnp.where(eye, PairClass.SELF, code).astype(jnp.int8)


def _check_atol(atol):
    if not np.isfinite(atol) or atol < 0:
        raise ValueError(f"atol must be a finite number >= 0, got {atol}")


class InteractionSummary(NamedTuple):
    """Per-class, per-layer summaries of coefficients C ``(L, batch, n, n)``; K classes 0 … K−1.

    - `class_counts`: ``(K,)`` number of inputs of each class.
    - `class_mean`: ``(K, L, n, n)`` mean coefficient matrix of each class at each layer.
    - `cooperative_fraction`: ``(K, L)`` mean over the class's inputs of the fraction of the
      n(n − 1) off-diagonal coefficients that are > atol.
    - `competitive_fraction`: ``(K, L)`` the same for < −atol.
    - `cooperative_share`: ``(K, L)`` mean of Σ_{i≠j} C⁺ / Σ_{i≠j} |C|: the magnitude-weighted
      balance (1 all cooperation, 0 all competition; 0.5 where all |C| = 0). With shared W the
      counts follow W's signs and barely move; the share moves as residuals saturate.

    A class without inputs has NaN statistics.
    """

    class_counts: Int[Array, " K"]
    class_mean: Float[Array, "K L n n"]
    cooperative_fraction: Float[Array, "K L"]
    competitive_fraction: Float[Array, "K L"]
    cooperative_share: Float[Array, "K L"]


def interaction_summary(
    coefficients: Float[Array, "L batch n n"],
    labels: Int[Array, " batch"],
    *,
    num_classes: int | None = None,
    atol: float = 0.0,
) -> InteractionSummary:
    """Per-class cooperation/competition statistics of `interaction_coefficients` output.

    **Arguments:**

    - `coefficients`: ``(L, batch, n, n)`` from `interaction_coefficients`.
    - `labels`: ``(batch,)`` integer classes in 0 … K−1.
    - `num_classes`: K; inferred as max label + 1 when omitted (give it under `jax.jit`).
    - `atol`: ≥ 0; coefficients with |C| ≤ atol count as neither cooperative nor competitive.

    **Returns:** `InteractionSummary`.

    **Raises:** `ValueError`/`TypeError` for a wrong shape, non-finite coefficients, labels of the
    wrong length or dtype, negative or ≥ `num_classes`, atol < 0. One device-to-host read.
    """
    C = as_float_array("coefficients", coefficients)
    if C.ndim != 4 or C.shape[-1] != C.shape[-2]:
        raise ValueError(f"coefficients must have shape (L, batch, n, n), got {C.shape}")
    L, B, n, _ = C.shape
    y = label_array("labels", labels, B)
    _check_atol(atol)
    checks = {"coefficients": (C, lambda xp, a: xp.isfinite(a))}
    K = class_count({"labels": y}, num_classes, checks, lambda: check_array("coefficients", C))
    return _summary(C, y, atol, num_classes=K)


@functools.partial(jax.jit, static_argnames=("num_classes",))
def _summary(C, y, atol, *, num_classes: int) -> InteractionSummary:
    n = C.shape[-1]
    off = ~jnp.eye(n, dtype=bool)
    pairs = n * (n - 1) if n > 1 else 1
    coop = jnp.sum((C > atol) & off, axis=(-2, -1)) / pairs
    comp = jnp.sum((C < -atol) & off, axis=(-2, -1)) / pairs
    pos = jnp.sum(jnp.where(off, jnp.maximum(C, 0), 0), axis=(-2, -1))
    tot = jnp.sum(jnp.where(off, jnp.abs(C), 0), axis=(-2, -1))
    share = jnp.where(tot > 0, pos / jnp.where(tot > 0, tot, 1), 0.5)
    counts, w = class_weights(y, num_classes, C.dtype)

    def per_class(x):  # (L, B, ...) -> (K, L, ...)
        return class_means(w, counts, jnp.swapaxes(x, 0, 1).astype(C.dtype))

    return InteractionSummary(
        counts.astype(jnp.int32), per_class(C), per_class(coop), per_class(comp), per_class(share)
    )
