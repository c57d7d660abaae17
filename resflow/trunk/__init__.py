"""The map x_{t+1} = x_t + h·σ(W x_t + b): `Trunk`, its trajectories and residuals, and `Network`
(lift → trunk → readout)."""

from ._activations import get_activation as get_activation
from ._network import Network as Network
from ._residuals import ConditioningWarning as ConditioningWarning
from ._residuals import logit as logit
from ._residuals import preactivation_recurrence as preactivation_recurrence
from ._residuals import preactivations as preactivations
from ._residuals import reconstruct_output as reconstruct_output
from ._residuals import residual_recurrence as residual_recurrence
from ._residuals import residuals as residuals
from ._residuals import running_integral as running_integral
from ._trunk import Trunk as Trunk
from ._trunk import forward as forward
from ._trunk import trajectory as trajectory
