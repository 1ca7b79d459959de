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
    r"""`n` points drawn uniformly at random, redrawn at every step.

    Fresh points every step make the loss an unbiased estimate of the integral of
    the squared residual, so the network cannot overfit a fixed set of points. The
    default for first-order optimisers such as Adam.

    With `warmup > 0` the points are drawn on a window $[t_0, t_0 + f_k (t_1 - t_0)]$
    that grows linearly from the fraction $f_0$ = `start` to the whole interval
    over the first `warmup` steps: the network learns the solution near $t_0$
    before it is asked about later times. This respects causality — without it a
    long horizon (logistic growth on [0, 10], say) often converges to a function
    with a small residual that is not the solution.

    **Arguments:**

    - `n`: points per step.
    - `warmup`: steps over which the window grows to the whole interval
        (0: always the whole interval).
    - `start`: the window's initial fraction of the interval, in (0, 1].
    """

    n: int = eqx.field(static=True)
    warmup: int = eqx.field(static=True)
    start: float = eqx.field(static=True)

    def __init__(self, n: int, *, warmup: int = 0, start: float = 0.2):
        self.n = _check_count(n)
        if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
            raise ValueError(f"`warmup` must be an integer >= 0, got {warmup!r}.")
        if isinstance(start, bool) or not (0.0 < start <= 1.0):
            raise ValueError(f"`start` must be in (0, 1], got {start!r}.")
        self.warmup = warmup
        self.start = float(start)

    def init(self, t0, t1, dtype):
        # The state counts steps (for the growing window) in the problem's dtype,
        # which also fixes the dtype of the points.
        return jnp.zeros((), dtype)

    def sample(self, state, t0, t1, residual_fn, *, key):
        u = jr.uniform(key, (self.n,), state.dtype)
        if self.warmup > 0:
            progress = jnp.minimum(state / self.warmup, 1.0)
            u = u * (self.start + (1.0 - self.start) * progress)
        return t0 + u * (t1 - t0), state + 1
