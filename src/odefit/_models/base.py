import abc

import equinox as eqx
from jaxtyping import Array, Float, PyTree

from .._custom_types import Scalar


class AbstractModel(eqx.Module):
    """A candidate solution: maps one scalar time `t` to the state `y(t)`.

    `predict(ts)` gives the whole trajectory at once: a `PINN` evaluates its network
    at every time (a `vmap`), a `NeuralODE` integrates once through all of them.
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
