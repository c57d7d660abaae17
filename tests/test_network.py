"""Network: the trained classifier as a value; fit's result analysed as the map it trained."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import np_trajectory

import resflow as rf
from resflow.training import load_dataset
from resflow.trunk._network import Affine, Network


def random_network(seed=0, *, dim=4, width=3, classes=2, depth=5, shared=True, lift=True):
    """Random weights drawn by numpy (each new shape of a jax.random draw builds a program)."""
    rng = np.random.default_rng(seed)
    lead = () if shared else (depth,)
    W = rng.normal(0, 2.0 / np.sqrt(width), lead + (width, width))
    b = rng.normal(0, 0.5, lead + (width,))
    trunk = rf.Trunk(jnp.asarray(W), jnp.asarray(b), 0.5)
    lift_ = Affine(jnp.asarray(rng.normal(size=(dim, width))), jnp.zeros(width)) if lift else None
    readout = Affine(jnp.asarray(rng.normal(size=(width, classes))), jnp.arange(classes, dtype=float))
    return Network(lift_, trunk, readout, depth)


@pytest.mark.parametrize("shared", [True, False])
def test_network_is_lift_trunk_readout(shared):
    net = random_network(shared=shared)
    x = np.random.default_rng(1).normal(size=(6, 4))
    x0 = x @ np.asarray(net.lift.W) + np.asarray(net.lift.b)
    traj = np_trajectory(net.trunk.W, net.trunk.b, x0, 5, h=0.5)
    np.testing.assert_allclose(net.embed(x), x0, rtol=1e-12)
    np.testing.assert_allclose(net.trajectory(x), traj, rtol=1e-10, atol=1e-12)
    logits = traj[-1] @ np.asarray(net.readout.W) + np.asarray(net.readout.b)
    np.testing.assert_allclose(net(x), logits, rtol=1e-10, atol=1e-12)
    # A pytree: jit, vmap and grad go through it.
    np.testing.assert_allclose(jax.jit(lambda n, x: n(x))(net, x), logits, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(jax.vmap(net)(x[:, None])[:, 0], logits, rtol=1e-10, atol=1e-12)
    g = jax.grad(lambda n: n(x).sum())(net)
    assert g.trunk.W.shape == net.trunk.W.shape and np.all(np.isfinite(g.trunk.W))
    assert (net.dim, net.n_classes) == (4, 2)


def test_network_with_depth_and_bad_shapes():
    untied = random_network(shared=False)
    short = untied.with_depth(2)
    assert short.depth == 2 and short.trunk.W.shape == (2, 3, 3)
    with pytest.raises(ValueError, match="depth"):
        untied.with_depth(6)
    shared = random_network()
    assert shared.with_depth(9).depth == 9
    with pytest.raises(ValueError, match="lift"):
        dataclasses.replace(shared, lift=Affine(jnp.ones((4, 5)), jnp.zeros(5)))
    with pytest.raises(ValueError, match="readout"):
        dataclasses.replace(shared, readout=Affine(jnp.ones((5, 2)), jnp.zeros(2)))
    with pytest.raises(ValueError, match="Affine"):
        Affine(jnp.ones((3, 2)), jnp.zeros(3))
    with pytest.raises(ValueError, match="depth"):
        Network(None, untied.trunk, untied.readout, 6)


# --- issue 10, "done when": a tanh, h = 0.5 network trained by fit, checked on result.trunk --------


def np_tanh_reference(W, b, x0, T, h):
    """Float64 numpy: trajectory, J_t = I + h diag(1 - tanh(a_t)^2) W, and the finite-time
    Lyapunov spectrum by QR of the Jacobian product, from the identity frame."""
    traj = np_trajectory(W, b, x0, T, activation="tanh", h=h)
    a = traj[:-1] @ W.T + b  # (T, batch, n)
    n = W.shape[0]
    J = np.eye(n) + h * (1 - np.tanh(a) ** 2)[..., :, None] * W  # (T, batch, n, n)
    spectra = []
    for i in range(x0.shape[0]):
        Q, logs = np.eye(n), np.zeros(n)
        for t in range(T):
            Q, R = np.linalg.qr(J[t, i] @ Q)
            logs += np.log(np.abs(np.diag(R)))
        spectra.append(np.sort(logs / T)[::-1])
    return traj, J, np.array(spectra)


@pytest.fixture(scope="module")
def tanh_result():
    ds = load_dataset("circles", seed=0, n_train=120, n_test=40)
    opts = dict(width=3, depth=6, activation="tanh", h=0.5, dtype="float64", epochs=3, batch_size=40, lr=2e-2)
    return rf.fit(ds, key=jax.random.key(0), **opts), ds


def test_trained_tanh_trunk_trajectory(tanh_result):
    res, ds = tanh_result
    trunk = res.trunk
    assert (trunk.activation, float(trunk.h), trunk.model, res.depth) == ("tanh", 0.5, "resnet", 6)
    x0 = res.network.embed(ds.x_test[:8])
    W, b = np.asarray(trunk.W, np.float64), np.asarray(trunk.b, np.float64)
    traj_ref, _, _ = np_tanh_reference(W, b, np.asarray(x0), res.depth, 0.5)
    traj = rf.trajectory(trunk, x0, depth=res.depth)
    np.testing.assert_allclose(traj, traj_ref, rtol=1e-12, atol=1e-12)
    # The network's logits are the readout of that trajectory.
    logits = traj_ref[-1] @ np.asarray(res.network.readout.W) + np.asarray(res.network.readout.b)
    np.testing.assert_allclose(rf.predict(res, ds.x_test[:8]), logits, rtol=1e-12, atol=1e-12)


def test_trained_tanh_trunk_jacobians_and_lyapunov(tanh_result):
    """Needs the trunk-first `state_jacobians` / `network_lyapunov_spectrum` (another branch)."""
    res, ds = tanh_result
    trunk, T = res.trunk, res.depth
    x0 = res.network.embed(ds.x_test[:8])
    W, b = np.asarray(trunk.W, np.float64), np.asarray(trunk.b, np.float64)
    traj_ref, J_ref, lyap_ref = np_tanh_reference(W, b, np.asarray(x0), T, 0.5)
    J = rf.state_jacobians(trunk, rf.trajectory(trunk, x0, depth=T))
    np.testing.assert_allclose(J, J_ref, rtol=1e-12, atol=1e-12)
    spec = rf.network_lyapunov_spectrum(trunk, x0, depth=T, num_exponents=3, initial_q=jnp.eye(3))
    np.testing.assert_allclose(np.sort(np.asarray(spec.exponents))[:, ::-1], lyap_ref, rtol=1e-9, atol=1e-12)
