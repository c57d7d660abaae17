"""The residual trunk as a discrete dynamical system.

ResNet (explicit Euler map):  x_{t+1} = x_t + h · act(W_t x_t + b_t)
MLP baseline:                 x_{t+1} = act(W_t x_t + b_t)

with shared weights (W_t = W, b_t = b for every layer) or untied weights (one W_t, b_t per
layer, stacked along a leading depth axis). Depth is stepped with `jax.lax.scan`; the
trajectory x_0 … x_T is what every analysis in resflow consumes.
"""

from __future__ import annotations

import functools
import math
import numbers
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._checks import as_float_array, check_array, check_choice, check_int, check_positive, is_concrete
from .activations import get_activation

__all__ = [
    "MODELS",
    "TrunkParams",
    "init_trunk",
    "check_params",
    "is_shared",
    "trunk_depth",
    "layer_params",
    "step",
    "trajectory",
    "forward",
    "forward_unrolled",
]

MODELS = ("resnet", "mlp")
Model = Literal["resnet", "mlp"]


class TrunkParams(NamedTuple):
    """Parameters of the residual trunk (a pytree).

    Shared weights: ``W`` is ``(n, n)`` and ``b`` is ``(n,)``; the same layer is applied at
    every depth. Untied weights: ``W`` is ``(T, n, n)`` and ``b`` is ``(T, n)``, one layer per
    depth. ``W[i, j]`` is the weight from unit j to unit i, so the pre-activation of unit i is
    ``(W x)_i = Σ_j W[i, j] x_j``.
    """

    W: Float[Array, "n n"] | Float[Array, "depth n n"]
    b: Float[Array, " n"] | Float[Array, "depth n"]


def is_shared(params: TrunkParams) -> bool:
    """True for shared weights (``W`` of rank 2), False for untied (rank 3)."""
    return jnp.ndim(params.W) == 2


def trunk_depth(params: TrunkParams) -> int | None:
    """Number of stacked layers of untied params; ``None`` for shared weights."""
    return None if is_shared(params) else params.W.shape[0]


def layer_params(params: TrunkParams, t: int) -> TrunkParams:
    """The ``(W_t, b_t)`` of layer `t` (the same pair for every t when shared)."""
    return params if is_shared(params) else TrunkParams(params.W[t], params.b[t])


def init_trunk(
    key: jax.Array,
    width: int,
    *,
    shared: bool = True,
    depth: int | None = None,
    w_std: float = 1.0,
    b_std: float = 0.0,
    dtype=None,
) -> TrunkParams:
    """Random trunk parameters.

    W_ij ~ N(0, w_std² / width), b_i ~ N(0, b_std²). Untied layers draw from keys
    ``jax.random.split(key, depth)``, so layer t is the same whatever the total depth.

    **Arguments:**

    - `key`: a `jax.random` key.
    - `width`: n, the number of units (one residual per unit).
    - `shared`: one layer for every depth (True) or one per layer (False).
    - `depth`: number of layers; required when ``shared=False``, ignored otherwise.
    - `w_std`, `b_std`: scales of the weights and biases.
    - `dtype`: floating dtype of the parameters (default: JAX's default float, i.e. float32,
      or float64 when ``jax_enable_x64`` is on, the dtype ``jnp.ones`` would give).

    **Returns:** `TrunkParams`.

    **Raises:** `ValueError`/`TypeError` for a width or depth < 1, or a missing depth.
    """
    width = check_int("width", width)
    if not shared:
        if depth is None:
            raise ValueError("depth must be given for untied weights (shared=False)")
        depth = check_int("depth", depth)
    dtype = jnp.result_type(float) if dtype is None else dtype
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"dtype must be a floating dtype, got {dtype}")
    check_positive("w_std", w_std, allow_zero=True)
    check_positive("b_std", b_std, allow_zero=True)

    def one(k):
        kw, kb = jax.random.split(k)
        W = jax.random.normal(kw, (width, width), dtype) * (w_std / jnp.sqrt(width)).astype(dtype)
        b = jax.random.normal(kb, (width,), dtype) * jnp.asarray(b_std, dtype)
        return TrunkParams(W, b)

    if shared:
        return one(key)
    return jax.vmap(one)(jax.random.split(key, depth))


def step(
    layer: TrunkParams,
    x: Float[Array, "*batch n"],
    *,
    model: Model = "resnet",
    activation: str = "sigmoid",
    h=1.0,
) -> Float[Array, "*batch n"]:
    """One layer of the trunk: ``x + h·act(W x + b)`` (resnet) or ``act(W x + b)`` (mlp).

    `layer` holds a single ``W (n, n)``, ``b (n,)``. No validation: this is the inner map
    that users hand to the generic dynamics tools, e.g.
    ``functools.partial(step, params)``.
    """
    act = get_activation(activation).fn
    r = act(x @ layer.W.T + layer.b)
    return x + h * r if model == "resnet" else r


def check_params(params) -> TrunkParams:
    """Validated `TrunkParams`: W ``(n, n)`` or ``(T, n, n)``, matching b, finite values."""
    if not isinstance(params, TrunkParams):
        raise TypeError(f"params must be a resflow.TrunkParams, got {type(params).__name__}")
    W = as_float_array("params.W", params.W)
    if W.ndim not in (2, 3) or W.shape[-1] != W.shape[-2]:
        raise ValueError(f"params.W must be (n, n) (shared) or (depth, n, n) (untied), got shape {W.shape}")
    check_array("params.W", W)
    b = check_array("params.b", params.b)
    if b.shape != W.shape[:-1]:
        raise ValueError(f"params.b must have shape {W.shape[:-1]} to match params.W {W.shape}, got {b.shape}")
    if b.dtype != W.dtype:
        raise TypeError(f"params.b has dtype {b.dtype} but params.W has {W.dtype}: give both the same dtype")
    return TrunkParams(W, b)


def _check_active_depth(active_depth, depth: int) -> None:
    if active_depth is None:
        return
    if isinstance(active_depth, bool) or not (
        isinstance(active_depth, numbers.Integral)
        or (hasattr(active_depth, "dtype") and jnp.issubdtype(active_depth.dtype, jnp.integer))
    ):
        raise TypeError(f"active_depth must be an integer (or an integer array scalar), got {active_depth!r}")
    if jnp.ndim(active_depth) != 0:
        raise ValueError(f"active_depth must be a scalar, got shape {jnp.shape(active_depth)}")
    if is_concrete(active_depth) and not 0 <= int(active_depth) <= depth:
        raise ValueError(f"active_depth must be in [0, depth] = [0, {depth}], got {int(active_depth)}")


def _check_inputs(params, x0, depth, model, activation, h, *, active_depth=None, unroll=1):
    params = check_params(params)
    W = params.W
    n = W.shape[-1]
    x0 = check_array("x0", x0, last_dim=n)
    if x0.dtype != W.dtype:
        # Mixed dtypes would either fail inside lax.scan (carry types differ) or silently
        # promote the whole trajectory; the caller decides which precision they want.
        raise TypeError(f"x0 has dtype {x0.dtype} but params.W has {W.dtype}: cast one, e.g. x0.astype(params.W.dtype)")
    check_int("unroll", unroll)
    check_choice("model", model, MODELS)
    get_activation(activation)
    check_positive("h", h)
    if W.ndim == 2:
        if depth is None:
            raise ValueError("depth must be given for shared weights (an integer >= 1)")
        depth = check_int("depth", depth)
    else:
        stacked = W.shape[0]
        depth = stacked if depth is None else check_int("depth", depth)
        if depth > stacked:
            raise ValueError(f"depth must be <= {stacked}, the number of untied layers, got {depth}")
    _check_active_depth(active_depth, depth)
    return params, x0, depth


@functools.partial(jax.jit, static_argnames=("depth", "model", "activation", "unroll", "keep", "remat"))
def _scan(params, x0, h, active_depth, *, depth, model, activation, unroll, keep, remat=False):
    shared = params.W.ndim == 2
    h = jnp.asarray(h, x0.dtype)
    ts = jnp.arange(depth)
    layers = None if shared else TrunkParams(params.W[:depth], params.b[:depth])
    if remat:
        # ⌊T/s⌋ segments of s = ⌊√T⌋ layers, then the remaining T mod s layers.
        seg = math.isqrt(depth)
        num_seg = depth // seg
        split = num_seg * seg

        def head(a):
            return a[:split].reshape((num_seg, seg) + a.shape[1:])

        seg_xs = jax.tree.map(head, (ts, layers))
        rest_xs = jax.tree.map(lambda a: a[split:], (ts, layers))

    def body(x, xs):
        t, layer = xs
        layer = layer if layer is not None else params

        def apply(x):
            return step(layer, x, model=model, activation=activation, h=h)

        if active_depth is None:
            x_new = apply(x)
        else:
            # cond, not where: inactive layers skip their matmul (under vmap it becomes a select).
            x_new = jax.lax.cond(t < active_depth, apply, lambda x: x, x)
        return x_new, (x_new if keep else None)

    if remat:
        # The backward pass stores only the state at each segment boundary and recomputes
        # the layers inside a segment: O(√T) states instead of O(T).
        @jax.checkpoint
        def segment(x, xs):
            return jax.lax.scan(body, x, xs, unroll=unroll)[0]

        xT = jax.lax.scan(lambda x, xs: (segment(x, xs), None), x0, seg_xs)[0]
        return jax.lax.scan(body, xT, rest_xs)[0] if split < depth else xT
    xT, xs = jax.lax.scan(body, x0, (ts, layers), unroll=unroll)
    if keep:
        return jnp.concatenate([x0[None], xs], axis=0)
    return xT


def trajectory(
    params: TrunkParams,
    x0: Float[Array, "*batch n"],
    *,
    depth: int | None = None,
    model: Model = "resnet",
    activation: str = "sigmoid",
    h=1.0,
    active_depth=None,
    unroll: int = 1,
) -> Float[Array, "depth_plus_1 *batch n"]:
    """All states x_0 … x_T of the trunk, stepped with `jax.lax.scan`.

    ResNet: x_{t+1} = x_t + h·act(W_t x_t + b_t); MLP: x_{t+1} = act(W_t x_t + b_t).

    **Arguments:**

    - `params`: `TrunkParams`, shared ``(n, n)`` or untied ``(T, n, n)``.
    - `x0`: initial state(s), shape ``(n,)`` or ``(*batch, n)``.
    - `depth`: T, the number of layers; required for shared weights; for untied weights
      defaults to the number of stacked layers and may be smaller (first `depth` layers).
    - `model`: ``"resnet"`` or ``"mlp"``.
    - `activation`: ``"sigmoid"`` (default), ``"tanh"`` or ``"relu"``.
    - `h`: Euler step size > 0 (resnet only; the paper's network is h = 1).
    - `active_depth`: optional integer (may be traced) ≤ T: layers t ≥ active_depth are the
      identity, so a changing depth needs no recompilation.
    - `unroll`: passed to `jax.lax.scan`.

    **Returns:** array ``(T + 1, *batch, n)``; entry t is x_t.

    **Raises:** `ValueError`/`TypeError` for wrong shapes, non-finite values, h ≤ 0,
    depth < 1 or an unknown model/activation.
    """
    params, x0, depth = _check_inputs(params, x0, depth, model, activation, h, active_depth=active_depth, unroll=unroll)
    return _scan(params, x0, h, active_depth, depth=depth, model=model, activation=activation, unroll=unroll, keep=True)


def forward(
    params: TrunkParams,
    x0: Float[Array, "*batch n"],
    *,
    depth: int | None = None,
    model: Model = "resnet",
    activation: str = "sigmoid",
    h=1.0,
    active_depth=None,
    unroll: int = 1,
    remat: bool = False,
) -> Float[Array, "*batch n"]:
    """The final state x_T only (same map and arguments as `trajectory`, nothing stored).

    `remat=True` is for training deep trunks: the layers run in segments of ⌊√T⌋ under
    `jax.checkpoint`, so the backward pass keeps O(√T) states instead of O(T) and recomputes
    the rest (same values; see benchmarks/README.md for the memory and time it trades).
    """
    params, x0, depth = _check_inputs(params, x0, depth, model, activation, h, active_depth=active_depth, unroll=unroll)
    if not isinstance(remat, bool):
        raise TypeError(f"remat must be a bool, got {remat!r}")
    return _scan(
        params,
        x0,
        h,
        active_depth,
        depth=depth,
        model=model,
        activation=activation,
        unroll=unroll,
        keep=False,
        remat=remat,
    )


@functools.partial(jax.jit, static_argnames=("depth", "model", "activation"))
def _unrolled(params, x0, h, *, depth, model, activation):
    h = jnp.asarray(h, x0.dtype)
    x = x0
    for t in range(depth):  # deliberately unrolled: the baseline of benchmarks/scan_vs_unrolled.py
        x = step(layer_params(params, t), x, model=model, activation=activation, h=h)
    return x


def forward_unrolled(
    params: TrunkParams,
    x0: Float[Array, "*batch n"],
    *,
    depth: int | None = None,
    model: Model = "resnet",
    activation: str = "sigmoid",
    h=1.0,
) -> Float[Array, "*batch n"]:
    """`forward` written as a Python loop under `jax.jit` (compile time grows with depth).

    Exists only as the baseline for the scan-vs-unrolled benchmark; gives the same x_T.
    """
    params, x0, depth = _check_inputs(params, x0, depth, model, activation, h)
    return _unrolled(params, x0, h, depth=depth, model=model, activation=activation)
