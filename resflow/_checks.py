"""Input validation at the Python boundary.

Checks run before anything is traced. Shape and dtype checks work on tracers too, so a user
who wraps a resflow function in their own `jax.jit` still gets them; value checks
(finiteness, ranges) need concrete numbers and are skipped for tracers.
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
import numpy as np


def is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def as_float_array(name: str, x) -> jax.Array:
    """`x` as a floating JAX array, or a `TypeError` naming `name`."""
    if isinstance(x, jax.core.Tracer):
        arr = x
    else:
        try:
            arr = jnp.asarray(x)
        except TypeError as e:
            raise TypeError(f"{name} must be an array of floats, got {type(x).__name__}") from e
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        raise TypeError(f"{name} must have a floating dtype, got {arr.dtype}")
    return arr


def check_finite(name: str, x: jax.Array) -> None:
    if is_concrete(x) and not bool(np.all(np.isfinite(np.asarray(x)))):
        raise ValueError(f"{name} must contain only finite values (found NaN or inf)")


def check_array(name: str, x, *, min_ndim: int = 1, ndim: int | None = None, last_dim=None) -> jax.Array:
    """Floating array with the expected rank / trailing size and finite entries."""
    arr = as_float_array(name, x)
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {arr.shape}")
    if arr.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimension(s), got shape {arr.shape}")
    if last_dim is not None and arr.shape[-1] != last_dim:
        raise ValueError(f"{name} must have trailing dimension {last_dim}, got shape {arr.shape}")
    check_finite(name, arr)
    return arr


def check_positive(name: str, value) -> None:
    """A real scalar > 0 (the step size h, tolerances)."""
    if isinstance(value, jax.core.Tracer):
        if jnp.ndim(value) != 0:
            raise ValueError(f"{name} must be a scalar, got shape {jnp.shape(value)}")
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real | np.ndarray | jax.Array):
        raise TypeError(f"{name} must be a real number > 0, got {value!r}")
    if np.ndim(value) != 0:
        raise ValueError(f"{name} must be a scalar, got shape {np.shape(value)}")
    v = float(value)
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {v}")


def check_int(name: str, value, *, minimum: int = 1) -> int:
    """A Python integer >= `minimum` (depths, step counts)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_choice(name: str, value, choices) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value
