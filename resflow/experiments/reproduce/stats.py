"""Numbers over seeds: every per-seed value kept, with mean ± spread."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["summary", "curve_summary", "finite_numbers"]


def summary(values) -> dict:
    """``{"values", "mean", "std", "min", "max", "n"}`` of per-seed scalars (std: population, 0 for one seed)."""
    v = np.asarray([float(x) for x in values], np.float64)
    return {
        "values": v.tolist(),
        "mean": float(v.mean()),
        "std": float(v.std()),
        "min": float(v.min()),
        "max": float(v.max()),
        "n": int(v.size),
    }


def curve_summary(curves) -> dict:
    """Per-seed curves → ``{"mean", "std", "seeds_per_entry"}`` lists and the curves. Networks
    pruned to different depths give curves of different lengths: entry i is over the seeds
    whose curve has an entry i (``seeds_per_entry[i]`` of them; population std, 0 for one seed)."""
    curves = [[float(x) for x in c] for c in curves]
    cols = [np.asarray([c[i] for c in curves if i < len(c)]) for i in range(max(map(len, curves), default=0))]
    return {
        "mean": [float(c.mean()) for c in cols],
        "std": [float(c.std()) for c in cols],
        "seeds_per_entry": [int(c.size) for c in cols],
        "values": curves,
    }


def finite_numbers(obj, path: str = "") -> list[str]:
    """Paths of the numbers in a JSON-able `obj` that are not finite (NaN stays allowed where a
    value is JSON null: absent by design)."""
    bad = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            bad += finite_numbers(v, f"{path}/{k}")
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            bad += finite_numbers(v, f"{path}[{i}]")
    elif isinstance(obj, float) and not math.isfinite(obj):
        bad.append(path)
    return bad
