"""Data sets for training, behind one interface; nothing is downloaded at run time.

    ds = load_dataset(name, *, seed=0, path=None, standardize=True, **options) -> Dataset

returns ``Dataset(x_train, y_train, x_test, y_test, meta)``: float32 numpy inputs
``(samples, dim)``, int32 labels, and a metadata dict (name, dim, n_classes, sizes, source,
standardisation statistics). Sources:

- ``circles``: the paper's two concentric circles (radii 0.5 and 1.0, one class each,
  1000 train / 1000 test), angles uniform, optional Gaussian noise, from a seed.
- ``digits``: scikit-learn's bundled 8x8 digits (1797 images, 64 dims, 10 classes), split
  by a seeded permutation.
- ``mnist1d``: MNIST-1D (40 dims, 10 classes) generated offline by the `mnist1d` package's
  ``make_dataset`` (never its downloading ``get_dataset``), cached as ``.npz``.
- ``mnist`` / ``fashion-mnist``: local files: a folder with the four standard IDX files
  (gzipped or not) or an ``.npz`` with x_train / y_train / x_test / y_test. Fashion-MNIST
  defaults to the folder of Debian's ``dataset-fashion-mnist`` package (``make data``).
- ``csv``: the user's own table, one sample per row with a label column.

Every loader checks what it reads before anything trains, and reports a bad file as a
`DataError` that names the file and the problem.

The checks and the `Dataset` type are in `_dataset`, the file readers in `_files`, the
standardisation and batching in `_preprocess`; this module holds the generated and bundled
sets and `load_dataset`.
"""

from __future__ import annotations

import io
import os
import random
from pathlib import Path

import numpy as np

from ._dataset import Dataset, check_count, check_fraction, checked_dataset
from ._files import write_atomic
from ._preprocess import split_dataset
from ._preprocess import standardize as _standardize  # `load_dataset` has an argument of the same name
from ._readers import csv, mnist

__all__ = ["BUILT_IN", "DATASETS", "circles", "digits", "mnist1d", "default_cache_dir", "load_dataset"]

BUILT_IN = ("circles", "digits", "mnist1d")
DATASETS = (*BUILT_IN, "mnist", "fashion-mnist", "csv")


def circles(*, seed: int = 0, n_train: int = 1000, n_test: int = 1000, radii=(0.5, 1.0), noise: float = 0.0) -> Dataset:
    """Two concentric circles, one class per radius (the paper's toy problem).

    Points are ``r_k (cos θ, sin θ) + noise·N(0, I)`` with θ uniform on [0, 2π) and the class
    k drawn uniformly from {0, 1}; train and test come from independent draws of one seeded
    generator.

    **Raises:** `ValueError` for non-positive sizes, non-positive or repeated radii (two classes
    on one circle cannot be told apart), or negative noise.
    """
    check_count("n_train", n_train)
    check_count("n_test", n_test)
    radii = tuple(float(r) for r in radii)
    if len(radii) < 2 or not min(radii) > 0 or not np.all(np.isfinite(radii)) or len(set(radii)) < len(radii):
        raise ValueError(f"radii must hold >= 2 distinct finite positive numbers (one class each), got {radii}")
    if not noise >= 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    rng = np.random.default_rng(seed)

    def draw(n):
        y = rng.integers(0, len(radii), n)
        theta = rng.uniform(0.0, 2 * np.pi, n)
        r = np.asarray(radii)[y]
        x = np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1) + noise * rng.standard_normal((n, 2))
        return x, y

    xtr, ytr = draw(n_train)
    xte, yte = draw(n_test)
    return checked_dataset("circles", xtr, ytr, xte, yte, source="generated", seed=seed, radii=list(radii), noise=noise)


def digits(*, seed: int = 0, test_fraction: float = 0.2) -> Dataset:
    """scikit-learn's bundled 8x8 digits (1797 × 64, 10 classes), seeded train/test split."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return checked_dataset(
        "digits", *split_dataset(x, y, seed, test_fraction), source="sklearn.datasets.load_digits", seed=seed
    )


def default_cache_dir() -> Path:
    """``$RESFLOW_CACHE`` if set, else ``~/.cache/resflow``."""
    return Path(os.environ.get("RESFLOW_CACHE", Path.home() / ".cache" / "resflow"))


def mnist1d(*, num_samples: int = 5000, seed: int = 42, train_split: float = 0.8, cache_dir=None) -> Dataset:
    """MNIST-1D (40-dim signals, 10 classes), generated offline and cached.

    Calls ``mnist1d.data.make_dataset`` with the package's default transform arguments and
    `num_samples`, `seed`, `train_split`; the result is cached as
    ``<cache_dir>/mnist1d_<num_samples>_<seed>_<train_split>.npz`` (written atomically), so
    the (slow, pure-Python) generator runs once. Python's and numpy's global random states,
    which the generator reseeds, are restored afterwards.

    **Raises:** `ValueError` for fewer than 20 samples (two per class).
    """
    check_count("num_samples", num_samples, minimum=20)
    check_fraction("train_split", train_split)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    file = cache / f"mnist1d_{num_samples}_{seed}_{train_split}.npz"
    if not file.exists():
        from mnist1d.data import get_dataset_args, make_dataset

        args = get_dataset_args()
        args.num_samples, args.seed, args.train_split = num_samples, seed, train_split
        py_state, np_state = random.getstate(), np.random.get_state()
        try:
            d = make_dataset(args)
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
        cache.mkdir(parents=True, exist_ok=True)
        blob = io.BytesIO()
        np.savez(blob, x_train=d["x"], y_train=d["y"], x_test=d["x_test"], y_test=d["y_test"])
        write_atomic(file, blob.getvalue())
    with np.load(file) as f:
        arrays = [f[k] for k in ("x_train", "y_train", "x_test", "y_test")]
    return checked_dataset("mnist1d", *arrays, source="mnist1d.data.make_dataset", seed=seed, cache=str(file))


def load_dataset(name: str, *, seed: int = 0, path=None, standardize: bool = True, **options) -> Dataset:
    """One entry point for every data set.

    **Arguments:**

    - `name`: one of ``circles``, ``digits``, ``mnist1d`` (built in), ``mnist``,
      ``fashion-mnist`` (IDX or .npz files; fashion-mnist defaults to Debian's package
      folder), ``csv`` (the user's table, see `csv`).
    - `seed`: seed of the generator / split (circles, digits, mnist1d).
    - `path`: local files for mnist / fashion-mnist (see `mnist`) and csv; refused for the
      built-in sets, which read none.
    - `standardize`: standardise with training-split statistics (default True).
    - `options`: passed to the loader (e.g. ``noise`` for circles, ``num_samples`` and
      ``cache_dir`` for mnist1d, ``test_fraction`` for digits).

    **Returns:** `Dataset`.

    **Raises:** `ValueError` for an unknown name or a path given to a built-in set;
    `FileNotFoundError` for missing files; `DataError` (a `ValueError`) naming the file for
    bad contents: broken gzip or zip archives, short headers, bad magic numbers, counts
    that disagree, non-finite values, non-integer or negative labels, more than
    `MAX_CLASSES` classes, (csv and the generated sets) fewer than 2 classes in the training
    split or classes that occur only in the test split, or train and test dimensions that
    differ.
    """
    if name not in DATASETS:
        raise ValueError(f"data set must be one of {list(DATASETS)}, got {name!r}")
    if path is not None and name in BUILT_IN:
        raise ValueError(f"data set {name!r} is built in and reads no file, but a path was given: {path}")
    if name == "csv":
        if path is None:
            raise FileNotFoundError("csv reads the user's file: pass path=<file.csv> (CLI: --data-path)")
        ds = csv(path, seed=seed, **options)
    elif name == "circles":
        ds = circles(seed=seed, **options)
    elif name == "digits":
        ds = digits(seed=seed, **options)
    elif name == "mnist1d":
        ds = mnist1d(seed=seed, **options)
    else:
        ds = mnist(path, name=name, **options)
    return _standardize(ds) if standardize else ds
