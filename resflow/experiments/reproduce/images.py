"""The paper's MNIST analyses, on Fashion-MNIST at width 784 (no lift), 15 layers.

Shared ResNet, untied ResNet and MLP of the same width and depth: accuracy over seeds (with
the 0.8833 MLP reference as a row); the residual mean and std over layers; the 1000-layer run
of the same weights (streamed, with its planned peak memory); the fixed points reached from
its end states and class means; per-class Jacobian spectra at the class-mean residuals
(saddles; control: the untrained network); the readout's strongest neuron per class under
two readings (control: a random readout); the untied network's residual std and class
independence.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ...analysis._class_spectra import class_mean_spectra, readout_alignment
from ...analysis._fixed_point_search import search_residual_fixed_points
from ...analysis._long_run import long_run_memory, long_run_statistics
from ...dynamics._stability import Stability
from .context import Context, inputs
from .dynamics import regime_numbers
from .stats import curve_summary, summary
from .training import untrained_network

__all__ = ["claim_images"]

MODELS = ("resnet", "untied", "mlp")
FMNIST_REFERENCE = 0.8833  # the published MLP 256-128-100 on Fashion-MNIST: a row, not a verdict
CHUNK = 256  # inputs per chunk of the long run: memory O(chunk · n + T · K · n)


def _class_spread(class_means) -> float:
    """RMS distance of the class means to their centre over their mean norm (0: one shared state)."""
    m = np.asarray(class_means)
    m = m[~np.isnan(m).any(1)]
    spread = np.sqrt(np.mean(np.sum((m - m.mean(0)) ** 2, 1)))
    return float(spread / max(np.mean(np.linalg.norm(m, axis=1)), 1e-12))


def _layers(run, inp) -> dict:
    """Residual mean (over inputs and units) and std (over inputs, averaged over units) per layer."""
    lr = long_run_statistics(run.trunk, inp.x0, inp.y, depth=run.depth, num_classes=inp.K)
    return {
        "mean": np.asarray(lr.residual_mean).mean(1).tolist(),
        "std": np.asarray(lr.residual_std).tolist(),
        "class_spread_T": _class_spread(lr.class_means[-1]),
    }


def _fixed_points(trunk, lr, labels, K: int) -> dict:
    """Search from the end states' pre-activations a_T = W x_T + b and their class means (in
    float64: the saturation test and the Newton residual need the precision)."""
    trunk = trunk.astype(jnp.float64)
    a = lr.final_state.astype(jnp.float64) @ trunk.W.T + trunk.b
    onehot = np.eye(K)[np.asarray(labels)]
    means = (onehot.T @ np.asarray(a)) / np.maximum(onehot.sum(0)[:, None], 1)
    starts = jnp.concatenate([a, jnp.asarray(means[onehot.sum(0) > 0], a.dtype)])
    fp = search_residual_fixed_points(trunk, starts)
    stab = np.asarray(fp.stability)
    found = np.asarray(fp.start_counts) > 0
    return {
        "num_fixed_points": int(len(stab)),
        "num_attractors": int(np.sum(stab == Stability.ATTRACTOR)),
        "num_saddles": int(np.sum(stab == Stability.SADDLE)),
        "starts_converged": float(np.mean(np.asarray(fp.start_solution) >= 0)),
        "nonzero_components": [int(h + f) for h, f in zip(fp.num_high[found], fp.num_free[found], strict=True)],
        "max_multiplier": [float(np.max(np.abs(m))) for m in np.asarray(fp.multipliers)[found]],
        "start_counts": np.asarray(fp.start_counts)[found].tolist(),
    }


def _alignment(network, inp) -> dict:
    """Aligned classes under both readings of the paper's sentence. Reading A (neuron):
    class c's mean output x_T is largest on its strongest readout neuron s_c
    (`resflow.readout_alignment`). Reading B (class): on neuron s_c, class c has the largest
    mean output of all classes."""
    align = readout_alignment(network, inp.x, inp.y)
    means, strongest = np.asarray(align["class_mean_output"]), np.asarray(align["strongest_neuron"])
    on_strongest = np.where(np.isnan(means[:, strongest]), -np.inf, means[:, strongest])  # (class, c)
    by_class = np.argmax(on_strongest, axis=0) == np.arange(len(strongest))
    return {"aligned": int(align["num_aligned"]), "aligned_by_class": int(by_class.sum())}


def _random_readout(network, key):
    """`network` with its readout kernel replaced by a Gaussian matrix of the same shape and std."""
    V = network.readout.W
    W = jax.random.normal(key, V.shape, V.dtype) * jnp.std(V)
    return eqx.tree_at(lambda n: n.readout.W, network, W)


def _shared_analyses(ctx: Context, seed: int, run) -> dict:
    m, data = ctx.mode, ctx.data["images"]
    inp = inputs(run, data, m.image_samples)
    lr = long_run_statistics(run.trunk, inp.x0, inp.y, depth=m.long_depth, num_classes=inp.K, batch_chunk=CHUNK)
    mem = long_run_memory(run.trunk, len(inp.y), depth=m.long_depth, num_classes=inp.K, batch_chunk=CHUNK)
    spectra = class_mean_spectra(run.trunk, inp.x0, inp.y, depth=run.depth, num_classes=inp.K)
    lead = np.real(np.asarray(spectra.flow_eigenvalues))[:, 0]
    init = untrained_network(run, data, seed)
    init_spectra = class_mean_spectra(init.trunk, inp.x0, inp.y, depth=init.depth, num_classes=inp.K)
    return {
        "layers": _layers(run, inp),
        "long_std": np.asarray(lr.residual_std).tolist(),
        "long_change_max_end": float(np.asarray(lr.change_max)[-1]),
        "peak_memory_mb": mem["total"] / 2**20,
        "full_trajectory_mb": m.long_depth * len(inp.y) * run.trunk.width * run.trunk.dtype.itemsize / 2**20,
        "regime": regime_numbers(run, data, m, n=m.image_samples),
        "fixed_points": _fixed_points(run.trunk, lr, inp.y, inp.K),
        "leading_flow_eigenvalue": lead.tolist(),
        "near_saddle": int(np.sum(np.asarray(spectra.near_saddle))),
        "alignment": _alignment(run.network, inp),
        "random_alignment": _alignment(_random_readout(run.network, jax.random.key(2000 + seed)), inp),
        "near_saddle_untrained": int(np.sum(np.asarray(init_spectra.near_saddle))),
    }


def claim_images(ctx: Context) -> dict:
    """The paper's MNIST block on `Mode.image_data` (Fashion-MNIST; the tiny mode's stand-in)."""
    m, data = ctx.mode, ctx.data["images"]
    learned = ctx.learned_runs("images/resnet")
    shared = [_shared_analyses(ctx, s, r) for s, r in learned]
    untied = [_layers(r, inputs(r, data, m.image_samples)) for _, r in ctx.learned_runs("images/untied")]
    K = ctx.runs["images/resnet"][0].network.n_classes

    def aligned(key: str) -> dict:
        return {q: summary([s[key][q] for s in shared]) for q in ("aligned", "aligned_by_class")}

    numbers = {
        "data": data.meta["name"],
        "stand_in": data.meta["name"] != "fashion-mnist",
        "epochs": m.image_epochs,
        "final_depth": {k: summary([r.depth for _, r in ctx.learned_runs(f"images/{k}")]) for k in MODELS},
        "accuracy": {
            k: summary([r.metrics["test_accuracy"] for _, r in ctx.learned_runs(f"images/{k}")]) for k in MODELS
        },
        "mlp_reference": FMNIST_REFERENCE,
        "alignment": {
            "num_classes": K,
            **aligned("alignment"),
            "control": {"name": "a random readout", "num_classes": K, **aligned("random_alignment")},
        },
        "saddles": {
            "classes_near_saddle": summary([s["near_saddle"] for s in shared]),
            "control": {
                "name": "the untrained network at the same init",
                "classes_near_saddle": summary([s["near_saddle_untrained"] for s in shared]),
            },
        },
        "shared": {
            "residual_mean_layers": curve_summary([s["layers"]["mean"] for s in shared]),
            "residual_std_layers": curve_summary([s["layers"]["std"] for s in shared]),
            "long_residual_std": curve_summary([s["long_std"] for s in shared]),
            "long_change_max_end": summary([s["long_change_max_end"] for s in shared]),
            "peak_memory_mb": summary([s["peak_memory_mb"] for s in shared]),
            "full_trajectory_mb": shared[0]["full_trajectory_mb"],
            **{
                f"regime_{k}": summary([s["regime"][k] for s in shared])
                for k in ("attractor", "converged_fraction", "num_end_states", "class_dependence")
            },
            "num_fixed_points": summary([s["fixed_points"]["num_fixed_points"] for s in shared]),
            "num_attractors": summary([s["fixed_points"]["num_attractors"] for s in shared]),
            "starts_converged": summary([s["fixed_points"]["starts_converged"] for s in shared]),
            "fixed_points_per_seed": [s["fixed_points"] for s in shared],
            "leading_flow_eigenvalue": curve_summary([s["leading_flow_eigenvalue"] for s in shared]),
            "class_spread_T": summary([s["layers"]["class_spread_T"] for s in shared]),
        },  # fmt: skip
        "untied": {
            "residual_std_layers": curve_summary([u["std"] for u in untied]),
            "class_spread_T": summary([u["class_spread_T"] for u in untied]),
        },
        "num_classes": K,
        "samples": m.image_samples,
    }
    paper = {
        "error shared / untied (MNIST)": "1.4 % / 1.8 %",
        "reference (Fashion-MNIST MLP 256-128-100)": 0.8833,
        "classes near saddles": "3 (one eigenvalue ≈ 0.02)",
        "aligned classes": "all but one",
        "untied": "residual std vanishes after ~4 layers; one fixed point for all classes",
    }
    return {"numbers": numbers, "paper": paper}
