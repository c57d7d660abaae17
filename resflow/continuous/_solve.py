"""Continuous depth: the trunk's ODE and the residual ODE, solved with diffrax.

The shared-weight resnet map x_{t+1} = x_t + h·act(W x_t + b) is one explicit Euler step of

    dx/ds = act(W x + b)                        (depth-time s = t·h)

so T layers of step h approximate the ODE solution at depth-time S = T·h, with a global error
O(h). For the sigmoid, the residual r = σ(a), a = W x + b, obeys its own closed ODE: the chain
rule gives dr/ds = σ'(a)·da/ds = r(1 − r)·(W dx/ds) = r(1 − r)·(W r) (a logistic, or
Lotka–Volterra, system).

`solve_depth` and `solve_residuals` integrate these with any diffrax ODE solver and step-size
controller: by default Tsit5 under a PID controller; `diffrax.Euler()` takes fixed steps
(which, at dt0 = h, is the network itself). `euler_convergence` measures the discrete map's
error against the ODE as h → 0. Everything is differentiable (diffrax's default
recursive-checkpoint adjoint) and batches over leading input axes.
"""

from __future__ import annotations

from typing import NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._checks import all_true, as_float_array, check_array, check_int, check_positive, check_unit_interval, is_concrete
from ..trunk._activations import get_activation
from ..trunk._trunk import Trunk, check_trunk, require_logistic, require_shared, scan_trunk

__all__ = [
    "DepthSolution",
    "Convergence",
    "solve_depth",
    "solve_residuals",
    "euler_convergence",
]


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


# --- solver and step-size controller ---------------------------------------------------------

DEFAULT_SOLVER = diffrax.Tsit5()
"""The default ODE solver (Tsit5: 5th-order adaptive Runge–Kutta)."""


def solver_options(solver, stepsize_controller, *, rtol: float, atol: float):
    """Checked ``(solver, stepsize_controller)`` for an ODE solve.

    `stepsize_controller=None` picks ``diffrax.PIDController(rtol=rtol, atol=atol)`` for a
    solver with an error estimate (Tsit5, Dopri5, Heun, …) and ``diffrax.ConstantStepSize()``
    for one without (Euler). Raises `TypeError` naming `solver` or `stepsize_controller` for
    objects that are not diffrax solvers or controllers, `ValueError` for a solver that needs
    more than one term (SDE, IMEX, symplectic solvers), an adaptive controller on a solver
    without an error estimate, or a PID controller with rtol or atol not > 0.
    """
    if isinstance(solver, str):
        raise TypeError(
            f"solver must be a diffrax solver object, e.g. diffrax.Tsit5() or diffrax.Euler(), got the string "
            f"{solver!r} (solver={solver!r} is now solver=diffrax.{solver.capitalize()}())"
        )
    if not isinstance(solver, diffrax.AbstractSolver):
        raise TypeError(f"solver must be a diffrax solver, e.g. diffrax.Tsit5(), got {solver!r}")
    if solver.term_structure is not diffrax.AbstractTerm:
        raise ValueError(
            f"solver must integrate one vector field (an ODE solver such as diffrax.Tsit5()); "
            f"{type(solver).__name__} needs the terms {solver.term_structure}"
        )
    adaptive = isinstance(solver, diffrax.AbstractAdaptiveSolver)
    if stepsize_controller is None:
        stepsize_controller = diffrax.PIDController(rtol=rtol, atol=atol) if adaptive else diffrax.ConstantStepSize()
    if not isinstance(stepsize_controller, diffrax.AbstractStepSizeController):
        raise TypeError(
            "stepsize_controller must be a diffrax step-size controller, e.g. "
            f"diffrax.PIDController(rtol=1e-6, atol=1e-8) or diffrax.ConstantStepSize(), got {stepsize_controller!r}"
        )
    if isinstance(stepsize_controller, diffrax.AbstractAdaptiveStepSizeController) and not adaptive:
        raise ValueError(
            f"stepsize_controller {type(stepsize_controller).__name__} adapts the step from an error estimate, "
            f"which {type(solver).__name__} does not give: use diffrax.ConstantStepSize() (its default) or an "
            f"adaptive solver such as diffrax.Tsit5()"
        )
    if isinstance(stepsize_controller, diffrax.PIDController):
        check_positive("stepsize_controller.rtol", stepsize_controller.rtol)
        check_positive("stepsize_controller.atol", stepsize_controller.atol)
    return solver, stepsize_controller


def traced_tolerances(stepsize_controller, dtype):
    """The controller with a PID controller's rtol and atol as arrays of `dtype`, so that new
    tolerances reuse the compiled solve (other controllers are returned as they are)."""
    if isinstance(stepsize_controller, diffrax.PIDController):
        c = stepsize_controller
        return eqx.tree_at(lambda c: (c.rtol, c.atol), c, (jnp.asarray(c.rtol, dtype), jnp.asarray(c.atol, dtype)))
    return stepsize_controller


def describe(solver, stepsize_controller) -> str:
    """``"Tsit5, PIDController(rtol=1e-08, atol=1e-10)"``: the solver options, for messages."""
    c = stepsize_controller
    controller = (
        f"PIDController(rtol={float(c.rtol):.3g}, atol={float(c.atol):.3g})"
        if isinstance(c, diffrax.PIDController) and is_concrete(c.rtol) and is_concrete(c.atol)
        else type(c).__name__
    )
    return f"{type(solver).__name__}, {controller}"


# --- the depth ODEs ----------------------------------------------------------------------


def _depth_field(s, x, trunk: Trunk):
    return get_activation(trunk.activation).fn(x @ trunk.W.T + trunk.b)


def _residual_field(s, r, trunk: Trunk):
    return r * (1 - r) * (r @ trunk.W.T)


@eqx.filter_jit
def _solve(field, trunk, y0, ts, t1, solver, controller, dt0, max_steps: int):
    """diffeqsolve of ``field(s, y, trunk)`` from 0 to t1, saved at ts, vmapped over y0's rows."""

    def one(y):
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(field),
            solver,
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


def _boundary(trunk, y0, depth_time, saveat, controller, dt0, max_steps, name, what, *, unit=False):
    """Checked (trunk, y0, S, ts, dt0); one value read for y0 (finite; in (0, 1) with `unit`)
    and the save points."""
    trunk = require_shared(check_trunk(trunk), what)
    if trunk.model != "resnet":
        raise ValueError(f"{what} needs a resnet trunk (the mlp map is not an Euler step), got model={trunk.model!r}")
    check_positive("depth_time", depth_time)
    check_int("max_steps", max_steps)
    constant = isinstance(controller, diffrax.ConstantStepSize)
    default_h = dt0 is None and constant
    if default_h:
        dt0 = trunk.h  # one step per layer: with Euler, the network itself
    if dt0 is not None:
        check_positive("dt0", dt0)
    if constant and is_concrete(dt0) and is_concrete(depth_time):
        # a fixed step must land on depth_time: a last partial step would be neither T layers
        # of the network nor the ODE's fixed-step solution at depth_time
        steps = float(depth_time) / float(dt0)
        if abs(steps - round(steps)) > 1e-9 * max(1.0, steps) or round(steps) < 1:
            raise ValueError(
                f"depth_time = {float(depth_time)} is not a whole number of fixed steps dt0 = {float(dt0)}"
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


def _run(field, trunk, y0, S, ts, solver, controller, dt0, max_steps):
    batch = y0.shape[:-1]
    # numbers as arrays, so new depth-times or tolerances reuse the compiled solve
    S = jnp.asarray(S, trunk.dtype)
    dt0 = None if dt0 is None else jnp.asarray(dt0, trunk.dtype)
    controller = traced_tolerances(controller, trunk.dtype)
    ys, steps = _solve(field, trunk, y0.reshape(-1, trunk.width), ts, S, solver, controller, dt0, max_steps)
    return DepthSolution(ts, ys.reshape(*batch, *ys.shape[1:]), steps.reshape(batch))


def solve_depth(
    trunk: Trunk,
    x0: Float[Array, "*batch n"],
    *,
    depth_time: float,
    saveat: Float[Array, " m"] | None = None,
    solver: diffrax.AbstractSolver = DEFAULT_SOLVER,
    stepsize_controller: diffrax.AbstractStepSizeController | None = None,
    dt0: float | None = None,
    max_steps: int = 16384,
) -> DepthSolution:
    """Solve the trunk's continuous-depth ODE dx/ds = act(W x + b) from x(0) = x0.

    The network with step h and T layers is explicit Euler for this ODE at s = T·h.

    **Arguments:**

    - `trunk`: a shared-weight resnet `Trunk` (any activation); its h is not used except as
      the default fixed step.
    - `x0`: ``(*batch, n)`` initial states, of the trunk's dtype.
    - `depth_time`: S > 0, the final depth-time.
    - `saveat`: ``(m,)`` non-decreasing depth-times in [0, S] to save (default: S only).
    - `solver`: a diffrax ODE solver (default ``diffrax.Tsit5()``). ``diffrax.Euler()``
      with its default fixed step h reproduces the network:
      ``solve_depth(trunk, x0, depth_time=T*h, solver=diffrax.Euler())`` is T layers.
    - `stepsize_controller`: a diffrax step-size controller. Default
      ``diffrax.PIDController(rtol=1e-6, atol=1e-8)`` for a solver with an error estimate,
      ``diffrax.ConstantStepSize()`` otherwise.
    - `dt0`: the initial (adaptive; default chosen by diffrax) or fixed (constant step size;
      default the trunk's h, and `depth_time` must be a whole number of it) step.
    - `max_steps`: the solver's step budget.

    **Returns:** a `DepthSolution` (``ys`` of shape ``(*batch, m, n)``). Differentiable with
    respect to `x0` and the trunk's arrays.

    **Raises:** `TypeError`/`ValueError` for a trunk that is not a shared-weight resnet, a
    non-finite or mis-shaped `x0`, bad save points, a `solver` or `stepsize_controller` that
    is not a diffrax ODE solver or step-size controller (or an adaptive controller on a solver
    without an error estimate), non-positive tolerances or steps.
    """
    solver, controller = solver_options(solver, stepsize_controller, rtol=1e-6, atol=1e-8)
    trunk, x0, S, ts, dt0 = _boundary(trunk, x0, depth_time, saveat, controller, dt0, max_steps, "x0", "solve_depth")
    return _run(_depth_field, trunk, x0, S, ts, solver, controller, dt0, max_steps)


def solve_residuals(
    trunk: Trunk,
    r0: Float[Array, "*batch n"],
    *,
    depth_time: float,
    saveat: Float[Array, " m"] | None = None,
    solver: diffrax.AbstractSolver = DEFAULT_SOLVER,
    stepsize_controller: diffrax.AbstractStepSizeController | None = None,
    dt0: float | None = None,
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
    solver, controller = solver_options(solver, stepsize_controller, rtol=1e-6, atol=1e-8)
    trunk, r0, S, ts, dt0 = _boundary(
        trunk, r0, depth_time, saveat, controller, dt0, max_steps, "r0", "solve_residuals", unit=True
    )
    return _run(_residual_field, trunk, r0, S, ts, solver, controller, dt0, max_steps)


def euler_convergence(
    trunk: Trunk,
    x0: Float[Array, "*batch n"],
    *,
    depth_time: float,
    steps=(8, 16, 32, 64, 128, 256),
    solver: diffrax.AbstractSolver = DEFAULT_SOLVER,
    stepsize_controller: diffrax.AbstractStepSizeController | None = None,
    max_steps: int = 16384,
) -> Convergence:
    """Error of the discrete map with T = S/h layers against the ODE solution at depth-time S.

    For each T in `steps`, the trunk with step h = S/T is run for T layers; its output is
    compared with a tight reference solution x(S). Explicit Euler has global error C·h + O(h²),
    so the fitted slope of log error against log h is ≈ 1. Use float64: the reference must be
    far more accurate than the smallest error.

    **Arguments:**

    - `trunk`, `x0`: as `solve_depth` (the trunk's own h is replaced by S/T).
    - `depth_time`: S > 0.
    - `steps`: at least two distinct layer counts T ≥ 1.
    - `solver`, `stepsize_controller`, `max_steps`: the reference solve, as `solve_depth`
      but with the default controller ``diffrax.PIDController(rtol=1e-10, atol=1e-12)``.

    **Returns:** a `Convergence` (host numpy arrays and floats).

    **Raises:** as `solve_depth`; `ValueError` for fewer than two distinct `steps`.
    """
    steps = sorted({check_int("steps", T) for T in steps})
    if len(steps) < 2:
        raise ValueError(f"steps must hold at least two distinct layer counts, got {steps}")
    solver, controller = solver_options(solver, stepsize_controller, rtol=1e-10, atol=1e-12)
    trunk, x0, S, ts, dt0 = _boundary(
        trunk, x0, depth_time, None, controller, None, max_steps, "x0", "euler_convergence"
    )
    reference = _run(_depth_field, trunk, x0, S, ts, solver, controller, dt0, max_steps).ys[..., -1, :]
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
