"""Activation functions by name, with the derivatives the analyses need.

The residual branch applies one activation after one affine map. Every analysis that
linearises the network (Jacobians, perturbations, Lyapunov spectra) needs act'(a), so the
two are kept together here and looked up by the same name everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from .._checks import check_choice

__all__ = ["Activation", "ACTIVATIONS", "get_activation"]


class Activation(NamedTuple):
    """An activation ``fn`` with its elementwise derivative ``grad`` (both of a)."""

    name: str
    fn: Callable[[jax.Array], jax.Array]
    grad: Callable[[jax.Array], jax.Array]


def _sigmoid_grad(a):
    s = jax.nn.sigmoid(a)
    return s * (1 - s)


def _tanh_grad(a):
    t = jnp.tanh(a)
    return 1 - t * t


def _relu_grad(a):
    # The subgradient 0 at a = 0, matching jax.grad(jax.nn.relu)(0.0).
    return (a > 0).astype(a.dtype)


ACTIVATIONS: dict[str, Activation] = {
    "sigmoid": Activation("sigmoid", jax.nn.sigmoid, _sigmoid_grad),
    "tanh": Activation("tanh", jnp.tanh, _tanh_grad),
    "relu": Activation("relu", jax.nn.relu, _relu_grad),
}


def get_activation(name: str) -> Activation:
    """Look up an activation by name.

    **Arguments:**

    - `name`: one of ``"sigmoid"`` (logistic, the paper's), ``"tanh"``, ``"relu"``.

    **Returns:** the `Activation` (``fn``, ``grad``).

    **Raises:** `TypeError` if `name` is not a string, `ValueError` if it is unknown.
    """
    return ACTIVATIONS[check_choice("activation", name, ACTIVATIONS)]
