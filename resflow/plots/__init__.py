"""Figures: one function per figure, each returning a matplotlib Figure (optionally saved).

Uses the non-interactive Agg backend unless the user already chose one, so nothing needs a
display.
"""

import matplotlib

if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg", "ps", "cairo") and not matplotlib.is_interactive():
    matplotlib.use("Agg")

from .training import plot_depth_history as plot_depth_history  # noqa: E402
from .training import plot_training_curves as plot_training_curves  # noqa: E402
