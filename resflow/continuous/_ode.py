"""Continuous depth: the trunk's ODE and the residual ODE, solved with diffrax.

The shared-weight resnet map x_{t+1} = x_t + h·act(W x_t + b) is one explicit Euler step of

    dx/ds = act(W x + b)                        (depth-time s = t·h)

so T layers of step h approximate the ODE solution at depth-time S = T·h, with a global error
O(h). For the sigmoid, the residual r = σ(a), a = W x + b, obeys its own closed ODE: the chain
rule gives dr/ds = σ'(a)·da/ds = r(1 − r)·(W dx/ds) = r(1 − r)·(W r) (a logistic, or
Lotka–Volterra, system).

`solve_depth` and `solve_residuals` integrate these with Tsit5 under a PID step-size
controller, or with fixed-step Euler (which, at dt0 = h, is the network itself);
`euler_convergence` measures the discrete map's error against the ODE as h → 0.
Everything is differentiable (diffrax's default recursive-checkpoint adjoint) and batches
over leading input axes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._checks import (
    all_true,
    as_float_array,
    check_array,
    check_choice,
    check_int,
    check_positive,
    check_unit_interval,
    is_concrete,
)
from ..dynamics._common import check_vector_field, random_frame
from ..dynamics._lyapunov import LyapunovResult
from ..trunk._activations import get_activation
from ..trunk._trunk import Trunk, check_trunk, require_logistic, require_shared, scan_trunk

__all__ = [
    "DepthSolution",
    "Convergence",
    "solve_depth",
    "solve_residuals",
    "euler_convergence",
    "ode_lyapunov_spectrum",
]

SOLVERS = ("tsit5", "euler")


class DepthSolution(NamedTuple):
    """An ODE solution saved at requested depth-times.

    - `ts`: ``(m,)`` the depth-times s saved.
    - `ys`: ``(*batch, m, n)`` the state (x or r) at each of `ts`.
    - `num_steps`: ``(*batch,)`` solver steps taken (accepted and rejected).
    """

    ts: Float[Array, " m"]
    ys: Float[Array, "*batch m n"]
    num_steps: Array


class Convergence(NamedTuple):
    """The Euler map's error against the ODE as the step shrinks.

    - `h`: ``(p,)`` step sizes S/T, decreasing.
    - `steps`: ``(p,)`` the layer counts T.
    - `errors`: ``(p,)`` max over inputs of ‖x_T − x(S)‖₂.
    - `slope`, `intercept`: least-squares fit log error = slope·log h + intercept (first order
      means slope ≈ 1).
    - `depth_time`: S.
    """

    h: np.ndarray
    steps: np.ndarray
    errors: np.ndarray
    slope: float
    intercept: float
    depth_time: float


def _depth_field(s, x, trunk: Trunk):
    return get_activation(trunk.activation).fn(x @ trunk.W.T + trunk.b)


def _residual_field(s, r, trunk: Trunk):
    return r * (1 - r) * (r @ trunk.W.T)


@eqx.filter_jit
def _solve(field, trunk, y0, ts, t1, solver: str, dt0, rtol, atol, max_steps: int):
    """diffeqsolve of ``field(s, y, trunk)`` from 0 to t1, saved at ts, vmapped over y0's rows."""
    if solver == "tsit5":
        method, controller = diffrax.Tsit5(), diffrax.PIDController(rtol=rtol, atol=atol)
    else:
        method, controller = diffrax.Euler(), diffrax.ConstantStepSize()

    def one(y):
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(field),
            method,
            t0=0.0,
            t1=t1,
            dt0=dt0,
            y0=y,
            args=trunk,
            saveat=diffrax.SaveAt(ts=ts),
            stepsize_controller=controller,
            max_steps=max_steps,
        )
        return sol.ys, sol.stats["num_steps"]

    return jax.vmap(one)(y0)


def _boundary(trunk, y0, depth_time, saveat, solver, dt0, rtol, atol, max_steps, name, what, *, unit=False):
    """Checked (trunk, y0, S, ts, dt0); one value read for y0 (finite; in (0, 1) with `unit`)
    and the save points."""
    trunk = require_shared(check_trunk(trunk), what)
    if trunk.model != "resnet":
        raise ValueError(f"{what} needs a resnet trunk (the mlp map is not an Euler step), got model={trunk.model!r}")
    check_choice("solver", solver, SOLVERS)
    check_positive("depth_time", depth_time)
    check_positive("rtol", rtol)
    check_positive("atol", atol)
    check_int("max_steps", max_steps)
    default_h = dt0 is None and solver == "euler"
    if default_h:
        dt0 = trunk.h  # one Euler step per layer: the network itself
    if dt0 is not None:
        check_positive("dt0", dt0)
    if solver == "euler" and is_concrete(dt0) and is_concrete(depth_time):
        # a fixed step must land on depth_time: a last partial step would be neither T layers
        # of the network nor the ODE's Euler solution at depth_time
        steps = float(depth_time) / float(dt0)
        if abs(steps - round(steps)) > 1e-9 * max(1.0, steps) or round(steps) < 1:
            raise ValueError(
                f"depth_time = {float(depth_time)} is not a whole number of Euler steps dt0 = {float(dt0)}"
                + (" (dt0 defaults to the trunk's h)" if default_h else "")
                + ": give a depth_time that is a multiple of dt0"
            )
        dt0 = float(depth_time) / round(steps)  # the step that lands exactly on depth_time
    y0 = as_float_array(name, y0)
    if y0.ndim < 1 or y0.shape[-1] != trunk.width:
        raise ValueError(f"{name} must have shape (*batch, {trunk.width}), got {y0.shape}")
    if y0.dtype != trunk.dtype:
        raise TypeError(
            f"{name} has dtype {y0.dtype} but the trunk has {trunk.dtype}: cast one, "
            f"e.g. {name}.astype(trunk.dtype) or trunk.astype({name}.dtype)"
        )
    S = float(depth_time)
    ts = jnp.asarray([S] if saveat is None else saveat, trunk.dtype)
    if ts.ndim != 1 or ts.shape[0] < 1:
        raise ValueError(f"saveat must be a 1-D array of depth-times, got shape {ts.shape}")

    def y_ok(xp, a):
        return xp.isfinite(a) & (a > 0) & (a < 1) if unit else xp.isfinite(a)

    def ts_ok(xp, a):
        return (a >= 0) & (a <= S) & xp.concatenate([a[1:] >= a[:-1], a[:1] == a[:1]])

    if not all_true({name: (y0, y_ok), "saveat": (ts, ts_ok)}):
        check_array(name, y0)
        if unit:
            check_unit_interval(name, y0)
        raise ValueError(f"saveat must be non-decreasing depth-times in [0, depth_time] = [0, {S}], got {ts}")
    return trunk, y0, S, ts, dt0


def _run(field, trunk, y0, S, ts, solver, dt0, rtol, atol, max_steps):
    batch = y0.shape[:-1]
    # numbers as arrays, so new depth-times or tolerances reuse the compiled solve
    S, rtol, atol = (jnp.asarray(v, trunk.dtype) for v in (S, rtol, atol))
    dt0 = None if dt0 is None else jnp.asarray(dt0, trunk.dtype)
    ys, steps = _solve(field, trunk, y0.reshape(-1, trunk.width), ts, S, solver, dt0, rtol, atol, max_steps)
    return DepthSolution(ts, ys.reshape(*batch, *ys.shape[1:]), steps.reshape(batch))


def solve_depth(
    trunk: Trunk,
    x0: Float[Array, "*batch n"],
    *,
    depth_time: float,
    saveat: Float[Array, " m"] | None = None,
    solver: str = "tsit5",
    dt0: float | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    max_steps: int = 16384,
) -> DepthSolution:
    """Solve the trunk's continuous-depth ODE dx/ds = act(W x + b) from x(0) = x0.

    The network with step h and T layers is explicit Euler for this ODE at s = T·h.

    **Arguments:**

    - `trunk`: a shared-weight resnet `Trunk` (any activation); its h is not used except as
      the default Euler step.
    - `x0`: ``(*batch, n)`` initial states, of the trunk's dtype.
    - `depth_time`: S > 0, the final depth-time.
    - `saveat`: ``(m,)`` non-decreasing depth-times in [0, S] to save (default: S only).
    - `solver`: ``"tsit5"`` (adaptive, PID controller with `rtol`, `atol`) or ``"euler"``
      (fixed step `dt0`, default h: ``solve_depth(trunk, x0, depth_time=T*h, solver="euler")``
      reproduces T layers of the network).
    - `dt0`: initial (tsit5; default chosen by diffrax) or fixed (euler) step.
    - `rtol`, `atol`: tolerances of the adaptive solver.
    - `max_steps`: the solver's step budget.

    **Returns:** a `DepthSolution` (``ys`` of shape ``(*batch, m, n)``). Differentiable with
    respect to `x0` and the trunk's arrays.

    **Raises:** `TypeError`/`ValueError` for a trunk that is not a shared-weight resnet, a
    non-finite or mis-shaped `x0`, bad save points, an unknown solver or non-positive
    tolerances.
    """
    trunk, x0, S, ts, dt0 = _boundary(
        trunk, x0, depth_time, saveat, solver, dt0, rtol, atol, max_steps, "x0", "solve_depth"
    )
    return _run(_depth_field, trunk, x0, S, ts, solver, dt0, rtol, atol, max_steps)


def solve_residuals(
    trunk: Trunk,
    r0: Float[Array, "*batch n"],
    *,
    depth_time: float,
    saveat: Float[Array, " m"] | None = None,
    solver: str = "tsit5",
    dt0: float | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    max_steps: int = 16384,
) -> DepthSolution:
    """Solve the residual ODE dr/ds = r ⊙ (1 − r) ⊙ (W r) from r(0) = r0.

    With r0 = σ(W x0 + b), the solution is r(s) = σ(W x(s) + b) for the x of `solve_depth`
    (d/ds σ(a) = σ(1 − σ)·da/ds and da/ds = W dx/ds = W r). The bias enters only through r0.

    **Arguments:** as `solve_depth`, with `r0` ``(*batch, n)`` residuals strictly inside
    (0, 1); the trunk must be a shared-weight sigmoid resnet.

    **Returns:** a `DepthSolution` of residuals.

    **Raises:** as `solve_depth`, and `ValueError` for a non-sigmoid trunk or r0 outside (0, 1).
    """
    require_logistic(check_trunk(trunk), "solve_residuals")
    trunk, r0, S, ts, dt0 = _boundary(
        trunk, r0, depth_time, saveat, solver, dt0, rtol, atol, max_steps, "r0", "solve_residuals", unit=True
    )
    return _run(_residual_field, trunk, r0, S, ts, solver, dt0, rtol, atol, max_steps)


def euler_convergence(
    trunk: Trunk,
    x0: Float[Array, "*batch n"],
    *,
    depth_time: float,
    steps=(8, 16, 32, 64, 128, 256),
    rtol: float = 1e-10,
    atol: float = 1e-12,
) -> Convergence:
    """Error of the discrete map with T = S/h layers against the ODE solution at depth-time S.

    For each T in `steps`, the trunk with step h = S/T is run for T layers; its output is
    compared with a tight Tsit5 solution x(S). Explicit Euler has global error C·h + O(h²), so
    the fitted slope of log error against log h is ≈ 1. Use float64: the reference must be
    far more accurate than the smallest error.

    **Arguments:**

    - `trunk`, `x0`: as `solve_depth` (the trunk's own h is replaced by S/T).
    - `depth_time`: S > 0.
    - `steps`: at least two distinct layer counts T ≥ 1.
    - `rtol`, `atol`: tolerances of the reference solve.

    **Returns:** a `Convergence` (host numpy arrays and floats).

    **Raises:** as `solve_depth`; `ValueError` for fewer than two distinct `steps`.
    """
    steps = sorted({check_int("steps", T) for T in steps})
    if len(steps) < 2:
        raise ValueError(f"steps must hold at least two distinct layer counts, got {steps}")
    trunk, x0, S, ts, _ = _boundary(
        trunk, x0, depth_time, None, "tsit5", None, rtol, atol, 16384, "x0", "euler_convergence"
    )
    reference = _run(_depth_field, trunk, x0, S, ts, "tsit5", None, rtol, atol, 16384).ys[..., -1, :]
    errors = []
    for T in steps:
        trunk_h = eqx.tree_at(lambda t: t.h, trunk, jnp.asarray(S / T, trunk.dtype))
        xT = scan_trunk(trunk_h, x0, depth=T, keep=False)
        errors.append(jnp.max(jnp.linalg.norm(xT - reference, axis=-1)))
    errors = np.asarray(jnp.stack(errors), np.float64)
    steps_arr = np.asarray(steps)
    h = S / steps_arr
    slope, intercept = np.polyfit(np.log(h), np.log(errors), 1)
    return Convergence(h, steps_arr, errors, float(slope), float(intercept), S)


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
            f"finite time, return NaN, or be too stiff for these tolerances: check vector_field, y0 and args, "
            f"or loosen rtol/atol"
        ) from None


def variational_solve(vector_field, t0, t1, y, Q, args, *, rtol, atol, max_steps: int | None = None):
    """(y(t1), Φ(t1, t0) Q): the state and a tangent frame carried from t0 to t1. Unchecked.

    Integrates dy/dt = f(t, y, args) together with the variational equation
    dQ/dt = ∂f/∂y(t, y) Q (one `jax.linearize` per evaluation, vmapped over Q's columns),
    by Tsit5 under a PID controller; the frame is part of the error control.
    """

    def field(t, state, args):
        y, Q = state
        fy, tangent = jax.linearize(lambda y: vector_field(t, y, args), y)
        return fy, jax.vmap(tangent, in_axes=-1, out_axes=-1)(Q)

    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(field),
        diffrax.Tsit5(),
        t0=t0,
        t1=t1,
        dt0=None,
        y0=(y, Q),
        args=args,
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        max_steps=max_steps or SOLVER_MAX_STEPS,
    )
    return jax.tree.map(lambda a: a[-1], sol.ys)


def flow_solve(vector_field, t0, t1, y, args, *, rtol, atol, max_steps: int | None = None):
    """y(t1) from y(t0) = y under dy/dt = f(t, y, args) (Tsit5, PID controller). Unchecked."""
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(vector_field),
        diffrax.Tsit5(),
        t0=t0,
        t1=t1,
        dt0=None,
        y0=y,
        args=args,
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        max_steps=max_steps or SOLVER_MAX_STEPS,
    )
    return sol.ys[-1]


def qr_intervals(dt: float, burn_in: float, t1: float) -> tuple[int, float]:
    """(N, dt'): N ≥ 1 QR intervals of length dt' = (t1 − burn_in)/N, N = round((t1 − burn_in)/dt)."""
    check_positive("t1", t1)
    check_positive("dt", dt)
    check_positive("burn_in", burn_in, allow_zero=True)
    span = float(t1) - float(burn_in)
    if span <= 0:
        raise ValueError(
            f"t1 must exceed burn_in (the measured window is [burn_in, t1]), got t1={t1}, burn_in={burn_in}"
        )
    num = max(1, round(span / float(dt)))
    return num, span / num


@eqx.filter_jit
def _ode_lyapunov(vector_field, y0, args, q0, burn_in, dt, num: int, rtol, atol, has_burn_in: bool):
    y = flow_solve(vector_field, 0.0, burn_in, y0, args, rtol=rtol, atol=atol) if has_burn_in else y0

    def body(carry, i):
        y, Q = carry
        t0 = burn_in + i * dt
        y, PQ = variational_solve(vector_field, t0, t0 + dt, y, Q, args, rtol=rtol, atol=atol)
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
    rtol: float = 1e-8,
    atol: float = 1e-10,
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
    - `dt`: time between QR re-orthonormalisations, short enough that the frame's columns
      do not align to rounding: dt·(λ_1 − λ_k) ≲ 29 in float64, ≲ 9 in float32 (checked).
    - `args`: passed to `vector_field`.
    - `key`: selects the random initial frame (default: a fixed key).
    - `rtol`, `atol`: Tsit5 tolerances.
    - `return_running`: also return the ``(N, k)`` running estimates after each interval.

    **Returns:** a `resflow.LyapunovResult` (``exponents`` per unit time, ``running`` or None,
    ``final_state`` y(t1)).

    **Raises:** `TypeError`/`ValueError` for a non-callable field or one whose output does not
    match y0, a non-finite or non-vector y0, t1 ≤ burn_in, non-positive dt or tolerances, a
    k outside [1, n]; `ValueError` naming dt when in some interval the frame's columns came
    within an angle of 1e3·eps of the span of the columns before them (the exponents past
    them would be rounding noise; this check reads one number and is skipped under
    `jax.jit`); `RuntimeError` naming the solver's reason when the integration fails (e.g.
    the step budget is spent on a flow that blows up in finite time).
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
    check_positive("rtol", rtol)
    check_positive("atol", atol)
    num, step = qr_intervals(dt, burn_in, t1)
    q0 = random_frame(n, k, key, y0.dtype)
    what = (
        f"vector_field from y0 over [0, {t1}] (Tsit5, rtol={rtol}, atol={atol}, at most "
        f"{SOLVER_MAX_STEPS} solver steps per QR interval of length {step:.3g})"
    )
    # numbers as arrays, so new times or tolerances reuse the compiled integration
    burn, dt_arr, rtol, atol = (jnp.asarray(v, y0.dtype) for v in (burn_in, step, rtol, atol))
    with solver_failures("ode_lyapunov_spectrum", what):
        y, logs, log_sine = jax.block_until_ready(
            _ode_lyapunov(vector_field, y0, args, q0, burn, dt_arr, num, rtol, atol, float(burn_in) > 0)
        )
    # Over an interval the frame's columns draw together as exp(−dt·(λ_1 − λ_j)); once that falls
    # to the rounding floor the later R_jj, and so the smaller exponents, are noise.
    floor = float(np.log(1e3 * jnp.finfo(y0.dtype).eps))
    if not all_true({"dt": (log_sine, lambda xp, a: a >= floor)}):
        raise ValueError(
            f"dt = {dt} is too long for this flow: within one interval the tangent frame's columns "
            f"drew together to an angle of {float(np.exp(log_sine)):.1e} rad (below 1e3·eps = "
            f"{np.exp(floor):.1e}), so the smaller exponents would be rounding noise; use a shorter dt, "
            f"with dt·(λ_1 − λ_k) ≲ {-floor:.0f}"
        )
    exponents = jnp.sort(logs.sum(0) / (num * step))[::-1]
    running = None
    if return_running:
        times = step * jnp.arange(1, num + 1, dtype=logs.dtype)[:, None]
        running = jnp.sort(jnp.cumsum(logs, 0) / times, axis=-1)[:, ::-1]
    return LyapunovResult(exponents, running, y)
