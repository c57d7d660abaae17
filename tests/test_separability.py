import jax
import jax.numpy as jnp
import numpy as np
import pytest

import resflow as rf


def np_ridge(x, y, c, lam):
    """Float64 ridge with an unpenalised bias, by the normal equations."""
    xb = np.concatenate([x, np.ones((len(x), 1))], axis=1)
    Y = np.eye(c)[y]
    P = lam * np.eye(xb.shape[1])
    P[-1, -1] = 0.0
    return np.linalg.solve(xb.T @ xb + P, xb.T @ Y)


def np_fisher(x, y):
    mu = x.mean(0)
    between = within = 0.0
    for c in np.unique(y):
        xc = x[y == c]
        between += len(xc) * np.sum((xc.mean(0) - mu) ** 2)
        within += np.sum((xc - xc.mean(0)) ** 2)
    return between / within


def data(key, L=3, N=40, d=5, c=3, dtype=jnp.float64):
    # numpy draws: jax.random and eager jnp arithmetic would build programs per shape and dtype
    rng = np.random.default_rng(0)
    y = rng.integers(0, c, N)
    x = rng.standard_normal((L, N, d)) + 0.7 * np.arange(L)[:, None, None] * y[None, :, None]
    return jnp.asarray(x, dtype), jnp.asarray(y)


@pytest.mark.parametrize("lam", [1e-3, 0.5])
def test_probe_weights_equal_numpy_ridge(key, lam):
    x, y = data(key)
    res = rf.linear_probe(x, y, ridge=lam)
    assert res.weights.shape == (3, 6, 3)
    for t in range(3):
        np.testing.assert_allclose(
            np.asarray(res.weights[t]), np_ridge(np.asarray(x[t]), np.asarray(y), 3, lam), rtol=1e-9, atol=1e-12
        )
        pred = np.argmax(np.concatenate([x[t], np.ones((40, 1))], 1) @ np.asarray(res.weights[t]), 1)
        assert float(res.train_accuracy[t]) == pytest.approx(np.mean(pred == np.asarray(y)))
    np.testing.assert_array_equal(np.asarray(res.accuracy), np.asarray(res.train_accuracy))


def test_probe_without_ridge_equals_lstsq(key):
    x, y = data(key)
    res = rf.linear_probe(x, y, ridge=0.0)
    for t in range(3):
        xb = np.concatenate([np.asarray(x[t]), np.ones((40, 1))], 1)
        ref = np.linalg.lstsq(xb, np.eye(3)[np.asarray(y)], rcond=None)[0]
        np.testing.assert_allclose(np.asarray(res.weights[t]), ref, rtol=1e-9, atol=1e-12)


def test_probe_float32(key):
    x, y = data(key, dtype=jnp.float32)
    res = rf.linear_probe(x, y, ridge=1e-2)
    assert res.weights.dtype == jnp.float32
    ref = np_ridge(np.asarray(x[1], np.float64), np.asarray(y), 3, 1e-2)
    np.testing.assert_allclose(np.asarray(res.weights[1]), ref, rtol=1e-3, atol=1e-4)


def test_separable_data_gives_accuracy_one_and_test_split_used(key):
    # Classes at distinct corners of a simplex plus small noise: linearly separable.
    c, d = 4, 6
    rng = np.random.default_rng(1)
    y, yt = rng.integers(0, c, 60), rng.integers(0, c, 30)
    centers = 3.0 * np.eye(c, d)
    x = jnp.asarray(centers[y] + 0.1 * rng.standard_normal((60, d)))[None]
    xt = jnp.asarray(centers[yt] + 0.1 * rng.standard_normal((30, d)))[None]
    y, yt = jnp.asarray(y), jnp.asarray(yt)
    res = rf.linear_probe(x, y, test_features=xt, test_labels=yt)
    assert float(res.train_accuracy[0]) == 1.0 and float(res.accuracy[0]) == 1.0
    # Scoring really uses the test split: wrong test labels give accuracy 0.
    bad = rf.linear_probe(x, y, test_features=xt, test_labels=(yt + 1) % c)
    assert float(bad.accuracy[0]) == 0.0 and float(bad.train_accuracy[0]) == 1.0


def test_fisher_closed_form_two_classes():
    # Class 0: (0,0),(2,0), mean (1,0); class 1: (0,4),(2,4), mean (1,4); overall mean (1,2).
    # between = 2*4 + 2*4 = 16, within = 4*1 = 4  ->  F = 4.
    x = jnp.array([[[0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [2.0, 4.0]]])
    y = jnp.array([0, 0, 1, 1])
    np.testing.assert_allclose(np.asarray(rf.analysis.fisher_ratio(x, y)), [4.0], rtol=1e-14)
    # Scaling the separation by a multiplies F by a^2; swapping labels within a class does nothing.
    x2 = x.at[..., 1].multiply(3.0)
    np.testing.assert_allclose(np.asarray(rf.analysis.fisher_ratio(x2, y)), [36.0], rtol=1e-14)


def test_fisher_matches_numpy_and_vanishes_for_identical_classes(key):
    x, y = data(key)
    ref = [np_fisher(np.asarray(x[t]), np.asarray(y)) for t in range(3)]
    np.testing.assert_allclose(np.asarray(rf.analysis.fisher_ratio(x, y)), ref, rtol=1e-12)
    # Labels independent of the features: F ~ (C - 1) / N, close to 0.
    z = jnp.asarray(np.random.default_rng(2).standard_normal((1, 4000, 3)))
    y = jnp.arange(4000) % 2
    assert float(rf.analysis.fisher_ratio(z, y)[0]) < 5e-3
    # Exactly equal class means: F = 0 exactly, also for constant (saturated) features.
    sym = jnp.array([[[1.0], [-1.0], [1.0], [-1.0]]])
    assert float(rf.analysis.fisher_ratio(sym, jnp.array([0, 0, 1, 1]))[0]) == 0.0
    assert float(rf.analysis.fisher_ratio(jnp.ones((1, 4, 2)), jnp.array([0, 0, 1, 1]))[0]) == 0.0


def _np_residuals(trunk, traj):
    """Float64 numpy residuals r_t = σ(W x_t + b) of a shared logistic trunk."""
    W, b = np.asarray(trunk.W, np.float64), np.asarray(trunk.b, np.float64)
    return 1 / (1 + np.exp(-(np.asarray(traj[:-1], np.float64) @ W.T + b)))


def test_class_separability_on_a_trajectory(key):
    n, T = 4, 5
    p = rf.Trunk.init(key, n, w_std=1.5, b_std=0.3, h=0.5)
    y = jnp.arange(60) % 3
    x0 = jax.random.normal(jax.random.key(1), (60, n)) + 1.5 * jax.nn.one_hot(y, n)
    traj = rf.trajectory(p, x0, depth=T)
    r = _np_residuals(p, traj)
    sep = rf.class_separability(p, x0[:40], y[:40], depth=T, test_x0=x0[40:], test_labels=y[40:])
    assert sep.residual_accuracy.shape == sep.residual_fisher.shape == (T,)
    assert sep.integral_accuracy.shape == sep.integral_fisher.shape == (T + 1,)
    # The ResNet's running integral is its state: compare with probes on the trajectory itself.
    direct = rf.linear_probe(traj[:, :40], y[:40], test_features=traj[:, 40:], test_labels=y[40:])
    np.testing.assert_allclose(np.asarray(sep.integral_accuracy), np.asarray(direct.accuracy))
    # ... and on the residuals, against probes on the float64 numpy residuals.
    direct_r = rf.linear_probe(jnp.asarray(r[:, :40]), y[:40], test_features=jnp.asarray(r[:, 40:]), test_labels=y[40:])
    np.testing.assert_allclose(np.asarray(sep.residual_accuracy), np.asarray(direct_r.accuracy))
    # Fisher ratios against the float64 numpy reference, the integral's on the trajectory itself.
    yn = np.asarray(y[:40])
    np.testing.assert_allclose(
        np.asarray(sep.integral_fisher), [np_fisher(np.asarray(xt[:40], np.float64), yn) for xt in traj], rtol=1e-10
    )
    np.testing.assert_allclose(np.asarray(sep.residual_fisher), [np_fisher(rt[:40], yn) for rt in r], rtol=1e-10)


def test_class_separability_untied_and_under_jit(key):
    n, T = 3, 4
    p = rf.Trunk.init(key, n, shared=False, depth=T, w_std=1.5, b_std=0.3)
    y = jnp.arange(30) % 2
    x0 = jax.random.normal(jax.random.key(2), (30, n)) + jax.nn.one_hot(y, n)
    traj = np.asarray(rf.trajectory(p, x0), np.float64)
    W, b = np.asarray(p.W, np.float64), np.asarray(p.b, np.float64)
    r = np.stack([1 / (1 + np.exp(-(traj[t] @ W[t].T + b[t]))) for t in range(T)])
    sep = rf.class_separability(p, x0, y)
    np.testing.assert_allclose(np.asarray(sep.residual_fisher), [np_fisher(rt, np.asarray(y)) for rt in r], rtol=1e-10)
    jitted = jax.jit(lambda x, yy: rf.class_separability(p, x, yy, num_classes=2))(x0, y)
    for a, b_ in zip(jitted, sep, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b_), rtol=1e-12)
    with pytest.raises(ValueError, match="num_classes must be given"):
        jax.jit(lambda x, yy: rf.class_separability(p, x, yy))(x0, y)


def test_bad_input_rejected(key):
    x, y = data(key)
    with pytest.raises(ValueError, match="features must have 3 dimensions"):
        rf.linear_probe(x[0], y)
    with pytest.raises(ValueError, match=r"labels must have shape \(40,\)"):
        rf.linear_probe(x, y[:-1])
    with pytest.raises(TypeError, match="integer class labels"):
        rf.analysis.fisher_ratio(x, y.astype(float))
    with pytest.raises(ValueError, match="both test_features and test_labels"):
        rf.linear_probe(x, y, test_features=x)
    with pytest.raises(ValueError, match="ridge"):
        rf.linear_probe(x, y, ridge=-1.0)
    with pytest.raises(ValueError, match="num_classes"):
        rf.linear_probe(x, y, num_classes=2)
    with pytest.raises(ValueError, match="finite"):
        rf.analysis.fisher_ratio(x.at[0, 0, 0].set(jnp.inf), y)
    with pytest.raises(ValueError, match="test_features must be"):
        rf.linear_probe(x, y, test_features=x[:, :, :2], test_labels=y)
    p = rf.Trunk.init(key, 5)
    with pytest.raises(ValueError, match="both test_x0 and test_labels"):
        rf.class_separability(p, x[0], y, depth=2, test_x0=x[0])
    with pytest.raises(ValueError, match="x0 must contain only finite"):
        rf.class_separability(p, x[0].at[0, 0].set(jnp.nan), y, depth=2)
    with pytest.raises(TypeError, match="dtype"):
        rf.class_separability(p, x[0].astype(jnp.float32), y, depth=2)
    with pytest.raises(ValueError, match="labels must be >= 0"):
        rf.class_separability(p, x[0], y - 1, depth=2)
    with pytest.raises(ValueError, match="num_classes = 2"):
        rf.analysis.fisher_ratio(x, y, num_classes=2)
