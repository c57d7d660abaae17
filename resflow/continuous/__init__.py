"""The continuous-depth limit dx/dt = σ(W x + b), solved with diffrax."""

from ._covariant import covariant_lyapunov_vectors_flow as covariant_lyapunov_vectors_flow
from ._lyapunov import ode_lyapunov_spectrum as ode_lyapunov_spectrum
from ._solve import Convergence as Convergence
from ._solve import DepthSolution as DepthSolution
from ._solve import euler_convergence as euler_convergence
from ._solve import solve_depth as solve_depth
from ._solve import solve_residuals as solve_residuals
