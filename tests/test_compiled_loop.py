"""The compiled training loop: chunks of epochs equal the epoch-by-epoch run; the chunk length."""

import jax
import numpy as np
import pytest

import resflow as rf
from resflow.training import _setup, load_dataset
from resflow.training._engine import CHUNK_FLOPS, RESPAN_FLOPS, chunk_length, epoch_flops

# float64, depth adaptation with cuts (tol above the changes after the 1-epoch warm-up).
OPTS = dict(width=3, depth=5, epochs=6, batch_size=32, lr=5e-2, depth_adapt=True, depth_warmup=1, depth_tol=0.05)


def circles():
    return load_dataset("circles", seed=0, n_train=64, n_test=64)


def strip(history):
    return [{k: v for k, v in r.items() if k != "time"} for r in history]


def test_chunks_equal_the_epoch_by_epoch_run(monkeypatch):
    ds, key = circles(), jax.random.key(3)
    one = rf.fit(ds, key=key, dtype="float64", chunk_epochs=1, **OPTS)
    assert one.metrics["cuts"] and one.depth < OPTS["depth"]  # the policy cut inside the run
    # 5: the last chunk is padded (epochs 7-10 skipped); 0: automatic (here one chunk of 6);
    # "respan": one epoch per chunk, each chunk scanned over the run's current depth only.
    for chunk in (5, 0, "respan"):
        if chunk == "respan":
            monkeypatch.setattr(_setup, "RESPAN_FLOPS", 0.0)
            chunk = 1
        got = rf.fit(ds, key=key, dtype="float64", chunk_epochs=chunk, **OPTS)
        assert got.depth == one.depth and len(got.history) == len(one.history) == OPTS["epochs"]
        for a, b in zip(strip(got.history), strip(one.history), strict=True):
            assert a.keys() == b.keys()
            for k in a:
                assert a[k] == pytest.approx(b[k], rel=1e-9, abs=1e-12), k
        assert [c["to"] for c in got.metrics["cuts"]] == [c["to"] for c in one.metrics["cuts"]]
        for a, b in zip(jax.tree.leaves(got.network), jax.tree.leaves(one.network), strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-12)


def test_chunk_length_from_a_flop_count():
    config = rf.TrainConfig().replace(depth=10, width=20, epochs=1000)
    # One sample: 2 (T n^2 + dim n + n classes) FLOPs (a lift from 5 to 20), 3 passes to train, 1 to test.
    per_sample = 2.0 * (10 * 400 + 5 * 20 + 20 * 3)
    wanted = int(CHUNK_FLOPS // (per_sample * (3 * 1000 + 500)))
    count = -(-1000 // wanted)
    assert chunk_length(config, 5, 3, 1000, 500) == -(-1000 // count)
    assert chunk_length(config, 5, 3, 1000, 500, runs=8) < chunk_length(config, 5, 3, 1000, 500)
    assert chunk_length(config.replace(chunk_epochs=7), 5, 3, 1000, 500) == 7  # as given
    # Work too large for a second: one epoch per chunk.
    assert chunk_length(config, 5, 3, 10**9, 500) == 1
    # Fashion-MNIST (784 units, 15 layers, depth adaptation): ~4.6 TFLOP an epoch, recompiled
    # at each new depth; digits at its defaults is far below.
    fashion = rf.TrainConfig().replace(depth=15, depth_adapt=True)
    assert epoch_flops(fashion, 784, 10, 60000, 10000) == pytest.approx(2.0 * (15 * 784**2 + 7840) * 250000)
    assert (
        epoch_flops(fashion, 784, 10, 60000, 10000) >= RESPAN_FLOPS > epoch_flops(rf.TrainConfig(), 64, 10, 1437, 360)
    )
    with pytest.raises(ValueError, match="chunk_epochs"):
        rf.TrainConfig(chunk_epochs=-1).validate()
    with pytest.raises(TypeError, match="data_parallel"):
        rf.TrainConfig(data_parallel=1).validate()
