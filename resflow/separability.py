"""Class separability along depth (science.md §7, claims 4 and 5).

Two per-layer measures for features X_t ∈ R^{N×d} (residuals r_t, running integrals
S_t = x_0 + h Σ_{s<t} r_s, or any states) with integer labels y ∈ {0 … C-1}^N:

- a **linear probe**: closed-form ridge regression of one-hot targets Y on [X_t, 1],

      B_t = argmin_B ||[X_t, 1] B − Y||² + λ ||B_{:d}||²      (the bias row is not penalised)

  solved as the least-squares problem [[X_t, 1]; √λ [I_d, 0]] B = [Y; 0] (SVD-based, so
  λ = 0 gives the minimum-norm least-squares probe), and its accuracy argmax_c ([x, 1] B)_c = y;
- a **Fisher ratio** of between- to within-class spread,

      F_t = Σ_c N_c ||μ_c − μ||² / Σ_i ||x_i − μ_{y_i}||²,

  0 when the class means coincide, large when the classes are tight and far apart.

Layers are batched with `jax.vmap`; nothing loops over depth in Python.
"""

from __future__ import annotations

import functools
import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from ._checks import check_array, check_labels, is_concrete
from .residuals import running_integral

__all__ = ["ProbeResult", "Separability", "linear_probe", "fisher_ratio", "class_separability"]


class ProbeResult(NamedTuple):
    """Per-layer linear probes.

    - `weights`: ``(L, d + 1, C)``; row d is the bias: logits = X_t @ weights[t, :d] + weights[t, d].
    - `accuracy`: ``(L,)``, test accuracy when test data were given, else equal to `train_accuracy`.
    - `train_accuracy`: ``(L,)``, accuracy on the data the probe was fitted on.
    """

    weights: Float[Array, "L d1 C"]
    accuracy: Float[Array, " L"]
    train_accuracy: Float[Array, " L"]


class Separability(NamedTuple):
    """Separability of residuals and of their running integral along depth.

    - `residual_accuracy`, `residual_fisher`: ``(T,)``, probe accuracy and Fisher ratio of r_t.
    - `integral_accuracy`, `integral_fisher`: ``(T + 1,)``, the same for S_t = x_0 + h Σ_{s<t} r_s
      (S_0 = x_0, or 0 without x_0; for a ResNet S_t is the state x_t).
    """

    residual_accuracy: Float[Array, " T"]
    integral_accuracy: Float[Array, " T1"]
    residual_fisher: Float[Array, " T"]
    integral_fisher: Float[Array, " T1"]


# Kept under its old name: resflow.robustness imports it from here.


def class_weights(labels, dtype):
    """Distinct labels and per-class averaging weights: ``(classes (K,), w (B, K))``, w[i, c] = [y_i = c] / N_c.

    `w.T @ x` are the class means of x ``(B, ...)``; labels need not be 0 … K−1 (host-side unique)."""
    classes = jnp.asarray(np.unique(np.asarray(labels)))
    onehot = (labels[:, None] == classes[None, :]).astype(dtype)
    return classes, onehot / onehot.sum(0)


def _check_features(name, x):
    return check_array(name, x, ndim=3)


def _num_classes(num_classes, *labels):
    if num_classes is not None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int | np.integer) or num_classes < 1:
            raise ValueError(f"num_classes must be an integer >= 1, got {num_classes!r}")
        num_classes = int(num_classes)
    concrete = [np.asarray(y) for y in labels if is_concrete(y)]
    if num_classes is None:
        if len(concrete) < len(labels):
            raise ValueError("num_classes must be given when the labels are traced")
        return max(int(y.max()) for y in concrete) + 1
    for y in concrete:
        if y.size and int(y.max()) >= num_classes:
            raise ValueError(f"labels must be < num_classes = {num_classes}, found {int(y.max())}")
    return num_classes


def _with_bias(x):
    return jnp.concatenate([x, jnp.ones(x.shape[:-1] + (1,), x.dtype)], axis=-1)


def _accuracy(x, weights, y):
    return jnp.mean(jnp.argmax(_with_bias(x) @ weights, axis=-1) == y).astype(x.dtype)


@functools.partial(jax.jit, static_argnames=("num_classes",))
def _fit_probes(x, y, ridge, *, num_classes):
    d = x.shape[-1]
    onehot = jax.nn.one_hot(y, num_classes, dtype=x.dtype)
    penalty = jnp.sqrt(jnp.asarray(ridge, x.dtype)) * jnp.eye(d, d + 1, dtype=x.dtype)
    rhs = jnp.concatenate([onehot, jnp.zeros((d, num_classes), x.dtype)])

    def fit(xt):
        return jnp.linalg.lstsq(jnp.concatenate([_with_bias(xt), penalty]), rhs)[0]

    weights = jax.vmap(fit)(x)
    return weights, jax.vmap(_accuracy, in_axes=(0, 0, None))(x, weights, y)


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
    - `labels`: ``(N,)`` integer classes in 0 … C-1.
    - `test_features`, `test_labels`: optional held-out ``(L, M, d)`` and ``(M,)``; give both or neither.
    - `ridge`: λ ≥ 0 (0: minimum-norm least squares).
    - `num_classes`: C; inferred as max label + 1 when omitted.

    **Returns:** `ProbeResult` (``weights (L, d + 1, C)``, ``accuracy (L,)``, ``train_accuracy (L,)``).

    **Raises:** `ValueError`/`TypeError` for features that are not ``(L, N, d)`` floats with finite
    values, labels of the wrong shape/dtype/range, test data without its labels or of a different
    L/d, or λ < 0.
    """
    x = _check_features("features", features)
    y = check_labels("labels", labels, x.shape[1])
    if (test_features is None) != (test_labels is None):
        raise ValueError("give both test_features and test_labels, or neither")
    _check_ridge(ridge)
    if test_features is None:
        c = _num_classes(num_classes, y)
        weights, acc = _fit_probes(x, y, ridge, num_classes=c)
        return ProbeResult(weights, acc, acc)
    xt = _check_features("test_features", test_features)
    if xt.shape[0] != x.shape[0] or xt.shape[2] != x.shape[2]:
        raise ValueError(f"test_features must be (L={x.shape[0]}, M, d={x.shape[2]}) like features, got {xt.shape}")
    yt = check_labels("test_labels", test_labels, xt.shape[1])
    c = _num_classes(num_classes, y, yt)
    weights, acc = _fit_probes(x, y, ridge, num_classes=c)
    test_acc = jax.vmap(_accuracy, in_axes=(0, 0, None))(xt.astype(x.dtype), weights, yt)
    return ProbeResult(weights, test_acc, acc)


def _check_ridge(ridge):
    if isinstance(ridge, jax.core.Tracer):
        return
    if isinstance(ridge, bool) or not isinstance(ridge, numbers.Real | np.ndarray | jax.Array) or np.ndim(ridge):
        raise TypeError(f"ridge must be a real number >= 0, got {ridge!r}")
    if not np.isfinite(float(ridge)) or float(ridge) < 0:
        raise ValueError(f"ridge must be a finite number >= 0, got {ridge!r}")


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
    - `labels`: ``(N,)`` integer classes.
    - `num_classes`: C; inferred as max label + 1 when omitted.

    **Returns:** ``(L,)`` ratios ≥ 0.

    **Raises:** `ValueError`/`TypeError` as `linear_probe`.
    """
    x = _check_features("features", features)
    y = check_labels("labels", labels, x.shape[1])
    return _fisher(x, y, num_classes=_num_classes(num_classes, y))


def class_separability(
    residuals: Float[Array, "T N n"],
    labels: Int[Array, " N"],
    *,
    x0: Float[Array, "N n"] | None = None,
    h=1.0,
    test_residuals: Float[Array, "T M n"] | None = None,
    test_labels: Int[Array, " M"] | None = None,
    test_x0: Float[Array, "M n"] | None = None,
    ridge=1e-3,
    num_classes: int | None = None,
) -> Separability:
    """Probe accuracy and Fisher ratio per layer, on the residuals r_t and on their running integral.

    The integral S_t = x_0 + h Σ_{s<t} r_s (`resflow.running_integral`) is what a readout at
    depth t would see; a high probe accuracy on S_t for t < T means the integrated transient
    already classifies before the last layer (claim 5), and on r_t that the residual trajectories
    themselves are separable by class (claim 4).

    **Arguments:**

    - `residuals`: ``(T, N, n)`` residuals r_0 … r_{T-1} (`resflow.residuals`).
    - `labels`: ``(N,)`` integer classes.
    - `x0`: ``(N, n)`` inputs of the trunk; without it the integral starts from 0.
    - `h`: step size of the integral.
    - `test_residuals`, `test_labels`, `test_x0`: held-out data (same conventions); the probes are
      fitted on the training data and scored on these.
    - `ridge`, `num_classes`: as in `linear_probe`.

    **Returns:** `Separability` (``residual_accuracy``, ``integral_accuracy``, ``residual_fisher``,
    ``integral_fisher``). The Fisher ratios are those of the training data.

    **Raises:** `ValueError`/`TypeError` as `linear_probe` and `resflow.running_integral`, and when
    only one of `x0`, `test_x0` is given together with test data.
    """
    r = _check_features("residuals", residuals)
    y = check_labels("labels", labels, r.shape[1])
    have_test = test_residuals is not None or test_labels is not None
    if have_test and (x0 is None) != (test_x0 is None):
        raise ValueError("give x0 and test_x0 together (the integral must start the same way for both)")
    c = _num_classes(num_classes, y) if test_labels is None else _num_classes(num_classes, y, test_labels)
    s = running_integral(r, h=h, x0=x0)
    test = {}
    if have_test:
        if test_residuals is None or test_labels is None:
            raise ValueError("give both test_residuals and test_labels, or neither")
        rt = _check_features("test_residuals", test_residuals)
        test = dict(
            r=dict(test_features=rt, test_labels=test_labels),
            s=dict(test_features=running_integral(rt, h=h, x0=test_x0), test_labels=test_labels),
        )
    probe_r = linear_probe(r, y, ridge=ridge, num_classes=c, **test.get("r", {}))
    probe_s = linear_probe(s, y, ridge=ridge, num_classes=c, **test.get("s", {}))
    return Separability(
        probe_r.accuracy, probe_s.accuracy, fisher_ratio(r, y, num_classes=c), fisher_ratio(s, y, num_classes=c)
    )
