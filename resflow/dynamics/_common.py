"""Shared infrastructure of the generic dynamics tools: argument checks for user maps and
vector fields, random frames, batching, and `callable_jit` (compiling a tool with the user's
callable as an argument). Not part of the public API."""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import check_int

__all__ = [
    "check_step",
    "check_vector_field",
    "random_frame",
    "resolve_num_exponents",
    "sort_by_modulus",
    "batched",
    "callable_jit",
]


def check_step(step, x0) -> None:
    """`step` is a callable map returning an array of the shape and dtype of one state of
    `x0` (``(*batch, n)``; checked by abstract evaluation, nothing runs)."""
    x1 = jax.ShapeDtypeStruct(x0.shape[-1:], x0.dtype)
    _check_signature(step, (x1,), x1, "step", "step(x)")


def check_vector_field(vector_field, y0, args) -> None:
    """A callable ``vector_field(t, y, args)`` returning an array of y0's shape and dtype."""
    _check_signature(vector_field, (jnp.zeros((), y0.dtype), y0, args), y0, "vector_field", "vector_field(t, y, args)")


def _check_signature(fn, inputs, like, name: str, call: str) -> None:
    if not callable(fn):
        raise TypeError(f"{name} must be callable as {call}, got {type(fn).__name__}")
    try:
        out = jax.eval_shape(fn, *inputs)
    except Exception as e:  # the user's function failed on a valid input: say so, keep the cause
        raise ValueError(f"{call} failed for an input of shape {like.shape}: {e}") from e
    if getattr(out, "shape", None) != like.shape or out.dtype != like.dtype:
        got = f"{out.dtype} {out.shape}" if hasattr(out, "shape") else type(out).__name__
        raise ValueError(
            f"{call} must return an array of the input's shape {like.shape} and dtype {like.dtype}, got {got}"
        )


def random_frame(n: int, k: int, key, dtype) -> jax.Array:
    """An orthonormal ``(n, k)`` frame: the first k columns of a Gaussian n × n matrix,
    orthonormalised. Unchecked.

    A generic frame: with the identity, a diagonal map would keep e_1 … e_k and miss faster
    directions. key=None is a fixed key, so results are still reproducible. Drawing all n
    columns and keeping k makes a k-exponent run reproduce the first k exponents of the full
    run with the same key exactly (QR is column-nested).
    """
    key = jax.random.key(0) if key is None else key
    return jnp.linalg.qr(jax.random.normal(key, (n, n), dtype)[:, :k])[0]


def resolve_num_exponents(num_exponents, n: int) -> int:
    """k from `num_exponents` (None: n), checked to lie in [1, n]."""
    if num_exponents is None:
        return n
    k = check_int("num_exponents", num_exponents, minimum=1)
    if k > n:
        raise ValueError(f"num_exponents must be <= n = {n}, got {k}")
    return k


def sort_by_modulus(ev: jax.Array) -> jax.Array:
    order = jnp.argsort(-jnp.abs(ev), axis=-1, stable=True)
    return jnp.take_along_axis(ev, order, axis=-1)


def batched(fn, x: jax.Array, core_ndim: int = 1):
    """Apply `fn` on the trailing `core_ndim` axes of `x`, vmapped over any leading axes."""
    for _ in range(x.ndim - core_ndim):
        fn = jax.vmap(fn)
    return fn(x)


def _static_hashable(step) -> bool:
    """Whether `eqx.filter_jit` can key a compilation on `step`'s non-array parts."""
    leaves, treedef = jax.tree.flatten(step)
    try:
        hash((treedef, tuple(leaf for leaf in leaves if not eqx.is_array(leaf))))
    except TypeError:
        return False
    return True


def callable_jit(impl):
    """``impl(step, *arrays, **static)`` compiled with `eqx.filter_jit`, `step` an argument.

    Shared by every tool that takes a user callable (steps, classifiers); not top-level.

    A pytree callable (an equinox Module, or a bound method such as ``trunk.step``) is traced
    through its array leaves, so a new trunk of the same shapes reuses the compiled code;
    a plain function is a static argument (one compilation per function object). A callable
    whose static part cannot be hashed is compiled for this call only, with its arrays as
    constants: a cache keyed on its identity would keep it, and its arrays, alive.
    """
    jitted = eqx.filter_jit(impl)

    def call(step, *arrays, **static):
        if _static_hashable(step):
            return jitted(step, *arrays, **static)
        return jax.jit(functools.partial(impl, step, **static))(*arrays)

    return functools.wraps(impl)(call)
