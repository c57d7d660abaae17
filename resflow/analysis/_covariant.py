"""Finite-time covariant Lyapunov vectors of a network's T layers: Ginelli's two passes over
the layer Jacobians, fixed by the singular vectors of ∂x_T/∂x_0 (a network has no orbit to
spare before or after its layers)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._checks import all_true
from ..dynamics._covariant import CovariantVectors, clv_result, frame_inputs, ginelli
from ..trunk._activations import get_activation
from ..trunk._trunk import Trunk, apply_layer, check_depth, check_state, check_trunk
from ._jacobians import state_product

__all__ = ["network_covariant_vectors", "layer_tangent"]


def layer_tangent(trunk: Trunk, W, b, x, Q):
    """(x_{t+1}, J_t Q) for one layer, from the analytic state Jacobian. Unchecked.

    resnet: J = I + h·diag(act'(a)) W; mlp: J = diag(act'(a)) W, with a = W x + b. One matrix
    product per layer, no n × n Jacobian.
    """
    d = get_activation(trunk.activation).grad(W @ x + b)
    return apply_layer(trunk, W, b, x), state_product(W, d, Q, trunk.h, trunk.model, False)


def _network_layers(trunk: Trunk, depth: int):
    """(scan inputs, layer -> (W_t, b_t)) for the first `depth` layers. Unchecked."""
    if trunk.shared:
        return jnp.arange(depth), lambda _: (trunk.W, trunk.b)
    return (trunk.W[:depth], trunk.b[:depth]), lambda layer: layer


@eqx.filter_jit
def _network_clv(trunk, x0, depth: int, k: int, m: int):
    """Finite-time CLVs of the `depth`-layer product, m ≥ k columns carried, k returned."""
    xs, weights = _network_layers(trunk, depth)
    act = get_activation(trunk.activation)

    # the whole Jacobian M = J_{T-1} ... J_0 up to a scale (rescaled each layer against overflow)
    def product(carry, layer):
        x, M = carry
        W, b = weights(layer)
        d = act.grad(W @ x + b)
        M = state_product(W, d, M, trunk.h, trunk.model, False)
        return (apply_layer(trunk, W, b, x), M / jnp.linalg.norm(M)), d

    (_, M), ds = jax.lax.scan(product, (x0, jnp.eye(x0.shape[0], dtype=x0.dtype)), xs)
    U = jnp.linalg.svd(M)[0][:, :m]

    # The explicit product keeps a singular vector only to about eps·σ_1/(σ_j − σ_{j+1}); one
    # adjoint QR pass, Mᵀ U = V Σ, brings the right singular vectors back to working accuracy
    # where the spread is large (each span is pulled toward V by σ_{j+1}/σ_j).
    def adjoint(P, layer_d):
        layer, d = layer_d
        return jnp.linalg.qr(state_product(weights(layer)[0], d, P, trunk.h, trunk.model, True))[0], None

    V, _ = jax.lax.scan(adjoint, U, (xs, ds), reverse=True)

    def propagate(x, Q, layer):
        return layer_tangent(trunk, *weights(layer), x, Q)

    # Forward from Q_0 = V gives Q_T ≈ U and R(0, T) ≈ Σ diagonal, so the backward pass starts
    # from C_T = I: v_t ∝ M(t, T)⁻¹ u_j = M(0, t) v_j / σ_j.
    eye = jnp.eye(m, dtype=x0.dtype)
    vecs, orbit, logs, _ = ginelli(propagate, x0, V, eye, jax.tree.map(lambda a: a[:0], xs), xs, depth)
    exponents = logs.mean(0)
    return clv_result(vecs[..., :k], orbit, logs[:, :k], jnp.arange(depth), 1.0), exponents


def network_covariant_vectors(
    trunk: Trunk,
    x0: Float[Array, " n"],
    *,
    depth: int | None = None,
    num_vectors: int | None = None,
) -> CovariantVectors:
    """Covariant Lyapunov vectors of the T-layer network along one input's path x_0 … x_{T−1}.

    A network is a finite product of layer Jacobians J_t = ∂x_{t+1}/∂x_t, so its CLVs are the
    finite-time ones of that product (Kuptsov & Parlitz, J. Nonlinear Sci. 22, 727, 2012),
    a property of the network and the input alone. With M(s, t) = J_{t−1} ⋯ J_s and the
    singular value decomposition of the whole network's Jacobian
    M(0, T) = ∂x_T/∂x_0 = U diag(σ_0 > σ_1 > …) Vᵀ, CLV j at layer t is

        v_t^j ∝ M(0, t) V_j ∝ M(t, T)⁻¹ U_j,

    the one direction in both the image of the j + 1 most expanded input directions
    M(0, t)·span(V_0 … V_j) and the preimage of the n − j least expanded output directions
    {w : M(t, T) w ∈ span(U_j … U_{n−1})}. So v_0^j = V_j, J_t v_t^j ∝ v_{t+1}^j exactly, the
    exponents λ_j = log(σ_j)/T are the network's finite-time Lyapunov exponents in descending
    order, and away from both ends (a few times 1/(λ_j − λ_{j+1}) layers) the vectors approach
    the asymptotic CLVs of the orbit. Computed by a QR pass forward from V and Ginelli's
    backward pass from U (stable over long products), with V from the SVD of the product
    polished by one adjoint QR pass; the tangent steps use J_t Q = Q + h·act'(a_t) ⊙ (W_t Q)
    (resnet) without forming J_t.

    **Arguments:**

    - `trunk`: a `Trunk` (shared or untied, resnet or mlp).
    - `x0`: ``(n,)`` one input, of the trunk's dtype (vmap the call for a batch).
    - `depth`: layers T (required for shared weights; default all untied layers).
    - `num_vectors`: k ≤ n, the leading CLVs to compute (default n).

    **Returns:** a `CovariantVectors` at layers t = 0 … T − 1 (``exponents`` per layer,
    descending).

    **Raises:** `TypeError`/`ValueError` for a non-trunk, a bad depth, an x0 that is not a
    finite ``(n,)`` vector of the trunk's dtype, k outside [1, n]; `ValueError` when the
    vectors are not defined: two of σ_0 … σ_k (σ_k only for k < n) agree to within
    log(σ_j/σ_{j+1}) < √eps of the dtype, or one is 0 (a singular Jacobian). This check reads
    the exponents once and is skipped under `jax.jit`/`jax.vmap`, where the returned
    exponents show it (T·(λ_j − λ_{j+1}) ≥ √eps).
    """
    trunk = check_trunk(trunk)
    depth = check_depth(trunk, depth)
    x0 = check_state(trunk, x0)
    if x0.ndim != 1:
        raise ValueError(f"x0 must be one input (n,), got shape {x0.shape}; vmap the call for a batch")
    _, n, k = frame_inputs(x0, num_vectors, "x0")
    res, exponents = _network_clv(trunk, x0, depth, k, min(k + 1, n))
    tol = float(jnp.sqrt(jnp.finfo(x0.dtype).eps))

    def defined(xp, e):
        return xp.isfinite(e).all() & (depth * (e[:-1] - e[1:]) >= tol).all()

    if not all_true({"exponents": (exponents, defined)}):
        e = depth * np.asarray(exponents, np.float64)
        gaps = np.nan_to_num(e[:-1] - e[1:], nan=0.0)
        j = int(np.argmin(gaps)) if gaps.size else 0
        raise ValueError(
            f"the covariant vectors of this {depth}-layer network are not defined at num_vectors={k}: "
            f"the singular values of ∂x_T/∂x_0 number {j} and {j + 1} have log σ = {e[j]:.3g} and "
            f"{e[min(j + 1, e.size - 1)]:.3g} (a gap below √eps = {tol:.1e}, or a singular Jacobian); "
            "ask for fewer vectors, use float64 (trunk.astype(jnp.float64)), or change the depth or the input"
        )
    return res
