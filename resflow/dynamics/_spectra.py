"""Eigenvalues of the Jacobian of a map at a point (`jacobian_spectrum`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Complex, Float

from .._checks import check_array
from ._common import batched, callable_jit, check_step, sort_by_modulus

__all__ = ["Spectrum", "jacobian_spectrum", "eigvals_sorted"]


class Spectrum(NamedTuple):
    """Eigenvalues of a Jacobian, sorted by modulus (largest first), and the Jacobian itself."""

    eigenvalues: Complex[Array, "*batch n"]
    jacobian: Float[Array, "*batch n n"]


def eigvals_sorted(J: jax.Array) -> jax.Array:
    return sort_by_modulus(jnp.linalg.eigvals(J))


def jacobian_spectrum(step: Callable[[Array], Array], x: Float[Array, "*batch n"]) -> Spectrum:
    """Eigenvalues of the Jacobian J = ∂step/∂x at `x`, sorted by modulus descending.

    J is built with `jax.jacfwd` (n JVPs) and diagonalised with `jnp.linalg.eigvals`.
    Eigenvalue multipliers |μ| < 1 contract, |μ| > 1 expand; at a fixed point they decide
    stability. Works under `jax.jit`/`jax.vmap`. `eigvals` of a non-symmetric matrix is a
    LAPACK ``geev`` call: on CPU it runs inside jit; on NVIDIA GPUs JAX uses cuSOLVER ``geev``
    (cuSOLVER ≥ 11.7.1) or a hybrid kernel that copies the matrix to host LAPACK.

    **Arguments:**

    - `step`: a map R^n → R^n acting on a single state of shape ``(n,)``: a function, or a
      pytree callable such as ``trunk.step`` (compiled once per shapes, see the module).
    - `x`: the point, shape ``(n,)``, or a batch ``(*batch, n)`` (vmapped).

    **Returns:** `Spectrum(eigenvalues (*batch, n) complex, jacobian (*batch, n, n))`.
    Ties in modulus (complex-conjugate pairs) keep LAPACK's order.

    **Raises:** `TypeError` if `step` is not callable or `x` not a float array;
    `ValueError` if `step` does not map ``(n,)`` to ``(n,)`` or `x` is not finite.
    """
    x = check_array("x", x)
    check_step(step, x)

    return _jacobian_spectrum_run(step, x)


@callable_jit
def _jacobian_spectrum_run(step, x):
    def one(xi):
        J = jax.jacfwd(step)(xi)
        return Spectrum(eigvals_sorted(J), J)

    return batched(one, x)
