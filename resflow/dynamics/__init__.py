"""Generic tools for any map or vector field: Jacobian spectra, Lyapunov spectra (maps and flows),
covariant Lyapunov vectors, fixed points (one result type, one stability classifier, several methods)."""

from ._covariant import CovariantVectors as CovariantVectors
from ._covariant import covariant_lyapunov_vectors as covariant_lyapunov_vectors
from ._covariant import kaplan_yorke_dimension as kaplan_yorke_dimension
from ._covariant import pairwise_angles as pairwise_angles
from ._covariant import subspace_angles as subspace_angles
from ._fixed_points import FixedPoints as FixedPoints
from ._fixed_points import find_fixed_points as find_fixed_points
from ._fixed_points import find_slow_points as find_slow_points
from ._fixed_points import unique_fixed_points as unique_fixed_points
from ._lyapunov import LyapunovResult as LyapunovResult
from ._lyapunov import lyapunov_spectrum as lyapunov_spectrum
from ._lyapunov import lyapunov_spectrum_from_jacobians as lyapunov_spectrum_from_jacobians
from ._lyapunov import lyapunov_spectrum_from_products as lyapunov_spectrum_from_products
from ._spectra import Spectrum as Spectrum
from ._spectra import jacobian_spectrum as jacobian_spectrum
from ._stability import Stability as Stability
from ._stability import classify_stability as classify_stability
from ._stability import fixed_point_bound as fixed_point_bound
