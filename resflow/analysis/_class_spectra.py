"""Per-class spectra at the class-mean residuals (`class_mean_spectra`), and the readout's
strongest neuron per class (`readout_alignment`): the network-level companions of
`search_residual_fixed_points`."""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Complex, Float, Int

from .._checks import as_float_array, check_int, check_positive, label_array
from ..trunk._network import Network
from ..trunk._residuals import advance_preactivations
from ..trunk._trunk import Trunk, check_state, check_trunk, require_logistic, require_shared, scan_trunk
from ._separability import class_count, class_means, class_weights

__all__ = ["ClassSpectra", "class_mean_spectra", "flow_jacobian", "map_jacobian", "readout_alignment"]


class ClassSpectra(NamedTuple):
    """Spectra of the residual map and of its flow at each class's mean residual (K classes).

    - `class_means`: ``(K, n)`` r̄_c, the class-mean residual of the layer (NaN for an empty class).
    - `counts`: ``(K,)`` inputs per class.
    - `multipliers`: ``(K, n)`` complex eigenvalues of the map's Jacobian J at r̄_c, by log|μ|
      (modulus) descending.
    - `flow_eigenvalues`: ``(K, n)`` complex eigenvalues of the flow Jacobian
      ∂F/∂y = diag(y(1−y)) W + diag((1−2y)(W y)) at y = r̄_c, by real part descending.
    - `num_positive`: ``(K,)`` flow eigenvalues with real part > `zero_tol`.
    - `near_saddle`: ``(K,)`` exactly one flow eigenvalue with real part in (zero_tol, small],
      every other real part ≤ zero_tol.
    """

    class_means: Float[Array, "K n"]
    counts: Int[Array, " K"]
    multipliers: Complex[Array, "K n"]
    flow_eigenvalues: Complex[Array, "K n"]
    num_positive: Int[Array, " K"]
    near_saddle: Bool[Array, " K"]


def flow_jacobian(W: Float[Array, "n n"], y: Float[Array, "*batch n"]) -> Float[Array, "*batch n n"]:
    """∂F/∂y of F(y) = y(1−y) ⊙ (W y): diag(y(1−y)) W + diag((1−2y) ⊙ (W y)). Unchecked."""
    g = y @ W.T
    return (y * (1 - y))[..., :, None] * W + jnp.eye(W.shape[0], dtype=y.dtype) * ((1 - 2 * y) * g)[..., :, None]


def map_jacobian(W: Float[Array, "n n"], h, r: Float[Array, "*batch n"]) -> Float[Array, "*batch n n"]:
    """∂r'/∂r of r' = σ(σ⁻¹(r) + h W r) at r ∈ [0, 1]^n, with the saturated limits. Unchecked.

    J = diag(σ'(a')/σ'(a)) + h diag(σ'(a')) W, a = σ⁻¹(r), a' = a + h W r. The diagonal ratio
    is taken in logs, log σ'(z) = −softplus(z) − softplus(−z), so that it stays exact for
    |a| large; at r_i ∈ {0, 1} (a_i = ∓∞) it is its limit e^{h λ_i}, λ_i = (1 − 2 r_i)(W r)_i,
    and σ'(a'_i) = 0 clears row i's off-diagonal part. Inside (0, 1) it is
    `resflow.residual_jacobians`' diag(r'(1−r')) (diag(1/(r(1−r))) + h W)."""
    a = jnp.log(r) - jnp.log1p(-r)
    step = h * (r @ W.T)
    a_next = a + step

    def log_grad(z):
        return -jax.nn.softplus(z) - jax.nn.softplus(-z)

    inside = jnp.isfinite(a)
    ratio = jnp.where(inside, jnp.exp(log_grad(jnp.where(inside, a_next, 0)) - log_grad(jnp.where(inside, a, 0))), 0)
    ratio = jnp.where(inside, ratio, jnp.exp(-jnp.sign(a) * step))
    grad_next = jnp.where(inside, jnp.exp(log_grad(jnp.where(inside, a_next, 0))), 0)
    return jnp.eye(W.shape[0], dtype=r.dtype) * ratio[..., :, None] + h * grad_next[..., :, None] * W


@functools.partial(jax.jit, static_argnames=("depth", "num_classes"))
def _class_spectra(trunk, x0, y, small, zero_tol, *, depth, num_classes):
    a = advance_preactivations(trunk, x0 @ trunk.W.T + trunk.b, steps=depth - 1)
    counts, w = class_weights(y, num_classes, x0.dtype)
    means = class_means(w, counts, jax.nn.sigmoid(a))
    safe = jnp.where(counts[:, None] > 0, means, 0.5)
    mult = jnp.linalg.eigvals(map_jacobian(trunk.W, trunk.h, safe))
    mult = jnp.take_along_axis(mult, jnp.argsort(-jnp.abs(mult), axis=-1, stable=True), axis=-1)
    flow = jnp.linalg.eigvals(flow_jacobian(trunk.W, safe))
    flow = jnp.take_along_axis(flow, jnp.argsort(-flow.real, axis=-1, stable=True), axis=-1)
    positive = flow.real > zero_tol
    num_positive = positive.sum(-1).astype(jnp.int32)
    near = (num_positive == 1) & (flow[:, 0].real <= small) & (counts > 0)
    return ClassSpectra(means, counts.astype(jnp.int32), mult, flow, num_positive, near)


def class_mean_spectra(
    trunk: Trunk,
    x0: Float[Array, "batch n"],
    labels: Int[Array, " batch"],
    *,
    depth: int,
    num_classes: int | None = None,
    small: float = 0.1,
    zero_tol: float = 1e-6,
) -> ClassSpectra:
    """Per class c, the spectrum of the residual map and of its flow at the class-mean residual r̄_c.

    r̄_c is the mean over the class of r_{T−1} = σ(a_{T−1}), the residual that layer T = `depth`
    adds (a_{t+1} = a_t + h W σ(a_t), a_0 = W x_0 + b, streamed). Map multipliers: eigenvalues μ
    of J = diag(r'(1−r')) (diag(1/(r̄(1−r̄))) + h W), r' = σ(σ⁻¹(r̄) + h W r̄) (`map_jacobian`,
    exact also at saturated means). Flow eigenvalues: those of the continuous limit's
    ∂F/∂y = diag(y(1−y)) W + diag((1−2y)(W y)) at y = r̄_c. Near a fixed point μ ≈ 1 + h λ, so
    the flow's λ ≈ (μ − 1)/h ≈ log|μ|/h: a flow eigenvalue of 0.02 is a multiplier ≈ 1.02 at
    h = 1 (the flow eigenvalue is the number the paper quotes). A class is *near a saddle* when
    exactly one flow eigenvalue has real part in (`zero_tol`, `small`] and all others ≤ `zero_tol`.
    Jittable with `num_classes` given.

    **Arguments:**

    - `trunk`: a shared-weight logistic resnet `Trunk`.
    - `x0`: trunk inputs ``(batch, n)`` in the trunk's dtype.
    - `labels`: ``(batch,)`` integer classes 0 … K−1.
    - `depth`: T ≥ 1 (the trained depth, e.g. 15).
    - `num_classes`: K (default max label + 1).
    - `small`, `zero_tol`: the saddle thresholds (> 0).

    **Returns:** `ClassSpectra` (an empty class has NaN means and never counts as near a saddle).

    **Raises:** `ValueError`/`TypeError` for an untied or non-logistic trunk, x0 of the wrong
    shape, dtype or not finite, bad labels, depth < 1, non-positive thresholds.
    """
    trunk = require_logistic(require_shared(check_trunk(trunk), "class-mean spectra"), "class-mean spectra")
    x0 = check_state(trunk, x0, min_ndim=2)
    if x0.ndim != 2:
        raise ValueError(f"x0 must have shape (batch, {trunk.width}), got {x0.shape}")
    depth = check_int("depth", depth)
    check_positive("small", small)
    check_positive("zero_tol", zero_tol)
    y = label_array("labels", labels, x0.shape[0])
    K = class_count({"labels": y}, num_classes)
    dtype = trunk.dtype
    return _class_spectra(
        trunk, x0, y, jnp.asarray(small, dtype), jnp.asarray(zero_tol, dtype), depth=depth, num_classes=K
    )


# --------------------------------------------------------------------------------------------
# The readout's strongest neuron per class


def readout_alignment(network: Network, x: Float[Array, "batch dim"], y: Int[Array, " batch"]) -> dict:
    """Per class c: the readout's strongest neuron and whether the class-mean output peaks there.

    The strongest neuron of class c is s_c = argmax_i V[i, c] (V the readout kernel, logits =
    x_T V + c). With m_c = mean over inputs of class c of x_T (the trunk output after
    `network.depth` layers), class c is *aligned* when argmax_i m_c(i) = s_c. The paper: every
    class but one has its highest x(15) on its strongest neuron.

    **Arguments:**

    - `network`: a `resflow.Network`.
    - `x`: inputs ``(batch, dim)``; `y`: ``(batch,)`` integer labels in 0 … classes−1.

    **Returns:** dict of numpy arrays: ``strongest_neuron (K,)``, ``top_neuron (K,)`` (argmax of
    m_c), ``aligned (K,)`` bool, ``num_aligned`` int, ``class_mean_output (K, n)``,
    ``output_at_strongest (K,)`` m_c(s_c), ``rank_of_strongest (K,)`` (0: the largest entry of m_c),
    ``counts (K,)``. An empty class has NaN means and is not aligned.

    **Raises:** `TypeError` for a non-`Network`; `ValueError` for x of the wrong shape or not
    finite, or labels of the wrong shape or outside 0 … classes−1.
    """
    if not isinstance(network, Network):
        raise TypeError(f"network must be a resflow.Network, got {type(network).__name__}")
    x = as_float_array("x", x)
    if x.ndim != 2 or x.shape[1] != network.dim:
        raise ValueError(f"x must have shape (batch, {network.dim}), got {x.shape}")
    labels = label_array("y", y, x.shape[0])
    K = class_count({"y": labels}, network.n_classes)
    xT = scan_trunk(network.trunk, network.embed(x), None, depth=network.depth, keep=False)
    check_state(network.trunk, xT, "the trunk output of x")
    counts, w = class_weights(labels, K, xT.dtype)
    means = np.asarray(class_means(w, counts, xT))
    strongest = np.asarray(jnp.argmax(network.readout.W, axis=0))
    present = np.asarray(counts) > 0
    top = np.where(present, np.argmax(np.where(np.isnan(means), -np.inf, means), axis=1), -1)
    at = means[np.arange(K), strongest]
    rank = (means > at[:, None]).sum(1)
    aligned = present & (top == strongest)
    return {
        "strongest_neuron": strongest,
        "top_neuron": top,
        "aligned": aligned,
        "num_aligned": int(aligned.sum()),
        "class_mean_output": means,
        "output_at_strongest": at,
        "rank_of_strongest": rank,
        "counts": np.asarray(counts).astype(int),
    }
