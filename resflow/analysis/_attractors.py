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

**Linear test.** The multipliers (`pattern_spectrum`) go through `resflow.dynamics.classify_stability`,
the classifier of every fixed-point tool, with δ = ``MARGINAL_TOL`` · (1 + h max|W|) and the
`dimension` multipliers equal to 1 that a singular W_FF forces along its own null space left
out: a point is attracting when it is a `Stability.ATTRACTOR` (every saturated λ_i < 0, every
other free multiplier of modulus < 1), not attracting when some multiplier lies outside the
unit circle (SADDLE or REPELLER). Interior fixed points (all free, W r* = 0) exist only for singular
W, so they come as a continuum of dimension ≥ 1 with ρ(J) = 1 exactly: they can attract
*normally* (transversally), never strictly; `attracting` reports the transverse condition and
`spectral_radius` the plain ρ(J).

**Perturbation test.** Otherwise (MARGINAL) the linearisation is inconclusive: some λ_i = 0 or
some transverse multiplier has modulus 1 (within δ). The commonest case is the corner
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
degenerate free blocks) plus the jitted perturbation runs. Every tool returns a
`resflow.FixedPoints` with the pattern fields (`patterns`, `dimension`, `flow_eigenvalues`,
`attracting`, `classified_by`) filled in.
"""

from __future__ import annotations

import enum
import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_int
from ..dynamics._fixed_points import FixedPoints
from ..dynamics._stability import Stability, classify_stability
from ..trunk._residuals import preactivation_scan
from ..trunk._trunk import Trunk, check_trunk, require_logistic, require_shared

__all__ = [
    "Saturation",
    "pattern_spectrum",
    "fixed_point_pattern",
    "interior_fixed_points",
    "residual_fixed_points",
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


def pattern_spectrum(W, h, r, free, dim=0):
    """Flow eigenvalues, map multipliers and neutral mask at one fixed point r* of the residual map.

    Coordinate layout: at a saturated index i the flow eigenvalue is that coordinate's
    λ_i = (1 − 2 r_i)(W r*)_i and the multiplier e^{h λ_i}; the free indices hold the
    eigenvalues μ of D_F W_FF (largest real part first) and the multipliers 1 + h μ. `neutral`
    marks the `dim` free multipliers with the smallest |μ| (the null space of W_FF along a
    continuum of fixed points, left out by the classifier). Host-side float64."""
    n = len(r)
    g = W @ r
    flow = np.zeros(n, complex)
    flow[~free] = (1 - 2 * r[~free]) * g[~free]
    neutral = np.zeros(n, bool)
    if free.any():
        DW = (r[free] * (1 - r[free]))[:, None] * W[np.ix_(free, free)]
        mu = np.linalg.eigvals(DW)
        along = np.zeros(len(mu), bool)
        along[np.argsort(np.abs(mu), kind="stable")[:dim]] = True
        order = np.argsort(-mu.real, kind="stable")
        flow[free] = mu[order]
        neutral[free] = along[order]
    mult = np.where(free, 1 + h * flow, np.exp(h * flow))
    return flow, mult, neutral


def marginal_tolerance(W, h) -> float:
    """δ of `classify_stability` for the residual map: MARGINAL_TOL · (1 + h max|W|)."""
    return MARGINAL_TOL * (1 + h * np.abs(W).max(initial=0.0))


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


def _collect(trunk, W, rows, h) -> FixedPoints:
    """`FixedPoints` of the candidates ``rows = [(r*, pattern, dimension, null basis)]``.

    Stability by `classify_stability` on the multipliers, the `dimension` neutral ones of a
    continuum left out; `attracting` is ATTRACTOR, and where the linearisation is
    inconclusive (MARGINAL) the perturbation test decides."""
    n = W.shape[0]
    k = len(rows)
    spectra = [pattern_spectrum(W, h, r, pattern == FREE, dim) for r, pattern, dim, _ in rows]
    flows = np.asarray([f for f, _, _ in spectra], complex).reshape(k, n)
    mults = np.asarray([m for _, m, _ in spectra], complex).reshape(k, n)
    neutral = np.asarray([z for _, _, z in spectra], bool).reshape(k, n)
    stability = np.asarray(classify_stability(mults, marginal_tol=marginal_tolerance(W, h), neutral=neutral))
    undecided = np.flatnonzero(stability == Stability.MARGINAL)
    attracting = stability == Stability.ATTRACTOR
    if len(undecided):
        attracting[undecided] = _perturbation_test(trunk, [(rows[i][0], rows[i][1], rows[i][3]) for i in undecided])
    classified_by = np.array(["linear"] * k, dtype="<U12")
    classified_by[undecided] = "perturbation"
    points = np.asarray([row[0] for row in rows], np.float64).reshape(k, n)
    patterns = np.asarray([row[1] for row in rows], np.int8).reshape(k, n)
    residual = np.linalg.norm(np.where(patterns == FREE, points @ W.T, 0.0), axis=1)
    return FixedPoints(
        points,
        np.ones(k, bool),
        residual,
        mults,
        stability.astype(np.int32),
        patterns=patterns,
        dimension=np.asarray([row[2] for row in rows], np.int64),
        flow_eigenvalues=flows,
        attracting=attracting,
        classified_by=classified_by,
    )


def _check_pattern(pattern, n):
    pat = np.asarray(pattern)
    if pat.shape != (n,) or not np.issubdtype(pat.dtype, np.integer) or not np.isin(pat, (FREE, 0, 1)).all():
        raise ValueError(f"pattern must be {n} integers, each 0, 1 or Saturation.FREE (-1), got {pattern!r}")
    return pat.astype(np.int8)


def fixed_point_pattern(trunk: Trunk, pattern, *, rank_tol: float | None = None) -> FixedPoints:
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

    **Returns:** `FixedPoints` with one row, or zero rows if the pattern has no fixed point.

    **Raises:** `ValueError` for an untied or non-logistic trunk, or a bad pattern.
    """
    trunk, W, h = _map_of(trunk, "the residual map's fixed points")
    return _pattern_point(trunk, W, h, _check_pattern(pattern, W.shape[0]), rank_tol)


def _pattern_point(trunk, W, h, pat, rank_tol) -> FixedPoints:
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


def interior_fixed_points(trunk: Trunk, *, rank_tol: float | None = None) -> FixedPoints:
    """Interior fixed points r* ∈ (0, 1)^n with W r* = 0 (all components free).

    They exist only when the null space of W meets the open unit cube. With a null space of
    dimension m ≥ 1 the fixed points form the m-dimensional polytope null(W) ∩ (0, 1)^n; the
    returned representative is its deepest point and `dimension` = m. J = I + h D W there
    (D = diag(r*(1 − r*))) has the eigenvalue 1 m times, so ρ(J) = 1; `attracting` asks the
    other n − m multipliers to lie inside the unit circle (a normally attracting set).

    **Arguments:** `trunk`, `rank_tol` as in `fixed_point_pattern`.

    **Returns:** `FixedPoints` with one row (the set is non-empty) or zero rows.

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
) -> FixedPoints:
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

    **Returns:** `FixedPoints`, rows ordered by number of free components, then pattern.

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
        result = result.take(result.attracting)
    return result
