"""Accuracy under input noise: ResNets against MLPs, trained on the same data and seeds.

`compare_noise_robustness` trains every `ModelSpec` with `resflow.fit` and evaluates each
trained network with the metric `resflow.noise_accuracy` under the same noise. How the MLP
is matched to the ResNet (depth, init scale, clean accuracy) decides the outcome: a deep
sigmoid MLP with the ResNet's init does not train at all, so its flat noise curve says
nothing about robustness. Every model is therefore described by a `ModelSpec`, and the table
records each one's clean accuracy next to its noise curve, with the trunk's linearised
perturbation growth ||δx_T|| / ||δx_0|| (`resflow.analysis.linear_growth`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_array, check_choice, check_int
from ..analysis._perturbation import linear_growth
from ..analysis._robustness import NoiseRobustness, noise_accuracy
from ..training import _fit as train
from ..trunk._trunk import MODELS

__all__ = ["ModelSpec", "parse_model_spec", "NoiseComparison", "compare_noise_robustness", "flat_numbers"]


class ModelSpec(NamedTuple):
    """One trunk of the comparison: ``model`` (``"resnet"``/``"mlp"``), ``depth`` and init scale ``w_std``."""

    model: str
    depth: int
    w_std: float = 1.0

    @property
    def label(self) -> str:
        name = {"resnet": "ResNet", "mlp": "MLP"}[self.model]
        return f"{name}-{self.depth}" + ("" if self.w_std == 1.0 else f" (w_std {self.w_std:g})")


def parse_model_spec(text: str) -> ModelSpec:
    """``"resnet:15"``, ``"mlp:3"`` or ``"mlp:15:6"`` (model:depth[:w_std]) → `ModelSpec`.

    **Raises:** `ValueError` naming the expected format.
    """
    parts = str(text).split(":")
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        model, depth = check_choice("model", parts[0], MODELS), int(parts[1])
        w_std = float(parts[2]) if len(parts) == 3 else 1.0
        if depth < 1 or not np.isfinite(w_std) or w_std <= 0:
            raise ValueError
    except ValueError as e:
        raise ValueError(
            f"model spec must be model:depth[:w_std] with model in {list(MODELS)}, depth >= 1, w_std > 0 "
            f"(e.g. resnet:15, mlp:3, mlp:15:6), got {text!r}"
        ) from e
    return ModelSpec(model, depth, w_std)


class NoiseComparison(NamedTuple):
    """Result of `compare_noise_robustness`.

    - `table`: JSON-able dict: ``sigmas``, ``seeds``, ``num_draws``, ``train_options``, ``rows`` (one
      per model and seed: label, model, initial_depth, depth (trained, final), w_std, seed, clean_accuracy, accuracy_mean/std per σ,
      median linearised perturbation growth of the trunk at its last layer, train time) and
      ``summary`` (per label, averaged over seeds).
    - `curves`: label → `NoiseRobustness` pooled over seeds (accuracy ``(S, seeds · draws)``).
    """

    table: dict
    curves: dict


def compare_noise_robustness(
    data,
    specs: Sequence[ModelSpec],
    *,
    sigmas,
    key: jax.Array,
    num_draws: int = 20,
    seeds: Sequence[int] = (0,),
    growth_draws: int = 4,
    progress: bool = False,
    **train_options,
) -> NoiseComparison:
    """Train each `ModelSpec` with `resflow.fit` for every seed, then measure accuracy under input noise.

    Training for seed s uses ``jax.random.key(s)`` for every model (same init key, same batch order);
    all models and seeds are evaluated with the same noise (`key`), on ``data.x_test`` in the data's
    (standardised) units. The trunk's linearised perturbation growth ||δx_T|| / ||δx_0|| (median over
    test inputs and `growth_draws` directions, `linear_growth`) is recorded too.

    **Arguments:**

    - `data`: a `resflow.training.Dataset`.
    - `specs`: the trunks to compare (`ModelSpec` or strings for `parse_model_spec`).
    - `sigmas`: noise levels σ ≥ 0; `key`, `num_draws`: as in `noise_accuracy`.
    - `seeds`: training seeds.
    - `growth_draws`: directions for the growth measurement.
    - `progress`: a tqdm bar over the runs.
    - `train_options`: further `resflow.fit` options for every run (width, epochs, lr, ...).

    **Returns:** `NoiseComparison` (``table``, ``curves``).

    **Raises:** `ValueError` for an empty `specs`/`seeds`, a bad spec, negative or non-finite
    `sigmas`, or `train_options` that set ``model``, ``depth`` or ``w_std`` (the specs do);
    `TypeError` for non-integer seeds; whatever `resflow.fit` raises for bad options.
    All but the last are checked before any training.
    """
    specs = [s if isinstance(s, ModelSpec) else parse_model_spec(s) for s in specs]
    seeds = [check_int("seed", s, minimum=0) for s in seeds]
    if not specs or not seeds:
        raise ValueError("specs and seeds must be non-empty")
    clash = sorted(set(train_options) & {"model", "depth", "w_std"})
    if clash:
        raise ValueError(f"train_options must not set {clash}: each ModelSpec fixes model, depth and w_std")
    # Checked before the first (slow) training run.
    sigmas = np.asarray(check_array("sigmas", np.asarray(sigmas, np.float64), ndim=1), np.float64)
    if np.any(sigmas < 0):
        raise ValueError(f"sigmas must be >= 0, got {sigmas}")
    runs = [(seed, spec) for seed in seeds for spec in specs]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(runs), desc="noise robustness", unit="run")
    rows, pooled = [], {}
    for seed, spec in runs:
        if bar is not None:
            bar.set_postfix_str(f"{spec.label} seed {seed}")
        t0 = time.perf_counter()
        options = dict(train_options, model=spec.model, depth=spec.depth, w_std=spec.w_std)
        result = train.fit(data, key=jax.random.key(seed), figures=False, **options)
        train_time = time.perf_counter() - t0
        trunk = result.trunk
        x_test = jnp.asarray(data.x_test, trunk.dtype)
        y_test = jnp.asarray(data.y_test, jnp.int32)
        noisy = noise_accuracy(
            result.network, x_test, y_test, jnp.asarray(sigmas, trunk.dtype), key=key, num_draws=num_draws
        )
        growth = linear_growth(
            trunk,
            _trunk_inputs(result.network, x_test, trunk.width),
            depth=result.depth,
            key=jax.random.fold_in(key, 1),
            num_draws=growth_draws,
        )
        rows.append(
            {
                "label": spec.label,
                "model": spec.model,
                "initial_depth": spec.depth,
                "depth": result.depth,  # the trained depth (< initial_depth after depth_adapt cuts)
                "w_std": spec.w_std,
                "seed": seed,
                "clean_accuracy": float(result.metrics["test_accuracy"]),
                "accuracy_mean": [float(v) for v in noisy.mean],
                "accuracy_std": [float(v) for v in noisy.std],
                "growth_median_T": float(jnp.median(growth[-1])),
                "train_time_s": round(train_time, 2),
            }
        )
        pooled.setdefault(spec.label, []).append(np.asarray(noisy.accuracy))
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()

    curves, summary = {}, {}
    for label, accs in pooled.items():
        acc = np.concatenate(accs, axis=1)
        curves[label] = NoiseRobustness(sigmas, acc, acc.mean(axis=1), acc.std(axis=1))
        mine = [r for r in rows if r["label"] == label]
        summary[label] = {
            "clean_accuracy": float(np.mean([r["clean_accuracy"] for r in mine])),
            "accuracy_mean": [float(v) for v in acc.mean(axis=1)],
            "growth_median_T": float(np.median([r["growth_median_T"] for r in mine])),
        }
    table = {
        "sigmas": [float(s) for s in sigmas],
        "seeds": seeds,
        "num_draws": num_draws,
        "data": {k: v for k, v in data.meta.items() if isinstance(v, str | int | float | bool)},
        "train_options": dict(train_options),
        "rows": rows,
        "summary": summary,
    }
    return NoiseComparison(table, curves)


def _trunk_inputs(network, x, width: int):
    """The trunk's input states x_0 of a batch: the network's lift (``network.embed``) when
    it has one, else the inputs themselves (no lift: the data dimension is the width)."""
    embed = getattr(network, "embed", None)
    if embed is not None:
        return embed(x)
    if x.shape[-1] != width:
        raise ValueError(f"the network has no embed() and the data dimension {x.shape[-1]} is not the width {width}")
    return x


def flat_numbers(table: dict) -> dict:
    """The numbers of a `NoiseComparison.table` as a flat dict name → number (for docs).

    Per model (``slug`` = its label in lower case, non-alphanumerics as ``_``, e.g.
    ``resnet_15``, ``mlp_15_w_std_6``): ``slug_clean`` (mean clean accuracy),
    ``slug_sigma<σ>`` (mean accuracy at σ, ``.`` written ``p``: ``sigma0p25``), ``slug_growth``
    (median growth ||δx_T|| / ||δx_0||), ``slug_relative_percent_sigma<σ>`` (100 · accuracy at
    σ / clean accuracy), ``slug_seed<s>_clean`` and ``slug_seed_spread_sigma<σ>`` (half the
    range over seeds of the accuracy at σ). From a table with its ``data`` record: ``n_train``,
    ``n_test`` and ``noisy_images_per_point`` (test images × seeds × draws behind each mean).
    """
    out = {}
    sigmas = table["sigmas"]
    data = table.get("data", {})
    if "n_train" in data and "n_test" in data:
        out["n_train"], out["n_test"] = data["n_train"], data["n_test"]
        out["noisy_images_per_point"] = data["n_test"] * len(table["seeds"]) * table["num_draws"]

    def slug(label):
        return "_".join("".join(c if c.isalnum() else " " for c in label.lower()).split())

    def tag(s):
        return f"sigma{s:g}".replace(".", "p")

    for label, row in table["summary"].items():
        k = slug(label)
        out[f"{k}_clean"] = row["clean_accuracy"]
        out[f"{k}_growth"] = row["growth_median_T"]
        for s, acc in zip(sigmas, row["accuracy_mean"], strict=True):
            out[f"{k}_{tag(s)}"] = acc
            out[f"{k}_relative_percent_{tag(s)}"] = 100 * acc / row["clean_accuracy"] if row["clean_accuracy"] else 0.0
        mine = [r for r in table["rows"] if r["label"] == label]
        for r in mine:
            out[f"{k}_seed{r['seed']}_clean"] = r["clean_accuracy"]
        for i, s in enumerate(sigmas):
            per_seed = [r["accuracy_mean"][i] for r in mine]
            out[f"{k}_seed_spread_{tag(s)}"] = (max(per_seed) - min(per_seed)) / 2
    return out
