"""Cooperation and competition between residuals (science.md §3).

For the logistic residual map r_{t+1} = σ(σ⁻¹(r_t) + h W r_t), for j ≠ i

    C_t[i, j] = ∂r_{t+1,i}/∂r_{t,j} = h · r_{t+1,i}(1 − r_{t+1,i}) · W_ij :

residual j cooperates with (excites) residual i when W_ij > 0 and competes with (inhibits) it
when W_ij < 0; r(1 − r) sets the strength at layer t, never the sign. Pairs classify as in
ecology from the signs of W_ij and W_ji.

Diagonal convention: C_t[i, i] = h r_{t+1,i}(1 − r_{t+1,i}) W_ii, the self-excitation
(W_ii > 0) or self-limitation (W_ii < 0) of the Lotka–Volterra form; it is the Jacobian's
diagonal minus the persistence term r_{t+1,i}(1 − r_{t+1,i}) / (r_{t,i}(1 − r_{t,i})).
Untied weights: r_{t+1} = σ(W_{t+1}(x_t + h r_t) + b_{t+1}), so C_t uses W_{t+1}.

Logistic activation only: r(1 − r) is σ' of the logistic σ. `interaction_coefficients` takes
``activation="sigmoid"`` and refuses any other name rather than return wrong coefficients.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from ._checks import check_array, check_labels, check_positive, check_unit_interval
from .jacobians import check_logistic
from .model import TrunkParams, check_params, is_shared
from .separability import class_weights

__all__ = [
    "PAIR_CLASSES",
    "SELF",
    "NEUTRAL",
    "MUTUALISM",
    "COMPETITION",
    "EXPLOITATION",
    "interaction_coefficients",
    "pair_classes",
    "InteractionSummary",
    "interaction_summary",
]

PAIR_CLASSES = ("neutral", "mutualism", "competition", "exploitation")
"""Names of the pair codes 0 … 3 of `pair_classes`; the diagonal holds `SELF` = −1."""
SELF, NEUTRAL, MUTUALISM, COMPETITION, EXPLOITATION = -1, 0, 1, 2, 3


def interaction_coefficients(
    params: TrunkParams, residuals: Float[Array, "T *batch n"], *, h=1.0, activation: str = "sigmoid"
) -> Float[Array, "T_minus_1 *batch n n"]:
    """Cooperation/competition coefficients C_t[i, j] = h r_{t+1,i}(1 − r_{t+1,i}) W_ij.

    **Arguments:**

    - `params`: `TrunkParams`, shared (W) or untied (layer t + 1's W_{t+1} couples r_t to r_{t+1}).
    - `residuals`: logistic residuals r_0 … r_{T−1}, ``(T, *batch, n)`` with T ≥ 2, in the closed
      [0, 1]: C_t needs only r_{t+1}(1 − r_{t+1}) = σ'(a_{t+1}), never 1/(r(1 − r)) or σ⁻¹, so a
      saturated residual (exactly 0 or 1, as float32 rounds σ(a) for |a| ≳ 17) is valid and its
      coefficients vanish, their limit. (`resflow.residual_jacobians` needs the open interval.)
    - `h`: step size > 0.
    - `activation`: must be ``"sigmoid"`` (logistic activation only: r(1 − r) = σ' is the logistic
      derivative; the residuals of a tanh/relu network can lie in [0, 1] and would get wrong coefficients).

    **Returns:** ``(T − 1, *batch, n, n)``; entry t couples r_t to r_{t+1}. Off the diagonal it
    equals the residual Jacobian ∂r_{t+1}/∂r_t; the diagonal is the self term (module docstring).

    **Raises:** `ValueError`/`TypeError` for residuals outside [0, 1], T < 2, a width that does not
    match W, too few untied layers, h ≤ 0, an activation other than ``"sigmoid"``.
    """
    params = check_params(params)
    check_positive("h", h)
    check_logistic(activation)
    n = params.W.shape[-1]
    r = check_array("residuals", residuals, min_ndim=2, last_dim=n)
    T = r.shape[0]
    if T < 2:
        raise ValueError(f"residuals must hold at least 2 layers along axis 0, got shape {r.shape}")
    check_unit_interval("residuals", r, closed=True)
    d_next = r[1:] * (1 - r[1:])
    if is_shared(params):
        W = params.W
    else:
        if params.W.shape[0] < T:
            raise ValueError(f"untied params have {params.W.shape[0]} layers but residuals have T = {T}")
        W = params.W[1:T].reshape((T - 1,) + (1,) * (r.ndim - 2) + (n, n))
    return jnp.asarray(h, r.dtype) * d_next[..., :, None] * W


def pair_classes(W: Float[Array, "*layers n n"], *, atol: float = 0.0) -> Int[Array, "*layers n n"]:
    """Ecological class of each pair (i, j) from the signs of W_ij and W_ji.

    Codes (names in `PAIR_CLASSES`): `MUTUALISM` = 1 (both > atol), `COMPETITION` = 2
    (both < −atol), `EXPLOITATION` = 3 (one > atol, the other < −atol), `NEUTRAL` = 0 (either
    |W| ≤ atol); `SELF` = −1 on the diagonal. The result is symmetric.

    **Arguments:** `W` ``(*layers, n, n)`` (a weight matrix, a stack of them, or coefficients
    C_t, whose signs are W's); `atol` ≥ 0, magnitudes at or below it count as zero.

    **Returns:** int8 array of W's shape.

    **Raises:** `ValueError`/`TypeError` for non-square or non-finite W (NaN has no sign), a negative atol.
    """
    W = check_array("W", W, min_ndim=2)
    if W.shape[-1] != W.shape[-2]:
        raise ValueError(f"W must have shape (..., n, n), got {W.shape}")
    if not np.isfinite(atol) or atol < 0:
        raise ValueError(f"atol must be a finite number >= 0, got {atol}")
    sign = jnp.where(W > atol, 1, jnp.where(W < -atol, -1, 0))
    sign_t = jnp.swapaxes(sign, -1, -2)
    code = jnp.where(
        (sign == 0) | (sign_t == 0),
        NEUTRAL,
        jnp.where(sign == sign_t, jnp.where(sign > 0, MUTUALISM, COMPETITION), EXPLOITATION),
    )
    eye = jnp.eye(W.shape[-1], dtype=bool)
    return jnp.where(eye, SELF, code).astype(jnp.int8)


class InteractionSummary(NamedTuple):
    """Per-class, per-layer summaries of coefficients C ``(L, batch, n, n)``.

    - `classes`: ``(K,)`` the distinct labels, sorted.
    - `class_mean`: ``(K, L, n, n)`` mean coefficient matrix of each class at each layer.
    - `cooperative_fraction`: ``(K, L)`` mean over the class's inputs of the fraction of the
      n(n − 1) off-diagonal coefficients that are > atol.
    - `competitive_fraction`: ``(K, L)`` the same for < −atol.
    - `cooperative_share`: ``(K, L)`` mean of Σ_{i≠j} C⁺ / Σ_{i≠j} |C|: the magnitude-weighted
      balance (1 all cooperation, 0 all competition; 0.5 where all |C| = 0). With shared W the
      counts follow W's signs and barely move; the share moves as residuals saturate.
    """

    classes: Int[Array, " K"]
    class_mean: Float[Array, "K L n n"]
    cooperative_fraction: Float[Array, "K L"]
    competitive_fraction: Float[Array, "K L"]
    cooperative_share: Float[Array, "K L"]


def interaction_summary(
    coefficients: Float[Array, "L batch n n"], labels: Int[Array, " batch"], *, atol: float = 0.0
) -> InteractionSummary:
    """Per-class cooperation/competition statistics of `interaction_coefficients` output.

    **Arguments:**

    - `coefficients`: ``(L, batch, n, n)`` from `interaction_coefficients`.
    - `labels`: ``(batch,)`` integer classes ≥ 0.
    - `atol`: ≥ 0; coefficients with |C| ≤ atol count as neither cooperative nor competitive.

    **Returns:** `InteractionSummary`.

    **Raises:** `ValueError`/`TypeError` for a wrong shape, labels of the wrong length or dtype or
    negative, atol < 0.
    """
    C = check_array("coefficients", coefficients, ndim=4)
    L, B, n, m = C.shape
    if n != m:
        raise ValueError(f"coefficients must have shape (L, batch, n, n), got {C.shape}")
    labels = check_labels("labels", labels, B)
    if not np.isfinite(atol) or atol < 0:
        raise ValueError(f"atol must be a finite number >= 0, got {atol}")
    off = ~jnp.eye(n, dtype=bool)
    pairs = n * (n - 1) if n > 1 else 1
    coop = jnp.sum((C > atol) & off, axis=(-2, -1)) / pairs
    comp = jnp.sum((C < -atol) & off, axis=(-2, -1)) / pairs
    pos = jnp.sum(jnp.where(off, jnp.maximum(C, 0), 0), axis=(-2, -1))
    tot = jnp.sum(jnp.where(off, jnp.abs(C), 0), axis=(-2, -1))
    share = jnp.where(tot > 0, pos / jnp.where(tot > 0, tot, 1), 0.5)
    classes, w = class_weights(labels, C.dtype)

    def per_class(x):  # (L, B, ...) -> (K, L, ...)
        return jnp.tensordot(w, x, axes=([0], [1]))

    return InteractionSummary(
        classes,
        per_class(C),
        per_class(coop.astype(C.dtype)),
        per_class(comp.astype(C.dtype)),
        per_class(share),
    )
