"""Analytic Jacobians of the trunk and of the residual map, dense and matrix-free.

Along a trajectory x_0 … x_T with pre-activations a_t = W_t x_t + b_t and
D_t = diag(act'(a_t)), differentiating the layer maps gives

    ResNet state map:  J_t = ∂x_{t+1}/∂x_t = I + h D_t W_t
    MLP state map:     J_t = ∂x_{t+1}/∂x_t = D_t W_t

and, for the logistic resnet with shared W, differentiating the residual map
r_{t+1} = σ(σ⁻¹(r_t) + h W r_t) with σ' = σ(1 − σ) and (σ⁻¹)'(r) = 1/(r(1 − r)) gives

    J^r_t = ∂r_{t+1}/∂r_t = diag(r_{t+1}(1−r_{t+1})) (diag(1/(r_t(1−r_t))) + h W)

The residual-map functions need a logistic resnet trunk and refuse any other rather than
return wrong Jacobians. The matrix-free products J_t Q and J_tᵀ Q cost O(n² k) for Q of shape
(n, k) and never form J_t; `network_lyapunov_spectrum` feeds them to the generic QR core of
`resflow.dynamics._lyapunov`. See docs/model.md.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._checks import all_true, as_float_array, check_array, check_int, finite
from ..dynamics._common import resolve_num_exponents
from ..dynamics._lyapunov import LyapunovResult, initial_frame, qr_scan
from ..trunk._activations import get_activation
from ..trunk._residuals import check_residual_values, check_trajectory, inside_unit, layer_preactivations, state_array
from ..trunk._trunk import (
    Trunk,
    check_inputs,
    check_state,
    check_trunk,
    depth_weights,
    require_logistic,
    require_shared,
)

__all__ = [
    "state_jacobians",
    "residual_jacobians",
    "state_jacobian_product",
    "residual_jacobian_product",
    "network_lyapunov_spectrum",
]


def _state_matrix(W, d, h, model):
    """I + h diag(d) W (resnet) or diag(d) W (mlp); W and d broadcast over leading axes."""
    DW = d[..., :, None] * W
    if model == "resnet":
        return jnp.eye(W.shape[-1], dtype=DW.dtype) + h * DW
    return DW


def state_product(W, d, Q, h, model, transpose):
    """J Q or Jᵀ Q for J = I + h diag(d) W (resnet) / diag(d) W (mlp), without forming J.

    The one tangent kernel of the trunk (Lyapunov spectra, covariant vectors). Unchecked."""
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


def state_jacobians(trunk: Trunk, trajectory: Float[Array, "T1 *batch n"]) -> Float[Array, "T *batch n n"]:
    """Dense Jacobians J_t = ∂x_{t+1}/∂x_t of the trunk along a trajectory, t = 0 … T−1.

    ResNet: J_t = I + h·diag(act'(a_t))·W_t; MLP: J_t = diag(act'(a_t))·W_t, with
    a_t = W_t x_t + b_t. Shared or untied weights, any batch shape; model, activation and h
    are the trunk's.

    **Arguments:**

    - `trunk`: the `Trunk`, shared or untied with ≥ T layers.
    - `trajectory`: x_0 … x_T, ``(T + 1, *batch, n)`` (from `resflow.trajectory`).

    **Returns:** ``(T, *batch, n, n)``; entry ``[t, ..., i, j]`` is ∂x_{t+1,i}/∂x_{t,j}.

    **Raises:** `ValueError`/`TypeError` for a trajectory that does not match the trunk
    (width, dtype, T < 1, more steps than untied layers) or is not finite.
    """
    trunk = check_trunk(trunk)
    traj, _ = check_trajectory(trunk, trajectory)
    return _state_jacobians(trunk, traj)


@jax.jit
def _state_jacobians(trunk: Trunk, traj):
    a = layer_preactivations(trunk, traj)
    d = get_activation(trunk.activation).grad(a)
    W, _ = depth_weights(trunk, traj.shape[0] - 1, a.ndim - 2)
    return _state_matrix(W, d, trunk.h, trunk.model)


def _residual_trunk(trunk, what: str) -> Trunk:
    return require_logistic(require_shared(check_trunk(trunk), what), what)


def residual_jacobians(trunk: Trunk, residuals: Float[Array, "T *batch n"]) -> Float[Array, "T_minus_1 *batch n n"]:
    """Dense Jacobians of the residual map r_t ↦ r_{t+1} = σ(σ⁻¹(r_t) + h W r_t) along residuals.

    J^r_t = diag(r_{t+1}(1−r_{t+1})) · (diag(1/(r_t(1−r_t))) + h W)   (logistic, shared W).
    Its off-diagonal part is the cooperation/competition coefficient of
    `resflow.interaction_coefficients`.

    **Arguments:**

    - `trunk`: a shared-weight logistic resnet `Trunk` (W and h are used).
    - `residuals`: r_0 … r_{T−1}, ``(T, *batch, n)`` with T ≥ 2, strictly inside (0, 1)
      (e.g. `resflow.residuals` or `resflow.residual_recurrence`).

    **Returns:** ``(T − 1, *batch, n, n)``; entry t is J^r_t = ∂r_{t+1}/∂r_t.

    **Raises:** `ValueError` for untied weights, a tanh/relu or MLP trunk, residuals at or
    outside 0/1, T < 2, a bad shape or dtype.
    """
    trunk = _residual_trunk(trunk, "the residual-map Jacobian")
    r = state_array(trunk, residuals, "residuals", min_ndim=2)
    if r.shape[0] < 2:
        raise ValueError(f"residuals must hold at least 2 layers along axis 0, got shape {r.shape}")
    if not all_true({"residuals": (r, inside_unit)}):
        check_residual_values("residuals", r)
    d, d_next = r[:-1] * (1 - r[:-1]), r[1:] * (1 - r[1:])
    return d_next[..., :, None] * (jnp.eye(trunk.width, dtype=r.dtype) / d[..., :, None] + trunk.h * trunk.W)


def _tangents(trunk: Trunk, Q) -> jax.Array:
    """Q ``(*batch, n, k)`` in the trunk's dtype (shape only; its values join the caller's read)."""
    Q = as_float_array("Q", Q)
    if Q.ndim < 2 or Q.shape[-2] != trunk.width:
        raise ValueError(f"Q must have shape (..., {trunk.width}, k) to multiply an (n, n) Jacobian, got {Q.shape}")
    if Q.dtype != trunk.dtype:
        raise TypeError(f"Q has dtype {Q.dtype} but the trunk has {trunk.dtype}: cast one")
    return Q


def state_jacobian_product(
    trunk: Trunk,
    a: Float[Array, "*batch n"],
    Q: Float[Array, "*batch n k"],
    *,
    transpose: bool = False,
) -> Float[Array, "*batch n k"]:
    """Matrix-free J Q (or Jᵀ Q) for one layer's state Jacobian at pre-activation `a`.

    J = I + h·diag(act'(a))·W (resnet) or diag(act'(a))·W (mlp): computed as
    Q + h·act'(a) ⊙ (W Q), O(n² k) work, J never formed. Jᵀ Q = Q + h·Wᵀ (act'(a) ⊙ Q).

    **Arguments:**

    - `trunk`: a shared-weight `Trunk`; for layer t of an untied one pass ``trunk.layer(t)``.
      b is unused (it is already in `a`).
    - `a`: pre-activation a = W x + b at the point, ``(*batch, n)`` (e.g. an entry of
      `resflow.preactivations`).
    - `Q`: tangent vectors as columns, ``(*batch, n, k)`` (batch axes broadcast).
    - `transpose`: return Jᵀ Q instead of J Q.

    **Returns:** ``(*batch, n, k)``.

    **Raises:** `ValueError`/`TypeError` for untied weights, shape or dtype mismatches,
    non-finite values.
    """
    trunk = require_shared(check_trunk(trunk), "one layer's Jacobian product (pass trunk.layer(t))")
    a = state_array(trunk, a, "a")
    Q = _tangents(trunk, Q)
    if not all_true({"a": (a, finite), "Q": (Q, finite)}):
        check_state(trunk, a, "a")
        check_array("Q", Q, min_ndim=2)
    d = get_activation(trunk.activation).grad(a)
    return state_product(trunk.W, d, Q, trunk.h, trunk.model, transpose)


def residual_jacobian_product(
    trunk: Trunk,
    r: Float[Array, "*batch n"],
    r_next: Float[Array, "*batch n"],
    Q: Float[Array, "*batch n k"],
    *,
    transpose: bool = False,
) -> Float[Array, "*batch n k"]:
    """Matrix-free J^r Q (or (J^r)ᵀ Q) for the residual map at r ↦ r_next (logistic, shared W).

    J^r Q = d' ⊙ (Q / d + h W Q) with d = r(1−r), d' = r_next(1−r_next); O(n² k) work.

    **Arguments:**

    - `trunk`: a shared-weight logistic resnet `Trunk`.
    - `r`, `r_next`: consecutive residuals ``(*batch, n)`` strictly inside (0, 1).
    - `Q`: ``(*batch, n, k)``; `transpose`: return (J^r)ᵀ Q.

    **Returns:** ``(*batch, n, k)``.

    **Raises:** `ValueError`/`TypeError` for untied weights, a tanh/relu or MLP trunk,
    residuals outside (0, 1), mismatched shapes or dtypes, non-finite Q.
    """
    trunk = _residual_trunk(trunk, "the residual-map Jacobian product")
    r = state_array(trunk, r, "r")
    r_next = state_array(trunk, r_next, "r_next")
    if r.shape != r_next.shape:
        raise ValueError(f"r and r_next must have the same shape, got {r.shape} and {r_next.shape}")
    Q = _tangents(trunk, Q)
    if not all_true({"r": (r, inside_unit), "r_next": (r_next, inside_unit), "Q": (Q, finite)}):
        check_residual_values("r", r)
        check_residual_values("r_next", r_next)
        check_array("Q", Q, min_ndim=2)
    return _residual_product(trunk.W, r, r_next, Q, trunk.h, transpose)


QR_EVERY = 10  # default layers per QR (qr_scan's guard keeps it exact; fastest measured on CPU)
COLUMN_MULTIPLE = 8  # XLA:CPU's dot runs (n, n) @ (n, 16) faster than @ (n, 11): pad wide operands


def _fused_tangent(trunk: Trunk, W, b, X, Q):
    """One layer on states X ``(B, n)`` and frames Q ``(B, n, k)`` with one matmul: W [x | Q].

    The state's pre-activation a = W x + b and the tangent product J Q = Q + h·act'(a) ⊙ (W Q)
    (resnet) or act'(a) ⊙ (W Q) (mlp) share W, so one (n, n) @ (n, B(k + 1)) product serves
    every input, and the trajectory is streamed rather than stored. Operands wider than
    `COLUMN_MULTIPLE` columns are zero-padded to a multiple of it. Unchecked."""
    B, n, k = Q.shape
    Z = jnp.swapaxes(jnp.concatenate([X[:, :, None], Q], axis=2), 0, 1).reshape(n, B * (k + 1))
    c = Z.shape[1]
    padded = -(-c // COLUMN_MULTIPLE) * COLUMN_MULTIPLE if c > COLUMN_MULTIPLE else c
    WZ = (W @ jnp.pad(Z, ((0, 0), (0, padded - c))))[:, :c]
    WZ = jnp.swapaxes(WZ.reshape(n, B, k + 1), 0, 1)
    a = WZ[:, :, 0] + b
    act = get_activation(trunk.activation)
    d = act.grad(a)[:, :, None]
    if trunk.model == "resnet":
        return X + trunk.h * act.fn(a), Q + trunk.h * d * WZ[:, :, 1:]
    return act.fn(a), d * WZ[:, :, 1:]


@functools.partial(jax.jit, static_argnames=("depth", "num_exponents", "return_running", "qr_every"))
def lyapunov_batch(trunk: Trunk, x0, key, initial_q, *, depth, num_exponents, return_running, qr_every=1):
    """One finite-time spectrum per input of x0 ``(batch, n)`` over `depth` layers. Unchecked.

    One scan carries the states and the frames of the whole batch (`_fused_tangent`), with a
    QR every `qr_every` layers (`resflow.dynamics._lyapunov.qr_scan`, guarded)."""
    n = trunk.width
    if num_exponents is None and initial_q is not None:
        num_exponents = initial_q.shape[1]
    k = resolve_num_exponents(num_exponents, n)
    dtype = x0.dtype
    q0 = initial_frame(n, k, key, initial_q, dtype)
    q0 = jnp.broadcast_to(q0, (x0.shape[0], n, k))

    def product(t, X, Q):
        W, b = (trunk.W, trunk.b) if trunk.shared else (trunk.W[t], trunk.b[t])
        return _fused_tangent(trunk, W, b, X, Q)

    _, total, logs = qr_scan(product, x0, q0, depth, qr_every=qr_every, return_running=return_running)
    exponents = -jnp.sort(-total / depth, axis=-1)
    running = None
    if return_running:
        steps = jnp.arange(1, depth + 1, dtype=dtype)[:, None, None]
        running = jnp.swapaxes(-jnp.sort(-jnp.cumsum(logs, axis=0) / steps, axis=-1), 0, 1)
    return LyapunovResult(exponents, running, None)


def network_lyapunov_spectrum(
    trunk: Trunk,
    x0: Float[Array, "*batch n"],
    *,
    depth: int | None = None,
    num_exponents: int | None = None,
    key: jax.Array | None = None,
    initial_q: Float[Array, "n k"] | None = None,
    return_running: bool = False,
    qr_every: int = QR_EVERY,
) -> LyapunovResult:
    """Finite-time Lyapunov spectrum of the trunk along each input's trajectory (matrix-free).

    Pushes an orthonormal frame through Q_{t+1} R_t = J_t Q_t with the analytic products
    J_t Q = Q + h·act'(a_t) ⊙ (W_t Q) (resnet) or act'(a_t) ⊙ (W_t Q) (mlp), O(n² k) per
    layer, J_t never formed; λ_j = (1/T) Σ_t log|R_t[j, j]| in nats per layer
    (`resflow.lyapunov_spectrum_from_products`). One spectrum per input, all from the same
    initial frame. Validated once (x0: one value read); then one compiled scan streams the
    states and the frames of every input together, W_t [x_t | Q] as a single matmul per
    layer for the whole batch, with a QR every `qr_every` layers (guarded, see
    `resflow.lyapunov_spectrum_from_products`: the exponents equal those of a QR every layer
    up to rounding). See benchmarks/README.md (QR core) for the timings.

    **Arguments:**

    - `trunk`: the `Trunk`, shared or untied.
    - `x0`: inputs ``(n,)`` or ``(*batch, n)`` in the trunk's dtype.
    - `depth`: T, as in `resflow.trajectory`.
    - `num_exponents`: k ≤ n largest exponents (default n).
    - `key` / `initial_q`: random initial frame (default a fixed key) or an explicit
      ``(n, k)`` one; as in `resflow.lyapunov_spectrum_from_products`.
    - `return_running`: also return the running estimates ``(*batch, T, k)`` (a QR every
      layer then).
    - `qr_every`: m ≥ 1, layers per QR (default 10; guarded, see above).

    **Returns:** `LyapunovResult(exponents (*batch, k), running or None, None)`.

    **Raises:** `ValueError`/`TypeError` as `resflow.trajectory` and
    `resflow.lyapunov_spectrum_from_products` do (bad shapes, k outside [1, n],
    qr_every < 1, ...).
    """
    trunk, x0, depth = check_inputs(trunk, x0, depth)
    batch = x0.shape[:-1]
    res = lyapunov_batch(
        trunk,
        x0.reshape(-1, trunk.width),
        key,
        initial_q,
        depth=depth,
        num_exponents=num_exponents,
        return_running=return_running,
        qr_every=check_int("qr_every", qr_every, minimum=1),
    )
    running = None if res.running is None else res.running.reshape(batch + res.running.shape[1:])
    return LyapunovResult(res.exponents.reshape(batch + res.exponents.shape[1:]), running, None)
