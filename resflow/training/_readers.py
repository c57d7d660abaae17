"""Data sets read from local files, never downloaded: MNIST / Fashion-MNIST (IDX files or an
``.npz``) and the user's own CSV table.

Every reader checks what it reads and reports a bad file as a `DataError` that names the file
and the problem.
"""

from __future__ import annotations

import csv as _csv
import gzip
import math
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .._errors import DataError
from ._dataset import MAX_CLASSES, Dataset, check_fraction, checked_dataset
from ._preprocess import split_dataset

__all__ = ["IDX_FILES", "FASHION_MNIST_DIR", "read_idx", "mnist", "csv"]

IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


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
    return checked_dataset(
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
    check_fraction("test_fraction", test_fraction)
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
    return checked_dataset(
        "csv", *split_dataset(x, y, seed, test_fraction), max_classes=max_classes, hint=hint, source=str(path),
        seed=seed, label_column=label_column, test_fraction=test_fraction,
    )  # fmt: skip
