import abc

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float, PyTree

from .._custom_types import Scalar


class AbstractModel(eqx.Module):
    """A candidate solution: maps one scalar time `t` to the state `y(t)`.

    `predict(ts)` gives the whole trajectory at once: a `PINN` evaluates its network
    at every time (a `vmap`), a `NeuralODE` integrates once through all of them.

    A model that is a differentiable function of `t` is fit by the physics
    residual: [`odefit.fit`][] asks the model what it can do, through
    `residual_scale` and `conditions_built_in`, never which class it is, so a
    user's own subclass is treated like a built-in one.
    """

    @abc.abstractmethod
    def __call__(self, t: Scalar) -> Array:
        """The state at time `t`."""

    @abc.abstractmethod
    def predict(self, ts: Float[Array, " times"]) -> Float[Array, "times ..."]:
        """The states at increasing times `ts`, stacked along a leading axis."""

    @abc.abstractmethod
    def trainable(self) -> PyTree[bool]:
        """A filter spec (a prefix PyTree of bools) selecting the trained leaves."""

    def residual_scale(self) -> Float[Array, "*state"] | None:
        """The typical size of each state component: the physics residual is
        measured in units of `residual_scale() / (t1 - t0)**order`. `None` means
        the model is not fit by the physics residual at all (a
        [`odefit.NeuralODE`][] is fit to data). Default: 1 (each component in its
        own units)."""
        return jnp.ones(())

    def conditions_built_in(self) -> bool:
        """Whether the model meets the problem's initial/boundary conditions by
        construction; if not, `fit` adds them as a soft loss term. Default: no."""
        return False

    def check_problem(self, problem, *, name: str = "`model`") -> None:
        """Raises `ValueError` if this model cannot represent `problem`'s solution
        (another interval, state shape or dtype). `name` names the model in the
        message. Default: no check."""
