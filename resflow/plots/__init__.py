"""Figures: one `plot_*` function per figure, each returning a matplotlib Figure (`save=` writes it).

Uses the non-interactive Agg backend unless the user already chose one, so nothing needs a
display.
"""

import matplotlib

if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg", "ps", "cairo") and not matplotlib.is_interactive():
    matplotlib.use("Agg")

from .continuous import plot_convergence as plot_convergence  # noqa: E402
from .dynamics import plot_eigenvalue_cloud as plot_eigenvalue_cloud  # noqa: E402
from .dynamics import plot_lyapunov_convergence as plot_lyapunov_convergence  # noqa: E402
from .long_run import plot_class_residual_norms as plot_class_residual_norms  # noqa: E402
from .long_run import plot_residual_statistics as plot_residual_statistics  # noqa: E402
from .long_run import plot_transient_accuracy as plot_transient_accuracy  # noqa: E402
from .network import plot_attractor_portrait as plot_attractor_portrait  # noqa: E402
from .network import plot_interaction_matrix as plot_interaction_matrix  # noqa: E402
from .network import plot_recurrence_accuracy as plot_recurrence_accuracy  # noqa: E402
from .network import plot_residual_trajectories as plot_residual_trajectories  # noqa: E402
from .network import plot_steady_state as plot_steady_state  # noqa: E402
from .perturbation import plot_injection_response as plot_injection_response  # noqa: E402
from .perturbation import plot_noise_robustness as plot_noise_robustness  # noqa: E402
from .perturbation import plot_perturbation_growth as plot_perturbation_growth  # noqa: E402
from .perturbation import plot_separability as plot_separability  # noqa: E402
from .sweep import plot_sweep_depth_histories as plot_sweep_depth_histories  # noqa: E402
from .sweep import plot_sweep_distribution as plot_sweep_distribution  # noqa: E402
from .training import plot_depth_history as plot_depth_history  # noqa: E402
from .training import plot_timings as plot_timings  # noqa: E402
from .training import plot_training_curves as plot_training_curves  # noqa: E402
