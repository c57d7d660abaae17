"""resflow: residual networks as discrete dynamical systems, in JAX.

x_{t+1} = x_t + h·σ(W x_t + b) is an explicit Euler map; its residuals r_t = σ(W x_t + b)
obey r_{t+1} = σ(σ⁻¹(r_t) + h W r_t), and the output is x_T = x_0 + h Σ_t r_t.
"""

from .activations import get_activation as get_activation
from .attractors import ResidualFixedPoints as ResidualFixedPoints
from .attractors import SteadyState as SteadyState
from .attractors import fixed_point_pattern as fixed_point_pattern
from .attractors import interior_fixed_points as interior_fixed_points
from .attractors import residual_fixed_points as residual_fixed_points
from .attractors import steady_state as steady_state
from .continuous import Convergence as Convergence
from .continuous import DepthSolution as DepthSolution
from .continuous import euler_convergence as euler_convergence
from .continuous import ode_lyapunov_spectrum as ode_lyapunov_spectrum
from .continuous import solve_depth as solve_depth
from .continuous import solve_residuals as solve_residuals
from .covariant import CovariantVectors as CovariantVectors
from .covariant import covariant_lyapunov_vectors as covariant_lyapunov_vectors
from .covariant import covariant_lyapunov_vectors_flow as covariant_lyapunov_vectors_flow
from .covariant import kaplan_yorke_dimension as kaplan_yorke_dimension
from .covariant import network_covariant_vectors as network_covariant_vectors
from .data import Dataset as Dataset
from .data import load_dataset as load_dataset
from .depth import depth_rule as depth_rule
from .depth import fold_drift as fold_drift
from .depth import residual_changes as residual_changes
from .dynamics import FixedPoints as FixedPoints
from .dynamics import LyapunovResult as LyapunovResult
from .dynamics import Spectrum as Spectrum
from .dynamics import Stability as Stability
from .dynamics import find_fixed_points as find_fixed_points
from .dynamics import jacobian_spectrum as jacobian_spectrum
from .dynamics import lyapunov_spectrum as lyapunov_spectrum
from .dynamics import lyapunov_spectrum_from_jacobians as lyapunov_spectrum_from_jacobians
from .dynamics import lyapunov_spectrum_from_products as lyapunov_spectrum_from_products
from .dynamics import unique_fixed_points as unique_fixed_points
from .errors import InputError as InputError
from .fixed_point_search import ClassSpectra as ClassSpectra
from .fixed_point_search import FixedPointSearch as FixedPointSearch
from .fixed_point_search import class_mean_spectra as class_mean_spectra
from .fixed_point_search import readout_alignment as readout_alignment
from .fixed_point_search import search_residual_fixed_points as search_residual_fixed_points
from .interactions import InteractionSummary as InteractionSummary
from .interactions import PairClass as PairClass
from .interactions import interaction_coefficients as interaction_coefficients
from .interactions import interaction_summary as interaction_summary
from .interactions import pair_classes as pair_classes
from .jacobians import network_lyapunov_spectrum as network_lyapunov_spectrum
from .jacobians import residual_jacobian_product as residual_jacobian_product
from .jacobians import residual_jacobians as residual_jacobians
from .jacobians import state_jacobian_product as state_jacobian_product
from .jacobians import state_jacobians as state_jacobians
from .layers import Classifier as Classifier
from .layers import ResidualTrunk as ResidualTrunk
from .long_run import LongRun as LongRun
from .long_run import Regime as Regime
from .long_run import attractor_regime as attractor_regime
from .long_run import long_run_memory as long_run_memory
from .long_run import long_run_statistics as long_run_statistics
from .model import Trunk as Trunk
from .model import forward as forward
from .model import trajectory as trajectory
from .network import Network as Network
from .perturbation import InjectionResponse as InjectionResponse
from .perturbation import PerturbationGrowth as PerturbationGrowth
from .perturbation import injection_response as injection_response
from .perturbation import linear_growth as linear_growth
from .perturbation import nonlinear_growth as nonlinear_growth
from .perturbation import perturbation_growth as perturbation_growth
from .perturbation import random_directions as random_directions
from .residuals import ConditioningWarning as ConditioningWarning
from .residuals import logit as logit
from .residuals import preactivation_recurrence as preactivation_recurrence
from .residuals import preactivations as preactivations
from .residuals import reconstruct_output as reconstruct_output
from .residuals import residual_recurrence as residual_recurrence
from .residuals import residuals as residuals
from .residuals import running_integral as running_integral
from .robustness import NoiseRobustness as NoiseRobustness
from .robustness import noise_accuracy as noise_accuracy
from .runs import Run as Run
from .runs import RunError as RunError
from .runs import load_run as load_run
from .separability import ProbeResult as ProbeResult
from .separability import Separability as Separability
from .separability import class_separability as class_separability
from .separability import fisher_ratio as fisher_ratio
from .separability import linear_probe as linear_probe
from .slow_points import SlowPoints as SlowPoints
from .slow_points import find_slow_points as find_slow_points
from .spec import TrainConfig as TrainConfig
from .spec import TrunkSpec as TrunkSpec
from .sweep import SweepResult as SweepResult
from .sweep import sweep as sweep
from .train import TrainResult as TrainResult
from .train import accuracy as accuracy
from .train import evaluate as evaluate
from .train import fit as fit
from .train import predict as predict
from .transients import TransientAccuracy as TransientAccuracy
from .transients import transient_accuracy as transient_accuracy

__version__ = "0.1.0"


def __getattr__(name):
    # `resflow.plots` without importing matplotlib for users who never plot.
    if name == "plots":
        import importlib

        return importlib.import_module(".plots", __name__)
    raise AttributeError(f"module 'resflow' has no attribute {name!r}")
