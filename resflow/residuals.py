"""Disentangling the residuals from the outputs (science.md §2).

With pre-activation a_t = W x_t + b and residual r_t = σ(a_t), the shared-weight ResNet
x_{t+1} = x_t + h r_t gives a_{t+1} = a_t + h W r_t, hence

    r_{t+1} = σ(σ⁻¹(r_t) + h W r_t)      (the residuals evolve on their own)
    x_T     = x_0 + h Σ_{t<T} r_t          (the output integrates them)

The recurrence is stepped in pre-activation space, a_{t+1} = a_t + h W act(a_t): the same
map exactly, and it never takes the logit of a residual that rounded to 0 or 1.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._checks import check_array, check_int, check_positive, check_unit_interval
from .activations import get_activation
from .model import TrunkParams, check_params, is_shared

__all__ = [
    "preactivations",
    "residuals",
    "logit",
    "preactivation_recurrence",
    "residual_recurrence",
    "running_integral",
    "reconstruct_output",
]


def _check_traj(params, traj):
    params = check_params(params)
    traj = check_array("trajectory", traj, min_ndim=2, last_dim=params.W.shape[-1])
    T = traj.shape[0] - 1
    if T < 1:
        raise ValueError(f"trajectory must hold at least 2 states (T + 1 with T >= 1), got shape {traj.shape}")
    if not is_shared(params) and params.W.shape[0] < T:
        raise ValueError(f"untied params have {params.W.shape[0]} layers but trajectory has T = {T} steps")
    return params, traj, T


def preactivations(params: TrunkParams, trajectory: Float[Array, "T1 *batch n"]) -> Float[Array, "T *batch n"]:
    """Pre-activations a_t = W_t x_t + b_t for t = 0 … T-1 of a trajectory x_0 … x_T.

    **Raises:** `ValueError`/`TypeError` if the trajectory does not match the params.
    """
    params, traj, T = _check_traj(params, trajectory)
    if is_shared(params):
        return traj[:-1] @ params.W.T + params.b
    # Untied: layer t's weights act on state t; broadcast the depth axis over the batch axes.
    x = traj[:-1]
    W, b = params.W[:T], params.b[:T]
    extra = x.ndim - 2
    a = jnp.einsum("t...j,tij->t...i", x, W)
    return a + b.reshape((T,) + (1,) * extra + b.shape[-1:])


def residuals(
    params: TrunkParams, trajectory: Float[Array, "T1 *batch n"], *, activation: str = "sigmoid"
) -> Float[Array, "T *batch n"]:
    """Residuals r_t = act(W_t x_t + b_t), t = 0 … T-1, of a trajectory x_0 … x_T.

    For a ResNet these are the increments: x_{t+1} = x_t + h r_t.
    """
    return get_activation(activation).fn(preactivations(params, trajectory))


def logit(r: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
    """σ⁻¹(r) = log r − log(1 − r) for residuals strictly inside (0, 1).

    **Raises:** `ValueError` if any (concrete) entry is not in the open interval (0, 1):
    a residual that rounded to exactly 0 or 1 is saturated and has no finite logit. Step such
    networks with `preactivation_recurrence` from a_0 instead. Nothing is clipped.
    """
    r = check_array("r", r, min_ndim=0)
    check_unit_interval(
        "r", r, hint="Saturated residuals have no finite pre-activation: use preactivation_recurrence from a_0 instead"
    )
    return jnp.log(r) - jnp.log1p(-r)


@functools.partial(jax.jit, static_argnames=("depth",))
def preactivation_scan(trunk, a0, *, depth: int):
    """a_0 … a_{depth-1} of a_{t+1} = a_t + h W act(a_t) for a shared trunk. Unchecked.

    The one implementation of the pre-activation recurrence (also used by the attractor
    analysis).
    """
    act = get_activation(trunk.activation).fn

    def body(a, _):
        return a + trunk.h * act(a) @ trunk.W.T, a

    return jax.lax.scan(body, a0, None, length=depth)[1]


@functools.partial(jax.jit, static_argnames=("depth", "activation"))
def _a_scan(W, a0, h, *, depth, activation):
    act = get_activation(activation).fn
    h = jnp.asarray(h, a0.dtype)

    def body(a, _):
        return a + h * act(a) @ W.T, a

    _, a_seq = jax.lax.scan(body, a0, None, length=depth)
    return a_seq


def _check_recurrence(params, start, name, depth, h):
    params = check_params(params)
    if not is_shared(params):
        raise ValueError(
            "params must be shared weights (W of shape (n, n)): with untied weights the residuals "
            "do not obey a recurrence of their own"
        )
    start = check_array(name, start, last_dim=params.W.shape[-1])
    check_positive("h", h)
    return params, start, check_int("depth", depth)


def preactivation_recurrence(
    params: TrunkParams,
    a0: Float[Array, "*batch n"],
    *,
    depth: int,
    h=1.0,
    activation: str = "sigmoid",
) -> Float[Array, "depth *batch n"]:
    """Pre-activations from a_0 alone: a_{t+1} = a_t + h W act(a_t), shared weights.

    Exact for any activation (it follows from x_{t+1} = x_t + h act(a_t)); the bias enters
    only through a_0 = W x_0 + b.

    **Returns:** a_0 … a_{depth-1}, shape ``(depth, *batch, n)``.

    **Raises:** `ValueError` for untied params, bad shapes, non-finite values, h ≤ 0, depth < 1.
    """
    get_activation(activation)
    params, a0, depth = _check_recurrence(params, a0, "a0", depth, h)
    return _a_scan(params.W, a0, h, depth=depth, activation=activation)


def residual_recurrence(
    params: TrunkParams, r0: Float[Array, "*batch n"], *, depth: int, h=1.0
) -> Float[Array, "depth *batch n"]:
    """Residuals from r_0 alone: r_{t+1} = σ(σ⁻¹(r_t) + h W r_t) (logistic, shared weights).

    x never appears: this is the paper's disentangled residual dynamics. It is stepped as
    a_{t+1} = a_t + h W σ(a_t) from a_0 = σ⁻¹(r_0), the same map without repeated logits.

    **Arguments:**

    - `params`: shared-weight `TrunkParams` (only W is used).
    - `r0`: residuals of layer 0, ``(*batch, n)``, strictly inside (0, 1).
    - `depth`: number of residuals to return (T).
    - `h`: step size > 0.

    **Returns:** r_0 … r_{depth-1}, ``(depth, *batch, n)``; equals
    ``residuals(params, trajectory(params, x0, depth=depth))`` when r0 = σ(W x0 + b).

    **Raises:** `ValueError` if r0 has entries at or outside 0 or 1 (saturated: use
    `preactivation_recurrence`), for untied params, bad shapes, h ≤ 0 or depth < 1.
    """
    params, r0, depth = _check_recurrence(params, r0, "r0", depth, h)
    a0 = logit(r0)
    return jax.nn.sigmoid(_a_scan(params.W, a0, h, depth=depth, activation="sigmoid"))


def running_integral(
    residuals: Float[Array, "T *batch n"], *, h=1.0, x0: Float[Array, "*batch n"] | None = None
) -> Float[Array, "T1 *batch n"]:
    """Running integral S_t = x_0 + h Σ_{s<t} r_s for t = 0 … T (S_0 = x_0, S_T = x_T).

    With ``x0=None`` the integral starts from 0. For a ResNet, S_t is exactly the state x_t.
    """
    r = check_array("residuals", residuals, min_ndim=1)
    check_positive("h", h)
    start = jnp.zeros_like(r[0]) if x0 is None else check_array("x0", x0, min_ndim=0)
    if x0 is not None and start.shape != r.shape[1:]:
        raise ValueError(f"x0 must have shape {r.shape[1:]} to match residuals {r.shape}, got {start.shape}")
    csum = jnp.cumsum(jnp.asarray(h, r.dtype) * r, axis=0)
    return jnp.concatenate([start[None], start + csum], axis=0)


def reconstruct_output(
    x0: Float[Array, "*batch n"], residuals: Float[Array, "T *batch n"], *, h=1.0
) -> Float[Array, "*batch n"]:
    """x_T = x_0 + h Σ_{t<T} r_t: the output as the integral of the residuals' transient."""
    return running_integral(residuals, h=h, x0=x0)[-1]
