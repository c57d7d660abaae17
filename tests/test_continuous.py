"""Continuous depth (diffrax) and the ODE Lyapunov spectrum, against independent references."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import resflow as rf
from resflow.continuous import _lyapunov as L
from tests.conftest import np_trajectory


def pid(rtol, atol):
    return diffrax.PIDController(rtol=rtol, atol=atol)


@pytest.fixture
def trunk():
    return rf.Trunk.init(jax.random.key(1), 4, w_std=1.5, b_std=0.5)


@pytest.fixture
def x0():
    return jax.random.normal(jax.random.key(2), (3, 4))


def test_variational_solve_of_linear_field_is_expm():
    # y' = A y: the state goes to expm(tA) y0 and the tangent frame to expm(tA) Q (scipy reference)
    A = np.array([[0.1, 2.0, 0.0], [-1.5, -0.2, 0.4], [0.0, 0.3, -1.0]])
    y0, Q = np.array([1.0, -1.0, 0.5]), np.linalg.qr(np.arange(9.0).reshape(3, 3) + np.eye(3))[0][:, :2]
    options = dict(solver=diffrax.Tsit5(), stepsize_controller=pid(1e-12, 1e-14))
    y, Phi_Q = L.variational_solve(lambda t, y, a: jnp.asarray(A) @ y, 0.5, 2.5, y0, Q, None, **options)
    E = scipy.linalg.expm(2.0 * A)
    np.testing.assert_allclose(np.asarray(y), E @ y0, rtol=1e-9)
    np.testing.assert_allclose(np.asarray(Phi_Q), E @ Q, rtol=1e-9, atol=1e-12)
    y1 = L.flow_solve(lambda t, y, a: jnp.asarray(A) @ y, 0.5, 2.5, y0, None, **options)
    np.testing.assert_allclose(np.asarray(y1), E @ y0, rtol=1e-9)


@pytest.mark.parametrize("solver", [diffrax.Tsit5(), diffrax.Dopri5(), diffrax.Bosh3()], ids=type)
def test_depth_ode_small_amplitude_matches_expm(solver):
    # tanh(a) = a + O(a³): from x0 ~ 1e-4 with b = 0 the ODE is dx/ds = W x up to 1e-8 relative,
    # whose solution is expm(s W) x0 (scipy, independent of diffrax); any adaptive solver
    W = np.array([[-0.3, 1.0, 0.2], [-1.0, -0.4, 0.0], [0.1, 0.3, -0.8]])
    trunk = rf.Trunk(W, np.zeros(3), activation="tanh")
    x0 = 1e-4 * np.array([1.0, -2.0, 0.5])
    ts = np.array([0.0, 0.5, 1.5, 3.0])
    sol = rf.solve_depth(
        trunk, jnp.asarray(x0), depth_time=3.0, saveat=ts, solver=solver, stepsize_controller=pid(1e-10, 1e-16)
    )
    ref = np.stack([scipy.linalg.expm(s * W) @ x0 for s in ts])
    np.testing.assert_allclose(np.asarray(sol.ys), ref, rtol=1e-6, atol=1e-15)
    # the controller's tolerances are the ones used: a loose one takes fewer steps and misses by more
    loose = rf.solve_depth(
        trunk, jnp.asarray(x0), depth_time=3.0, saveat=ts, solver=solver, stepsize_controller=pid(1e-3, 1e-9)
    )
    assert int(loose.num_steps) < int(sol.num_steps)
    assert np.abs(np.asarray(loose.ys) - ref).max() > np.abs(np.asarray(sol.ys) - ref).max()


def test_fixed_step_heun_is_numpy_heun(trunk, x0):
    # any solver under a constant step: diffrax's Heun at dt0 = 0.25 against Heun's method
    # (explicit trapezoid) written in float64 numpy
    W, b = np.asarray(trunk.W), np.asarray(trunk.b)

    def f(x):
        return 1 / (1 + np.exp(-(x @ W.T + b)))

    dt, T = 0.25, 8
    ref = [np.asarray(x0)]
    for _ in range(T):
        x = ref[-1]
        k1 = f(x)
        ref.append(x + dt / 2 * (k1 + f(x + dt * k1)))
    sol = rf.solve_depth(
        trunk,
        x0,
        depth_time=T * dt,
        saveat=dt * np.arange(T + 1),
        solver=diffrax.Heun(),
        stepsize_controller=diffrax.ConstantStepSize(),
        dt0=dt,
    )
    np.testing.assert_allclose(np.asarray(sol.ys), np.stack(ref, axis=1), atol=1e-12)
    np.testing.assert_array_equal(np.asarray(sol.num_steps), T)


def test_euler_at_dt_h_is_the_network(trunk, x0):
    T, h = 6, 0.5
    trunk = rf.Trunk(trunk.W, trunk.b, h)
    sol = rf.solve_depth(trunk, x0, depth_time=T * h, saveat=h * np.arange(T + 1), solver=diffrax.Euler())
    ref = np.moveaxis(np_trajectory(trunk.W, trunk.b, x0, T, h=h), 0, -2)
    np.testing.assert_allclose(np.asarray(sol.ys), ref, atol=1e-12)
    assert sol.ys.shape == (3, T + 1, 4)


def test_residual_ode_is_sigmoid_of_state_ode(trunk, x0):
    # r(s) = σ(W x(s) + b): two independent solves of two different ODEs must agree
    ts = np.linspace(0.0, 4.0, 5)
    xs = rf.solve_depth(trunk, x0, depth_time=4.0, saveat=ts, stepsize_controller=pid(1e-11, 1e-13)).ys
    r0 = jax.nn.sigmoid(x0 @ trunk.W.T + trunk.b)
    rs = rf.solve_residuals(trunk, r0, depth_time=4.0, saveat=ts, stepsize_controller=pid(1e-11, 1e-13)).ys
    np.testing.assert_allclose(np.asarray(rs), np.asarray(jax.nn.sigmoid(xs @ trunk.W.T + trunk.b)), atol=1e-9)


def test_batched_equals_one_by_one(trunk, x0):
    batch = rf.solve_depth(trunk, x0.reshape(3, 1, 4), depth_time=2.0).ys
    assert batch.shape == (3, 1, 1, 4)
    for i in range(3):
        one = rf.solve_depth(trunk, x0[i], depth_time=2.0).ys
        np.testing.assert_allclose(np.asarray(batch[i, 0]), np.asarray(one), atol=1e-12)


def test_jit_matches_eager(trunk, x0):
    # inside a user's jit the value checks are skipped (tracers), the result is the same
    jitted = jax.jit(lambda x: rf.solve_depth(trunk, x, depth_time=2.0).ys)(x0)
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(rf.solve_depth(trunk, x0, depth_time=2.0).ys), atol=1e-12)


def test_gradient_matches_finite_differences(trunk, x0):
    def loss(W):
        t = rf.Trunk(W, trunk.b, trunk.h)
        return jnp.sum(rf.solve_depth(t, x0[:1], depth_time=2.0, stepsize_controller=pid(1e-11, 1e-13)).ys ** 2)

    g = np.asarray(jax.grad(loss)(trunk.W))
    eps = 1e-6
    for i, j in [(0, 0), (1, 3), (3, 2)]:
        E = np.zeros((4, 4))
        E[i, j] = eps
        fd = (loss(trunk.W + E) - loss(trunk.W - E)) / (2 * eps)
        np.testing.assert_allclose(g[i, j], fd, rtol=1e-5)


def test_euler_convergence_is_first_order(trunk, x0):
    conv = rf.euler_convergence(trunk, x0, depth_time=4.0, steps=(16, 32, 64, 128))
    assert abs(conv.slope - 1) <= 0.15
    assert np.all(np.diff(conv.errors) < 0) and np.allclose(conv.h, 4.0 / conv.steps)


def test_plot_convergence(trunk, x0, tmp_path):
    from resflow.plots.continuous import plot_convergence

    conv = rf.euler_convergence(trunk, x0, depth_time=2.0, steps=(8, 16))
    fig = plot_convergence(conv, save=tmp_path / "c.png")
    ax = fig.axes[0]
    assert ax.get_xlabel() and ax.get_ylabel() and ax.get_legend() is None
    assert len(ax.lines) == 2 and (tmp_path / "c.png").is_file()


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda t, x: rf.solve_depth(t, x, depth_time=1.0, solver="euler"), TypeError, r"solver=diffrax\.Euler\(\)"),
        (lambda t, x: rf.solve_depth(t, x, depth_time=1.0, solver=object()), TypeError, "solver must be a diffrax"),
        (lambda t, x: rf.solve_depth(t, x, depth_time=1.0, solver=diffrax.SemiImplicitEuler()), ValueError, "solver"),
        (
            lambda t, x: rf.solve_depth(t, x, depth_time=1.0, stepsize_controller=(1e-6, 1e-8)),
            TypeError,
            "stepsize_controller must be a diffrax",
        ),
        # Euler gives no error estimate for a PID controller to adapt on
        (
            lambda t, x: rf.solve_depth(t, x, depth_time=1.0, solver=diffrax.Euler(), stepsize_controller=pid(1e-6, 1)),
            ValueError,
            "stepsize_controller PIDController",
        ),
        (lambda t, x: rf.solve_depth(t, x, depth_time=1.0, stepsize_controller=pid(0.0, 1e-8)), ValueError, "rtol"),
        (lambda t, x: rf.solve_depth(t, x, depth_time=1.0, stepsize_controller=pid(1e-6, -1.0)), ValueError, "atol"),
        (
            lambda t, x: rf.euler_convergence(t, x, depth_time=1.0, stepsize_controller="tight"),
            TypeError,
            "stepsize_controller",
        ),
        (lambda t, x: rf.solve_depth(t, x, depth_time=0.0), ValueError, "depth_time"),
        (lambda t, x: rf.solve_depth(t, x, depth_time=1.0, saveat=[0.5, 0.2]), ValueError, "saveat"),
        (lambda t, x: rf.solve_depth(t, x, depth_time=1.0, saveat=[2.0]), ValueError, "saveat"),
        (lambda t, x: rf.solve_depth(t, x[:, :3], depth_time=1.0), ValueError, "x0"),
        (lambda t, x: rf.solve_depth(t, x.at[0, 0].set(jnp.nan), depth_time=1.0), ValueError, "finite"),
        (lambda t, x: rf.solve_depth(t, x.astype(jnp.float32), depth_time=1.0), TypeError, "dtype"),
        (lambda t, x: rf.solve_depth(t.W, x, depth_time=1.0), TypeError, "Trunk"),
        (lambda t, x: rf.solve_residuals(t, x, depth_time=1.0), ValueError, "r0"),
        (lambda t, x: rf.euler_convergence(t, x, depth_time=1.0, steps=(4, 4)), ValueError, "two distinct"),
        # 1.0 / 0.3 Euler steps: diffrax would end on a partial step, neither 3 nor 4 layers
        (
            lambda t, x: rf.solve_depth(t, x, depth_time=1.0, solver=diffrax.Euler(), dt0=0.3),
            ValueError,
            r"depth_time = 1.0 .* dt0 = 0.3",
        ),
        (lambda t, x: rf.solve_depth(t, x, depth_time=2.5, solver=diffrax.Euler()), ValueError, "trunk's h"),
    ],
)
def test_bad_inputs(trunk, x0, call, exc, match):
    with pytest.raises(exc, match=match):
        call(trunk, x0)


@pytest.mark.parametrize(
    "trunk, match",
    [
        (rf.Trunk.init(jax.random.key(0), 3, shared=False, depth=4), "shared"),
        (rf.Trunk.init(jax.random.key(0), 3, model="mlp"), "resnet"),
        (rf.Trunk.init(jax.random.key(0), 3, activation="tanh"), "sigmoid"),
    ],
)
def test_refuses_trunks_without_an_ode(trunk, match):
    with pytest.raises(ValueError, match=match):
        rf.solve_residuals(trunk, jnp.full(3, 0.5), depth_time=1.0)


# --- ODE Lyapunov spectrum -------------------------------------------------------------------


def test_linear_flow_exponents_are_real_parts():
    # a rotation-contraction block (eigenvalues −0.5 ± 2i) and a growing direction (0.3),
    # mixed by a non-orthogonal change of basis
    P = np.array([[1.0, 0.4, 0.0], [0.0, 1.0, 0.7], [0.3, 0.0, 1.0]])
    A = P @ np.array([[-0.5, 2.0, 0.0], [-2.0, -0.5, 0.0], [0.0, 0.0, 0.3]]) @ np.linalg.inv(P)
    A = jnp.asarray(A)
    res = rf.ode_lyapunov_spectrum(lambda t, y, a: A @ y, jnp.ones(3), 60.0, dt=0.5, return_running=True)
    np.testing.assert_allclose(np.asarray(res.exponents), [0.3, -0.5, -0.5], atol=5e-3)
    assert res.running.shape == (120, 3)
    np.testing.assert_allclose(res.running[-1], res.exponents)


def lorenz(t, y, args):
    sigma, rho, beta = args
    return jnp.stack([sigma * (y[1] - y[0]), y[0] * (rho - y[2]) - y[1], y[0] * y[1] - beta * y[2]])


def test_fixed_step_euler_spectrum_is_the_euler_maps():
    # Euler at fixed step d on y' = A y is the map I + d·A, whose exponents per unit time are
    # log|1 + d·λ_i| / d: 0.2956 and −0.5129 at d = 0.1, not the flow's 0.3 and −0.5. The
    # solver options are honoured.
    P = np.array([[1.0, 0.4], [0.2, 1.0]])
    A = jnp.asarray(P @ np.diag([0.3, -0.5]) @ np.linalg.inv(P))
    d = 0.1
    res = rf.ode_lyapunov_spectrum(
        lambda t, y, a: A @ y,
        jnp.ones(2),
        300.0,
        dt=0.5,
        solver=diffrax.Euler(),
        stepsize_controller=diffrax.ConstantStepSize(),
        dt0=d,
    )
    exact = np.log(np.abs(1 + d * np.array([0.3, -0.5]))) / d
    np.testing.assert_allclose(np.asarray(res.exponents), exact, atol=2e-3)
    assert np.abs(np.asarray(res.exponents) - [0.3, -0.5]).max() > 0.01


def test_lorenz_sum_rule_and_sprott_values():
    # Sprott (Chaos and Time-Series Analysis, 2003, table of Lyapunov exponents): 0.9056, 0, −14.5723.
    # The divergence is constant, −(σ + 1 + β), so the sum holds to integration accuracy.
    args = (10.0, 28.0, 8.0 / 3.0)
    res = rf.ode_lyapunov_spectrum(lorenz, jnp.array([1.0, 1.0, 20.0]), 210.0, burn_in=10.0, dt=0.5, args=args)
    lam = np.asarray(res.exponents)
    assert abs(lam.sum() + (10 + 1 + 8 / 3)) < 1e-2
    assert abs(lam[0] - 0.906) < 0.03
    assert abs(lam[1]) < 0.01
    assert abs(lam[2] + 14.572) < 0.05
    assert res.final_state.shape == (3,)


def test_lorenz_with_too_long_dt_is_refused():
    # dt = 5: the frame's columns draw together by exp(−5·(0.906 + 14.572)) ≈ 1e-34 per interval,
    # below float64 rounding; the third exponent came out −6.7 instead of −14.57
    with pytest.raises(ValueError, match=r"dt = 5.0 is too long"):
        rf.ode_lyapunov_spectrum(lorenz, jnp.array([1.0, 1.0, 20.0]), 20.0, dt=5.0, args=(10.0, 28.0, 8.0 / 3.0))


@pytest.mark.parametrize(
    "kw, exc, match",
    [
        (dict(t1=1.0, burn_in=2.0), ValueError, "exceed burn_in"),
        (dict(t1=1.0, dt=0.0), ValueError, "dt"),
        (dict(t1=1.0, num_exponents=4), ValueError, "num_exponents"),
        (dict(t1=1.0, y0=jnp.ones((2, 3))), ValueError, "y0"),
        (dict(t1=1.0, y0=jnp.array([1.0, jnp.inf, 0.0])), ValueError, "finite"),
        (dict(t1=1.0, vector_field=lambda t, y, a: y[:2]), ValueError, "shape"),
        (dict(t1=1.0, vector_field=3), TypeError, "callable"),
        (dict(t1=1.0, dt=1.5), ValueError, "dt = 1.5 must not exceed"),
        (dict(t1=3.0, burn_in=2.0, dt=1.5), ValueError, r"dt = 1.5 must not exceed .* t1 − burn_in = 1"),
        (dict(t1=1.0, dt=float("nan")), ValueError, "dt must be a finite"),
        (dict(t1=1.0, solver="tsit5"), TypeError, "solver"),
        (dict(t1=1.0, stepsize_controller=1e-8), TypeError, "stepsize_controller"),
        (dict(t1=1.0, solver=diffrax.Euler()), ValueError, "dt0 is required"),
        (dict(t1=1.0, dt0=0.5), ValueError, "dt0 = 0.5 must not exceed"),
        (dict(t1=1.0, dt0=-0.01), ValueError, "dt0"),
    ],
)
def test_ode_lyapunov_bad_inputs(kw, exc, match):
    kw = {"vector_field": lambda t, y, a: -y, "y0": jnp.ones(3), **kw}
    with pytest.raises(exc, match=match):
        rf.ode_lyapunov_spectrum(kw.pop("vector_field"), kw.pop("y0"), kw.pop("t1"), **kw)


def test_solver_failure_is_one_clear_error(monkeypatch):
    # y' = y² from y(0) = 1 blows up at t = 1: the solver spends its step budget there (a small
    # budget, so that it is spent at once). The error names the function, the integration and
    # the solver's reason, not the jit stack.
    monkeypatch.setattr(L, "SOLVER_MAX_STEPS", 64)
    with pytest.raises(RuntimeError) as info:
        rf.ode_lyapunov_spectrum(lambda t, y, a: y**2, jnp.array([1.0, 0.5]), 2.0, dt=0.5)
    message = str(info.value)
    assert message.startswith("ode_lyapunov_spectrum: the ODE solver failed while integrating vector_field")
    assert "maximum number of solver steps was reached" in message and "at most 64 solver steps" in message
    assert "EQX_ON_ERROR" not in message and "stack" not in message
