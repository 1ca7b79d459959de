"""Type aliases shared across odefit's public signatures."""

from collections.abc import Callable
from typing import Any

from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, PyTree

Scalar = Float[Array, ""]
ScalarLike = float | int | Float[ArrayLike, ""]
State = Float[Array, "*state"]
Times = Float[Array, " times"]
Args = PyTree[Any]
VectorField = Callable[[Scalar, State, Args], State]
Acceleration = Callable[[Scalar, State, State, Args], State]
Key = PRNGKeyArray

__all__ = [
    "Array",
    "ArrayLike",
    "Args",
    "Acceleration",
    "Key",
    "Scalar",
    "ScalarLike",
    "State",
    "Times",
    "VectorField",
]
