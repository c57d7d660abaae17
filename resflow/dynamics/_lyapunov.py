"""Lyapunov spectra of any JAX map ``step(x) -> x_next`` on R^n (the Benettin QR method).

Core (matrix-free Lyapunov spectrum, the building block of every Lyapunov routine)::

    lyapunov_spectrum_from_products(
        jvp_fn, num_steps, *, n, num_exponents=None, init_state=None, key=None,
        initial_q=None, dtype=None, return_running=False, qr_every=1,
    ) -> LyapunovResult(exponents, running, final_state)

    stateless  (init_state is None):  jvp_fn(t, Q) -> J_t @ Q
    stateful   (init_state given):    jvp_fn(t, state, Q) -> (state_next, J_t @ Q)

with ``t`` a traced int32 step index 0 … num_steps−1 and ``Q`` of shape ``(n, k)``. The loop
itself is `qr_scan` (a QR every step, or a guarded QR every ``qr_every`` steps; frames with
leading batch axes for callers that batch inside the product).

Built on it:

- `lyapunov_spectrum(step, x0, num_steps, ...)` — orbit of `step` from x0, J_t Q by
  `jax.linearize` (J is never formed).
- `lyapunov_spectrum_from_jacobians(jacobians, ...)` — a stored sequence of Jacobians.

`step` is an argument of the compiled code (`callable_jit`, built on `equinox.filter_jit`):
a pytree callable such as a trunk's map ``trunk.step`` is traced through its arrays, so a
second trunk of the same shapes reuses the compilation; a plain function is static.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._checks import check_array, check_int
from ._common import batched, callable_jit, check_step, random_frame, resolve_num_exponents

__all__ = [
    "LyapunovResult",
    "lyapunov_spectrum_from_products",
    "lyapunov_spectrum",
    "lyapunov_spectrum_from_jacobians",
    "initial_frame",
    "guard_tolerance",
    "qr_scan",
]


class LyapunovResult(NamedTuple):
    """Lyapunov exponents in nats per step, largest first.

    - `exponents`: ``(k,)``, λ_j = (1/T) Σ_t log|R_t[j, j]|, sorted descending.
    - `running`: ``(T, k)`` finite-time estimates, ``running[t]`` after t + 1 steps (its
      last row equals `exponents`; each row sorted descending), or ``None`` unless ``return_running=True``.
    - `final_state`: the carried state after the last step (stateful `jvp_fn`; the orbit point
      x_{burn_in + T} for `lyapunov_spectrum`), ``None`` for a stateless `jvp_fn`.
    """

    exponents: Float[Array, "*batch k"]
    running: Float[Array, "*batch T k"] | None
    final_state: Any = None


def _sort_descending(x: jax.Array) -> jax.Array:
    return -jnp.sort(-x, axis=-1)


def initial_frame(n: int, k: int, key, initial_q, dtype) -> jax.Array:
    """The ``(n, k)`` starting frame: `initial_q` orthonormalised, else `random_frame`."""
    if initial_q is not None:
        if key is not None:
            raise ValueError("give at most one of key and initial_q")
        q0 = check_array("initial_q", initial_q, ndim=2)
        if q0.shape != (n, k):
            raise ValueError(f"initial_q must have shape (n, num_exponents) = {(n, k)}, got {q0.shape}")
        q0 = q0.astype(dtype)
        return jnp.linalg.qr(q0)[0]
    return random_frame(n, k, key, dtype)


def guard_tolerance(dtype) -> float:
    """Smallest |R[j, j]| a QR of a block of column-normalised products may show: ε^(1/4).

    With unit columns the QR's R[j, j] is exact to about ε in absolute terms, so
    log|R[j, j]| is exact to ε/|R[j, j]| ≤ ε^(3/4) (6.5e-6 in float32, 1.8e-12 in float64)
    while the guard holds."""
    return float(jnp.finfo(dtype).eps) ** 0.25


def qr_scan(product, state, q0, num_steps: int, *, qr_every: int = 1, return_running: bool = False):
    """The Benettin QR loop behind every Lyapunov routine. Unchecked.

    `product(t, state, Q) -> (state_next, J_t Q)` with Q ``(*batch, n, k)`` (any leading
    batch axes; one QR per batch entry). With ``qr_every = m > 1`` (and no running
    estimates) the steps run in blocks of m: after each product the columns are scaled to
    unit norm (their log norms are added to the sums, which is exact and keeps the block from
    overflowing or underflowing), and one QR ends the block. Because R of a product of
    triangular factors has the product of their diagonals, the log|diag R| sums equal those of
    a QR every step. A block whose R has some |R[j, j]| below `guard_tolerance` (its columns
    have nearly aligned, so the smaller directions would lose digits) is recomputed from its
    start with a QR every step (`jax.lax.cond`, decided for the whole batch at once). Keep
    the batch inside Q: under `jax.vmap` the cond becomes a select that runs both branches.

    **Returns:** ``(state, total (*batch, k), logs)``: the final state, Σ_t log|R_t[j, j]|,
    and the per-step ``(T, *batch, k)`` logs when ``return_running`` (else None).
    """
    dtype = q0.dtype
    k = q0.shape[-1]

    def step_qr(carry, t):
        state, q, total = carry
        state, jq = product(t, state, q)
        q, r = jnp.linalg.qr(jq.astype(dtype))
        logs = jnp.log(jnp.abs(jnp.diagonal(r, axis1=-2, axis2=-1)))
        return (state, q, total + logs), (logs if return_running else None)

    total0 = jnp.zeros(q0.shape[:-2] + (k,), dtype)
    if qr_every == 1 or return_running:
        (state, _, total), logs = jax.lax.scan(step_qr, (state, q0, total0), jnp.arange(num_steps, dtype=jnp.int32))
        return state, total, logs
    tol = guard_tolerance(dtype)

    def block(carry, t0, length):
        state0, q0_, total = carry

        def scaled(inner, t):
            state, q, lognorm = inner
            state, q = product(t, state, q)
            norm = jnp.linalg.norm(q.astype(dtype), axis=-2)
            return (state, q.astype(dtype) / norm[..., None, :], lognorm + jnp.log(norm)), None

        ts = t0 + jnp.arange(length, dtype=jnp.int32)
        (state, q, lognorm), _ = jax.lax.scan(scaled, (state0, q0_, jnp.zeros_like(total)), ts)
        q, r = jnp.linalg.qr(q)
        diag = jnp.abs(jnp.diagonal(r, axis1=-2, axis2=-1))

        def fallback():
            ts = t0 + jnp.arange(length, dtype=jnp.int32)
            return jax.lax.scan(step_qr, carry, ts)[0]

        return jax.lax.cond(jnp.all(diag >= tol), lambda: (state, q, total + lognorm + jnp.log(diag)), fallback)

    m = min(qr_every, num_steps)
    num_blocks, rest = divmod(num_steps, m)
    starts = jnp.arange(num_blocks, dtype=jnp.int32) * m
    carry = jax.lax.scan(lambda c, t0: (block(c, t0, m), None), (state, q0, total0), starts)[0]
    if rest:
        carry = block(carry, jnp.int32(num_blocks * m), rest)
    return carry[0], carry[2], None


def lyapunov_spectrum_from_products(
    jvp_fn: Callable,
    num_steps: int,
    *,
    n: int,
    num_exponents: int | None = None,
    init_state: Any = None,
    key: jax.Array | None = None,
    initial_q: Float[Array, "n k"] | None = None,
    dtype=None,
    return_running: bool = False,
    qr_every: int = 1,
) -> LyapunovResult:
    """Lyapunov spectrum from matrix-free tangent products (the Benettin QR method).

    Evolves an orthonormal frame Q_0 (n × k) through Q_{t+1} R_t = J_t Q_t (thin QR, one per
    step, inside `jax.lax.scan`) and returns λ_j = (1/T) Σ_{t<T} log|R_t[j, j]| in nats per
    step, the k largest exponents in descending order (the QR's |diag R| makes the sign
    convention of the factorisation irrelevant). Only products J_t Q are needed, so J_t is
    never formed: pass analytic products (e.g. ``Q + h·D_t (W Q)`` for a residual layer),
    JVPs, or slices of stored matrices.

    Two conventions for `jvp_fn`, chosen by `init_state`:

    - stateless (``init_state=None``): ``jvp_fn(t, Q) -> J_t @ Q``. Use it when J_t depends
      only on the step index, e.g. closed over a precomputed trajectory (``traj[t]``) or a
      stack of layer weights (``W[t]``); `t` is a traced int32 scalar, so index with it.
    - stateful (``init_state`` a pytree): ``jvp_fn(t, state, Q) -> (state_next, J_t @ Q)``.
      Use it to stream an orbit without storing it (state = x_t, as `lyapunov_spectrum`
      does); the state after the last step comes back as `final_state`.

    The result is exact for finite T (a finite-time spectrum); convergence to the asymptotic
    exponents is typically O(1/T), check it with ``return_running=True``. A product with an
    exactly singular direction gives −inf for that exponent.

    **Arguments:**

    - `jvp_fn`: the tangent map, see above; must be traceable (pure JAX).
    - `num_steps`: T ≥ 1, a Python int (the scan length).
    - `n`: state dimension.
    - `num_exponents`: k, 1 ≤ k ≤ n (default: the columns of `initial_q`, else n); the k
      largest exponents are returned.
    - `init_state`: initial carried state for a stateful `jvp_fn`.
    - `key`: `jax.random` key for a random initial frame (default: a fixed key, so the same
      call gives the same result). The frame is the QR of the first k columns of an n × n
      Gaussian draw, so with the same key the k-exponent run equals the first k exponents of
      the full run. Exclusive with `initial_q`.
    - `initial_q`: explicit initial frame ``(n, k)`` (orthonormalised by QR first).
    - `dtype`: floating dtype of the frame and exponents (default: `initial_q`'s dtype, else
      JAX's default float).
    - `return_running`: also return the ``(T, k)`` running estimates.
    - `qr_every`: m ≥ 1, re-orthonormalise once per m steps (columns rescaled to unit norm
      after every step, a QR at the end of each block; a block whose columns nearly align,
      some |R[j, j]| < ε^(1/4), is redone with a QR per step). The exponents equal those of
      a QR every step up to rounding (≤ ε^(3/4) per block in log|R[j, j]|); it saves QR
      calls where they cost more than the products (small k, GPUs). Ignored (a QR per
      step) with ``return_running=True``. Under `jax.vmap` the guard runs both branches:
      batch inside `jvp_fn` instead (as `resflow.network_lyapunov_spectrum` does).

    **Returns:** `LyapunovResult(exponents (k,), running (T, k) or None, final_state)`.

    **Raises:** `TypeError` for a non-callable `jvp_fn`, non-integer sizes or a non-float
    dtype; `ValueError` for num_steps < 1, qr_every < 1, n < 1, k outside [1, n], a bad `initial_q`, both
    `key` and `initial_q`, or a `jvp_fn` whose product does not have shape ``(n, k)``.
    """
    if not callable(jvp_fn):
        raise TypeError(f"jvp_fn must be a callable, got {type(jvp_fn).__name__}")
    num_steps = check_int("num_steps", num_steps, minimum=1)
    qr_every = check_int("qr_every", qr_every, minimum=1)
    n = check_int("n", n, minimum=1)
    if num_exponents is None and initial_q is not None and jnp.ndim(initial_q) == 2:
        num_exponents = jnp.shape(initial_q)[1]
    k = resolve_num_exponents(num_exponents, n)
    if dtype is None:
        dtype = jnp.asarray(initial_q).dtype if initial_q is not None else jnp.result_type(float)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"dtype must be a floating dtype, got {dtype}")
    q0 = initial_frame(n, k, key, initial_q, dtype)
    stateful = init_state is not None

    def product(t, state, q):
        if stateful:
            return jvp_fn(t, state, q)
        return state, jvp_fn(t, q)

    t0 = jax.ShapeDtypeStruct((), jnp.int32)
    out = jax.eval_shape(product, t0, init_state, q0)
    jq = out[1] if isinstance(out, tuple) and len(out) == 2 else None
    if jq is None or not hasattr(jq, "shape") or jq.shape != (n, k):
        got = getattr(jq, "shape", out)
        want = "(state_next, J @ Q)" if stateful else "J @ Q"
        raise ValueError(f"jvp_fn must return {want} with J @ Q of shape (n, k) = {(n, k)}, got {got}")

    state, total, logs = qr_scan(product, init_state, q0, num_steps, qr_every=qr_every, return_running=return_running)
    # Finite-time exponents need not come out of the QR in order (short horizons, nearly
    # equal exponents): sort so that "largest first" always holds.
    exponents = _sort_descending(total / num_steps)
    running = None
    if return_running:
        running = _sort_descending(jnp.cumsum(logs, axis=0) / jnp.arange(1, num_steps + 1, dtype=dtype)[:, None])
    return LyapunovResult(exponents, running, state if stateful else None)


def lyapunov_spectrum(
    step: Callable[[Array], Array],
    x0: Float[Array, "*batch n"],
    num_steps: int,
    *,
    num_exponents: int | None = None,
    burn_in: int = 0,
    key: jax.Array | None = None,
    return_running: bool = False,
) -> LyapunovResult:
    """Lyapunov spectrum of the orbit x_{t+1} = step(x_t) from `x0` (Benettin QR method).

    After `burn_in` plain steps (no accumulation, to land on the attractor), each of the
    `num_steps` steps advances the state and pushes the k-column frame through the tangent
    map with `jax.linearize` (one primal evaluation, k JVPs, vmapped): J_t = ∂step/∂x at x_t
    is never formed. See `lyapunov_spectrum_from_products` for the method.

    **Arguments:**

    - `step`: a map R^n → R^n acting on a single state ``(n,)``: a function, or a pytree
      callable such as ``trunk.step`` (compiled once per shapes, see the module).
    - `x0`: initial state ``(n,)``, or a batch ``(*batch, n)`` (vmapped, one spectrum each,
      same initial frame for all).
    - `num_steps`: T ≥ 1 steps that are averaged.
    - `num_exponents`: k ≤ n largest exponents (default n).
    - `burn_in`: steps iterated first and discarded (≥ 0).
    - `key`: key of the random initial frame (default a fixed key).
    - `return_running`: also return running estimates ``(*batch, T, k)``.

    **Returns:** `LyapunovResult(exponents (*batch, k), running, final_state = x_{burn_in+T})`.
    Exponents are in nats per step and in the dtype of `x0`.

    **Raises:** `TypeError` for a non-callable `step` or non-float `x0`; `ValueError` if
    `step` does not map ``(n,)`` to ``(n,)``, for non-finite `x0`, num_steps < 1, burn_in < 0
    or k outside [1, n].
    """
    x0 = check_array("x0", x0)
    check_step(step, x0)
    num_steps = check_int("num_steps", num_steps, minimum=1)
    burn_in = check_int("burn_in", burn_in, minimum=0)
    n = x0.shape[-1]
    k = resolve_num_exponents(num_exponents, n)
    q0 = initial_frame(n, k, key, None, x0.dtype)
    return _lyapunov_run(step, x0, q0, num_steps=num_steps, burn_in=burn_in, return_running=return_running)


@callable_jit
def _lyapunov_run(step, x0, q0, *, num_steps, burn_in, return_running):
    def tangent(t, x, q):
        x_next, f_jvp = jax.linearize(step, x)
        return x_next, jax.vmap(f_jvp, in_axes=1, out_axes=1)(q)

    def one(x, q0):
        x = jax.lax.fori_loop(0, burn_in, lambda _, y: step(y), x)
        return lyapunov_spectrum_from_products(
            tangent, num_steps, n=x.shape[-1], init_state=x, initial_q=q0, return_running=return_running
        )

    return batched(lambda xi: one(xi, q0), x0)


def lyapunov_spectrum_from_jacobians(
    jacobians: Float[Array, "T n n"],
    *,
    num_exponents: int | None = None,
    key: jax.Array | None = None,
    return_running: bool = False,
) -> LyapunovResult:
    """Lyapunov spectrum of the product J_{T−1} ⋯ J_1 J_0 of stored Jacobians (QR method).

    **Arguments:**

    - `jacobians`: ``(T, n, n)``, J_t = ∂x_{t+1}/∂x_t, applied in order t = 0, 1, ….
    - `num_exponents`, `key`, `return_running`: as in `lyapunov_spectrum_from_products`.

    **Returns:** `LyapunovResult(exponents (k,), running (T, k) or None, None)`.

    **Raises:** `ValueError` unless `jacobians` is a finite ``(T, n, n)`` float array with
    T ≥ 1, or for k outside [1, n].
    """
    jacobians = check_array("jacobians", jacobians, ndim=3)
    T, n, m = jacobians.shape
    if n != m or T < 1:
        raise ValueError(f"jacobians must have shape (T, n, n) with T >= 1, got {jacobians.shape}")
    return lyapunov_spectrum_from_products(
        lambda t, q: jacobians[t] @ q,
        T,
        n=n,
        num_exponents=num_exponents,
        key=key,
        dtype=jacobians.dtype,
        return_running=return_running,
    )
