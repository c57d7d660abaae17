"""The residual trunk as a discrete dynamical system: one typed value, `Trunk`.

ResNet (explicit Euler map):  x_{t+1} = x_t + h · act(W_t x_t + b_t)
MLP baseline:                 x_{t+1} = act(W_t x_t + b_t)

with shared weights (W_t = W, b_t = b for every layer) or untied weights (one W_t, b_t per
layer, stacked along a leading depth axis). A `Trunk` carries the whole map: its arrays
(``W``, ``b``, ``h``) and, as static fields, the model and the activation. Every network
analysis in resflow takes a trunk first and reads the map from it, so a network cannot be
analysed under options it was not trained with.

Depth is not a field: it is an argument of the calls (``depth=``, and a traced
``active_depth=`` that masks layers without recompiling). Depth is stepped with
`jax.lax.scan`.
"""

from __future__ import annotations

import functools
import math
import numbers
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._checks import all_true, as_float_array, check_array, check_choice, check_int, check_positive, is_concrete
from ._activations import get_activation

__all__ = ["Trunk", "trajectory", "forward"]

MODELS = ("resnet", "mlp")
Model = Literal["resnet", "mlp"]


class Trunk(eqx.Module):
    """The trunk's map x ↦ x + h·act(W x + b) (resnet) or x ↦ act(W x + b) (mlp): a pytree.

    Array leaves: ``W``, ``b`` and ``h`` (so `jax.grad`, `jax.vmap` and sweeps reach all
    three). Static fields: ``model`` and ``activation``. ``W[i, j]`` is the weight from unit
    j to unit i, so the pre-activation of unit i is ``(W x)_i = Σ_j W[i, j] x_j``.

    Shared weights: ``W`` is ``(n, n)`` and ``b`` is ``(n,)``; the same layer is applied at
    every depth. Untied weights: ``W`` is ``(T, n, n)`` and ``b`` is ``(T, n)``.

    **Arguments:**

    - `W`, `b`: the weights and biases, of one floating dtype.
    - `h`: the Euler step size, > 0 (used by the resnet only; the paper's network has h = 1).
    - `model`: ``"resnet"`` (default) or ``"mlp"``.
    - `activation`: ``"sigmoid"`` (default, the paper's), ``"tanh"`` or ``"relu"``.

    **Raises:** `TypeError`/`ValueError` naming the field, for wrong shapes (a width of 0
    too), mixed dtypes, non-finite values, h ≤ 0 or an unknown model/activation. All checks run here, once;
    value checks need concrete arrays and are skipped for tracers (a trunk built under
    `jax.jit` is checked for shapes and dtypes only). One value read per construction.
    """

    W: Float[Array, "n n"] | Float[Array, "depth n n"]
    b: Float[Array, " n"] | Float[Array, "depth n"]
    h: Float[Array, ""]
    model: str = eqx.field(static=True)
    activation: str = eqx.field(static=True)

    def __init__(self, W, b, h=1.0, *, model: Model = "resnet", activation: str = "sigmoid"):
        W = as_float_array("W", W)
        if W.ndim not in (2, 3) or W.shape[-1] != W.shape[-2]:
            raise ValueError(f"W must be (n, n) (shared) or (depth, n, n) (untied), got shape {W.shape}")
        if W.shape[-1] == 0:
            raise ValueError(f"W must have a width n >= 1, got shape {W.shape}")
        b = as_float_array("b", b)
        if b.shape != W.shape[:-1]:
            raise ValueError(f"b must have shape {W.shape[:-1]} to match W {W.shape}, got {b.shape}")
        if b.dtype != W.dtype:
            raise TypeError(f"b has dtype {b.dtype} but W has {W.dtype}: give both the same dtype")
        # A 0-d numpy array is what a checkpoint or np.float64 arithmetic hands back.
        if isinstance(h, bool) or not isinstance(h, numbers.Real | jax.Array | np.ndarray):
            raise TypeError(f"h must be a real number > 0, got {h!r}")
        if jnp.ndim(h) != 0:
            raise ValueError(f"h must be a scalar, got shape {jnp.shape(h)}")
        h = jnp.asarray(h, W.dtype)
        check_choice("model", model, MODELS)
        get_activation(activation)
        arrays = {"W": W, "b": b, "h": h}
        if all(is_concrete(a) for a in arrays.values()):
            ok = {"W": lambda xp, a: xp.isfinite(a), "b": lambda xp, a: xp.isfinite(a)}
            ok["h"] = lambda xp, a: xp.isfinite(a) & (a > 0)
            if not all_true({k: (arrays[k], ok[k]) for k in arrays}):
                check_array("W", W)
                check_array("b", b)
                check_positive("h", h)
        self.W, self.b, self.h = W, b, h
        self.model, self.activation = model, activation

    @classmethod
    def init(
        cls,
        key: jax.Array,
        width: int,
        *,
        shared: bool = True,
        depth: int | None = None,
        w_std: float = 1.0,
        b_std: float = 0.0,
        h: float = 1.0,
        model: Model = "resnet",
        activation: str = "sigmoid",
        dtype=None,
    ) -> Trunk:
        """A random trunk: W_ij ~ N(0, w_std² / width), b_i ~ N(0, b_std²).

        Untied layers draw from keys ``jax.random.split(key, depth)``, so layer t is the
        same whatever the total depth.

        **Arguments:**

        - `key`: a `jax.random` key.
        - `width`: n, the number of units (one residual per unit).
        - `shared`: one layer for every depth (True) or one per layer (False).
        - `depth`: number of untied layers; required when ``shared=False``, refused otherwise.
        - `w_std`, `b_std`: scales of the weights and biases (≥ 0).
        - `h`, `model`, `activation`: the map (see `Trunk`).
        - `dtype`: floating dtype (default: JAX's default float, float32 or, with
          ``jax_enable_x64``, float64).

        **Returns:** a `Trunk`.

        **Raises:** `TypeError`/`ValueError` for a width or depth < 1, a depth given for
        shared weights or missing for untied ones, negative scales or a non-float dtype.
        """
        width = check_int("width", width)
        if shared and depth is not None:
            raise ValueError("depth is for untied weights (shared=False); a shared trunk takes depth in each call")
        if not shared:
            if depth is None:
                raise ValueError("depth must be given for untied weights (shared=False)")
            depth = check_int("depth", depth)
        dtype = jnp.result_type(float) if dtype is None else jnp.dtype(dtype)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(f"dtype must be a floating dtype, got {dtype}")
        check_positive("w_std", w_std, allow_zero=True)
        check_positive("b_std", b_std, allow_zero=True)
        W, b = init_arrays(key, width, depth=None if shared else depth, w_std=w_std, b_std=b_std, dtype=dtype)
        return cls(W, b, h, model=model, activation=activation)

    @property
    def width(self) -> int:
        """n, the number of units."""
        return self.W.shape[-1]

    @property
    def shared(self) -> bool:
        """True for shared weights (``W`` of rank 2), False for untied (rank 3)."""
        return self.W.ndim == 2

    @property
    def num_layers(self) -> int | None:
        """Number of stacked untied layers; ``None`` for shared weights (any depth)."""
        return None if self.shared else self.W.shape[0]

    @property
    def dtype(self):
        return self.W.dtype

    def layer(self, t: int) -> Trunk:
        """The shared trunk of layer `t` alone (itself when the weights are shared).

        **Raises:** `IndexError` for an integer `t` outside the untied layers (JAX indexing
        would silently clamp it to the last layer); a traced `t` is not checked.
        """
        if self.shared:
            return self
        if isinstance(t, numbers.Integral) and not -self.num_layers <= t < self.num_layers:
            raise IndexError(f"layer {t} is out of range for a trunk of {self.num_layers} untied layers")
        return eqx.tree_at(lambda s: (s.W, s.b), self, (self.W[t], self.b[t]))

    def truncate(self, depth: int) -> Trunk:
        """The first `depth` layers (untied weights are sliced; a shared trunk is unchanged).

        **Raises:** `ValueError` if `depth` < 1 or exceeds the untied layers.
        """
        depth = check_depth(self, depth)
        if self.shared:
            return self
        return eqx.tree_at(lambda s: (s.W, s.b), self, (self.W[:depth], self.b[:depth]))

    def astype(self, dtype) -> Trunk:
        """The same map in another floating dtype."""
        return Trunk(
            self.W.astype(dtype),
            self.b.astype(dtype),
            self.h.astype(dtype),
            model=self.model,
            activation=self.activation,
        )

    def step(self, x: Float[Array, "*batch n"]) -> Float[Array, "*batch n"]:
        """One layer of a shared trunk: ``x + h·act(W x + b)`` (resnet) or ``act(W x + b)``.

        A plain callable (and a pytree, as an equinox bound method) to hand to the generic
        tools: ``rf.lyapunov_spectrum(trunk.step, x0, ...)``. Unchecked. For untied weights
        use ``trunk.layer(t).step``.
        """
        if not self.shared:
            raise ValueError("step needs shared weights; for untied weights use trunk.layer(t).step")
        return apply_layer(self, self.W, self.b, x)


@functools.partial(jax.jit, static_argnames=("width", "depth", "dtype"))  # one program, not one per op
def init_arrays(key, width: int, *, depth: int | None, w_std, b_std, dtype):
    """(W, b) ~ N(0, w_std²/width), N(0, b_std²); one layer, or `depth` stacked ones. Unchecked."""

    def one(k):
        kw, kb = jax.random.split(k)
        W = jax.random.normal(kw, (width, width), dtype) * (w_std / jnp.sqrt(width)).astype(dtype)
        b = jax.random.normal(kb, (width,), dtype) * jnp.asarray(b_std, dtype)
        return W, b

    if depth is None:
        return one(key)
    return jax.vmap(one)(jax.random.split(key, depth))


def layer_residual(trunk: Trunk, W, b, x):
    """r = act(W x + b) of one layer with weights (W, b): the one layer kernel. Unchecked."""
    return get_activation(trunk.activation).fn(x @ jnp.swapaxes(W, -1, -2) + b)


def apply_layer(trunk: Trunk, W, b, x):
    """One layer with weights (W, b) under the trunk's map. Unchecked."""
    r = layer_residual(trunk, W, b, x)
    return x + trunk.h * r if trunk.model == "resnet" else r


def depth_weights(trunk: Trunk, depth: int, extra: int = 0):
    """(W_t, b_t) for t < depth, broadcastable against ``(depth, *batch, n[, n])``.

    Shared weights come back unchanged (they broadcast over every leading axis); untied
    weights are sliced to `depth` layers with `extra` singleton batch axes after the depth
    axis. The one place per-layer weights are laid out. Unchecked.
    """
    if trunk.shared:
        return trunk.W, trunk.b
    W, b = trunk.W[:depth], trunk.b[:depth]
    ones = (1,) * extra
    return W.reshape((depth,) + ones + W.shape[-2:]), b.reshape((depth,) + ones + b.shape[-1:])


def check_trunk(trunk, name: str = "trunk") -> Trunk:
    """`trunk` itself, or a `TypeError` naming `name` (its values were checked when it was built)."""
    if not isinstance(trunk, Trunk):
        raise TypeError(f"{name} must be a resflow.Trunk, got {type(trunk).__name__}")
    return trunk


def require_shared(trunk: Trunk, what: str) -> Trunk:
    """`trunk` if its weights are shared, else a `ValueError` saying that `what` needs them."""
    if not trunk.shared:
        raise ValueError(
            f"{what} needs a trunk with shared weights (W of shape (n, n)), got W of shape {trunk.W.shape}"
        )
    return trunk


def require_logistic(trunk: Trunk, what: str) -> Trunk:
    """`trunk` if it is a logistic resnet. The residual-map formulas use σ' = r(1 − r) and
    the Euler form x + h·r, true of the sigmoid resnet only."""
    if trunk.activation != "sigmoid" or trunk.model != "resnet":
        raise ValueError(
            f"{what} needs a resnet trunk with activation 'sigmoid' (the residual map "
            f"r_{{t+1}} = σ(σ⁻¹(r_t) + h W r_t) uses σ' = r(1 − r)), got model={trunk.model!r}, "
            f"activation={trunk.activation!r}"
        )
    return trunk


def check_depth(trunk: Trunk, depth, *, name: str = "depth") -> int:
    """The number of layers to run: required for shared weights; for untied weights it
    defaults to, and may not exceed, the stacked layers."""
    if trunk.shared:
        if depth is None:
            raise ValueError(f"{name} must be given for a shared trunk (an integer >= 1)")
        return check_int(name, depth)
    stacked = trunk.W.shape[0]
    depth = stacked if depth is None else check_int(name, depth)
    if depth > stacked:
        raise ValueError(f"{name} must be <= {stacked}, the number of untied layers, got {depth}")
    return depth


def check_active_depth(active_depth, depth: int) -> None:
    """`active_depth`: None, or an integer (possibly traced) scalar in [0, depth]."""
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


def check_state(trunk: Trunk, x, name: str = "x0", *, min_ndim: int = 1) -> jax.Array:
    """A finite state array ``(*batch, n)`` of the trunk's width and dtype (one value read)."""
    x = check_array(name, x, min_ndim=min_ndim, last_dim=trunk.width)
    if x.dtype != trunk.dtype:
        # Mixed dtypes would either fail inside lax.scan (carry types differ) or silently
        # promote the whole trajectory; the caller decides which precision they want.
        raise TypeError(
            f"{name} has dtype {x.dtype} but the trunk has {trunk.dtype}: cast one, "
            f"e.g. {name}.astype(trunk.dtype) or trunk.astype({name}.dtype)"
        )
    return x


def check_inputs(trunk, x0, depth, *, active_depth=None, unroll=1):
    """The public boundary of the trunk calls: (trunk, x0, depth) checked once."""
    trunk = check_trunk(trunk)
    x0 = check_state(trunk, x0)
    check_int("unroll", unroll)
    depth = check_depth(trunk, depth)
    check_active_depth(active_depth, depth)
    return trunk, x0, depth


@functools.partial(jax.jit, static_argnames=("depth", "unroll", "keep", "remat"))
def scan_trunk(trunk: Trunk, x0, active_depth=None, *, depth: int, unroll: int = 1, keep: bool, remat: bool = False):
    """x_T (``keep=False``) or x_0 … x_T (``keep=True``) under `jax.lax.scan`. Unchecked.

    ``active_depth`` (traced) makes layers t ≥ active_depth the identity. ``remat`` runs
    ⌊T/s⌋ segments of s = ⌊√T⌋ layers under `jax.checkpoint`, then the remaining T mod s.
    """
    ts = jnp.arange(depth)
    layers = None if trunk.shared else (trunk.W[:depth], trunk.b[:depth])
    if remat:
        seg = math.isqrt(depth)
        num_seg = depth // seg
        split = num_seg * seg

        def head(a):
            return a[:split].reshape((num_seg, seg) + a.shape[1:])

        seg_xs = jax.tree.map(head, (ts, layers))
        rest_xs = jax.tree.map(lambda a: a[split:], (ts, layers))

    def body(x, xs):
        t, layer = xs
        W, b = layer if layer is not None else (trunk.W, trunk.b)

        def apply(x):
            return apply_layer(trunk, W, b, x)

        x_new = apply(x)
        if active_depth is not None:
            # where, not cond: a per-layer cond cost ~28 % more per training step on the CPU (and
            # becomes a select under vmap anyway); inactive layers are few, so computing them is cheaper.
            x_new = jnp.where(t < active_depth, x_new, x)
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
    trunk: Trunk,
    x0: Float[Array, "*batch n"],
    *,
    depth: int | None = None,
    active_depth=None,
    unroll: int = 1,
) -> Float[Array, "depth_plus_1 *batch n"]:
    """All states x_0 … x_T of the trunk, stepped with `jax.lax.scan`.

    ResNet: x_{t+1} = x_t + h·act(W_t x_t + b_t); MLP: x_{t+1} = act(W_t x_t + b_t).

    **Arguments:**

    - `trunk`: the `Trunk` (its model, activation and h define the map).
    - `x0`: initial state(s), shape ``(n,)`` or ``(*batch, n)``, in the trunk's dtype.
    - `depth`: T, the number of layers; required for shared weights; for untied weights
      defaults to the number of stacked layers and may be smaller (first `depth` layers).
    - `active_depth`: optional integer (may be traced) ≤ T: layers t ≥ active_depth are the
      identity, so a changing depth needs no recompilation.
    - `unroll`: passed to `jax.lax.scan`.

    **Returns:** array ``(T + 1, *batch, n)``; entry t is x_t.

    **Raises:** `ValueError`/`TypeError` for a non-trunk, a wrong shape or dtype of x0,
    non-finite x0 or a bad depth.
    """
    trunk, x0, depth = check_inputs(trunk, x0, depth, active_depth=active_depth, unroll=unroll)
    return scan_trunk(trunk, x0, active_depth, depth=depth, unroll=unroll, keep=True)


def forward(
    trunk: Trunk,
    x0: Float[Array, "*batch n"],
    *,
    depth: int | None = None,
    active_depth=None,
    unroll: int = 1,
    remat: bool = False,
) -> Float[Array, "*batch n"]:
    """The final state x_T only (same map and arguments as `trajectory`, nothing stored).

    `remat=True` is for training deep trunks: the layers run in segments of ⌊√T⌋ under
    `jax.checkpoint`, so the backward pass keeps O(√T) states instead of O(T) and recomputes
    the rest (same values; see benchmarks/README.md for the memory and time it trades).
    """
    trunk, x0, depth = check_inputs(trunk, x0, depth, active_depth=active_depth, unroll=unroll)
    if not isinstance(remat, bool):
        raise TypeError(f"remat must be a bool, got {remat!r}")
    return scan_trunk(trunk, x0, active_depth, depth=depth, unroll=unroll, keep=False, remat=remat)
