"""The three sizes of the reproduction: ``full`` (the committed results), ``quick`` and ``tiny``.

A `Mode` fixes the seeds, the training recipes and the analysis sizes. The recipes are the
per-data-set defaults of ``scripts/train.py`` (docs/training.md): circles width 3 with a
trained 2 → 3 lift, Adam 1e-1, batch 50, w_std 1, the depth rule from the first epoch with
every allowed cut per epoch; digits width 64,
Adam 3e-3, batch 64; Fashion-MNIST width 784 (no lift), batch 256, Adam 2e-3 with a 5 %
warm-up and cosine decay, weight decay 1e-4, 20 epochs, depth adaptation from 15 layers (the
README command). Every trunk starts with 15 sigmoid layers and step h = 1, as in the paper.
"""

from __future__ import annotations

import dataclasses

__all__ = ["Mode", "MODES", "get_mode"]


@dataclasses.dataclass(frozen=True)
class Mode:
    """One size of the reproduction.

    - `seeds`: training seeds of the circles and digits runs; `image_seeds`: of the shared
      ResNet's image runs; `image_baseline_seeds`: of the untied ResNet's and the MLP's (one
      untied Fashion-MNIST run costs about 45 minutes on 2 CPU cores).
    - `circles_epochs`, `digits_epochs`, `image_epochs`: training epochs.
    - `image_data`: ``"fashion-mnist"`` (the paper's MNIST block at width 784) or a stand-in
      data set for the tiny mode (``"digits"``), which must not depend on installed files.
    - `image_train`, `image_test`: the first samples of each split used (None: all).
    - `image_depth_adapt`: the image runs adapt their depth (the README command does); off in
      the tiny mode, whose image runs share the digits runs' compiled programs.
    - `long_depth`: layers of the long runs of the same weights (the paper: 1000).
    - `max_samples`: test inputs per analysis (and probe training inputs).
    - `image_samples`: test inputs of the image analyses (long run, fixed points).
    - `sigmas`: input-noise levels (standardised units); `noise_draws`: draws per level.
    - `trunk_data`: the data sets of claims 1–5 (circles must be one: claim 3 reads its corner).
    - `matched_mlp_depth`: depth of the MLP matched to the ResNet at clean accuracy (a
      15-layer sigmoid MLP does not train; 3 layers reach the ResNet's accuracy on digits).
    """

    name: str
    seeds: tuple[int, ...]
    image_seeds: tuple[int, ...]
    image_baseline_seeds: tuple[int, ...]
    circles_epochs: int
    digits_epochs: int
    image_data: str
    image_train: int | None
    image_test: int | None
    image_epochs: int
    long_depth: int
    max_samples: int
    image_samples: int
    sigmas: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 2.0)
    noise_draws: int = 10
    matched_mlp_depth: int = 3
    depth: int = 15
    trunk_data: tuple[str, ...] = ("circles", "digits")
    image_depth_adapt: bool = True

    def group_seeds(self, group: str) -> tuple[int, ...]:
        """The training seeds of run group `group` (``"<data>/<model>"``)."""
        if group == "images/resnet":
            return self.image_seeds
        return self.image_baseline_seeds if group.startswith("images/") else self.seeds


MODES = {
    # The paper's scale: >= 8 seeds on circles and digits; on Fashion-MNIST (60k / 10k) 3 seeds
    # of the shared ResNet and one of each baseline.
    "full": Mode(
        "full",
        seeds=tuple(range(8)),
        image_seeds=(0, 1, 2),
        image_baseline_seeds=(0,),
        circles_epochs=300,
        digits_epochs=40,
        image_data="fashion-mnist",
        image_train=None,
        image_test=None,
        image_epochs=20,
        long_depth=1000,
        max_samples=1000,
        image_samples=1000,
        noise_draws=20,
    ),  # fmt: skip
    # <= 10 minutes on 2 CPU cores: all claims at small sizes.
    "quick": Mode(
        "quick",
        seeds=(0, 1),
        image_seeds=(0,),
        image_baseline_seeds=(0,),
        circles_epochs=150,
        digits_epochs=30,
        image_data="fashion-mnist",
        image_train=6000,
        image_test=1000,
        image_epochs=3,
        long_depth=1000,
        max_samples=400,
        image_samples=200,
        noise_draws=5,
    ),  # fmt: skip
    # Seconds: for the test; every section computed, numbers meaningless. Its cost is building
    # programs, not running them: the image runs are the digits runs' recipe on all of digits
    # (images/resnet and images/mlp train with the programs of digits/resnet and
    # digits/mlp_depth), and the matched MLP has the trunk's depth (digits/mlp_matched reuses
    # digits/mlp_depth's programs, in training and in the noise claim).
    "tiny": Mode(
        "tiny",
        seeds=(0,),
        image_seeds=(0,),
        image_baseline_seeds=(0,),
        circles_epochs=3,
        digits_epochs=2,
        image_data="digits",
        image_train=None,
        image_test=None,
        image_epochs=2,
        long_depth=40,
        max_samples=60,
        image_samples=40,
        sigmas=(0.0, 1.0),
        noise_draws=2,
        matched_mlp_depth=6,
        depth=6,
        trunk_data=("circles",),
        image_depth_adapt=False,
    ),  # fmt: skip
}


def get_mode(name: str) -> Mode:
    """The `Mode` called `name`.

    **Raises:** `ValueError` naming the choices for an unknown name.
    """
    if name not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}, got {name!r}")
    return MODES[name]
