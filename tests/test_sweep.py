"""resflow.sweep: each vmapped run equals its single fit; groups; devices (a 4-CPU-device subprocess)."""

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import resflow as rf
from resflow.training import load_dataset

# As tests/test_compiled_loop.py (same shapes): float64 with depth cuts.
OPTS = dict(
    width=3, depth=5, epochs=4, batch_size=32, depth_adapt=True, depth_warmup=1, depth_tol=0.05, dtype="float64"
)


sw = importlib.import_module("resflow.training._sweep")  # the module (rf.sweep is the function)


def circles():
    return load_dataset("circles", seed=0, n_train=64, n_test=64)


def test_vmapped_runs_equal_single_fits(tmp_path):
    ds = circles()
    res = rf.sweep(ds, seeds=[0, 1, 2], grid={"lr": [2e-2, 5e-2]}, out_dir=tmp_path / "sweep", **OPTS)
    rows = res.table()
    assert len(res) == len(rows) == 6 and all(isinstance(run, rf.Run) for run in res)
    assert [(r["lr"], r["seed"]) for r in rows] == [(lr, s) for lr in (2e-2, 5e-2) for s in (0, 1, 2)]
    assert len({r["depth"] for r in rows}) > 1  # runs cut differently, yet trained together
    for row, run in zip(rows, res, strict=True):
        # The table row: the grid options and seed, then the run's own numbers, in this order.
        assert list(row) == ["lr", "seed", "depth", "train_accuracy", "test_accuracy", "test_loss"] + [
            "nonfinite_epoch",
            "time",
        ]
        single = rf.fit(ds, key=jax.random.key(row["seed"]), lr=row["lr"], **OPTS)
        assert run.config == single.config and row["depth"] == single.depth == run.depth
        assert len(run.history) == len(single.history)
        for a, b in zip(run.history, single.history, strict=True):
            assert a.keys() == b.keys() - {"time"}
            for k in a:
                assert a[k] == pytest.approx(b[k], rel=1e-9, abs=1e-12), k
        for a, b in zip(jax.tree.leaves(run.network), jax.tree.leaves(single.network), strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-12)
        for k in ("test_accuracy", "train_accuracy", "test_loss"):
            assert row[k] == pytest.approx(single.metrics[k], rel=1e-9)
        assert row["nonfinite_epoch"] is None and row["time"] > 0
        assert run.metrics["depth_history"] == single.metrics["depth_history"]
        assert run.provenance["key"] == single.provenance["key"] and run.data == single.data
    res.to_json(tmp_path / "sweep.json")
    saved = json.loads((tmp_path / "sweep.json").read_text())
    assert saved["rows"] == rows and len(saved["histories"]) == 6

    # Every run has its folder, as fit writes it; load_run rebuilds each network from disk.
    folders = sorted(p.name for p in (tmp_path / "sweep" / "runs").iterdir())
    assert folders == sorted(f"lr={lr}-s{s}" for lr in (0.02, 0.05) for s in (0, 1, 2))
    raw = load_dataset("circles", seed=0, n_train=64, n_test=64, standardize=False)
    for row, run in zip(rows, res, strict=True):
        loaded = rf.load_run(run.path)
        assert loaded.path == tmp_path / "sweep" / "runs" / f"lr={row['lr']}-s{row['seed']}"
        assert loaded.config == run.config and loaded.depth == row["depth"]
        assert loaded.history == run.history and loaded.metrics == run.metrics
        assert (loaded.provenance["seed"], loaded.provenance["options"]) == (row["seed"], {"lr": row["lr"]})
        np.testing.assert_allclose(
            np.asarray(rf.predict(loaded, ds.x_test)), np.asarray(rf.predict(run, ds.x_test)), rtol=1e-12, atol=1e-12
        )
        # Raw inputs through the saved standardisation give the standardised inputs' logits.
        np.testing.assert_allclose(
            np.asarray(loaded.predict(raw.x_test)), np.asarray(run.network(ds.x_test)), rtol=1e-5, atol=1e-6
        )
        np.testing.assert_array_equal(loaded.load_data().x_test, ds.x_test)
    # The table of the loaded runs is the sweep's.
    again = rf.SweepResult(tuple(rf.load_run(r.path) for r in res), res.seeds, res.grid)
    assert again.table() == rows


# The 2-run sweeps below (epochs 2, OPTS' depth 5 and batch size 32) all run one vmapped program:
# built once for the file, as in tests/test_sweep_cli.py. Only their other shapes build new ones.
EPOCHS2 = dict(OPTS, epochs=2)


def test_shape_options_make_groups(monkeypatch):
    sizes, real = [], sw._run_group

    def counted(data, n_classes, runs, *args):
        sizes.append(len(runs))
        return real(data, n_classes, runs, *args)

    monkeypatch.setattr(sw, "_run_group", counted)
    res = rf.sweep(circles(), seeds=[0], grid={"depth": [3, 5], "h": [0.5, 1.0]}, **EPOCHS2)
    assert sizes == [2, 2]  # one program per depth; h is vmapped
    assert [(r["depth"] <= d, r["h"]) for r, d in zip(res.table(), (3, 3, 5, 5), strict=True)] == [
        (True, 0.5),
        (True, 1.0),
        (True, 0.5),
        (True, 1.0),
    ]
    assert [run.trunk.h for run in res] == [0.5, 1.0, 0.5, 1.0]
    # The table's depth is the final one; the grid's depth stays in each run's provenance and config.
    assert [run.provenance["options"] for run in res] == [{"depth": d, "h": h} for d in (3, 5) for h in (0.5, 1.0)]
    assert [run.metrics["initial_depth"] for run in res] == [run.config.trunk.depth for run in res] == [3, 3, 5, 5]


def test_bad_sweeps_are_refused():
    ds = circles()
    for kw, err, match in [
        (dict(seeds=[0], grid={"learning_rate": [1e-2]}), TypeError, "grid: unknown option 'learning_rate'"),
        (dict(seeds=[0], grid={"lr": [-1.0]}), ValueError, "grid: .*lr"),
        (dict(seeds=[0], grid={"lr": 1e-2}), ValueError, "'lr' needs a non-empty list"),
        (dict(seeds=[0], grid={"seed": [1]}), ValueError, "pass seeds"),
        (dict(seeds=[]), ValueError, "seeds must hold"),
        (dict(seeds=[0.5]), TypeError, "seeds must be integers"),
        (dict(seeds=[0], data_parallel=True), ValueError, "data_parallel"),
        # jax.random.key keeps a seed's low 32 bits: -1 and 2**32 would silently be other seeds' runs
        (dict(seeds=[-1]), ValueError, r"seeds must lie in \[0, 2\*\*32\).*got -1"),
        (dict(seeds=[2**32]), ValueError, "seeds must lie in"),
        (dict(seeds=[1, 2, 1]), ValueError, r"seeds must be distinct.*\[1\] twice"),
        (dict(seeds=[0], width=3, lift=False), ValueError, "lift=False needs width equal to the data dimension 2"),
        # 10^3 runs of 10^7 epochs: their histories alone are terabytes; refused before anything is built
        (dict(seeds=range(1000), epochs=10**7), ValueError, r"1000 runs .* need at least .* GiB of \w+ memory"),
    ]:
        with pytest.raises(err, match=match):
            rf.sweep(ds, **dict(OPTS, epochs=1) | kw)
    with pytest.raises(TypeError, match=r"config must be a resflow.TrainConfig or None, got dict; pass .* keywords"):
        rf.sweep(ds, {"epochs": 1}, seeds=[0])


def test_to_json_names_the_file_not_its_temporary(tmp_path):
    target = tmp_path / "missing" / "sweep.json"
    with pytest.raises(OSError, match=f"cannot write {target}: its folder does not exist") as info:
        rf.SweepResult(()).to_json(target)
    assert ".tmp" not in str(info.value)


SCRIPT = """
import json, jax
jax.config.update("jax_enable_x64", True)
import numpy as np
import resflow as rf
from resflow.training import load_dataset
assert len(jax.devices()) == 4
ds = load_dataset("circles", seed=0, n_train=64, n_test=64)
opts = dict(width=3, depth=2, epochs=2, batch_size=32, lr=5e-2, dtype="float64", chunk_epochs=2)
out = {}
for name, devices in [("four", jax.devices()), ("one", jax.devices()[:1])]:
    res = rf.sweep(ds, seeds=[0, 1, 2], grid={"w_std": [1.0, 2.0]}, devices=devices, **opts)  # 6 runs: padded to 8
    out[name] = [float(x) for run in res for a in jax.tree.leaves(run.network) for x in np.ravel(a)]
    out[name + "_losses"] = [[r["loss"] for r in run.history] for run in res]
for name, dp in [("dp", True), ("plain", False)]:
    fit = rf.fit(ds, key=jax.random.key(0), data_parallel=dp, **dict(opts, batch_size=16))
    out[name] = [float(x) for a in jax.tree.leaves(fit.network) for x in np.ravel(a)]
    out[name + "_devices"] = len(fit.network.readout.W.devices())
print(json.dumps(out))
"""


def test_four_devices_equal_one():
    # The conftest's XLA flags (no LLVM optimisation passes: IEEE numerics either way) plus 4 CPU devices.
    flags = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    env = dict(os.environ, XLA_FLAGS=flags.strip(), JAX_PLATFORMS="cpu")
    root = Path(__file__).parents[1]
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    # 2 runs per device against 6 on one: the batched arithmetic may round differently (1 ulp seen).
    np.testing.assert_allclose(out["four"], out["one"], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(out["four_losses"], out["one_losses"], rtol=1e-12)
    np.testing.assert_allclose(out["dp"], out["plain"], rtol=1e-6, atol=1e-9)
    assert (out["dp_devices"], out["plain_devices"]) == (4, 1)  # the batches really were sharded


def test_a_diverging_run_stops_alone():
    # lr = 1e306 overflows (float64) in the first epoch; its neighbour in the same program trains on.
    res = rf.sweep(circles(), seeds=[0], grid={"lr": [5e-2, 1e306]}, progress=True, **EPOCHS2)
    good, bad = res.table()
    assert good["nonfinite_epoch"] is None and len(res[0].history) == 2
    assert bad["nonfinite_epoch"] == 1 and res[1].history == []
    assert np.isfinite(good["test_loss"]) and res[1].depth == OPTS["depth"]


def test_a_sigterm_sweep_keeps_finished_groups_and_chunks_and_resumes(tmp_path, monkeypatch):
    import signal

    from test_train_failures import send

    from resflow.training._checkpoint import Interrupted, load_checkpoint

    ds, opts = circles(), dict(OPTS, chunk_epochs=2)
    grid = {"batch_size": [32, 64], "lr": [2e-2, 5e-2]}  # two groups (shapes) of 2 lr x 1 seed
    reference = rf.sweep(ds, seeds=[0], grid=grid, **opts)
    real, calls = sw._vmapped, []

    def counting(kernel, length, kill_at=None):
        init, chunk, evaluate = real(kernel, length)

        def counted(*args):
            out = chunk(*args)
            calls.append(1)
            if len(calls) == kill_at:
                send(signal.SIGTERM)  # arrives while the chunk computes
            return out

        return init, counted, evaluate

    # Group 1 finishes (2 chunks); SIGTERM during group 2's first chunk, which still completes.
    monkeypatch.setattr(sw, "_vmapped", lambda k, n: counting(k, n, kill_at=3))
    with pytest.raises(Interrupted):
        rf.sweep(ds, seeds=[0], grid=grid, out_dir=tmp_path, **opts)
    saved = sorted(load_checkpoint(p)[1]["epoch"] for p in tmp_path.glob("group-*.msgpack"))
    assert saved == [2, 4]
    calls.clear()
    monkeypatch.setattr(sw, "_vmapped", lambda k, n: counting(k, n))
    resumed = rf.sweep(ds, seeds=[0], grid=grid, out_dir=tmp_path, resume=True, **opts)
    assert len(calls) == 1  # only group 2's last chunk trained again
    strip = [{k: v for k, v in r.items() if k != "time"} for r in reference.table()]
    assert [{k: v for k, v in r.items() if k != "time"} for r in resumed.table()] == strip
    assert [r.history for r in resumed] == [r.history for r in reference]
    nets = [[r.network for r in res] for res in (resumed, reference)]
    for a, b in zip(jax.tree.leaves(nets[0]), jax.tree.leaves(nets[1]), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(ValueError, match="resume=True needs out_dir"):
        rf.sweep(ds, seeds=[0], resume=True, **opts)
