"""Lyapunov exponents of any flow dy/dt = f(t, y, args), by diffrax and QR re-orthonormalisation.

`variational_solve` carries a state and a tangent frame together (the variational equation
dQ/dt = ∂f/∂y Q), `flow_solve` the state alone; `ode_lyapunov_spectrum` chains them over QR
intervals, and `resflow.covariant_lyapunov_vectors_flow` uses the same integration.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._checks import all_true, as_float_array, check_int, check_positive
from ..dynamics._common import check_vector_field, random_frame
from ..dynamics._lyapunov import LyapunovResult
from ._solve import DEFAULT_SOLVER, describe, solver_options, traced_tolerances

__all__ = ["ode_lyapunov_spectrum"]

SOLVER_MAX_STEPS = 65536
"""Steps `variational_solve` and `flow_solve` take at most per call (one QR interval, or the
burn-in), unless given `max_steps`; read when a call is traced."""


@contextlib.contextmanager
def solver_failures(caller: str, what: str):
    """Re-raise a failure of the diffrax solver inside the block as one clear `RuntimeError`.

    A failing solve (step budget spent, step size driven to zero, a NaN from the field) raises
    `equinox.EquinoxRuntimeError`, whose message buries the cause under the stack inside jit.
    The new error names `caller`, `what` was being integrated and the solver's own reason; the
    block waits for its results, so the failure surfaces here and not at a later read.
    """
    try:
        yield
    except eqx.EquinoxRuntimeError as e:
        lines = [line.strip() for line in str(e).splitlines()]
        reasons = [line.split(": ", 1)[1] for line in lines if line.startswith("equinox.EquinoxRuntimeError: ")]
        reason = reasons[0] if reasons else next((line for line in lines if line), "no reason given")
        # The budget is not an argument of the callers: `what` states it instead.
        reason = reason.replace(" Try increasing `max_steps`.", "")
        raise RuntimeError(
            f"{caller}: the ODE solver failed while integrating {what}: {reason} The flow may blow up in "
            f"finite time, return NaN, or be too stiff for these solver options: check vector_field, y0 and "
            f"args, or change the stepsize_controller (e.g. looser rtol/atol)"
        ) from None


def flow_options(solver, stepsize_controller, dt0, dt: float, dtype):
    """Checked solver options for `variational_solve`/`flow_solve` over QR intervals of length `dt`:
    (solver, controller with traced tolerances, dt0 or None, a description for messages).

    The default controller is ``diffrax.PIDController(rtol=1e-8, atol=1e-10)`` for an adaptive
    solver. A constant step size needs `dt0` (ValueError naming it otherwise), at most `dt`.
    """
    solver, controller = solver_options(solver, stepsize_controller, rtol=1e-8, atol=1e-10)
    if dt0 is not None:
        check_positive("dt0", dt0)
        if float(dt0) > float(dt):
            raise ValueError(f"dt0 = {float(dt0)} must not exceed the QR interval dt = {float(dt):.6g}")
    elif isinstance(controller, diffrax.ConstantStepSize):
        raise ValueError(
            f"dt0 is required with a constant step size ({type(solver).__name__} without an adaptive "
            f"stepsize_controller): give the fixed step, at most the QR interval dt = {float(dt):.6g}"
        )
    what = describe(solver, controller)
    return solver, traced_tolerances(controller, dtype), None if dt0 is None else jnp.asarray(dt0, dtype), what


def variational_solve(vector_field, t0, t1, y, Q, args, *, solver, stepsize_controller, dt0=None, max_steps=None):
    """(y(t1), Φ(t1, t0) Q): the state and a tangent frame carried from t0 to t1. Unchecked.

    Integrates dy/dt = f(t, y, args) together with the variational equation
    dQ/dt = ∂f/∂y(t, y) Q (one `jax.linearize` per evaluation, vmapped over Q's columns), by
    `solver` under `stepsize_controller`; the frame is part of the error control.
    """

    def field(t, state, args):
        y, Q = state
        fy, tangent = jax.linearize(lambda y: vector_field(t, y, args), y)
        return fy, jax.vmap(tangent, in_axes=-1, out_axes=-1)(Q)

    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(field),
        solver,
        t0=t0,
        t1=t1,
        dt0=dt0,
        y0=(y, Q),
        args=args,
        stepsize_controller=stepsize_controller,
        max_steps=max_steps or SOLVER_MAX_STEPS,
    )
    return jax.tree.map(lambda a: a[-1], sol.ys)


def flow_solve(vector_field, t0, t1, y, args, *, solver, stepsize_controller, dt0=None, max_steps=None):
    """y(t1) from y(t0) = y under dy/dt = f(t, y, args). Unchecked."""
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(vector_field),
        solver,
        t0=t0,
        t1=t1,
        dt0=dt0,
        y0=y,
        args=args,
        stepsize_controller=stepsize_controller,
        max_steps=max_steps or SOLVER_MAX_STEPS,
    )
    return sol.ys[-1]


def qr_intervals(dt: float, burn_in: float, t1: float) -> tuple[int, float]:
    """(N, dt'): N ≥ 1 QR intervals of length dt' = (t1 − burn_in)/N, N = round((t1 − burn_in)/dt).

    Raises `ValueError` naming `dt` unless 0 < dt ≤ t1 − burn_in (finite), and naming `t1`
    unless t1 > burn_in.
    """
    check_positive("t1", t1)
    check_positive("dt", dt)
    check_positive("burn_in", burn_in, allow_zero=True)
    span = float(t1) - float(burn_in)
    if span <= 0:
        raise ValueError(
            f"t1 must exceed burn_in (the measured window is [burn_in, t1]), got t1={t1}, burn_in={burn_in}"
        )
    if float(dt) > span:
        raise ValueError(
            f"dt = {float(dt)} must not exceed the measured window t1 − burn_in = {span:.6g} (one QR interval "
            f"at most the whole window)"
        )
    num = round(span / float(dt))
    return num, span / num


@eqx.filter_jit
def _ode_lyapunov(vector_field, y0, args, q0, burn_in, dt, num: int, solver, controller, dt0, has_burn_in: bool):
    options = dict(solver=solver, stepsize_controller=controller, dt0=dt0)
    y = flow_solve(vector_field, 0.0, burn_in, y0, args, **options) if has_burn_in else y0

    def body(carry, i):
        y, Q = carry
        t0 = burn_in + i * dt
        y, PQ = variational_solve(vector_field, t0, t0 + dt, y, Q, args, **options)
        Q, R = jnp.linalg.qr(PQ)
        log_r = jnp.log(jnp.abs(jnp.diagonal(R)))
        # log sin of the angle between column j and the span of the columns before it
        return (y, Q), (log_r, log_r - jnp.log(jnp.linalg.norm(PQ, axis=0)))

    (y, _), (logs, log_sines) = jax.lax.scan(body, (y, q0), jnp.arange(num, dtype=y0.dtype))
    return y, logs, log_sines.min()


def ode_lyapunov_spectrum(
    vector_field: Callable[[Any, Array, Any], Array],
    y0: Float[Array, " n"],
    t1: float,
    *,
    num_exponents: int | None = None,
    burn_in: float = 0.0,
    dt: float = 0.1,
    args: Any = None,
    key: jax.Array | None = None,
    solver: diffrax.AbstractSolver = DEFAULT_SOLVER,
    stepsize_controller: diffrax.AbstractStepSizeController | None = None,
    dt0: float | None = None,
    return_running: bool = False,
) -> LyapunovResult:
    """Lyapunov exponents of a flow dy/dt = f(t, y, args), in nats per unit time.

    From y(0) = y0 the state alone is integrated to t = `burn_in`; then the state and a k-column
    tangent frame Q (dQ/dt = ∂f/∂y Q) are integrated over N intervals of length
    dt' = (t1 − burn_in)/N, N = round((t1 − burn_in)/dt), and Q is re-orthonormalised after each
    by Q R = Q(t + dt'). Then λ_j = Σ log|R[j, j]| / (t1 − burn_in), sorted descending.
    The sum of all n exponents equals the time average of the divergence tr ∂f/∂y.

    **Arguments:**

    - `vector_field`: ``f(t, y, args) -> dy/dt`` (diffrax's convention), jax-traceable.
    - `y0`: ``(n,)`` initial state.
    - `t1`: the end time; the measured window is [burn_in, t1].
    - `num_exponents`: k ≤ n (default n).
    - `burn_in`: time integrated before measuring, ≥ 0.
    - `dt`: time between QR re-orthonormalisations, 0 < dt ≤ t1 − burn_in, short enough that
      the frame's columns do not align to rounding: dt·(λ_1 − λ_k) ≲ 29 in float64, ≲ 9 in
      float32 (checked).
    - `args`: passed to `vector_field`.
    - `key`: selects the random initial frame (default: a fixed key).
    - `solver`: a diffrax ODE solver (default ``diffrax.Tsit5()``).
    - `stepsize_controller`: a diffrax step-size controller; default
      ``diffrax.PIDController(rtol=1e-8, atol=1e-10)`` for a solver with an error estimate,
      ``diffrax.ConstantStepSize()`` otherwise.
    - `dt0`: the solver's initial step (adaptive; default chosen by diffrax) or fixed step
      (constant step size; required), at most dt.
    - `return_running`: also return the ``(N, k)`` running estimates after each interval.

    **Returns:** a `resflow.dynamics.LyapunovResult` (``exponents`` per unit time, ``running`` or None,
    ``final_state`` y(t1)).

    **Raises:** `TypeError`/`ValueError` for a non-callable field or one whose output does not
    match y0, a non-finite or non-vector y0, t1 ≤ burn_in, a dt outside (0, t1 − burn_in], a
    `solver` or `stepsize_controller` that is not a diffrax ODE solver or controller (or an
    adaptive controller on a solver without an error estimate), non-positive tolerances, a
    constant step size without `dt0`, a k outside [1, n]; `ValueError` naming dt when in some
    interval the frame's columns came within an angle of 1e3·eps of the span of the columns
    before them (the exponents past them would be rounding noise; this check reads one number
    and is skipped under `jax.jit`); `RuntimeError` naming the solver's reason when the
    integration fails (e.g. the step budget is spent on a flow that blows up in finite time).
    """
    y0 = as_float_array("y0", y0)
    if y0.ndim != 1:
        raise ValueError(f"y0 must be a state vector (n,), got shape {y0.shape}; vmap the call for a batch")
    if not all_true({"y0": (y0, lambda xp, a: xp.isfinite(a))}):
        raise ValueError("y0 must contain only finite values (found NaN or inf)")
    n = y0.shape[0]
    k = n if num_exponents is None else check_int("num_exponents", num_exponents)
    if k > n:
        raise ValueError(f"num_exponents must be <= n = {n}, got {k}")
    check_vector_field(vector_field, y0, args)
    num, step = qr_intervals(dt, burn_in, t1)
    solver, controller, dt0, options = flow_options(solver, stepsize_controller, dt0, step, y0.dtype)
    q0 = random_frame(n, k, key, y0.dtype)
    what = (
        f"vector_field from y0 over [0, {t1}] ({options}, at most {SOLVER_MAX_STEPS} solver steps per QR "
        f"interval of length {step:.3g})"
    )
    # numbers as arrays, so new times or tolerances reuse the compiled integration
    burn, dt_arr = (jnp.asarray(v, y0.dtype) for v in (burn_in, step))
    with solver_failures("ode_lyapunov_spectrum", what):
        y, logs, log_sine = jax.block_until_ready(
            _ode_lyapunov(vector_field, y0, args, q0, burn, dt_arr, num, solver, controller, dt0, float(burn_in) > 0)
        )
    # Over an interval the frame's columns draw together as exp(−dt·(λ_1 − λ_j)); once that falls
    # to the rounding floor the later R_jj, and so the smaller exponents, are noise.
    check_frame_angle(log_sine, dt, y0.dtype)
    exponents = jnp.sort(logs.sum(0) / (num * step))[::-1]
    running = None
    if return_running:
        times = step * jnp.arange(1, num + 1, dtype=logs.dtype)[:, None]
        running = jnp.sort(jnp.cumsum(logs, 0) / times, axis=-1)[:, ::-1]
    return LyapunovResult(exponents, running, y)


def check_frame_angle(log_sine, dt, dtype) -> None:
    """`ValueError` naming dt when the smallest log sin of the angle between a frame column and
    the span of the columns before it, over all QR intervals, fell below log(1e3·eps): the
    exponents past that column would be rounding noise. One value read; skipped under jit."""
    floor = float(np.log(1e3 * jnp.finfo(dtype).eps))
    if not all_true({"dt": (log_sine, lambda xp, a: a >= floor)}):
        raise ValueError(
            f"dt = {dt} is too long for this flow: within one interval the tangent frame's columns "
            f"drew together to an angle of {float(np.exp(log_sine)):.1e} rad (below 1e3·eps = "
            f"{np.exp(floor):.1e}), so the smaller exponents would be rounding noise; use a shorter dt, "
            f"with dt·(λ_1 − λ_k) ≲ {-floor:.0f}"
        )
