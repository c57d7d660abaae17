"""Bad data files are refused before any training, with the file and the problem named.

Each case writes its own broken file. The loaders raise `DataError` (a ValueError) whose
message starts with the file's path; nothing is clipped, truncated or silently dropped.
"""

import gzip
import struct

import numpy as np
import pytest

from resflow.training import _dataset, _datasets
from resflow.training import _readers as _files


def idx_bytes(a: np.ndarray) -> bytes:
    return struct.pack(">HBB", 0, 0x08, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape) + a.astype(np.uint8).tobytes()


def good_arrays(rng, n_train=20, n_test=10):
    return {
        "x_train": rng.integers(0, 256, (n_train, 4, 3), dtype=np.uint8),
        "y_train": np.arange(n_train, dtype=np.uint8) % 10,
        "x_test": rng.integers(0, 256, (n_test, 4, 3), dtype=np.uint8),
        "y_test": np.arange(n_test, dtype=np.uint8) % 10,
    }


def write_folder(folder, arrays, *, gz=False, raw=None):
    """The four IDX files; `raw` maps a key to bytes written instead of its array."""
    for k, stem in _files.IDX_FILES.items():
        data = (raw or {}).get(k, idx_bytes(arrays[k]) if k in arrays else None)
        path = folder / (stem + (".gz" if gz else ""))
        if gz and not (raw and k in raw):
            with gzip.open(path, "wb") as f:
                f.write(data)
        else:
            path.write_bytes(data)
    return folder


def load(path, name="mnist"):
    return _datasets.load_dataset(name, path=path, standardize=False)


def test_good_folder_loads(tmp_path):
    arrays = good_arrays(np.random.default_rng(0))
    ds = load(write_folder(tmp_path, arrays, gz=True))
    assert ds.x_train.shape == (20, 12) and ds.meta["n_classes"] == 10


def write_case(folder, case):
    """The four IDX files in `folder`, with `case`'s damage done to y_train."""
    rng = np.random.default_rng(1)
    arrays = good_arrays(rng)
    key = "y_train"
    gz = case in ("truncated_gz", "not_gzip")
    if case == "truncated_gz":
        full = gzip.compress(idx_bytes(arrays[key]))
        raw = full[: len(full) // 2]
    elif case == "not_gzip":
        raw = b"this is plain text, not gzip"
    elif case == "short_header":
        raw = b"\x00\x00"
    elif case == "short_shape":
        raw = struct.pack(">HBB", 0, 0x08, 3) + b"\x00\x00\x00\x05"
    elif case == "bad_magic":
        raw = b"\x12\x34" + idx_bytes(arrays[key])[2:]
    elif case == "truncated_data":
        raw = idx_bytes(arrays[key])[:-3]
    elif case == "count_mismatch":
        raw = idx_bytes(arrays[key][:-1])
    else:
        damaged = arrays[key].copy()
        damaged[3] = 200
        raw = idx_bytes(damaged)
    return write_folder(folder, arrays, gz=gz, raw={key: raw})


@pytest.mark.parametrize(
    "case, match",
    [
        ("truncated_gz", "not a complete gzip file"),
        ("not_gzip", "not a complete gzip file"),
        ("short_header", "header too short"),
        ("short_shape", "header too short"),
        ("bad_magic", "bad magic number"),
        ("truncated_data", "truncated"),
        ("count_mismatch", "holds 20 images but .* holds 19 labels"),
        ("label_200", "10 classes"),
    ],
)
def test_bad_idx_files(tmp_path, case, match):
    write_case(tmp_path, case)
    with pytest.raises(_dataset.DataError, match=match) as err:
        load(tmp_path)
    assert str(tmp_path) in str(err.value)


def damage_images(folder, case):
    """The four IDX files in `folder`, with `case`'s damage done to an image file (or a file missing).

    Returns the path the error must name."""
    arrays = good_arrays(np.random.default_rng(4))
    key, raw = "x_train", None
    if case == "extra_bytes":
        raw = idx_bytes(arrays[key]) + b"\x00\x07"
    elif case == "unknown_dtype":
        raw = idx_bytes(arrays[key])[:2] + b"\x07" + idx_bytes(arrays[key])[3:]
    elif case == "five_dims":
        raw = struct.pack(">HBB", 0, 0x08, 5) + struct.pack(">5I", 20, 1, 1, 4, 3) + arrays[key].tobytes()
    elif case == "fewer_images":
        raw = idx_bytes(arrays[key][:-1])
    elif case == "labels_as_images":
        raw = idx_bytes(arrays["y_train"])
    elif case == "test_dims_differ":
        key, raw = "x_test", idx_bytes(arrays["x_test"][:, :, :2])
    elif case == "empty_gz":
        key, raw = "x_test", gzip.compress(b"")
    write_folder(folder, arrays, gz=case == "empty_gz", raw={key: raw} if raw is not None else None)
    suffix = ".gz" if case == "empty_gz" else ""
    if case == "missing_file":
        key = "y_test"
        (folder / _files.IDX_FILES[key]).unlink()
    return folder / (_files.IDX_FILES[key] + suffix)


@pytest.mark.parametrize(
    "case, match",
    [
        ("extra_bytes", r"\(240 bytes of data\) but the file holds 242 bytes$"),
        ("unknown_dtype", "bad magic number 00000703"),
        ("five_dims", "bad magic number 00000805"),
        ("fewer_images", "holds 19 images but .*train-labels-idx1-ubyte holds 20 labels"),
        ("labels_as_images", r"holds shape \(20,\); expected images"),
        ("test_dims_differ", "x_test has 8 features per sample but x_train has 12"),
        ("empty_gz", "header too short \\(0 bytes"),
    ],
)
def test_bad_image_files(tmp_path, case, match):
    named = damage_images(tmp_path, case)
    with pytest.raises(_dataset.DataError, match=match) as err:
        load(tmp_path, name="fashion-mnist")
    # The damaged file is named; only the train/test comparison names the folder.
    assert str(named if case != "test_dims_differ" else tmp_path) in str(err.value)


def test_missing_idx_file_is_named(tmp_path):
    named = damage_images(tmp_path, "missing_file")
    with pytest.raises(FileNotFoundError, match="has no t10k-labels-idx1-ubyte or t10k-labels-idx1-ubyte.gz") as err:
        load(tmp_path, name="fashion-mnist")
    assert str(tmp_path) in str(err.value) and not named.exists()


def npz_case(path, case, rng):
    a = {k: v.astype(np.float32) if k.startswith("x") else v.astype(np.int64) for k, v in good_arrays(rng).items()}
    if case == "empty":
        path.write_bytes(b"")
    elif case == "random_bytes":
        path.write_bytes(rng.integers(0, 256, 300, dtype=np.uint8).tobytes())
    elif case == "truncated":
        np.savez(path, **a)
        path.write_bytes(path.read_bytes()[:200])
    elif case == "label_20000":
        a["y_train"][0] = 20000
        np.savez(path, **a)
    elif case == "float_labels":
        a["y_train"] = a["y_train"] + 0.5
        np.savez(path, **a)
    elif case == "nan_input":
        a["x_test"][2, 1] = np.nan
        np.savez(path, **a)
    elif case == "dims_differ":
        a["x_test"] = a["x_test"][:, :, :2]
        np.savez(path, **a)
    elif case == "negative_label":
        a["y_test"][0] = -1
        np.savez(path, **a)
    return path


@pytest.mark.parametrize(
    "case, match",
    [
        ("empty", "empty"),
        ("random_bytes", r"not an \.npz"),
        ("truncated", r"damaged or truncated \.npz"),
        ("label_20000", "10 classes"),
        ("float_labels", "integer class labels"),
        ("nan_input", "non-finite"),
        ("dims_differ", "features per sample"),
        ("negative_label", ">= 0"),
    ],
)
def test_bad_npz_files(tmp_path, case, match):
    path = npz_case(tmp_path / "data.npz", case, np.random.default_rng(2))
    with pytest.raises(_dataset.DataError, match=match) as err:
        load(path)
    assert str(path) in str(err.value)


def write_csv(path, text):
    path.write_text(text)
    return path


def test_csv_loads_with_header_and_label_column(tmp_path):
    rows = "\n".join(f"{i * 0.5},{(i % 3)},{-i}" for i in range(30))
    path = write_csv(tmp_path / "t.csv", "a,label,b\n" + rows + "\n")
    ds = _datasets.load_dataset("csv", path=path, standardize=False, test_fraction=0.2)
    assert ds.x_train.shape == (24, 2) and ds.x_test.shape == (6, 2) and ds.meta["n_classes"] == 3
    both = np.concatenate([ds.x_train, ds.x_test])
    # Every row kept, features are the non-label columns in order.
    np.testing.assert_allclose(np.sort(both[:, 0]), np.arange(30) * 0.5)
    np.testing.assert_allclose(np.sort(both[:, 1]), -np.arange(30)[::-1])
    no_header = write_csv(tmp_path / "n.csv", "\n".join(f"{i},{-i},{i % 2}" for i in range(10)))
    assert _datasets.load_dataset("csv", path=no_header, standardize=False).meta["n_classes"] == 2


@pytest.mark.parametrize(
    "text, match",
    [
        ("", "empty"),
        ("a,label\n", "no data rows"),
        ("1,0\n2,1,3\n", "line 2 has 3 columns"),
        ("1,0\nx,1\n", "line 2, column 0: 'x', not a number"),
        # A missing value in the first row: a data row with an empty cell, not a header.
        ("1,,0\n2,3,1\n4,5,0\n6,7,1\n", "line 1, column 1: an empty cell"),
        ("a,b,label\n1,2,0\n3,,1\n4,5,0\n6,7,1\n", r"line 3, column 1 \('b'\): an empty cell"),
        ("1,0\n2,0\n3,0\n4,0\n", "at least 2 classes"),
        # Seed 0 puts rows 3, 2, 5 in the test split: class 2 (row 3) would never be trained on.
        ("1,0\n2,1\n3,0\n4,2\n5,1\n6,0\n", r"class\(es\) \[2\] occur only in the test split"),
        ("1,0.5\n2,1\n3,0\n", "integer class labels"),
        ("1,0\n2,1\n3,1500\n", "max_classes"),
        ("1,0\n2,7\n3,0\n4,7\n", "occur in neither split"),
    ],
)
def test_bad_csv_files(tmp_path, text, match):
    path = write_csv(tmp_path / "bad.csv", text)
    with pytest.raises(_dataset.DataError, match=match) as err:
        _datasets.load_dataset("csv", path=path, standardize=False, test_fraction=0.5)
    assert str(path) in str(err.value)


def test_csv_label_column_by_name_index_or_index_string(tmp_path):
    path = write_csv(tmp_path / "t.csv", "a,kind,b\n" + "\n".join(f"{i},{i % 2},{-i}" for i in range(10)) + "\n")
    by_name = _datasets.load_dataset("csv", path=path, standardize=False, label_column="kind")
    for column in (1, "1", -2, "-2"):
        ds = _datasets.load_dataset("csv", path=path, standardize=False, label_column=column)
        np.testing.assert_array_equal(ds.y_train, by_name.y_train)
        np.testing.assert_array_equal(ds.x_test, by_name.x_test)
    assert sorted(np.concatenate([by_name.x_train[:, 1], by_name.x_test[:, 1]])) == list(range(-9, 1))
    no_header = write_csv(tmp_path / "n.csv", "\n".join(f"{i},{i % 2}" for i in range(10)) + "\n")
    with pytest.raises(_dataset.DataError, match="no header row, so no column is named 'kind'") as err:
        _datasets.load_dataset("csv", path=no_header, label_column="kind")
    assert str(no_header) in str(err.value)
    with pytest.raises(_dataset.DataError, match="label column 5 is outside the 3 columns"):
        _datasets.load_dataset("csv", path=path, label_column=5)


def test_idx_folder_with_plain_and_gz_versions(tmp_path):
    arrays = good_arrays(np.random.default_rng(0))
    folder = write_folder(tmp_path, arrays)
    stem = _files.IDX_FILES["y_test"]
    with gzip.open(folder / (stem + ".gz"), "wb") as f:  # the same labels, gzipped too: fine
        f.write(idx_bytes(arrays["y_test"]))
    np.testing.assert_array_equal(load(folder).y_test, arrays["y_test"])
    with gzip.open(folder / (stem + ".gz"), "wb") as f:  # one label differs
        f.write(idx_bytes(np.roll(arrays["y_test"], 1)))
    with pytest.raises(_dataset.DataError, match="hold different data") as err:
        load(folder)
    assert str(folder / stem) in str(err.value) and str(folder / (stem + ".gz")) in str(err.value)


def test_path_given_to_a_built_in_set_is_refused(tmp_path):
    with pytest.raises(ValueError, match="built in and reads no file"):
        _datasets.load_dataset("digits", path=tmp_path / "nonexistent")
    with pytest.raises(FileNotFoundError, match="--data-path"):
        _datasets.load_dataset("csv")
