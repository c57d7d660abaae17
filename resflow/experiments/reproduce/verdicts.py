"""The verdict of each claim: explicit rules on the measured numbers, thresholds named here.

Each function takes the claim's numbers (as stored in results.json) and returns
``{"verdict": "reproduced" | "partly" | "not reproduced", "reason": str}``. The thresholds are
choices, stated once here and printed in docs/results.md next to each verdict.
"""

from __future__ import annotations

__all__ = ["THRESHOLDS", "VERDICTS"]

THRESHOLDS = {
    # 1: float64 round-off over 15 layers.
    "disentangling_max_rel_err": 1e-10,
    # 2: both signs present: each of cooperative and competitive coefficients is at least this
    # share of the off-diagonal coefficients (mean over layers, classes and seeds).
    "sign_min_share": 0.05,
    # 3: an input converged when its last residual step is below steady_state's tol (1e-6);
    # a class-independent end state: class-mean end residuals within this (max norm).
    "attractor_converged": 0.95,
    "class_independent_distance": 1e-3,
    # 4: the probe on r_t at layer <= early_layer reaches this fraction of the network's accuracy.
    "early_layer": 3,
    "probe_fraction": 0.9,
    # 5: a readout on the partial integral reaches 99 % of the full-depth accuracy before T.
    "transient_fraction": 0.99,
    # 6: the ResNet's accuracy under noise exceeds the matched MLP's by more than this (mean
    # over σ > 0 and seeds); early/late injection ratio above 1.
    "noise_margin": 0.02,
    # 7: pruning keeps the accuracy within this of the unpruned accuracy.
    "pruning_accuracy_drop": 0.01,
    # Fashion-MNIST: the published MLP 256-128-100 reference.
    "fmnist_reference": 0.8833,
}


def _v(label: str, reason: str) -> dict:
    return {"verdict": label, "reason": reason}


def disentangling(n: dict) -> dict:
    err, tol = n["max_rel_err"]["max"], THRESHOLDS["disentangling_max_rel_err"]
    if err < tol:
        return _v(
            "reproduced", f"max relative error {err:.1e} < {tol:.0e} over all seeds and data sets (exact algebra)"
        )
    return _v("not reproduced", f"max relative error {err:.1e} >= {tol:.0e}: the recurrence loses precision")


def cooperation(n: dict) -> dict:
    coop, comp, tol = n["cooperative_fraction"]["mean"], n["competitive_fraction"]["mean"], THRESHOLDS["sign_min_share"]
    if min(coop, comp) >= tol:
        return _v(
            "reproduced",
            f"cooperative ({coop:.2f}) and competitive ({comp:.2f}) interactions both present in every layer "
            "and class on average; the paper gives no number, only this qualitative structure",
        )
    return _v("not reproduced", f"one sign dominates (cooperative {coop:.2f}, competitive {comp:.2f})")


def attractor(n: dict) -> dict:
    c = n["circles"]
    same, corner = c["same_attractor_fraction"], c["corner_fraction"]
    if same == 1.0 and corner == 1.0:
        return _v("reproduced", "on circles every seed's inputs of both classes converge to one corner")
    if same > 0 or corner > 0:
        return _v(
            "partly",
            f"on circles {same:.0%} of the seeds end at one class-independent state and {corner:.0%} at a corner; "
            "the paper showed one run; which corner (which neuron saturates high) depends on the seed and lift",
        )
    return _v("not reproduced", "no circles seed ends at one class-independent fixed point")


def separability(n: dict) -> dict:
    ratio, tol = n["early_ratio"]["mean"], THRESHOLDS["probe_fraction"]
    layer = THRESHOLDS["early_layer"]
    if ratio >= tol:
        return _v(
            "reproduced", f"a linear probe on r_t at layer <= {layer} reaches {ratio:.2f} of the network's accuracy"
        )
    if n["best_ratio"]["mean"] >= tol:
        return _v("partly", f"separable only late: early probe ratio {ratio:.2f}, best {n['best_ratio']['mean']:.2f}")
    return _v("not reproduced", f"probe on the residuals reaches only {n['best_ratio']['mean']:.2f} of the accuracy")


def transient(n: dict) -> dict:
    frac = n["early_fraction"]["mean"]
    if frac == 1.0:
        return _v("reproduced", "for every network the trained readout on a partial integral T' < T already reaches "
                  f"{THRESHOLDS['transient_fraction']:.0%} of its full-depth accuracy")  # fmt: skip
    if frac > 0:
        return _v("partly", f"{frac:.0%} of the networks classify from a partial integral; the others need all layers")
    return _v("not reproduced", "the trained readout needs the full integral in every network")


def noise(n: dict) -> dict:
    gap, inj, margin = n["noise_gap_matched"]["mean"], n["injection_ratio"]["mean"], THRESHOLDS["noise_margin"]
    robust = gap > margin
    if robust and inj > 1:
        return _v("reproduced", f"ResNet beats the accuracy-matched MLP under noise by {gap:+.3f}; early injections "
                  f"move the output {inj:.1f}x more than late ones")  # fmt: skip
    if robust or inj > 1:
        return _v(
            "partly",
            f"early injections move the output {inj:.1f}x more than late ones, but under input noise the ResNet "
            f"and the MLP matched at clean accuracy differ by {gap:+.3f} (|gap| <= {margin}): the paper's robustness "
            "claim depends on how the MLP is matched"
            if not robust
            else f"noise gap {gap:+.3f}, injection ratio {inj:.2f}",
        )
    return _v("not reproduced", f"noise gap {gap:+.3f} and injection ratio {inj:.2f}")


def depth_adaptation(n: dict) -> dict:
    shared, untied = n["shared"], n["untied"]
    pruned = shared["depth_after"]["mean"] < shared["depth_before"]
    kept = shared["accuracy_drop"]["mean"] <= THRESHOLDS["pruning_accuracy_drop"]
    untied_keeps = untied["depth_after"]["mean"] >= shared["depth_after"]["mean"]
    d = shared["depth_after"]["mean"]
    if pruned and kept and untied_keeps and abs(d - 5) <= 1:
        return _v(
            "reproduced", f"shared: {shared['depth_before']} → {d:.1f} layers at the same accuracy; untied keeps more"
        )
    if pruned and kept:
        return _v(
            "partly",
            f"shared weights are pruned {shared['depth_before']} → {d:.1f} (paper: 5) without losing accuracy; untied "
            f"end at {untied['depth_after']['mean']:.1f} (paper: all 15 kept); the cut depth depends on warm-up and tol",
        )
    return _v("not reproduced", f"shared depth {d:.1f}, accuracy drop {shared['accuracy_drop']['mean']:.3f}")


def images(n: dict) -> dict:
    acc, ref = n["accuracy"]["resnet"]["mean"], THRESHOLDS["fmnist_reference"]
    if n.get("stand_in"):
        return _v("not reproduced", f"ran on the stand-in {n['data']}, not Fashion-MNIST (tiny mode)")
    if acc >= ref:
        return _v("reproduced", f"shared ResNet {acc:.4f} >= the {ref} MLP reference")
    return _v("partly", f"shared ResNet {acc:.4f} < the {ref} MLP reference (training budget: {n['epochs']} epochs)")


VERDICTS = {
    "disentangling": disentangling,
    "cooperation": cooperation,
    "attractor": attractor,
    "separability": separability,
    "transient": transient,
    "noise": noise,
    "depth": depth_adaptation,
    "images": images,
}
