"""Where the residual is evaluated: fixed grids and points redrawn every step."""

import abc
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, Int

from . import _memory
from ._custom_types import Key
from ._validate import INT32_MAX, check_float, check_int

ResidualFn = Callable[[Float[Array, " n"]], Float[Array, " n"]]


def _check_count(n, name: str = "n", least: int = 1) -> int:
    """A count (of points, steps, ...): a Python or NumPy integer >= `least`."""
    return check_int(n, name, least)


def _check_points(n, name: str = "n") -> int:
    """A number of collocation points per step, which must fit in memory."""
    n = _check_count(n, name)
    _memory.check_points(n, name)
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

    def redraws(self) -> bool:
        """Whether the points change from step to step. For a family of ODEs
        (see [`odefit.Varies`][]) the members are then redrawn with them;
        otherwise they are a fixed set, as least-squares trainers need."""
        return True


class Grid(AbstractCollocation):
    r"""`n` fixed, evenly spaced points on $[t_0, t_1]$, endpoints included.

    The right choice for quasi-Newton and least-squares trainers (L-BFGS,
    Levenberg–Marquardt), which need the same objective from step to step.

    **Example:** `odefit.fit(problem, model, steps=500, collocation=odefit.Grid(256),
    optimizer=odefit.LevenbergMarquardt(), key=key)`
    """

    n: int = eqx.field(static=True)

    def __init__(self, n: int):
        self.n = _check_points(n)

    def init(self, t0, t1, dtype):
        return jnp.linspace(t0, t1, self.n, dtype=dtype)

    def sample(self, state, t0, t1, residual_fn, *, key):
        return state, state

    def redraws(self) -> bool:
        return False


class UniformState(eqx.Module):
    """The state of [`odefit.Uniform`][] between steps."""

    # Steps taken, counted in integers up to `warmup` (where the window is
    # whole) and no further, so it can neither overflow nor freeze: a count
    # kept in float32 stops growing at 2**24, in float16 at 2048.
    step: Int[Array, ""]
    # The points' dtype (the problem's), carried by a zero-dimensional array.
    like: Float[Array, ""]


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
        self.n = _check_points(n)
        # The step count is an int32 (JAX's integer without x64).
        self.warmup = check_int(warmup, "warmup", 0, INT32_MAX)
        self.start = check_float(
            start, "start", 0.0, 1.0, open_minimum=True, what="in (0, 1]"
        )

    def init(self, t0, t1, dtype):
        return UniformState(step=jnp.zeros((), jnp.int32), like=jnp.zeros((), dtype))

    def sample(self, state, t0, t1, residual_fn, *, key):
        dtype = state.like.dtype
        u = jr.uniform(key, (self.n,), dtype)
        if self.warmup > 0:
            # In at least float32: a float16 cannot count past 2048.
            wide = jnp.float32 if jnp.finfo(dtype).bits < 32 else dtype
            progress = jnp.minimum(state.step.astype(wide) / self.warmup, 1.0)
            fraction = self.start + (1.0 - self.start) * progress
            u = u * fraction.astype(dtype)
        step = jnp.minimum(state.step + 1, self.warmup).astype(jnp.int32)
        return t0 + u * (t1 - t0), UniformState(step=step, like=state.like)


class Adaptive(AbstractCollocation):
    r"""Residual-based adaptive collocation: `n` points redrawn every `every` steps
    where the residual is large.

    Every `every` steps, `candidates` points are drawn uniformly on
    $[t_0, t_1]$, the residual size $|R(t)|$ of the current model is evaluated at
    them, and `n` of them are kept, drawn without replacement with probability

    $$p(t) \propto \frac{|R(t)|^k}{\operatorname{mean} |R|^k} + c,$$

    $k$ = `exponent`, $c$ = `floor` (the uniform part that keeps every region
    sampled). Between redraws the points stay fixed, so least-squares trainers
    and L-BFGS see one objective for `every` steps at a time. The first points
    are an even grid. Everything runs inside the compiled loop.

    **Arguments:**

    - `n`: points per step.
    - `every`: steps between redraws.
    - `candidates`: uniform candidates per redraw (default `8 * n`).
    - `exponent`: $k$; larger concentrates the points more on large residuals.
    - `floor`: $c \ge 0$.

    **Example:** `odefit.fit(problem, model, steps=1000, collocation=
    odefit.Adaptive(256, every=100), optimizer=odefit.LevenbergMarquardt(), key=key)`

    **Reference:** Wu, Zhu, Tan, Kartha & Lu, "A comprehensive study of non-adaptive
    and residual-based adaptive sampling for physics-informed neural networks"
    (2023), https://doi.org/10.1016/j.cma.2022.115671
    """

    n: int = eqx.field(static=True)
    every: int = eqx.field(static=True)
    candidates: int = eqx.field(static=True)
    exponent: float = eqx.field(static=True)
    floor: float = eqx.field(static=True)

    def __init__(
        self,
        n: int,
        *,
        every: int = 100,
        candidates: int | None = None,
        exponent: float = 1.0,
        floor: float = 1.0,
    ):
        self.n = _check_points(n)
        # The step count is an int32 (see `sample`).
        self.every = check_int(every, "every", 1, INT32_MAX // 2)
        candidates = 8 * self.n if candidates is None else candidates
        self.candidates = _check_points(candidates, "candidates")
        if self.candidates < self.n:
            raise ValueError(
                f"`candidates` must be at least `n` = {self.n}, got {candidates}."
            )
        self.exponent = check_float(exponent, "exponent", 0.0)
        self.floor = check_float(floor, "floor", 0.0)

    def init(self, t0, t1, dtype):
        return jnp.linspace(t0, t1, self.n, dtype=dtype), jnp.zeros((), jnp.int32)

    def sample(self, state, t0, t1, residual_fn, *, key):
        ts, count = state
        dtype = ts.dtype

        def redraw(_):
            draw_key, keep_key = jr.split(key)
            candidates = jr.uniform(
                draw_key, (self.candidates,), dtype, minval=t0, maxval=t1
            )
            size = jnp.abs(residual_fn(candidates)).astype(dtype)
            size = jnp.where(jnp.isfinite(size), size, jnp.zeros((), dtype))
            density = size**self.exponent
            mean = jnp.mean(density)
            density = jnp.where(mean > 0, density / mean, jnp.zeros((), dtype))
            density = density + self.floor
            # All-zero density (residual zero and floor 0): sample uniformly.
            density = jnp.where(jnp.sum(density) > 0, density, jnp.ones((), dtype))
            keep = jr.choice(
                keep_key,
                self.candidates,
                (self.n,),
                replace=False,
                p=density / jnp.sum(density),
            )
            return jnp.sort(candidates[keep])

        due = (count > 0) & (count % self.every == 0)
        ts = jax.lax.cond(due, redraw, lambda _: ts, None)
        # `count` is the number of steps taken until it nears the int32 limit;
        # there it steps back by a multiple of `every` (to below 2 * every), which
        # keeps `count % every` and `count > 0` as they would be, never overflowing.
        wrap = (INT32_MAX // self.every) * self.every
        count = jnp.where(count >= wrap, count - (wrap - self.every), count) + 1
        return ts, (ts, count)
