"""Fixed points of the residual map at large width, found from data (`search_residual_fixed_points`).

`resflow.residual_fixed_points` enumerates all 3^n saturation patterns and stops at n = 12. At the
width of an image network (n = 784) this module searches instead, from starts the data provide
(the end states of a long run of the same weights, class means), in pre-activation space
a (r = σ(a)), where the residual map reads a ↦ a + h W σ(a):

- a start's *pattern* is read off its pre-activations: |a_i| ≥ `saturation` holds component i
  saturated at r_i = 1 (a_i > 0) or 0 (a_i < 0); the others are *free*;
- the free part solves (W r)_F = 0 with r_F = σ(a_F), r_S the exact 0/1 values of the pattern,
  by Levenberg–Marquardt on a_F (`optimistix`, vmapped over starts, jitted). Working in a keeps
  r_F strictly inside (0, 1); a free component driven past `saturation` is re-marked saturated
  and the solve is repeated once; two Newton steps in r_F then solve the free equations, which
  are linear in r_F, to rounding (LM stops on a step criterion, which does not guarantee the residual test);
- a saturated component stays saturated when s_i (W r*)_i > 0 (s_i = +1 at 1, −1 at 0): its
  flow eigenvalue λ_i = (1 − 2 r_i)(W r*)_i = −s_i (W r*)_i is then negative, and the map
  contracts it by the multiplier e^{h λ_i} (`pattern_spectrum`, shared with the enumeration); the
  free block linearises to I + h D_F W_FF, D_F = diag(r_F(1 − r_F)). Stability is
  `resflow.dynamics.classify_stability` of these multipliers, the classifier of every fixed-point tool.

The search finds the fixed points the starts lead to, not all of them. It returns a
`resflow.FixedPoints` (one row per distinct point) with `patterns`, `flow_eigenvalues`,
`saturation_margin`, `start_counts` and `start_solution` filled in. See docs/fixed_point_search.md.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from jaxtyping import Array, Float

from .._checks import as_float_array, check_int, check_positive
from ..dynamics._fixed_points import FixedPoints
from ..dynamics._stability import classify_stability
from ..trunk._trunk import Trunk, check_trunk, require_logistic, require_shared
from ._attractors import Saturation, pattern_spectrum

__all__ = ["search_residual_fixed_points"]

SATURATION = 10.0
"""|a_i| at or above it marks a component saturated (r within 4.5e-5 of 0 or 1)."""


def _free_residual(y, args):
    """(W r)_F in the m unknowns y = a_F; slots past a start's free count solve y = y_start.

    r = r_S (exact 0/1, zero at free components) plus σ(y) scattered to the free indices, so
    one square m × m system of fixed shape serves every pattern of a group under vmap, and
    its cost is O(m n) per evaluation however wide the trunk."""
    W_rows, idx, valid, r_sat, y_start = args
    r = r_sat.at[idx].add(jnp.where(valid, jax.nn.sigmoid(y), 0.0))
    return jnp.where(valid, W_rows @ r, y - y_start)


@functools.partial(jax.jit, static_argnames=("max_steps",))
def _solve(W, a0, idx, saturation, rtol, atol, *, max_steps):
    """Two rounds of LM on every start: a0 ``(B, n)``, its free indices idx ``(B, m)`` (padded
    with repeats; the free set is |a0| < saturation). Round two re-marks free components that ran
    past `saturation` as saturated. Then Newton steps in r_F (`_newton_polish`). Returns r*, the
    free mask, residual and scale. Unchecked."""
    solver = optx.LevenbergMarquardt(rtol=rtol, atol=atol)

    def round_(_, carry):  # a loop, not two calls: the LM solve is compiled once
        y, valid, r_sat, idx, W_rows = carry
        args = (W_rows, idx, valid, r_sat, y)
        y = jnp.where(
            valid, optx.least_squares(_free_residual, solver, y, args, max_steps=max_steps, throw=False).value, y
        )
        off = valid & (jnp.abs(y) >= saturation)
        r_sat = r_sat.at[idx].add(jnp.where(off & (y > 0), 1.0, 0.0))
        return y, valid & ~off, r_sat, idx, W_rows

    def one(a, idx):
        free = jnp.abs(a) < saturation
        valid = free[idx] & (jnp.arange(idx.shape[0]) < free.sum())
        r_sat = jnp.where(free, 0.0, (a > 0).astype(a.dtype))
        y0 = jnp.where(valid, a[idx], 0.0)
        y, valid, r_sat, _, W_rows = jax.lax.fori_loop(0, 2, round_, (y0, valid, r_sat, idx, W[idx]))
        r = _newton_polish(W_rows, idx, valid, r_sat, jax.nn.sigmoid(y), jax.nn.sigmoid(saturation))
        free = jnp.zeros(a.shape, bool).at[idx].max(valid)
        residual = jnp.linalg.norm(jnp.where(valid, W_rows @ r, 0.0))
        scale = 1.0 + jnp.linalg.norm(jnp.where(valid, jnp.abs(W_rows) @ r, 0.0))
        return r, free, residual, scale

    return jax.vmap(one)(a0, idx)


NEWTON_STEPS = 2
"""Newton steps in r_F after the LM rounds (the second refines the first's rounding)."""


def _newton_polish(W_rows, idx, valid, r_sat, r_free, r_max):
    """r* with its free part r_F polished by Newton steps on (W r)_F = W_FF r_F + W_FS r_S = 0.

    LM stops on a step criterion that does not guarantee the residual test, and its
    unknowns a_F = σ⁻¹(r_F) scale the Jacobian by σ'(a_F): near saturation that factor is small,
    and LM leaves r_F off by up to residual / σ_min(W_FF D_F). The equations are linear in r_F,
    so a Newton step in r_F, r_F − W_FF⁻¹ (W r)_F, solves them to rounding with W_FF's own
    conditioning. A step is kept when it is finite, lowers ‖(W r)_F‖ and leaves every free
    component free, r_F ∈ (1 − r_max, r_max) with r_max = σ(saturation). Invalid (padded) slots
    solve the identity. Unchecked."""
    m = idx.shape[0]
    both = valid[:, None] & valid[None, :]
    M = jnp.where(both, W_rows[:, idx], jnp.eye(m, dtype=W_rows.dtype))

    def compose(r_f):
        return r_sat.at[idx].add(jnp.where(valid, r_f, 0.0))

    def residual(r_f):
        return jnp.where(valid, W_rows @ compose(r_f), 0.0)

    def step(_, r_f):
        f = residual(r_f)
        new = r_f - jnp.linalg.solve(M, f)
        inside = jnp.all(jnp.where(valid, (new > 1 - r_max) & (new < r_max), True))
        better = jnp.linalg.norm(residual(new)) < jnp.linalg.norm(f)
        return jnp.where(jnp.all(jnp.isfinite(new)) & inside & better, new, r_f)

    return compose(jax.lax.fori_loop(0, NEWTON_STEPS, step, r_free))


def _free_indices(free: np.ndarray) -> np.ndarray:
    """``(B, m)`` free indices of each row, m = max count rounded up to a power of two (≥ 1, ≤ n),
    padded by repeating the row's first index (0 when none is free)."""
    counts = free.sum(1)
    m = min(free.shape[1], 1 << int(max(counts.max(initial=0), 1) - 1).bit_length())
    idx = np.zeros((len(free), m), int)
    for i, row in enumerate(free):
        f = np.flatnonzero(row)
        idx[i] = np.concatenate([f, np.full(m - len(f), f[0] if len(f) else 0)])
    return idx


def _unique_rows(keys: np.ndarray, rows: np.ndarray, atol: float) -> np.ndarray:
    """Cluster id of each row: same key and within `atol` (max norm) of the cluster's first row."""
    ids = np.full(len(rows), -1)
    reps: dict[bytes, list[int]] = {}
    firsts: list[int] = []
    for i, (key, row) in enumerate(zip(keys, rows, strict=True)):
        group = reps.setdefault(key.tobytes(), [])
        for c in group:
            if np.max(np.abs(row - rows[firsts[c]]), initial=0.0) <= atol:
                ids[i] = c
                break
        else:
            ids[i] = len(firsts)
            group.append(len(firsts))
            firsts.append(i)
    return ids


def _check_starts(trunk, starts):
    a = as_float_array("starts", starts)
    if a.ndim != 2 or a.shape[1] != trunk.width:
        raise ValueError(f"starts must be pre-activations of shape (batch, {trunk.width}), got {a.shape}")
    if a.dtype != trunk.dtype:
        raise TypeError(f"starts has dtype {a.dtype} but the trunk has {trunk.dtype}: cast one")
    a = np.asarray(a)
    if np.isnan(a).any():
        raise ValueError("starts must not contain NaN (±inf marks a saturated component and is allowed)")
    return a


def search_residual_fixed_points(
    trunk: Trunk,
    starts: Float[Array, "batch n"],
    *,
    saturation: float = SATURATION,
    tol: float | None = None,
    start_atol: float = 1e-3,
    atol: float = 1e-4,
    max_steps: int = 200,
    marginal_tol: float | None = None,
) -> FixedPoints:
    """Fixed points of the residual map r ↦ σ(σ⁻¹(r) + h W r) reached from data-driven starts.

    For each start a (pre-activations): the pattern is saturated where |a_i| ≥ `saturation`
    (r_i = 1 if a_i > 0, else 0), free elsewhere; the free part solves (W r)_F = 0 with
    r_F = σ(a_F) by Levenberg–Marquardt in a_F (optimistix, jitted, vmapped over the starts);
    free components that run past `saturation` are re-marked saturated and solved again. Two
    Newton steps in r_F, r_F ← r_F − W_FF⁻¹ (W r)_F, then solve the free equations to rounding
    (each kept if it lowers the residual and keeps |σ⁻¹(r_F)| < `saturation`). A
    start converges when ‖(W r*)_F‖₂ ≤ tol · (1 + ‖(|W| r*)_F‖₂). Converged starts with the same
    pattern and r* within `atol` (max norm) are one fixed point. Per point: the pattern counts,
    the saturation margin min_S s_i (W r*)_i (> 0: the saturated components are held), the
    flow eigenvalues and map multipliers (saturated: λ_i = (1 − 2 r_i)(W r*)_i and e^{h λ_i};
    free: μ of D_F W_FF and 1 + h μ) and their `resflow.dynamics.Stability` by
    `resflow.dynamics.classify_stability` (host-side float64).

    Starts with the same pattern and r within `start_atol` (max norm) are solved once (a long
    run's end states are mostly copies of a few attractors).

    **Arguments:**

    - `trunk`: a shared-weight logistic resnet `Trunk` (W, h; b does not enter the residual map).
    - `starts`: pre-activations ``(batch, n)`` in the trunk's dtype, e.g. the last a_t of
      `resflow.trunk.preactivation_recurrence` over 1000 layers, or class means of a; ±inf allowed.
    - `saturation`: the |a| threshold of a saturated component (> 0).
    - `tol`: relative residual tolerance (default max(1e-10, 1000 ε) for the dtype's ε).
    - `start_atol`, `atol`: merge radii of starts and of solutions (> 0).
    - `max_steps`: LM iterations per round (≥ 1).
    - `marginal_tol`: ||μ| − 1| at or below it is `Stability.MARGINAL` (default √ε of float64).

    **Returns:** `FixedPoints`, rows in order of first discovery: `points` r* (exact 0/1 at
    saturated components, σ(a*_F) at free ones), `converged` (all True), `residual_norm`
    ‖(W r*)_F‖₂, `multipliers` and `flow_eigenvalues` (coordinate layout), `stability`,
    `patterns` (int8 `Saturation` codes; `num_low`, `num_high`, `num_free` count them),
    `saturation_margin` min over saturated i of s_i (W r*)_i (+inf when none; > 0: every
    saturated component is held by its pattern), `start_counts` ``(k,)`` and
    `start_solution` ``(B,)`` (the row each start converged to, −1 where it found none).

    **Raises:** `ValueError`/`TypeError` for an untied or non-logistic trunk, starts of the wrong
    shape or dtype or with NaN, non-positive tolerances, max_steps < 1.
    """
    trunk = require_logistic(
        require_shared(check_trunk(trunk), "the residual map's fixed points"), "the fixed-point search"
    )
    a = _check_starts(trunk, starts)
    for name, value in (("saturation", saturation), ("start_atol", start_atol), ("atol", atol)):
        check_positive(name, value)
    max_steps = check_int("max_steps", max_steps)
    eps = float(jnp.finfo(trunk.dtype).eps)
    tol = max(1e-10, 1000 * eps) if tol is None else tol
    check_positive("tol", tol)
    marginal_tol = float(np.sqrt(np.finfo(np.float64).eps)) if marginal_tol is None else marginal_tol
    check_positive("marginal_tol", marginal_tol)

    free0 = np.abs(a) < saturation
    keys = np.where(free0, Saturation.FREE, a > 0).astype(np.int8)
    start_ids = _unique_rows(keys, np.where(free0, 1 / (1 + np.exp(-np.where(free0, a, 0.0))), 0.0), start_atol)
    firsts = np.array([np.flatnonzero(start_ids == c)[0] for c in range(start_ids.max(initial=-1) + 1)], int)
    r, free, res, scale = _solve_groups(trunk, a[firsts], saturation, min(tol, 1e-3) / 10, max_steps)
    ok = res <= tol * scale
    patterns = np.where(free, Saturation.FREE, r).astype(np.int8)
    sol_ids = np.where(ok, _unique_rows(np.where(ok[:, None], patterns, 0), r, atol), -1)
    sol_ids = _renumber(sol_ids)
    return _report(trunk, r, free, patterns, res, sol_ids, start_ids, marginal_tol)


MIN_GROUP = 32
"""Smallest number of unknowns a group of starts is solved with (fewer groups, fewer compilations)."""


def _solve_groups(trunk, a, saturation, xtol, max_steps):
    """`_solve` on starts grouped by the power of two ≥ MIN_GROUP above their free count (one
    compilation per group size and batch bucket; a few free components do not pay for many)."""
    free0 = np.abs(a) < saturation
    idx = _free_indices(free0)
    cap = idx.shape[1]
    sizes = np.array([min(cap, 1 << int(max(c, MIN_GROUP) - 1).bit_length()) for c in free0.sum(1)])
    r, free = np.zeros(a.shape), np.zeros(a.shape, bool)
    res, scale = np.zeros(len(a)), np.ones(len(a))
    # JAX's default float (float64 under x64): optimistix's LM mixes it into its damping
    # terms, and the systems are small enough that the wider type costs nothing that matters
    dtype = jnp.result_type(float)
    for m in np.unique(sizes):
        rows = np.flatnonzero(sizes == m)
        # pad the batch to a power of two (≥ 8): calls of one width share few compilations
        padded = np.concatenate([rows, np.full(max(8, 1 << (len(rows) - 1).bit_length()) - len(rows), rows[0])])
        out = _solve(
            trunk.W.astype(dtype),
            jnp.asarray(a[padded], dtype),
            jnp.asarray(idx[padded, :m]),
            jnp.asarray(saturation, dtype),
            jnp.asarray(xtol, dtype),
            jnp.asarray(xtol, dtype),
            max_steps=max_steps,
        )
        out = [np.asarray(v)[: len(rows)] for v in out]
        r[rows], free[rows], res[rows], scale[rows] = out
    return r, free, res, scale


def _renumber(ids):
    """Ids of the kept (≥ 0) rows renumbered 0, 1, … in order of first appearance; −1 stays."""
    out = np.full(len(ids), -1)
    seen: dict[int, int] = {}
    for i, c in enumerate(ids):
        if c >= 0:
            out[i] = seen.setdefault(int(c), len(seen))
    return out


def _report(trunk, r, free, patterns, res, sol_ids, start_ids, marginal_tol) -> FixedPoints:
    W = np.asarray(trunk.W, np.float64)
    h = float(trunk.h)
    n = W.shape[0]
    k = int(sol_ids.max(initial=-1)) + 1
    rows = np.array([np.flatnonzero(sol_ids == c)[0] for c in range(k)], int)
    R, F, P = r[rows].astype(np.float64).reshape(k, n), free[rows].reshape(k, n), patterns[rows].reshape(k, n)
    flows, mults = np.zeros((k, n), complex), np.zeros((k, n), complex)
    for j in range(k):
        flows[j], mults[j], _ = pattern_spectrum(W, h, R[j], F[j])
    g = R @ W.T
    signed = np.where(P == Saturation.HIGH, g, -g)
    margin = np.min(np.where(F, np.inf, signed), axis=1, initial=np.inf)
    stability = np.asarray(classify_stability(mults, marginal_tol=marginal_tol), np.int32)
    start_solution = sol_ids[start_ids]
    return FixedPoints(
        R,
        np.ones(k, bool),
        res[rows].astype(np.float64),
        mults,
        stability,
        start_counts=np.bincount(start_solution[start_solution >= 0], minlength=k),
        start_solution=start_solution,
        patterns=P,
        flow_eigenvalues=flows,
        saturation_margin=margin,
    )
