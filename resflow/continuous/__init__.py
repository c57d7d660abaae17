"""The continuous-depth limit dx/dt = σ(W x + b), solved with diffrax."""

from ._ode import Convergence as Convergence
from ._ode import DepthSolution as DepthSolution
from ._ode import euler_convergence as euler_convergence
from ._ode import ode_lyapunov_spectrum as ode_lyapunov_spectrum
from ._ode import solve_depth as solve_depth
from ._ode import solve_residuals as solve_residuals
