"""What is done to a `Dataset` before training: seeded train/test splits, standardisation with
training-split statistics, and shuffled mini-batches.

Standardisation (per input dimension, mean 0 / std 1) is fitted on the training split only;
stds below a floor (a fraction of the median std) are raised to it, so that features that
hardly vary in training do not amplify small changes (see `standardize`).
`batch_indices` gives deterministic shuffled mini-batches from a `jax.random` key.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from .._checks import check_int
from ._dataset import Dataset, check_fraction

__all__ = ["STD_FLOOR", "standardize", "split_dataset", "batch_indices"]

# Standardisation divides feature j by max(σ_j, STD_FLOOR · median σ): a feature constant in
# training amplifies a change at most 1 / STD_FLOOR times as much as a typical one.
STD_FLOOR = 0.1


def split_dataset(x, y, seed, test_fraction):
    check_fraction("test_fraction", test_fraction)
    perm = np.random.default_rng(seed).permutation(len(x))
    n_test = max(1, int(round(test_fraction * len(x))))
    te, tr = perm[:n_test], perm[n_test:]
    return x[tr], y[tr], x[te], y[te]


def standardize(ds: Dataset, *, floor: float = STD_FLOOR) -> Dataset:
    """Per-dimension standardisation with mean and std of the *training* split only.

    x_j ↦ (x_j − μ_j) / s_j with s_j = max(σ_j, floor · σ_ref) + 10⁻⁶, where μ_j, σ_j are the
    training split's mean and (population) std of feature j and σ_ref is the median of the
    nonzero σ_j (1 when no feature varies). The floor bounds how much any raw change is
    amplified: |Δ standardised| < |Δ raw| / (floor · σ_ref), at most 1 / `floor` times a
    typical feature's factor 1 / σ_ref. Without it a feature that is (nearly) constant in
    training, such as an image's corner pixel, would turn a tiny change of its value into a
    huge one and decide the prediction. Features with σ_j ≥ floor · σ_ref get mean 0 and
    std 1 (to within 10⁻⁶ relative) on the training split; a constant one maps to 0 there.

    **Arguments:** `ds`, a `Dataset`; `floor`, the fraction of σ_ref below which a feature's
    std is not used (in (0, 1]; default `STD_FLOOR`).

    **Returns:** the `Dataset` with standardised float32 inputs; its meta records
    ``standardized``, ``mean`` (μ), ``std`` (the divisors s) and ``std_floor`` (`floor`).

    **Raises:** `ValueError` unless 0 < `floor` <= 1.
    """
    if isinstance(floor, bool) or not isinstance(floor, int | float) or not 0.0 < floor <= 1.0:
        raise ValueError(f"floor must be a number in (0, 1], got {floor!r}")
    mu = ds.x_train.mean(0, dtype=np.float64)
    sigma = ds.x_train.std(0, dtype=np.float64)
    varying = sigma[sigma > 0]
    ref = float(np.median(varying)) if len(varying) else 1.0
    # + 1e-6 as before the floor existed: data without near-constant features standardise
    # to the same bits as then, so earlier runs and published numbers stay reproducible.
    sd = np.maximum(sigma, floor * ref) + 1e-6
    meta = dict(ds.meta, standardized=True, mean=mu.tolist(), std=sd.tolist(), std_floor=float(floor))
    return ds._replace(
        x_train=((ds.x_train - mu) / sd).astype(np.float32),
        x_test=((ds.x_test - mu) / sd).astype(np.float32),
        meta=meta,
    )


def batch_indices(
    key: jax.Array, n: int, batch_size: int
) -> tuple[Int[Array, "steps batch"], Float[Array, "steps batch"]]:
    """Shuffled mini-batch indices of one epoch, with a fixed shape.

    A permutation of ``range(n)`` (from `key`) cut into ``ceil(n / batch_size)`` batches; the
    last batch is padded with index 0 and weight 0, so every sample is used once per epoch and
    every epoch has the same shapes (no recompilation).

    **Returns:** ``(indices, weights)``, both ``(steps, batch_size)``; weights are 1 or 0.

    **Raises:** `ValueError`/`TypeError` unless `n` and `batch_size` are integers >= 1.
    """
    n, batch_size = check_int("n", n), check_int("batch_size", batch_size)
    steps = -(-n // batch_size)
    perm = jax.random.permutation(key, n)
    pad = steps * batch_size - n
    idx = jnp.concatenate([perm, jnp.zeros(pad, perm.dtype)]).reshape(steps, batch_size)
    w = (jnp.arange(steps * batch_size) < n).astype(jnp.float32).reshape(steps, batch_size)
    return idx, w
