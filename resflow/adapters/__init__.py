"""Adapters for other libraries: `ResidualTrunk`, the trunk as a flax linen layer (needs flax)."""

from .flax import ResidualTrunk as ResidualTrunk
from .flax import to_trunk as to_trunk
