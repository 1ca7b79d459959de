r"""One call that fits to a requested accuracy, like an ODE solver: odefit chooses
the network, the stages, the points and, for long initial-value problems, the
time windows, and stops when its own error estimate meets the tolerance."""

import functools
import math
import time
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax

from ._custom_types import Args, Key
from ._error_estimate import ErrorEstimate, error_estimate
from ._fit import fit
from ._least_squares import LevenbergMarquardt
from ._loop import interruptible
from ._marching import auto_breakpoints, fit_marching
from ._models.base import AbstractModel
from ._models.pinn import PINN
from ._observations import Observations
from ._problems import BVP, IVP, AbstractProblem, is_stiff
from ._result import join_results, with_args
from ._unknown import has_unknowns, resolve_args
from ._validate import check_bool, check_float, check_key

# The smallest relative error a PINN fit reaches in each precision on odefit's
# own benchmarks (benchmarks/results/accuracy.json: 1.2e-4 in float32); a
# tolerance below it cannot be met by any choice made here.
_FLOOR = {32: 1e-4, 64: 1e-10}
# The estimate must be this far below the tolerance before a fit stops early:
# it is an estimate.
_MARGIN = 0.5
# A problem whose solution changes by its own size more often than this over the
# interval (odefit.auto_breakpoints) is marched from the start.
_MARCH_WINDOWS = 12


def _local_tolerance(wanted: float, problem) -> float:
    """`wanted`, or the smallest local error a window's least-squares fit
    reliably reaches in the problem's dtype when that is larger."""
    floor = 1e-10 if problem.state.dtype == jnp.float64 else 1e-5
    return max(wanted, floor)


class ToleranceResult(eqx.Module):
    """What [`odefit.fit_to_tolerance`][] returns.

    **Attributes:**

    - `model`: the solution: a model, or a [`odefit.PiecewiseSolution`][] when
        the interval was marched in windows; maps one scalar `t` to the state.
    - `problem`, `args`, `history`, `steps`, `wall_time`, `compile_time`: as in
        [`odefit.FitResult`][] (the history joins every stage of the attempt
        returned).
    - `stop_reason`: `"completed"` when the tolerance is met; otherwise a
        sentence with the estimate, the tolerance and why the search stopped.
    - `estimate`: the [`odefit.ErrorEstimate`][] of `model`, from its residual.
    - `error`: the relative error odefit estimates, compared with `tol`:
        `estimate.relative_l2`, or with observations the larger of it and the
        relative misfit to the data (the estimate assumes the identified
        parameters; the data show when they are off).
    - `tol`: the tolerance asked for; `met`: whether the estimate (and, with
        observations, the relative misfit to them) meets it.
    - `choices`: what odefit chose, attempt by attempt (network, stages, points,
        windows, the estimate reached and the seconds taken).
    """

    model: Any
    problem: AbstractProblem
    args: Args
    history: dict[str, np.ndarray]
    stop_reason: str = eqx.field(static=True)
    steps: int = eqx.field(static=True)
    wall_time: float = eqx.field(static=True)
    compile_time: float = eqx.field(static=True)
    estimate: ErrorEstimate
    error: float = eqx.field(static=True)
    tol: float = eqx.field(static=True)
    met: bool = eqx.field(static=True)
    choices: tuple[dict, ...] = eqx.field(static=True)


def _estimate(problem: AbstractProblem, solution, args) -> ErrorEstimate | None:
    try:
        return error_estimate(with_args(problem, args), solution)
    except RuntimeError:  # the error equation could not be integrated
        return None


def _relative(estimate: ErrorEstimate | None) -> float:
    return math.inf if estimate is None else float(estimate.relative_l2)


def _misfit(solution, observations: Observations | None) -> float:
    """The relative misfit of the solution to the observations: the error
    estimate assumes the identified parameters, so in an inverse problem only the
    data can show that they are off (0 without observations)."""
    if observations is None:
        return 0.0
    pred = jax.vmap(solution)(observations.ts.astype(observations.ys.dtype))
    if observations.observe is not None:
        pred = jax.vmap(observations.observe)(pred)
    residual = jnp.linalg.norm(jnp.ravel(pred - observations.ys))
    return float(residual / jnp.maximum(jnp.linalg.norm(observations.ys), 1e-300))


class _Clock:
    def __init__(self, budget: float | None):
        self.start = time.perf_counter()
        self.budget = budget

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def out(self) -> bool:
        return self.budget is not None and self.elapsed() >= self.budget


def _check_tol(tol, dtype) -> float:
    tol = check_float(tol, "tol", 0.0, open_minimum=True, maximum=1.0)
    bits = jnp.finfo(dtype).bits
    floor = _FLOOR[32] if bits <= 32 else _FLOOR[64]
    if tol < floor:
        advice = (
            "enable float64 before building the problem: "
            "jax.config.update('jax_enable_x64', True)"
            if bits <= 32
            else "ask for a tolerance of at least that"
        )
        raise ValueError(
            f"`tol`={tol:g} is below what a fit in {jnp.dtype(dtype).name} reaches "
            f"(a relative error of about {floor:g}); {advice}."
        )
    return tol


# Cached: a new transformation per call would recompile the training loop.
@functools.lru_cache(maxsize=8)
def _warmup(steps: int) -> optax.GradientTransformation:
    """Adam from 1e-2 decaying to 1e-4: a short, hot warm-up that finds the basin
    for the least-squares polish (the recipe of benchmarks/accuracy.py)."""
    return optax.adam(optax.exponential_decay(1e-2, steps, 1e-2))


def _single(
    problem, model, observations, key, tol, clock, *, width, depth, points, adam
):
    """Adam on redrawn points, then Levenberg-Marquardt on a grid until the
    estimate meets the tolerance (checked between chunks)."""
    k_model, k_adam, k_lm = jr.split(key, 3)
    if model is None:
        model = PINN(problem, width=width, depth=depth, key=k_model)

    def budget(info):
        return clock.out()

    def good_enough(info):
        estimate = _estimate(problem, info.model, info.args)
        return _relative(estimate) <= _MARGIN * tol or clock.out()

    common = dict(observations=observations, progress=False)
    warm = fit(
        problem,
        model,
        steps=adam,
        optimizer=_warmup(adam),
        key=k_adam,
        callback=budget,
        **common,
    )
    polish = fit(
        warm.problem,
        warm.model,
        steps=1000,
        optimizer=LevenbergMarquardt(points=points),
        key=k_lm,
        callback=good_enough,
        chunk_size=50,
        **common,
    )
    result = join_results([warm, polish])
    return result, result.model, result.args


def _marched(
    problem, key, tol, clock, *, max_change, width, points, stiff=False, local=None
):
    stages = [(_warmup(300), 300), (LevenbergMarquardt(points=points), 100)]
    result = fit_marching(
        problem,
        stages=stages,
        key=key,
        max_change=max_change,
        stiff=stiff,
        # `local`: the windows' local error tolerance as a fraction of `tol`,
        # kept where the least-squares fits can reach it.
        tolerance=None if local is None else _local_tolerance(local * tol, problem),
        width=width,
        depth=2,
        progress=False,
        callback=lambda info: clock.out(),
    )
    return result, result.model, resolve_args(problem.args)


@interruptible
def fit_to_tolerance(
    problem: AbstractProblem,
    *,
    tol: float,
    key: Key,
    time_budget: float | None = None,
    model: AbstractModel | None = None,
    observations: Observations | None = None,
    progress: bool = True,
) -> ToleranceResult:
    r"""Fits the solution of `problem` to a relative error of `tol`, choosing
    everything else, and says how close it got.

    Like a classical solver called with a tolerance: odefit picks the network,
    the stages (an Adam warm-up on redrawn points, then Levenberg–Marquardt on a
    fixed grid), the collocation points and, for initial-value problems whose
    solution changes by its own size many times over the interval, time windows
    ([`odefit.fit_marching`][] with [`odefit.auto_breakpoints`][]). After each
    chunk of the polishing stage it estimates the error from the residual alone
    ([`odefit.error_estimate`][], no reference needed) and stops once the
    estimate is below half of `tol`. Attempts, in order, until one meets the
    tolerance or `time_budget` runs out: a 16x2 network, 500 Adam steps on
    redrawn points, then up to 1000 Levenberg–Marquardt steps on 256 fixed ones;
    time marching (initial-value problems without unknowns; first, when the
    solution changes by its own size more than 12 times), then marching with
    each window's local error held to `tol / 100` (the `tolerance` of
    [`odefit.fit_marching`][]); a 24x3 network after 3000 Adam steps. A stiff
    problem (a coarse explicit integration of it is unstable) is marched
    first, with `stiff=True` and local errors held to `tol / 100`, then to
    `tol / 10000` (never below 1e-10 in float64, 1e-5 in float32). The best
    attempt is returned. (The settings are those of `benchmarks/accuracy.py`.)

    **Arguments:**

    - `problem`: an [`odefit.IVP`][], [`odefit.SecondOrderIVP`][] or
        [`odefit.BVP`][]; with [`odefit.Unknown`][] entries in `args` and
        `observations`, an inverse problem (the tolerance applies to the
        solution; `result.args` holds the identified values). The error estimate
        assumes the identified parameters, so the tolerance is only declared met
        when the relative misfit to the observations is within it too.
    - `tol`: the relative $L^2$ error wanted. Below about 1e-4 float64 is
        needed (`jax.config.update("jax_enable_x64", True)`); asking for less in
        float32 raises `ValueError` saying so.
    - `key`: a `jax.random` key.
    - `time_budget`: seconds to spend at most (checked between chunks); default
        no limit.
    - `model`: the first attempt's model (default: chosen here).
    - `observations`: [`odefit.Observations`][] (inverse problems, or data).
    - `progress`: print one line per attempt.

    **Returns:** an [`odefit.ToleranceResult`][]: the model, the estimate,
    whether it met `tol`, and what was chosen.

    **Example:**

    ```python
    import jax, jax.numpy as jnp, odefit

    jax.config.update("jax_enable_x64", True)
    problem = odefit.IVP(lambda t, y, args: -2.0 * y, t0=0.0, t1=2.0, y0=1.0)
    result = odefit.fit_to_tolerance(problem, tol=1e-6, key=jax.random.key(0))
    result.met, result.estimate.relative_l2
    ts = jnp.linspace(0.0, 2.0, 101)
    odefit.relative_l2(jax.vmap(result.model)(ts), jnp.exp(-2.0 * ts))
    ```
    """
    if not isinstance(problem, AbstractProblem):
        raise TypeError(
            "`problem` must be an odefit problem (IVP, SecondOrderIVP, BVP), got "
            f"{type(problem).__name__}."
        )
    check_key(key)
    tol = _check_tol(tol, problem.state.dtype)
    if time_budget is not None:
        time_budget = check_float(time_budget, "time_budget", 0.0, open_minimum=True)
    progress = check_bool(progress, "progress")
    clock = _Clock(time_budget)
    marchable = not isinstance(problem, BVP) and not has_unknowns(problem.args)
    # A first-order problem on which a coarse explicit integration is unstable
    # is stiff: marched first, with windows, scales and residual units for it.
    stiff = marchable and isinstance(problem, IVP) and is_stiff(problem)
    windows = len(auto_breakpoints(problem, stiff=stiff)) - 1 if marchable else 1
    single = [("single", dict(width=16, depth=2, points=256, adam=500))]
    larger = [("single", dict(width=24, depth=3, points=256, adam=3000))]
    marching = [
        ("marching", dict(max_change=1.0, width=20, points=128)),
        ("marching", dict(max_change=1.0, width=20, points=128, local=1e-2)),
    ]
    if stiff:
        # Stiff problems are marched with local error control from the start:
        # without it a relaxation oscillation drifts off its jumps.
        marching = [
            (
                "marching",
                dict(max_change=1.0, width=20, points=128, local=local, stiff=True),
            )
            for local in (1e-2, 1e-4)
        ]
    if not marchable:
        attempts = single + larger
    elif stiff or windows > _MARCH_WINDOWS:
        attempts = marching + single + larger
    else:
        attempts = single + marching + larger
    best = None
    choices = []
    for i, (kind, options) in enumerate(attempts):
        if clock.out():
            break
        tic = clock.elapsed()
        attempt_key = jr.fold_in(key, i)
        if kind == "single":
            result, solution, args = _single(
                problem,
                model if i == 0 else None,
                observations,
                attempt_key,
                tol,
                clock,
                **options,
            )
        else:
            result, solution, args = _marched(
                problem, attempt_key, tol, clock, **options
            )
        estimate = _estimate(problem, solution, args)
        misfit = _misfit(solution, observations)
        error = max(_relative(estimate), misfit)
        choice = {
            "attempt": kind,
            **options,
            "estimate": _relative(estimate),
            "data_misfit": misfit,
            "seconds": round(clock.elapsed() - tic, 2),
            "stop_reason": result.stop_reason.split(":")[0],
        }
        if kind == "marching":
            choice["windows"] = len(result.breakpoints) - 1
        choices.append(choice)
        if progress:
            print(f"odefit: {choice}", flush=True)
        if best is None or error < best[4]:
            best = (result, solution, args, estimate, error)
        if error <= tol:
            break
    if best is None:
        raise RuntimeError(
            f"`time_budget`={time_budget} s ran out before the first attempt "
            "started; give more time."
        )
    result, solution, args, estimate, error = best
    met = error <= tol
    if met:
        stop_reason = "completed"
    else:
        why = (
            "the time budget ran out"
            if clock.out()
            else "every attempt (networks, points, time windows) was tried"
        )
        misfit = _misfit(solution, observations)
        what = (
            f"the relative misfit to the observations is {misfit:.3g}"
            if misfit > _relative(estimate)
            else f"the estimated relative error is {_relative(estimate):.3g}"
        )
        stop_reason = (
            f"tolerance not met: {what}, above `tol`={tol:g}, and {why}. The best "
            "fit is returned; try float64, a longer `time_budget`, or a shorter "
            "interval (with noisy observations, no tolerance below the noise can "
            "be confirmed)."
        )
    return ToleranceResult(
        model=solution,
        problem=result.problem,
        args=args,
        history=result.history,
        stop_reason=stop_reason,
        steps=result.steps,
        wall_time=clock.elapsed(),
        compile_time=result.compile_time,
        estimate=estimate,
        error=error,
        tol=tol,
        met=met,
        choices=tuple(choices),
    )
