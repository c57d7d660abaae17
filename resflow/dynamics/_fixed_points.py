"""Fixed points of any map ``step(x) -> x_next`` on R^n: one result type, several methods.

- `FixedPoints`: the one result type of every fixed-point tool of resflow (root finding and
  descent here; enumeration of saturation patterns and the search from data in
  `resflow.analysis` fill its optional fields). Stability comes from the one classifier,
  `classify_stability`, and convergence from `fixed_point_bound` (module `_stability`).
- `find_fixed_points(step, starts, method=...)`: root finding of F(x) = step(x) − x with
  optimistix (``"lm"``: Levenberg–Marquardt, ``"newton"``, or any optimistix root-finder or
  least-squares solver object), or descent on q(x) = ½‖F(x)‖² (``"descent"``, optax; finds
  slow points too, `find_slow_points`).
- `unique_fixed_points`: host-side merging of many starts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optimistix as optx
from jaxtyping import Array, Bool, Complex, Float, Int

from .._checks import all_true, as_float_array, check_array, check_choice, check_int, check_positive
from ._common import batched, callable_jit, check_step
from ._spectra import eigvals_sorted
from ._stability import Stability, classify_stability, fixed_point_bound, fixed_point_tolerances

__all__ = [
    "FixedPoints",
    "find_fixed_points",
    "find_slow_points",
    "unique_fixed_points",
]


class FixedPoints(NamedTuple):
    """Fixed points (or points searched for them), with their multipliers and stability.

    The one result type of `find_fixed_points` (every method), `find_slow_points`,
    `unique_fixed_points` and the residual-map tools of `resflow.analysis`
    (`residual_fixed_points`, `fixed_point_pattern`, `interior_fixed_points`,
    `search_residual_fixed_points`). Always present:

    - `points`: ``(*batch, n)`` the point each start or pattern ended at.
    - `converged`: ``(*batch,)`` bool, a true fixed point is certified there (the
      `fixed_point_bound` test for maps given as functions; exact for enumerated patterns).
    - `residual_norm`: ``(*batch,)`` ‖step(x) − x‖₂ (residual-map tools: ‖(W r*)_F‖₂ on the free components).
    - `multipliers`: ``(*batch, n)`` complex eigenvalues of ∂step/∂x at `points` (largest
      modulus first for maps given as functions; the coordinate layout of `flow_eigenvalues`
      for the residual-map tools).
    - `stability`: ``(*batch,)`` int32 `Stability` code by `classify_stability`; `labels` as strings.

    Optional (None where the method does not produce them):

    - `error`: ``(*batch,)`` bound on the distance to the true fixed point (`fixed_point_bound`).
    - `num_iterations`: ``(*batch,)`` iterations used.
    - `stalled`: ``(*batch,)`` descent only: not fixed and not a local minimum of ½‖F‖² (`find_slow_points`).
    - `start_counts`: ``(k,)`` starts that reached each point; `start_solution`: ``(B,)`` the row
      each start reached (−1: none).
    - `patterns`, `dimension`, `flow_eigenvalues`, `attracting`, `classified_by`,
      `saturation_margin`: the residual map's saturation patterns (`resflow.analysis`).
    """

    points: Float[Array, "*batch n"]
    converged: Bool[Array, " *batch"]
    residual_norm: Float[Array, " *batch"]
    multipliers: Complex[Array, "*batch n"]
    stability: Int[Array, " *batch"]
    error: Any = None
    num_iterations: Any = None
    stalled: Any = None
    start_counts: Any = None
    start_solution: Any = None
    patterns: Any = None
    dimension: Any = None
    flow_eigenvalues: Any = None
    attracting: Any = None
    classified_by: Any = None
    saturation_margin: Any = None

    @property
    def labels(self) -> np.ndarray:
        """Stability as strings (host-side numpy array, same shape as `stability`)."""
        codes = np.asarray(self.stability)
        names = np.array([Stability(int(c)).label for c in codes.ravel()], dtype=object)
        return names.reshape(codes.shape)

    @property
    def eigenvalues(self):
        """The `multipliers` (the eigenvalues of ∂step/∂x)."""
        return self.multipliers

    @property
    def q(self):
        """The speed ½‖step(x) − x‖² at `points`."""
        return 0.5 * self.residual_norm**2

    @property
    def spectral_radius(self):
        """max |μ| per point."""
        return np.abs(np.asarray(self.multipliers)).max(axis=-1, initial=0.0)

    @property
    def num_low(self):
        """Components saturated at 0 per point (residual-map tools)."""
        return (np.asarray(self.patterns) == 0).sum(-1)

    @property
    def num_high(self):
        """Components saturated at 1 per point (residual-map tools)."""
        return (np.asarray(self.patterns) == 1).sum(-1)

    @property
    def num_free(self):
        """Free components per point (residual-map tools)."""
        return (np.asarray(self.patterns) == -1).sum(-1)

    def take(self, index) -> FixedPoints:
        """The rows `index` (numpy index over the first batch axis) of every per-point field, on the host.

        `start_solution` (one entry per start, not per point) is dropped."""
        per_point = {k: v for k, v in self._asdict().items() if v is not None and k != "start_solution"}
        return FixedPoints(**{k: np.asarray(v)[index] for k, v in per_point.items()})


METHODS = ("lm", "newton", "descent")
OPTIMISERS = {"adam": optax.adam, "sgd": optax.sgd}
POLISH_STEPS = 3
"""Newton steps after the solver, each kept where it lowers ‖F‖ (near a simple root each
squares the error, so points come back to round-off rather than to just below the tolerances)."""


def _solver_tol(dtype) -> float:
    return float(jnp.finfo(dtype).eps) ** 0.75


def _newton(dtype):
    return optx.Newton(rtol=_solver_tol(dtype), atol=_solver_tol(dtype))


def _solver(method, dtype):
    if method == "lm":
        return optx.LevenbergMarquardt(rtol=_solver_tol(dtype), atol=_solver_tol(dtype))
    if method == "newton":
        return _newton(dtype)
    return method


def _finite_or(x, fallback):
    return jnp.where(jnp.all(jnp.isfinite(x)), x, fallback)


def find_fixed_points(
    step: Callable[[Array], Array],
    initial_points: Float[Array, "*batch n"],
    *,
    method: str | optx.AbstractRootFinder | optx.AbstractLeastSquaresSolver = "lm",
    tol: float | None = None,
    xtol: float | None = None,
    max_iter: int | None = None,
    marginal_tol: float | None = None,
    learning_rate: float = 1e-2,
    optimiser: str = "adam",
) -> FixedPoints:
    """Fixed points x* = step(x*) of a map from many starts, with their stability.

    Methods (all vmapped over the starts and compiled once per `step` structure and shapes):

    - ``"lm"`` (default): Levenberg–Marquardt on F(x) = step(x) − x (`optimistix.root_find`
      with `optimistix.LevenbergMarquardt`), robust where J_F = ∂step/∂x − I is singular or
      Newton overshoots, then `optimistix.Newton` from its end point (kept where it lowers
      ‖F‖: LM stops on its step criterion, and slowly where J_F is small).
    - ``"newton"``: `optimistix.Newton` alone (undamped; fast from good starts).
    - an optimistix root-finder or least-squares solver object, followed by Newton as for ``"lm"``.
    - ``"descent"``: an optax optimiser (`optimiser`, `learning_rate`) on q(x) = ½‖F(x)‖²
      for `max_iter` steps (default 2000): finds fixed points and slow points alike; see
      `find_slow_points`, which fills `stalled` and keeps `stability` for points that are not fixed.

    The root finders are followed by up to three Newton steps, each kept where it lowers ‖F‖.

    **Convergence** is decided at the final point x by `fixed_point_bound` (relative residual
    ‖F(x)‖ ≤ tol·s and certified distance e = ‖J_F⁻¹‖₂ (‖F(x)‖ + ε(‖x‖ + ‖step(x)‖)) ≤ xtol·s,
    s = 1 + ‖x‖₂, ε the dtype's machine epsilon), and for the root finders also by shrinking
    Newton steps: the next Newton step is at most half the last step kept, or below the
    rounding level ‖J_F⁻¹‖ ε(‖x‖ + ‖step(x)‖). A point where the map only moves slowly is
    not a fixed point: there F is small but so is J_F (a saturated x ↦ x + h·σ(Wx + b), where
    F = hσ ≈ e^{−z}), so e is large and the test fails, even where F rounds to exactly 0.
    Degenerate fixed points (J_F singular: a continuum) have e = ∞ and come back unconverged.
    Stability: `classify_stability` on the multipliers of ∂step/∂x at the point.

    **Arguments:**

    - `step`: a map R^n → R^n on a single state ``(n,)``: a function, or a pytree callable
      such as ``trunk.step`` (traced through its arrays: a new trunk of the same shapes
      reuses the compiled code).
    - `initial_points`: starts ``(n,)`` or ``(*batch, n)``.
    - `method`: see above.
    - `tol`, `xtol`: of `fixed_point_bound` (defaults `fixed_point_tolerances`: 1e-10 and
      1.5e-8 in float64, ≈1.2e-5 and 3.5e-4 in float32).
    - `max_iter`: solver iterations per start (≥ 1; default 50, 2000 for ``"descent"``).
    - `marginal_tol`: δ of `classify_stability` (default √ε; 1e-3 for ``"descent"``, whose
      points are only as precise as the optimiser).
    - `learning_rate`, `optimiser` (``"adam"`` or ``"sgd"``): ``"descent"`` only.

    **Returns:** `FixedPoints` with the batch shape of `initial_points` (`error` and
    `num_iterations` filled in). Deduplicate with `unique_fixed_points`.

    **Raises:** `TypeError` for a non-callable `step` or non-float points; `ValueError` if
    `step` does not map ``(n,)`` to ``(n,)``, for non-finite starts, an unknown method or
    optimiser, tol ≤ 0, xtol ≤ 0, marginal_tol < 0, learning_rate ≤ 0 or max_iter < 1.
    """
    x0 = check_array("initial_points", initial_points)
    check_step(step, x0)
    if isinstance(method, str):
        check_choice("method", method, METHODS)
    elif not isinstance(method, optx.AbstractRootFinder | optx.AbstractLeastSquaresSolver):
        raise TypeError(f"method must be one of {METHODS} or an optimistix solver, got {type(method).__name__}")
    descent = method == "descent"
    max_iter = check_int("max_iter", (2000 if descent else 50) if max_iter is None else max_iter, minimum=1)
    dtype = x0.dtype
    tol, xtol = fixed_point_tolerances(dtype, tol, xtol)
    default_marginal = 1e-3 if descent else float(np.sqrt(jnp.finfo(dtype).eps))
    marginal_tol = default_marginal if marginal_tol is None else marginal_tol
    check_positive("marginal_tol", marginal_tol, allow_zero=True)
    tols = tuple(jnp.asarray(v, dtype) for v in (tol, xtol, marginal_tol))
    if descent:
        check_positive("learning_rate", learning_rate)
        check_choice("optimiser", optimiser, tuple(OPTIMISERS))
        lr = jnp.asarray(learning_rate, dtype)
        return FixedPoints(*_descent_run(step, x0, lr, *tols, max_iter=max_iter, optimiser=optimiser))
    return _root_run(step, x0, *tols, max_iter=max_iter, solver=_solver(method, dtype))


@callable_jit
def _root_run(step, x0, tol, xtol, marginal_tol, *, max_iter, solver):
    eye = jnp.eye(x0.shape[-1], dtype=x0.dtype)

    def residual(x):
        f = step(x) - x
        return f, jnp.linalg.norm(f)

    def one(x_start):
        # in JAX's default float (float64 under x64): optimistix's LM mixes it into its damping
        # terms; step itself runs in the points' dtype, and the polish below does too
        wide = jnp.result_type(float)

        def fn(y, _):
            return (step(y.astype(x_start.dtype)) - y.astype(x_start.dtype)).astype(wide)

        sol = optx.root_find(fn, solver, x_start.astype(wide), max_steps=max_iter, throw=False)
        x = _finite_or(sol.value.astype(x_start.dtype), x_start)
        its = jnp.asarray(sol.stats["num_steps"], jnp.int32)
        if not isinstance(solver, optx.Newton):
            # Newton from where the solver stopped, kept where it lowers ‖F‖: a trust-region
            # solver stops on its step criterion, slowly near a root where J_F is small
            ref = optx.root_find(fn, _newton(x_start.dtype), x.astype(wide), max_steps=max_iter, throw=False)
            x_ref = _finite_or(ref.value.astype(x.dtype), x)
            x = jnp.where(residual(x_ref)[1] < residual(x)[1], x_ref, x)
            its = its + jnp.asarray(ref.stats["num_steps"], jnp.int32)
        f, fn = residual(x)

        def polish(_, carry):
            x, f, fn, last = carry
            d = jnp.linalg.solve(jax.jacfwd(step)(x) - eye, f)
            f_new, fn_new = residual(x - d)
            better = jnp.isfinite(fn_new) & (fn_new < fn)
            keep = lambda new, old: jnp.where(better, new, old)  # noqa: E731
            return keep(x - d, x), keep(f_new, f), keep(fn_new, fn), keep(jnp.linalg.norm(d), last)

        x, f, fn, last = jax.lax.fori_loop(0, POLISH_STEPS, polish, (x, f, fn, jnp.asarray(jnp.inf, x.dtype)))
        bound = fixed_point_bound(step, x, tol, xtol)
        next_step = jnp.linalg.norm(jnp.linalg.solve(bound.jacobian - eye, bound.residual))
        shrinking = (next_step <= last / 2) | (next_step <= bound.rounding_step)
        converged = bound.passed & shrinking
        mult = eigvals_sorted(bound.jacobian)
        code = classify_stability(mult, converged, marginal_tol=marginal_tol)
        return FixedPoints(x, converged, bound.residual_norm, mult, code, bound.error, its)

    return batched(one, x0)


@callable_jit
def _descent_run(step, x0, lr, tol, xtol, marginal_tol, *, max_iter, optimiser):
    opt = OPTIMISERS[optimiser](lr)

    def q_of(x):
        d = step(x) - x
        return 0.5 * jnp.sum(d * d)

    grad_q = jax.grad(q_of)

    def one(x_start):
        def body(carry, _):
            x, state = carry
            updates, state = opt.update(grad_q(x), state, x)
            return (optax.apply_updates(x, updates), state), None

        (x, _), _ = jax.lax.scan(body, (x_start, opt.init(x_start)), None, length=max_iter)
        bound = fixed_point_bound(step, x, tol, xtol)
        mult = eigvals_sorted(bound.jacobian)
        # not a minimum of q: some direction still goes down, however slowly (the edge of a
        # plateau, where a saturating unit makes q concave, or a saddle of q)
        curv = jnp.linalg.eigvalsh(jax.hessian(q_of)(x))
        concave = curv[0] < -jnp.sqrt(jnp.finfo(x.dtype).eps) * jnp.max(jnp.abs(curv))
        # a slow point is a point, not a failed search: its linearisation is classified as is
        code = classify_stability(mult, marginal_tol=marginal_tol)
        its = jnp.int32(max_iter)
        return x, bound.passed, bound.residual_norm, mult, code, bound.error, its, ~bound.passed & concave

    return batched(one, x0)


def find_slow_points(
    step: Callable[[Array], Array],
    starts: Float[Array, "*batch n"],
    *,
    num_iters: int = 2000,
    learning_rate: float = 1e-2,
    optimiser: str = "adam",
    tol: float | None = None,
    xtol: float | None = None,
    marginal_tol: float = 1e-3,
) -> FixedPoints:
    """Slow points of a map: local minima of q(x) = ½‖F(x) − x‖², F = `step`, by descent.

    ``find_fixed_points(step, starts, method="descent", max_iter=num_iters, ...)``: each start
    runs `num_iters` steps of an optax optimiser on ∇q (as in Sussillo & Barak, Neural
    Computation 25, 2013). Where q = 0 it is a fixed point; where q > 0 it is not, but the
    dynamics linger there and the linearisation still describes the local flow. A point
    counts as fixed (`converged`) only when `fixed_point_bound` certifies a true fixed point
    near it, not because q is small (deep in saturation q rounds to 0 far from any fixed
    point). `stalled`: not fixed, and ∇²q has an eigenvalue below −√ε times its largest
    |eigenvalue| (the edge of a plateau, where a unit saturated at σ = 1 holds q near h²/2
    and q is concave towards desaturation, or a saddle of q): neither fixed nor slow.
    `stability` classifies the linearisation at every end point, fixed or not; `q` gives
    the speed. Polish a small-q point with ``find_fixed_points(step, result.points)``.

    **Arguments:** `step`, `starts` ``(*batch, n)``; `num_iters` ≥ 1; `learning_rate` > 0;
    `optimiser` ``"adam"`` or ``"sgd"``; `tol`, `xtol` as in `find_fixed_points`;
    `marginal_tol` ≥ 0 (δ of `classify_stability`).

    **Returns:** `FixedPoints` with `stalled` filled in.

    **Raises:** `TypeError`/`ValueError` for a non-callable step or one that does not map
    (n,) to (n,), empty or non-finite starts, bad counts, rates or tolerances, an unknown optimiser.
    """
    starts = as_float_array("starts", starts)
    if starts.ndim < 1 or starts.size == 0:
        raise ValueError(f"starts must hold at least one point of at least one dimension, got shape {starts.shape}")
    if not all_true({"starts": (starts, lambda xp, a: xp.isfinite(a))}):
        raise ValueError("starts must contain only finite values (found NaN or inf)")
    num_iters = check_int("num_iters", num_iters, minimum=1)
    return find_fixed_points(
        step,
        starts,
        method="descent",
        max_iter=num_iters,
        learning_rate=learning_rate,
        optimiser=optimiser,
        tol=tol,
        xtol=xtol,
        marginal_tol=marginal_tol,
    )


def unique_fixed_points(
    result: FixedPoints, *, atol: float | None = None, return_counts: bool = False
) -> FixedPoints | tuple[FixedPoints, np.ndarray]:
    """The distinct converged fixed points of a `FixedPoints` result (host-side).

    Non-converged starts are dropped; the remaining points are scanned in input order
    (batch axes flattened) and a point joins the cluster of the nearest kept point when
    their distance is within the merge radius, otherwise it starts a new one. The first
    point of each cluster is kept, so the output order is the order of first discovery. A
    post-processing helper: it runs in numpy, outside `jax.jit`.

    The default merge radius follows each point's precision: points p_i, p_j merge when
    ‖p_i − p_j‖ ≤ 10 (ρ_i + ρ_j), with ρ = max(e, ε (1 + ‖p‖)) from the error bound e of
    `FixedPoints.error` (ε the dtype's machine epsilon; e = 0 where `error` is None). Two
    well-determined roots much closer than any fixed tolerance (0 and 0.002 in float32, say)
    therefore stay apart, while copies of one root, which differ by their rounding errors, merge.

    **Arguments:**

    - `result`: a `FixedPoints` (from `find_fixed_points`, say).
    - `atol`: a fixed merge radius instead of the precision-based one.
    - `return_counts`: also return how many starts landed on each point (a crude basin
      size when the starts sample the space uniformly).

    **Returns:** `FixedPoints` with a leading axis of size u (the distinct points), as numpy
    arrays, `start_counts` filled in; with ``return_counts=True`` the tuple ``(FixedPoints, counts (u,))``.

    **Raises:** `TypeError` if `result` is not a `FixedPoints`; `ValueError` for atol ≤ 0.
    """
    if not isinstance(result, FixedPoints):
        raise TypeError(f"result must be a resflow.FixedPoints, got {type(result).__name__}")
    if atol is not None:
        check_positive("atol", atol)
    batch_ndim = np.ndim(result.converged)
    flat = FixedPoints(
        **{
            k: np.asarray(v).reshape(-1, *np.shape(v)[batch_ndim:])
            for k, v in result._asdict().items()
            if v is not None and k not in ("start_counts", "start_solution")
        }
    )
    kept = flat.take(np.asarray(flat.converged, bool))
    points = kept.points
    eps = float(np.finfo(points.dtype).eps)
    error = np.zeros(len(points)) if kept.error is None else kept.error
    rho = np.maximum(error, eps * (1 + np.linalg.norm(points, axis=-1)))
    reps: list[int] = []
    counts: list[int] = []
    for i, p in enumerate(points):
        dist = np.array([np.linalg.norm(p - points[j]) for j in reps])
        radius = np.full(len(reps), atol) if atol is not None else 10 * (rho[i] + rho[reps])
        close = int(np.argmin(dist)) if len(reps) else -1
        if close >= 0 and dist[close] <= radius[close]:
            counts[close] += 1
        else:
            reps.append(i)
            counts.append(1)
    counts = np.asarray(counts, int)
    out = kept.take(np.asarray(reps, dtype=int))._replace(start_counts=counts)
    return (out, counts) if return_counts else out
