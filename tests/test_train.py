"""Training: a tiny run learns, same key same result, resume == uninterrupted, depth cuts, h not trained."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import np_trajectory

import resflow as rf
from resflow import plots
from resflow.training import Dataset, load_dataset
from resflow.training import _fit as tr


def small_digits(n_train=300, n_test=300):  # equal sizes share compiled evaluations
    ds = load_dataset("digits", seed=0)
    meta = dict(ds.meta, n_train=n_train, n_test=n_test)
    return Dataset(ds.x_train[:n_train], ds.y_train[:n_train], ds.x_test[:n_test], ds.y_test[:n_test], meta)


@pytest.mark.parametrize(
    "opts",
    [
        dict(model="resnet", shared=True, depth=4, dtype="float32", lr=1e-2),
        dict(
            model="mlp",
            shared=False,
            depth=2,
            dtype="float64",
            width=16,
            activation="tanh",
            lr=3e-2,
            schedule="cosine",
            clip_norm=1.0,
        ),
    ],
)
def test_tiny_run_learns(opts):
    ds = small_digits()
    res = rf.fit(ds, key=jax.random.key(0), epochs=6, batch_size=32, **opts)
    acc = rf.accuracy(res, ds.x_test, ds.y_test)
    assert acc > 0.7  # chance is 0.1
    assert res.metrics["test_accuracy"] == pytest.approx(acc)
    assert res.history[-1]["loss"] < 0.5 * res.history[0]["loss"]
    net = res.network
    assert net.readout.W.dtype == jnp.dtype(opts["dtype"]) and res.trunk is net.trunk
    assert (res.trunk.model, res.trunk.activation) == (opts["model"], opts.get("activation", "sigmoid"))
    # The logits are an independent recomputation: lift (if any) -> float64 numpy trunk -> readout.
    x = np.asarray(ds.x_test[:20], np.float64)
    if net.lift is not None:
        x = x @ np.asarray(net.lift.W, np.float64) + np.asarray(net.lift.b, np.float64)
    xT = np_trajectory(
        res.trunk.W,
        res.trunk.b,
        x,
        res.depth,
        model=opts["model"],
        activation=opts.get("activation", "sigmoid"),
    )[-1]
    ref = xT @ np.asarray(net.readout.W, np.float64) + np.asarray(net.readout.b, np.float64)
    tol = 1e-3 if opts["dtype"] == "float32" else 1e-9
    np.testing.assert_allclose(np.asarray(res.network(ds.x_test[:20])), ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(np.asarray(rf.predict(res, ds.x_test[:20])), ref, rtol=tol, atol=tol)


# The tiny circles runs. Compiling a run's programs (init, chunk, evaluate) is most of these tests'
# time, and runs with equal static options (`resflow.training._config.Static`: everything but lr,
# h, w_std, depth_tol and, under a constant schedule, epochs; plus the chunk length) share them.
# So the tests below use few static configurations: CIRCLES (float32, shared), UNTIED (untied,
# multi-cut with folding, cosine over 3 epochs) and CUT64 (float64, shared, multi-cut).
CIRCLES = dict(
    width=3, depth=6, epochs=6, batch_size=40, lr=2e-2, depth_adapt=True, depth_warmup=0, depth_tol=0.05, chunk_epochs=1
)
# depth_tol 1e6: every layer pair passes, so the first cut (after the 2-epoch warm-up) goes straight to min_depth.
UNTIED = dict(
    CIRCLES,
    shared=False,
    multi_cut=True,
    fold_drift=True,
    depth_tol=1e6,
    min_depth=2,
    depth_warmup=2,
    epochs=3,
    schedule="cosine",
)
CUT64 = dict(CIRCLES, dtype="float64", multi_cut=True, min_depth=2)


def tiny_circles():
    return load_dataset("circles", seed=0, n_train=120, n_test=120)


def test_resume_after_interrupt_is_bit_identical(tmp_path):
    ds, key = tiny_circles(), jax.random.key(7)
    full = rf.fit(ds, key=key, out_dir=tmp_path / "full", figures=False, **CIRCLES)

    class Killed(Exception):
        pass

    def kill_after_3(epoch, record):  # the end of the third chunk (of one epoch)
        if epoch == 3:
            raise Killed

    with pytest.raises(Killed):
        rf.fit(ds, key=key, out_dir=tmp_path / "cut", callback=kill_after_3, figures=False, **CIRCLES)
    lines = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3 and not (tmp_path / "cut" / "metrics.json").exists()
    resumed = rf.fit(ds, key=key, out_dir=tmp_path / "cut", resume=True, figures=False, **CIRCLES)

    for a, b in zip(jax.tree.leaves(full.network), jax.tree.leaves(resumed.network), strict=True):
        np.testing.assert_array_equal(a, b)
    strip = [{k: v for k, v in r.items() if k != "time"} for r in full.history]
    assert [{k: v for k, v in r.items() if k != "time"} for r in resumed.history] == strip
    assert resumed.depth == full.depth and resumed.metrics["cuts"] == full.metrics["cuts"]
    logged = [json.loads(line) for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in logged] == list(range(1, 7))
    # The rule did cut during the run (so depth is part of what was restored).
    assert full.depth < CIRCLES["depth"]
    # "Before pruning" is the test accuracy logged just before the first cut; the final weights
    # run at the initial depth are reported under their own name (shared weights: re-run them).
    m, first = full.metrics, full.metrics["cuts"][0]
    assert (
        m["accuracy_before_pruning"]
        == first["test_accuracy_before"]
        == full.history[first["epoch"] - 1]["test_accuracy"]
    )
    at_max = full.network.with_depth(CIRCLES["depth"])
    assert m["accuracy_final_params_at_max_depth"] == pytest.approx(rf.accuracy(at_max, ds.x_test, ds.y_test))
    assert m["accuracy_after_pruning"] == m["test_accuracy"]

    # Same key, same result; another key, another result (no out_dir: nothing written).
    again = rf.fit(ds, key=key, **CIRCLES)
    for a, b in zip(jax.tree.leaves(full.network), jax.tree.leaves(again.network), strict=True):
        np.testing.assert_array_equal(a, b)
    other = rf.fit(ds, key=jax.random.key(8), **CIRCLES)
    assert not np.array_equal(other.network.readout.W, full.network.readout.W)

    with pytest.raises(ValueError, match="only epochs may change"):
        rf.fit(ds, key=key, out_dir=tmp_path / "cut", resume=True, **dict(CIRCLES, lr=0.5))
    with pytest.raises(FileNotFoundError):
        rf.fit(ds, key=key, out_dir=tmp_path / "none", resume=True, **CIRCLES)


def test_multi_cut_untied_prunes_params_and_folds(tmp_path):
    ds = tiny_circles()
    res = rf.fit(ds, key=jax.random.key(0), out_dir=tmp_path, **UNTIED)
    # A huge tolerance: every layer pair passes, so after the warm-up one cut goes straight to min_depth.
    assert res.depth == 2 and res.trunk.W.shape == (2, 3, 3) and res.trunk.num_layers == 2
    (cut,) = res.metrics["cuts"]
    assert (cut["epoch"], cut["from"], cut["to"]) == (3, 6, 2)
    assert res.metrics["depth_history"] == [6, 6, 6, 2]
    assert {"training_curves.png", "depth_history.png", "metrics.json", "checkpoint.msgpack"} <= {
        p.name for p in tmp_path.iterdir()
    }
    # evaluate / accuracy check shapes against x and the training data.
    x, y = ds.x_test[:10], ds.y_test[:10]
    for bad_x, bad_y, match in [
        (x, y[:, None], "y must have shape"),
        (x, y[:9], "y must have shape"),
        (x[:, :1], y, "x must have shape"),
        (x, y + 5, "n_classes"),
    ]:
        with pytest.raises(ValueError, match=match):
            rf.evaluate(res, bad_x, bad_y)
    with pytest.raises(TypeError, match="y"):
        rf.accuracy(res, x, y.astype(np.float32))
    # predict and evaluate check x alike: NaN inputs are refused by both, naming x.
    x_nan = np.array(x, copy=True)
    x_nan[3, 0] = np.nan
    for call in (lambda: rf.predict(res, x_nan), lambda: rf.evaluate(res, x_nan, y)):
        with pytest.raises(ValueError, match="x must contain only finite values"):
            call()
    with pytest.raises(ValueError, match="x must have shape"):
        rf.predict(res, x[:, :1])


def test_resume_refuses_new_epochs_under_a_decaying_schedule(tmp_path):
    ds = tiny_circles()
    rf.fit(ds, key=jax.random.key(0), out_dir=tmp_path, figures=False, **UNTIED)  # cosine over 3 epochs
    with pytest.raises(ValueError, match="epochs may change only with schedule='constant'"):
        rf.fit(ds, key=jax.random.key(0), out_dir=tmp_path, resume=True, **dict(UNTIED, epochs=4))


def test_bad_options():
    ds = tiny_circles()
    for bad, match in [
        (dict(depth=0), "depth"),
        (dict(lr=-1.0), "lr"),
        (dict(model="cnn"), "model"),
        (dict(min_depth=9, depth=4), "min_depth"),
        (dict(width=3, lift=False), "lift"),
    ]:
        with pytest.raises((ValueError, TypeError), match=match):
            rf.fit(ds, key=jax.random.key(0), **bad)
    with pytest.raises(TypeError, match="not_an_option"):
        rf.fit(ds, key=jax.random.key(0), not_an_option=1)
    for config in ({"epochs": 1}, {}):  # {} was silently the default config
        with pytest.raises(TypeError, match="config must be a resflow.TrainConfig or None, got dict"):
            rf.fit(ds, config, key=jax.random.key(0))
    for bad_key in (0, None, np.zeros(3, np.uint32)):
        with pytest.raises(TypeError, match="key must be a jax.random key"):
            rf.fit(ds, key=bad_key, epochs=1)
    with pytest.raises(TypeError, match="Dataset"):
        rf.fit((ds.x_train, ds.y_train), key=jax.random.key(0))


def test_bad_data_is_refused_before_training():
    ds = tiny_circles()
    y_big = ds.y_train.copy()
    y_big[0] = 2  # n_classes is 2
    y_neg = ds.y_train.copy()
    y_neg[0] = -1
    meta_small = dict(ds.meta, n_classes=2)
    for bad, err, match in [
        (ds._replace(y_train=y_big), ValueError, "n_classes"),
        (ds._replace(y_train=y_big, meta=dict(ds.meta, n_classes=1)), ValueError, "n_classes"),
        (ds._replace(y_test=y_neg), ValueError, "y_test"),
        (ds._replace(y_train=ds.y_train.astype(np.float32)), TypeError, "y_train"),
        (ds._replace(x_test=np.ones((len(ds.x_test), 3), np.float32)), ValueError, "x_test"),
        (ds._replace(y_test=ds.y_test[:-1], meta=meta_small), ValueError, "y_test"),
        (ds._replace(y_train=ds.y_train[:, None]), ValueError, "y_train"),
        (ds._replace(x_train=ds.x_train.copy() * np.nan), ValueError, "x_train"),
    ]:
        with pytest.raises(err, match=match):
            rf.fit(bad, key=jax.random.key(0), epochs=1)


def test_training_figures():
    hist = [
        {"epoch": e, "loss": 1 / e, "test_loss": 1.2 / e, "train_accuracy": 0.5, "test_accuracy": 0.4, "depth": d}
        for e, d in [(1, 5), (2, 5), (3, 4)]
    ]
    hist[1]["depth_after_cut"] = 4
    hist[1]["residual_change"] = 0.003
    fig = plots.plot_training_curves(hist)
    assert [len(ax.lines) for ax in fig.axes] == [2, 2]
    fig = plots.plot_depth_history(hist, max_depth=5)
    steps = fig.axes[0].lines[0]
    assert list(steps.get_ydata()) == [5, 5, 4, 4]
    assert len(fig.axes) == 2  # residual-change twin axis


def test_remat_trains_the_same_network():
    # Checkpointing only changes what the backward pass stores, not the gradients: in
    # float64 the two runs agree to round-off, including the depth rule's cuts.
    ds = tiny_circles()
    opts = dict(CUT64, epochs=4)  # the plain run shares its programs with the next test's
    plain = rf.fit(ds, key=jax.random.key(3), **opts)
    remat = rf.fit(ds, key=jax.random.key(3), remat=True, **opts)
    assert remat.depth == plain.depth < CUT64["depth"]
    assert remat.metrics["cuts"] == plain.metrics["cuts"]
    for a, b in zip(jax.tree.leaves(remat.network), jax.tree.leaves(plain.network), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-11)
    with pytest.raises(TypeError, match="remat must be a bool"):
        rf.fit(ds, key=jax.random.key(3), remat=1, **opts)


# --- the pieces of fit, one by one ------------------------------------------------------


def tiny_run(**kw):
    ds = tiny_circles()
    config = rf.TrainConfig().replace(**dict(CIRCLES, **kw)).validate()
    return ds, tr.setup_run(ds, config, 2)


def test_init_state_and_train_chunk():
    # No warm-up: the residual change is measured (and can cut) from the first epoch.
    ds, run = tiny_run(depth_tol=1e-9)
    s0 = tr.init_state(run, jax.random.key(1))
    assert (s0.epoch, s0.depth, s0.history, s0.cuts) == (0, 6, [], [])
    s1, (record,), bad = tr.train_chunk(run, s0, 0.0)
    again, (record_again,), _ = tr.train_chunk(run, tr.init_state(run, jax.random.key(1)), 0.0)
    assert bad is None and s1.epoch == 1 and record["epoch"] == 1 and record["depth"] == 6
    assert {k: v for k, v in record.items() if k != "time"} == {k: v for k, v in record_again.items() if k != "time"}
    for a, b in zip(jax.tree.leaves(s1.params), jax.tree.leaves(again.params), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(s1.params.readout.W, s0.params.readout.W)
    # The parameters are the Network; its h is a leaf that training leaves alone.
    assert float(s0.params.trunk.h) == float(s1.params.trunk.h) == 1.0
    # The compiled, chunked test metrics equal the network's own on the whole test set.
    net = s1.params
    ev = rf.evaluate(net, ds.x_test, ds.y_test)
    assert record["test_accuracy"] == pytest.approx(ev["accuracy"])
    assert record["test_loss"] == pytest.approx(ev["loss"], rel=1e-5)
    # The residual change d_5 of the trained parameters, from a numpy trajectory.
    traj = np_trajectory(net.trunk.W, net.trunk.b, np.asarray(net.embed(ds.x_train), np.float64), 6)
    r = (traj[1:] - traj[:-1]) / 1.0
    assert record["residual_change"] == pytest.approx(np.abs(r[5] - r[4]).mean(-1).mean(), rel=1e-4)


def test_a_cut_folds_the_drift_into_the_readout():
    kw = dict(CUT64, depth_tol=1e6, epochs=1)
    ds = tiny_circles()
    plain = rf.fit(ds, key=jax.random.key(0), **kw)
    folded = rf.fit(ds, key=jax.random.key(0), fold_drift=True, **kw)
    (cut,) = folded.metrics["cuts"]
    assert folded.depth == plain.depth == 2 and (cut["epoch"], cut["from"], cut["to"]) == (1, 6, 2)
    assert cut["test_accuracy_before"] == folded.history[0]["test_accuracy"]
    at_2 = rf.accuracy(folded, ds.x_test, ds.y_test)
    assert cut["test_accuracy_after"] == pytest.approx(at_2)
    # Folding moved the mean output shift x_6 - x_2 (over the training set) into the bias; nothing else changed.
    tr_ = plain.network.trunk
    traj = np_trajectory(tr_.W, tr_.b, np.asarray(plain.network.embed(ds.x_train)), 6)
    shift = (traj[6] - traj[2]).mean(0) @ np.asarray(plain.network.readout.W)
    np.testing.assert_allclose(folded.network.readout.b, np.asarray(plain.network.readout.b) + shift, rtol=1e-9)
    np.testing.assert_array_equal(folded.trunk.W, plain.trunk.W)


def test_log_and_checkpoint_then_restore(tmp_path):
    _, run = tiny_run(checkpoint_every=2)
    state = tr.init_state(run, jax.random.key(2))
    for _ in range(2):
        start = state.epoch
        state, _, _ = tr.train_chunk(run, state, 0.0)
        assert tr.log_and_checkpoint(tmp_path, run.config, state, start) == (state.epoch == 2)
        if state.epoch == 1:
            assert not (tmp_path / tr.CHECKPOINT).exists()  # every 2 epochs
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 2
    restored = tr.restore_state(tr.init_state(run, jax.random.key(9)), tmp_path, run.config.replace(chunk_epochs=4))
    assert (restored.epoch, restored.depth, restored.history) == (2, state.depth, state.history)
    for a, b in zip(jax.tree.leaves(state[:2]), jax.tree.leaves(restored[:2]), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(jax.random.key_data(state.key), jax.random.key_data(restored.key))
    with pytest.raises(ValueError, match="only epochs"):
        tr.restore_state(state, tmp_path, run.config.replace(depth=5))
    with pytest.raises(ValueError, match="needs out_dir"):
        tr.restore_state(state, None, run.config)
    assert not tr.log_and_checkpoint(None, run.config, state, 0)  # no folder: nothing to do


def test_finish_prunes_and_reports():
    ds, run = tiny_run(**UNTIED)  # one epoch, in the warm-up: no cut
    state, _, _ = tr.train_chunk(run, tr.init_state(run, jax.random.key(0)), 0.0)
    assert state.epoch == 1 and state.depth == 6
    state = state._replace(depth=4)  # as if cut to 4
    res = tr.finish(run, state, ds, wall_time=1.5)
    assert res.depth == 4 and res.trunk.W.shape == (4, 3, 3)
    np.testing.assert_array_equal(res.trunk.W, state.params.trunk.W[:4])
    m = res.metrics
    assert (m["initial_depth"], m["depth"], m["depth_history"], m["wall_time"]) == (6, 4, [6, 4], 1.5)
    assert m["test_accuracy"] == rf.accuracy(res, ds.x_test, ds.y_test) == m["accuracy_before_pruning"]
    assert m["config"]["trunk"]["shared"] is False
    at_6 = rf.accuracy(state.params, ds.x_test, ds.y_test)
    assert m["accuracy_final_params_at_max_depth"] == pytest.approx(at_6)


def test_warmup_cosine_takes_a_traced_lr():
    # A sweep traces lr; optax's warmup-cosine refused a traced peak. Closed form of the
    # schedule: lr·k/w while warming up (w = total // 20), then lr·(1 + cos(π(k − w)/(total − w)))/2.
    from resflow.training._config import static_of
    from resflow.training._engine import make_optimizer

    config = rf.TrainConfig().replace(schedule="warmup-cosine", epochs=4, lr=0.3, optimizer="sgd", batch_size=64)
    static = static_of(config, dim=2, n_classes=2, n_train=640)  # 10 steps per epoch
    steps, total = static.steps_per_epoch, 40
    assert steps == 10
    params = jnp.zeros(1)

    @jax.jit
    def lrs(lr):  # SGD's updates of a unit gradient, step by step
        opt = make_optimizer(static, lr, 0.0)
        state = opt.init(params)

        def step(state, _):
            upd, state = opt.update(jnp.ones(1), state, params)
            return state, upd[0]

        return jax.lax.scan(step, state, None, length=total)[1]

    got = np.asarray(lrs(jnp.asarray(0.3)))
    w = total // 20
    k = np.arange(total)
    sched = np.where(k < w, 0.3 * k / w, 0.3 * (1 + np.cos(np.pi * (k - w) / (total - w))) / 2)
    # SGD with momentum 0.9 on a constant unit gradient: v_k = 0.9 v_{k−1} + 1, update −lr_k v_k.
    v = np.array([sum(0.9**j for j in range(i + 1)) for i in range(total)])
    np.testing.assert_allclose(got, -sched * v, rtol=1e-6, atol=1e-9)
