import abc

import equinox as eqx
from jaxtyping import Array, PyTree

from .._custom_types import Scalar


class AbstractModel(eqx.Module):
    """A candidate solution: maps one scalar time `t` to the state `y(t)`."""

    @abc.abstractmethod
    def __call__(self, t: Scalar) -> Array:
        """The state at time `t`."""

    @abc.abstractmethod
    def trainable(self) -> PyTree[bool]:
        """A filter spec (a prefix PyTree of bools) selecting the trained leaves."""
