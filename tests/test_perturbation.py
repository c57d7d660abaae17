import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import np_act, np_trajectory

import resflow as rf

NP_GRAD = {
    "sigmoid": lambda a: np_act("sigmoid", a) * (1 - np_act("sigmoid", a)),
    "tanh": lambda a: 1 - np.tanh(a) ** 2,
    "relu": lambda a: (a > 0).astype(np.float64),
}


def np_linear_growth(W, b, x0, d, depth, *, model, activation, h, start=0):
    """Float64 loop of explicit matrices: δ_{t+1} = (I + h D_t W_t) δ_t (resnet) or D_t W_t δ_t (mlp).

    x0 (batch, n), d (draws, batch, n); the perturbation enters at state `start`.
    Returns ||δ_t|| / ||δ_start|| for t = start … depth, shape (depth - start + 1, draws, batch).
    """
    W, b = np.asarray(W, np.float64), np.asarray(b, np.float64)
    xs = np_trajectory(W, b, x0, depth, model=model, activation=activation, h=h)
    d = np.asarray(d, np.float64)
    n = W.shape[-1]
    out = np.ones((depth - start + 1,) + d.shape[:-1])
    for k in range(d.shape[0]):
        for i in range(d.shape[1]):
            delta = d[k, i]
            for t in range(start, depth):
                Wt, bt = (W, b) if W.ndim == 2 else (W[t], b[t])
                D = np.diag(NP_GRAD[activation](Wt @ xs[t, i] + bt))
                J = np.eye(n) + h * D @ Wt if model == "resnet" else D @ Wt
                delta = J @ delta
                out[t - start + 1, k, i] = np.linalg.norm(delta) / np.linalg.norm(d[k, i])
    return out


def setup(key, n=4, depth=6, shared=True, batch=3, draws=2, dtype=jnp.float64, **map_options):
    # Trunk.init's draws (W ~ N(0, w_std²/n), b ~ N(0, b_std²)) and the inputs, from numpy:
    # jax.random would build a program per shape and dtype (`key` is the library's, below)
    rng = np.random.default_rng(0)
    layers = () if shared else (depth,)
    W = jnp.asarray(rng.standard_normal(layers + (n, n)) * (1.8 / np.sqrt(n)), dtype)
    b = jnp.asarray(rng.standard_normal(layers + (n,)) * 0.5, dtype)
    p = rf.Trunk(W, b, **map_options)
    x0 = jnp.asarray(rng.standard_normal((batch, n)), dtype)
    d = jnp.asarray(rng.standard_normal((draws, batch, n)), dtype)
    return p, x0, d


# Every model x activation once; shared and untied weights alternate (one compile per case).
@pytest.mark.parametrize(
    "model, activation, shared",
    [
        ("resnet", "sigmoid", True),
        ("resnet", "tanh", False),
        ("resnet", "relu", True),
        ("mlp", "sigmoid", False),
        ("mlp", "tanh", True),
        ("mlp", "relu", False),
    ],
)
def test_jvp_growth_matches_explicit_matrix_products(key, model, activation, shared):
    depth, h = 6, 0.7
    p, x0, d = setup(key, depth=depth, shared=shared, model=model, activation=activation, h=h)
    g = rf.analysis.linear_growth(p, x0, directions=d, depth=depth)
    ref = np_linear_growth(p.W, p.b, x0, d, depth, model=model, activation=activation, h=h)
    assert g.shape == (depth + 1, 2, 3)
    np.testing.assert_allclose(np.asarray(g), ref, rtol=1e-11, atol=1e-300)


def test_float32_growth_close_to_float64_reference(key):
    p, x0, d = setup(key, dtype=jnp.float32)
    g = rf.analysis.linear_growth(p, x0, directions=d, depth=6)
    assert g.dtype == jnp.float32
    ref = np_linear_growth(p.W, p.b, x0, d, 6, model="resnet", activation="sigmoid", h=1.0)
    np.testing.assert_allclose(np.asarray(g), ref, rtol=1e-5)


@pytest.mark.parametrize("model", ["resnet", "mlp"])
def test_nonlinear_growth_tends_to_linear_for_tiny_sigma(key, model):
    p, x0, d = setup(key, depth=8, model=model)
    res = rf.perturbation_growth(p, x0, directions=d, sigma=1e-6, depth=8)
    ref = np_linear_growth(p.W, p.b, x0, d, 8, model=model, activation="sigmoid", h=1.0)
    np.testing.assert_allclose(np.asarray(res.linear), ref, rtol=1e-11)
    # Truncation error O(sigma), cancellation error O(eps / sigma) on ~1e-5 MLP growths.
    np.testing.assert_allclose(np.asarray(res.nonlinear), ref, rtol=1e-5, atol=1e-9)
    # A finite sigma is genuinely nonlinear: the difference shrinks linearly with sigma.
    e1 = np.abs(np.asarray(rf.analysis.nonlinear_growth(p, x0, directions=d, sigma=1e-2, depth=8)) - ref).max()
    e2 = np.abs(np.asarray(rf.analysis.nonlinear_growth(p, x0, directions=d, sigma=1e-3, depth=8)) - ref).max()
    assert 5 < e1 / e2 < 20


def test_nonlinear_growth_matches_numpy_difference_of_trajectories(key):
    p, x0, d = setup(key, shared=False, model="mlp", activation="tanh", h=0.5)
    sigma = 0.3
    g = rf.analysis.nonlinear_growth(p, x0, directions=d, sigma=sigma, depth=6)
    clean = np_trajectory(p.W, p.b, x0, 6, model="mlp", activation="tanh")
    ref = np.stack(
        [
            np.linalg.norm(np_trajectory(p.W, p.b, x0 + sigma * dk, 6, model="mlp", activation="tanh") - clean, axis=-1)
            / (sigma * np.linalg.norm(dk, axis=-1))
            for dk in np.asarray(d)
        ],
        axis=1,
    )
    np.testing.assert_allclose(np.asarray(g), ref, rtol=1e-11)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_resnet_with_zero_weights_preserves_perturbations_exactly(key, activation):
    # W = 0: x_{t+1} = x_t + h act(b) shifts every input by the same amount.
    n, depth = 3, 5
    p = rf.Trunk(jnp.zeros((n, n)), jnp.array([0.3, -1.0, 2.0]), activation=activation)
    x0 = jax.random.normal(key, (4, n))
    res = rf.perturbation_growth(p, x0, key=jax.random.key(1), num_draws=3, sigma=0.5, depth=depth)
    np.testing.assert_allclose(np.asarray(res.linear), 1.0, rtol=1e-14)
    np.testing.assert_allclose(np.asarray(res.nonlinear), 1.0, rtol=1e-12)
    inj = rf.injection_response(p, x0, key=jax.random.key(1), num_draws=3, sigma=0.5, depth=depth)
    np.testing.assert_allclose(np.asarray(inj.nonlinear), 1.0, rtol=1e-12)


@pytest.mark.parametrize("c", [0.5, 1.5])
def test_closed_form_growth_of_scaled_identity(key, c):
    # tanh at x = 0, b = 0 stays at 0 with D_t = I: growth c^t (mlp) and (1 + h c)^t (resnet).
    n, depth, h = 3, 7, 0.5
    W, b = c * jnp.eye(n), jnp.zeros(n)
    x0 = jnp.zeros((2, n))
    t = np.arange(depth + 1)[:, None, None]
    g = rf.analysis.linear_growth(rf.Trunk(W, b, model="mlp", activation="tanh"), x0, key=key, num_draws=4, depth=depth)
    np.testing.assert_allclose(np.asarray(g), np.broadcast_to(c**t, g.shape), rtol=1e-13)
    g = rf.analysis.linear_growth(rf.Trunk(W, b, h, activation="tanh"), x0, key=key, num_draws=4, depth=depth)
    np.testing.assert_allclose(np.asarray(g), np.broadcast_to((1 + h * c) ** t, g.shape), rtol=1e-13)
    # relu on positive states is linear: nonlinear growth is exactly c^t / (1 + h c)^t too.
    x0 = jnp.full((2, n), 5.0)
    d = jnp.abs(jax.random.normal(key, (3, 2, n)))
    for model, rate in [("mlp", c), ("resnet", 1 + h * c)]:
        p = rf.Trunk(W, b, h, model=model, activation="relu")
        g = rf.analysis.nonlinear_growth(p, x0, directions=d, sigma=0.1, depth=depth)
        np.testing.assert_allclose(np.asarray(g), np.broadcast_to(rate**t, g.shape), rtol=1e-12)


def test_random_directions_reproducible_and_prefix_stable(key):
    x0 = jnp.zeros((5, 3))
    a = rf.analysis.random_directions(key, x0, 4)
    b = rf.analysis.random_directions(key, x0, 4)
    assert a.shape == (4, 5, 3)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    p = rf.Trunk.init(key, 3, w_std=2.0)
    g1 = rf.analysis.linear_growth(p, x0, key=key, num_draws=4, depth=3)
    g2 = rf.analysis.linear_growth(p, x0, directions=a, depth=3)
    np.testing.assert_array_equal(np.asarray(g1), np.asarray(g2))
    # A raw uint32 key works; anything else is refused by name, not deep inside jax.random.
    raw = rf.analysis.random_directions(jax.random.PRNGKey(0), x0, 2)
    np.testing.assert_array_equal(
        np.asarray(raw), np.asarray(rf.analysis.random_directions(jax.random.PRNGKey(0), x0, 2))
    )
    for bad in (0, np.zeros(2, np.int32), jax.random.split(key, 2), jnp.zeros(3, jnp.uint32)):
        with pytest.raises(TypeError, match="key must be a single jax.random key"):
            rf.analysis.random_directions(bad, x0, 2)
    with pytest.raises(TypeError, match="key"):
        rf.analysis.linear_growth(p, x0, key=0, depth=3)


@pytest.mark.parametrize("model", ["resnet", "mlp"])
@pytest.mark.parametrize("shared", [True, False])
def test_injection_response_matches_numpy_reference(key, model, shared):
    depth, sigma, h = 5, 0.2, 0.8
    p, x0, d = setup(key, depth=depth + 2, shared=shared, model=model, h=h)  # untied: more layers than used
    inj = rf.injection_response(p, x0, directions=d, sigma=sigma, depth=depth)
    assert inj.linear.shape == inj.nonlinear.shape == (depth + 1, 2, 3)
    np.testing.assert_array_equal(np.asarray(inj.layers), np.arange(depth + 1))
    W, b = np.asarray(p.W), np.asarray(p.b)
    xs = np_trajectory(W, b, x0, depth, model=model, h=h)
    dn = np.linalg.norm(np.asarray(d), axis=-1)
    for s in range(depth + 1):
        Ws, bs = (W, b) if shared else (W[s:], b[s:])
        pert = np.stack([np_trajectory(Ws, bs, xs[s] + sigma * dk, depth - s, model=model, h=h)[-1] for dk in d])
        change = np.linalg.norm(pert - xs[-1], axis=-1)
        np.testing.assert_allclose(np.asarray(inj.output_change[s]), change, rtol=1e-11, atol=1e-14)
        np.testing.assert_allclose(np.asarray(inj.nonlinear[s]), change / (sigma * dn), rtol=1e-11, atol=1e-14)
        lin = np_linear_growth(Ws, bs, xs[s], d, depth - s, model=model, activation="sigmoid", h=h)[-1]
        np.testing.assert_allclose(np.asarray(inj.linear[s]), lin, rtol=1e-11)
    # s = T perturbs the output itself.
    np.testing.assert_allclose(np.asarray(inj.nonlinear[-1]), 1.0, rtol=1e-12)


def test_bad_input_rejected(key):
    p, x0, d = setup(key)
    with pytest.raises(ValueError, match="directions must have shape"):
        rf.analysis.linear_growth(p, x0, directions=d[:, :2], depth=3)
    with pytest.raises(ValueError, match="non-zero"):
        rf.analysis.linear_growth(p, x0, directions=jnp.zeros_like(d), depth=3)
    with pytest.raises(ValueError, match="key"):
        rf.analysis.linear_growth(p, x0, depth=3)
    with pytest.raises(ValueError, match="sigma"):
        rf.analysis.nonlinear_growth(p, x0, directions=d, sigma=0.0, depth=3)
    with pytest.raises(ValueError, match="finite"):
        rf.injection_response(p, x0, directions=d.at[0, 0, 0].set(jnp.nan), depth=3)
    with pytest.raises(ValueError, match="x0 must have trailing dimension"):
        rf.perturbation_growth(p, x0[:, :2], key=key, depth=3)
    with pytest.raises(ValueError, match="depth"):
        rf.perturbation_growth(p, x0, key=key)
    with pytest.raises(ValueError, match="finite"):
        rf.analysis.linear_growth(p, x0.at[0, 0].set(jnp.inf), directions=d, depth=3)
    with pytest.raises(TypeError, match="dtype"):
        rf.analysis.linear_growth(p, x0.astype(jnp.float32), key=key, depth=3)
    with pytest.raises(TypeError, match="Trunk"):
        rf.analysis.linear_growth((p.W, p.b), x0, key=key, depth=3)
    with pytest.raises(TypeError, match="model"):
        rf.analysis.linear_growth(p, x0, directions=d, depth=3, model="mlp")


def test_one_value_read_per_call(key, monkeypatch):
    import resflow._checks as checks

    p, x0, d = setup(key)
    reads = []
    real = checks.all_true
    monkeypatch.setattr(checks, "all_true", lambda c: reads.append(sorted(c)) or real(c))
    import resflow.analysis._perturbation as pert

    monkeypatch.setattr(pert, "all_true", checks.all_true)
    rf.perturbation_growth(p, x0, directions=d, depth=3)
    assert reads == [["directions", "x0"]]
