"""Disentangling the residuals from the outputs.

With pre-activation a_t = W x_t + b and residual r_t = σ(a_t), the shared-weight ResNet
x_{t+1} = x_t + h r_t gives a_{t+1} = W x_t + h W r_t + b = a_t + h W r_t, hence

    r_{t+1} = σ(σ⁻¹(r_t) + h W r_t)      (the residuals evolve on their own)
    x_T     = x_0 + h Σ_{t<T} r_t          (the output integrates them)

The recurrence is stepped in pre-activation space, a_{t+1} = a_t + h W act(a_t): the same
map exactly, and it never takes the logit of a residual that rounded to 0 or 1. See
docs/model.md for the derivation and the float32 accuracy of each form.
"""

from __future__ import annotations

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._checks import (
    all_true,
    as_float_array,
    check_array,
    check_int,
    check_unit_interval,
    finite,
)
from ._activations import get_activation
from ._trunk import Trunk, check_state, check_trunk, depth_weights, require_logistic, require_shared

__all__ = [
    "ConditioningWarning",
    "preactivations",
    "residuals",
    "logit",
    "preactivation_recurrence",
    "residual_recurrence",
    "running_integral",
    "reconstruct_output",
]

#: Largest tolerated bound on the absolute error of a_0 = σ⁻¹(r_0) (see `residual_recurrence`).
LOGIT_ERROR_TOL = 1e-3


class ConditioningWarning(RuntimeWarning):
    """A result is ill-conditioned in the working precision (e.g. the logit of r ≈ 1)."""


def state_array(trunk: Trunk, x, name: str, *, min_ndim: int = 1) -> jax.Array:
    """`x` with the shape and dtype `model.check_state` requires, without reading values.

    The value checks of a call go into one `all_true` read instead; on a failure the
    caller reruns `model.check_state` for the precise message.
    """
    x = as_float_array(name, x)
    if x.ndim < min_ndim or x.shape[-1] != trunk.width or x.dtype != trunk.dtype:
        check_state(trunk, x, name, min_ndim=min_ndim)  # raises the precise error
    return x


def inside_unit(xp, a):
    """Predicate: every entry strictly inside (0, 1) (logistic residuals with a finite logit)."""
    return xp.isfinite(a) & (a > 0) & (a < 1)


def check_residual_values(name: str, r) -> None:
    """Raise the precise error for residuals that are not finite and strictly inside (0, 1)."""
    check_array(name, r, min_ndim=0)
    check_unit_interval(
        name, r, hint="Saturated residuals have no finite pre-activation: use preactivation_recurrence from a_0 instead"
    )


def check_trajectory(trunk: Trunk, traj) -> tuple[jax.Array, int]:
    """A trajectory x_0 … x_T ``(T + 1, *batch, n)`` of the trunk, T ≥ 1 (one value read)."""
    traj = state_array(trunk, traj, "trajectory", min_ndim=2)
    T = traj.shape[0] - 1
    if T < 1:
        raise ValueError(f"trajectory must hold at least 2 states (T + 1 with T >= 1), got shape {traj.shape}")
    if not trunk.shared and trunk.num_layers < T:
        raise ValueError(f"the untied trunk has {trunk.num_layers} layers but the trajectory has T = {T} steps")
    if not all_true({"trajectory": (traj, finite)}):
        check_state(trunk, traj, "trajectory", min_ndim=2)
    return traj, T


# The kernels below are jitted: called eagerly (after the checks), each is one compiled program
# per shape instead of one per primitive.
@jax.jit
def layer_preactivations(trunk: Trunk, traj: Float[Array, "T1 *batch n"]) -> Float[Array, "T *batch n"]:
    """a_t = W_t x_t + b_t for t < T from x_0 … x_T. Unchecked."""
    T = traj.shape[0] - 1
    W, b = depth_weights(trunk, T, traj.ndim - 2)
    return (W @ traj[:-1, ..., None])[..., 0] + b


@jax.jit
def layer_residuals(trunk: Trunk, traj: Float[Array, "T1 *batch n"]) -> Float[Array, "T *batch n"]:
    """r_t = act(a_t) for t < T from x_0 … x_T. Unchecked."""
    return get_activation(trunk.activation).fn(layer_preactivations(trunk, traj))


def preactivations(trunk: Trunk, trajectory: Float[Array, "T1 *batch n"]) -> Float[Array, "T *batch n"]:
    """Pre-activations a_t = W_t x_t + b_t for t = 0 … T−1 of a trajectory x_0 … x_T.

    **Arguments:**

    - `trunk`: the `Trunk` the trajectory came from (shared, or untied with ≥ T layers).
    - `trajectory`: x_0 … x_T, ``(T + 1, *batch, n)`` in the trunk's dtype, T ≥ 1.

    **Returns:** ``(T, *batch, n)``; entry t is a_t.

    **Raises:** `ValueError`/`TypeError` if the trajectory does not match the trunk (width,
    dtype, fewer than 2 states, more steps than untied layers) or is not finite.
    """
    trunk = check_trunk(trunk)
    traj, _ = check_trajectory(trunk, trajectory)
    return layer_preactivations(trunk, traj)


def residuals(trunk: Trunk, trajectory: Float[Array, "T1 *batch n"]) -> Float[Array, "T *batch n"]:
    """Residuals r_t = act(W_t x_t + b_t), t = 0 … T−1, of a trajectory x_0 … x_T.

    The activation is the trunk's. For a ResNet these are the increments: x_{t+1} = x_t + h r_t.

    **Arguments / Raises:** as `preactivations`.

    **Returns:** ``(T, *batch, n)``; entry t is r_t.
    """
    trunk = check_trunk(trunk)
    traj, _ = check_trajectory(trunk, trajectory)
    return layer_residuals(trunk, traj)


def logit(r: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
    """σ⁻¹(r) = log r − log(1 − r) for residuals strictly inside (0, 1).

    **Raises:** `ValueError` if any (concrete) entry is not in the open interval (0, 1):
    a residual that rounded to exactly 0 or 1 is saturated and has no finite logit. Step such
    networks with `preactivation_recurrence` from a_0 instead. Nothing is clipped.
    """
    r = as_float_array("r", r)
    if not all_true({"r": (r, inside_unit)}):
        check_residual_values("r", r)
    return jnp.log(r) - jnp.log1p(-r)


@functools.partial(jax.jit, static_argnames=("depth",))
def preactivation_scan(trunk: Trunk, a0, *, depth: int):
    """a_0 … a_{depth-1} of a_{t+1} = a_t + h W act(a_t) for a shared trunk. Unchecked.

    The one implementation of the pre-activation recurrence (also used by the attractor
    analysis).
    """

    def body(a, _):
        return _preactivation_step(trunk, a), a

    return jax.lax.scan(body, a0, None, length=depth)[1]


@functools.partial(jax.jit, static_argnames=("steps",))
def advance_preactivations(trunk: Trunk, a0, *, steps: int):
    """a_steps of a_{t+1} = a_t + h W act(a_t) from a_0 (shared trunk). Unchecked.

    Only the carry is kept, so memory is O(batch · n) however many steps (a 1000-layer run of
    the same weights); `preactivation_scan` when every a_t is wanted.
    """

    def body(a, _):
        return _preactivation_step(trunk, a), None

    return jax.lax.scan(body, a0, None, length=steps)[0]


def _preactivation_step(trunk: Trunk, a):
    return a + trunk.h * get_activation(trunk.activation).fn(a) @ trunk.W.T


def _recurrence_trunk(trunk, depth: int) -> tuple[Trunk, int]:
    trunk = require_shared(check_trunk(trunk), "the residual recurrence (untied residuals have none of their own)")
    if trunk.model != "resnet":
        raise ValueError(
            f"the pre-activation recurrence a_(t+1) = a_t + h W act(a_t) needs a resnet trunk, got {trunk.model!r}"
        )
    return trunk, check_int("depth", depth)


def preactivation_recurrence(
    trunk: Trunk, a0: Float[Array, "*batch n"], *, depth: int
) -> Float[Array, "depth *batch n"]:
    """Pre-activations from a_0 alone: a_{t+1} = a_t + h W act(a_t) (shared-weight resnet).

    Exact for any activation (it follows from x_{t+1} = x_t + h act(a_t)); the bias enters
    only through a_0 = W x_0 + b. No logit is taken, so it is accurate where
    `residual_recurrence` is not (saturated residuals, float32): σ(a_t) matches the forward
    pass's residuals to a few float32 ulps.

    **Arguments:**

    - `trunk`: a shared-weight resnet `Trunk` (W, h and the activation are used).
    - `a0`: pre-activations of layer 0, ``(*batch, n)`` in the trunk's dtype.
    - `depth`: T ≥ 1, the number of pre-activations returned.

    **Returns:** a_0 … a_{T−1}, ``(T, *batch, n)``.

    **Raises:** `ValueError`/`TypeError` for untied weights, an MLP trunk, a bad shape or
    dtype of a0, non-finite a0, depth < 1.
    """
    trunk, depth = _recurrence_trunk(trunk, depth)
    a0 = check_state(trunk, a0, "a0")
    return preactivation_scan(trunk, a0, depth=depth)


def logit_error_bound(r: Float[Array, "*shape"]):
    """u / (1 − r): bound on the absolute error of σ⁻¹(r) from r's rounding (u = eps/2)."""
    return (np.finfo(r.dtype).eps / 2) / (1 - r)


def residual_recurrence(trunk: Trunk, r0: Float[Array, "*batch n"], *, depth: int) -> Float[Array, "depth *batch n"]:
    """Residuals from r_0 alone: r_{t+1} = σ(σ⁻¹(r_t) + h W r_t) (logistic, shared weights).

    x never appears: the residuals' own dynamics. It is stepped as a_{t+1} = a_t + h W σ(a_t)
    from a_0 = σ⁻¹(r_0): one logit, then the same map without repeated logits.

    **Accuracy.** r_0 carries a rounding error of at most u·r_0 (u = eps/2 of its dtype), so
    a_0 = σ⁻¹(r_0) is off by up to u / (1 − r_0): ill-conditioned as r_0 → 1 (a_0 ≳ 9.7 in
    float32, ≳ 29.8 in float64 for a bound of 1e-3). The error stays in a_t while the unit is
    saturated and reaches the residuals when it desaturates, amplified by the dynamics.
    In float32 the error against the forward pass's residuals grows from ~5e-7 (w_std 1) to
    ~7e-3 (w_std 4, b_std 2, strongly saturated); `preactivation_recurrence` from
    a_0 = W x_0 + b takes no logit and stays within ~5e-6 of float64. The measured table is
    in docs/model.md.

    When the bound u / (1 − r_0) exceeds 1e-3 for a (concrete) entry, a `ConditioningWarning`
    says so and points to `preactivation_recurrence`. The value checks and this test share one
    host read (the warning and error paths read again to describe the problem); no read
    happens under `jax.jit`.

    **Arguments:**

    - `trunk`: a shared-weight logistic resnet `Trunk` (W and h are used).
    - `r0`: residuals of layer 0, ``(*batch, n)`` in the trunk's dtype, strictly inside (0, 1).
    - `depth`: T ≥ 1, the number of residuals returned.

    **Returns:** r_0 … r_{T−1}, ``(T, *batch, n)``; equals
    ``residuals(trunk, trajectory(trunk, x0, depth=T))`` when r_0 = σ(W x_0 + b), up to the
    accuracy above.

    **Raises:** `ValueError` if r0 has entries at or outside 0 or 1 (saturated: use
    `preactivation_recurrence`), for untied weights, a tanh/relu or MLP trunk, a bad shape or
    dtype, or depth < 1.

    **Warns:** `ConditioningWarning` when σ⁻¹(r_0) is ill-conditioned, as above.
    """
    trunk, depth = _recurrence_trunk(trunk, depth)
    require_logistic(trunk, "the residual recurrence")
    r0 = state_array(trunk, r0, "r0")

    def well_conditioned(xp, a):
        # u/(1 − a) ≤ tol, written without the division (r = 1 is caught, not divided by).
        return inside_unit(xp, a) & (np.finfo(a.dtype).eps / 2 <= LOGIT_ERROR_TOL * (1 - a))

    if not all_true({"r0": (r0, well_conditioned)}):
        check_residual_values("r0", r0)
        worst = float(np.max(logit_error_bound(np.asarray(r0))))
        warnings.warn(
            f"residual_recurrence: r0 is within {np.finfo(r0.dtype).eps / 2 / worst:.1e} of 1, so "
            f"a_0 = logit(r0) may be off by up to {worst:.1e} in {r0.dtype} and the residuals by as much "
            "once they desaturate; step preactivation_recurrence(trunk, W x0 + b, depth=...) instead, "
            "which takes no logit",
            ConditioningWarning,
            stacklevel=2,
        )
    return _residual_scan(trunk, r0, depth=depth)


@functools.partial(jax.jit, static_argnames=("depth",))
def _residual_scan(trunk: Trunk, r0, *, depth: int):
    return jax.nn.sigmoid(preactivation_scan(trunk, jnp.log(r0) - jnp.log1p(-r0), depth=depth))


@jax.jit
def integrate_residuals(trunk: Trunk, r, x0=None):
    """S_t = x_0 + h Σ_{s<t} r_s for t = 0 … T (x_0 = 0 when None). Unchecked."""
    start = jnp.zeros_like(r[0]) if x0 is None else x0
    return jnp.concatenate([start[None], start + jnp.cumsum(trunk.h * r, axis=0)], axis=0)


@jax.jit
def _integral_end(trunk: Trunk, r, x0):
    return integrate_residuals(trunk, r, x0)[-1]


def _check_integral(trunk, r, x0):
    trunk = check_trunk(trunk)
    if trunk.model != "resnet":
        raise ValueError(f"x_T = x_0 + h Σ r_t holds for a resnet trunk, got model={trunk.model!r}")
    r = state_array(trunk, r, "residuals")
    checks = {"residuals": (r, finite)}
    if x0 is not None:
        x0 = state_array(trunk, x0, "x0")
        if x0.shape != r.shape[1:]:
            raise ValueError(f"x0 must have shape {r.shape[1:]} to match residuals {r.shape}, got {x0.shape}")
        checks["x0"] = (x0, finite)
    if not all_true(checks):
        for name, (a, _) in checks.items():
            check_state(trunk, a, name)
    return trunk, r, x0


def running_integral(
    trunk: Trunk, residuals: Float[Array, "T *batch n"], *, x0: Float[Array, "*batch n"] | None = None
) -> Float[Array, "T1 *batch n"]:
    """Running integral S_t = x_0 + h Σ_{s<t} r_s for t = 0 … T (S_0 = x_0, S_T = x_T).

    For a ResNet, S_t is exactly the state x_t. h is the trunk's.

    **Arguments:**

    - `trunk`: the resnet `Trunk` whose residuals these are.
    - `residuals`: r_0 … r_{T−1}, ``(T, *batch, n)`` in the trunk's dtype.
    - `x0`: the start, ``(*batch, n)``; ``None`` starts the integral from 0.

    **Returns:** ``(T + 1, *batch, n)``.

    **Raises:** `ValueError`/`TypeError` for an MLP trunk, mismatched shapes or dtypes,
    non-finite values.
    """
    trunk, r, x0 = _check_integral(trunk, residuals, x0)
    return integrate_residuals(trunk, r, x0)


def reconstruct_output(
    trunk: Trunk, x0: Float[Array, "*batch n"], residuals: Float[Array, "T *batch n"]
) -> Float[Array, "*batch n"]:
    """x_T = x_0 + h Σ_{t<T} r_t: the output as the integral of the residuals' transient.

    **Arguments / Raises:** as `running_integral` (x0 required).

    **Returns:** ``(*batch, n)``.
    """
    trunk, r, x0 = _check_integral(trunk, residuals, x0)
    return _integral_end(trunk, r, x0)
