"""Fixed points and attractors of the residual map.

A shared-weight logistic resnet x_{t+1} = x_t + h σ(W x_t + b) has residuals r_t = σ(a_t),
a_t = W x_t + b, that evolve on their own: a_{t+1} = a_t + h W r_t, i.e. the residual map
r ↦ σ(σ⁻¹(r) + h W r). It and its continuous limit dr/dt = r ⊙ (1 − r) ⊙ (W r) have the same
fixed points on the closed unit cube: every component is either saturated (r_i ∈ {0, 1},
reached as a_i → ±∞) or free with (W r)_i = 0. A *pattern* p ∈ {0, 1, free}^n (`Saturation`)
names one of the 3^n candidate families:

- free part F: solve W_FF r_F = −W_FS r_S with r_F strictly inside (0, 1);
- saturated part S: the flow's eigenvalue along coordinate i is λ_i = (1 − 2 r_i)(W r)_i
  (e.g. at the corner (0, 0, 1): λ = (w13, w23, −w33)); the discrete map contracts that
  coordinate by the multiplier e^{h λ_i} (r_i ≈ e^{a_i} near 0, 1 − r_i ≈ e^{−a_i} near 1, and
  a_i moves by h (W r)_i per layer). λ_i < 0 ⇔ s_i (W r*)_i > 0 with s_i = +1 at 1, −1 at 0;
- the free block linearises to I + h D_F W_FF (flow: D_F W_FF) with D_F = diag(r_F(1 − r_F));
  the full Jacobian is block-triangular (saturated rows are diagonal), so its eigenvalues are
  those of the free block plus the saturated multipliers.

**Linear test.** A point is attracting when every saturated λ_i < 0 and the free block's
multipliers have modulus < 1, except the `dimension` multipliers equal to 1 that a singular
W_FF forces along its own null space; it is not attracting when some λ_i > 0 or some other
multiplier has modulus > 1. Interior fixed points (all free, W r* = 0) exist only for singular
W, so they come as a continuum of dimension ≥ 1 with ρ(J) = 1 exactly: they can attract
*normally* (transversally), never strictly; `attracting` reports the transverse condition and
`spectral_radius` the plain ρ(J).

**Perturbation test.** Otherwise the linearisation is inconclusive: some λ_i = 0 or some
transverse multiplier has modulus 1 (within ``MARGINAL_TOL``). The commonest case is the corner
r* = 0, where W r* = 0 makes every λ_i = 0 for every W; near it the map is the Lotka–Volterra
flow dr/dt ≈ r ⊙ (W r), and inputs can converge to it algebraically (like 1/t). Such a point is
decided numerically: ``PERTURBATION_DIRECTIONS`` perturbations of size ``PERTURBATION_SIZE``
(inward at saturated components, both signs at free ones; each axis, and random directions with
log-uniform component sizes) are
iterated ``PERTURBATION_STEPS`` layers with `resflow.trunk._residuals.preactivation_scan`, all at once,
and the point counts as attracting when a perturbation's distance to it (transverse to a
continuum) has shrunk to at most ``PERTURBATION_RATIO`` times its initial value: the point draws
in an open set of nearby inputs over that horizon. This is the practical notion that matters
for a network of finite depth, not Lyapunov stability: near r* = 0 the dynamics is
Lotka–Volterra, and a point can attract a whole sector of inputs algebraically for 10⁴ layers
or more while others leave it, or while the sector itself leaks out like a power of log t.
Such a point is reported as attracting. The field `classified_by` says which test decided each
point.

`residual_fixed_points` is host-side linear algebra on a small W (numpy float64, scipy's LP for
degenerate free blocks) plus the jitted perturbation runs. `steady_state` runs a network's
residual dynamics (jitted, streamed over depth) and measures whether all inputs reach the
same attractor.
"""

from __future__ import annotations

import enum
import functools
import itertools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from .._checks import as_float_array, check_int, check_positive
from ..trunk._activations import get_activation
from ..trunk._residuals import advance_preactivations, preactivation_scan
from ..trunk._trunk import Trunk, check_state, check_trunk, require_logistic, require_shared
from ._separability import class_means, class_weights, optional_labels

__all__ = [
    "Saturation",
    "ResidualFixedPoints",
    "fixed_point_pattern",
    "interior_fixed_points",
    "residual_fixed_points",
    "SteadyState",
    "steady_state",
]


class Saturation(enum.IntEnum):
    """Pattern codes of a fixed point's components: saturated at 0 (`LOW`) or 1 (`HIGH`), or `FREE`."""

    FREE = -1
    LOW = 0
    HIGH = 1


FREE = Saturation.FREE
"""Shorthand for `Saturation.FREE` (−1), the pattern code of a free component (not exported at top level)."""

MAX_ENUMERATION_WIDTH = 12

MARGINAL_TOL = 1e-9
"""|λ_i| or ||μ| − 1| at or below MARGINAL_TOL · (1 + h max|W|) leaves the linear test inconclusive."""
PERTURBATION_SIZE = 0.05
"""Euclidean size of the perturbations of the perturbation test (residual space)."""
PERTURBATION_STEPS = 2000
"""Layers each perturbation is iterated for."""
PERTURBATION_RATIO = 0.5
"""Attracting when some final distance is at most this fraction of the initial one."""
PERTURBATION_DIRECTIONS = 64
"""Random directions, in addition to one per axis (and sign, for free components)."""


class ResidualFixedPoints(NamedTuple):
    """Fixed points of the residual map, one row per pattern found (numpy arrays, k rows).

    - `points`: ``(k, n)`` r*; for a continuum (dimension ≥ 1) the representative point that
      lies deepest inside the cube (maximises min_i min(r_i, 1 − r_i) over the free part).
    - `patterns`: ``(k, n)`` int8 `Saturation` codes: 0 / 1 saturated, −1 free.
    - `dimension`: ``(k,)`` dimension of the set of fixed points with this pattern
      (dim null(W_FF); 0 for an isolated point).
    - `flow_eigenvalues`: ``(k, n)`` complex eigenvalues of the flow r(1−r)(W r) at r*. At a
      saturated index i the entry is that coordinate's λ_i = (1 − 2 r_i)(W r*)_i; the free
      indices hold the eigenvalues of D_F W_FF (not tied to a coordinate), largest real part first.
    - `multipliers`: ``(k, n)`` complex eigenvalues of the discrete map's Jacobian, in the same
      layout: e^{h λ_i} at saturated indices, those of I + h D_F W_FF at free ones.
    - `spectral_radius`: ``(k,)`` max |multiplier|.
    - `attracting`: ``(k,)`` bool, see the module docstring (transverse for a continuum).
    - `classified_by`: ``(k,)`` str, ``"linear"`` (decided by the multipliers) or
      ``"perturbation"`` (linearisation inconclusive; decided by iterating perturbations).
    """

    points: Float[np.ndarray, "k n"]
    patterns: Int[np.ndarray, "k n"]
    dimension: Int[np.ndarray, " k"]
    flow_eigenvalues: np.ndarray
    multipliers: np.ndarray
    spectral_radius: Float[np.ndarray, " k"]
    attracting: Bool[np.ndarray, " k"]
    classified_by: np.ndarray


def _map_of(trunk, what: str) -> tuple[Trunk, np.ndarray, float]:
    trunk = require_logistic(require_shared(check_trunk(trunk), what), what)
    return trunk, np.asarray(trunk.W, np.float64), float(trunk.h)


def _null_space(A: np.ndarray, rank_tol):
    """Pseudo-inverse pieces of A: (U, s, Vt) truncated to the numerical rank, and a null basis."""
    U, s, Vt = np.linalg.svd(A)
    tol = rank_tol if rank_tol is not None else (s.max(initial=0.0) * max(A.shape) * np.finfo(np.float64).eps)
    rank = int((s > tol).sum())
    return U[:, :rank], s[:rank], Vt[:rank], Vt[rank:].T


def _deepest_point(p: np.ndarray, N: np.ndarray):
    """argmax over c of min_i min(p + N c, 1 − p − N c)_i: the most interior point of p + span(N)."""
    from scipy.optimize import linprog

    m = N.shape[1]
    A = np.block([[-N, np.ones((len(p), 1))], [N, np.ones((len(p), 1))]])
    rhs = np.concatenate([p, 1 - p])
    cost = np.zeros(m + 1)
    cost[-1] = -1.0
    res = linprog(cost, A_ub=A, b_ub=rhs, bounds=[(None, None)] * m + [(None, 0.5)], method="highs")
    if res.status != 0:  # unbounded directions cannot occur (the cube is bounded); infeasible cannot either
        return p, -np.inf
    return p + N @ res.x[:m], float(res.x[-1])


def _solve_free(W, free, sat_values, rank_tol):
    """Free parts r_F ∈ (0, 1)^|F| solving W_FF r_F = −W_FS v for each column v of `sat_values`.

    Returns (r_F (|F|, B), feasible (B,), dimension, null basis N (|F|, dimension))."""
    sat = ~free
    WFF = W[np.ix_(free, free)]
    rhs = -W[np.ix_(free, sat)] @ sat_values
    U, s, Vt, N = _null_space(WFF, rank_tol)
    p = Vt.T @ ((U.T @ rhs) / s[:, None])
    consistent = np.linalg.norm(WFF @ p - rhs, axis=0) <= 1e-9 * (1 + np.linalg.norm(rhs, axis=0))
    dim = N.shape[1]
    if dim == 0:
        inside = np.all((p > 0) & (p < 1), axis=0)
        return p, consistent & inside, dim, N
    feasible = np.zeros(p.shape[1], bool)
    for b in np.flatnonzero(consistent):
        point, margin = _deepest_point(p[:, b], N)
        if margin > 1e-12:
            p[:, b], feasible[b] = point, True
    return p, feasible, dim, N


def _linear_test(W, r, pattern, dim, h):
    """Flow eigenvalues, multipliers (coordinate layout) and the verdict at one r*:
    True / False (attracting or not, by the linearisation) or None (inconclusive)."""
    n = len(r)
    free = pattern == FREE
    tol = MARGINAL_TOL * (1 + h * np.abs(W).max(initial=0.0))
    g = W @ r
    flow = np.zeros(n, complex)
    mult = np.zeros(n, complex)
    lam = (1 - 2 * r[~free]) * g[~free]
    flow[~free] = lam
    mult[~free] = np.exp(h * lam)
    repels, marginal = bool(np.any(lam > tol)), bool(np.any(np.abs(lam) <= tol))
    if free.any():
        DW = (r[free] * (1 - r[free]))[:, None] * W[np.ix_(free, free)]
        mu = np.linalg.eigvals(DW)
        by_size = np.argsort(np.abs(mu), kind="stable")
        transverse = np.abs(1 + h * mu[by_size[dim:]])  # the `dim` zero eigenvalues span null(W_FF)
        repels = repels or bool(np.any(transverse > 1 + tol))
        marginal = marginal or bool(np.any(transverse >= 1 - tol))
        mu = mu[np.argsort(-mu.real, kind="stable")]
        flow[free] = mu
        mult[free] = 1 + h * mu
    verdict = False if repels else (None if marginal else True)
    return flow, mult, verdict


def _perturbed_starts(r, pattern, null_basis, rng):
    """Starting residuals r* + δ, ‖δ‖ = PERTURBATION_SIZE, and the projector removing null(W_FF).

    Saturated components move inward only, free ones either way (clipped inside (0, 1)). The
    component sizes are log-uniform over four decades, so that thin sectors (one residual
    10⁻³ of another, where a Lotka–Volterra point can draw inputs in) are probed; every
    saturated component moves by at least 10⁻⁴ of the largest move, as inputs never lie on
    a face of the cube exactly (their pre-activations are finite)."""
    n = len(r)
    free = pattern == FREE
    axes = np.concatenate([np.eye(n), -np.eye(n)[free]])
    axes = np.where(free | (axes != 0), axes, 1e-4)
    sizes = 10.0 ** rng.uniform(-4.0, 0.0, (PERTURBATION_DIRECTIONS, n))
    signs = np.where(free, rng.choice([-1.0, 1.0], (PERTURBATION_DIRECTIONS, n)), 1.0)
    dirs = np.concatenate([axes, signs * sizes])
    inward = np.where(pattern == Saturation.HIGH, -1.0, 1.0)
    dirs = np.where(free, dirs, inward * np.abs(dirs))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    starts = np.clip(r + PERTURBATION_SIZE * dirs, 0.0, 1.0)
    embed = np.zeros((n, null_basis.shape[1]))
    embed[free] = null_basis
    return starts, np.eye(n) - embed @ embed.T


@functools.partial(jax.jit, static_argnames=("steps",))
def _distance_ratios(trunk, a0, points, patterns, projectors, *, steps):
    """Final over initial distance to r* (transverse) of each perturbed orbit ``(k, P)``."""
    a = preactivation_scan(trunk, a0, depth=steps + 1)[jnp.array([0, steps])]  # (2, k, P, n)
    pat = patterns[:, None, :]
    # 1 − σ(a) = σ(−a): exact near r_i = 1, where σ(a) has rounded to 1.
    dev = jnp.where(pat == Saturation.HIGH, jax.nn.sigmoid(-a), jax.nn.sigmoid(a) - points[:, None, :])
    d = jnp.linalg.norm(jnp.einsum("skpn,kmn->skpm", dev, projectors), axis=-1)
    return d[1] / d[0]


def _perturbation_test(trunk, rows) -> np.ndarray:
    """Attracting flags of the candidates ``rows = [(r*, pattern, null basis)]``, in one run."""
    rng = np.random.default_rng(0)
    starts, projectors = zip(*(_perturbed_starts(r, p, N, rng) for r, p, N in rows), strict=True)
    # Candidates with more free components get more axis directions; pad every set to the
    # largest by repeating its last start (a repeat changes no "some ratio ≤ PERTURBATION_RATIO").
    size = max(len(s) for s in starts)
    starts = np.stack([np.pad(s, ((0, size - len(s)), (0, 0)), mode="edge") for s in starts])
    with np.errstate(divide="ignore"):  # saturated components keep a = ±inf: σ(±inf) is exact
        a0 = np.log(starts) - np.log1p(-starts)
    ratios = _distance_ratios(
        trunk,
        jnp.asarray(a0, trunk.dtype),
        jnp.asarray(np.stack([r for r, _, _ in rows]), trunk.dtype),
        jnp.asarray(np.stack([p for _, p, _ in rows])),
        jnp.asarray(np.stack(projectors), trunk.dtype),
        steps=PERTURBATION_STEPS,
    )
    return np.any(np.asarray(ratios) <= PERTURBATION_RATIO, axis=1)


def _collect(trunk, W, rows, h) -> ResidualFixedPoints:
    n = W.shape[0]
    k = len(rows)
    flows, mults, verdicts = [], [], []
    for r, pattern, dim, _ in rows:
        flow, mult, verdict = _linear_test(W, r, pattern, dim, h)
        flows.append(flow)
        mults.append(mult)
        verdicts.append(verdict)
    undecided = [i for i, v in enumerate(verdicts) if v is None]
    attracting = np.array([bool(v) for v in verdicts], bool)
    if undecided:
        attracting[undecided] = _perturbation_test(trunk, [(rows[i][0], rows[i][1], rows[i][3]) for i in undecided])
    classified_by = np.array(["linear"] * k, dtype="<U12")
    classified_by[undecided] = "perturbation"
    mults = np.asarray(mults, complex).reshape(k, n)
    return ResidualFixedPoints(
        np.asarray([row[0] for row in rows], np.float64).reshape(k, n),
        np.asarray([row[1] for row in rows], np.int8).reshape(k, n),
        np.asarray([row[2] for row in rows], np.int64),
        np.asarray(flows, complex).reshape(k, n),
        mults,
        np.abs(mults).max(axis=1, initial=0.0),
        attracting,
        classified_by,
    )


def _check_pattern(pattern, n):
    pat = np.asarray(pattern)
    if pat.shape != (n,) or not np.issubdtype(pat.dtype, np.integer) or not np.isin(pat, (FREE, 0, 1)).all():
        raise ValueError(f"pattern must be {n} integers, each 0, 1 or Saturation.FREE (-1), got {pattern!r}")
    return pat.astype(np.int8)


def fixed_point_pattern(trunk: Trunk, pattern, *, rank_tol: float | None = None) -> ResidualFixedPoints:
    """The fixed point of the residual map with a given saturation pattern, if it exists.

    Saturated components are set to their value (0 or 1); the free part solves
    (W r*)_F = 0, i.e. W_FF r_F = −W_FS r_S, and must lie strictly inside (0, 1). When W_FF is
    singular the solutions form an affine set; the returned point is the one deepest inside
    the cube (a linear programme), and `dimension` is dim null(W_FF). Stability: the linear
    test, or the perturbation test where it is inconclusive (module docstring).

    **Arguments:**

    - `trunk`: a shared-weight logistic resnet `Trunk` (W and h are used).
    - `pattern`: ``(n,)`` integers, 0 / 1 (saturated) or `Saturation.FREE` = −1 (interior).
    - `rank_tol`: singular values of W_FF at or below it count as zero (default
      σ_max · |F| · eps, numpy's `matrix_rank` rule).

    **Returns:** `ResidualFixedPoints` with one row, or zero rows if the pattern has no fixed point.

    **Raises:** `ValueError` for an untied or non-logistic trunk, or a bad pattern.
    """
    trunk, W, h = _map_of(trunk, "the residual map's fixed points")
    return _pattern_point(trunk, W, h, _check_pattern(pattern, W.shape[0]), rank_tol)


def _pattern_point(trunk, W, h, pat, rank_tol) -> ResidualFixedPoints:
    """Unchecked `fixed_point_pattern`."""
    free = pat == FREE
    r = pat.astype(np.float64)
    dim, N = 0, np.zeros((int(free.sum()), 0))
    if free.any():
        rF, feasible, dim, N = _solve_free(W, free, r[~free][:, None], rank_tol)
        if not feasible[0]:
            return _collect(trunk, W, [], h)
        r[free] = rF[:, 0]
    return _collect(trunk, W, [(r, pat, dim, N)], h)


def interior_fixed_points(trunk: Trunk, *, rank_tol: float | None = None) -> ResidualFixedPoints:
    """Interior fixed points r* ∈ (0, 1)^n with W r* = 0 (all components free).

    They exist only when the null space of W meets the open unit cube. With a null space of
    dimension m ≥ 1 the fixed points form the m-dimensional polytope null(W) ∩ (0, 1)^n; the
    returned representative is its deepest point and `dimension` = m. J = I + h D W there
    (D = diag(r*(1 − r*))) has the eigenvalue 1 m times, so ρ(J) = 1; `attracting` asks the
    other n − m multipliers to lie inside the unit circle (a normally attracting set).

    **Arguments:** `trunk`, `rank_tol` as in `fixed_point_pattern`.

    **Returns:** `ResidualFixedPoints` with one row (the set is non-empty) or zero rows.

    **Raises:** `ValueError` for an untied or non-logistic trunk.
    """
    trunk, W, h = _map_of(trunk, "the residual map's fixed points")
    return _pattern_point(trunk, W, h, np.full(W.shape[0], FREE, np.int8), rank_tol)


def residual_fixed_points(
    trunk: Trunk,
    *,
    attractors_only: bool = False,
    rank_tol: float | None = None,
    max_width: int = MAX_ENUMERATION_WIDTH,
) -> ResidualFixedPoints:
    """All fixed-point patterns of the residual map, by enumerating the 3^n saturation patterns.

    For each set F of free components (2^n of them) the free parts of all 2^{n−|F|} saturation
    choices are solved at once; the 2^n corners are always fixed points. Stability as in
    `fixed_point_pattern`; the candidates the linear test leaves open (always the corner r* = 0,
    where W r* = 0) go through one batched perturbation run.

    **Arguments:**

    - `trunk`: a shared-weight logistic resnet `Trunk`.
    - `attractors_only`: keep only the attracting patterns.
    - `rank_tol`: as in `fixed_point_pattern`.
    - `max_width`: refuse n above it (3^n grows fast; n = 12 is 531 441 patterns, seconds).

    **Returns:** `ResidualFixedPoints`, rows ordered by number of free components, then pattern.

    **Raises:** `ValueError` for an untied or non-logistic trunk, or n > max_width (use
    `fixed_point_pattern` on candidate patterns, or `steady_state` to find the attractors that
    the inputs actually reach).
    """
    trunk, W, h = _map_of(trunk, "the residual map's fixed points")
    max_width = check_int("max_width", max_width)
    n = W.shape[0]
    if n > max_width:
        raise ValueError(
            f"enumerating 3^n saturation patterns needs n <= max_width = {max_width}, got n = {n}; at this "
            "width use search_residual_fixed_points (a search from data-driven starts, e.g. the end states "
            "of a long run), fixed_point_pattern on candidate patterns, or steady_state"
        )
    rows = []
    for num_free in range(n + 1):
        for free_idx in itertools.combinations(range(n), num_free):
            free = np.zeros(n, bool)
            free[list(free_idx)] = True
            choices = list(itertools.product((0.0, 1.0), repeat=n - num_free))  # [()] when nothing is saturated
            sat_values = np.array(choices, np.float64).reshape(len(choices), n - num_free).T
            if num_free:
                rF, feasible, dim, N = _solve_free(W, free, sat_values, rank_tol)
            else:
                rF, feasible, dim = np.zeros((0, sat_values.shape[1])), np.ones(sat_values.shape[1], bool), 0
                N = np.zeros((0, 0))
            for b in np.flatnonzero(feasible):
                r = np.empty(n)
                r[free], r[~free] = rF[:, b], sat_values[:, b]
                pattern = np.where(free, FREE, r).astype(np.int8)
                rows.append((r, pattern, dim, N))
    result = _collect(trunk, W, rows, h)
    if attractors_only:
        result = ResidualFixedPoints(*(a[result.attracting] for a in result))
    return result


# --------------------------------------------------------------------------------------------
# Empirical steady state of a network's residuals


class SteadyState(NamedTuple):
    """Where each input's residuals end up after many layers of the shared-weight map.

    - `final`: ``(*batch, n)`` r_{T−1}, the last residual.
    - `change`: ``(*batch,)`` ‖r_{T−1} − r_{T−2}‖_∞, the last step's movement.
    - `converged`: ``(*batch,)`` change ≤ tol and `escaping` = 0 (r has stopped moving, and no
      unit hides a pre-activation drift behind a saturated σ).
    - `class_counts`: ``(K,)`` number of inputs of each class 0 … K−1.
    - `class_means`: ``(K, n)`` mean final residual of each class (NaN for an empty class).
    - `class_spread`: ``(K,)`` RMS Euclidean distance of a class's final residuals to its mean.
    - `class_distance`: max over pairs of non-empty classes of ‖mean_c − mean_c'‖_∞ (0: a
      class-independent r*; residuals live in [0, 1], so this is on an absolute scale).
    - `dominant`: ``(n,)`` the final residual with the most other final residuals within `atol`
      (searched among the first 2048 inputs, batch axes flattened): the most common attractor.
    - `dominant_fraction`: fraction of all inputs whose final residual lies within `atol`
      (Euclidean) of `dominant`; 1.0 means every input reaches the same attractor.
    - `escaping`: ``(*batch,)`` int, the number of units whose pre-activation still moves back
      towards 0 by more than tol per layer: |h (W r_{T−1})_i| > tol with a sign opposite to
      a_{T−1,i}. Such a unit may sit at r_i = 0 or 1 to machine precision (no change in r) while
      a_i drifts linearly out of saturation: the input is near a saddle and leaves it later.
    """

    final: Float[Array, "*batch n"]
    change: Float[Array, " *batch"]
    converged: Bool[Array, " *batch"]
    class_counts: Int[Array, " K"]
    class_means: Float[Array, "K n"]
    class_spread: Float[Array, " K"]
    class_distance: Float[Array, ""]
    dominant: Float[Array, " n"]
    dominant_fraction: Float[Array, ""]
    escaping: Int[Array, " *batch"]


@functools.partial(jax.jit, static_argnames=("depth",))
def _last_two_residuals(trunk, a0, *, depth):
    """(r_{T−2}, r_{T−1}), a_{T−1} of a_{t+1} = a_t + h W act(a_t), without storing earlier layers."""
    a = preactivation_scan(trunk, advance_preactivations(trunk, a0, steps=depth - 2), depth=2)
    return get_activation(trunk.activation).fn(a), a[1]


def _escaping_units(trunk, a, r, tol):
    """Units whose pre-activation moves back towards 0 by more than `tol` in the next layer.

    The next step is a_T − a_{T−1} = h (W r_{T−1}), computed from r (no cancellation against a
    large |a|). A unit is held when that step is at most `tol` or has the sign of a (it moves
    deeper into the flat part of the activation: r_i → 1 needs (W r)_i > 0, r_i → 0 needs
    (W r)_i < 0). A unit moving back while σ has saturated shows no change in r yet, but
    leaves the saturation some layers later (a saddle's unstable direction).
    """
    step = trunk.h * r @ trunk.W.T
    return jnp.sum((jnp.abs(step) > tol) & (step * a <= 0), axis=-1)


def _within(points, centre, atol):
    # Differences first: ‖p‖² + ‖q‖² − 2 p·q cancels catastrophically in float32 (errors ~1e-5 at
    # n = 64 against atol² = 1e-6), so distances are computed from p − q directly.
    return jnp.linalg.norm(points - centre, axis=-1) <= atol


@jax.jit
def _dominant(final, atol):
    probe = final[:2048]
    # One probe row at a time (in blocks): O(block · probe · n) memory, not probe² · n.
    counts = jax.lax.map(lambda p: jnp.sum(_within(probe, p, atol)), probe, batch_size=64)
    centre = probe[jnp.argmax(counts)]
    return centre, jnp.mean(_within(final, centre, atol).astype(final.dtype))


def _class_statistics(final, y, num_classes):
    """Class counts, means, spreads and the largest distance between non-empty class means."""
    counts, w = class_weights(y, num_classes, final.dtype)
    means = class_means(w, counts, final)
    present = counts > 0
    sq = jnp.sum((final[:, None, :] - jnp.where(present[:, None], means, 0)[None]) ** 2, -1)
    spread = jnp.where(present, jnp.sqrt(jnp.sum(sq * w, axis=0)), jnp.nan)
    gaps = jnp.max(jnp.abs(means[:, None] - means[None, :]), axis=-1)
    distance = jnp.max(jnp.where(present[:, None] & present[None, :], gaps, 0))
    return counts.astype(jnp.int32), means, spread, distance


def steady_state(
    trunk: Trunk,
    x0: Float[Array, "*batch n"],
    labels: Int[Array, " *batch"] | None = None,
    *,
    depth: int,
    num_classes: int | None = None,
    tol: float = 1e-6,
    atol: float = 1e-3,
) -> SteadyState:
    """Run a network's residual dynamics for `depth` layers and describe where inputs settle.

    From a_0 = W x_0 + b the residuals follow a_{t+1} = a_t + h W act(a_t), r_t = act(a_t)
    (shared-weight resnet; the trained depth is irrelevant: the same layer is applied `depth`
    times, as in a 1000-layer run of a 15-layer network). Only the last two residuals and the
    last pre-activation are kept. Jittable with `num_classes` given.

    An input has *converged* when ‖r_{T−1} − r_{T−2}‖_∞ ≤ tol and, in pre-activation space,
    every unit is held: its next step h (W r_{T−1})_i is at most tol in size or has the sign of
    a_{T−1,i} (moves it deeper into saturation). The change of r alone cannot tell a saddle
    from an attractor once σ has saturated: r_i = 1 − 10⁻⁴⁰ does not move while a_i falls by
    h |(W r)_i| per layer and r_i leaves 1 about a_i / (h |(W r)_i|) layers later. At a saturated attractor
    the sign conditions are those of the linear test, s_i (W r*)_i > 0 (s_i = +1 at 1, −1 at 0);
    a free unit must stop moving in a as well as in r.

    **Arguments:**

    - `trunk`: a shared-weight resnet `Trunk` (any activation; h and the activation are its own).
    - `x0`: inputs (trunk states) ``(*batch, n)`` in the trunk's dtype; the batch axes are
      flattened for the class and attractor statistics and restored in `final`, `change`, `converged`.
    - `labels`: ``(*batch,)`` integer classes in 0 … K−1, or None (one class).
    - `depth`: T ≥ 2 layers (e.g. 1000).
    - `num_classes`: K; inferred as max label + 1 when omitted (give it under `jax.jit`).
    - `tol`: convergence threshold on ‖r_{T−1} − r_{T−2}‖_∞ and on the size of a pre-activation
      step back towards 0.
    - `atol`: Euclidean radius within which two final residuals count as the same attractor.

    **Returns:** `SteadyState` (``final (*batch, n)``, ``change``/``converged``/``escaping`` ``(*batch,)``).

    **Raises:** `ValueError`/`TypeError` for an untied or MLP trunk, x0 of the wrong width or
    dtype or non-finite, labels not of x0's batch shape, non-integer, negative or
    ≥ `num_classes`, depth < 2, non-positive tol/atol. One device-to-host read for the values.
    """
    trunk = require_shared(check_trunk(trunk), "running the residual map past its depth")
    if trunk.model != "resnet":
        raise ValueError(f"steady_state needs a resnet trunk (the residual recurrence), got model={trunk.model!r}")
    n = trunk.width
    x0 = as_float_array("x0", x0)
    if x0.ndim < 1 or x0.shape[-1] != n:
        raise ValueError(f"x0 must have shape (*batch, {n}), got {x0.shape}")
    if x0.dtype != trunk.dtype:
        check_state(trunk, x0)  # raises its dtype TypeError
    batch = x0.shape[:-1]
    depth = check_int("depth", depth, minimum=2)
    check_positive("tol", tol)
    check_positive("atol", atol)
    checks = {"x0": (x0, lambda xp, a: xp.isfinite(a))}
    y, K = optional_labels(labels, batch, num_classes, checks, lambda: check_state(trunk, x0))
    a0 = x0.reshape(-1, n) @ trunk.W.T + trunk.b
    (r_prev, final), a = _last_two_residuals(trunk, a0, depth=depth)
    change = jnp.max(jnp.abs(final - r_prev), axis=-1)
    escaping = _escaping_units(trunk, a, final, tol)
    counts, means, spread, distance = _class_statistics(final, y.reshape(-1), K)
    dominant, fraction = _dominant(final, jnp.asarray(atol, final.dtype))
    final, change, escaping = final.reshape(batch + (n,)), change.reshape(batch), escaping.reshape(batch)
    converged = (change <= tol) & (escaping == 0)
    return SteadyState(final, change, converged, counts, means, spread, distance, dominant, fraction, escaping)
