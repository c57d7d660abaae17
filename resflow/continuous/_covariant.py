"""Covariant Lyapunov vectors of a flow dy/dt = f(t, y): Ginelli's two passes
(`resflow.dynamics.covariant_lyapunov_vectors`) with the tangent frame carried by diffrax
between sampling times."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._checks import all_true, check_positive
from ..dynamics._common import check_vector_field, random_frame
from ..dynamics._covariant import CovariantVectors, clv_result, end_coefficients, frame_inputs, ginelli
from ._lyapunov import check_frame_angle, flow_options, qr_intervals, solver_failures, variational_solve
from ._solve import DEFAULT_SOLVER

__all__ = ["covariant_lyapunov_vectors_flow"]


@eqx.filter_jit
def _flow_clv(vector_field, y0, args, q0, c_end, t_start, dt, transient: int, num: int, solver, controller, dt0):
    ts = t_start + dt * jnp.arange(transient + num + transient, dtype=y0.dtype)

    def propagate(y, Q, t0):
        return variational_solve(
            vector_field, t0, t0 + dt, y, Q, args, solver=solver, stepsize_controller=controller, dt0=dt0
        )

    V, orbit, logs, log_sine = ginelli(propagate, y0, q0, c_end, ts[:transient], ts[transient:], num)
    return clv_result(V, orbit, logs, ts[transient : transient + num], dt), log_sine


def covariant_lyapunov_vectors_flow(
    vector_field: Callable[[Any, Array, Any], Array],
    y0: Float[Array, " n"],
    t1: float,
    *,
    dt: float = 0.1,
    num_vectors: int | None = None,
    transient: float = 20.0,
    args: Any = None,
    key: jax.Array | None = None,
    solver: diffrax.AbstractSolver = DEFAULT_SOLVER,
    stepsize_controller: diffrax.AbstractStepSizeController | None = None,
    dt0: float | None = None,
) -> CovariantVectors:
    """Covariant Lyapunov vectors of a flow dy/dt = f(t, y, args), by Ginelli's method.

    The map is the flow over one interval dt (state and tangent frame integrated together,
    as in `resflow.ode_lyapunov_spectrum`). The window [0, t1] is preceded and followed by
    `transient` time units; CLVs are returned at the window's N = round(t1/dt) interval
    starts. Along a flow one CLV (for a bounded non-fixed orbit) is the flow direction f(y)
    itself, with exponent 0.

    **Arguments:**

    - `vector_field`, `args`, `solver`, `stepsize_controller`, `dt0`: as
      `resflow.ode_lyapunov_spectrum` (default Tsit5 under
      ``diffrax.PIDController(rtol=1e-8, atol=1e-10)``).
    - `y0`: ``(n,)`` initial state (at time 0, the start of the forward transient).
    - `t1`: the window's length (> 0).
    - `dt`: interval between QR steps (and between returned points), a finite number with
      0 < dt ≤ t1, short enough that the frame's columns do not align to rounding within one
      interval: dt·(λ_1 − λ_k) ≲ 29 in float64, ≲ 9 in float32 (checked).
    - `num_vectors`: k ≤ n (default n).
    - `transient`: time before and after the window, ≥ 0.
    - `key`: selects the random initial frame and backward start.

    **Returns:** a `CovariantVectors` (``times`` the interval start times; ``exponents``
    per unit time).

    **Raises:** `TypeError`/`ValueError` as `resflow.ode_lyapunov_spectrum`: among them a
    `ValueError` naming dt for a dt that is not a finite number in (0, t1], or one so long
    that the frame's columns aligned to rounding in some interval (the backward pass would
    divide by a rounding-level R_jj; this check reads one number and is skipped under
    `jax.jit`); `RuntimeError` naming the solver's reason when the integration fails.
    """
    y0, n, k = frame_inputs(y0, num_vectors, "y0")
    check_vector_field(vector_field, y0, args)
    num, step = qr_intervals(dt, 0.0, t1)
    check_positive("transient", transient, allow_zero=True)
    transient_steps = round(float(transient) / step)
    if not all_true({"y0": (y0, lambda xp, a: xp.isfinite(a))}):
        raise ValueError("y0 must contain only finite values (found NaN or inf)")
    solver, controller, dt0, options = flow_options(solver, stepsize_controller, dt0, step, y0.dtype)
    q0 = random_frame(n, k, key, y0.dtype)
    c_end = end_coefficients(k, key, y0.dtype)
    span = (2 * transient_steps + num) * step
    what = f"vector_field from y0 over [0, {span:.6g}] ({options}, QR intervals of length {step:.3g})"
    with solver_failures("covariant_lyapunov_vectors_flow", what):
        result, log_sine = jax.block_until_ready(
            _flow_clv(
                vector_field,
                y0,
                args,
                q0,
                c_end,
                0.0,
                jnp.asarray(step, y0.dtype),
                transient_steps,
                num,
                solver,
                controller,
                dt0,
            )
        )
    check_frame_angle(log_sine, dt, y0.dtype)
    return result
