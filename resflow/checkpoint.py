"""Atomic training checkpoints: a pytree of arrays plus JSON metadata in one msgpack file.

The arrays (parameters, optimiser state, RNG key data, …) are serialised with
``flax.serialization`` state dicts; the metadata (epoch, depth, config, histories) is a JSON
string in the same file. Writes go to a temporary file in the same folder followed by
``os.replace``, so a run killed mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jax
import numpy as np
from flax import serialization

__all__ = ["save_checkpoint", "load_checkpoint"]


def save_checkpoint(path, arrays, meta: dict) -> None:
    """Write `arrays` (any pytree of arrays) and JSON-able `meta` atomically to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = jax.tree_util.tree_map(np.asarray, serialization.to_state_dict(arrays))
    blob = serialization.msgpack_serialize({"arrays": state, "meta": json.dumps(meta)})
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(blob)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path, target=None):
    """Read a checkpoint written by `save_checkpoint`.

    **Arguments:** `path`; `target`, a pytree with the structure of the saved arrays (its
    leaves are replaced), or None for the raw nested state dict.

    **Returns:** ``(arrays, meta)``.

    **Raises:** `FileNotFoundError` if there is no checkpoint at `path`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    raw = serialization.msgpack_restore(path.read_bytes())
    arrays = raw["arrays"] if target is None else serialization.from_state_dict(target, raw["arrays"])
    return arrays, json.loads(raw["meta"])
