"""The one stability classifier and the one convergence test of resflow's fixed-point tools.

- `classify_stability`: multipliers μ_i (eigenvalues of ∂step/∂x) at a point → `Stability`
  code; used by every method of `find_fixed_points`, by `find_slow_points`, and by the residual
  map's enumeration and search in `resflow.analysis`.
- `fixed_point_bound`: the certified-distance test that decides convergence (a small residual
  alone does not: deep in a saturated sigmoid it rounds to 0 far from any fixed point), with
  its default tolerances `fixed_point_tolerances`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Complex, Float, Int

from .._checks import check_positive

__all__ = [
    "Stability",
    "classify_stability",
    "FixedPointBound",
    "fixed_point_bound",
    "fixed_point_tolerances",
]


class Stability(enum.IntEnum):
    """Stability codes of `FixedPoints.stability` (`classify_stability`), from the multipliers μ_i.

    With a tolerance δ (`marginal_tol`): ATTRACTOR, all |μ| < 1 − δ. REPELLER, all |μ| > 1 + δ.
    SADDLE, some |μ| > 1 + δ but not all (unstable; the others inside or on the unit circle).
    MARGINAL, none outside and some ||μ| − 1| ≤ δ (the linearisation is inconclusive).
    UNCONVERGED, the search found no fixed point.
    """

    UNCONVERGED = -1
    ATTRACTOR = 0
    REPELLER = 1
    SADDLE = 2
    MARGINAL = 3

    @property
    def label(self) -> str:
        return self.name.lower()


def classify_stability(
    multipliers: Complex[Array, "*batch n"],
    converged: Bool[Array, " *batch"] | None = None,
    *,
    marginal_tol,
    neutral: Bool[Array, "*batch n"] | None = None,
) -> Int[Array, " *batch"]:
    """The `Stability` code of each point from its multipliers: the one classifier of resflow.

    **Arguments:**

    - `multipliers`: ``(*batch, n)`` eigenvalues of the map's Jacobian at each point (any order).
    - `converged`: ``(*batch,)`` bool; where False the code is `Stability.UNCONVERGED` (default: all True).
    - `marginal_tol`: δ ≥ 0, the half-width of the band ||μ| − 1| ≤ δ that counts as on the circle.
    - `neutral`: ``(*batch, n)`` bool, multipliers left out, e.g. the multipliers equal to 1
      along a continuum of fixed points (the point is then classified transversally).

    **Returns:** int32 ``(*batch,)`` codes (see `Stability`). Traceable; numpy inputs work too.
    """
    # Host inputs (the enumeration's float64 numpy spectra, a new number of points per trunk)
    # stay in numpy: jnp would compile each operation anew for every batch shape.
    host = all(isinstance(a, np.ndarray | np.generic) or a is None for a in (multipliers, converged, neutral))
    xp = np if host and isinstance(multipliers, np.ndarray) else jnp
    mod = xp.abs(xp.asarray(multipliers))
    counted = xp.ones(mod.shape, bool) if neutral is None else ~xp.asarray(neutral, bool)
    outside = counted & (mod > 1 + marginal_tol)
    on = counted & (xp.abs(mod - 1) <= marginal_tol)
    num_out = outside.sum(-1)
    code = xp.where(
        num_out > 0,
        xp.where(num_out == counted.sum(-1), int(Stability.REPELLER), int(Stability.SADDLE)),
        xp.where(on.any(-1), int(Stability.MARGINAL), int(Stability.ATTRACTOR)),
    )
    if converged is not None:
        code = xp.where(xp.asarray(converged, bool), code, int(Stability.UNCONVERGED))
    return code.astype(xp.int32)


def fixed_point_tolerances(dtype, tol: float | None = None, xtol: float | None = None) -> tuple[float, float]:
    """The `tol` and `xtol` of the fixed-point test (`fixed_point_bound`), defaults filled in.

    Defaults: tol = max(1e-10, 100 ε) (1e-10 in float64; about 100 ulps in lower precisions,
    where 1e-10 is unreachable), xtol = √ε, ε the machine epsilon of `dtype`.

    **Raises:** `ValueError` unless both are > 0.
    """
    eps = float(jnp.finfo(dtype).eps)
    tol = max(1e-10, 100 * eps) if tol is None else tol
    xtol = float(np.sqrt(eps)) if xtol is None else xtol
    check_positive("tol", tol)
    check_positive("xtol", xtol)
    return tol, xtol


class FixedPointBound(NamedTuple):
    """The fixed-point test at one point x (see `fixed_point_bound`).

    - `jacobian`: ``(n, n)`` ∂step/∂x at x.
    - `residual`: ``(n,)`` F(x) = step(x) − x; `residual_norm` its 2-norm.
    - `error`: e = ‖J_F⁻¹‖₂ (‖F(x)‖ + ε(‖x‖ + ‖step(x)‖)), ``inf`` where J_F = ∂step/∂x − I is singular.
    - `rounding_step`: ‖J_F⁻¹‖₂ ε(‖x‖ + ‖step(x)‖), the distance F's rounding alone accounts for.
    - `passed`: e finite, ‖F(x)‖ ≤ tol·s and e ≤ xtol·s, s = 1 + ‖x‖₂.
    """

    jacobian: Float[Array, "n n"]
    residual: Float[Array, " n"]
    residual_norm: Float[Array, ""]
    error: Float[Array, ""]
    rounding_step: Float[Array, ""]
    passed: Bool[Array, ""]


def fixed_point_bound(step: Callable[[Array], Array], x: Float[Array, " n"], tol, xtol) -> FixedPointBound:
    """Whether x is within a certified distance of a true fixed point of `step`. Unchecked; traceable.

    With F(x) = step(x) − x, J_F = ∂step/∂x − I, s = 1 + ‖x‖₂ and ε the dtype's machine epsilon:
    to first order x − x* = J_F⁻¹ F(x), and F is only known to its rounding level
    ε(‖x‖ + ‖step(x)‖), so the distance to the fixed point x* is at most
    e = ‖J_F⁻¹‖₂ (‖F(x)‖ + ε(‖x‖ + ‖step(x)‖)). The point passes when e is finite,
    ‖F(x)‖ ≤ tol·s and e ≤ xtol·s. A point where the map only moves slowly fails: there J_F is
    as small as F (a saturated sigmoid: both ≈ e^{−z}), so e is of order one or more. Every
    method of `find_fixed_points` decides `converged` with it; `fixed_point_tolerances` gives
    the defaults.

    **Arguments:** `step` a map ``(n,) -> (n,)``; `x` ``(n,)``; `tol`, `xtol` > 0 (scalars).

    **Returns:** `FixedPointBound`.
    """
    step_x = step(x)
    f = step_x - x
    fn = jnp.linalg.norm(f)
    J_step = jax.jacfwd(step)(x)
    J = J_step - jnp.eye(x.shape[-1], dtype=x.dtype)
    smin = jnp.linalg.svd(J, compute_uv=False)[-1]
    inv_norm = jnp.where(smin > 0, 1 / smin, jnp.inf)
    xn = jnp.linalg.norm(x)
    rounding = jnp.finfo(x.dtype).eps * (xn + jnp.linalg.norm(step_x))
    error = inv_norm * (fn + rounding)
    s = 1 + xn
    passed = jnp.isfinite(error) & (fn <= tol * s) & (error <= xtol * s)
    return FixedPointBound(J_step, f, fn, error, inv_norm * rounding, passed)
