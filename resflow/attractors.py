"""Fixed points and attractors of the residual map (science.md §4).

The residual map r ↦ σ(σ⁻¹(r) + h W r) (logistic, shared W) and its continuous limit
dr/dt = r ⊙ (1 − r) ⊙ (W r) have the same fixed points on the closed unit cube: every
component is either saturated (r_i ∈ {0, 1}, reached as a_i → ±∞) or free with (W r)_i = 0.
A *pattern* p ∈ {0, 1, free}^n names one of the 3^n candidate families:

- free part F: solve W_FF r_F = −W_FS r_S with r_F strictly inside (0, 1);
- saturated part S: the flow's eigenvalue along coordinate i is λ_i = (1 − 2 r_i)(W r)_i
  (the paper's corner example (0, 0, 1): λ = (w13, w23, −w33)); the discrete map contracts
  that coordinate by the multiplier e^{h λ_i} (r_i ≈ e^{a_i} near 0, 1 − r_i ≈ e^{−a_i} near 1,
  and a_i moves by h (W r)_i per layer). λ_i < 0 ⇔ s_i (W r*)_i > 0 with s_i = +1 for 1, −1 for 0:
  the sign conditions of science.md §4.
- the free block linearises to I + h D_F W_FF (flow: D_F W_FF) with D_F = diag(r_F(1 − r_F));
  the full Jacobian is block-triangular (saturated rows are diagonal), so its eigenvalues are
  those of the free block plus the saturated multipliers.

A pattern is *attracting* when every saturated λ_i < 0 and the free block's multipliers have
modulus < 1, except the `dimension` multipliers equal to 1 that a singular W_FF forces along
its own null space. Interior fixed points (all free, W r* = 0) exist only for singular W, so
they always come as a continuum of dimension ≥ 1 with ρ(J) = 1 exactly: they can attract
*normally* (transversally), never strictly; `attracting` reports the transverse condition and
`spectral_radius` the plain ρ(J).

This is host-side linear algebra on a small W (numpy float64, scipy's LP for degenerate free
blocks), not a jitted map. `steady_state` runs a trained network's residual dynamics (jitted,
streamed over depth) and measures whether all inputs reach the same attractor.
"""

from __future__ import annotations

import functools
import itertools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from ._checks import check_array, check_int, check_labels, check_positive
from .activations import get_activation
from .jacobians import shared_params
from .model import TrunkParams
from .separability import class_weights

__all__ = [
    "FREE",
    "ResidualFixedPoints",
    "fixed_point_pattern",
    "interior_fixed_points",
    "residual_fixed_points",
    "SteadyState",
    "steady_state",
]

FREE = -1
"""Pattern code of a free (interior) component; saturated components are 0 or 1."""

MAX_ENUMERATION_WIDTH = 12


class ResidualFixedPoints(NamedTuple):
    """Fixed points of the residual map, one row per pattern found (numpy arrays, k rows).

    - `points`: ``(k, n)`` r*; for a continuum (dimension ≥ 1) the representative point that
      lies deepest inside the cube (maximises min_i min(r_i, 1 − r_i) over the free part).
    - `patterns`: ``(k, n)`` int8, 0 / 1 for saturated components, `FREE` (−1) for free ones.
    - `dimension`: ``(k,)`` dimension of the set of fixed points with this pattern
      (dim null(W_FF); 0 for an isolated point).
    - `flow_eigenvalues`: ``(k, n)`` complex eigenvalues of the flow r(1−r)(W r) at r*. At a
      saturated index i the entry is that coordinate's λ_i = (1 − 2 r_i)(W r*)_i; the free
      indices hold the eigenvalues of D_F W_FF (not tied to a coordinate), largest real part first.
    - `multipliers`: ``(k, n)`` complex eigenvalues of the discrete map's Jacobian, in the same
      layout: e^{h λ_i} at saturated indices, those of I + h D_F W_FF at free ones.
    - `spectral_radius`: ``(k,)`` max |multiplier|.
    - `attracting`: ``(k,)`` bool, see the module docstring (transverse for a continuum).
    """

    points: Float[np.ndarray, "k n"]
    patterns: Int[np.ndarray, "k n"]
    dimension: Int[np.ndarray, " k"]
    flow_eigenvalues: np.ndarray
    multipliers: np.ndarray
    spectral_radius: Float[np.ndarray, " k"]
    attracting: Bool[np.ndarray, " k"]


def _shared_W(params) -> np.ndarray:
    return np.asarray(shared_params(params, "the residual map's fixed points").W, np.float64)


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

    Returns (r_F (|F|, B), feasible (B,), dimension)."""
    sat = ~free
    WFF = W[np.ix_(free, free)]
    rhs = -W[np.ix_(free, sat)] @ sat_values
    U, s, Vt, N = _null_space(WFF, rank_tol)
    p = Vt.T @ ((U.T @ rhs) / s[:, None])
    consistent = np.linalg.norm(WFF @ p - rhs, axis=0) <= 1e-9 * (1 + np.linalg.norm(rhs, axis=0))
    dim = N.shape[1]
    if dim == 0:
        inside = np.all((p > 0) & (p < 1), axis=0)
        return p, consistent & inside, dim
    feasible = np.zeros(p.shape[1], bool)
    for b in np.flatnonzero(consistent):
        point, margin = _deepest_point(p[:, b], N)
        if margin > 1e-12:
            p[:, b], feasible[b] = point, True
    return p, feasible, dim


def _stability(W, r, pattern, dim, h):
    """Flow eigenvalues, multipliers (coordinate layout) and the attracting flag at one r*."""
    n = len(r)
    free = pattern == FREE
    g = W @ r
    flow = np.zeros(n, complex)
    mult = np.zeros(n, complex)
    lam = (1 - 2 * r[~free]) * g[~free]
    flow[~free] = lam
    mult[~free] = np.exp(h * lam)
    ok = bool(np.all(lam < 0))
    if free.any():
        DW = (r[free] * (1 - r[free]))[:, None] * W[np.ix_(free, free)]
        mu = np.linalg.eigvals(DW)
        by_size = np.argsort(np.abs(mu), kind="stable")
        transverse = mu[by_size[dim:]]  # the `dim` zero eigenvalues belong to the null space of W_FF
        ok = ok and bool(np.all(np.abs(1 + h * transverse) < 1))
        mu = mu[np.argsort(-mu.real, kind="stable")]
        flow[free] = mu
        mult[free] = 1 + h * mu
    return flow, mult, ok


def _collect(W, rows, h) -> ResidualFixedPoints:
    n = W.shape[0]
    pts, pats, dims, flows, mults, oks = [], [], [], [], [], []
    for r, pattern, dim in rows:
        flow, mult, ok = _stability(W, r, pattern, dim, h)
        pts.append(r)
        pats.append(pattern)
        dims.append(dim)
        flows.append(flow)
        mults.append(mult)
        oks.append(ok)
    k = len(rows)
    mults = np.asarray(mults, complex).reshape(k, n)
    return ResidualFixedPoints(
        np.asarray(pts, np.float64).reshape(k, n),
        np.asarray(pats, np.int8).reshape(k, n),
        np.asarray(dims, np.int64),
        np.asarray(flows, complex).reshape(k, n),
        mults,
        np.abs(mults).max(axis=1, initial=0.0),
        np.asarray(oks, bool),
    )


def _check_pattern(pattern, n):
    pat = np.asarray(pattern)
    if pat.shape != (n,) or not np.issubdtype(pat.dtype, np.integer) or not np.isin(pat, (FREE, 0, 1)).all():
        raise ValueError(f"pattern must be {n} integers, each 0, 1 or FREE (-1), got {pattern!r}")
    return pat.astype(np.int8)


def fixed_point_pattern(params: TrunkParams, pattern, *, h=1.0, rank_tol: float | None = None) -> ResidualFixedPoints:
    """The fixed point of the residual map with a given saturation pattern, if it exists.

    Saturated components are set to their value (0 or 1); the free part solves
    (W r*)_F = 0, i.e. W_FF r_F = −W_FS r_S, and must lie strictly inside (0, 1). When W_FF is
    singular the solutions form an affine set; the returned point is the one deepest inside
    the cube (a linear programme), and `dimension` is dim null(W_FF).

    **Arguments:**

    - `params`: shared-weight `TrunkParams` (only W is used).
    - `pattern`: ``(n,)`` integers, 0 / 1 (saturated) or `FREE` = −1 (interior).
    - `h`: step size > 0 of the discrete map (for the multipliers).
    - `rank_tol`: singular values of W_FF at or below it count as zero (default
      σ_max · |F| · eps, numpy's `matrix_rank` rule).

    **Returns:** `ResidualFixedPoints` with one row, or zero rows if the pattern has no fixed point.

    **Raises:** `ValueError` for untied params, a bad pattern, h ≤ 0.
    """
    W = _shared_W(params)
    check_positive("h", h)
    n = W.shape[0]
    pat = _check_pattern(pattern, n)
    free = pat == FREE
    r = pat.astype(np.float64)
    dim = 0
    if free.any():
        rF, feasible, dim = _solve_free(W, free, r[~free][:, None], rank_tol)
        if not feasible[0]:
            return _collect(W, [], float(h))
        r[free] = rF[:, 0]
    return _collect(W, [(r, pat, dim)], float(h))


def interior_fixed_points(params: TrunkParams, *, h=1.0, rank_tol: float | None = None) -> ResidualFixedPoints:
    """Interior fixed points r* ∈ (0, 1)^n with W r* = 0 (all components free).

    They exist only when the null space of W meets the open unit cube. With a null space of
    dimension m ≥ 1 the fixed points form the m-dimensional polytope null(W) ∩ (0, 1)^n; the
    returned representative is its deepest point and `dimension` = m. J = I + h D W there
    (D = diag(r*(1 − r*))) has the eigenvalue 1 m times, so ρ(J) = 1; `attracting` asks the
    other n − m multipliers to lie inside the unit circle (a normally attracting set).

    **Returns:** `ResidualFixedPoints` with one row (the set is non-empty) or zero rows.

    **Raises:** `ValueError` for untied params or h ≤ 0.
    """
    n = _shared_W(params).shape[0]
    return fixed_point_pattern(params, np.full(n, FREE, np.int8), h=h, rank_tol=rank_tol)


def residual_fixed_points(
    params: TrunkParams,
    *,
    h=1.0,
    attractors_only: bool = False,
    rank_tol: float | None = None,
    max_width: int = MAX_ENUMERATION_WIDTH,
) -> ResidualFixedPoints:
    """All fixed-point patterns of the residual map, by enumerating the 3^n saturation patterns.

    For each set F of free components (2^n of them) the free parts of all 2^{n−|F|} saturation
    choices are solved at once; the 2^n corners are always fixed points. Stability as in
    `fixed_point_pattern`.

    **Arguments:**

    - `params`: shared-weight `TrunkParams`.
    - `h`: step size > 0.
    - `attractors_only`: keep only the attracting patterns.
    - `rank_tol`: as in `fixed_point_pattern`.
    - `max_width`: refuse n above it (3^n grows fast; n = 12 is 531 441 patterns, seconds).

    **Returns:** `ResidualFixedPoints`, rows ordered by number of free components, then pattern.

    **Raises:** `ValueError` for untied params, h ≤ 0, or n > max_width (use
    `fixed_point_pattern` on candidate patterns, or `steady_state` to find the attractors that
    the inputs actually reach).
    """
    W = _shared_W(params)
    check_positive("h", h)
    max_width = check_int("max_width", max_width)
    n = W.shape[0]
    if n > max_width:
        raise ValueError(
            f"enumerating 3^n saturation patterns needs n <= max_width = {max_width}, got n = {n}; call "
            "fixed_point_pattern on candidate patterns or steady_state to find the reached attractors"
        )
    rows = []
    for num_free in range(n + 1):
        for free_idx in itertools.combinations(range(n), num_free):
            free = np.zeros(n, bool)
            free[list(free_idx)] = True
            choices = list(itertools.product((0.0, 1.0), repeat=n - num_free))  # [()] when nothing is saturated
            sat_values = np.array(choices, np.float64).reshape(len(choices), n - num_free).T
            if num_free:
                rF, feasible, dim = _solve_free(W, free, sat_values, rank_tol)
            else:
                rF, feasible, dim = np.zeros((0, sat_values.shape[1])), np.ones(sat_values.shape[1], bool), 0
            for b in np.flatnonzero(feasible):
                r = np.empty(n)
                r[free], r[~free] = rF[:, b], sat_values[:, b]
                pattern = np.where(free, FREE, r).astype(np.int8)
                rows.append((r, pattern, dim))
    result = _collect(W, rows, float(h))
    if attractors_only:
        result = ResidualFixedPoints(*(a[result.attracting] for a in result))
    return result


# --------------------------------------------------------------------------------------------
# Empirical steady state of a network's residuals


class SteadyState(NamedTuple):
    """Where each input's residuals end up after many layers of the shared-weight map.

    - `final`: ``(*batch, n)`` r_{T−1}, the last residual.
    - `change`: ``(*batch,)`` ‖r_{T−1} − r_{T−2}‖_∞, the last step's movement.
    - `converged`: ``(*batch,)`` change ≤ tol.
    - `classes`: ``(C,)`` the distinct labels, sorted.
    - `class_means`: ``(C, n)`` mean final residual of each class.
    - `class_spread`: ``(C,)`` RMS Euclidean distance of a class's final residuals to its mean.
    - `class_distance`: max over class pairs of ‖mean_c − mean_c'‖_∞ (0: class-independent r*;
      residuals live in [0, 1], so this is on an absolute scale).
    - `dominant`: ``(n,)`` the final residual with the most other final residuals within `atol`
      (searched among the first 2048 inputs, batch axes flattened): the most common attractor.
    - `dominant_fraction`: fraction of all inputs whose final residual lies within `atol`
      (Euclidean) of `dominant`; 1.0 means every input reaches the same attractor.
    """

    final: Float[Array, "*batch n"]
    change: Float[Array, " *batch"]
    converged: Bool[Array, " *batch"]
    classes: Int[Array, " C"]
    class_means: Float[Array, "C n"]
    class_spread: Float[Array, " C"]
    class_distance: Float[Array, ""]
    dominant: Float[Array, " n"]
    dominant_fraction: Float[Array, ""]


@functools.partial(jax.jit, static_argnames=("depth", "activation"))
def _last_two_residuals(W, a0, h, *, depth, activation):
    # Streams the pre-activation recurrence a_{t+1} = a_t + h W act(a_t) (resflow.preactivation_recurrence)
    # keeping only the last state, so 1000-layer runs of large batches need O(batch·n) memory.
    act = get_activation(activation).fn
    h = jnp.asarray(h, a0.dtype)
    a_prev = jax.lax.fori_loop(0, depth - 2, lambda _, a: a + h * act(a) @ W.T, a0)
    return act(a_prev), act(a_prev + h * act(a_prev) @ W.T)


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


def steady_state(
    params: TrunkParams,
    x0: Float[Array, "*batch n"],
    labels: Int[Array, " *batch"] | None = None,
    *,
    depth: int = 1000,
    h=1.0,
    activation: str = "sigmoid",
    tol: float = 1e-6,
    atol: float = 1e-3,
) -> SteadyState:
    """Run a network's residual dynamics for `depth` layers and describe where inputs settle.

    From a_0 = W x_0 + b the residuals follow a_{t+1} = a_t + h W act(a_t), r_t = act(a_t)
    (shared weights; the trained depth is irrelevant: the same layer is applied `depth` times,
    as in the paper's 1000-layer MNIST run). Only the last two residuals are kept.

    **Arguments:**

    - `params`: shared-weight `TrunkParams`.
    - `x0`: inputs (trunk states) ``(*batch, n)``, e.g. ``(n,)`` or ``(batch, n)``; the batch axes
      are flattened for the class and attractor statistics and restored in `final`, `change`, `converged`.
    - `labels`: ``(*batch,)`` integer classes ≥ 0, or None (one class).
    - `depth`: T ≥ 2 layers; `h`: step size > 0; `activation`: residual activation name.
    - `tol`: convergence threshold on ‖r_{T−1} − r_{T−2}‖_∞.
    - `atol`: Euclidean radius within which two final residuals count as the same attractor.

    **Returns:** `SteadyState` (``final (*batch, n)``, ``change``/``converged`` ``(*batch,)``).

    **Raises:** `ValueError`/`TypeError` for untied params, shape mismatches (labels must have x0's
    batch shape), non-integer or negative labels, depth < 2, non-positive h/tol/atol.
    """
    params = shared_params(params, "running the residual map past its depth")
    W, n = params.W, params.W.shape[-1]
    x0 = check_array("x0", x0, last_dim=n)
    batch = x0.shape[:-1]
    depth = check_int("depth", depth, minimum=2)
    get_activation(activation)
    for name, v in (("h", h), ("tol", tol), ("atol", atol)):
        check_positive(name, v)
    labels = jnp.zeros(batch, jnp.int32) if labels is None else check_labels("labels", labels, batch)
    a0 = x0.reshape(-1, n) @ W.T + params.b
    r_prev, final = _last_two_residuals(W, a0, h, depth=depth, activation=activation)
    change = jnp.max(jnp.abs(final - r_prev), axis=-1)
    classes, w = class_weights(labels.reshape(-1), final.dtype)
    means = w.T @ final
    spread = jnp.sqrt(jnp.sum(jnp.sum((final[:, None, :] - means[None]) ** 2, -1) * w, axis=0))
    distance = jnp.max(jnp.abs(means[:, None] - means[None, :]))
    dominant, fraction = _dominant(final, jnp.asarray(atol, final.dtype))
    final, change = final.reshape(batch + (n,)), change.reshape(batch)
    return SteadyState(final, change, change <= tol, classes, means, spread, distance, dominant, fraction)
