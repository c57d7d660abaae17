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
- ``mnist`` / ``fashion-mnist``: the user's own files: a folder with the four standard IDX
  files (gzipped or not) or an ``.npz`` with x_train / y_train / x_test / y_test.

Standardisation (per input dimension, mean 0 / std 1) is fitted on the training split only.
`batch_indices` gives deterministic shuffled mini-batches from a `jax.random` key.
"""

from __future__ import annotations

import gzip
import math
import os
import random
import struct
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from ._checks import check_int

__all__ = [
    "DATASETS",
    "Dataset",
    "load_dataset",
    "circles",
    "digits",
    "mnist1d",
    "mnist",
    "read_idx",
    "standardize",
    "batch_indices",
    "default_cache_dir",
]

DATASETS = ("circles", "digits", "mnist1d", "mnist", "fashion-mnist")

IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


class Dataset(NamedTuple):
    """Train/test inputs ``(samples, dim)`` float32, labels ``(samples,)`` int32, metadata."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    meta: dict


def _make(name, x_train, y_train, x_test, y_test, **meta) -> Dataset:
    x_train = np.asarray(x_train, np.float32).reshape(len(x_train), -1)
    x_test = np.asarray(x_test, np.float32).reshape(len(x_test), -1)
    y_train = np.asarray(y_train, np.int32)
    y_test = np.asarray(y_test, np.int32)
    n_classes = int(max(y_train.max(), y_test.max())) + 1
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


def _check_fraction(name, value):
    if not (isinstance(value, int | float) and 0.0 < value < 1.0):
        raise ValueError(f"{name} must be a number in (0, 1), got {value!r}")


def _check_count(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def circles(*, seed: int = 0, n_train: int = 1000, n_test: int = 1000, radii=(0.5, 1.0), noise: float = 0.0) -> Dataset:
    """Two concentric circles, one class per radius (the paper's toy problem).

    Points are ``r_k (cos θ, sin θ) + noise·N(0, I)`` with θ uniform on [0, 2π) and the class
    k drawn uniformly from {0, 1}; train and test come from independent draws of one seeded
    generator.

    **Raises:** `ValueError` for non-positive sizes, non-positive or repeated radii (two classes
    on one circle cannot be told apart), or negative noise.
    """
    _check_count("n_train", n_train)
    _check_count("n_test", n_test)
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
    return _make("circles", xtr, ytr, xte, yte, source="generated", seed=seed, radii=list(radii), noise=noise)


def _split(x, y, seed, test_fraction):
    _check_fraction("test_fraction", test_fraction)
    perm = np.random.default_rng(seed).permutation(len(x))
    n_test = max(1, int(round(test_fraction * len(x))))
    te, tr = perm[:n_test], perm[n_test:]
    return x[tr], y[tr], x[te], y[te]


def digits(*, seed: int = 0, test_fraction: float = 0.2) -> Dataset:
    """scikit-learn's bundled 8x8 digits (1797 × 64, 10 classes), seeded train/test split."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return _make("digits", *_split(x, y, seed, test_fraction), source="sklearn.datasets.load_digits", seed=seed)


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
    _check_count("num_samples", num_samples, minimum=20)
    _check_fraction("train_split", train_split)
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
        tmp = file.with_suffix(f".tmp{os.getpid()}.npz")
        np.savez(tmp, x_train=d["x"], y_train=d["y"], x_test=d["x_test"], y_test=d["y_test"])
        os.replace(tmp, file)
    with np.load(file) as f:
        arrays = [f[k] for k in ("x_train", "y_train", "x_test", "y_test")]
    return _make("mnist1d", *arrays, source="mnist1d.data.make_dataset", seed=seed, cache=str(file))


def read_idx(path) -> np.ndarray:
    """An IDX file (the MNIST format; ``.gz`` is decompressed) as a numpy array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    dtypes = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if zero != 0 or dtype_code not in dtypes:
        raise ValueError(f"{path} is not an IDX file (bad magic number)")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=dtypes[dtype_code], offset=4 + 4 * ndim)
    if arr.size != math.prod(shape):
        raise ValueError(f"{path}: IDX header says shape {shape} but holds {arr.size} values")
    return arr.reshape(shape)


def mnist(path, *, name: str = "mnist") -> Dataset:
    """MNIST or Fashion-MNIST from local files (never downloaded).

    `path` is either an ``.npz`` with arrays x_train, y_train, x_test, y_test, or a folder
    with the four standard IDX files ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` (each optionally ``.gz``).
    Pixels are scaled to [0, 1] before standardisation.

    **Raises:** `FileNotFoundError` naming the expected files when they are absent;
    `ValueError` for an .npz that lacks one of the four arrays.
    """
    expected = ", ".join(IDX_FILES.values())
    if path is None:
        raise FileNotFoundError(
            f"{name} is read from local files: pass path=<folder with {expected} (optionally .gz)> "
            "or an .npz with x_train, y_train, x_test, y_test"
        )
    path = Path(path)
    if path.is_file() and path.suffix == ".npz":
        with np.load(path) as f:
            missing = [k for k in IDX_FILES if k not in f.files]
            if missing:
                raise ValueError(f"{path} lacks arrays {missing}; expected x_train, y_train, x_test, y_test")
            arrays = {k: f[k] for k in IDX_FILES}
    elif path.is_dir():
        arrays = {}
        for k, stem in IDX_FILES.items():
            found = [path / (stem + s) for s in ("", ".gz") if (path / (stem + s)).is_file()]
            if not found:
                raise FileNotFoundError(f"{name}: {path} has no {stem} or {stem}.gz; expected the files {expected}")
            arrays[k] = read_idx(found[0])
    else:
        raise FileNotFoundError(f"{name}: {path} is neither a folder with {expected} (optionally .gz) nor an .npz file")
    scale = 255.0 if arrays["x_train"].dtype == np.uint8 else 1.0
    return _make(
        name,
        arrays["x_train"] / scale,
        arrays["y_train"],
        arrays["x_test"] / scale,
        arrays["y_test"],
        source=str(path),
    )


def standardize(ds: Dataset, *, eps: float = 1e-6) -> Dataset:
    """Per-dimension standardisation with mean and std of the *training* split only.

    x ↦ (x − μ_train) / (σ_train + eps); constant pixels (σ = 0) map to 0.
    """
    mu = ds.x_train.mean(0, dtype=np.float64)
    sd = ds.x_train.std(0, dtype=np.float64) + eps
    meta = dict(ds.meta, standardized=True, mean=mu.tolist(), std=sd.tolist())
    return ds._replace(
        x_train=((ds.x_train - mu) / sd).astype(np.float32),
        x_test=((ds.x_test - mu) / sd).astype(np.float32),
        meta=meta,
    )


_standardize = standardize  # `load_dataset` has an argument of the same name


def load_dataset(name: str, *, seed: int = 0, path=None, standardize: bool = True, **options) -> Dataset:
    """One entry point for every data set.

    **Arguments:**

    - `name`: one of ``circles``, ``digits``, ``mnist1d``, ``mnist``, ``fashion-mnist``.
    - `seed`: seed of the generator / split (circles, digits, mnist1d).
    - `path`: local files for mnist / fashion-mnist (see `mnist`).
    - `standardize`: standardise with training-split statistics (default True).
    - `options`: passed to the loader (e.g. ``noise`` for circles, ``num_samples`` and
      ``cache_dir`` for mnist1d, ``test_fraction`` for digits).

    **Returns:** `Dataset`.

    **Raises:** `ValueError` for an unknown name; `FileNotFoundError` for missing files.
    """
    if name not in DATASETS:
        raise ValueError(f"data set must be one of {list(DATASETS)}, got {name!r}")
    if name == "circles":
        ds = circles(seed=seed, **options)
    elif name == "digits":
        ds = digits(seed=seed, **options)
    elif name == "mnist1d":
        ds = mnist1d(seed=seed, **options)
    else:
        ds = mnist(path, name=name, **options)
    return _standardize(ds) if standardize else ds


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
