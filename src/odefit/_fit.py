"""`fit`: one model, one problem, on the training core."""

import functools
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from typing import NamedTuple

import jax
import optax

from . import _checkpoint, _setup, _sharding
from ._collocation import AbstractCollocation
from ._custom_types import Key
from ._loop import Outcome, drive, interruptible, raise_if_failed
from ._losses import Term
from ._models.base import AbstractModel
from ._objective import Objective, make_objective, split
from ._observations import Observations
from ._problems import AbstractProblem
from ._result import FitResult, with_args
from ._trainers import AbstractTrainer


@interruptible
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

    Minimises the weighted loss terms of [`odefit.loss_terms`][] (ODE residual at
    collocation points, conditions not built into the model, observations, your
    own `terms`) over the network's weights and any [`odefit.Unknown`][] in
    `problem.args`, in compiled chunks of `jax.lax.scan`; between chunks the host
    updates the progress bar, history, callback and checkpoints. Ctrl-C stops
    after the current chunk (`stop_reason="interrupted"`), a second one at once.

    **Arguments:**

    - `problem`: the problem (`IVP`, `SecondOrderIVP`, `BVP`).
    - `model`: the ansatz, e.g. [`odefit.PINN`][] (a `result.model` restarts the
        optimiser from a fit's weights); or a [`odefit.FitResult`][] to continue
        that fit exactly for `steps` more: its optimiser and collocation states,
        step count, key (unless `key` is given) and history carry on.
    - `steps`: the number of optimiser steps.
    - `optimizer`: an `optax.GradientTransformation` (L-BFGS included) or an
        odefit trainer. Default: Adam, learning rate 3e-3 decaying to 3e-5.
    - `collocation`: [`odefit.Uniform`][] (redrawn each step; optax's default,
        `Uniform(256, warmup=steps // 2)`) or [`odefit.Grid`][] (fixed; the
        default of least-squares trainers and L-BFGS).
    - `observations`: [`odefit.Observations`][], adding a data term.
    - `weights`: each term's weight by name (`"residual"`, `"conditions"`,
        `"data"`, the names in `terms`); default 1.
    - `terms`: your own loss terms, `{name: fn}`, `fn(model, problem, args, ts)`
        returning a residual vector: loss `weights[name] * mean(fn(...)**2)`,
        shown in the progress bar and history, used by every trainer.
    - `key`: a `jax.random` key for the collocation draws.
    - `progress`, `chunk_size`: show a progress bar; steps per compiled chunk
        (default about `steps / 100`, from 50 to 1000).
    - `throw`: raise `RuntimeError` on divergence or a stall (not just say so).
    - `callback`: called between chunks as `callback(info)` with an
        [`odefit.CallbackInfo`][]; returning `True` stops the fit
        (`stop_reason="stopped by callback"`).
    - `checkpoint_path`, `checkpoint_every`, `resume`: save the fit atomically
        (see [`odefit.save`][]) every `checkpoint_every` steps (default about a
        tenth of the run) and at the end; if the file exists and `resume`, the
        fit continues from it, bit-identical on CPU to an uninterrupted run. A
        checkpoint of another fit raises `ValueError`; `resume=False`
        overwrites it.
    - `devices`: split each step's points across devices (`jax.devices()`).
        With several processes (after `jax.distributed.initialize()`) the
        default is every process's devices; only process 0 shows progress and
        writes checkpoints, and every process returns the same result.

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
    error = odefit.relative_l2(jax.vmap(more.model)(ts), problem.solve(ts))
    ```
    """
    start_time = time.perf_counter()
    options = _setup.shared(locals())
    problem, model, key, previous = _unpack(problem, model, key)
    total = (0 if previous is None else previous.steps) + _setup.check_steps(steps)
    setup = _setup.prepare(problem, model, total, **options)
    _setup.check_checkpointing(checkpoint_path, checkpoint_every, resume)
    devices = _sharding.check_devices(devices)
    # Held from before a resume to after the last write: no two fits share a file.
    # In a fit across processes, process 0 alone holds it and writes the file.
    locked = checkpoint_path is not None and _sharding.writes(devices)
    with _checkpoint.lock(checkpoint_path) if locked else nullcontext():
        start = _start(
            problem, model, setup, key, previous, checkpoint_path, resume, total
        )
        _sharding.check_same_start(start.done, devices)
        finish = functools.partial(
            Outcome.result,
            cls=FitResult,
            problem=problem,
            static=start.objective.static,
            key=key,
            start_time=start_time,
        )
        outcome = drive(
            start.state,
            start.objective,
            key,
            setup.trainer,
            _sharding.shard_points(setup.collocation, devices),
            steps=total,
            chunk=setup.chunk,
            done=start.done,
            history=start.history,
            devices=devices,
            progress=progress,
            callback=callback,
            checkpoint=_checkpointer(checkpoint_path, finish),
            checkpoint_every=checkpoint_every or 10 * setup.chunk,
        )
    raise_if_failed(outcome.reasons, throw)
    return finish(outcome)


def _unpack(problem, model, key):
    """Checks `problem`, `model` and `key`; a `FitResult` in place of the model is
    unpacked into the model, the problem with its learned args, and its key."""
    _setup.check_problem(problem)
    previous = model if isinstance(model, FitResult) else None
    if previous is not None:
        model, problem = previous.model, with_args(problem, previous.problem.args)
        key = previous.key if key is None else key
    _setup.check_model(model)
    _setup.check_key(key)
    return problem, model, key, previous


class _Start(NamedTuple):
    objective: Objective
    state: tuple
    done: int
    history: dict | None


def _start(problem, model, setup, key, previous, checkpoint_path, resume, total):
    """Where a fit starts: afresh, from a previous result, or from its checkpoint."""
    _setup.check_collocation(setup.collocation, problem, key)
    params, static = split(model, problem.args)
    objective = make_objective(
        problem, static, setup.observations, setup.weights, setup.terms
    )
    opt_state = objective.init(setup.trainer, setup.collocation, params, key=key)
    colloc_state = setup.collocation.init(problem.t0, problem.t1, problem.state.dtype)
    start = _Start(objective, (params, opt_state, colloc_state), 0, None)
    if previous is not None:
        state = _continued(previous, start.state)
        start = _Start(objective, state, previous.steps, previous.history)
    if checkpoint_path is not None and resume and os.path.exists(checkpoint_path):
        saved = _checkpoint.resume(
            checkpoint_path,
            problem=problem,
            model=model,
            opt_state=opt_state,
            collocation_state=colloc_state,
            key=key,
            steps=total,
        )
        params = split(saved.model, saved.args)[0]
        state = (params, saved.opt_state, saved.collocation_state)
        start = _Start(objective, state, saved.steps, saved.history)
    return start


def _checkpointer(path, finish: Callable[[Outcome], FitResult]):
    """The checkpoint hook of the training core: saves the result so far."""
    if path is None:
        return None

    def checkpoint(outcome: Outcome) -> None:
        try:
            _checkpoint.save(path, finish(outcome))
        except OSError as e:
            # A full disk must not cost the fit itself; the previous checkpoint is
            # intact (writes are atomic).
            warnings.warn(
                f"odefit could not write the checkpoint at step {outcome.steps} to "
                f"{os.fspath(path)!r} ({e}); the fit goes on.",
                RuntimeWarning,
                stacklevel=4,
            )

    return checkpoint


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
