"""Classification by the integrated transient.

A resnet's output is its input plus the integral of its residuals, x_T = x_0 + h Σ_{t<T} r_t,
and the readout classifies x_T. `transient_accuracy` asks how much of that integral the
trained readout needs: its accuracy on the partial integrals S_{T'} = x_0 + h Σ_{t<T'} r_t
(T' = 0 … T), and on S_{T'} + h (T − T') r*, where the residuals after layer T' are replaced by
a steady state r* (what a converged network would add in its late layers). See docs/long_run.md.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from .._checks import all_true, as_float_array, check_array, check_int, finite, label_array
from ..trunk._network import Network
from ._long_run import residual_step
from ._separability import class_count
from ._steady_state import steady_state

__all__ = ["TransientAccuracy", "transient_accuracy"]

SUFFICIENT = 0.99
"""`transient_depth` is the first T' whose accuracy reaches this fraction of the full-depth one."""


class TransientAccuracy(NamedTuple):
    """Accuracy of a trained readout on the partial integrals of the residuals.

    - `depths`: ``(T + 1,)`` T' = 0 … T.
    - `accuracy`: ``(T + 1,)`` accuracy of the readout on S_{T'} = x_0 + h Σ_{t<T'} r_t
      (S_0 = x_0, S_T = x_T: the last entry is the network's accuracy).
    - `steady_accuracy`: ``(T + 1,)`` accuracy on S_{T'} + h (T − T') r*; all NaN without a
      steady state (untied weights). Its last entry equals `accuracy`'s.
    - `full_accuracy`: accuracy at T' = T.
    - `transient_depth`: smallest T' with ``accuracy[T'] ≥ 0.99 · full_accuracy``.
    - `steady_transient_depth`: the same for `steady_accuracy` (−1 when it is NaN).
    """

    depths: Int[Array, " T1"]
    accuracy: Float[Array, " T1"]
    steady_accuracy: Float[Array, " T1"]
    full_accuracy: Float[Array, ""]
    transient_depth: Int[Array, ""]
    steady_transient_depth: Int[Array, ""]


def _first_sufficient(acc, full):
    """Smallest index with acc ≥ SUFFICIENT · full; −1 where none (NaN curves)."""
    ok = acc >= SUFFICIENT * full
    return jnp.where(jnp.any(ok), jnp.argmax(ok), -1)


@functools.partial(jax.jit, static_argnames=("with_steady",))
def _transient_curves(network, x0, y, steady, *, with_steady):
    """Both accuracy curves, the running sum carried through one scan over the T layers. Unchecked."""
    trunk, T = network.trunk, network.depth
    layers = None if trunk.shared else (trunk.W[:T], trunk.b[:T])

    def acc(s):
        return jnp.mean((jnp.argmax(network.readout(s), -1) == y).astype(x0.dtype))

    def both(s, t):
        steady_acc = acc(s + trunk.h * (T - t) * steady) if with_steady else jnp.asarray(jnp.nan, x0.dtype)
        return acc(s), steady_acc

    def body(s, xs):
        t, layer = xs
        W, b = layer if layer is not None else (trunk.W, trunk.b)
        s_next, _ = residual_step(trunk, W, b, s)  # S_{t+1} = S_t + h r_t
        return s_next, both(s, t)

    sT, (accs, steady_accs) = jax.lax.scan(body, x0, (jnp.arange(T), layers))
    last, steady_last = both(sT, T)
    accs = jnp.append(accs, last)
    steady_accs = jnp.append(steady_accs, steady_last)
    full = accs[-1]
    return TransientAccuracy(
        jnp.arange(T + 1),
        accs,
        steady_accs,
        full,
        _first_sufficient(accs, full),
        _first_sufficient(steady_accs, full),
    )


def _check_network(network, x, y):
    if not isinstance(network, Network):
        raise TypeError(f"network must be a resflow.Network, got {type(network).__name__}")
    if network.trunk.model != "resnet":
        raise ValueError(
            f"the integrated transient x_0 + h Σ r_t needs a resnet trunk, got model={network.trunk.model!r}"
        )
    x = as_float_array("x", x)
    if x.ndim != 2 or x.shape[1] != network.dim:
        raise ValueError(f"x must have shape (N, {network.dim}), got {x.shape}")
    y = label_array("y", y, x.shape[:1])
    class_count({"y": y}, network.n_classes, {"x": (x, finite)}, lambda: check_array("x", x))
    return x, y


def _check_steady(steady, x0):
    steady = as_float_array("steady", steady).astype(x0.dtype)
    if steady.shape not in (x0.shape, x0.shape[1:]):
        raise ValueError(f"steady must have shape {x0.shape} (one r* per input) or {x0.shape[1:]}, got {steady.shape}")
    if not all_true({"steady": (steady, finite)}):
        check_array("steady", steady, min_ndim=0)
    return jnp.broadcast_to(steady, x0.shape)


def transient_accuracy(
    network: Network,
    x: Float[Array, "N dim"],
    y: Int[Array, " N"],
    *,
    steady: Float[Array, "N n"] | Float[Array, " n"] | None = None,
    steady_depth: int = 1000,
) -> TransientAccuracy:
    """Accuracy of the trained readout on x_0 + h Σ_{t<T'} r_t, T' = 0 … T, with and without
    the late residuals replaced by a steady state.

    With x_0 = lift(x) and T = ``network.depth``, the readout's accuracy on
    S_{T'} = x_0 + h Σ_{t<T'} r_t measures how much of the transient classification needs. The
    second curve uses S_{T'} + h (T − T') r*: layers T' … T−1 add the steady residual r* instead
    of their own. Both are computed in one `jax.lax.scan` over the layers (the trajectory is
    not stored).

    **Arguments:**

    - `network`: a trained `resflow.Network` with a resnet trunk (shared or untied).
    - `x`: inputs ``(N, dim)``; `y`: labels ``(N,)`` in 0 … classes − 1.
    - `steady`: r*, ``(N, n)`` per input or ``(n,)`` for all. None: for a shared trunk, each
      input's last residual after `steady_depth` layers (`resflow.steady_state`); for an
      untied trunk there is no steady state (its layers end at T) and `steady_accuracy` is NaN.
    - `steady_depth`: layers of the long run that gives the default r* (≥ 2).

    **Returns:** `TransientAccuracy`.

    **Raises:** `TypeError`/`ValueError` for a non-Network or MLP trunk, x not ``(N, dim)`` or
    non-finite, y not ``(N,)`` integers in range, a steady of the wrong shape or non-finite.
    """
    x, y = _check_network(network, x, y)
    x0 = network.embed(x)
    trunk = network.trunk
    if steady is not None:
        steady = _check_steady(steady, x0)
    elif trunk.shared:
        steady = steady_state(trunk, x0, depth=check_int("steady_depth", steady_depth, minimum=2)).final
    with_steady = steady is not None
    steady = steady if with_steady else jnp.zeros_like(x0)
    return _transient_curves(network, x0, y, steady, with_steady=with_steady)
