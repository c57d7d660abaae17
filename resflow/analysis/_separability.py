"""Class separability along depth.

Two per-layer measures for features X_t ∈ R^{N×d} (residuals r_t, states x_t, or any
features) with integer labels y ∈ {0 … K−1}^N:

- a **linear probe**: closed-form ridge regression of one-hot targets Y on [X_t, 1],

      B_t = argmin_B ||[X_t, 1] B − Y||² + λ ||B_{:d}||²      (the bias row is not penalised)

  solved as the least-squares problem [[X_t, 1]; √λ [I_d, 0]] B = [Y; 0] (SVD-based, so
  λ = 0 gives the minimum-norm least-squares probe), and its accuracy argmax_c ([x, 1] B)_c = y;
- a **Fisher ratio** of between- to within-class spread,

      F_t = Σ_c N_c ||μ_c − μ||² / Σ_i ||x_i − μ_{y_i}||²,

  0 when the class means coincide, large when the classes are tight and far apart.

`class_separability` runs a trunk and applies both to its residuals r_t = act(W_t x_t + b_t)
and to its states x_t. For a resnet the state is the running integral of the residuals,
x_t = x_0 + h Σ_{s<t} r_s: what a readout at depth t would see. Layers are batched with
`jax.vmap`; nothing loops over depth in Python.

Labels are the integers 0 … K−1 and K (``num_classes``) is static, so every statistic has a
fixed shape and the functions here (and `steady_state`, `interaction_summary`, which use
`class_weights`) can run under `jax.jit`. Without ``num_classes`` K is inferred on the host as
max label + 1, in the same single device-to-host read as the value checks.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from .._checks import (
    all_true,
    as_float_array,
    check_array,
    check_int,
    check_labels,
    is_concrete,
    label_array,
    on_host,
)
from ..trunk._activations import get_activation
from ..trunk._trunk import Trunk, check_depth, check_state, check_trunk, depth_weights, scan_trunk

__all__ = ["ProbeResult", "Separability", "linear_probe", "fisher_ratio", "class_separability"]


class ProbeResult(NamedTuple):
    """Per-layer linear probes.

    - `weights`: ``(L, d + 1, K)``; row d is the bias: logits = X_t @ weights[t, :d] + weights[t, d].
    - `accuracy`: ``(L,)``, test accuracy when test data were given, else equal to `train_accuracy`.
    - `train_accuracy`: ``(L,)``, accuracy on the data the probe was fitted on.
    """

    weights: Float[Array, "L d1 K"]
    accuracy: Float[Array, " L"]
    train_accuracy: Float[Array, " L"]


class Separability(NamedTuple):
    """Separability of a trunk's residuals and of its states along depth.

    - `residual_accuracy`, `residual_fisher`: ``(T,)``, probe accuracy and Fisher ratio of r_t.
    - `integral_accuracy`, `integral_fisher`: ``(T + 1,)``, the same for the states x_0 … x_T
      (for a resnet the running integral x_t = x_0 + h Σ_{s<t} r_s).
    """

    residual_accuracy: Float[Array, " T"]
    integral_accuracy: Float[Array, " T1"]
    residual_fisher: Float[Array, " T"]
    integral_fisher: Float[Array, " T1"]


# --------------------------------------------------------------------------------------------
# Labels 0 … K−1 with a static K (shared with resflow.analysis._attractors and resflow.analysis._interactions)


def class_weights(labels: Int[Array, " B"], num_classes: int, dtype) -> tuple[Array, Array]:
    """Class counts and averaging weights for labels in 0 … K−1. Unchecked; jittable.

    **Arguments:** `labels` ``(B,)`` integers in [0, K); `num_classes` K (static); `dtype` of `w`.

    **Returns:** ``(counts (K,), w (B, K))`` with w[i, c] = [y_i = c] / N_c, so ``w.T @ x`` are
    the class means of x ``(B, ...)``. An empty class (N_c = 0) has a zero column.
    """
    onehot = jax.nn.one_hot(labels, num_classes, dtype=dtype)
    counts = onehot.sum(0)
    return counts, onehot / jnp.maximum(counts, 1)


def class_means(w: Float[Array, "B K"], counts: Float[Array, " K"], x: Float[Array, "B ..."]) -> Array:
    """Per-class means ``(K, ...)`` of x over its first axis; NaN for an empty class. Unchecked."""
    means = jnp.tensordot(w, x, axes=([0], [0]))
    present = (counts > 0).reshape((-1,) + (1,) * (means.ndim - 1))
    return jnp.where(present, means, jnp.nan)


def class_count(
    labels: dict[str, Array],
    num_classes: int | None,
    checks: dict | None = None,
    explain: Callable[[], None] | None = None,
) -> int:
    """K, the number of classes, with all value checks in one device-to-host read.

    **Arguments:**

    - `labels`: ``{name: labels}``, integer arrays already checked for dtype and shape.
    - `num_classes`: K, or None to infer max label + 1 (needs concrete labels).
    - `checks`: other value checks ``{name: (array, predicate)}`` as in `_checks.all_true`,
      read back together with the labels' range; tracers are skipped.
    - `explain`: called when a check fails, to raise the caller's own precise error.

    **Returns:** K ≥ 1.

    **Raises:** `ValueError` for a label < 0 or ≥ `num_classes`, a `num_classes` < 1, labels
    traced without `num_classes`, or (through `explain`) a failed check.
    """
    K = None if num_classes is None else check_int("num_classes", num_classes)
    concrete = {k: v for k, v in (checks or {}).items() if is_concrete(v[0])}
    if not all(is_concrete(y) for y in labels.values()):
        if K is None:
            raise ValueError("num_classes must be given when the labels are traced (e.g. under jax.jit)")
        return K
    if K is not None:
        in_range = {n: (y, lambda xp, a: (a >= 0) & (a < K)) for n, y in labels.items()}
        if not all_true({**concrete, **in_range}):
            _explain(labels, K, explain)
        return K
    if all(on_host(a) for a in [*labels.values(), *(x for x, _ in concrete.values())]):
        xp, read = np, lambda a: np.asarray(a)  # NumPy: no compiled program per new shape
    else:  # reduced on the accelerator, one scalar read back
        xp, read = jnp, lambda a: a
    with jax.ensure_compile_time_eval():
        ok = [xp.all(p(xp, read(x))) for x, p in concrete.values()] + [xp.all(read(y) >= 0) for y in labels.values()]
        top = xp.max(xp.stack([xp.max(read(y), initial=-1) for y in labels.values()]))
        packed = int(xp.where(xp.stack(ok).all(), top, -2))
    if packed == -2:
        _explain(labels, None, explain)
    return max(packed + 1, 1)


def optional_labels(labels, batch: tuple, num_classes: int | None, checks: dict, explain: Callable[[], None]):
    """(y, K) for an analysis whose labels may be omitted, with `checks` in the same host read.

    Without `labels` every input is class 0 (y = 0 of shape `batch`) and K = `num_classes` or
    1; otherwise `labels` are checked against `batch` and K comes from `class_count`. `checks`
    and `explain` as in `class_count` (tracers are skipped).

    **Raises:** as `class_count`, and `resflow._checks.label_array` for labels of another shape
    or dtype.
    """
    if labels is not None:
        y = label_array("labels", labels, batch)
        return y, class_count({"labels": y}, num_classes, checks, explain)
    K = 1 if num_classes is None else check_int("num_classes", num_classes)
    if not all_true({k: v for k, v in checks.items() if is_concrete(v[0])}):
        explain()
    return jnp.zeros(batch, jnp.int32), K


def _explain(labels, K, explain):
    if explain is not None:
        explain()
    for name, y in labels.items():
        check_labels(name, y, y.shape)
        if K is not None and y.size and int(jnp.max(y)) >= K:
            raise ValueError(f"{name} must be < num_classes = {K}, found {int(jnp.max(y))}")
    raise AssertionError("a value check failed but no check explains it")  # pragma: no cover


def _finite(xp, a):
    return xp.isfinite(a)


# --------------------------------------------------------------------------------------------
# Probes and Fisher ratios


def _features(name, x):
    """(L, N, d) floats; their finiteness is read back with the labels' range (`class_count`)."""
    x = as_float_array(name, x)
    if x.ndim != 3:
        raise ValueError(f"{name} must have 3 dimensions, got shape {x.shape}")
    return x


def _with_bias(x):
    return jnp.concatenate([x, jnp.ones(x.shape[:-1] + (1,), x.dtype)], axis=-1)


def _accuracy(x, weights, y):
    return jnp.mean(jnp.argmax(_with_bias(x) @ weights, axis=-1) == y).astype(x.dtype)


_accuracies = jax.jit(jax.vmap(_accuracy, in_axes=(0, 0, None)))


@functools.partial(jax.jit, static_argnames=("num_classes",))
def _fit_probes(x, y, ridge, *, num_classes):
    d = x.shape[-1]
    onehot = jax.nn.one_hot(y, num_classes, dtype=x.dtype)
    penalty = jnp.sqrt(jnp.asarray(ridge, x.dtype)) * jnp.eye(d, d + 1, dtype=x.dtype)
    rhs = jnp.concatenate([onehot, jnp.zeros((d, num_classes), x.dtype)])

    def fit(xt):
        return jnp.linalg.lstsq(jnp.concatenate([_with_bias(xt), penalty]), rhs)[0]

    weights = jax.vmap(fit)(x)
    return weights, _accuracies(x, weights, y)


def _probe(x, y, ridge, num_classes, xt=None, yt=None) -> ProbeResult:
    """Unchecked `linear_probe`."""
    weights, acc = _fit_probes(x, y, ridge, num_classes=num_classes)
    if xt is None:
        return ProbeResult(weights, acc, acc)
    test_acc = _accuracies(xt.astype(x.dtype), weights, yt)
    return ProbeResult(weights, test_acc, acc)


def _check_ridge(ridge):
    if isinstance(ridge, jax.core.Tracer):
        return
    if isinstance(ridge, bool) or not isinstance(ridge, numbers.Real | np.ndarray | jax.Array) or np.ndim(ridge):
        raise TypeError(f"ridge must be a real number >= 0, got {ridge!r}")
    if not np.isfinite(float(ridge)) or float(ridge) < 0:
        raise ValueError(f"ridge must be a finite number >= 0, got {ridge!r}")


def linear_probe(
    features: Float[Array, "L N d"],
    labels: Int[Array, " N"],
    *,
    test_features: Float[Array, "L M d"] | None = None,
    test_labels: Int[Array, " M"] | None = None,
    ridge=1e-3,
    num_classes: int | None = None,
) -> ProbeResult:
    """Closed-form ridge probe per layer, fitted on one-hot targets with a bias column.

    B_t = argmin_B ||[X_t, 1] B − onehot(y)||² + λ ||B_{:d}||², predicted class argmax([x, 1] B_t).

    **Arguments:**

    - `features`: ``(L, N, d)``, one feature matrix per layer (e.g. residuals r_t).
    - `labels`: ``(N,)`` integer classes in 0 … K−1.
    - `test_features`, `test_labels`: optional held-out ``(L, M, d)`` and ``(M,)``; give both or neither.
    - `ridge`: λ ≥ 0 (0: minimum-norm least squares).
    - `num_classes`: K; inferred as max label + 1 when omitted (required under `jax.jit`).

    **Returns:** `ProbeResult` (``weights (L, d + 1, K)``, ``accuracy (L,)``, ``train_accuracy (L,)``).

    **Raises:** `ValueError`/`TypeError` for features that are not ``(L, N, d)`` floats with finite
    values, labels of the wrong shape/dtype/range, test data without its labels or of a different
    L/d, or λ < 0. One device-to-host read for all value checks.
    """
    x = _features("features", features)
    y = label_array("labels", labels, x.shape[1])
    if (test_features is None) != (test_labels is None):
        raise ValueError("give both test_features and test_labels, or neither")
    _check_ridge(ridge)
    labs, checks = {"labels": y}, {"features": (x, _finite)}
    xt = yt = None
    if test_features is not None:
        xt = _features("test_features", test_features)
        if xt.shape[0] != x.shape[0] or xt.shape[2] != x.shape[2]:
            raise ValueError(f"test_features must be (L={x.shape[0]}, M, d={x.shape[2]}) like features, got {xt.shape}")
        yt = label_array("test_labels", test_labels, xt.shape[1])
        labs["test_labels"], checks["test_features"] = yt, (xt, _finite)
    K = class_count(labs, num_classes, checks, lambda: [check_array(k, v[0], ndim=3) for k, v in checks.items()])
    return _probe(x, y, ridge, K, xt, yt)


@functools.partial(jax.jit, static_argnames=("num_classes",))
def _fisher(x, y, *, num_classes):
    onehot = jax.nn.one_hot(y, num_classes, dtype=x.dtype)
    counts = onehot.sum(0)

    def one(xt):
        # Empty classes have weight N_c = 0; guard only their 0/0 mean.
        means = (onehot.T @ xt) / jnp.maximum(counts, 1)[:, None]
        between = jnp.sum(counts * jnp.sum((means - xt.mean(0)) ** 2, axis=-1))
        within = jnp.sum((xt - onehot @ means) ** 2)
        return jnp.where(between == 0, jnp.zeros_like(between), between / within)

    return jax.vmap(one)(x)


def fisher_ratio(
    features: Float[Array, "L N d"], labels: Int[Array, " N"], *, num_classes: int | None = None
) -> Float[Array, " L"]:
    """Between- over within-class spread per layer: F_t = Σ_c N_c ||μ_c − μ||² / Σ_i ||x_i − μ_{y_i}||².

    μ_c are the class means, μ the overall mean (trace form of the Fisher criterion; no
    matrix inverse, so it is defined for rank-deficient, saturated features).
    F = 0 when the between-class spread is exactly 0 (all class means equal, including
    constant features), +inf when the classes are points (no within-class spread) but distinct.

    **Arguments:**

    - `features`: ``(L, N, d)``.
    - `labels`: ``(N,)`` integer classes in 0 … K−1.
    - `num_classes`: K; inferred as max label + 1 when omitted (required under `jax.jit`).

    **Returns:** ``(L,)`` ratios ≥ 0.

    **Raises:** `ValueError`/`TypeError` as `linear_probe`.
    """
    x = _features("features", features)
    y = label_array("labels", labels, x.shape[1])
    K = class_count({"labels": y}, num_classes, {"features": (x, _finite)}, lambda: check_array("features", x))
    return _fisher(x, y, num_classes=K)


@functools.partial(jax.jit, static_argnames=("depth",))
def trunk_features(trunk: Trunk, x0: Float[Array, "*batch n"], *, depth: int):
    """(residuals r_0 … r_{T−1}, states x_0 … x_T) of a trunk, r_t = act(W_t x_t + b_t). Unchecked."""
    states = scan_trunk(trunk, x0, depth=depth, keep=True)
    W, b = depth_weights(trunk, depth, extra=x0.ndim - 1)
    a = jnp.matmul(W, states[:-1, ..., None])[..., 0] + b
    return get_activation(trunk.activation).fn(a), states


def class_separability(
    trunk: Trunk,
    x0: Float[Array, "N n"],
    labels: Int[Array, " N"],
    *,
    depth: int | None = None,
    test_x0: Float[Array, "M n"] | None = None,
    test_labels: Int[Array, " M"] | None = None,
    ridge=1e-3,
    num_classes: int | None = None,
) -> Separability:
    """Probe accuracy and Fisher ratio per layer, on a trunk's residuals r_t and on its states x_t.

    The trunk is run from `x0` for T layers; r_t = act(W_t x_t + b_t) (t < T) and the states
    x_t (t ≤ T) are probed layer by layer. For a resnet x_t = x_0 + h Σ_{s<t} r_s is the running
    integral of the residuals, what a readout at depth t would see: a high probe accuracy on x_t
    for t < T means the integrated transient already classifies before the last layer, and on
    r_t that the residual trajectories themselves are separable by class.

    **Arguments:**

    - `trunk`: the `Trunk` (shared or untied).
    - `x0`: ``(N, n)`` inputs of the trunk, in its dtype.
    - `labels`: ``(N,)`` integer classes in 0 … K−1.
    - `depth`: T, as in `resflow.trajectory` (required for shared weights).
    - `test_x0`, `test_labels`: held-out data; the probes are fitted on the training data and
      scored on these. Give both or neither.
    - `ridge`, `num_classes`: as in `linear_probe`.

    **Returns:** `Separability` (``residual_accuracy``, ``residual_fisher`` ``(T,)``;
    ``integral_accuracy``, ``integral_fisher`` ``(T + 1,)``). The Fisher ratios are those of the
    training data.

    **Raises:** `ValueError`/`TypeError` as `linear_probe` and `resflow.trajectory`, and for test
    data without its labels. One device-to-host read for all value checks.
    """
    trunk = check_trunk(trunk)
    depth = check_depth(trunk, depth)
    _check_ridge(ridge)
    x = _state_shape(trunk, x0, "x0")
    y = label_array("labels", labels, x.shape[0])
    if (test_x0 is None) != (test_labels is None):
        raise ValueError("give both test_x0 and test_labels, or neither")
    labs, checks = {"labels": y}, {"x0": (x, _finite)}
    if test_x0 is not None:
        xt = _state_shape(trunk, test_x0, "test_x0")
        labs["test_labels"] = label_array("test_labels", test_labels, xt.shape[0])
        checks["test_x0"] = (xt, _finite)
    K = class_count(labs, num_classes, checks, lambda: [check_state(trunk, v[0], k) for k, v in checks.items()])
    r, s = trunk_features(trunk, x, depth=depth)
    test = {}
    if test_x0 is not None:
        rt, st = trunk_features(trunk, checks["test_x0"][0], depth=depth)
        test = {"r": (rt, labs["test_labels"]), "s": (st, labs["test_labels"])}
    probe_r = _probe(r, y, ridge, K, *test.get("r", ()))
    probe_s = _probe(s, y, ridge, K, *test.get("s", ()))
    return Separability(probe_r.accuracy, probe_s.accuracy, _fisher(r, y, num_classes=K), _fisher(s, y, num_classes=K))


def _state_shape(trunk: Trunk, x, name: str):
    """``(N, n)`` states of the trunk's width and dtype; values are read later, with the labels."""
    x = as_float_array(name, x)
    if x.ndim != 2 or x.shape[-1] != trunk.width:
        raise ValueError(f"{name} must have shape (N, {trunk.width}), got {x.shape}")
    if x.dtype != trunk.dtype:
        check_state(trunk, x, name)  # raises its dtype TypeError
    return x
