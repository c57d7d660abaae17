"""Generic tools for any map or vector field: Jacobian spectra, Lyapunov spectra (maps and flows),
covariant Lyapunov vectors, fixed points."""

from ._core import FixedPoints as FixedPoints
from ._core import LyapunovResult as LyapunovResult
from ._core import Spectrum as Spectrum
from ._core import Stability as Stability
from ._core import find_fixed_points as find_fixed_points
from ._core import jacobian_spectrum as jacobian_spectrum
from ._core import lyapunov_spectrum as lyapunov_spectrum
from ._core import lyapunov_spectrum_from_jacobians as lyapunov_spectrum_from_jacobians
from ._core import lyapunov_spectrum_from_products as lyapunov_spectrum_from_products
from ._core import unique_fixed_points as unique_fixed_points
from ._covariant import CovariantVectors as CovariantVectors
from ._covariant import covariant_lyapunov_vectors as covariant_lyapunov_vectors
from ._covariant import covariant_lyapunov_vectors_flow as covariant_lyapunov_vectors_flow
from ._covariant import kaplan_yorke_dimension as kaplan_yorke_dimension
from ._covariant import network_covariant_vectors as network_covariant_vectors
from ._covariant import pairwise_angles as pairwise_angles
from ._covariant import subspace_angles as subspace_angles
