"""Analytic Jacobians of the trunk and of the residual map, dense and matrix-free.

Along a trajectory x_0 … x_T with pre-activations a_t = W_t x_t + b_t and
D_t = diag(act'(a_t)) (science.md §3, §5):

    ResNet state map:  J_t = ∂x_{t+1}/∂x_t = I + h D_t W_t
    MLP state map:     J_t = ∂x_{t+1}/∂x_t = D_t W_t
    residual map (logistic, shared W), r_{t+1} = σ(σ⁻¹(r_t) + h W r_t):
                       J^r_t = ∂r_{t+1}/∂r_t = diag(r_{t+1}(1−r_{t+1})) (diag(1/(r_t(1−r_t))) + h W)

The residual-map functions hold for the logistic activation only (σ' = r(1 − r)); they take
``activation="sigmoid"`` and refuse any other name rather than return wrong Jacobians.

The matrix-free products J_t Q and J_tᵀ Q cost O(n² k) for Q of shape (n, k) and never form
J_t; `network_lyapunov_spectrum` feeds them to the generic QR core of `resflow.dynamics`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._checks import check_array, check_choice, check_positive, check_unit_interval
from .activations import get_activation
from .dynamics import LyapunovResult, lyapunov_spectrum_from_products
from .model import MODELS, TrunkParams, check_params, is_shared, trajectory
from .residuals import preactivations

__all__ = [
    "state_jacobians",
    "residual_jacobians",
    "state_jacobian_product",
    "residual_jacobian_product",
    "network_lyapunov_spectrum",
]


def _depth_weights(params: TrunkParams, T: int, extra: int) -> jax.Array:
    """W_t broadcastable against ``(T, *batch, n, n)``: shared W, or the first T untied layers."""
    if is_shared(params):
        return params.W
    W = params.W[:T]
    return W.reshape((T,) + (1,) * extra + W.shape[-2:])


def _state_matrix(W, d, h, model):
    """I + h diag(d) W (resnet) or diag(d) W (mlp); W and d broadcast over leading axes."""
    DW = d[..., :, None] * W
    if model == "resnet":
        return jnp.eye(W.shape[-1], dtype=DW.dtype) + h * DW
    return DW


def _state_product(W, d, Q, h, model, transpose):
    """J Q or Jᵀ Q for J = I + h diag(d) W (resnet) / diag(d) W (mlp), without forming J."""
    if transpose:
        WtDQ = jnp.swapaxes(W, -1, -2) @ (d[..., :, None] * Q)
        return Q + h * WtDQ if model == "resnet" else WtDQ
    DWQ = d[..., :, None] * (W @ Q)
    return Q + h * DWQ if model == "resnet" else DWQ


def _residual_product(W, r, r_next, Q, h, transpose):
    """J^r Q or (J^r)ᵀ Q for J^r = diag(d') (diag(1/d) + h W), d = r(1−r), d' = r'(1−r')."""
    d = r * (1 - r)
    d_next = r_next * (1 - r_next)
    if transpose:
        P = d_next[..., :, None] * Q
        return P / d[..., :, None] + h * (jnp.swapaxes(W, -1, -2) @ P)
    return d_next[..., :, None] * (Q / d[..., :, None] + h * (W @ Q))


def _check_model(model, activation, h):
    check_choice("model", model, MODELS)
    get_activation(activation)
    check_positive("h", h)


def state_jacobians(
    params: TrunkParams,
    trajectory: Float[Array, "T1 *batch n"],
    *,
    model: str = "resnet",
    activation: str = "sigmoid",
    h=1.0,
) -> Float[Array, "T *batch n n"]:
    """Dense Jacobians J_t = ∂x_{t+1}/∂x_t of the trunk along a trajectory, t = 0 … T−1.

    ResNet: J_t = I + h·diag(act'(a_t))·W_t; MLP: J_t = diag(act'(a_t))·W_t, with
    a_t = W_t x_t + b_t (`resflow.preactivations`). Shared or untied weights, any batch shape.

    **Arguments:**

    - `params`: `TrunkParams`, shared ``(n, n)`` or untied ``(≥T, n, n)``.
    - `trajectory`: x_0 … x_T, shape ``(T + 1, *batch, n)`` (from `resflow.trajectory`).
    - `model`: ``"resnet"`` or ``"mlp"``; `activation`: name for `resflow.get_activation`.
    - `h`: step size > 0 (ignored by the MLP).

    **Returns:** array ``(T, *batch, n, n)``; entry ``[t, ..., i, j]`` is ∂x_{t+1,i}/∂x_{t,j}.

    **Raises:** `ValueError`/`TypeError` for a trajectory that does not match the params,
    an unknown model/activation or h ≤ 0.
    """
    _check_model(model, activation, h)
    a = preactivations(params, trajectory)
    params = check_params(params)
    d = get_activation(activation).grad(a)
    W = _depth_weights(params, a.shape[0], a.ndim - 2)
    return _state_matrix(W, d, jnp.asarray(h, a.dtype), model)


def check_logistic(activation) -> None:
    """The residual-map formulas use σ' = r(1 − r), true of the logistic activation only."""
    get_activation(activation)
    if activation != "sigmoid":
        raise ValueError(
            f"activation must be 'sigmoid': the residual map r_{{t+1}} = σ(σ⁻¹(r_t) + h W r_t) and its "
            f"derivative r(1 − r) hold for the logistic activation only, got {activation!r}"
        )


def _check_residuals(name, r, n, *, min_len):
    r = check_array(name, r, min_ndim=2, last_dim=n)
    if r.shape[0] < min_len:
        raise ValueError(f"{name} must hold at least {min_len} layers along axis 0, got shape {r.shape}")
    check_unit_interval(
        name,
        r,
        hint="Saturated residuals have no finite Jacobian 1/(r(1-r)): analyse them with "
        "resflow.fixed_point_pattern's sign conditions",
    )
    return r


def shared_params(params, what) -> TrunkParams:
    """Validated shared-weight params (one W ``(n, n)``), or a `ValueError` saying `what` needs them."""
    params = check_params(params)
    if not is_shared(params):
        raise ValueError(
            f"params must be shared weights (W of shape (n, n)) for {what}: with untied weights the residuals "
            "do not obey a recurrence of their own"
        )
    return params


def residual_jacobians(
    params: TrunkParams, residuals: Float[Array, "T *batch n"], *, h=1.0, activation: str = "sigmoid"
) -> Float[Array, "T_minus_1 *batch n n"]:
    """Dense Jacobians of the residual map r_t ↦ r_{t+1} = σ(σ⁻¹(r_t) + h W r_t) along residuals.

    J^r_t = diag(r_{t+1}(1−r_{t+1})) · (diag(1/(r_t(1−r_t))) + h W)   (logistic, shared W).
    Its off-diagonal part is the cooperation/competition coefficient of
    `resflow.interaction_coefficients`.

    **Arguments:**

    - `params`: shared-weight `TrunkParams` (only W is used).
    - `residuals`: r_0 … r_{T−1}, shape ``(T, *batch, n)`` with T ≥ 2, strictly inside (0, 1)
      (e.g. `resflow.residuals` or `resflow.residual_recurrence`).
    - `h`: step size > 0.
    - `activation`: must be ``"sigmoid"`` (logistic activation only: the formula uses σ' = r(1 − r)
      and σ⁻¹; residuals of a tanh/relu network can lie in (0, 1) and would get wrong Jacobians).

    **Returns:** array ``(T − 1, *batch, n, n)``; entry t is J^r_t = ∂r_{t+1}/∂r_t.

    **Raises:** `ValueError` for untied params, residuals at or outside 0/1, T < 2, bad shapes, h ≤ 0,
    an activation other than ``"sigmoid"``.
    """
    W = shared_params(params, "the residual-map Jacobian").W
    check_positive("h", h)
    check_logistic(activation)
    r = _check_residuals("residuals", residuals, W.shape[-1], min_len=2)
    d, d_next = r[:-1] * (1 - r[:-1]), r[1:] * (1 - r[1:])
    h = jnp.asarray(h, r.dtype)
    return d_next[..., :, None] * (jnp.eye(W.shape[-1], dtype=r.dtype) / d[..., :, None] + h * W)


def _check_Q(Q, n):
    Q = check_array("Q", Q, min_ndim=2)
    if Q.shape[-2] != n:
        raise ValueError(f"Q must have shape (..., {n}, k) to multiply an (n, n) Jacobian, got {Q.shape}")
    return Q


def state_jacobian_product(
    layer: TrunkParams,
    a: Float[Array, "*batch n"],
    Q: Float[Array, "*batch n k"],
    *,
    model: str = "resnet",
    activation: str = "sigmoid",
    h=1.0,
    transpose: bool = False,
) -> Float[Array, "*batch n k"]:
    """Matrix-free J Q (or Jᵀ Q) for one layer's state Jacobian at pre-activation `a`.

    J = I + h·diag(act'(a))·W (resnet) or diag(act'(a))·W (mlp): computed as
    Q + h·act'(a) ⊙ (W Q), O(n² k) work, J never formed. Jᵀ Q = Q + h·Wᵀ (act'(a) ⊙ Q).

    **Arguments:**

    - `layer`: one layer's `TrunkParams` (``W (n, n)``; b unused: it is already in `a`).
    - `a`: pre-activation a = W x + b at the point, ``(*batch, n)``.
    - `Q`: tangent vectors as columns, ``(*batch, n, k)`` (batch axes broadcast).
    - `model`, `activation`, `h`: as in `resflow.step`.
    - `transpose`: return Jᵀ Q instead of J Q.

    **Returns:** ``(*batch, n, k)``.

    **Raises:** `ValueError`/`TypeError` for untied/mis-shaped params, shape mismatches, h ≤ 0.
    """
    _check_model(model, activation, h)
    W = shared_params(layer, "one layer's Jacobian product (pass resflow.layer_params(params, t))").W
    a = check_array("a", a, last_dim=W.shape[-1])
    Q = _check_Q(Q, W.shape[-1])
    d = get_activation(activation).grad(a)
    return _state_product(W, d, Q, jnp.asarray(h, Q.dtype), model, transpose)


def residual_jacobian_product(
    params: TrunkParams,
    r: Float[Array, "*batch n"],
    r_next: Float[Array, "*batch n"],
    Q: Float[Array, "*batch n k"],
    *,
    h=1.0,
    transpose: bool = False,
    activation: str = "sigmoid",
) -> Float[Array, "*batch n k"]:
    """Matrix-free J^r Q (or (J^r)ᵀ Q) for the residual map at r ↦ r_next (logistic, shared W).

    J^r Q = d' ⊙ (Q / d + h W Q) with d = r(1−r), d' = r_next(1−r_next); O(n² k) work.

    **Arguments:**

    - `params`: shared-weight `TrunkParams`.
    - `r`, `r_next`: consecutive residuals ``(*batch, n)`` strictly inside (0, 1).
    - `Q`: ``(*batch, n, k)``; `h`: step size > 0; `transpose`: return (J^r)ᵀ Q.
    - `activation`: must be ``"sigmoid"`` (logistic activation only, as `residual_jacobians`).

    **Returns:** ``(*batch, n, k)``.

    **Raises:** `ValueError` for untied params, residuals outside (0, 1), mismatched shapes, h ≤ 0,
    an activation other than ``"sigmoid"``.
    """
    W = shared_params(params, "the residual-map Jacobian product").W
    check_positive("h", h)
    check_logistic(activation)
    n = W.shape[-1]
    r = _check_residuals("r", jnp.asarray(r)[None], n, min_len=1)[0]
    r_next = _check_residuals("r_next", jnp.asarray(r_next)[None], n, min_len=1)[0]
    if r.shape != r_next.shape:
        raise ValueError(f"r and r_next must have the same shape, got {r.shape} and {r_next.shape}")
    Q = _check_Q(Q, n)
    return _residual_product(W, r, r_next, Q, jnp.asarray(h, Q.dtype), transpose)


@functools.partial(jax.jit, static_argnames=("model", "num_exponents", "return_running"))
def _lyapunov_batch(W, d, h, key, initial_q, *, model, num_exponents, return_running):
    """One finite-time spectrum per input; d = act'(a) is ``(T, batch, n)``, W shared or ``(T, n, n)``."""
    T, n = d.shape[0], d.shape[-1]
    h = jnp.asarray(h, d.dtype)

    def one(d_i):
        def jvp(t, Q):
            return _state_product(W if W.ndim == 2 else W[t], d_i[t], Q, h, model, False)

        return lyapunov_spectrum_from_products(
            jvp,
            T,
            n=n,
            num_exponents=num_exponents,
            key=key,
            initial_q=initial_q,
            dtype=d.dtype,
            return_running=return_running,
        )

    return jax.vmap(one, in_axes=1)(d)


def network_lyapunov_spectrum(
    params: TrunkParams,
    x0: Float[Array, "*batch n"],
    *,
    depth: int | None = None,
    model: str = "resnet",
    activation: str = "sigmoid",
    h=1.0,
    num_exponents: int | None = None,
    key: jax.Array | None = None,
    initial_q: Float[Array, "n k"] | None = None,
    return_running: bool = False,
) -> LyapunovResult:
    """Finite-time Lyapunov spectrum of the trunk along each input's trajectory (matrix-free).

    Pushes an orthonormal frame through Q_{t+1} R_t = J_t Q_t with the analytic products
    J_t Q = Q + h·act'(a_t) ⊙ (W_t Q) (resnet) or act'(a_t) ⊙ (W_t Q) (mlp), O(n² k) per
    layer, J_t never formed; λ_j = (1/T) Σ_t log|R_t[j, j]| in nats per layer
    (`resflow.lyapunov_spectrum_from_products`). One spectrum per input (vmapped), all from
    the same initial frame.

    **Arguments:**

    - `params`: `TrunkParams`, shared or untied.
    - `x0`: inputs ``(n,)`` or ``(*batch, n)``.
    - `depth`, `model`, `activation`, `h`: as in `resflow.trajectory` (T = depth layers).
    - `num_exponents`: k ≤ n largest exponents (default n).
    - `key` / `initial_q`: random initial frame (default a fixed key) or an explicit
      ``(n, k)`` one; as in `resflow.lyapunov_spectrum_from_products`.
    - `return_running`: also return the running estimates ``(*batch, T, k)``.

    **Returns:** `LyapunovResult(exponents (*batch, k), running or None, None)`.

    **Raises:** `ValueError`/`TypeError` as `resflow.trajectory` and
    `resflow.lyapunov_spectrum_from_products` do (bad shapes, h ≤ 0, k outside [1, n], ...).
    """
    traj = trajectory(params, x0, depth=depth, model=model, activation=activation, h=h)
    params = check_params(params)
    a = preactivations(params, traj)
    T, n = a.shape[0], a.shape[-1]
    batch = a.shape[1:-1]
    d = get_activation(activation).grad(a).reshape(T, -1, n)
    W = params.W if is_shared(params) else params.W[:T]
    res = _lyapunov_batch(
        W, d, h, key, initial_q, model=model, num_exponents=num_exponents, return_running=return_running
    )
    running = None if res.running is None else res.running.reshape(batch + res.running.shape[1:])
    return LyapunovResult(res.exponents.reshape(batch + res.exponents.shape[1:]), running, None)
