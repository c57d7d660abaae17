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

Standardisation (per input dimension, mean 0 / std 1) is fitted on the training split only;
stds below a floor (a fraction of the median std) are raised to it, so that features that
hardly vary in training do not amplify small changes (see `standardize`).
`batch_indices` gives deterministic shuffled mini-batches from a `jax.random` key.
"""

from __future__ import annotations

import csv as _csv
import gzip
import io
import math
import os
import random
import struct
import zipfile
import zlib
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from .._checks import check_int
from .._errors import DataError
from ._files import write_atomic

__all__ = [
    "DATASETS",
    "Dataset",
    "load_dataset",
    "circles",
    "digits",
    "mnist1d",
    "mnist",
    "csv",
    "read_idx",
    "DataError",
    "standardize",
    "STD_FLOOR",
    "batch_indices",
    "default_cache_dir",
]

BUILT_IN = ("circles", "digits", "mnist1d")
DATASETS = (*BUILT_IN, "mnist", "fashion-mnist", "csv")

IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


MAX_CLASSES = 1000
# Standardisation divides feature j by max(σ_j, STD_FLOOR · median σ): a feature constant in
# training amplifies a change at most 1 / STD_FLOOR times as much as a typical one.
STD_FLOOR = 0.1
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


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


def _make(
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
        blob = io.BytesIO()
        np.savez(blob, x_train=d["x"], y_train=d["y"], x_test=d["x_test"], y_test=d["y_test"])
        write_atomic(file, blob.getvalue())
    with np.load(file) as f:
        arrays = [f[k] for k in ("x_train", "y_train", "x_test", "y_test")]
    return _make("mnist1d", *arrays, source="mnist1d.data.make_dataset", seed=seed, cache=str(file))


_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path) -> np.ndarray:
    """An IDX file (the MNIST format; ``.gz`` is decompressed) as a numpy array.

    The header is 2 zero bytes, a dtype code, the number of dimensions d, then d big-endian
    uint32 sizes; the data must hold exactly their product of values.

    **Raises:** `DataError` naming the file for a broken or truncated gzip stream, a header
    that is too short, a bad magic number, or a data size that disagrees with the header.
    """
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            data = path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        kind = "not a complete gzip file" if path.suffix == ".gz" else "unreadable"
        raise DataError(f"{path}: {kind} ({e})") from None
    if len(data) < 4:
        raise DataError(f"{path}: IDX header too short ({len(data)} bytes; expected at least 4)")
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code not in _IDX_DTYPES or not 1 <= ndim <= 4:
        raise DataError(f"{path}: not an IDX file (bad magic number {data[:4].hex()})")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: IDX header too short ({len(data)} bytes; {ndim} dimensions need {header})")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    itemsize = np.dtype(_IDX_DTYPES[dtype_code]).itemsize
    expected = math.prod(shape) * itemsize
    if len(data) - header != expected:
        raise DataError(
            f"{path}: IDX header says shape {shape} ({expected} bytes of data) but the file holds "
            f"{len(data) - header} bytes{' (truncated)' if len(data) - header < expected else ''}"
        )
    return np.frombuffer(data, dtype=_IDX_DTYPES[dtype_code], offset=header).reshape(shape)


def _read_npz(path: Path, keys) -> dict:
    """The arrays `keys` of an .npz, or a `DataError` naming the file and what is wrong."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:2] != b"PK":
        what = "empty" if not head else "not an .npz (zip) archive"
        raise DataError(f"{path}: {what}; expected an .npz with arrays {', '.join(keys)}")
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in keys if k not in f.files]
            if missing:
                raise DataError(f"{path} lacks arrays {missing}; expected {', '.join(keys)}")
            return {k: f[k] for k in keys}
    except DataError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error) as e:
        raise DataError(f"{path}: a damaged or truncated .npz ({e})") from None


def _check_idx_pair(x_file: Path, x: np.ndarray, y_file: Path, y: np.ndarray) -> None:
    """An images file and its labels file that belong together: images ``(count, rows, …)``,
    labels ``(count,)``, one label per image. **Raises:** `DataError` naming the file(s)."""
    if x.ndim < 2:
        raise DataError(f"{x_file}: holds shape {x.shape}; expected images (count, rows, columns) (a labels file?)")
    if y.ndim != 1:
        raise DataError(f"{y_file}: holds shape {y.shape}; expected labels (count,) (an images file?)")
    if len(x) != len(y):
        raise DataError(f"{x_file} holds {len(x)} images but {y_file} holds {len(y)} labels; expected one per image")


def _same_array(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)


def mnist(path, *, name: str = "mnist") -> Dataset:
    """MNIST or Fashion-MNIST from local files (never downloaded).

    `path` is either an ``.npz`` with arrays x_train, y_train, x_test, y_test, or a folder
    with the four standard IDX files ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` (each optionally ``.gz``; a file
    present both plain and gzipped must hold the same data in both).
    Pixels are scaled to [0, 1] before standardisation.

    **Raises:** `FileNotFoundError` naming the expected files when they are absent (for
    Fashion-MNIST without a path and without the package: saying ``make data``); `DataError`
    (a `ValueError`) naming the file for a damaged file, a plain and a gzipped file of
    different contents (naming both), an .npz that lacks one of the four arrays, an images
    file that is not ``(count, rows, …)``, a labels file that is not ``(count,)``, or image
    and label counts that differ.
    """
    expected = ", ".join(IDX_FILES.values())
    hint = (
        f" (`make data` installs Debian's dataset-fashion-mnist into {FASHION_MNIST_DIR})"
        if name == "fashion-mnist"
        else ""
    )
    if path is None and name == "fashion-mnist" and FASHION_MNIST_DIR.is_dir():
        path = FASHION_MNIST_DIR
    if path is None:
        raise FileNotFoundError(
            f"{name} is read from local files: pass path=<folder with {expected} (optionally .gz)> "
            f"or an .npz with x_train, y_train, x_test, y_test{hint}"
        )
    path = Path(path)
    if path.is_file() and path.suffix == ".npz":
        arrays = _read_npz(path, IDX_FILES)
    elif path.is_dir():
        arrays, files = {}, {}
        for k, stem in IDX_FILES.items():
            found = [path / (stem + s) for s in ("", ".gz") if (path / (stem + s)).is_file()]
            if not found:
                raise FileNotFoundError(
                    f"{name}: {path} has no {stem} or {stem}.gz; expected the files {expected}{hint}"
                )
            arrays[k] = read_idx(found[0])
            files[k] = found[0]
            if len(found) == 2 and not _same_array(arrays[k], read_idx(found[1])):
                raise DataError(
                    f"{found[0]} and {found[1]} hold different data; keep one of them "
                    "(a folder may hold each file plain or gzipped, not two versions)"
                )
        for split in ("train", "test"):
            _check_idx_pair(files[f"x_{split}"], arrays[f"x_{split}"], files[f"y_{split}"], arrays[f"y_{split}"])
    else:
        raise FileNotFoundError(f"{name}: {path} is neither a folder with {expected} (optionally .gz) nor an .npz file")
    scale = 255.0 if arrays["x_train"].dtype == np.uint8 else 1.0
    return _make(
        name,
        arrays["x_train"] / scale if scale != 1.0 else arrays["x_train"],
        arrays["y_train"],
        arrays["x_test"] / scale if scale != 1.0 else arrays["x_test"],
        arrays["y_test"],
        n_classes=10,
        source=str(path),
    )


def _number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _label_index(path: Path, label_column, header: list[str] | None, width: int) -> int:
    """The label column's index: a header name, else an integer (or an integer string) index."""
    if isinstance(label_column, str):
        if header is not None and label_column in header:
            return header.index(label_column)
        try:
            label_column = int(label_column)
        except ValueError:
            if label_column == "label":
                return width - 1
            if header is None:
                raise DataError(
                    f"{path}: has no header row, so no column is named {label_column!r}; "
                    f"give the label column as an index 0 … {width - 1} (or -1 for the last)"
                ) from None
            raise DataError(f"{path}: no column named {label_column!r}; columns are {header}") from None
    if isinstance(label_column, bool) or not isinstance(label_column, int | np.integer):
        raise TypeError(f"label_column must be a column name or an integer index, got {label_column!r}")
    if not -width <= label_column < width:
        raise DataError(f"{path}: label column {label_column} is outside the {width} columns (0 … {width - 1})")
    return int(label_column) % width


def csv(
    path,
    *,
    label_column: int | str = "label",
    test_fraction: float = 0.2,
    seed: int = 0,
    max_classes: int = MAX_CLASSES,
) -> Dataset:
    """The user's own table: a comma-separated file, one sample per row, one label column.

    An optional header row names the columns: the first row is a header when none of its
    cells is a number. `label_column` is a column name (default ``"label"``, or the last
    column when the file has no header or no such name), an integer index (negative from
    the end), or a string holding one (``"0"``, ``"-1"``) when no column has that name.
    Every other column is an input feature. Rows are split into train and test by a seeded
    permutation (`test_fraction` of them, at least one, for testing). Labels must be the
    integers 0 … K−1 with K ≤ `max_classes`, at least 2 classes, every one of them in the
    training split.

    **Raises:** `FileNotFoundError` for a missing file; `DataError` naming the file for an
    empty file, rows of unequal length, an empty or non-numeric cell (with its row and
    column), an unknown label column, a single class, a class that occurs only in the test
    split, or bad labels (see `load_dataset`); `ValueError` for `test_fraction` outside (0, 1).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"csv: {path} is not a file")
    _check_fraction("test_fraction", test_fraction)
    with open(path, newline="") as f:
        # (line number, cells); blank lines are skipped, and reported line numbers stay the file's.
        rows = [(f_line, r) for f_line, r in enumerate(_csv.reader(f), 1) if r and any(c.strip() for c in r)]
    if not rows:
        raise DataError(f"{path}: empty; expected a header row and one row per sample")
    header = None
    # A header names columns: no cell of it is a number. A first row with numbers and an empty
    # cell is a data row with a missing value, reported below, never taken as a header.
    if not any(_number(c) for c in rows[0][1]):
        header, rows = [c.strip() for c in rows[0][1]], rows[1:]
    if not rows:
        raise DataError(f"{path}: has a header but no data rows")
    width = len(header) if header is not None else len(rows[0][1])
    for line, r in rows:
        if len(r) != width:
            raise DataError(f"{path}: line {line} has {len(r)} columns, expected {width}")
    if width < 2:
        raise DataError(f"{path}: needs a label column and at least one feature column, got {width} column(s)")
    col = _label_index(path, label_column, header, width)
    first = rows[0][0] if header is None else -1
    for line, r in rows:
        for j, c in enumerate(r):
            if not _number(c):
                what = "an empty cell (missing value)" if not c.strip() else f"{c.strip()!r}, not a number"
                name = f" ({header[j]!r})" if header is not None else ""
                mixed = " (a header row names every column and holds no number)" if line == first and c.strip() else ""
                raise DataError(f"{path}: line {line}, column {j}{name}: {what}; every cell must be a number{mixed}")
    table = np.asarray([r for _, r in rows], dtype=np.float64)
    y = table[:, col]
    x = np.delete(table, col, axis=1)
    hint = (
        f" (label column {col}{f' {header[col]!r}' if header is not None else ''}, test_fraction={test_fraction}, "
        f"seed={seed}; add rows of the missing classes, or change the test fraction or the seed)"
    )
    return _make(
        "csv", *_split(x, y, seed, test_fraction), max_classes=max_classes, hint=hint, source=str(path),
        seed=seed, label_column=label_column, test_fraction=test_fraction,
    )  # fmt: skip


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


_standardize = standardize  # `load_dataset` has an argument of the same name


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
