"""Perturbation growth along the trunk: ResNet vs MLP (science.md §5, §6).

An input perturbation δx_0 evolves, to first order, along the clean trajectory as

    ResNet: δx_{t+1} = (I + h D_t W_t) δx_t,      MLP: δx_{t+1} = D_t W_t δx_t,

with D_t = diag(act'(W_t x_t + b_t)). The identity term keeps ResNet perturbations from
being forced to vanish or explode by W's spectrum; saturated residuals (D_t → 0) freeze them.
The MLP multiplies by D_t W_t at every layer.

Everything here is matrix-free: the linearised growth is the JVP of `resflow.trajectory`
(``jax.jvp``), never an explicit Jacobian, and the nonlinear growth is the difference of a
perturbed and a clean trajectory. Draws (directions or noise) are batched with `jax.vmap`;
depth is stepped by `jax.lax.scan` inside `resflow.trajectory` / `resflow.forward`.

Shapes: inputs ``x0`` are ``(*batch, n)``; directions are ``(draws, *batch, n)``; growths are
``(T + 1, draws, *batch)`` (entry t is the ratio at state x_t).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ._checks import check_array, check_int, check_positive, is_concrete
from .model import Model, TrunkParams, _check_inputs, forward, is_shared, trajectory

__all__ = [
    "PerturbationGrowth",
    "InjectionResponse",
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


def _check_key(key):
    dtype, shape = getattr(key, "dtype", None), getattr(key, "shape", None)
    typed = dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key) and shape == ()
    raw = dtype == jnp.uint32 and shape == (2,)
    if not (typed or raw):
        raise TypeError(
            "key must be a single jax.random key (jax.random.key(seed), or a raw uint32 (2,) key from "
            f"jax.random.PRNGKey), got {type(key).__name__}"
            + (f" of dtype {dtype} and shape {shape}" if dtype is not None else f" {key!r}")
        )


def random_directions(key: jax.Array, x0: Float[Array, "*batch n"], num_draws: int) -> Float[Array, "draws *batch n"]:
    """Standard Gaussian directions d ~ N(0, I), one per draw and input, from ``split(key, num_draws)``.

    Draw k depends only on the k-th split key, so the first draws are the same whatever
    `num_draws` is, and the same `key` gives the same noise for a ResNet and an MLP.

    **Raises:** `TypeError` unless `key` is a `jax.random` key (typed, from ``jax.random.key``, or
    a raw uint32 ``(2,)`` key from ``jax.random.PRNGKey``); `ValueError`/`TypeError` for
    ``num_draws < 1``.
    """
    _check_key(key)
    num_draws = check_int("num_draws", num_draws)
    x0 = jnp.asarray(x0)
    return jax.vmap(lambda k: jax.random.normal(k, x0.shape, x0.dtype))(jax.random.split(key, num_draws))


def _check_directions(directions, x0):
    d = check_array("directions", directions, min_ndim=2)
    if d.shape[1:] != x0.shape:
        raise ValueError(
            f"directions must have shape (draws, *x0.shape) = (draws, {', '.join(map(str, x0.shape))}), got {d.shape}"
        )
    if is_concrete(d) and np.any(np.linalg.norm(np.asarray(d), axis=-1) == 0):
        raise ValueError("directions must be non-zero for every draw and input (the growth divides by ||d||)")
    return d.astype(x0.dtype)


def _prepare(params, x0, directions, key, num_draws, depth, model, activation, h):
    params, x0, depth = _check_inputs(params, x0, depth, model, activation, h)
    if directions is None:
        if key is None:
            raise ValueError("give either directions (draws, *x0.shape) or a jax.random key to draw them")
        directions = random_directions(key, x0, num_draws)
    return params, x0, _check_directions(directions, x0), depth


def _norm(v):
    return jnp.linalg.norm(v, axis=-1)


@functools.partial(jax.jit, static_argnames=("depth", "model", "activation"))
def _linear(params, x0, directions, h, *, depth, model, activation):
    def traj(x):
        return trajectory(params, x, depth=depth, model=model, activation=activation, h=h)

    def one(d):
        # The primal x0 is not batched under vmap, so the clean trajectory is computed once.
        _, dx = jax.jvp(traj, (x0,), (d,))
        return _norm(dx) / _norm(d)

    return jnp.moveaxis(jax.vmap(one)(directions), 0, 1)


@functools.partial(jax.jit, static_argnames=("depth", "model", "activation"))
def _nonlinear(params, x0, directions, sigma, h, *, depth, model, activation):
    def traj(x):
        return trajectory(params, x, depth=depth, model=model, activation=activation, h=h)

    clean = traj(x0)
    sigma = jnp.asarray(sigma, x0.dtype)

    def one(d):
        return _norm(traj(x0 + sigma * d) - clean) / (sigma * _norm(d))

    return jnp.moveaxis(jax.vmap(one)(directions), 0, 1)


def linear_growth(
    params: TrunkParams,
    x0: Float[Array, "*batch n"],
    directions: Float[Array, "draws *batch n"] | None = None,
    *,
    key: jax.Array | None = None,
    num_draws: int = 8,
    depth: int | None = None,
    model: Model = "resnet",
    activation: str = "sigmoid",
    h=1.0,
) -> Float[Array, "T1 draws *batch"]:
    """Linearised growth ||δx_t|| / ||δx_0|| along the clean trajectory from x0.

    δx_{t+1} = (I + h D_t W_t) δx_t (ResNet) or D_t W_t δx_t (MLP), D_t = diag(act'(W_t x_t + b_t)),
    δx_0 = d; computed as ``jax.jvp`` of `resflow.trajectory` (matrix-free, O(n²) per layer).

    **Arguments:**

    - `params`: `TrunkParams`, shared ``(n, n)`` or untied ``(T, n, n)``.
    - `x0`: clean inputs ``(*batch, n)``.
    - `directions`: ``(draws, *batch, n)`` perturbation directions d (non-zero); if ``None``,
      `num_draws` standard Gaussian draws from `key` (`random_directions`).
    - `key`, `num_draws`: used only when `directions` is ``None``.
    - `depth`, `model`, `activation`, `h`: as in `resflow.trajectory`.

    **Returns:** ``(T + 1, draws, *batch)``; entry 0 is 1.

    **Raises:** `ValueError`/`TypeError` for bad params/inputs (as `resflow.trajectory`), directions of
    the wrong shape or with a zero row, or neither directions nor key.
    """
    params, x0, d, depth = _prepare(params, x0, directions, key, num_draws, depth, model, activation, h)
    return _linear(params, x0, d, h, depth=depth, model=model, activation=activation)


def nonlinear_growth(
    params: TrunkParams,
    x0: Float[Array, "*batch n"],
    directions: Float[Array, "draws *batch n"] | None = None,
    *,
    sigma=1e-2,
    key: jax.Array | None = None,
    num_draws: int = 8,
    depth: int | None = None,
    model: Model = "resnet",
    activation: str = "sigmoid",
    h=1.0,
) -> Float[Array, "T1 draws *batch"]:
    """True growth ||x_t(x_0 + σ d) − x_t(x_0)|| / ||σ d|| of a finite perturbation δ = σ d.

    With Gaussian d ~ N(0, I) this is additive input noise of standard deviation σ per
    component. As σ → 0 it tends to `linear_growth` with the same directions.

    **Arguments:** those of `linear_growth` (`params`, `x0`, `directions`, `key`, `num_draws`,
    `depth`, `model`, `activation`, `h`), and

    - `sigma`: noise scale σ > 0.

    **Returns:** ``(T + 1, draws, *batch)``; entry 0 is 1.

    **Raises:** as `linear_growth`, and `ValueError` for σ ≤ 0.
    """
    check_positive("sigma", sigma)
    params, x0, d, depth = _prepare(params, x0, directions, key, num_draws, depth, model, activation, h)
    return _nonlinear(params, x0, d, sigma, h, depth=depth, model=model, activation=activation)


def perturbation_growth(
    params: TrunkParams,
    x0: Float[Array, "*batch n"],
    directions: Float[Array, "draws *batch n"] | None = None,
    *,
    sigma=1e-2,
    key: jax.Array | None = None,
    num_draws: int = 8,
    depth: int | None = None,
    model: Model = "resnet",
    activation: str = "sigmoid",
    h=1.0,
) -> PerturbationGrowth:
    """Linearised and nonlinear growth for the same directions (`linear_growth`, `nonlinear_growth`).

    **Arguments:** those of `linear_growth` (`params`, `x0`, `directions`, `key`, `num_draws`,
    `depth`, `model`, `activation`, `h`), and

    - `sigma`: noise scale σ > 0 of the nonlinear perturbation σ d.

    **Returns:** `PerturbationGrowth` (``linear``, ``nonlinear``), each ``(T + 1, draws, *batch)``.

    **Raises:** as `nonlinear_growth`.
    """
    check_positive("sigma", sigma)
    params, x0, d, depth = _prepare(params, x0, directions, key, num_draws, depth, model, activation, h)
    kw = dict(depth=depth, model=model, activation=activation)
    return PerturbationGrowth(_linear(params, x0, d, h, **kw), _nonlinear(params, x0, d, sigma, h, **kw))


@functools.partial(jax.jit, static_argnames=("depth", "model", "activation"))
def _injection(params, x0, directions, sigma, h, *, depth, model, activation):
    kw = dict(depth=depth, model=model, activation=activation, h=h)
    states = trajectory(params, x0, **kw)
    clean_out = states[-1]
    sigma = jnp.asarray(sigma, x0.dtype)

    def from_layer(s):
        # Layers s … T-1 run as the first T - s layers of a trunk whose untied layers are shifted
        # by s; the rest are masked to the identity by active_depth, so one compile serves every s.
        if is_shared(params):
            shifted = params
        else:
            idx = (jnp.arange(params.W.shape[0]) + s) % params.W.shape[0]
            shifted = TrunkParams(params.W[idx], params.b[idx])

        def run(x):
            return forward(shifted, x, active_depth=depth - s, **kw)

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
    params: TrunkParams,
    x0: Float[Array, "*batch n"],
    directions: Float[Array, "draws *batch n"] | None = None,
    *,
    sigma=1e-2,
    key: jax.Array | None = None,
    num_draws: int = 8,
    depth: int | None = None,
    model: Model = "resnet",
    activation: str = "sigmoid",
    h=1.0,
) -> InjectionResponse:
    """Output change ||Δx_T|| when δ = σ d is added to the state x_s, for every layer s = 0 … T.

    The perturbed run is x'_s = x_s + δ, x'_{t+1} = layer_t(x'_t) for t = s … T-1, and
    Δx_T = x'_T − x_T. s = T perturbs the output itself (Δx_T = δ). The paper reports that
    early injections move the output more than late ones in a ResNet (science.md §6): each
    later layer adds h·r_t, so an early change in the residuals is integrated over more layers.
    Cost O(T²) layer evaluations (all s batched with vmap).

    **Arguments:** those of `linear_growth` (`params`, `x0`, `directions`, `key`, `num_draws`,
    `depth`, `model`, `activation`, `h`), and

    - `sigma`: perturbation scale σ > 0.

    **Returns:** `InjectionResponse` (``layers``, ``linear``, ``nonlinear``, ``output_change``).

    **Raises:** as `nonlinear_growth`.
    """
    check_positive("sigma", sigma)
    params, x0, d, depth = _prepare(params, x0, directions, key, num_draws, depth, model, activation, h)
    return _injection(params, x0, d, sigma, h, depth=depth, model=model, activation=activation)
