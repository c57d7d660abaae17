import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import np_trajectory
from hypothesis import given, settings
from hypothesis import strategies as st

import resflow as rf

TOL = {jnp.float32: dict(rtol=2e-5, atol=2e-5), jnp.float64: dict(rtol=1e-12, atol=1e-12)}


def make(key, n, depth, shared, dtype, batch=(5,), w_std=1.5, b_std=0.5):
    kp, kx = jax.random.split(key)
    p = rf.init_trunk(kp, n, shared=shared, depth=depth, w_std=w_std, b_std=b_std, dtype=dtype)
    x0 = jax.random.normal(kx, batch + (n,), dtype)
    return p, x0


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("model", ["resnet", "mlp"])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
@pytest.mark.parametrize("shared", [True, False])
def test_trajectory_matches_numpy_loop(key, dtype, model, activation, shared):
    n, depth, h = 6, 7, 0.7
    p, x0 = make(key, n, depth, shared, dtype)
    traj = rf.trajectory(p, x0, depth=depth, model=model, activation=activation, h=h)
    ref = np_trajectory(p.W, p.b, x0, depth, model=model, activation=activation, h=h)
    assert traj.shape == (depth + 1, 5, n)
    assert traj.dtype == dtype
    np.testing.assert_allclose(np.asarray(traj), ref, **TOL[dtype])
    xT = rf.forward(p, x0, depth=depth, model=model, activation=activation, h=h)
    np.testing.assert_allclose(np.asarray(xT), ref[-1], **TOL[dtype])


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("model", ["resnet", "mlp"])
def test_scan_equals_unrolled(key, dtype, shared, model):
    p, x0 = make(key, 5, 9, shared, dtype)
    a = rf.forward(p, x0, depth=9, model=model)
    b = rf.forward_unrolled(p, x0, depth=9, model=model)
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=4 * jnp.finfo(dtype).eps, atol=0)


@pytest.mark.parametrize("batch", [(), (3,), (2, 4)])
def test_single_input_and_batch_shapes(key, batch):
    p, x0 = make(key, 4, 3, True, jnp.float64, batch=batch)
    traj = rf.trajectory(p, x0, depth=3)
    assert traj.shape == (4,) + batch + (4,)
    ref = np_trajectory(p.W, p.b, x0, 3)
    np.testing.assert_allclose(np.asarray(traj), ref, rtol=1e-12)


def test_untied_depth_prefix_and_layer_independence(key):
    # Layer t of an untied init does not depend on the total depth, and depth may be a prefix.
    p6 = rf.init_trunk(key, 4, shared=False, depth=6)
    p3 = rf.init_trunk(key, 4, shared=False, depth=3)
    np.testing.assert_array_equal(np.asarray(p6.W[:3]), np.asarray(p3.W))
    x0 = jnp.ones(4)
    np.testing.assert_allclose(rf.forward(p6, x0, depth=3), rf.forward(p3, x0), rtol=1e-14)


def test_active_depth_masks_later_layers(key):
    p, x0 = make(key, 4, 8, True, jnp.float64)
    traj = rf.trajectory(p, x0, depth=8)
    f = jax.jit(lambda d: rf.forward(p, x0, depth=8, active_depth=d))
    for d in [1, 4, 8]:
        np.testing.assert_allclose(np.asarray(f(d)), np.asarray(traj[d]), rtol=1e-14)


def test_same_key_same_params_different_key_different(key):
    a = rf.init_trunk(key, 5)
    b = rf.init_trunk(key, 5)
    c = rf.init_trunk(jax.random.key(1), 5)
    np.testing.assert_array_equal(np.asarray(a.W), np.asarray(b.W))
    assert not np.allclose(np.asarray(a.W), np.asarray(c.W))


def test_jit_vmap_grad(key):
    p, x0 = make(key, 4, 5, True, jnp.float64)
    f = functools.partial(rf.forward, depth=5)
    np.testing.assert_allclose(jax.jit(f)(p, x0), f(p, x0), rtol=1e-14)
    np.testing.assert_allclose(jax.vmap(f, in_axes=(None, 0))(p, x0), f(p, x0), rtol=1e-14)

    def loss(W):
        return jnp.sum(rf.forward(rf.TrunkParams(W, p.b), x0, depth=5) ** 2)

    g = jax.grad(loss)(p.W)
    # Central finite difference on one entry, float64.
    eps = 1e-6
    E = jnp.zeros_like(p.W).at[1, 2].set(eps)
    fd = (loss(p.W + E) - loss(p.W - E)) / (2 * eps)
    np.testing.assert_allclose(g[1, 2], fd, rtol=1e-6)


def test_h_gradient_and_traced_h(key):
    p, x0 = make(key, 3, 4, True, jnp.float64)
    g = jax.grad(lambda h: jnp.sum(rf.forward(p, x0, depth=4, h=h)))(0.5)
    eps = 1e-6
    fd = (jnp.sum(rf.forward(p, x0, depth=4, h=0.5 + eps)) - jnp.sum(rf.forward(p, x0, depth=4, h=0.5 - eps))) / (
        2 * eps
    )
    np.testing.assert_allclose(g, fd, rtol=1e-6)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 7),
    depth=st.integers(1, 12),
    batch=st.integers(1, 4),
    seed=st.integers(0, 2**16),
    h=st.floats(0.05, 2.0),
    shared=st.booleans(),
)
def test_property_random_networks(n, depth, batch, seed, h, shared):
    p, x0 = make(jax.random.key(seed), n, depth, shared, jnp.float64, batch=(batch,))
    traj = rf.trajectory(p, x0, depth=depth, h=h)
    np.testing.assert_allclose(np.asarray(traj), np_trajectory(p.W, p.b, x0, depth, h=h), rtol=1e-11, atol=1e-11)
    r = rf.residuals(p, traj)
    np.testing.assert_allclose(np.asarray(rf.reconstruct_output(x0, r, h=h)), np.asarray(traj[-1]), rtol=1e-11)


# ---- bad input -------------------------------------------------------------------------


def test_bad_inputs(key):
    p = rf.init_trunk(key, 3, dtype=jnp.float64)
    x0 = jnp.zeros(3)
    with pytest.raises(ValueError, match="x0 .*trailing dimension 3"):
        rf.forward(p, jnp.zeros(4), depth=2)
    with pytest.raises(ValueError, match="x0 .*finite"):
        rf.forward(p, jnp.array([0.0, jnp.nan, 1.0]), depth=2)
    with pytest.raises(ValueError, match="params.W .*finite"):
        rf.forward(rf.TrunkParams(p.W.at[0, 0].set(jnp.inf), p.b), x0, depth=2)
    with pytest.raises(ValueError, match="params.b must have shape"):
        rf.forward(rf.TrunkParams(p.W, jnp.zeros(4)), x0, depth=2)
    with pytest.raises(ValueError, match="params.W must be"):
        rf.forward(rf.TrunkParams(jnp.zeros((3, 4)), jnp.zeros(3)), x0, depth=2)
    with pytest.raises(ValueError, match="h must be"):
        rf.forward(p, x0, depth=2, h=0.0)
    with pytest.raises(ValueError, match="h must be"):
        rf.forward(p, x0, depth=2, h=-1.0)
    with pytest.raises(ValueError, match="h must be"):
        rf.forward(p, x0, depth=2, h=float("nan"))
    with pytest.raises(TypeError, match="h must be"):
        rf.forward(p, x0, depth=2, h="1")
    with pytest.raises(ValueError, match="depth must be >= 1"):
        rf.forward(p, x0, depth=0)
    with pytest.raises(TypeError, match="depth must be an integer"):
        rf.forward(p, x0, depth=2.0)
    with pytest.raises(ValueError, match="depth must be given"):
        rf.forward(p, x0)
    with pytest.raises(ValueError, match="activation must be one of"):
        rf.forward(p, x0, depth=2, activation="softplus")
    with pytest.raises(ValueError, match="model must be one of"):
        rf.forward(p, x0, depth=2, model="transformer")
    with pytest.raises(TypeError, match="params must be a resflow.TrunkParams"):
        rf.forward((p.W, p.b), x0, depth=2)
    with pytest.raises(TypeError, match="x0 must have a floating dtype"):
        rf.forward(p, jnp.zeros(3, jnp.int32), depth=2)
    pu = rf.init_trunk(key, 3, shared=False, depth=2)
    with pytest.raises(ValueError, match="depth must be <= 2"):
        rf.forward(pu, x0, depth=3)
    with pytest.raises(ValueError, match="depth must be given for untied"):
        rf.init_trunk(key, 3, shared=False)
    with pytest.raises(ValueError, match="width must be >= 1"):
        rf.init_trunk(key, 0)


@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("depth", [1, 7, 9, 10])
def test_remat_same_values_and_gradients(key, shared, depth):
    p, x0 = make(key, 4, depth, shared, jnp.float64)
    ref = np_trajectory(p.W, p.b, x0, depth, h=0.6)[-1]
    np.testing.assert_allclose(np.asarray(rf.forward(p, x0, depth=depth, h=0.6, remat=True)), ref, rtol=1e-12)

    def loss(params, remat, active=None):
        return jnp.sum(jnp.sin(rf.forward(params, x0, depth=depth, h=0.6, remat=remat, active_depth=active)))

    g, g_ref = jax.grad(loss)(p, True), jax.grad(loss)(p, False)
    for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_ref), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-11, atol=1e-13)
    active = max(1, depth - 2)
    np.testing.assert_allclose(
        np.asarray(rf.forward(p, x0, depth=depth, h=0.6, remat=True, active_depth=active)),
        np_trajectory(p.W, p.b, x0, depth, h=0.6)[active],
        rtol=1e-12,
    )


def test_remat_stores_fewer_states(key):
    # XLA's buffer plan for the gradient: O(√T) saved states instead of O(T).
    p, x0 = make(key, 16, 100, True, jnp.float32, batch=(32,))

    def temp_bytes(remat):
        f = jax.jit(jax.grad(lambda W: jnp.sum(rf.forward(rf.TrunkParams(W, p.b), x0, depth=100, remat=remat))))
        return f.lower(p.W).compile().memory_analysis().temp_size_in_bytes

    assert temp_bytes(True) < 0.5 * temp_bytes(False)


def test_bad_dtype_mix_active_depth_unroll_and_init_scales(key):
    p64 = rf.init_trunk(key, 3, dtype=jnp.float64)
    p32 = rf.init_trunk(key, 3, dtype=jnp.float32)
    with pytest.raises(TypeError, match="x0 has dtype float32 but params.W has float64"):
        rf.forward(p64, jnp.zeros(3, jnp.float32), depth=2)
    with pytest.raises(TypeError, match="x0 has dtype float64 but params.W has float32"):
        rf.trajectory(p32, jnp.zeros(3, jnp.float64), depth=2)
    with pytest.raises(TypeError, match="params.b has dtype"):
        rf.forward(rf.TrunkParams(p64.W, p32.b), jnp.zeros(3), depth=2)
    x0 = jnp.zeros(3)
    for bad in (-1, 3):
        with pytest.raises(ValueError, match=r"active_depth must be in \[0, depth\] = \[0, 2\]"):
            rf.forward(p64, x0, depth=2, active_depth=bad)
    with pytest.raises(TypeError, match="active_depth must be an integer"):
        rf.forward(p64, x0, depth=2, active_depth=1.5)
    with pytest.raises(ValueError, match="active_depth must be a scalar"):
        rf.trajectory(p64, x0, depth=2, active_depth=jnp.array([1, 2]))
    with pytest.raises(TypeError, match="unroll must be an integer"):
        rf.forward(p64, x0, depth=2, unroll=1.5)
    with pytest.raises(ValueError, match="w_std must be a finite number >= 0"):
        rf.init_trunk(key, 3, w_std=-1.0)
    with pytest.raises(ValueError, match="b_std must be a finite number >= 0"):
        rf.init_trunk(key, 3, b_std=float("nan"))
    with pytest.raises(TypeError, match="remat must be a bool"):
        rf.forward(p64, x0, depth=2, remat=1)
    # Boundary values are fine: active_depth 0 is the identity, w_std 0 gives W = 0.
    np.testing.assert_array_equal(np.asarray(rf.forward(p64, x0 + 1, depth=2, active_depth=0)), np.ones(3))
    assert not np.any(np.asarray(rf.init_trunk(key, 3, w_std=0.0).W))
