"""Analyses of a trained network, each a pure function of a `Trunk` (or `Network`) and inputs:
Jacobians, attractors and regimes, fixed-point search, slow points, interactions,
perturbations, separability, transients, long runs, noise robustness."""

from ._attractors import fixed_point_pattern as fixed_point_pattern
from ._attractors import interior_fixed_points as interior_fixed_points
from ._attractors import residual_fixed_points as residual_fixed_points
from ._class_spectra import ClassSpectra as ClassSpectra
from ._class_spectra import class_mean_spectra as class_mean_spectra
from ._class_spectra import readout_alignment as readout_alignment
from ._covariant import network_covariant_vectors as network_covariant_vectors
from ._fixed_point_search import search_residual_fixed_points as search_residual_fixed_points
from ._interactions import InteractionSummary as InteractionSummary
from ._interactions import PairClass as PairClass
from ._interactions import interaction_coefficients as interaction_coefficients
from ._interactions import interaction_summary as interaction_summary
from ._interactions import pair_classes as pair_classes
from ._jacobians import network_lyapunov_spectrum as network_lyapunov_spectrum
from ._jacobians import residual_jacobian_product as residual_jacobian_product
from ._jacobians import residual_jacobians as residual_jacobians
from ._jacobians import state_jacobian_product as state_jacobian_product
from ._jacobians import state_jacobians as state_jacobians
from ._long_run import LongRun as LongRun
from ._long_run import Regime as Regime
from ._long_run import attractor_regime as attractor_regime
from ._long_run import long_run_memory as long_run_memory
from ._long_run import long_run_statistics as long_run_statistics
from ._perturbation import InjectionResponse as InjectionResponse
from ._perturbation import PerturbationGrowth as PerturbationGrowth
from ._perturbation import injection_response as injection_response
from ._perturbation import linear_growth as linear_growth
from ._perturbation import nonlinear_growth as nonlinear_growth
from ._perturbation import perturbation_growth as perturbation_growth
from ._perturbation import random_directions as random_directions
from ._robustness import NoiseRobustness as NoiseRobustness
from ._robustness import noise_accuracy as noise_accuracy
from ._separability import ProbeResult as ProbeResult
from ._separability import Separability as Separability
from ._separability import class_separability as class_separability
from ._separability import fisher_ratio as fisher_ratio
from ._separability import linear_probe as linear_probe
from ._steady_state import SteadyState as SteadyState
from ._steady_state import steady_state as steady_state
from ._transients import TransientAccuracy as TransientAccuracy
from ._transients import transient_accuracy as transient_accuracy
