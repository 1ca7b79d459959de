"""odefit: fit neural networks to solutions of ordinary differential equations, in
pure-functional JAX."""

from ._causal import CausalWeighting as CausalWeighting
from ._checkpoint import load as load, save as save
from ._collocation import (
    AbstractCollocation as AbstractCollocation,
    Adaptive as Adaptive,
    Grid as Grid,
    Uniform as Uniform,
)
from ._conditions import (
    AbstractCondition as AbstractCondition,
    Dirichlet as Dirichlet,
    InitialValue as InitialValue,
    InitialValueAndSlope as InitialValueAndSlope,
)
from ._derivatives import derivatives as derivatives
from ._ensemble import (
    EnsembleResult as EnsembleResult,
    fit_ensemble as fit_ensemble,
)
from ._error_estimate import (
    ErrorEstimate as ErrorEstimate,
    error_estimate as error_estimate,
)
from ._family import Family as Family
from ._fit import fit as fit
from ._lbfgs import LBFGS as LBFGS
from ._least_squares import (
    GaussNewton as GaussNewton,
    LevenbergMarquardt as LevenbergMarquardt,
)
from ._loop import CallbackInfo as CallbackInfo
from ._losses import (
    loss as loss,
    loss_terms as loss_terms,
    physics_residual as physics_residual,
)
from ._marching import (
    MarchingResult as MarchingResult,
    PiecewiseSolution as PiecewiseSolution,
    auto_breakpoints as auto_breakpoints,
    fit_marching as fit_marching,
)
from ._metrics import max_abs_error as max_abs_error, relative_l2 as relative_l2
from ._models.base import AbstractModel as AbstractModel
from ._models.networks import (
    FourierMLP as FourierMLP,
    ResidualMLP as ResidualMLP,
)
from ._models.neural_ode import NeuralODE as NeuralODE
from ._models.pinn import PINN as PINN
from ._observations import Observations as Observations
from ._plotting import plot_fit as plot_fit
from ._problems import (
    BVP as BVP,
    IVP as IVP,
    AbstractProblem as AbstractProblem,
    SecondOrderIVP as SecondOrderIVP,
)
from ._result import FitResult as FitResult, join_results as join_results
from ._stages import fit_stages as fit_stages
from ._tolerance import (
    ToleranceResult as ToleranceResult,
    fit_to_tolerance as fit_to_tolerance,
)
from ._trainers import AbstractTrainer as AbstractTrainer
from ._uncertainty import (
    ParameterIntervals as ParameterIntervals,
    classical_intervals as classical_intervals,
    parameter_intervals as parameter_intervals,
)
from ._unknown import Unknown as Unknown
from ._varies import Varies as Varies

__version__ = "0.1.0"
