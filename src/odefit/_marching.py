r"""Time marching: a long initial-value problem fit as consecutive windows.

One network over a long interval must represent every oscillation at once, and its
residual loss does not say which way time runs: a function with a small residual
that has drifted onto the wrong trajectory is a local minimum the optimiser
cannot leave. Marching solves the problem the way a classical integrator does —
window by window, each starting exactly where the previous one ended — so every
fit is a short, well-conditioned problem.
"""

import dataclasses
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float

from . import _memory
from ._collocation import AbstractCollocation
from ._custom_types import Args, Key, Scalar
from ._loop import interruptible
from ._losses import Term
from ._models.base import AbstractModel
from ._models.pinn import PINN
from ._problems import (
    _IMPLICIT_STEPS,
    IVP,
    AbstractProblem,
    SecondOrderIVP,
    _diffrax_solve,
    _implicit_path,
    _implicit_peak,
    _trajectory,
    stiff_scale,
)
from ._result import FitResult, join_histories
from ._stages import Stage, check_stages, fit_stages
from ._unknown import has_unknowns, resolve_args
from ._validate import check_bool, check_float, check_key


class PiecewiseSolution(eqx.Module):
    r"""A solution made of one model per time window.

    On $[b_k, b_{k+1})$ it is the $k$-th model evaluated at the window's
    non-dimensional time $s = (t - b_k)/(b_{k+1} - b_k) \in [0, 1]$ (the last
    window includes its right end). Like any odefit solution it maps one scalar
    `t` to the state; use `jax.vmap` for many times.

    **Attributes:**

    - `models`: the models, one per window, in time order, each a function of $s$.
    - `breakpoints`: the window boundaries $b_0 < b_1 < \dots < b_K$.
    """

    models: tuple[AbstractModel, ...]
    breakpoints: tuple[float, ...] = eqx.field(static=True)

    def __check_init__(self):
        if len(self.breakpoints) != len(self.models) + 1:
            raise ValueError(
                f"`breakpoints` must have one more entry than `models`; got "
                f"{len(self.breakpoints)} breakpoints for {len(self.models)} models."
            )

    def __call__(self, t: Scalar) -> Float[Array, "*state"]:
        t = jnp.asarray(t)
        b = self.breakpoints

        def branch(k):
            return lambda t: self.models[k]((t - b[k]) / (b[k + 1] - b[k]))

        if len(self.models) == 1:
            return branch(0)(t)
        index = jnp.searchsorted(jnp.asarray(b[1:-1], t.dtype), t, side="right")
        return jax.lax.switch(index, [branch(k) for k in range(len(self.models))], t)


class _WindowField(eqx.Module):
    r"""$h\, f(b + h s, y)$: a vector field in a window's non-dimensional time $s$,
    with the window's start $b$ and length $h$ passed in `args` (as arrays, so that
    every window shares one compiled program)."""

    vector_field: Callable

    def __call__(self, s, y, args):
        inner, start, length = args
        return length * self.vector_field(start + length * s, y, inner)


class _WindowAcceleration(eqx.Module):
    """$h^2 g(b + h s, y, y_s / h)$: a second-order right-hand side in $s$."""

    acceleration: Callable

    def __call__(self, s, y, dy, args):
        inner, start, length = args
        return length**2 * self.acceleration(start + length * s, y, dy / length, inner)


class MarchingResult(eqx.Module):
    r"""What [`odefit.fit_marching`][] returns.

    **Attributes:**

    - `model`: the [`odefit.PiecewiseSolution`][] over every window fit.
    - `problem`: the whole problem.
    - `args`: the problem's `args` (marching learns no unknowns).
    - `windows`: the [`odefit.FitResult`][] of every window, in time order (each
        fit in the window's time $s \in [0, 1]$; see [`odefit.fit_marching`][]).
    - `breakpoints`: the window boundaries (as many as fitted windows, plus one).
    - `history`: the windows' histories end to end, with a `"window"` entry giving
        each step's window (and `"stage"` its stage within the window).
    - `stop_reason`: `"completed"`, or which window stopped and why (the solution
        then covers the windows fitted so far).
    - `local_errors`: with a `tolerance`, each window's local error (see
        [`odefit.fit_marching`][]); otherwise empty.
    - `refits`: how many window fits the `tolerance` rejected (each refit at
        half the length; their steps are not in `steps` or `history`).
    - `steps`: the total number of optimiser steps.
    - `wall_time`: seconds, compilation included.
    - `compile_time`: seconds of that spent compiling, summed over the windows.
    """

    model: PiecewiseSolution
    problem: AbstractProblem
    args: Args
    windows: tuple[FitResult, ...]
    breakpoints: tuple[float, ...] = eqx.field(static=True)
    history: dict[str, np.ndarray]
    stop_reason: str = eqx.field(static=True)
    steps: int = eqx.field(static=True)
    wall_time: float = eqx.field(static=True)
    compile_time: float = eqx.field(static=True)
    local_errors: tuple[float, ...] = eqx.field(static=True, default=())
    refits: int = eqx.field(static=True, default=0)


def _initial_state(problem: AbstractProblem):
    if isinstance(problem, SecondOrderIVP):
        return (problem.y0, problem.dy0)
    return problem.y0


def auto_breakpoints(
    problem: AbstractProblem,
    max_change: float = 1.0,
    *,
    resolution: int = 2048,
    stiff: bool = False,
) -> tuple[float, ...]:
    r"""Window boundaries chosen from the problem's own time and state scales.

    Along a coarse fixed-step RK4 integration, each state component is measured in
    units of its peak magnitude $s_i$ (the state scale a [`odefit.PINN`][] uses).
    The non-dimensional distance travelled,

    $$S(t) = \int_{t_0}^{t} \max_i \frac{|\dot y_i(\tau)|}{s_i} \, d\tau,$$

    counts how many times the solution changes by its own size. The interval is
    split where $S$ crosses multiples of $S(t_1)/K$, with $K = \lceil S(t_1) /
    \text{max\_change} \rceil$ windows: short windows where the solution moves fast,
    long ones where it is quiet, every window covering the same amount of change.

    With `stiff=True` (for stiff problems, whose dynamics span decades of time
    and of magnitude) the path is that of an implicit solver (diffrax `Kvaerno5`,
    adaptive, so that it follows the fast transients), and each component is
    measured relative to its *current* size, $\max(|y_i(t)|, \epsilon s_i)$ with
    $\epsilon$ = `1e-3`, instead
    of its peak: a decay $y \propto t^{-p}$ then moves by the same amount in every
    decade of time, and the windows grow geometrically, each as long as the local
    time scale allows (about a factor $e^{\text{max\_change}/p}$ per window).
    Components of size `1e-5` beside others of size 1 count as much as those. The
    first window is at most 10 of the fastest relaxation times at $t_0$
    ($1/\max_i |\partial f_i/\partial y_i|$), so that it resolves the layer in
    which an initial state off the slow manifold relaxes onto it.

    **Arguments:**

    - `problem`: an [`odefit.IVP`][] or [`odefit.SecondOrderIVP`][] (`stiff=True`:
        an `IVP`).
    - `max_change`: the non-dimensional change allowed in one window.
    - `resolution`: RK4 steps of the coarse integration (not used with `stiff`).
    - `stiff`: measure along an implicit solve, relative to the current size.

    **Returns:** the breakpoints $t_0 = b_0 < \dots < b_K = t_1$.
    """
    max_change = check_float(max_change, "max_change", 0.0, open_minimum=True)
    stiff = check_bool(stiff, "stiff")
    if stiff:
        ts, speed = _stiff_speed(problem)
    else:
        ts, speed = _rk4_speed(problem, resolution)
    if not np.all(np.isfinite(speed)):
        raise ValueError(
            "The coarse integration used to choose the windows blew up; pass "
            "`windows` explicitly"
            + ("." if stiff else ", or `stiff=True` if the problem is stiff.")
        )
    travelled = np.concatenate(
        [[0.0], np.cumsum((speed[1:] + speed[:-1]) / 2 * np.diff(ts))]
    )
    total = float(travelled[-1])
    count = max(1, math.ceil(total / max_change))
    inner = np.interp(total * np.arange(1, count) / count, travelled, ts).tolist()
    if stiff:
        # An initial state off the slow manifold relaxes onto it in a few of the
        # fastest relaxation times at t0: a layer too thin to show in the change
        # measure, but one window must resolve it.
        layer = problem.t0 + _LAYER / float(_fastest_rate(problem))
        first = inner[0] if inner else problem.t1
        if layer < first:
            inner = [layer, *inner]
    return (problem.t0, *inner, problem.t1)


# The first stiff window is at most this many of the fastest relaxation times
# at t0 (an initial layer has decayed by e^-10 by then).
_LAYER = 10.0


def _fastest_rate(problem: IVP):
    args = resolve_args(problem.args)
    state = problem.y0
    t0 = jnp.asarray(problem.t0, state.dtype)
    jac = jax.jacfwd(
        lambda y: problem.vector_field(t0, y.reshape(state.shape), args).ravel()
    )(state.ravel())
    return jnp.max(jnp.abs(jnp.diagonal(jac))) + jnp.finfo(state.dtype).tiny


def _rk4_speed(problem: AbstractProblem, resolution: int):
    field = problem.first_order_field()
    args = resolve_args(problem.args)
    y0 = _initial_state(problem)
    ys = eqx.filter_jit(_trajectory)(
        field, problem.t0, problem.t1, y0, args, steps=resolution
    )
    ts = np.linspace(problem.t0, problem.t1, resolution + 1)
    rates = []
    for y in jax.tree.leaves(ys):
        y = np.asarray(y).reshape(resolution + 1, -1)
        scale = np.max(np.abs(y), axis=0)
        scale = np.where(
            np.isfinite(scale) & (scale > 1e-6 * max(np.max(scale), 1.0)), scale, 1.0
        )
        rates.append(np.abs(np.gradient(y, ts, axis=0)) / scale)
    return ts, np.max(np.concatenate(rates, axis=1), axis=1)


# How small, relative to its peak, a component may get and still have its
# relative change counted (`auto_breakpoints(..., stiff=True)`).
_RELATIVE_FLOOR = 1e-3


def _stiff_speed(problem: AbstractProblem):
    if not isinstance(problem, IVP):
        raise TypeError(
            "`stiff=True` needs a first-order odefit.IVP, got "
            f"{type(problem).__name__}; write the problem in first-order form."
        )
    args = resolve_args(problem.args)
    ts, ys = _implicit_path(
        problem.vector_field, problem.t0, problem.t1, problem.y0, args
    )
    ok = np.isfinite(np.asarray(ts))
    if not ok.any() or not math.isclose(
        float(np.asarray(ts)[ok][-1]), problem.t1, rel_tol=1e-9
    ):
        raise ValueError(
            "The implicit solve used to choose the windows did not reach t1 "
            f"within {_IMPLICIT_STEPS} steps; pass `windows` explicitly."
        )
    ts, ys = jnp.asarray(np.asarray(ts)[ok]), jnp.asarray(np.asarray(ys)[ok])
    rates = jax.vmap(lambda t, y: problem.vector_field(t, y, args))(ts, ys)
    ys = np.asarray(ys).reshape(ts.size, -1)
    rates = np.asarray(rates).reshape(ts.size, -1)
    scale = np.asarray(stiff_scale(problem)).ravel()
    size = np.maximum(np.abs(ys), _RELATIVE_FLOOR * scale)
    return np.asarray(ts), np.max(np.abs(rates) / size, axis=1)


# A stiff window's state scale of a component is at least this fraction of the
# component's scale over the whole problem.
_WINDOW_SCALE_FLOOR = 1e-6


def _window_scale(window_problem: IVP, whole) -> Float[Array, "*state"]:
    """A stiff window's state scales: each component's peak in the window (an
    implicit solve), but at least `_WINDOW_SCALE_FLOOR` of its peak over the
    whole problem. A species still at zero in a short window (HIRES's
    products at t0) then keeps a scale near its own size, not one at rounding
    level nor a fallback of 1: least squares with scales that far apart is
    singular in float64."""
    peak = _implicit_peak(
        window_problem.vector_field,
        window_problem.t0,
        window_problem.t1,
        window_problem.y0,
        window_problem.args,
    )
    peak = jnp.where(jnp.isfinite(peak), peak, 0.0)
    return jnp.maximum(peak, _WINDOW_SCALE_FLOOR * whole).astype(whole.dtype)


def _window_path(checkpoint_path, k: int, halvings: int) -> str | None:
    """Where window `k` checkpoints; a window rejected by `tolerance` and halved
    says how many times in the name, so that a rerun never loads another
    window's fit (the windows of a rerun are the same: the fits are)."""
    if checkpoint_path is None:
        return None
    return f"{os.fspath(checkpoint_path)}.window{k}" + (
        f".half{halvings}" if halvings else ""
    )


# The times in a window (after its start) at which its local error is measured.
_CHECKS = 16
# How many times in a row a window that misses the `tolerance` may be halved.
_MAX_HALVINGS = 30


def _local_error(window_problem, model, scale, tolerance: float, stiff: bool) -> float:
    """The largest difference, in units of `scale` per component, between a fitted
    window and an accurate classical solve of the same window problem from the
    same start (the error this window adds), at `_CHECKS` times in the window."""
    dtype = window_problem.state.dtype
    ss = jnp.linspace(0.0, 1.0, _CHECKS + 1, dtype=dtype)[1:]
    # An implicit solver's global error can be a hundred times its `rtol`.
    rtol = max(tolerance * 1e-4, 100 * float(jnp.finfo(dtype).eps))
    y0 = _initial_state(window_problem)
    if isinstance(window_problem, SecondOrderIVP):
        # diffrax takes one `atol` for a state of several arrays.
        atol = rtol * float(jnp.max(scale))
    else:
        atol = rtol * scale
    try:
        ys = _diffrax_solve(
            window_problem.first_order_field(),
            0.0,
            ss,
            y0,
            window_problem.args,
            solver=dfx.Kvaerno5() if stiff else dfx.Tsit5(),
            rtol=rtol,
            atol=atol,
            max_steps=100_000,
            dtype=dtype,
        )
    except RuntimeError:
        return math.inf
    reference = ys[0] if isinstance(window_problem, SecondOrderIVP) else ys
    predicted = jax.vmap(model)(ss)
    error = jnp.max(jnp.abs(predicted - reference) / scale)
    return float(error) if jnp.isfinite(error) else math.inf


def _check_windows(
    windows, problem: AbstractProblem, max_change, stiff: bool = False
) -> tuple[float, ...]:
    if windows is None:
        return auto_breakpoints(problem, max_change, stiff=stiff)
    if isinstance(windows, bool):
        raise TypeError(f"`windows` must be an integer or a sequence, got {windows!r}.")
    if isinstance(windows, (int, np.integer)):
        if windows < 1:
            raise ValueError(f"`windows` must be >= 1, got {windows}.")
        _memory.check_bytes(
            float(windows) * _memory.BYTES_PER_WINDOW,
            "windows",
            f"{windows} time windows, each fitted and kept",
        )
        return tuple(np.linspace(problem.t0, problem.t1, int(windows) + 1).tolist())
    if isinstance(windows, (str, bytes)):
        raise TypeError(f"`windows` must be an integer or a sequence, got {windows!r}.")
    try:
        points = np.asarray(windows, dtype=float)
    except (TypeError, ValueError) as e:
        raise TypeError(
            "`windows` must be an integer or a sequence of breakpoints, got "
            f"{windows!r}."
        ) from e
    if points.ndim != 1 or points.size < 2:
        raise ValueError(
            "`windows` as breakpoints must be a 1-D sequence of at least two "
            f"times, got shape {points.shape}."
        )
    if not np.all(np.diff(points) > 0):
        raise ValueError(f"`windows` breakpoints must increase, got {points}.")
    if not (
        math.isclose(points[0], problem.t0, abs_tol=1e-12)
        and math.isclose(points[-1], problem.t1, abs_tol=1e-12)
    ):
        raise ValueError(
            f"`windows` breakpoints must run from t0={problem.t0} to "
            f"t1={problem.t1}, got {points[0]} to {points[-1]}."
        )
    return (problem.t0, *points[1:-1].tolist(), problem.t1)


def _window(problem: AbstractProblem, a: float, b: float, previous):
    r"""The problem on $[a, b]$ in the window's time $s = (t - a)/(b - a) \in [0, 1]$,
    starting where `previous` (a function of $t$) ends."""
    dtype = problem.state.dtype
    start, length = jnp.asarray(a, dtype), jnp.asarray(b - a, dtype)
    args = (problem.args, start, length)
    if isinstance(problem, SecondOrderIVP):
        if previous is None:
            y0, dy0 = problem.y0, problem.dy0
        else:
            y0, dy0 = jax.jvp(previous, (start,), (jnp.ones_like(start),))
        return SecondOrderIVP(
            _WindowAcceleration(problem.acceleration), 0.0, 1.0, y0, length * dy0, args
        )
    y0 = problem.y0 if previous is None else previous(start)
    return IVP(_WindowField(problem.vector_field), 0.0, 1.0, y0, args)


@interruptible
def fit_marching(
    problem: IVP | SecondOrderIVP,
    *,
    stages: Sequence[Stage],
    key: Key,
    windows: int | Sequence[float] | None = None,
    max_change: float = 1.0,
    model: Callable[[AbstractProblem, Key], AbstractModel] | None = None,
    width: int = 32,
    depth: int = 2,
    warm_start: bool = False,
    collocation: AbstractCollocation | None = None,
    weights: Mapping[str, float] | None = None,
    terms: Mapping[str, Term] | None = None,
    progress: bool = True,
    chunk_size: int | None = None,
    throw: bool = False,
    callback: Callable | None = None,
    checkpoint_path: str | os.PathLike | None = None,
    devices: Sequence[jax.Device] | None = None,
    stiff: bool = False,
    tolerance: float | None = None,
) -> MarchingResult:
    r"""Fits an initial-value problem window by window (time marching).

    The interval is split into windows $[b_k, b_{k+1}]$. The first window is the
    problem itself restricted to $[b_0, b_1]$; window $k$ starts exactly where the
    fitted solution of window $k-1$ ends (its value, and for a
    [`odefit.SecondOrderIVP`][] its slope, at $b_k$), so the pieces join
    continuously. Each window is posed in its own non-dimensional time
    $s = (t - b_k)/(b_{k+1} - b_k) \in [0, 1]$ (the vector field multiplied by
    the window length) and gets its own model, which also scales the state by its
    peak in the window: every window is a problem of the same size, and all
    windows share one compiled program. Each is fit by [`odefit.fit_stages`][]
    with `stages`.

    **Arguments:**

    - `problem`: an [`odefit.IVP`][] or [`odefit.SecondOrderIVP`][] without
        unknowns.
    - `stages`: the `(optimizer, steps)` stages of every window, e.g.
        `[(optax.adam(1e-3), 2000), (odefit.LevenbergMarquardt(), 200)]`.
    - `key`: a `jax.random` key; window `k` uses `jax.random.fold_in(key, k)`.
    - `windows`: the number of equal windows, or the breakpoints
        `[t0, ..., t1]`; default (`None`) chooses them from the problem by
        [`odefit.auto_breakpoints`][] with `max_change`.
    - `max_change`: for automatic windows, how much the non-dimensional state may
        change within one window.
    - `model`: `model(window_problem, key)` builds a window's model (the window
        problem is on $[0, 1]$ in $s$); default
        `odefit.PINN(window_problem, width=width, depth=depth, stiff=stiff,
        key=key)`.
    - `width`, `depth`: of the default model.
    - `warm_start`: initialise each window's network with the previous window's
        weights (the same architecture is needed).
    - `collocation`, `weights`, `terms`, `progress`, `chunk_size`, `throw`,
        `callback`, `devices`: passed to every fit; `collocation` applies to
        stages that do not name their own. A term or callback sees the window's
        problem and model, in the window's time $s$.
    - `stiff`: for stiff problems (first-order `IVP`s whose time scales lie
        decades apart, as in chemical kinetics): automatic windows from
        [`odefit.auto_breakpoints`][] with `stiff=True` (growing geometrically
        where the dynamics span decades), and a default model
        `odefit.PINN(..., stiff=True)` (state scales that keep tiny species,
        the residual measured in each component's relaxation time). Use it
        with float64 and [`odefit.LevenbergMarquardt`][].
    - `tolerance`: choose the windows as an adaptive integrator chooses its
        steps. After its fit, each window is compared with an accurate classical
        solve of the same window problem from the same start (`Kvaerno5` with
        `stiff`, else `Tsit5`, at `rtol = tolerance * 1e-4`) at 16 times in the
        window: the largest difference, per component in units of the state
        scale (the model's, over the whole problem), is the error this window
        adds, its *local error*. A window whose local error exceeds `tolerance`
        is rejected and fit again at half the length; after a window well
        within it (a quarter), the next is twice as long. Windows never cross
        the breakpoints of `windows` (or of [`odefit.auto_breakpoints`][]),
        and each breakpoint restarts at the next planned window's length. A
        window still missing `tolerance` after 30 halvings stops the march,
        like an integrator whose step size underflows (`stop_reason` says so;
        the windows before it are kept). The global error grows from the local
        ones as a classical integrator's does: how much depends on the
        problem's stability, so choose `tolerance` below the accuracy wanted.
        Default `None`: the planned windows, unchecked.
    - `checkpoint_path`: window `k` checkpoints to
        `f"{checkpoint_path}.window{k}"` (and its stages to `...stage{i}`; its
        fit after `j` rejections to `...window{k}.half{j}`); a rerun skips the
        finished windows and resumes the interrupted one.

    **Returns:** an [`odefit.MarchingResult`][]; `result.model` maps `t` to the
    state over the whole interval.

    **Example:**

    ```python
    import jax, jax.numpy as jnp, optax, odefit

    def lotka_volterra(t, y, args):
        return jnp.stack([1.5 * y[0] - y[0] * y[1], -3.0 * y[1] + y[0] * y[1]])

    problem = odefit.IVP(lotka_volterra, t0=0.0, t1=4.0, y0=jnp.array([1.0, 1.0]))
    result = odefit.fit_marching(
        problem,
        stages=[(optax.adam(1e-2), 300), (odefit.LevenbergMarquardt(points=64), 30)],
        windows=2, width=16, key=jax.random.key(0), progress=False,
    )
    ys = jax.vmap(result.model)(jnp.linspace(0.0, 4.0, 101))
    ```
    """
    start = time.perf_counter()
    if not isinstance(problem, (IVP, SecondOrderIVP)):
        raise TypeError(
            "`problem` must be an odefit.IVP or odefit.SecondOrderIVP: time marching "
            f"needs an initial-value problem, got {type(problem).__name__}."
        )
    if has_unknowns(problem.args):
        raise ValueError(
            "`problem.args` holds odefit.Unknown entries; time marching fits each "
            "window separately and cannot learn parameters shared by all windows. "
            "Fit the inverse problem with odefit.fit."
        )
    check_key(key)
    warm_start = check_bool(warm_start, "warm_start")
    check_bool(progress, "progress")
    check_bool(throw, "throw")
    stages = check_stages(stages)
    stiff = check_bool(stiff, "stiff")
    breakpoints = _check_windows(windows, problem, max_change, stiff)
    if tolerance is not None:
        tolerance = check_float(tolerance, "tolerance", 0.0, open_minimum=True)
    # The state scale over the whole problem: the unit of the local errors, and
    # the floor of a stiff window's scales. One implicit solve serves both.
    scale = None
    if tolerance is not None or (stiff and model is None):
        scale = stiff_scale(problem) if stiff else problem.characteristic_scale()
    if model is None:

        def model(window_problem, key):
            return PINN(
                window_problem,
                width=width,
                depth=depth,
                stiff=stiff,
                scale=_window_scale(window_problem, scale) if stiff else None,
                key=key,
            )

    elif not callable(model):
        raise TypeError(
            "`model` must be a function (window_problem, key) -> model, got "
            f"{type(model).__name__}."
        )
    results: list[FitResult] = []
    local_errors: list[float] = []
    refits = 0
    previous = None  # the solution so far, as a function of t
    stop_reason = "completed"
    fitted = [breakpoints[0]]  # the boundaries of the windows fitted so far
    plan = iter(breakpoints[1:])
    planned = next(plan)  # windows never cross a planned breakpoint
    length = planned - breakpoints[0]  # the next window's length
    halvings = 0  # how many times the next window was rejected and halved
    while True:
        a, k = fitted[-1], len(results)
        b = min(a + length, planned)
        if planned - b < 1e-3 * length:  # no sliver before the breakpoint
            b = planned
        window_key = jr.fold_in(key, k)
        init_key, fit_key = jr.split(window_key)
        window_problem = _window(problem, a, b, previous)
        window_model = model(window_problem, init_key)
        if not isinstance(window_model, AbstractModel):
            raise TypeError(
                f"`model` must return an odefit model, got "
                f"{type(window_model).__name__}."
            )
        if warm_start and results:
            last = results[-1].model
            params, _ = eqx.partition(last, last.trainable())
            _, static = eqx.partition(window_model, window_model.trainable())
            window_model = eqx.combine(params, static)
        result = fit_stages(
            window_problem,
            window_model,
            stages,
            key=fit_key,
            collocation=collocation,
            weights=weights,
            terms=terms,
            progress=progress,
            chunk_size=chunk_size,
            throw=throw,
            callback=callback,
            checkpoint_path=_window_path(checkpoint_path, k, halvings),
            devices=devices,
        )
        if tolerance is not None and result.stop_reason == "completed":
            error = _local_error(window_problem, result.model, scale, tolerance, stiff)
            if error > tolerance and halvings < _MAX_HALVINGS:
                # Rejected, as an adaptive integrator rejects a step.
                length, halvings, refits = (b - a) / 2, halvings + 1, refits + 1
                continue
            local_errors.append(error)
            if error > tolerance:
                # Kept, as the last window, and the march stops there.
                result = dataclasses.replace(
                    result,
                    stop_reason=f"its local error {error:.2e} exceeds "
                    f"`tolerance`={tolerance:g} after {halvings} halvings (a "
                    "larger network or more steps per window may meet it)",
                )
            # Accepted: the next window twice as long when this one was well
            # within the tolerance.
            length = (b - a) * (2.0 if error <= tolerance / 4 else 1.0)
        halvings = 0
        results.append(result)
        fitted.append(b)
        previous = PiecewiseSolution((result.model,), (a, b))
        if result.stop_reason != "completed":
            stop_reason = f"window {k} [{a:g}, {b:g}]: {result.stop_reason}"
            break
        if b == planned:
            planned = next(plan, None)
            if planned is None:
                break
            length = planned - b
    fitted = tuple(fitted)
    return MarchingResult(
        model=PiecewiseSolution(tuple(r.model for r in results), fitted),
        problem=problem,
        args=resolve_args(problem.args),
        windows=tuple(results),
        breakpoints=fitted,
        history=join_histories([r.history for r in results], "window"),
        stop_reason=stop_reason,
        steps=sum(r.steps for r in results),
        wall_time=time.perf_counter() - start,
        compile_time=sum(
            r.compile_time for r in results if not math.isnan(r.compile_time)
        ),
        local_errors=tuple(local_errors),
        refits=refits,
    )
