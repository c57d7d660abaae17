"""Long runs of a residual trunk, streamed: per-layer statistics without the trajectory.

Running a 15-layer shared-weight network for 1000 layers (the paper's "1000-layer run of the
same weights") on N inputs of width n would hold a (1000, N, n) trajectory: 3 GB at N = 10⁴,
n = 784 in float32. Here the layers are stepped with `jax.lax.scan` and every statistic is
reduced over the samples *inside* the scan body, so only the per-layer results (T × K × n for
K classes) leave the loop. The batch may also be split into fixed chunks (`batch_chunk`), each
run through all T layers in turn, the chunks' statistics merged exactly (Chan's pairwise update
for the variance), so peak memory is O(chunk · n + T · K · n). See docs/long_run.md.

`attractor_regime` labels a network attractor / non-attractor from where its inputs' residuals
end after a long run (through `resflow.steady_state`, which decides convergence in r and in
pre-activation space, where a saturated σ cannot hide a saddle).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from .._checks import as_float_array, check_int, finite
from ..trunk._activations import get_activation
from ..trunk._trunk import Trunk, check_depth, check_state, check_trunk, layer_residual
from ._separability import class_means, class_weights, optional_labels
from ._steady_state import SteadyState, steady_state

__all__ = [
    "LongRun",
    "long_run_statistics",
    "long_run_memory",
    "residual_step",
    "Regime",
    "attractor_regime",
]


class LongRun(NamedTuple):
    """Per-layer statistics of a long run over N inputs (t = 0 … T−1 indexes r_t).

    - `residual_mean`: ``(T, n)`` mean over the inputs of r_t.
    - `residual_std`: ``(T,)`` the standard deviation over the inputs of r_t (population,
      ddof = 0), per unit, then averaged over the n units.
    - `class_means`: ``(T, K, n)`` mean r_t of each class (NaN for an empty class).
    - `change_max`, `change_mean`: ``(T,)`` max / mean over inputs of ‖r_t − r_{t−1}‖_∞; NaN at t = 0.
    - `class_counts`: ``(K,)`` inputs per class.
    - `final_state`: ``(*batch, n)`` x_T.
    - `final_residual`: ``(*batch, n)`` r_{T−1}, the last residual added to the state.
    """

    residual_mean: Float[Array, "T n"]
    residual_std: Float[Array, " T"]
    class_means: Float[Array, "T K n"]
    change_max: Float[Array, " T"]
    change_mean: Float[Array, " T"]
    class_counts: Int[Array, " K"]
    final_state: Float[Array, "*batch n"]
    final_residual: Float[Array, "*batch n"]


def residual_step(trunk: Trunk, W, b, x):
    """One resnet layer in residual form: ``(x + h r, r)`` with r = act(W x + b). Unchecked.

    The layer of `resflow.trunk._trunk` written so that the residual itself comes out too (the
    streamed analyses reduce r_t, not only the state).
    """
    r = layer_residual(trunk, W, b, x)
    return x + trunk.h * r, r


def _layer_fn(trunk, depth):
    """(init, step, xs) of a scan over layers: step(carry, layer) -> (carry, r_t), carry[0] = x_t.

    Shared weights step the pre-activations, a_{t+1} = a_t + h W r_t (the same map as the
    forward pass, exactly): x_t grows like t·h over a long run while a_t may stay bounded (e.g.
    near W r* = 0), and W x_t + b would then lose about log10(t) digits to cancellation (in
    float32 the residuals of a 1000-layer run would jitter by ~1e-5 per layer). Untied weights
    have no such recurrence and step x directly.
    """
    act = get_activation(trunk.activation).fn
    if not trunk.shared:

        def untied(carry, layer):
            x, r = residual_step(trunk, *layer, carry[0])
            return (x,), r

        return lambda x0: (x0,), untied, (trunk.W[:depth], trunk.b[:depth])

    def shared(carry, _):
        x, a = carry
        r = act(a)
        return (x + trunk.h * r, a + trunk.h * r @ trunk.W.T), r

    return lambda x0: (x0, x0 @ trunk.W.T + trunk.b), shared, None


def _chunk_statistics(trunk, x0, valid, w, counts, depth):
    """One chunk through `depth` layers: per-layer partial statistics and the final x, r.

    `valid` ``(C,)`` is 1 for real inputs and 0 for padding; `w` ``(C, K)`` holds the global
    class-averaging weights [y_i = c] / N_c (0 on padding), so chunk sums add up to class means.
    """
    n_valid = jnp.sum(valid)
    init, step, layers = _layer_fn(trunk, depth)

    def body(carry, layer):
        state, r_prev = carry
        state, r = step(state, layer)
        mean = valid @ r / n_valid
        m2 = valid @ (r - mean) ** 2
        change = jnp.max(jnp.abs(r - r_prev), axis=-1)
        stats = (mean, m2, class_means(w, counts, r), jnp.max(change * valid), valid @ change)
        return (state, r), stats

    (state, rT), stats = jax.lax.scan(body, (init(x0), jnp.zeros_like(x0)), layers, length=depth)
    return n_valid, stats, state[0], rT


def _merge(acc, part):
    """Chan et al.'s pairwise merge of (count, mean, M2, class sums, change max, change sum)."""
    na, ma, m2a, ca, xa, sa = acc
    nb, (mb, m2b, cb, xb, sb) = part
    n = na + nb
    delta = mb - ma
    mean = ma + delta * (nb / n)
    m2 = m2a + m2b + delta**2 * (na * nb / n)
    return n, mean, m2, ca + cb, jnp.maximum(xa, xb), sa + sb


@functools.partial(jax.jit, static_argnames=("depth", "num_classes", "chunk"))
def _long_run(trunk, x0, y, *, depth, num_classes, chunk):
    """`long_run_statistics` on flat ``x0 (B, n)``, ``y (B,)``. Unchecked."""
    B, n = x0.shape
    dtype = x0.dtype
    counts, w = class_weights(y, num_classes, dtype)
    num_chunks = -(-B // chunk)
    pad = num_chunks * chunk - B
    valid = jnp.concatenate([jnp.ones(B, dtype), jnp.zeros(pad, dtype)]).reshape(num_chunks, chunk)
    xs = jnp.pad(x0, ((0, pad), (0, 0))).reshape(num_chunks, chunk, n)
    ws = jnp.pad(w, ((0, pad), (0, 0))).reshape(num_chunks, chunk, num_classes)
    zeros = jnp.zeros((depth, n), dtype)
    init = (
        jnp.zeros((), dtype),
        zeros,
        zeros,
        jnp.zeros((depth, num_classes, n), dtype),
        jnp.zeros(depth, dtype),
        jnp.zeros(depth, dtype),
    )

    def over_chunks(acc, inputs):
        xc, vc, wc = inputs
        n_valid, stats, xT, rT = _chunk_statistics(trunk, xc, vc, wc, counts, depth)
        return _merge(acc, (n_valid, stats)), (xT, rT)

    (_, mean, m2, cls, cmax, csum), (xT, rT) = jax.lax.scan(over_chunks, init, (xs, valid, ws))
    std = jnp.mean(jnp.sqrt(m2 / B), axis=-1)
    first = jnp.arange(depth) == 0
    cmax = jnp.where(first, jnp.nan, cmax)
    cmean = jnp.where(first, jnp.nan, csum / B)
    xT, rT = xT.reshape(-1, n)[:B], rT.reshape(-1, n)[:B]
    return LongRun(mean, std, cls, cmax, cmean, counts.astype(jnp.int32), xT, rT)


def _check_long_run(trunk, x0, labels, depth, num_classes, batch_chunk):
    """Checked (trunk, flat x0, flat labels, depth, K, chunk, batch shape); one value read."""
    trunk = check_trunk(trunk)
    if trunk.model != "resnet":
        raise ValueError(f"a long run streams residuals x_(t+1) - x_t of a resnet trunk, got model={trunk.model!r}")
    x0 = as_float_array("x0", x0)
    if x0.ndim < 1 or x0.shape[-1] != trunk.width or x0.dtype != trunk.dtype:
        check_state(trunk, x0)  # raises the precise shape / dtype error
    batch = x0.shape[:-1]
    B = int(np.prod(batch))
    if B < 1:
        raise ValueError(f"x0 must hold at least one input, got shape {x0.shape}")
    depth = check_depth(trunk, depth)
    chunk = B if batch_chunk is None else min(check_int("batch_chunk", batch_chunk), B)
    y, K = optional_labels(labels, batch, num_classes, {"x0": (x0, finite)}, lambda: check_state(trunk, x0))
    return trunk, x0.reshape(B, -1), y.reshape(B), depth, K, chunk, batch


def long_run_statistics(
    trunk: Trunk,
    x0: Float[Array, "*batch n"],
    labels: Int[Array, " *batch"] | None = None,
    *,
    depth: int,
    num_classes: int | None = None,
    batch_chunk: int | None = None,
) -> LongRun:
    """Run a resnet trunk `depth` layers and stream per-layer statistics of its residuals.

    x_{t+1} = x_t + h r_t with r_t = act(W_t x_t + b_t). For each layer t < T the residuals of
    all inputs are reduced to their mean μ_t = (1/N) Σ_i r_{t,i}, their standard deviation
    s_t = (1/n) Σ_j sqrt((1/N) Σ_i (r_{t,i,j} − μ_{t,j})²), the class means, and the change
    ‖r_{t,i} − r_{t−1,i}‖_∞ (max and mean over i), inside the `jax.lax.scan` body: the
    (T, N, n) trajectory never exists. A shared trunk may run any depth (e.g. 1000 layers of a
    15-layer network's weights).

    **Arguments:**

    - `trunk`: a resnet `Trunk` (shared weights: any depth; untied: depth ≤ its layers).
    - `x0`: trunk inputs ``(*batch, n)`` in the trunk's dtype (batch axes are flattened for
      the statistics, restored in `final_state` / `final_residual`).
    - `labels`: ``(*batch,)`` integer classes 0 … K−1, or None (one class).
    - `depth`: T ≥ 1, the number of layers.
    - `num_classes`: K (inferred as max label + 1 when omitted).
    - `batch_chunk`: run the inputs in chunks of this many (the last padded with weight-0
      rows); peak memory O(chunk · n + T · K · n). None: one chunk of all N inputs.

    **Returns:** `LongRun`.

    **Raises:** `TypeError`/`ValueError` for a non-resnet trunk, x0 of the wrong width, dtype
    or non-finite, labels not of x0's batch shape or out of range, a bad depth or batch_chunk.
    """
    trunk, x0f, y, depth, K, chunk, batch = _check_long_run(trunk, x0, labels, depth, num_classes, batch_chunk)
    run = _long_run(trunk, x0f, y, depth=depth, num_classes=K, chunk=chunk)
    n = trunk.width
    return run._replace(
        final_state=run.final_state.reshape(batch + (n,)), final_residual=run.final_residual.reshape(batch + (n,))
    )


def long_run_memory(
    trunk: Trunk, batch: int, *, depth: int, num_classes: int = 1, batch_chunk: int | None = None
) -> dict[str, int]:
    """Bytes XLA plans for `long_run_statistics` on `batch` inputs (compiled, not run).

    From ``jax.jit(...).lower(...).compile().memory_analysis()``: the buffers of the arguments
    (trunk, inputs, labels), of the outputs, and the temporaries. Their sum bounds the peak.

    **Arguments:** `trunk`, `depth`, `num_classes`, `batch_chunk` as in `long_run_statistics`;
    `batch`: N, the number of inputs.

    **Returns:** ``{"argument": ..., "output": ..., "temp": ..., "total": ...}`` in bytes.

    **Raises:** `ValueError` as `long_run_statistics`, or if the backend reports no memory analysis.
    """
    trunk = check_trunk(trunk)
    B = check_int("batch", batch)
    depth = check_depth(trunk, depth)
    K = check_int("num_classes", num_classes)
    chunk = B if batch_chunk is None else min(check_int("batch_chunk", batch_chunk), B)
    x0 = jax.ShapeDtypeStruct((B, trunk.width), trunk.dtype)
    y = jax.ShapeDtypeStruct((B,), jnp.int32)
    stats = _long_run.lower(trunk, x0, y, depth=depth, num_classes=K, chunk=chunk).compile().memory_analysis()
    if stats is None:
        raise ValueError("this JAX backend reports no memory analysis for compiled functions")
    out = {
        "argument": int(stats.argument_size_in_bytes),
        "output": int(stats.output_size_in_bytes),
        "temp": int(stats.temp_size_in_bytes),
    }
    out["total"] = sum(out.values())
    return out


# --------------------------------------------------------------------------------------------
# The regime detector

ATTRACTOR_FRACTION = 0.95
"""A network is an attractor network when at least this fraction of its inputs converged."""
PROBE = 2048
"""End states are clustered among the first PROBE inputs (the count costs O(PROBE² · n))."""


class Regime(NamedTuple):
    """Where a network's residuals end after a long run, and the verdict.

    - `label`: ``"attractor"`` (≥ 95 % of the inputs converged) or ``"non-attractor"``.
    - `class_independent`: attractor network whose class-mean end residuals agree within
      `atol` (the late layers add the same drift h·r* to every class).
    - `converged_fraction`: fraction of inputs with ‖r_{T−1} − r_{T−2}‖_∞ ≤ tol and no escaping
      unit (`resflow.analysis.SteadyState.escaping`: a pre-activation moving back towards 0 by more than
      tol per layer, hidden behind a saturated σ).
    - `num_end_states`: number of distinct end residuals (greedy clusters of radius `atol`,
      Euclidean, among the first 2048 inputs).
    - `dominant_fraction`: fraction of inputs whose end residual lies within `atol` of the
      most common one.
    - `class_spread`: RMS Euclidean distance of the K class-mean end residuals to their mean
      (absolute: residuals of a sigmoid lie in [0, 1]).
    - `class_dependence`: `class_spread` / max(mean ‖class-mean end residual‖, atol): 0 for one
      shared end state, O(1) when classes end in different places.
    - `steady`: the `resflow.analysis.SteadyState` the measures come from.
    """

    label: str
    class_independent: bool
    converged_fraction: float
    num_end_states: int
    dominant_fraction: float
    class_spread: float
    class_dependence: float
    steady: SteadyState


@jax.jit
def _count_clusters(points, atol):
    """Greedy clusters of radius `atol`: take the first unassigned point, absorb its ball, repeat."""

    def cond(state):
        return jnp.any(~state[0])

    def body(state):
        assigned, count = state
        centre = points[jnp.argmax(~assigned)]
        near = jnp.linalg.norm(points - centre, axis=-1) <= atol
        return assigned | near, count + 1

    return jax.lax.while_loop(cond, body, (jnp.zeros(points.shape[0], bool), jnp.zeros((), jnp.int32)))[1]


def _class_spread(means, counts, atol):
    """(RMS distance of the present class means to their centre, that over their mean norm)."""
    m = means[np.asarray(counts) > 0]
    spread = float(np.sqrt(np.mean(np.sum((m - m.mean(0)) ** 2, axis=-1))))
    return spread, spread / max(float(np.mean(np.linalg.norm(m, axis=-1))), atol)


def attractor_regime(
    trunk: Trunk,
    x0: Float[Array, "*batch n"],
    labels: Int[Array, " *batch"] | None = None,
    *,
    depth: int = 1000,
    num_classes: int | None = None,
    tol: float = 1e-5,
    atol: float = 1e-3,
) -> Regime:
    """Label a shared-weight resnet "attractor" or "non-attractor" from a `depth`-layer run.

    The residuals of every input are run `depth` layers (`resflow.steady_state`, streamed).
    An input *converged* when its last change ‖r_{T−1} − r_{T−2}‖_∞ ≤ `tol` and every unit is
    held in pre-activation space: its next step h (W r_{T−1})_i is at most `tol` or has the sign
    of a_{T−1,i} (a unit at r_i = 1 needs (W r)_i > 0, at 0 needs (W r)_i < 0; otherwise its a_i
    drifts back linearly while r_i shows no change, and the input leaves a saddle later). **Rule:** the
    network is an attractor network when at least 95 % of the inputs converged, otherwise a
    non-attractor network (its residuals keep moving: transient, oscillating or drifting). It
    is class-independent when, in addition, the class-mean end residuals agree within `atol`
    (RMS distance to their centre). The end states are counted by greedy clustering with
    radius `atol`.

    **Arguments:**

    - `trunk`: a shared-weight resnet `Trunk`.
    - `x0`: trunk inputs ``(*batch, n)`` in the trunk's dtype.
    - `labels`: ``(*batch,)`` integer classes, or None (one class).
    - `depth`: T ≥ 2 layers (default 1000, the paper's long run).
    - `num_classes`: K (inferred when omitted).
    - `tol`: convergence threshold on the last change and on a pre-activation step back
      towards 0 (default 1e-5: float32 resolves changes of residuals near 1 down to ~6e-8,
      and an algebraic approach like 1/t to the corner r* = 0 moves r by ~1/t² ≈ 1e-6 at
      t = 1000, its a by −1/t, into the saturation).
    - `atol`: Euclidean radius of one end state.

    **Returns:** `Regime` (plain Python numbers; host-side).

    **Raises:** as `resflow.steady_state` (untied or MLP trunk, bad x0 / labels / depth / tol / atol).
    """
    steady = steady_state(trunk, x0, labels, depth=depth, num_classes=num_classes, tol=tol, atol=atol)
    final = steady.final.reshape(-1, trunk.width)
    converged = float(jnp.mean(steady.converged.astype(final.dtype)))
    clusters = int(_count_clusters(final[:PROBE], jnp.asarray(atol, final.dtype)))
    spread, dependence = _class_spread(np.asarray(steady.class_means), steady.class_counts, atol)
    attractor = converged >= ATTRACTOR_FRACTION
    return Regime(
        "attractor" if attractor else "non-attractor",
        bool(attractor and spread <= atol),
        converged,
        clusters,
        float(steady.dominant_fraction),
        spread,
        dependence,
        steady,
    )
