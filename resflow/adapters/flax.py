"""The residual trunk as a flax linen layer, for flax users who put it inside their own model.

    class Mine(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.Dense(8)(x)
            x = ResidualTrunk(spec=rf.TrunkSpec(width=8, depth=5, h=0.5))(x)
            return nn.Dense(10)(x)

`ResidualTrunk` holds the trunk's ``W`` and ``b`` as flax params (``h``, the model and the
activation come from its `resflow.TrunkSpec`); each call builds a `resflow.Trunk` from them
and steps it with the same scan as `resflow.forward`. `to_trunk` turns the params into a
`resflow.Trunk` for the analyses. resflow's own training does not use flax (it trains the
equinox `resflow.Network`); this module is the only one that imports it.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from ..training._config import TrunkSpec
from ..trunk._trunk import Trunk, check_active_depth, init_arrays, scan_trunk

__all__ = ["ResidualTrunk", "to_trunk"]


class ResidualTrunk(nn.Module):
    """The trunk of `spec` as a flax layer (params ``W``, ``b``); ``spec.width`` must be set.

    ``__call__(x, active_depth=None, return_trajectory=False)`` returns x_T (or the states
    x_0 … x_T) of ``spec.depth`` layers with step ``spec.h``; `active_depth` may be a traced
    integer ≤ depth (later layers are the identity, so a changing depth needs no
    recompilation). Initialisation: W ~ N(0, w_std²/width), b = 0 (one W, b per layer unless
    ``spec.shared``). Computation in the promoted dtype of the inputs and params, as flax's
    ``Dense``.
    """

    spec: TrunkSpec
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, active_depth=None, return_trajectory: bool = False):
        s = self.spec
        if s.width is None:
            raise ValueError("ResidualTrunk needs spec.width (the trunk's number of units), got None")
        depth = None if s.shared else s.depth

        def init(k):
            return init_arrays(k, s.width, depth=depth, w_std=s.w_std, b_std=0.0, dtype=self.param_dtype)

        W, b = self.param("W", lambda k: init(k)[0]), self.param("b", lambda k: init(k)[1])
        dtype = jnp.result_type(x, W)
        trunk = Trunk(W.astype(dtype), b.astype(dtype), s.h, model=s.model, activation=s.activation)
        check_active_depth(active_depth, s.depth)
        keep = bool(return_trajectory)
        return scan_trunk(
            trunk, jnp.asarray(x, dtype), active_depth, depth=s.depth, keep=keep, remat=s.remat and not keep
        )


def to_trunk(params: dict, spec: TrunkSpec) -> Trunk:
    """The `resflow.Trunk` of a `ResidualTrunk`'s params ``{"W", "b"}`` (checked on construction)."""
    return Trunk(params["W"], params["b"], spec.h, model=spec.model, activation=spec.activation)
