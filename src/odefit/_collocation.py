"""Where the residual is evaluated: fixed grids and points redrawn every step."""

import abc
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float

from ._custom_types import Key

ResidualFn = Callable[[Float[Array, " n"]], Float[Array, " n"]]


def _check_count(n, name: str = "n") -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"`{name}` must be an integer >= 1, got {n!r}.")
    return n


class AbstractCollocation(eqx.Module):
    """Chooses the collocation points for each training step.

    `init` returns a state (any PyTree, threaded through the compiled loop);
    `sample` returns this step's points in $[t_0, t_1]$ and the next state.
    `residual_fn` maps points to the size of the ODE residual there, for methods
    that adapt to it.
    """

    @abc.abstractmethod
    def init(self, t0: float, t1: float, dtype) -> Any:
        """The initial state."""

    @abc.abstractmethod
    def sample(
        self,
        state: Any,
        t0: float,
        t1: float,
        residual_fn: ResidualFn,
        *,
        key: Key,
    ) -> tuple[Float[Array, " n"], Any]:
        """This step's points and the next state."""


class Grid(AbstractCollocation):
    r"""`n` fixed, evenly spaced points on $[t_0, t_1]$, endpoints included.

    The right choice for quasi-Newton and least-squares trainers (L-BFGS,
    Levenberg–Marquardt), which need the same objective from step to step.

    **Example:** `odefit.fit(problem, model, steps=500, collocation=odefit.Grid(256),
    optimizer=odefit.LevenbergMarquardt(), key=key)`
    """

    n: int = eqx.field(static=True)

    def __init__(self, n: int):
        self.n = _check_count(n)

    def init(self, t0, t1, dtype):
        return jnp.linspace(t0, t1, self.n, dtype=dtype)

    def sample(self, state, t0, t1, residual_fn, *, key):
        return state, state


class Uniform(AbstractCollocation):
    r"""`n` points drawn uniformly on $[t_0, t_1]$, redrawn at every step.

    Fresh points every step make the loss an unbiased estimate of the integral of
    the squared residual over the whole interval, so the network cannot overfit a
    fixed set of points. The default for first-order optimisers such as Adam.
    """

    n: int = eqx.field(static=True)

    def __init__(self, n: int):
        self.n = _check_count(n)

    def init(self, t0, t1, dtype):
        return jnp.zeros((), dtype)

    def sample(self, state, t0, t1, residual_fn, *, key):
        ts = jr.uniform(key, (self.n,), state.dtype, minval=t0, maxval=t1)
        return ts, state
