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


def device_array(x, dtype=None) -> jax.Array:
    """`x` as a JAX array (in `dtype`, when given); host data is put on the device as it is.

    ``jnp.asarray`` of a NumPy array compiles a copy program for each new shape and dtype;
    ``jax.device_put`` transfers without one. JAX arrays and tracers go through ``jnp.asarray``
    (no program unless the dtype changes).

    **Raises:** `TypeError` for something that is not numeric array data.
    """
    if isinstance(x, (jax.Array, jax.core.Tracer)):
        return jnp.asarray(x, dtype)
    try:
        a = np.asarray(x, dtype)
    except ValueError as e:  # a ragged nesting, a string that is not a number
        raise TypeError(str(e)) from e
    if a.dtype == object or a.dtype.kind in "USV":
        raise TypeError(f"expected numeric array data, got dtype {a.dtype}")
    return jax.device_put(a)


def as_float_array(name: str, x) -> jax.Array:
    """`x` as a floating JAX array, or a `TypeError` naming `name`."""
    try:
        arr = device_array(x)
    except TypeError as e:
        raise TypeError(f"{name} must be an array of floats, got {type(x).__name__}") from e
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        raise TypeError(f"{name} must have a floating dtype, got {arr.dtype}")
    return arr


def on_host(x) -> bool:
    """Whether `x` is in host memory (NumPy data, or a JAX array on CPU devices only)."""
    if not isinstance(x, jax.Array):
        return True
    try:
        return all(d.platform == "cpu" for d in x.devices())
    except Exception:  # a non-addressable (multi-host) array: reduce on its devices
        return False


def _all(x, predicate) -> bool:
    """Whether ``predicate(xp, x)`` holds everywhere, with xp = numpy or jax.numpy.

    Host arrays are checked with numpy (no copy, no compile per new shape); arrays on an
    accelerator are reduced there, so one scalar comes back instead of the whole array, eagerly
    even while tracing (a concrete array closed over by a user's jit).
    """
    if on_host(x):
        return read_bool(predicate(np, np.asarray(x)).all())
    with jax.ensure_compile_time_eval():
        return read_bool(predicate(jnp, x).all())


def all_true(checks: dict) -> bool:
    """Whether every ``predicate(xp, array)`` of ``checks = {name: (array, predicate)}`` holds.

    Host arrays are checked with numpy; the accelerator arrays are reduced together on the
    device, so a whole group of checks costs one device-to-host read. Tracers have no values
    to check and are skipped, so a call made under `jax.jit` reads nothing.
    """
    checks = {k: v for k, v in checks.items() if is_concrete(v[0])}
    if not checks:
        return True
    host = [predicate(np, np.asarray(x)).all() for x, predicate in checks.values() if on_host(x)]
    device = [(x, predicate) for x, predicate in checks.values() if not on_host(x)]
    ok = np.all(host)
    if device:
        with jax.ensure_compile_time_eval():
            ok = ok & jnp.stack([jnp.all(predicate(jnp, x)) for x, predicate in device]).all()
    return read_bool(ok)


def check_finite(name: str, x: jax.Array) -> None:
    if is_concrete(x) and not _all(x, lambda xp, a: xp.isfinite(a)):
        raise ValueError(f"{name} must contain only finite values (found NaN or inf)")


def check_array(name: str, x, *, min_ndim: int = 1, ndim: int | None = None, last_dim=None) -> jax.Array:
    """Floating array with the expected rank / trailing size and finite entries."""
    arr = check_shape(name, x, min_ndim=min_ndim, ndim=ndim, last_dim=last_dim)
    check_finite(name, arr)
    return arr


def check_positive(name: str, value, *, allow_zero: bool = False) -> None:
    """A finite real scalar > 0 (the step size h, tolerances), or >= 0 with `allow_zero`."""
    if isinstance(value, jax.core.Tracer):
        if jnp.ndim(value) != 0:
            raise ValueError(f"{name} must be a scalar, got shape {jnp.shape(value)}")
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real | np.ndarray | jax.Array):
        raise TypeError(f"{name} must be a real number {'>=' if allow_zero else '>'} 0, got {value!r}")
    if np.ndim(value) != 0:
        raise ValueError(f"{name} must be a scalar, got shape {np.shape(value)}")
    v = float(value)
    if not np.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name} must be a finite number {'>=' if allow_zero else '>'} 0, got {v}")


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


def check_unit_interval(name: str, r, *, closed: bool = False, hint: str = "") -> None:
    """Residuals of the logistic activation: every (concrete) entry in (0, 1), or in [0, 1] with `closed`.

    The open interval is what the logit and the Jacobian 1/(r(1 − r)) need; a value that
    rounded to exactly 0 or 1 is saturated. Nothing is clipped; tracers are not checked. `hint`
    is appended to the error message.
    """
    if not is_concrete(r):
        return

    def inside_of(xp, a):
        return (a >= 0) & (a <= 1) if closed else (a > 0) & (a < 1)

    if not _all(r, inside_of):
        rn = np.asarray(r)
        inside = inside_of(np, rn)
        where = "[0, 1]" if closed else "strictly inside (0, 1)"
        raise ValueError(
            f"{name} must lie {where} (logistic residuals); found {int((~inside).sum())} value(s) outside, "
            f"e.g. {rn[~inside].flat[0]!r}{'. ' + hint if hint else ''}"
        )


def label_array(name: str, labels, shape) -> jax.Array:
    """Integer labels of the given shape (an int is a 1-D length): dtype and shape only, no value read."""
    try:
        y = device_array(labels)
    except TypeError as e:
        raise TypeError(f"{name} must be an array of integer class labels, got {type(labels).__name__}") from e
    shape = (shape,) if isinstance(shape, numbers.Integral) else tuple(shape)
    if not jnp.issubdtype(y.dtype, jnp.integer):
        raise TypeError(f"{name} must be an array of integer class labels, got dtype {y.dtype}")
    if y.shape != shape:
        raise ValueError(f"{name} must have shape {shape} to match the data, got {y.shape}")
    return y


def check_labels(name: str, labels, shape) -> jax.Array:
    """Integer class labels >= 0 of the given shape (an int is a 1-D length), as a JAX array."""
    y = label_array(name, labels, shape)
    if is_concrete(y) and not _all(y, lambda xp, a: a >= 0):
        raise ValueError(f"{name} must be >= 0, found {int(np.min(np.asarray(y)))}")
    return y


def read_bool(x) -> bool:
    """``bool(x)``: the one place a value check reads a result back to the host.

    Every value check (`_all`, `all_true`) ends here, so the reads of a call can be counted by
    patching this function.
    """
    return bool(x)


def finite(xp, a):
    """Predicate for `all_true`: every entry finite."""
    return xp.isfinite(a)


def check_shape(name: str, x, *, min_ndim: int = 1, ndim: int | None = None, last_dim=None) -> jax.Array:
    """`check_array` without the value check (no host read): a floating array of the expected
    rank / trailing size. Pair it with one `all_true` over all of a call's arrays."""
    arr = as_float_array(name, x)
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {arr.shape}")
    if arr.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimension(s), got shape {arr.shape}")
    if last_dim is not None and arr.shape[-1] != last_dim:
        raise ValueError(f"{name} must have trailing dimension {last_dim}, got shape {arr.shape}")
    return arr
