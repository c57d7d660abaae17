"""resflow: residual networks as discrete dynamical systems, in JAX.

x_{t+1} = x_t + h·σ(W x_t + b) is an explicit Euler map; its residuals r_t = σ(W x_t + b)
obey r_{t+1} = σ(σ⁻¹(r_t) + h W r_t), and the output is x_T = x_0 + h Σ_t r_t.
"""

from ._errors import InputError as InputError
from .analysis import attractor_regime as attractor_regime
from .analysis import class_mean_spectra as class_mean_spectra
from .analysis import class_separability as class_separability
from .analysis import injection_response as injection_response
from .analysis import interaction_coefficients as interaction_coefficients
from .analysis import interaction_summary as interaction_summary
from .analysis import linear_probe as linear_probe
from .analysis import long_run_statistics as long_run_statistics
from .analysis import network_covariant_vectors as network_covariant_vectors
from .analysis import network_lyapunov_spectrum as network_lyapunov_spectrum
from .analysis import noise_accuracy as noise_accuracy
from .analysis import perturbation_growth as perturbation_growth
from .analysis import readout_alignment as readout_alignment
from .analysis import residual_fixed_points as residual_fixed_points
from .analysis import residual_jacobians as residual_jacobians
from .analysis import search_residual_fixed_points as search_residual_fixed_points
from .analysis import state_jacobians as state_jacobians
from .analysis import steady_state as steady_state
from .analysis import transient_accuracy as transient_accuracy
from .continuous import covariant_lyapunov_vectors_flow as covariant_lyapunov_vectors_flow
from .continuous import euler_convergence as euler_convergence
from .continuous import ode_lyapunov_spectrum as ode_lyapunov_spectrum
from .continuous import solve_depth as solve_depth
from .continuous import solve_residuals as solve_residuals
from .dynamics import FixedPoints as FixedPoints
from .dynamics import covariant_lyapunov_vectors as covariant_lyapunov_vectors
from .dynamics import find_fixed_points as find_fixed_points
from .dynamics import find_slow_points as find_slow_points
from .dynamics import jacobian_spectrum as jacobian_spectrum
from .dynamics import kaplan_yorke_dimension as kaplan_yorke_dimension
from .dynamics import lyapunov_spectrum as lyapunov_spectrum
from .dynamics import lyapunov_spectrum_from_jacobians as lyapunov_spectrum_from_jacobians
from .dynamics import lyapunov_spectrum_from_products as lyapunov_spectrum_from_products
from .dynamics import unique_fixed_points as unique_fixed_points
from .training import Dataset as Dataset
from .training import Run as Run
from .training import SweepResult as SweepResult
from .training import TrainConfig as TrainConfig
from .training import TrunkSpec as TrunkSpec
from .training import accuracy as accuracy
from .training import evaluate as evaluate
from .training import fit as fit
from .training import load_dataset as load_dataset
from .training import load_run as load_run
from .training import predict as predict
from .training import sweep as sweep
from .trunk import Network as Network
from .trunk import Trunk as Trunk
from .trunk import forward as forward
from .trunk import preactivations as preactivations
from .trunk import reconstruct_output as reconstruct_output
from .trunk import residual_recurrence as residual_recurrence
from .trunk import residuals as residuals
from .trunk import running_integral as running_integral
from .trunk import trajectory as trajectory

__version__ = "0.1.0"


def __getattr__(name):
    # `resflow.plots` without importing matplotlib for users who never plot.
    if name == "plots":
        import importlib

        return importlib.import_module(".plots", __name__)
    raise AttributeError(f"module 'resflow' has no attribute {name!r}")
