"""The trunk map x_{t+1} = x_t + h·act(W_t x_t + b_t) (resnet) / act(W_t x_t + b_t) (mlp) against
float64 numpy loops; the `Trunk` type's constructor, methods and pytree behaviour."""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import np_trajectory
from hypothesis import given, settings
from hypothesis import strategies as st

import resflow as rf

N, DEPTH = 6, 7
TOL = {jnp.float32: dict(rtol=2e-5, atol=2e-5), jnp.float64: dict(rtol=1e-12, atol=1e-12)}


def make(seed, n, depth, shared, dtype, batch=(5,), w_std=1.5, b_std=0.5, h=1.0, **kw):
    """A random trunk (W ~ N(0, w_std²/n), b ~ N(0, b_std²), as `Trunk.init` draws them) and inputs.

    Drawn by numpy: every new shape of a `jax.random` draw builds a program (~0.5 s each);
    `Trunk.init` itself is tested below."""
    rng = np.random.default_rng(seed)
    lead = () if shared else (depth,)
    W = rng.normal(0, w_std / np.sqrt(n), lead + (n, n))
    b = rng.normal(0, b_std, lead + (n,))
    p = rf.Trunk(jnp.asarray(W, dtype), jnp.asarray(b, dtype), h, **kw)
    x0 = jnp.asarray(rng.normal(size=batch + (n,)), dtype)
    return p, x0


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("model", ["resnet", "mlp"])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
@pytest.mark.parametrize("shared", [True, False])
def test_trajectory_matches_numpy_loop(dtype, model, activation, shared):
    # N, DEPTH, BATCH: the shapes most tests below use too, so that they share its programs.
    n, depth, h = N, DEPTH, 0.7
    p, x0 = make(0, n, depth, shared, dtype, model=model, activation=activation, h=h)
    traj = rf.trajectory(p, x0, depth=depth)
    ref = np_trajectory(p.W, p.b, x0, depth, model=model, activation=activation, h=h)
    assert traj.shape == (depth + 1, 5, n)
    assert traj.dtype == dtype
    np.testing.assert_allclose(np.asarray(traj), ref, **TOL[dtype])
    xT = rf.forward(p, x0, depth=depth)
    np.testing.assert_allclose(np.asarray(xT), ref[-1], **TOL[dtype])


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("model", ["resnet", "mlp"])
def test_scan_equals_python_loop_of_steps(dtype, shared, model):
    p, x0 = make(1, N, DEPTH, shared, dtype, model=model)
    x = x0
    for t in range(DEPTH):
        x = p.layer(t).step(x)
    np.testing.assert_allclose(
        # The same arithmetic in the same order; the compiler may still contract a·b + c into
        # one FMA in one program and not the other (a rounding apart per layer).
        np.asarray(rf.forward(p, x0, depth=DEPTH)),
        np.asarray(x),
        rtol=16 * jnp.finfo(dtype).eps,
        atol=0,
    )


@pytest.mark.parametrize("batch", [(), (5,), (2, 4)])
def test_single_input_and_batch_shapes(batch):
    p, x0 = make(2, N, DEPTH, True, jnp.float64, batch=batch)
    traj = rf.trajectory(p, x0, depth=DEPTH)
    assert traj.shape == (DEPTH + 1,) + batch + (N,)
    ref = np_trajectory(p.W, p.b, x0, DEPTH)
    np.testing.assert_allclose(np.asarray(traj), ref, rtol=1e-12)


def test_untied_depth_prefix_and_layer_independence(key):
    # Layer t of an untied init does not depend on the total depth, and depth may be a prefix.
    # Width 3, float64: the shapes of the other Trunk.init calls here (one random program each).
    p6 = rf.Trunk.init(key, 3, shared=False, depth=6)
    p3 = rf.Trunk.init(key, 3, shared=False, depth=3)
    np.testing.assert_array_equal(np.asarray(p6.W[:3]), np.asarray(p3.W))
    x0 = jnp.ones(3)
    np.testing.assert_allclose(rf.forward(p6, x0, depth=3), rf.forward(p3, x0), rtol=1e-14)


def test_active_depth_masks_later_layers():
    p, x0 = make(3, N, DEPTH, True, jnp.float64)
    traj = rf.trajectory(p, x0, depth=DEPTH)
    f = jax.jit(lambda d: rf.forward(p, x0, depth=DEPTH, active_depth=d))
    for d in [1, 4, DEPTH]:
        np.testing.assert_allclose(np.asarray(f(d)), np.asarray(traj[d]), rtol=1e-14)


def test_same_key_same_params_different_key_different(key):
    a = rf.Trunk.init(key, 3)
    b = rf.Trunk.init(key, 3)
    c = rf.Trunk.init(jax.random.key(1), 3)
    np.testing.assert_array_equal(np.asarray(a.W), np.asarray(b.W))
    assert not np.allclose(np.asarray(a.W), np.asarray(c.W))


def test_jit_vmap_grad():
    p, x0 = make(4, N, DEPTH, True, jnp.float64)
    f = functools.partial(rf.forward, depth=DEPTH)
    np.testing.assert_allclose(jax.jit(f)(p, x0), f(p, x0), rtol=1e-14)
    np.testing.assert_allclose(jax.vmap(f, in_axes=(None, 0))(p, x0), f(p, x0), rtol=1e-14)

    def loss(W):
        return jnp.sum(rf.forward(rf.Trunk(W, p.b), x0, depth=DEPTH) ** 2)

    g = jax.grad(loss)(p.W)
    # Central finite difference on one entry, float64.
    eps = 1e-6
    E = jnp.zeros_like(p.W).at[1, 2].set(eps)
    fd = (loss(p.W + E) - loss(p.W - E)) / (2 * eps)
    np.testing.assert_allclose(g[1, 2], fd, rtol=1e-6)
    # The gradient with respect to the whole trunk is a Trunk whose W entry is the same number.
    gt = jax.grad(lambda t: jnp.sum(rf.forward(t, x0, depth=DEPTH) ** 2))(p)
    assert isinstance(gt, rf.Trunk)
    np.testing.assert_allclose(gt.W, g, rtol=1e-13)


def test_h_gradient_and_traced_h():
    p, x0 = make(5, N, DEPTH, True, jnp.float64)

    def total(h):
        return jnp.sum(rf.forward(rf.Trunk(p.W, p.b, h), x0, depth=DEPTH))

    g = jax.grad(total)(0.5)
    eps = 1e-6
    fd = (total(0.5 + eps) - total(0.5 - eps)) / (2 * eps)
    np.testing.assert_allclose(g, fd, rtol=1e-6)
    # h is a leaf of the trunk: the gradient wrt the trunk carries it too.
    gt = jax.grad(lambda t: jnp.sum(rf.forward(t, x0, depth=DEPTH)))(rf.Trunk(p.W, p.b, 0.5))
    np.testing.assert_allclose(gt.h, g, rtol=1e-12)
    # A sweep over h is a vmap over trunks, each against its own numpy loop.
    hs = jnp.array([0.25, 0.5, 1.5])
    xT = jax.vmap(lambda h: rf.forward(rf.Trunk(p.W, p.b, h), x0, depth=DEPTH))(hs)
    for i, h in enumerate(np.asarray(hs)):
        np.testing.assert_allclose(np.asarray(xT[i]), np_trajectory(p.W, p.b, x0, DEPTH, h=h)[-1], rtol=1e-12)


# Shapes from a small pool (each new shape builds new programs): a 1-wide single layer, the shapes
# of the tests above, and an odd deeper one; the weights, h and shared/untied are drawn freely.
@settings(max_examples=5, deadline=None)
@given(
    shape=st.sampled_from([(1, 1, 1), (N, DEPTH, 5), (3, 12, 2)]),
    seed=st.integers(0, 2**16),
    h=st.floats(0.05, 2.0),
    shared=st.booleans(),
)
def test_property_random_networks(shape, seed, h, shared):
    n, depth, batch = shape
    p, x0 = make(seed, n, depth, shared, jnp.float64, batch=(batch,))
    p = eqx.tree_at(lambda t: t.h, p, jnp.asarray(h))
    traj = rf.trajectory(p, x0, depth=depth)
    np.testing.assert_allclose(np.asarray(traj), np_trajectory(p.W, p.b, x0, depth, h=h), rtol=1e-11, atol=1e-11)
    r = rf.residuals(p, traj)
    np.testing.assert_allclose(np.asarray(rf.reconstruct_output(p, x0, r)), np.asarray(traj[-1]), rtol=1e-11)


# ---- bad input -------------------------------------------------------------------------


def test_bad_inputs(key):
    p = rf.Trunk.init(key, 3, dtype=jnp.float64)
    x0 = jnp.zeros(3)
    with pytest.raises(ValueError, match="x0 .*trailing dimension 3"):
        rf.forward(p, jnp.zeros(4), depth=2)
    with pytest.raises(ValueError, match="x0 .*finite"):
        rf.forward(p, jnp.array([0.0, jnp.nan, 1.0]), depth=2)
    with pytest.raises(ValueError, match="depth must be >= 1"):
        rf.forward(p, x0, depth=0)
    with pytest.raises(TypeError, match="depth must be an integer"):
        rf.forward(p, x0, depth=2.0)
    with pytest.raises(ValueError, match="depth must be given"):
        rf.forward(p, x0)
    with pytest.raises(TypeError, match="trunk must be a resflow.Trunk"):
        rf.forward((p.W, p.b), x0, depth=2)
    with pytest.raises(TypeError, match="x0 must have a floating dtype"):
        rf.forward(p, jnp.zeros(3, jnp.int32), depth=2)
    pu = rf.Trunk.init(key, 3, shared=False, depth=2, dtype=jnp.float64)
    with pytest.raises(ValueError, match="depth must be <= 2"):
        rf.forward(pu, x0, depth=3)
    with pytest.raises(ValueError, match="depth must be given for untied"):
        rf.Trunk.init(key, 3, shared=False)
    with pytest.raises(ValueError, match="depth is for untied weights"):
        rf.Trunk.init(key, 3, shared=True, depth=5)
    with pytest.raises(ValueError, match="width must be >= 1"):
        rf.Trunk.init(key, 0)
    with pytest.raises(TypeError, match="dtype must be a floating dtype"):
        rf.Trunk.init(key, 3, dtype=jnp.int32)


def test_trunk_constructor_errors_name_the_field():
    W, b = jnp.eye(3), jnp.zeros(3)
    with pytest.raises(ValueError, match="W must be"):
        rf.Trunk(jnp.zeros((3, 4)), b)
    with pytest.raises(ValueError, match="W must be"):
        rf.Trunk(jnp.zeros(3), b)
    with pytest.raises(ValueError, match="b must have shape"):
        rf.Trunk(W, jnp.zeros(4))
    for empty in (jnp.zeros((0, 0)), jnp.zeros((2, 0, 0))):
        with pytest.raises(ValueError, match=r"W must have a width n >= 1, got shape \((2, )?0, 0\)"):
            rf.Trunk(empty, jnp.zeros(empty.shape[:-1]))
    with pytest.raises(ValueError, match=r"b must have shape \(2, 3\)"):
        rf.Trunk(jnp.zeros((2, 3, 3)), b)
    with pytest.raises(TypeError, match="b has dtype float32 but W has float64"):
        rf.Trunk(W, b.astype(jnp.float32))
    with pytest.raises(TypeError, match="W must have a floating dtype"):
        rf.Trunk(jnp.eye(3, dtype=jnp.int32), b)
    with pytest.raises(ValueError, match="W must contain only finite"):
        rf.Trunk(W.at[0, 0].set(jnp.nan), b)
    with pytest.raises(ValueError, match="b must contain only finite"):
        rf.Trunk(W, b.at[1].set(jnp.inf))
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="h must be"):
            rf.Trunk(W, b, bad)
    for bad in (True, "1", None):
        with pytest.raises(TypeError, match="h must be a real number"):
            rf.Trunk(W, b, bad)
    np.testing.assert_array_equal(rf.Trunk(W, b, np.array(0.5)).h, 0.5)  # 0-d numpy arrays are scalars
    with pytest.raises(ValueError, match="h must be a scalar"):
        rf.Trunk(W, b, jnp.ones(2))
    with pytest.raises(ValueError, match="model must be one of"):
        rf.Trunk(W, b, model="transformer")
    with pytest.raises(ValueError, match="activation must be one of"):
        rf.Trunk(W, b, activation="softplus")
    with pytest.raises(TypeError, match="activation must be one of"):
        rf.Trunk(W, b, activation=None)


def test_trunk_under_jit_skips_value_checks():
    # Tracers have no values: a trunk built inside jit is checked for shapes and dtypes only.
    W, b = jnp.eye(3).at[0, 0].set(jnp.nan), jnp.zeros(3)
    out = jax.jit(lambda W, h: rf.Trunk(W, b, h).W.sum())(W, -1.0)
    assert np.isnan(float(out))
    with pytest.raises(ValueError, match="W must be"):
        jax.jit(lambda W: rf.Trunk(W, b).W)(jnp.zeros((3, 4)))


def test_trunk_methods(key):
    untied = rf.Trunk.init(key, 3, shared=False, depth=6, h=0.5, activation="tanh", dtype=jnp.float64)
    assert (untied.width, untied.shared, untied.num_layers, untied.dtype) == (3, False, 6, jnp.float64)
    short = untied.truncate(4)
    assert (short.num_layers, short.h, short.activation) == (4, 0.5, "tanh")
    np.testing.assert_array_equal(short.W, untied.W[:4])
    np.testing.assert_array_equal(short.b, untied.b[:4])
    x0 = jnp.linspace(-1, 1, 6).reshape(2, 3)
    np.testing.assert_array_equal(rf.forward(short, x0), rf.forward(untied, x0, depth=4))
    with pytest.raises(ValueError, match="depth must be <= 6"):
        untied.truncate(7)
    with pytest.raises(ValueError, match="depth must be >= 1"):
        untied.truncate(0)
    one = untied.layer(2)
    assert one.shared and one.h == 0.5 and one.activation == "tanh"
    np.testing.assert_array_equal(one.W, untied.W[2])
    np.testing.assert_allclose(
        one.step(x0), x0 + 0.5 * np.tanh(x0 @ np.asarray(untied.W[2]).T + np.asarray(untied.b[2]))
    )
    with pytest.raises(IndexError, match="layer 6 is out of range"):
        untied.layer(6)
    np.testing.assert_array_equal(untied.layer(-1).W, untied.W[5])
    with pytest.raises(ValueError, match="step needs shared weights"):
        untied.step(x0)
    shared = rf.Trunk.init(key, 3, model="mlp", dtype=jnp.float64)
    assert shared.num_layers is None and shared.layer(5) is shared and shared.truncate(100) is shared
    f32 = shared.astype(jnp.float32)
    assert (f32.W.dtype, f32.b.dtype, f32.h.dtype, f32.model) == (jnp.float32, jnp.float32, jnp.float32, "mlp")
    np.testing.assert_allclose(f32.W, shared.W, rtol=1e-7)


def test_trunk_is_a_pytree(key):
    p = rf.Trunk.init(key, 3, h=0.5, model="mlp", activation="relu", dtype=jnp.float64)
    leaves = jax.tree.leaves(p)
    assert len(leaves) == 3
    for leaf, want in zip(leaves, (p.W, p.b, p.h), strict=True):
        assert leaf is want
    # Static fields live in the tree structure: a different model is a different treedef.
    assert jax.tree.structure(p) != jax.tree.structure(rf.Trunk(p.W, p.b, 0.5, model="resnet", activation="relu"))
    doubled = jax.tree.map(lambda a: 2 * a, p)
    assert isinstance(doubled, rf.Trunk) and doubled.model == "mlp" and float(doubled.h) == 1.0
    # The bound method is a pytree too, with the trunk's arrays as leaves (jit-able as an argument).
    assert len(jax.tree.leaves(p.step)) == 3
    x = jnp.ones(3)
    np.testing.assert_allclose(eqx.filter_jit(lambda f, x: f(x))(p.step, x), p.step(x), rtol=1e-14)


def test_forward_reads_values_at_most_once(monkeypatch):
    """The one device-to-host read of a call is `_checks.read_bool`; under jit there is none."""
    import resflow._checks as checks

    p, x0 = make(6, N, DEPTH, False, jnp.float64)
    reads = []
    monkeypatch.setattr(checks, "read_bool", lambda v: reads.append(1) or bool(v))
    rf.forward(p, x0, depth=5)
    assert len(reads) == 1
    reads.clear()
    rf.trajectory(p, x0, depth=5, active_depth=3)
    assert len(reads) == 1
    reads.clear()
    jax.jit(lambda t, x: rf.forward(t, x, depth=5))(p, x0)
    jax.jit(lambda t, x, d: rf.trajectory(t, x, depth=5, active_depth=d))(p, x0, 3)
    assert len(reads) == 0
    rf.Trunk(p.W, p.b, 0.5)  # construction: all value checks in one read
    assert len(reads) == 1


@pytest.mark.parametrize("shared", [True, False])
# Depth 1: one segment of one layer; 9: three full segments; 10: three segments and a remainder
# (7, two-layer segments and a remainder, took the same path as 10).
@pytest.mark.parametrize("depth", [1, 9, 10])
def test_remat_same_values_and_gradients(shared, depth):
    p, x0 = make(0, 4, depth, shared, jnp.float64, h=0.6)
    ref = np_trajectory(p.W, p.b, x0, depth, h=0.6)[-1]
    np.testing.assert_allclose(np.asarray(rf.forward(p, x0, depth=depth, remat=True)), ref, rtol=1e-12)

    def loss(trunk, remat, active=None):
        return jnp.sum(jnp.sin(rf.forward(trunk, x0, depth=depth, remat=remat, active_depth=active)))

    g, g_ref = jax.grad(loss)(p, True), jax.grad(loss)(p, False)
    for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_ref), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-11, atol=1e-13)
    active = max(1, depth - 2)
    np.testing.assert_allclose(
        np.asarray(rf.forward(p, x0, depth=depth, remat=True, active_depth=active)),
        np_trajectory(p.W, p.b, x0, depth, h=0.6)[active],
        rtol=1e-12,
    )


def test_remat_stores_fewer_states():
    # XLA's buffer plan for the gradient: O(√T) saved states instead of O(T).
    p, x0 = make(0, 16, 100, True, jnp.float32, batch=(32,))

    def temp_bytes(remat):
        f = jax.jit(jax.grad(lambda W: jnp.sum(rf.forward(rf.Trunk(W, p.b), x0, depth=100, remat=remat))))
        return f.lower(p.W).compile().memory_analysis().temp_size_in_bytes

    assert temp_bytes(True) < 0.5 * temp_bytes(False)


def test_bad_dtype_mix_active_depth_unroll_and_init_scales(key):
    p64 = rf.Trunk.init(key, 3, dtype=jnp.float64)
    p32 = rf.Trunk.init(key, 3, dtype=jnp.float32)
    with pytest.raises(TypeError, match="x0 has dtype float32 but the trunk has float64"):
        rf.forward(p64, jnp.zeros(3, jnp.float32), depth=2)
    with pytest.raises(TypeError, match="x0 has dtype float64 but the trunk has float32"):
        rf.trajectory(p32, jnp.zeros(3, jnp.float64), depth=2)
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
        rf.Trunk.init(key, 3, w_std=-1.0)
    with pytest.raises(ValueError, match="b_std must be a finite number >= 0"):
        rf.Trunk.init(key, 3, b_std=float("nan"))
    with pytest.raises(TypeError, match="remat must be a bool"):
        rf.forward(p64, x0, depth=2, remat=1)
    # Boundary values are fine: active_depth 0 is the identity, w_std 0 gives W = 0.
    np.testing.assert_array_equal(np.asarray(rf.forward(p64, x0 + 1, depth=2, active_depth=0)), np.ones(3))
    assert not np.any(np.asarray(rf.Trunk.init(key, 3, w_std=0.0).W))
