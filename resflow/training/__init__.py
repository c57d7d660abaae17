"""Training: configs, the compiled engine, depth adaptation, `fit`, `sweep`, trained runs
(`Run`, run folders), checkpoints, data sets, distributed settings."""

from .._errors import RunError as RunError
from ._config import TrainConfig as TrainConfig
from ._config import TrunkSpec as TrunkSpec
from ._dataset import Dataset as Dataset
from ._datasets import load_dataset as load_dataset
from ._depth import depth_rule as depth_rule
from ._depth import fold_drift as fold_drift
from ._depth import residual_changes as residual_changes
from ._fit import fit as fit
from ._predict import accuracy as accuracy
from ._predict import evaluate as evaluate
from ._predict import predict as predict
from ._runs import Run as Run
from ._runs import load_run as load_run
from ._sweep import SweepResult as SweepResult
from ._sweep import sweep as sweep
