"""The `Dataset` type and the checks every loader's arrays pass before anything trains.

`checked_dataset` turns a loader's raw arrays into a checked `Dataset` (finite float32 inputs of
one dimension, int32 labels 0 … K−1, a metadata dict) or raises a `DataError` that names the
source and the problem.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .._errors import DataError

__all__ = ["Dataset", "MAX_CLASSES", "checked_dataset", "check_fraction", "check_count"]

MAX_CLASSES = 1000


class Dataset(NamedTuple):
    """Train/test inputs ``(samples, dim)`` float32, labels ``(samples,)`` int32, metadata."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    meta: dict


def _inputs(where: str, split: str, x) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise DataError(f"{where}: {split} must be numeric, got dtype {x.dtype}")
    if x.ndim < 2 or x.shape[0] == 0 or math.prod(x.shape[1:]) == 0:
        raise DataError(f"{where}: {split} must be a non-empty (samples, features...) array, got shape {x.shape}")
    x = x.astype(np.float32).reshape(len(x), -1)
    if not np.all(np.isfinite(x)):
        raise DataError(f"{where}: {split} holds non-finite values (NaN or inf)")
    return x


def _labels(where: str, split: str, y, n: int) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n:
        raise DataError(f"{where}: {split} must hold one label per sample ({n}), got shape {y.shape}")
    if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)):
        raise DataError(f"{where}: {split} must hold integer class labels, got dtype {y.dtype}")
    if np.issubdtype(y.dtype, np.floating):
        bad = ~np.isfinite(y) | (y != np.round(y))
        if bad.any():
            raise DataError(f"{where}: {split} must hold integer class labels, found {y[bad][0]!r}")
    if y.min() < 0:
        raise DataError(f"{where}: {split} labels must be >= 0, found {y.min()!r}")
    return y.astype(np.int64)


def _check_label_range(where: str, n_classes: int, max_classes: int, y_train, y_test) -> None:
    if n_classes > max_classes:
        raise DataError(
            f"{where}: labels go up to {n_classes - 1}, i.e. {n_classes} classes, more than max_classes={max_classes} "
            "(pass a larger max_classes if that is intended)"
        )
    missing = np.setdiff1d(np.arange(n_classes), np.concatenate([y_train, y_test]))
    if len(missing):
        raise DataError(
            f"{where}: labels must be 0 … K−1; they go up to {n_classes - 1} but class(es) "
            f"{missing[:5].tolist()}{'…' if len(missing) > 5 else ''} occur in neither split"
        )


def _check_train_classes(where: str, y_train, y_test, hint: str) -> None:
    seen = np.unique(y_train)
    if len(seen) < 2:
        raise DataError(f"{where}: every training label is {seen[0]}; a classifier needs at least 2 classes{hint}")
    only_test = np.setdiff1d(y_test, y_train)
    if len(only_test):
        raise DataError(
            f"{where}: class(es) {only_test[:5].tolist()} occur only in the test split ({len(y_test)} of "
            f"{len(y_train) + len(y_test)} samples), so no model can learn them{hint}"
        )


def checked_dataset(
    name,
    x_train,
    y_train,
    x_test,
    y_test,
    *,
    n_classes: int | None = None,
    max_classes: int = MAX_CLASSES,
    hint: str = "",
    **meta,
) -> Dataset:
    """A checked `Dataset`: finite float32 inputs of one dimension, labels 0 … K−1.

    **Raises:** `DataError` naming the source for non-numeric or non-finite inputs, sample
    and label counts that disagree, train/test dimensions that differ, labels that are not
    non-negative integers, labels >= `n_classes` when the data set's class count is known,
    more than `max_classes` classes, or (count unknown: read from the labels) a label range
    with classes that occur in neither split (e.g. a stray label 200 among 0 … 9), fewer than
    2 classes in the training split, or a class that occurs only in the test split (no model
    can learn it); `hint` is appended to the last two messages.
    """
    where = str(meta.get("source", name))
    x_train, x_test = _inputs(where, "x_train", x_train), _inputs(where, "x_test", x_test)
    if x_test.shape[1] != x_train.shape[1]:
        raise DataError(f"{where}: x_test has {x_test.shape[1]} features per sample but x_train has {x_train.shape[1]}")
    y_train = _labels(where, "y_train", y_train, len(x_train))
    y_test = _labels(where, "y_test", y_test, len(x_test))
    top = int(max(y_train.max(), y_test.max()))
    if n_classes is not None:
        if top >= n_classes:
            raise DataError(
                f"{where}: {name} has {n_classes} classes (labels 0 … {n_classes - 1}), found a label {top}"
            )
    else:
        n_classes = top + 1
        _check_label_range(where, n_classes, max_classes, y_train, y_test)
        _check_train_classes(where, y_train, y_test, hint)
    y_train, y_test = y_train.astype(np.int32), y_test.astype(np.int32)
    info = {
        "name": name,
        "dim": int(x_train.shape[1]),
        "n_classes": n_classes,
        "n_train": len(x_train),
        "n_test": len(x_test),
        "standardized": False,
    }
    info.update(meta)
    return Dataset(x_train, y_train, x_test, y_test, info)


def check_fraction(name, value):
    if not (isinstance(value, int | float) and 0.0 < value < 1.0):
        raise ValueError(f"{name} must be a number in (0, 1), got {value!r}")


def check_count(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
