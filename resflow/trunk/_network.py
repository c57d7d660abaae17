"""A trained classifier as one value: `Network` = optional lift → `Trunk` → readout.

    logits = readout(x_T),  x_T = trunk^T(lift(x)),  affine(x) = x · W + b

`resflow.fit` trains one directly (the parameters are the `Network`; the trunk's ``h`` is a
fixed leaf) and returns it (``result.network``) with its trunk pruned to the final depth, so
``rf.network_lyapunov_spectrum(result.trunk, x0, depth=result.depth)`` analyses the map that
was trained. A `Network` is an equinox pytree: jit, vmap and grad through ``network(x)``.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._checks import check_int
from ._trunk import Trunk, check_depth, scan_trunk

__all__ = ["Affine", "Network"]


class Affine(eqx.Module):
    """x ↦ x · W + b with ``W`` of shape ``(in, out)`` (flax's ``Dense`` kernel layout)."""

    W: Float[Array, "dim_in dim_out"]
    b: Float[Array, " dim_out"]

    def __check_init__(self):
        if self.W.ndim != 2 or self.b.shape != self.W.shape[1:]:
            raise ValueError(f"Affine needs W (in, out) and b (out,), got {self.W.shape} and {self.b.shape}")

    def __call__(self, x: Float[Array, "*batch dim_in"]) -> Float[Array, "*batch dim_out"]:
        return x @ self.W + self.b


class Network(eqx.Module):
    """Optional lift → trunk run for `depth` layers → readout: the logits of a classifier.

    **Fields:**

    - `lift`: `Affine` data → width, or None (the data dimension is the width).
    - `trunk`: the `resflow.Trunk` (untied weights: exactly `depth` layers).
    - `readout`: `Affine` width → classes.
    - `depth`: T, the number of trunk layers (static).

    **Raises** (construction): `ValueError` if the shapes do not chain or `depth` does not
    fit the trunk. The calls are unchecked and pure; `resflow.predict` is the validating
    entry point.
    """

    lift: Affine | None
    trunk: Trunk
    readout: Affine
    depth: int = eqx.field(static=True)

    def __check_init__(self):
        check_int("depth", self.depth)
        check_depth(self.trunk, self.depth)
        n = self.trunk.width
        if self.lift is not None and self.lift.W.shape[1] != n:
            raise ValueError(f"lift must map to the trunk width {n}, got W of shape {self.lift.W.shape}")
        if self.readout.W.shape[0] != n:
            raise ValueError(f"readout must map from the trunk width {n}, got W of shape {self.readout.W.shape}")

    @property
    def dim(self) -> int:
        """The input dimension."""
        return self.trunk.width if self.lift is None else self.lift.W.shape[0]

    @property
    def n_classes(self) -> int:
        return self.readout.W.shape[1]

    def embed(self, x: Float[Array, "*batch dim"]) -> Float[Array, "*batch n"]:
        """x_0: the input (cast to the trunk's dtype) after the lift, if any."""
        x = jnp.asarray(x, self.trunk.dtype)
        return x if self.lift is None else self.lift(x)

    def trajectory(self, x: Float[Array, "*batch dim"]) -> Float[Array, "depth_plus_1 *batch n"]:
        """The trunk states x_0 … x_T of inputs `x`, ``(T + 1, *batch, n)``."""
        return _trajectory(self, x)

    def __call__(self, x: Float[Array, "*batch dim"]) -> Float[Array, "*batch classes"]:
        """The logits readout(x_T)."""
        return self.readout(scan_trunk(self.trunk, self.embed(x), None, depth=self.depth, keep=False))

    def with_depth(self, depth: int) -> Network:
        """The same weights run for `depth` layers (shared weights: any depth; untied: ≤ T)."""
        return Network(self.lift, self.trunk.truncate(depth), self.readout, depth)


@jax.jit
def _trajectory(network: Network, x):
    # One program per shape when called eagerly (the lift and the scan together).
    return scan_trunk(network.trunk, network.embed(x), None, depth=network.depth, keep=True)
