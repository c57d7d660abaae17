"""Data sets: generated geometry, splits, standardisation on train only, IDX/npz readers, batching."""

import gzip
import shutil
import struct
import subprocess
from pathlib import Path

import jax
import numpy as np
import pytest

from resflow.training import _dataset, _datasets, _preprocess
from resflow.training import _readers as _files


def test_circles_geometry_and_seed():
    ds = _datasets.circles(seed=3, n_train=200, n_test=100)
    assert ds.x_train.shape == (200, 2) and ds.x_test.shape == (100, 2)
    for x, y in ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)):
        np.testing.assert_allclose(np.linalg.norm(x, axis=1), np.where(y == 0, 0.5, 1.0), rtol=1e-6)
    assert set(np.unique(ds.y_train)) == {0, 1} and ds.meta["n_classes"] == 2
    again = _datasets.circles(seed=3, n_train=200, n_test=100)
    np.testing.assert_array_equal(again.x_train, ds.x_train)
    assert not np.array_equal(_datasets.circles(seed=4, n_train=200, n_test=100).x_train, ds.x_train)
    noisy = _datasets.circles(seed=3, n_train=200, n_test=100, noise=0.1)
    assert np.abs(np.linalg.norm(noisy.x_train, axis=1) - np.where(noisy.y_train == 0, 0.5, 1.0)).std() > 0.03
    with pytest.raises(ValueError, match="noise"):
        _datasets.circles(noise=-1.0)


def test_standardize_uses_train_statistics_only():
    ds = _datasets.load_dataset("circles", seed=0, standardize=False, n_train=300, n_test=50, noise=0.2)
    st = _preprocess.standardize(ds)
    mu, sd = ds.x_train.astype(np.float64).mean(0), ds.x_train.astype(np.float64).std(0)
    np.testing.assert_allclose(st.x_train.mean(0), 0.0, atol=1e-6)
    np.testing.assert_allclose(st.x_train.std(0), 1.0, rtol=1e-5)
    np.testing.assert_allclose(st.x_test, (ds.x_test - mu) / (sd + 1e-6), rtol=1e-5, atol=1e-6)
    assert st.meta["standardized"] and st.x_train.dtype == np.float32


def test_standardize_bounds_the_amplification_of_features_constant_in_training():
    rng = np.random.default_rng(0)
    x = rng.normal(0.0, rng.uniform(1.0, 5.0, 8), (200, 8))
    x[:, 0] = 0.0  # constant in training, like an image's corner pixel
    x[:, 1] = 0.0
    x[0, 1] = 1e-3  # nearly constant
    x = x.astype(np.float32)
    ds = _dataset.Dataset(x, np.arange(200) % 2, x[:20], np.arange(20) % 2, {"name": "toy"})
    st = _preprocess.standardize(ds)
    # float64 numpy reference: divisor max(sigma_j, floor * median of the nonzero sigma_j) + 1e-6.
    x32 = ds.x_train.astype(np.float64)
    sigma = x32.std(0)
    divisor = np.maximum(sigma, _preprocess.STD_FLOOR * np.median(sigma[sigma > 0])) + 1e-6
    np.testing.assert_allclose(st.x_test, (ds.x_test - x32.mean(0)) / divisor, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(st.meta["std"], divisor, rtol=1e-12)
    assert st.meta["std_floor"] == _preprocess.STD_FLOOR
    # A change of 0.01 in any one feature moves the standardised input by at most
    # 1 / STD_FLOOR times a typical feature's 1 / median(sigma): 10x, where std + 1e-6 gave 1e6x.
    typical = 1.0 / np.median(sigma[sigma > 0])
    nudged = ds._replace(x_test=ds.x_test + np.float32(0.01))
    amplification = np.abs(_preprocess.standardize(nudged).x_test - st.x_test).max(0) / 0.01
    assert amplification[0] > 9.0 * typical  # the constant features are the ones at the bound
    assert amplification.max() <= 1.001 / _preprocess.STD_FLOOR * typical
    np.testing.assert_allclose(amplification[2:], 1.0 / sigma[2:], rtol=1e-3)  # the others: 1 / sigma_j
    with pytest.raises(ValueError, match="floor"):
        _preprocess.standardize(ds, floor=0.0)


def test_digits_split():
    ds = _datasets.load_dataset("digits", seed=1)
    assert ds.x_train.shape[1] == 64 and len(ds.x_train) + len(ds.x_test) == 1797
    assert len(ds.x_test) == round(0.2 * 1797) and ds.meta["n_classes"] == 10
    raw = _datasets.digits(seed=1)
    # The split is a partition: every image appears once in train or test.
    rows = {r.tobytes() for r in np.concatenate([raw.x_train, raw.x_test])}
    from sklearn.datasets import load_digits

    assert rows == {r.astype(np.float32).tobytes() for r in load_digits().data}
    assert not np.array_equal(_datasets.digits(seed=2).y_test, raw.y_test)


def test_mnist1d_offline_and_cached(tmp_path):
    state = np.random.get_state()
    ds = _datasets.load_dataset("mnist1d", num_samples=40, cache_dir=tmp_path)
    assert ds.x_train.shape == (32, 40) and ds.x_test.shape == (8, 40)
    assert np.random.get_state()[1].tolist() == state[1].tolist()  # global RNG untouched
    (file,) = tmp_path.glob("mnist1d_*.npz")
    again = _datasets.load_dataset("mnist1d", num_samples=40, cache_dir=tmp_path)
    np.testing.assert_array_equal(again.x_train, ds.x_train)


def write_idx(path, arr, gz):
    codes = {np.uint8: 0x08, np.int32: 0x0C}
    header = struct.pack(">HBB", 0, codes[arr.dtype.type], arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    body = header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()
    # Closed by `with`: GzipFile buffers writes (Python 3.12), unclosed the file stays empty.
    with (gzip.open if gz else open)(path, "wb") as f:
        f.write(body)


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_and_npz(tmp_path, gz):
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (12, 4, 3), dtype=np.uint8),
        "y_train": rng.integers(0, 10, 12).astype(np.uint8),
        "x_test": rng.integers(0, 256, (5, 4, 3), dtype=np.uint8),
        "y_test": rng.integers(0, 10, 5).astype(np.uint8),
    }
    for k, stem in _files.IDX_FILES.items():
        write_idx(tmp_path / (stem + (".gz" if gz else "")), arrays[k], gz)
    ds = _datasets.load_dataset("fashion-mnist", path=tmp_path, standardize=False)
    np.testing.assert_allclose(ds.x_train, arrays["x_train"].reshape(12, 12) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.y_test, arrays["y_test"])
    np.savez(tmp_path / "m.npz", **arrays)
    npz = _datasets.load_dataset("mnist", path=tmp_path / "m.npz", standardize=False)
    np.testing.assert_array_equal(npz.x_test, ds.x_test)


def test_mnist_missing_files_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        _datasets.load_dataset("mnist", path=tmp_path)
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        _datasets.load_dataset("mnist", path=None)
    with pytest.raises(FileNotFoundError, match="neither"):
        _datasets.load_dataset("mnist", path=tmp_path / "nope")
    with pytest.raises(ValueError, match="data set must be one of"):
        _datasets.load_dataset("cifar")


def test_batch_indices_cover_each_sample_once():
    idx, w = _preprocess.batch_indices(jax.random.key(0), 10, 4)
    assert idx.shape == w.shape == (3, 4)
    used = np.asarray(idx)[np.asarray(w) > 0]
    assert sorted(used.tolist()) == list(range(10))
    idx2, _ = _preprocess.batch_indices(jax.random.key(0), 10, 4)
    np.testing.assert_array_equal(idx, idx2)
    assert not np.array_equal(_preprocess.batch_indices(jax.random.key(1), 10, 4)[0], idx)


def test_bad_batch_size_and_radii():
    for bad in (0, -2):
        with pytest.raises(ValueError, match="batch_size"):
            _preprocess.batch_indices(jax.random.key(0), 10, bad)
    with pytest.raises(TypeError, match="batch_size"):
        _preprocess.batch_indices(jax.random.key(0), 10, 2.5)
    for radii in ((1, 1), (0.5, 1.0, 0.5), (0.0, 1.0), (1.0, float("nan"))):
        with pytest.raises(ValueError, match="radii"):
            _datasets.circles(radii=radii, n_train=10, n_test=10)


# `make data`, run by the real make against fake apt-get / apt-cache / sudo / id on a PATH of their own
# (no network, nothing installed): each fake logs its call; apt-get "installs" by writing the four files.
FAKES = {
    "apt-get": """echo "apt-get $*" >> "$LOG"
case "$1" in
  update) : > "$STATE/known" ;;
  install) [ -f "$STATE/known" ] || exit 100
    for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte
    do : > "$DIR/$f.gz"; done ;;
esac""",
    "apt-cache": 'echo "apt-cache $*" >> "$LOG"; [ -f "$STATE/known" ]',
    "sudo": 'echo "sudo $*" >> "$LOG"; exec "$@"',
    "id": 'echo "$UID_FAKE"',
}
ROOT = Path(__file__).resolve().parents[1]


def make_data(tmp_path, *, fakes=tuple(FAKES), uid=0, known=True):
    """Run `make data` with only `fakes` on PATH; returns (exit status, output, logged calls)."""
    bin_, state, folder = (tmp_path / d for d in ("bin", "state", "fmnist"))
    for d in (bin_, state, folder):
        d.mkdir(exist_ok=True)
    for name in fakes:
        (bin_ / name).write_text("#!/bin/sh\n" + FAKES[name] + "\n")
        (bin_ / name).chmod(0o755)
    if known:
        (state / "known").touch()
    log = tmp_path / "calls.log"
    log.touch()
    env = {"PATH": str(bin_), "LOG": str(log), "STATE": str(state), "DIR": str(folder), "UID_FAKE": str(uid)}
    make = shutil.which("make")
    p = subprocess.run(
        [make, "-s", "-C", str(ROOT), "data", f"FASHION_MNIST_DIR={folder}"], env=env, capture_output=True, text=True
    )
    return p.returncode, p.stdout + p.stderr, log.read_text().splitlines()


def test_make_data_installs_as_root_then_is_idempotent(tmp_path):
    rc, out, calls = make_data(tmp_path)
    assert rc == 0 and "installed in" in out, out
    assert calls == ["apt-cache show dataset-fashion-mnist", "apt-get install -y dataset-fashion-mnist"]
    rc, out, calls_again = make_data(tmp_path)
    assert rc == 0 and "already installed" in out and calls_again == calls  # nothing new was called


def test_make_data_updates_only_for_an_unknown_package_and_uses_sudo(tmp_path):
    rc, out, calls = make_data(tmp_path, uid=1000, known=False)
    assert rc == 0, out
    assert calls == [
        "apt-cache show dataset-fashion-mnist",
        "sudo apt-get update",
        "apt-get update",
        "sudo apt-get install -y dataset-fashion-mnist",
        "apt-get install -y dataset-fashion-mnist",
    ]


@pytest.mark.parametrize(
    "fakes, uid, match",
    [
        (("id",), 0, "no apt-get on this machine"),
        (("apt-get", "apt-cache", "id"), 1000, "needs root and there is no sudo"),
    ],
)
def test_make_data_says_what_to_do_without_apt_or_root(tmp_path, fakes, uid, match):
    rc, out, calls = make_data(tmp_path, fakes=fakes, uid=uid)
    assert rc != 0 and match in out and "--data-path" in out and str(tmp_path / "fmnist") in out, out
    assert "install" not in " ".join(calls)


def test_fashion_mnist_without_package_or_path_says_make_data(tmp_path, monkeypatch):
    monkeypatch.setattr(_files, "FASHION_MNIST_DIR", tmp_path / "not-installed")
    with pytest.raises(FileNotFoundError, match="make data") as err:
        _datasets.load_dataset("fashion-mnist")
    assert "not-installed" in str(err.value) and "train-images-idx3-ubyte" in str(err.value)


def test_fashion_mnist_reads_the_package_folder_by_default(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    arrays = {
        "x_train": rng.integers(0, 256, (10, 2, 2), dtype=np.uint8),
        "y_train": np.arange(10, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (4, 2, 2), dtype=np.uint8),
        "y_test": np.array([9, 0, 3, 3], dtype=np.uint8),
    }
    for k, stem in _files.IDX_FILES.items():
        write_idx(tmp_path / (stem + ".gz"), arrays[k], gz=True)
    monkeypatch.setattr(_files, "FASHION_MNIST_DIR", tmp_path)
    ds = _datasets.load_dataset("fashion-mnist", standardize=False)
    np.testing.assert_allclose(ds.x_test, arrays["x_test"].reshape(4, 4) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.y_train, arrays["y_train"])
    assert ds.meta["source"] == str(tmp_path)
