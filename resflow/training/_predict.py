"""The validating entry points on a trained network: logits, loss and accuracy.

    predict(network, x) -> logits            accuracy(network, x, y) -> float
    evaluate(network, x, y) -> {"loss", "accuracy"}

`network` is a `resflow.Network`, or a `resflow.Run` (from `resflow.fit`, `resflow.sweep` or
`resflow.load_run`), whose ``network`` is used. `x` are the network's inputs as trained on
(standardised data; `resflow.Run.predict` takes raw inputs and applies the saved
standardisation first).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, Int

from .._checks import all_true, as_float_array, check_finite, check_labels, device_array, is_concrete
from ..trunk._network import Network

__all__ = ["predict", "evaluate", "accuracy", "network_of"]


def network_of(model) -> Network:
    """The `Network` of `model`: `model` itself, or its ``network`` (a `resflow.Run`).

    **Raises:** `TypeError` naming the argument for anything else.
    """
    if isinstance(model, Network):
        return model
    network = getattr(model, "network", None)
    if isinstance(network, Network):
        return network
    raise TypeError(
        f"network must be a resflow.Network or a resflow.Run (from fit or load_run), got {type(model).__name__}"
    )


def _check_inputs(model, x, y=None):
    """(network, x[, y]) of a public call: x finite ``(N, dim)``, y labels in [0, classes).

    Shapes and dtypes first; the value checks of x and y are one reduction (one host read,
    none for tracers), and only a failure re-runs them one by one for the message.
    """
    network = network_of(model)
    x = as_float_array("x", x)
    if x.ndim != 2 or x.shape[1] != network.dim:
        raise ValueError(f"x must have shape (N, {network.dim}) (the training data dimension), got {x.shape}")
    checks = {"x": (x, lambda xp, a: xp.isfinite(a))}
    if y is not None:
        y = device_array(y)
        if not jnp.issubdtype(y.dtype, jnp.integer):
            raise TypeError(f"y must be an array of integer class labels, got dtype {y.dtype}")
        if y.shape != (x.shape[0],):
            raise ValueError(f"y must have shape {(x.shape[0],)} to match the data, got {y.shape}")
        checks["y"] = (y, lambda xp, a: (a >= 0) & (a < network.n_classes))
    if all(is_concrete(a) for a, _ in checks.values()) and not all_true(checks):
        check_finite("x", x)
        check_labels("y", y, x.shape[0])
        raise ValueError(f"y must be < n_classes = {network.n_classes}, got a label {int(jnp.max(y))}")
    return (network, x) if y is None else (network, x, y)


@jax.jit
def _logits(network: Network, x):
    return network(x)


@jax.jit
def _scores(network: Network, x, y):
    """(mean cross-entropy, number right): one program, so an evaluation compiles once per shape."""
    logits = network(x)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    return loss, jnp.sum(jnp.argmax(logits, -1) == y)


def predict(network, x: Float[Array, "batch dim"]) -> Float[Array, "batch classes"]:
    """Logits of the trained network (jitted) on inputs `x` as trained on.

    **Arguments:** `network`: a `resflow.Network` or a `resflow.Run` (its network); `x`: ``(N, dim)``.

    **Raises:** `TypeError` for another `network`; `ValueError` (naming x) unless x is a finite
    ``(N, dim)`` array.
    """
    network, x = _check_inputs(network, x)
    return _logits(network, x)


def evaluate(network, x: Float[Array, "batch dim"], y: Int[Array, " batch"]) -> dict:
    """Mean cross-entropy ``loss`` and ``accuracy`` of the network on (x, y).

    **Raises:** `TypeError` for another `network` or non-integer labels; `ValueError` unless x
    is finite ``(N, dim)`` and y is ``(N,)`` with labels in [0, classes).
    """
    network, x, y = _check_inputs(network, x, y)
    loss, right = _scores(network, x, y)
    # The fraction as a Python float of the exact count (a float32 mean would round it).
    return {"loss": float(loss), "accuracy": int(right) / y.shape[0]}


def accuracy(network, x: Float[Array, "batch dim"], y: Int[Array, " batch"]) -> float:
    """Fraction of samples whose largest logit is the label (arguments and errors as `evaluate`)."""
    return evaluate(network, x, y)["accuracy"]
