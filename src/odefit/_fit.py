"""`fit`: one model, one problem, on the training core."""

import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence

import equinox as eqx
import jax
import optax

from . import _checkpoint, _setup, _sharding
from ._collocation import AbstractCollocation
from ._custom_types import Key
from ._loop import Outcome, drive, raise_if_failed
from ._losses import Term
from ._models.base import AbstractModel
from ._objective import make_objective, split
from ._observations import Observations
from ._problems import AbstractProblem
from ._result import FitResult
from ._trainers import AbstractTrainer
from ._unknown import resolve_args


def with_args(problem: AbstractProblem, args) -> AbstractProblem:
    return eqx.tree_at(lambda p: p.args, problem, args, is_leaf=lambda x: x is None)


def fit(
    problem: AbstractProblem,
    model: AbstractModel | FitResult,
    *,
    steps: int,
    optimizer: optax.GradientTransformation | AbstractTrainer | None = None,
    collocation: AbstractCollocation | None = None,
    observations: Observations | None = None,
    weights: Mapping[str, float] | None = None,
    terms: Mapping[str, Term] | None = None,
    key: Key | None = None,
    progress: bool = True,
    chunk_size: int | None = None,
    throw: bool = False,
    callback: Callable | None = None,
    checkpoint_path: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    resume: bool = True,
    devices: Sequence[jax.Device] | None = None,
) -> FitResult:
    r"""Fits `model` to the solution of `problem`.

    Minimises the sum of the weighted loss terms of [`odefit.loss_terms`][]: the
    ODE residual at collocation points, the conditions (when not built into the
    model), the observations and any user `terms`, over the network's weights and
    any [`odefit.Unknown`][] entries of `problem.args`. Steps run in compiled
    chunks of `jax.lax.scan`; between chunks the host updates the progress bar,
    the history, the callback and checkpoints.

    **Arguments:**

    - `problem`: an [`odefit.IVP`][], [`odefit.SecondOrderIVP`][] or
        [`odefit.BVP`][].
    - `model`: the ansatz, e.g. [`odefit.PINN`][] (a `result.model` restarts the
        optimiser from a previous fit's weights); or a [`odefit.FitResult`][], to
        continue that fit exactly: its optimiser state, step count (`steps`
        more are run), collocation state, key (unless `key` is given) and
        history carry on. The optimiser and collocation must be of the kind it
        used.
    - `steps`: the number of optimiser steps.
    - `optimizer`: any `optax.GradientTransformation` (L-BFGS included) or an
        odefit trainer. Default: Adam, learning rate decaying from 3e-3 to 3e-5
        over the run.
    - `collocation`: [`odefit.Uniform`][] (points redrawn each step; for optax
        the default is `Uniform(256, warmup=steps // 2)`) or [`odefit.Grid`][]
        (fixed points; the default of the least-squares trainers and L-BFGS).
    - `observations`: [`odefit.Observations`][], adding a data term.
    - `weights`: weights of the terms by name (`"residual"`, `"conditions"`,
        `"data"` and the names in `terms`); default 1 each.
    - `terms`: your own loss terms, `{name: fn}` with `fn(model, problem, args,
        ts) -> residual vector`; each is weighted like the others (its loss is
        `weights[name] * mean(fn(...)**2)`), shown in the progress bar and the
        history, and seen by every trainer (least squares included).
    - `key`: a `jax.random` key for the collocation draws.
    - `progress`: show a progress bar (loss and each term).
    - `chunk_size`: steps per compiled chunk; default about `steps / 100`, at
        least 50 and at most 1000.
    - `throw`: raise `RuntimeError` on divergence or a stall instead of
        returning the last finite model with a `stop_reason`.
    - `callback`: `callback(info)` is called between chunks with an
        [`odefit.CallbackInfo`][] (step, model, args, latest losses, history);
        returning `True` stops the fit (`stop_reason="stopped by callback"`).
    - `checkpoint_path`: a file to save the fit's state to, atomically (see
        [`odefit.save`][]), every `checkpoint_every` steps (default about a
        tenth of the run) and when the fit stops. If the file exists and
        `resume` is true, the fit continues from it, bit-identical on CPU to an
        uninterrupted run; a checkpoint of another fit, or a corrupted one,
        raises `ValueError` and is left untouched. `resume=False` overwrites it.
    - `devices`: split each step's collocation points across these devices
        (e.g. `jax.devices()`), parameters replicated.

    Ctrl-C stops the fit after the current chunk (`stop_reason="interrupted"`);
    a second Ctrl-C stops at once.

    **Returns:** an [`odefit.FitResult`][].

    **Example:**

    ```python
    import jax, jax.numpy as jnp, odefit

    problem = odefit.IVP(lambda t, y, args: -2.0 * y, t0=0.0, t1=2.0, y0=1.0)
    model = odefit.PINN(problem, width=32, depth=2, key=jax.random.key(0))
    result = odefit.fit(problem, model, steps=2000, key=jax.random.key(1),
                        progress=False)
    more = odefit.fit(problem, result, steps=1000, progress=False)  # 3000 in all
    ts = jnp.linspace(0.0, 2.0, 101)
    odefit.relative_l2(jax.vmap(more.model)(ts), problem.solve(ts))
    ```
    """
    start_time = time.perf_counter()
    _setup.check_problem(problem)
    previous = model if isinstance(model, FitResult) else None
    if previous is not None:
        model, problem = previous.model, with_args(problem, previous.problem.args)
        key = previous.key if key is None else key
    _setup.check_model(model)
    _setup.check_key(key)
    done = 0 if previous is None else previous.steps
    total = done + _setup.check_steps(steps)
    setup = _setup.prepare(
        problem,
        model,
        steps=total,
        optimizer=optimizer,
        collocation=collocation,
        observations=observations,
        weights=weights,
        terms=terms,
        chunk_size=chunk_size,
        callback=callback,
        progress=progress,
        throw=throw,
    )
    _setup.check_checkpointing(checkpoint_path, checkpoint_every, resume)
    devices = _sharding.check_devices(devices)
    _setup.check_collocation(setup.collocation, problem, key)
    params, static = split(model, problem.args)
    objective = make_objective(
        problem, static, setup.observations, setup.weights, setup.terms
    )
    colloc_state = setup.collocation.init(problem.t0, problem.t1, problem.state.dtype)
    state = (params, objective.init(setup.trainer, setup.collocation, params, key=key))
    state = (*state, colloc_state)
    history = None
    if previous is not None:
        state, history = _continued(previous, state), previous.history
    if checkpoint_path is not None and resume and os.path.exists(checkpoint_path):
        saved = _checkpoint.resume(
            checkpoint_path,
            problem=problem,
            model=model,
            opt_state=state[1],
            collocation_state=colloc_state,
            key=key,
            steps=total,
        )
        state = (split(saved.model, saved.args)[0], saved.opt_state)
        state, done, history = (
            (*state, saved.collocation_state),
            saved.steps,
            saved.history,
        )

    def result(outcome: Outcome) -> FitResult:
        params, opt_state, colloc_state = outcome.state
        model, args = eqx.combine(params, static)
        return FitResult(
            model=model,
            problem=with_args(problem, args),
            args=resolve_args(args),
            history=outcome.history,
            stop_reason=outcome.reasons,
            steps=outcome.steps,
            opt_state=opt_state,
            collocation_state=colloc_state,
            key=key,
            wall_time=time.perf_counter() - start_time,
            compile_time=outcome.compile_time,
        )

    def checkpoint(outcome: Outcome) -> None:
        try:
            _checkpoint.save(checkpoint_path, result(outcome))
        except OSError as e:
            # A full disk must not cost the fit itself; the previous checkpoint is
            # intact (writes are atomic).
            warnings.warn(
                f"odefit could not write the checkpoint at step {outcome.steps} to "
                f"{os.fspath(checkpoint_path)!r} ({e}); the fit goes on.",
                RuntimeWarning,
                stacklevel=4,
            )

    outcome = drive(
        state,
        objective,
        key,
        setup.trainer,
        _sharding.shard_points(setup.collocation, devices),
        steps=total,
        chunk=setup.chunk,
        done=done,
        history=history,
        devices=devices,
        progress=progress,
        callback=callback,
        checkpoint=None if checkpoint_path is None else checkpoint,
        checkpoint_every=checkpoint_every
        or (10 * setup.chunk if checkpoint_path else None),
    )
    raise_if_failed(outcome.reasons, throw)
    return result(outcome)


def _continued(previous: FitResult, fresh):
    """The state to continue `previous` from, checked against a fresh state of
    the fit asked for."""
    params, opt_state, colloc_state = fresh
    for name, saved, new in (
        ("optimiser", previous.opt_state, opt_state),
        ("collocation", previous.collocation_state, colloc_state),
    ):
        if not _setup.same_structure(saved, new):
            raise ValueError(
                f"`model` is a FitResult whose {name} state does not match this "
                f"fit's {name}: continue it with the {name} it was made with, or "
                "pass `result.model` to start a new optimiser from its weights."
            )
    return (params, previous.opt_state, previous.collocation_state)
