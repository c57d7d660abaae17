"""The options of a training run, each written once: `TrunkSpec` (the trunk) and `TrainConfig`;
and their split into what the compiled program is made of (`Static`) and what it computes
with (`Traced`).

Every field carries its help text (and, where the values are a closed set, its choices) as
dataclass metadata; the command line of ``scripts/train.py`` is generated from it, so adding
an option means adding one field here.

    TrainConfig(trunk=TrunkSpec(depth=5, model="mlp"), epochs=3)
    TrainConfig().replace(depth=5, model="mlp", epochs=3)      # the same: names are routed
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .._checks import check_choice, check_int, check_positive
from .._errors import InputError
from ..trunk._activations import ACTIVATIONS
from ..trunk._trunk import MODELS

__all__ = [
    "TrunkSpec",
    "TrainConfig",
    "Static",
    "Traced",
    "static_of",
    "traced_of",
    "lift_of",
    "OPTIMIZERS",
    "SCHEDULES",
    "DTYPES",
]

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine", "warmup-cosine")
DTYPES = ("float32", "float64")


def option(default, help: str, choices=None):
    """A dataclass field whose metadata holds its help text and choices (read by the CLI)."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices})


@dataclasses.dataclass(frozen=True)
class TrunkSpec:
    """The residual trunk of a classifier: its map, size and initialisation.

    Fields (see `resflow.Trunk` for the map x ↦ x + h·act(W x + b) / act(W x + b)):
    `model`, `width` (None: the data dimension), `depth` (the initial, maximal depth T),
    `shared`, `h`, `activation`, `w_std` (W ~ N(0, w_std²/width)) and `remat` (checkpoint the
    trunk in √T segments: O(√T) stored states in the backward pass, ~1.1× the step time).
    """

    model: str = option("resnet", "x + h*act(Wx + b) (resnet) or act(Wx + b) (mlp)", MODELS)
    width: int | None = option(None, "trunk width; None: the data dimension (another width adds a linear lift)")
    depth: int = option(15, "initial number of layers (the maximum under depth adaptation)")
    shared: bool = option(True, "one W, b for all layers (--no-shared: one W_t, b_t per layer)")
    h: float = option(1.0, "Euler step size of the residual update")
    activation: str = option("sigmoid", "trunk activation", ACTIVATIONS)
    w_std: float = option(1.0, "trunk init scale: W ~ N(0, w_std^2 / width)")
    remat: bool = option(False, "checkpoint the trunk in sqrt(depth) segments (deep trunks: less memory)")

    def validate(self) -> TrunkSpec:
        """Check every field; returns self. **Raises:** `ValueError`/`TypeError` naming the field."""
        check_choice("model", self.model, MODELS)
        check_choice("activation", self.activation, ACTIVATIONS)
        if self.width is not None:
            check_int("width", self.width)
        check_int("depth", self.depth)
        check_positive("h", self.h)
        check_positive("w_std", self.w_std)
        for name in ("shared", "remat"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")
        return self


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Every option of a run (JSON-able; stored in checkpoints and metrics).

    `trunk` is the `TrunkSpec`; the other fields are the classifier around it (`lift`,
    `dtype`), the optimisation, depth adaptation (`resflow.training._depth`) and bookkeeping. Depth
    plateau: with `depth_plateau` = p > 0 a cut happens only when the best training loss of
    the last p epochs is no better than (1 − 0.01)× the best before them.
    """

    trunk: TrunkSpec = dataclasses.field(default_factory=TrunkSpec)
    lift: bool | None = option(None, "linear lift data -> width; None: only when the dimensions differ")
    dtype: str = option(
        "float32", "parameter and compute dtype (float64 needs jax_enable_x64; the CLI turns it on)", DTYPES
    )
    epochs: int = option(40, "training epochs")
    batch_size: int = option(64, "mini-batch size")
    optimizer: str = option("adam", "optax optimiser (sgd: momentum 0.9)", OPTIMIZERS)
    lr: float = option(3e-3, "learning rate")
    schedule: str = option("constant", "learning-rate schedule (warmup-cosine: 5% warm-up)", SCHEDULES)
    weight_decay: float = option(0.0, "decoupled weight decay (adam/adamw; sgd: L2)")
    clip_norm: float | None = option(None, "clip gradients to this global norm; None: off")
    depth_adapt: bool = option(False, "remove the last layer when its residuals converged (the paper's rule)")
    depth_tol: float = option(0.01, "cut when mean |r_T - r_{T-1}|_1 / N < tol")
    min_depth: int = option(1, "never cut below this depth")
    depth_warmup: int = option(5, "epochs trained before the first cut may happen")
    depth_plateau: int = option(0, "if > 0: cut only when the train loss stalled this many epochs")
    multi_cut: bool = option(False, "remove as many layers per epoch as the rule allows")
    fold_drift: bool = option(False, "fold the removed layers' mean output shift into the readout bias")
    eval_chunk: int = option(8192, "samples per jitted evaluation call (memory bound for large data)")
    # 100: <= 10 % overhead on the 3000-epoch circles run (docs/training.md); a run stopped by an
    # exception, Ctrl-C or SIGTERM saves its last chunk anyway, and checkpoint_seconds bounds what a
    # hard kill loses on runs whose epochs are long.
    checkpoint_every: int = option(
        100, "epochs between checkpoints (with an output folder; also at the end and when stopped)"
    )
    checkpoint_seconds: float = option(
        60.0, "also checkpoint at the first chunk end this many seconds (wall time) after the last checkpoint"
    )
    chunk_epochs: int = option(0, "epochs per compiled chunk; 0: automatic (about a second of work)")
    data_parallel: bool = option(False, "shard each batch over all local devices (parameters replicated)")

    def replace(self, **options) -> TrainConfig:
        """A copy with `options` changed; trunk options (``depth=5``) go into `trunk`.

        **Raises:** `TypeError` naming an unknown option.
        """
        trunk_names = {f.name for f in dataclasses.fields(TrunkSpec)}
        own = {f.name for f in dataclasses.fields(TrainConfig)}
        unknown = sorted(set(options) - trunk_names - own)
        if unknown:
            raise TypeError(f"unknown option(s) {unknown}; options are the fields of TrunkSpec and TrainConfig")
        trunk = {k: v for k, v in options.items() if k in trunk_names}
        rest = {k: v for k, v in options.items() if k not in trunk_names}
        return dataclasses.replace(self, trunk=dataclasses.replace(rest.pop("trunk", self.trunk), **trunk), **rest)

    @classmethod
    def resolve(cls, config, overrides: dict) -> TrainConfig:
        """`config` (None: the defaults) with `overrides` applied, validated: the options of a
        `resflow.fit` or `resflow.sweep` call.

        **Raises:** `TypeError` naming ``config`` when it is neither a `TrainConfig` nor None (a
        dict of options goes in as keywords, ``fit(data, key=key, **options)``); the errors of
        `replace` and `validate`.
        """
        if config is None:
            config = cls()
        elif not isinstance(config, TrainConfig):
            hint = (
                "; pass a dict of options as keywords, e.g. fit(data, key=key, **options)"
                if isinstance(config, dict)
                else ""
            )
            raise TypeError(f"config must be a resflow.TrainConfig or None, got {type(config).__name__}{hint}")
        return config.replace(**overrides).validate()

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """The inverse of `dataclasses.asdict` (a checkpoint's or metrics.json's ``config``)."""
        return cls(**dict(d, trunk=TrunkSpec(**d["trunk"])))

    def validate(self) -> TrainConfig:
        """Check every field; returns self. **Raises:** `ValueError`/`TypeError` naming the field."""
        if not isinstance(self.trunk, TrunkSpec):
            raise TypeError(f"trunk must be a TrunkSpec, got {type(self.trunk).__name__}")
        self.trunk.validate()
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_choice("dtype", self.dtype, DTYPES)
        for name in ("epochs", "batch_size", "min_depth", "eval_chunk", "checkpoint_every"):
            check_int(name, getattr(self, name))
        for name in ("depth_warmup", "depth_plateau", "chunk_epochs"):
            check_int(name, getattr(self, name), minimum=0)
        for name in ("lr", "depth_tol", "checkpoint_seconds"):
            check_positive(name, getattr(self, name))
        if not isinstance(self.data_parallel, bool):
            raise TypeError(f"data_parallel must be a bool, got {self.data_parallel!r}")
        if self.clip_norm is not None:
            check_positive("clip_norm", self.clip_norm)
        if not (isinstance(self.weight_decay, int | float) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be a number >= 0, got {self.weight_decay!r}")
        if self.min_depth > self.trunk.depth:
            raise ValueError(f"min_depth must be <= depth = {self.trunk.depth}, got {self.min_depth}")
        if self.dtype == "float64" and not jax.config.jax_enable_x64:
            raise ValueError('dtype="float64" needs jax.config.update("jax_enable_x64", True) (CLI: --dtype float64)')
        return self


# --------------------------------------------------------------------------------------------
# Static vs traced: the one place that says which options change the compiled program.
#
#   TrainConfig ──static_of──► Static  (hashable; a static argument of the jitted engine:
#                                        runs with equal Static share one compiled program)
#               ──traced_of──► Traced  (scalars, or (runs,) arrays that a sweep vmaps over)
#
# Neither erases nor re-injects anything: each option is read once, into one of the two.
# The options in neither are bookkeeping of the host loop (epochs under a constant schedule,
# checkpoint intervals, chunking, eval_chunk: the shapes of the data chunks).


@dataclasses.dataclass(frozen=True)
class Static:
    """The options (and data shapes) that change the compiled training program; hashable.

    - Network: `dim` (data), `n_classes`, `width`, `lift`, `depth` (the initial depth T; the
      trunk is scanned over T layers with a traced active depth), `shared`, `model`,
      `activation`, `remat`, `dtype`.
    - Optimisation: `optimizer`, `schedule`, `epochs` (the horizon of a decaying schedule; 0
      under ``schedule="constant"``, where it changes no code), `steps_per_epoch`,
      `batch_size`, `clip_norm`, `weight_decay` (on/off; its value is traced).
    - Depth adaptation (`resflow.training._depth.DepthRule`): `depth_adapt` (on/off),
      `min_depth`, `warmup`, `plateau`, `multi_cut`, `fold_drift`.
    - `sharding`: the `jax.sharding.NamedSharding` mini-batches are constrained to (data
      parallel), or None.
    - `span`: the number of layers the trunk is scanned over, ≤ `depth` (None: `depth`). After
      a cut, `resflow.fit` recompiles a long run at its new depth (`Setup.respan`), so that the
      layers it removed cost nothing; the values are those of the masked scan.
    """

    dim: int
    n_classes: int
    width: int
    lift: bool
    depth: int
    shared: bool
    model: str
    activation: str
    remat: bool
    dtype: str
    optimizer: str
    schedule: str
    epochs: int
    steps_per_epoch: int
    batch_size: int
    clip_norm: float | None
    weight_decay: bool
    depth_adapt: bool
    min_depth: int
    warmup: int
    plateau: int
    multi_cut: bool
    fold_drift: bool
    sharding: Any = None
    span: int | None = None


class Traced(NamedTuple):
    """The numeric options of a run: traced scalars (one run) or ``(runs,)`` arrays (a sweep).

    `h` and `w_std` are read once, when the network is initialised: from then on h is the
    trunk's own leaf (``network.trunk.h``, not trained) and w_std has scaled ``W``.
    """

    lr: jax.Array
    h: jax.Array
    w_std: jax.Array
    depth_tol: jax.Array
    weight_decay: jax.Array


def lift_of(config: TrainConfig, dim: int) -> tuple[int, bool]:
    """The trunk width and whether a linear lift maps `dim`-dimensional data to it.

    Width None is the data dimension; lift None means a lift only when the two differ.

    **Raises:** `InputError` for ``lift=False`` with a width other than `dim` (without a lift
    the trunk runs on the data themselves).
    """
    width = config.trunk.width or dim
    use_lift = config.lift if config.lift is not None else dim != width
    if not use_lift and dim != width:
        raise InputError(f"lift=False needs width equal to the data dimension {dim} (or width None), got width {width}")
    return width, use_lift


def static_of(config: TrainConfig, dim: int, n_classes: int, n_train: int, sharding=None) -> Static:
    """The `Static` part of `config` for data of dimension `dim`, `n_classes` classes and
    `n_train` training samples. **Raises:** `InputError` as `lift_of`."""
    width, lift = lift_of(config, dim)
    t = config.trunk
    return Static(
        dim=dim,
        n_classes=n_classes,
        width=width,
        lift=lift,
        depth=t.depth,
        shared=t.shared,
        model=t.model,
        activation=t.activation,
        remat=t.remat,
        dtype=config.dtype,
        optimizer=config.optimizer,
        schedule=config.schedule,
        epochs=0 if config.schedule == "constant" else config.epochs,
        steps_per_epoch=-(-n_train // config.batch_size),
        batch_size=config.batch_size,
        clip_norm=config.clip_norm,
        weight_decay=config.weight_decay > 0,
        depth_adapt=config.depth_adapt,
        min_depth=config.min_depth,
        warmup=config.depth_warmup,
        plateau=config.depth_plateau,
        multi_cut=config.multi_cut,
        fold_drift=config.fold_drift,
        sharding=sharding,
    )


def traced_of(configs, dtype) -> Traced:
    """The `Traced` part of one config (scalars) or of a list of configs (``(runs,)`` arrays)."""
    one = isinstance(configs, TrainConfig)
    configs = [configs] if one else list(configs)
    values = {
        "lr": [c.lr for c in configs],
        "h": [c.trunk.h for c in configs],
        "w_std": [c.trunk.w_std for c in configs],
        "depth_tol": [c.depth_tol for c in configs],
        "weight_decay": [c.weight_decay for c in configs],
    }
    arrays = {k: jnp.asarray(v, dtype) for k, v in values.items()}
    return Traced(**({k: a[0] for k, a in arrays.items()} if one else arrays))
