"""Perturbation growth along the trunk: ResNet vs MLP.

An input perturbation δx_0 evolves, to first order, along the clean trajectory as

    ResNet: δx_{t+1} = (I + h D_t W_t) δx_t,      MLP: δx_{t+1} = D_t W_t δx_t,

with D_t = diag(act'(W_t x_t + b_t)). The identity term keeps ResNet perturbations from
being forced to vanish or explode by W's spectrum; saturated residuals (D_t → 0) freeze them.
The MLP multiplies by D_t W_t at every layer.

Everything here is matrix-free: the linearised growth is the JVP of the trunk's scan
(``jax.jvp``), never an explicit Jacobian, and the nonlinear growth is the difference of a
perturbed and a clean trajectory. Draws (directions or noise) are batched with `jax.vmap`;
depth is stepped by `jax.lax.scan`. Every function takes the `Trunk` first and reads the
map (model, activation, h) from it.

Shapes: inputs ``x0`` are ``(*batch, n)``; directions are ``(draws, *batch, n)``; growths are
``(T + 1, draws, *batch)`` (entry t is the ratio at state x_t).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._checks import all_true, as_float_array, check_array, check_int, check_positive
from ..trunk._trunk import Trunk, check_depth, check_state, check_trunk, scan_trunk

__all__ = [
    "PerturbationGrowth",
    "InjectionResponse",
    "gaussian_draws",
    "random_directions",
    "linear_growth",
    "nonlinear_growth",
    "perturbation_growth",
    "injection_response",
]


class PerturbationGrowth(NamedTuple):
    """Growth ratios of input perturbations along depth.

    - `linear`: ``(T + 1, draws, *batch)``, ||δx_t|| / ||δx_0|| of the linearised map (JVP).
    - `nonlinear`: ``(T + 1, draws, *batch)``, ||x_t(x_0 + σd) − x_t(x_0)|| / ||σd||.
    """

    linear: Float[Array, "T1 draws *batch"]
    nonlinear: Float[Array, "T1 draws *batch"]


class InjectionResponse(NamedTuple):
    """Effect on the output x_T of a perturbation δ = σ d added to the state x_s.

    - `layers`: ``(T + 1,)``, the injection layers s = 0 … T (s = 0 is the input, s = T the output).
    - `linear`: ``(T + 1, draws, *batch)``, ||J_{T←s} d|| / ||d|| with J_{T←s} = ∂x_T/∂x_s (JVP).
    - `nonlinear`: ``(T + 1, draws, *batch)``, ||Δx_T|| / ||δ||.
    - `output_change`: ``(T + 1, draws, *batch)``, ||Δx_T|| itself.
    """

    layers: Float[Array, " T1"]
    linear: Float[Array, "T1 draws *batch"]
    nonlinear: Float[Array, "T1 draws *batch"]
    output_change: Float[Array, "T1 draws *batch"]


def check_key(key) -> None:
    """A single `jax.random` key (typed, or a raw uint32 ``(2,)``), or a `TypeError` naming `key`."""
    dtype, shape = getattr(key, "dtype", None), getattr(key, "shape", None)
    typed = dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key) and shape == ()
    raw = dtype == jnp.uint32 and shape == (2,)
    if not (typed or raw):
        raise TypeError(
            "key must be a single jax.random key (jax.random.key(seed), or a raw uint32 (2,) key from "
            f"jax.random.PRNGKey), got {type(key).__name__}"
            + (f" of dtype {dtype} and shape {shape}" if dtype is not None else f" {key!r}")
        )


def gaussian_draws(key: jax.Array, shape: tuple[int, ...], num_draws: int, dtype) -> Float[Array, "draws ..."]:
    """ε_k ~ N(0, I) of the given shape for k < num_draws, draw k from ``split(key, num_draws)[k]``.

    The one implementation of the batched noise draws (perturbation directions and the
    input noise of `resflow.noise_accuracy`): draw k depends only on the k-th split key, so
    the first draws are the same whatever `num_draws` is. Unchecked; jit-able (`shape`,
    `num_draws` and `dtype` static).
    """
    return jax.vmap(lambda k: jax.random.normal(k, shape, dtype))(jax.random.split(key, num_draws))


def random_directions(key: jax.Array, x0: Float[Array, "*batch n"], num_draws: int) -> Float[Array, "draws *batch n"]:
    """Standard Gaussian directions d ~ N(0, I), one per draw and input (`gaussian_draws`).

    The same `key` gives the same directions for a ResNet and an MLP.

    **Arguments:** `key` (a `jax.random` key), `x0` (inputs ``(*batch, n)``: shape and
    dtype of each draw), `num_draws` (≥ 1).

    **Returns:** ``(num_draws, *x0.shape)`` in the dtype of `x0`.

    **Raises:** `TypeError` unless `key` is a `jax.random` key (typed, from ``jax.random.key``, or
    a raw uint32 ``(2,)`` key from ``jax.random.PRNGKey``); `ValueError`/`TypeError` for
    ``num_draws < 1``.
    """
    check_key(key)
    num_draws = check_int("num_draws", num_draws)
    x0 = jnp.asarray(x0)
    return gaussian_draws(key, x0.shape, num_draws, x0.dtype)


def _nonzero_finite(xp, d):
    return xp.isfinite(d) & (xp.abs(d).max(axis=-1, keepdims=True) > 0)


def _prepare(trunk, x0, depth, directions, key, num_draws):
    """The public boundary: (trunk, x0, depth, directions) checked with one value read."""
    trunk = check_trunk(trunk)
    x0 = as_float_array("x0", x0)
    # Shapes and dtypes only: under eval_shape x0 is abstract, so no value is read here.
    jax.eval_shape(functools.partial(check_state, trunk), x0)
    depth = check_depth(trunk, depth)
    checks = {"x0": (x0, lambda xp, a: xp.isfinite(a))}
    if directions is None:
        if key is None:
            raise ValueError("give either directions (draws, *x0.shape) or a jax.random key to draw them")
        d = random_directions(key, x0, num_draws)
    else:
        d = as_float_array("directions", directions)
        if d.ndim < 2 or d.shape[1:] != x0.shape:
            raise ValueError(
                f"directions must have shape (draws, *x0.shape) = (draws, {', '.join(map(str, x0.shape))}), "
                f"got {d.shape}"
            )
        d = d.astype(x0.dtype)
        checks["directions"] = (d, _nonzero_finite)
    if not all_true(checks):
        check_state(trunk, x0)
        check_array("directions", d)
        raise ValueError("directions must be non-zero for every draw and input (the growth divides by ||d||)")
    return trunk, x0, d, depth


def _norm(v):
    return jnp.linalg.norm(v, axis=-1)


def _trajectory(trunk, x, depth):
    return scan_trunk(trunk, x, depth=depth, keep=True)


@functools.partial(jax.jit, static_argnames="depth")
def _linear(trunk, x0, directions, *, depth):
    def one(d):
        # The primal x0 is not batched under vmap, so the clean trajectory is computed once.
        _, dx = jax.jvp(lambda x: _trajectory(trunk, x, depth), (x0,), (d,))
        return _norm(dx) / _norm(d)

    return jnp.moveaxis(jax.vmap(one)(directions), 0, 1)


@functools.partial(jax.jit, static_argnames="depth")
def _nonlinear(trunk, x0, directions, sigma, *, depth):
    clean = _trajectory(trunk, x0, depth)
    sigma = jnp.asarray(sigma, x0.dtype)

    def one(d):
        return _norm(_trajectory(trunk, x0 + sigma * d, depth) - clean) / (sigma * _norm(d))

    return jnp.moveaxis(jax.vmap(one)(directions), 0, 1)


def linear_growth(
    trunk: Trunk,
    x0: Float[Array, "*batch n"],
    *,
    depth: int | None = None,
    directions: Float[Array, "draws *batch n"] | None = None,
    key: jax.Array | None = None,
    num_draws: int = 8,
) -> Float[Array, "T1 draws *batch"]:
    """Linearised growth ||δx_t|| / ||δx_0|| along the clean trajectory from x0.

    δx_{t+1} = (I + h D_t W_t) δx_t (ResNet) or D_t W_t δx_t (MLP), D_t = diag(act'(W_t x_t + b_t)),
    δx_0 = d; computed as ``jax.jvp`` of the trunk's scan (matrix-free, O(n²) per layer).

    **Arguments:**

    - `trunk`: the `Trunk` (shared or untied; its model, activation and h define the map).
    - `x0`: clean inputs ``(*batch, n)`` in the trunk's dtype.
    - `depth`: T, as in `resflow.trajectory` (required for shared weights).
    - `directions`: ``(draws, *batch, n)`` perturbation directions d (non-zero); if ``None``,
      `num_draws` standard Gaussian draws from `key` (`random_directions`).
    - `key`, `num_draws`: used only when `directions` is ``None``.

    **Returns:** ``(T + 1, draws, *batch)``; entry 0 is 1.

    **Raises:** `ValueError`/`TypeError` for a non-trunk, bad inputs or depth (as
    `resflow.trajectory`), directions of the wrong shape, non-finite or with a zero row,
    neither directions nor key, or a bad key. One value read per call.
    """
    trunk, x0, d, depth = _prepare(trunk, x0, depth, directions, key, num_draws)
    return _linear(trunk, x0, d, depth=depth)


def nonlinear_growth(
    trunk: Trunk,
    x0: Float[Array, "*batch n"],
    *,
    depth: int | None = None,
    directions: Float[Array, "draws *batch n"] | None = None,
    sigma=1e-2,
    key: jax.Array | None = None,
    num_draws: int = 8,
) -> Float[Array, "T1 draws *batch"]:
    """True growth ||x_t(x_0 + σ d) − x_t(x_0)|| / ||σ d|| of a finite perturbation δ = σ d.

    With Gaussian d ~ N(0, I) this is additive input noise of standard deviation σ per
    component. As σ → 0 it tends to `linear_growth` with the same directions.

    **Arguments:** those of `linear_growth`, and `sigma`, the noise scale σ > 0.

    **Returns:** ``(T + 1, draws, *batch)``; entry 0 is 1.

    **Raises:** as `linear_growth`, and `ValueError` for σ ≤ 0.
    """
    check_positive("sigma", sigma)
    trunk, x0, d, depth = _prepare(trunk, x0, depth, directions, key, num_draws)
    return _nonlinear(trunk, x0, d, sigma, depth=depth)


def perturbation_growth(
    trunk: Trunk,
    x0: Float[Array, "*batch n"],
    *,
    depth: int | None = None,
    directions: Float[Array, "draws *batch n"] | None = None,
    sigma=1e-2,
    key: jax.Array | None = None,
    num_draws: int = 8,
) -> PerturbationGrowth:
    """Linearised and nonlinear growth for the same directions (`linear_growth`, `nonlinear_growth`).

    **Arguments:** those of `nonlinear_growth`.

    **Returns:** `PerturbationGrowth` (``linear``, ``nonlinear``), each ``(T + 1, draws, *batch)``.

    **Raises:** as `nonlinear_growth`.
    """
    check_positive("sigma", sigma)
    trunk, x0, d, depth = _prepare(trunk, x0, depth, directions, key, num_draws)
    return PerturbationGrowth(_linear(trunk, x0, d, depth=depth), _nonlinear(trunk, x0, d, sigma, depth=depth))


@functools.partial(jax.jit, static_argnames="depth")
def _injection(trunk, x0, directions, sigma, *, depth):
    states = _trajectory(trunk, x0, depth)
    clean_out = states[-1]
    sigma = jnp.asarray(sigma, x0.dtype)

    def from_layer(s):
        # Layers s … T-1 run as the first T - s layers of a trunk whose untied layers are shifted
        # by s; the rest are masked to the identity by active_depth, so one compile serves every s.
        shifted = trunk
        if not trunk.shared:
            idx = (jnp.arange(trunk.W.shape[0]) + s) % trunk.W.shape[0]
            shifted = eqx.tree_at(lambda t: (t.W, t.b), trunk, (trunk.W[idx], trunk.b[idx]))

        def run(x):
            return scan_trunk(shifted, x, depth - s, depth=depth, keep=False)

        xs = states[s]

        def one(d):
            _, jd = jax.jvp(run, (xs,), (d,))
            change = _norm(run(xs + sigma * d) - clean_out)
            dn = _norm(d)
            return _norm(jd) / dn, change / (sigma * dn), change

        return jax.vmap(one)(directions)

    lin, nonlin, change = jax.vmap(from_layer)(jnp.arange(depth + 1))
    return InjectionResponse(jnp.arange(depth + 1), lin, nonlin, change)


def injection_response(
    trunk: Trunk,
    x0: Float[Array, "*batch n"],
    *,
    depth: int | None = None,
    directions: Float[Array, "draws *batch n"] | None = None,
    sigma=1e-2,
    key: jax.Array | None = None,
    num_draws: int = 8,
) -> InjectionResponse:
    """Output change ||Δx_T|| when δ = σ d is added to the state x_s, for every layer s = 0 … T.

    The perturbed run is x'_s = x_s + δ, x'_{t+1} = layer_t(x'_t) for t = s … T-1, and
    Δx_T = x'_T − x_T. s = T perturbs the output itself (Δx_T = δ). In a ResNet early
    injections tend to move the output more than late ones: x_T = x_s + h Σ_{t≥s} r_t, so a
    change of the residuals made at layer s is integrated over the T − s layers after it.
    Cost O(T²) layer evaluations (all s batched with vmap).

    **Arguments:** those of `nonlinear_growth` (`sigma` is the perturbation scale σ > 0).

    **Returns:** `InjectionResponse` (``layers``, ``linear``, ``nonlinear``, ``output_change``).

    **Raises:** as `nonlinear_growth`.
    """
    check_positive("sigma", sigma)
    trunk, x0, d, depth = _prepare(trunk, x0, depth, directions, key, num_draws)
    return _injection(trunk, x0, d, sigma, depth=depth)
