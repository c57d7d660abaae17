"""Flax modules for training: the residual trunk as a layer, and the classifier around it.

Both take a `TrunkSpec` by keyword (``spec=``) and hold the trunk's parameters ``W``, ``b``
as flax params; each call builds a `resflow.Trunk` from them (under `jax.jit` only its shape
checks run) and steps it with `resflow.trunk._trunk.scan_trunk`. The trained value is a
`resflow.Network`, built from the params by `resflow.trunk._network.from_flax`.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from ..trunk._trunk import Trunk, check_active_depth, init_arrays, scan_trunk
from ._config import TrunkSpec

__all__ = ["ResidualTrunk", "Classifier"]


class ResidualTrunk(nn.Module):
    """The trunk of `spec` as a flax layer (params ``W``, ``b``); ``spec.width`` must be set.

    ``__call__(x, active_depth=None, return_trajectory=False, h=None)`` returns x_T (or the
    states x_0 … x_T) of `spec.depth` layers; `active_depth` may be a traced integer <= depth
    (later layers are the identity, so a changing depth needs no recompilation); `h` (None:
    ``spec.h``) may be a traced scalar, so runs that differ only in h share compiled code.
    """

    spec: TrunkSpec
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, active_depth=None, return_trajectory: bool = False, h=None):
        s = self.spec
        depth = None if s.shared else s.depth

        def init(k):
            return init_arrays(k, s.width, depth=depth, w_std=s.w_std, b_std=0.0, dtype=self.param_dtype)

        W, b = self.param("W", lambda k: init(k)[0]), self.param("b", lambda k: init(k)[1])
        # flax's convention (as nn.Dense with dtype=None): compute in the promoted dtype of
        # the inputs and params; the trunk's scan itself needs one dtype.
        dtype = jnp.result_type(x, W)
        h = s.h if h is None else jnp.asarray(h, dtype)
        trunk = Trunk(W.astype(dtype), b.astype(dtype), h, model=s.model, activation=s.activation)
        x = jnp.asarray(x, dtype)
        check_active_depth(active_depth, self.spec.depth)
        return scan_trunk(
            trunk,
            x,
            active_depth,
            depth=self.spec.depth,
            keep=return_trajectory,
            remat=self.spec.remat and not return_trajectory,
        )


class Classifier(nn.Module):
    """Optional linear lift → `ResidualTrunk` → linear readout (logits); `h` as in `ResidualTrunk`."""

    n_classes: int
    spec: TrunkSpec
    use_lift: bool = False
    param_dtype: Any = jnp.float32

    def setup(self):
        kw = dict(dtype=self.param_dtype, param_dtype=self.param_dtype)
        self.lift = nn.Dense(self.spec.width, **kw) if self.use_lift else None
        self.trunk = ResidualTrunk(spec=self.spec, param_dtype=self.param_dtype)
        self.readout = nn.Dense(self.n_classes, **kw)

    def embed(self, x):
        return self.lift(x) if self.use_lift else x

    def __call__(self, x, active_depth=None, h=None):
        return self.readout(self.trunk(self.embed(x), active_depth, h=h))

    def trajectory(self, x, active_depth=None, h=None):
        """Trunk states x_0 … x_T (after the lift), ``(T + 1, batch, width)``."""
        return self.trunk(self.embed(x), active_depth, return_trajectory=True, h=h)
