"""The compiled training loop."""

import math
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np
import optax
from jaxtyping import Array
from tqdm.auto import tqdm

from . import _checkpoint, _sharding
from ._collocation import AbstractCollocation
from ._custom_types import Args, Key
from ._losses import check_weights, loss_terms, physics_residual
from ._models.base import AbstractModel
from ._models.neural_ode import NeuralODE, check_neural_ode_fit
from ._models.pinn import PINN
from ._observations import Observations
from ._problems import AbstractProblem
from ._residuals import Residuals
from ._trainers import AbstractTrainer, as_trainer
from ._unknown import args_mask, resolve_args


class FitResult(eqx.Module):
    """What `fit` returns.

    **Attributes:**

    - `model`: the trained model (the last finite one if the fit diverged).
    - `problem`: the problem, with any `Unknown`s updated to their learned values
        (pass it back to `fit` to continue an inverse problem).
    - `args`: the problem's `args` with every `Unknown` replaced by its learned value.
    - `history`: per-step NumPy arrays: `"loss"`, one per loss term (`"residual"`,
        `"conditions"`, `"data"`, as active) and any trainer statistics.
    - `stop_reason`: `"completed"`, `"interrupted"` or a sentence saying why the fit
        stopped early (e.g. divergence) and what to try.
    - `steps`: how many steps were completed (including those of the checkpoint
        a fit resumed from).
    - `opt_state`: the optimiser state after the last completed step.
    - `collocation_state`: the collocation's state after the last completed step.
    - `key`: the key the fit was run with.
    - `wall_time`: seconds spent in this call to `fit`, compilation included.
    - `compile_time`: seconds of that spent compiling (estimated from the first
        chunk, which includes compilation).
    """

    model: AbstractModel
    problem: AbstractProblem
    args: Args
    history: dict[str, np.ndarray]
    stop_reason: str = eqx.field(static=True)
    steps: int = eqx.field(static=True)
    opt_state: Any
    collocation_state: Any
    key: Key
    wall_time: float = eqx.field(static=True)
    compile_time: float = eqx.field(static=True)


def check_model_matches(problem, model, *, ensemble: bool = False) -> None:
    """A PINN must be built for its problem's interval, shape and dtype. With
    `ensemble=True` the messages speak of `fit_ensemble`'s `models`/`problems`."""
    if not isinstance(model, PINN):
        return
    built, on, predicts, state, advice = (
        (
            "`models` were",
            "`problems` are",
            "`models` predict",
            "the problems'",
            "build each model from its problem",
        )
        if ensemble
        else (
            "`model` was",
            "`problem` is",
            "`model` predicts",
            "`problem`'s",
            "build the model from this problem",
        )
    )
    if (model.t0, model.t1) != (problem.t0, problem.t1):
        raise ValueError(
            f"{built} built for [{model.t0}, {model.t1}] but {on} on "
            f"[{problem.t0}, {problem.t1}]."
        )
    if model.shape != problem.state.shape or model.scale.dtype != problem.state.dtype:
        raise ValueError(
            f"{predicts} shape {model.shape} and dtype {model.scale.dtype} but "
            f"{state} state has shape {problem.state.shape} and dtype "
            f"{problem.state.dtype}; {advice}."
        )


def _check_steps(steps) -> int:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"`steps` must be an integer >= 1, got {steps!r}.")
    return int(steps)


def _check_observations(observations, problem: AbstractProblem, model):
    """Checks `observations` against the problem and model; returns them cast to
    the model's dtype (float32 data for a float64 fit is fine)."""
    if observations is None:
        return None
    if not isinstance(observations, Observations):
        raise TypeError(
            "`observations` must be an odefit.Observations(ts, ys), got "
            f"{type(observations).__name__}."
        )
    ts = np.asarray(observations.ts)
    if ts.min() < problem.t0 or ts.max() > problem.t1:
        raise ValueError(
            f"`observations.ts` must lie in [t0, t1] = [{problem.t0}, {problem.t1}], "
            f"got times from {ts.min()} to {ts.max()}."
        )
    state = jax.eval_shape(model, jnp.asarray(problem.t0, problem.state.dtype))
    if observations.observe is not None:
        try:
            state = jax.eval_shape(observations.observe, state)
        except Exception as e:
            raise ValueError(
                f"`observations.observe` raised {type(e).__name__} when applied to "
                f"a state of shape {state.shape}: {e}"
            ) from e
    if observations.ys.shape[1:] != state.shape:
        raise ValueError(
            f"`observations.ys` has shape {observations.ys.shape}, so each "
            f"observation has shape {observations.ys.shape[1:]}, but the model "
            f"predicts shape {state.shape}"
            + (" after `observe`" if observations.observe is not None else "")
            + "."
        )
    return eqx.tree_at(
        lambda o: (o.ts, o.ys),
        observations,
        (
            observations.ts.astype(problem.state.dtype),
            observations.ys.astype(state.dtype),
        ),
    )


def _pick_chunk(steps: int, chunk_size: int | None) -> int:
    if chunk_size is not None:
        if (
            isinstance(chunk_size, bool)
            or not isinstance(chunk_size, int)
            or chunk_size < 1
        ):
            raise ValueError(
                f"`chunk_size` must be an integer >= 1, got {chunk_size!r}."
            )
        return min(chunk_size, steps)
    # About a hundred host wake-ups per fit, but at least 50 steps per chunk: each
    # wake-up costs about a millisecond, which made a 500-step fit of a small PINN
    # 1.3x slower with 5-step chunks. A chunk length that divides `steps` when one
    # is near, so that only one chunk length is compiled.
    target = min(max(steps // 100, 50), 1000, steps)
    for c in range(target, max(target // 2, 1) - 1, -1):
        if steps % c == 0:
            return c
    return target


def _tree_all_finite(tree) -> Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jtu.tree_leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def train_step(
    state,
    step,
    *,
    static,
    problem: AbstractProblem,
    observations,
    weights,
    trainer: AbstractTrainer,
    collocation: AbstractCollocation,
    key: Key,
):
    """One training step, `state = (params, opt_state, colloc_state)` -> (new state,
    statistics): the body of `_run_chunk`'s scan, a pure function of one fit's
    state, so that `fit_ensemble` can `vmap` it over members."""

    def residuals_fn(p, ts):
        model, args = eqx.combine(p, static)
        return loss_terms(model, problem, resolve_args(args), ts, observations, weights)

    params, opt_state, colloc_state = state
    step_key = jr.fold_in(key, step)

    def residual_size(ts):
        model, args = eqx.combine(params, static)
        r = jax.vmap(lambda t: physics_residual(model, problem, resolve_args(args), t))(
            ts
        )
        return jnp.sqrt(jnp.sum(r.reshape(ts.shape[0], -1) ** 2, axis=1))

    ts, colloc_state = collocation.sample(
        colloc_state, problem.t0, problem.t1, residual_size, key=step_key
    )
    new_params, opt_state, stats = trainer.step(
        Residuals(residuals_fn, ts), params, opt_state
    )
    return (new_params, opt_state, colloc_state), stats


@eqx.filter_jit
# Counts traces (no limit), so tests can check that chunks never retrace.
@eqx.debug.assert_max_traces(max_traces=None)
def _run_chunk(
    params,
    opt_state,
    colloc_state,
    static,
    problem: AbstractProblem,
    observations,
    weights,
    trainer: AbstractTrainer,
    collocation: AbstractCollocation,
    key: Key,
    start,
    length: int,
):
    def body(carry, i):
        return train_step(
            carry,
            start + i,
            static=static,
            problem=problem,
            observations=observations,
            weights=weights,
            trainer=trainer,
            collocation=collocation,
            key=key,
        )

    init = (params, opt_state, colloc_state)
    (params, opt_state, colloc_state), stats = jax.lax.scan(
        body, init, jnp.arange(length)
    )
    return params, opt_state, colloc_state, stats


_all_finite = jax.jit(_tree_all_finite)


def _first_bad_step(losses: np.ndarray, params) -> int | None:
    """The index in a chunk of the first step whose incoming parameters have a
    non-finite loss; the chunk's length if only the final parameters are
    non-finite; `None` if all is finite."""
    finite = np.isfinite(losses)
    if not finite.all():
        return int(np.argmin(finite))
    if not bool(_all_finite(params)):
        return len(losses)
    return None


def _divergence_message(step: int, value: float, kept: int, kept_loss) -> str:
    if step == 0:
        return (
            f"diverged at step 0: the loss of the initial model is {value}, so the "
            "residual or data term is not finite somewhere. The initial model is "
            "returned. Check that the vector field is finite over the whole "
            "interval [t0, t1], not only at t0, and the observations."
        )
    what = (
        f"the loss became {value}"
        if not math.isfinite(value)
        else "the parameters became non-finite"
    )
    if kept == step:
        kept_text = f"The model of step {kept} is returned (its parameters are finite)."
    else:
        kept_text = (
            f"The last finite model, from step {kept} (loss {kept_loss:.4g}), is "
            "returned."
        )
    return (
        f"diverged at step {step}: {what}. {kept_text} Try a lower learning rate, "
        "float64 (jax.config.update('jax_enable_x64', True)), or rescaling the "
        "problem (the model's `scale`, a shorter interval, non-dimensional "
        "variables)."
    )


# A fit stalls when its loss is exactly the same for this many consecutive steps
# (a least-squares trainer rejecting every step on a fixed grid), or when the
# trainer reports a nonzero `"stalled"` statistic.
_STALL_STEPS = 50


def _flat_run(run: int, last: float, losses: np.ndarray) -> int:
    """How many of the latest steps had exactly the loss of the step before, given
    that count `run` and the loss `last` before `losses`."""
    if losses.size == 0:
        return run
    same = losses == np.concatenate([[last], losses[:-1]])
    if same.all():
        return run + losses.size
    return losses.size - 1 - int(np.flatnonzero(~same)[-1])


def _stalled_message(step: int, why: str) -> str:
    return (
        f"stalled at step {step}: {why}. The model of the last step is returned. If "
        "the loss is already tiny, this is as far as this precision goes; "
        "otherwise try float64 "
        "(jax.config.update('jax_enable_x64', True)), rescaling the problem, more "
        "collocation points, or a few thousand Adam steps before the "
        "least-squares trainer."
    )


class _InterruptGuard:
    """During `fit`, turns the first Ctrl-C (SIGINT) into a request to stop after
    the current chunk; a second Ctrl-C raises `KeyboardInterrupt` at once (which
    `fit` still turns into a result). Python's default handler is replaced only in
    the main thread, and only while `fit` runs; a user's own handler is kept."""

    def __init__(self, verbose: bool):
        self.requested = False
        self.verbose = verbose
        self._previous = None

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        if self.verbose:
            sys.stderr.write(
                "\nodefit: stopping after the current chunk "
                "(Ctrl-C again to stop at once).\n"
            )

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            previous = signal.getsignal(signal.SIGINT)
            if previous is signal.default_int_handler:
                signal.signal(signal.SIGINT, self._handle)
                self._previous = previous
        return self

    def __exit__(self, *exc_info):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


def _check_checkpointing(checkpoint_path, checkpoint_every, resume) -> None:
    if checkpoint_path is not None and not isinstance(
        checkpoint_path, (str, os.PathLike)
    ):
        raise TypeError(
            "`checkpoint_path` must be a str or os.PathLike, got "
            f"{type(checkpoint_path).__name__}."
        )
    if checkpoint_every is not None:
        if (
            isinstance(checkpoint_every, bool)
            or not isinstance(checkpoint_every, (int, np.integer))
            or checkpoint_every < 1
        ):
            raise ValueError(
                f"`checkpoint_every` must be an integer >= 1, got {checkpoint_every!r}."
            )
        if checkpoint_path is None:
            raise ValueError(
                "`checkpoint_every` was given without a `checkpoint_path` to write to."
            )
    if not isinstance(resume, bool):
        raise TypeError(f"`resume` must be True or False, got {resume!r}.")
    if checkpoint_path is not None:
        directory = os.path.dirname(os.path.abspath(checkpoint_path))
        if not os.path.isdir(directory):
            raise ValueError(
                f"`checkpoint_path` is {os.fspath(checkpoint_path)!r}, but its "
                f"directory {directory!r} does not exist."
            )
        if os.path.isdir(checkpoint_path):
            raise ValueError(
                f"`checkpoint_path` is {os.fspath(checkpoint_path)!r}, a directory; "
                "give a file name."
            )


def _check_key(key) -> None:
    if isinstance(key, jax.Array) and (
        jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
        or (key.dtype == jnp.uint32 and key.shape == (2,))
    ):
        return
    raise TypeError(
        "`key` must be a jax.random key such as jax.random.key(0), got "
        + (
            f"an array of shape {key.shape} and dtype {key.dtype}."
            if isinstance(key, jax.Array)
            else f"{type(key).__name__}."
        )
    )


def _check_collocation(collocation, state, problem: AbstractProblem, key) -> None:
    """Samples the collocation once, eagerly: a bad custom collocation fails here
    with a message instead of silently training on the wrong points."""
    ts, _ = collocation.sample(state, problem.t0, problem.t1, jnp.ones_like, key=key)
    ts = np.asarray(ts)
    name = type(collocation).__name__
    if ts.ndim != 1 or ts.size == 0:
        raise ValueError(
            f"`collocation` ({name}) must give a non-empty 1-D array of times, got "
            f"shape {ts.shape}."
        )
    if not np.issubdtype(ts.dtype, np.floating):
        raise TypeError(
            f"`collocation` ({name}) must give floating-point times, got dtype "
            f"{ts.dtype}."
        )
    if not np.all(np.isfinite(ts)) or ts.min() < problem.t0 or ts.max() > problem.t1:
        raise ValueError(
            f"`collocation` ({name}) must give times in [t0, t1] = "
            f"[{problem.t0}, {problem.t1}], got times from {ts.min()} to {ts.max()}."
        )


def _with_args(problem: AbstractProblem, args) -> AbstractProblem:
    return eqx.tree_at(lambda p: p.args, problem, args, is_leaf=lambda x: x is None)


def _concat_history(chunks: list[dict[str, np.ndarray]], steps: int):
    names = {name: None for chunk in chunks for name in chunk}
    return {
        name: np.concatenate([c[name] for c in chunks if name in c])[:steps]
        for name in names
    }


def fit(
    problem: AbstractProblem,
    model: AbstractModel,
    *,
    steps: int,
    optimizer: optax.GradientTransformation | AbstractTrainer | None = None,
    collocation: AbstractCollocation | None = None,
    observations: Observations | None = None,
    weights: Mapping[str, float] | None = None,
    key: Key,
    progress: bool = True,
    chunk_size: int | None = None,
    throw: bool = False,
    checkpoint_path: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    resume: bool = True,
    devices: Sequence[jax.Device] | None = None,
) -> FitResult:
    r"""Fits `model` to the solution of `problem`.

    Minimises the sum of the weighted loss terms

    $$L(\theta) = w_r \operatorname{mean}_i \lVert R_\theta(t_i) \rVert^2
        + w_c \lVert C_\theta \rVert^2 + w_d \operatorname{mean}_j
        \lVert y_\theta(t_j) - y_j \rVert^2$$

    — the ODE residual at collocation points $t_i$, the initial/boundary conditions
    (only when they are not built into the model) and the observations — over the
    network's weights and any [`odefit.Unknown`][] entries of `problem.args`.

    Steps run in chunks, each one compiled `jax.lax.scan`; between chunks the host
    updates the progress bar and the history. There is no per-step Python.

    **Arguments:**

    - `problem`: an [`odefit.IVP`][], [`odefit.SecondOrderIVP`][] or
        [`odefit.BVP`][].
    - `model`: the ansatz, e.g. [`odefit.PINN`][]; a `result.model` continues a
        previous fit.
    - `steps`: the number of optimiser steps.
    - `optimizer`: any `optax.GradientTransformation` (L-BFGS included: it gets the
        value and a `value_fn`) or an odefit least-squares trainer. Default: Adam,
        learning rate decaying exponentially from 3e-3 to 3e-5 over `steps`.
    - `collocation`: [`odefit.Uniform`][] (points redrawn each step; the default
        for optax is `Uniform(256, warmup=steps // 2)`, a window growing from
        $t_0$ over the first half of the run) or [`odefit.Grid`][] (fixed points;
        use with L-BFGS and least-squares trainers).
    - `observations`: [`odefit.Observations`][], adding a data term.
    - `weights`: weights of the terms, keys among `"residual"`, `"conditions"` and
        `"data"`; default 1 each.
    - `key`: a `jax.random` key for the collocation draws.
    - `progress`: show a progress bar (loss and steps/s).
    - `chunk_size`: steps per compiled chunk; default about `steps / 100`, at
        least 50 and at most 1000.
    - `throw`: raise `RuntimeError` on divergence (or a stalled trainer) instead
        of returning the last finite model with a `stop_reason`.
    - `checkpoint_path`: a file to save the fit's state to, atomically (see
        [`odefit.save`][]): every `checkpoint_every` steps and when the fit stops
        (completed, interrupted or diverged). If the file already exists and
        `resume` is true, the fit continues from it: rerunning the same script
        after a crash or Ctrl-C picks up where the checkpoint left off and ends
        bit-identical (on CPU) to an uninterrupted run. A checkpoint of another
        problem, model shape, optimiser or key, or a corrupted one, raises
        `ValueError` and is left untouched.
    - `checkpoint_every`: steps between checkpoints; default about a tenth of
        the run.
    - `resume`: continue from an existing `checkpoint_path`; with `False` the fit
        starts afresh and overwrites it.
    - `devices`: run on several devices (e.g. `jax.devices()`): each step's
        collocation points are split across them with `jax.sharding` and the
        parameters replicated; the result equals a one-device fit up to the order
        of floating-point sums. Default: JAX's default device. After
        `jax.distributed.initialize()`, `jax.devices()` spans every host.

    Ctrl-C stops the fit after the current chunk and returns the result so far,
    with `stop_reason="interrupted"`; a second Ctrl-C stops at once (the result
    is that of the last completed chunk).

    **Returns:** an [`odefit.FitResult`][].

    **Example:**

    ```python
    import jax, jax.numpy as jnp, odefit

    problem = odefit.IVP(lambda t, y, args: -2.0 * y, t0=0.0, t1=2.0, y0=1.0)
    model = odefit.PINN(problem, width=32, depth=2, key=jax.random.key(0))
    result = odefit.fit(problem, model, steps=2000, key=jax.random.key(1),
                        progress=False)
    ts = jnp.linspace(0.0, 2.0, 101)
    odefit.relative_l2(jax.vmap(result.model)(ts), problem.solve(ts))
    ```
    """
    start_time = time.perf_counter()
    if not isinstance(problem, AbstractProblem):
        raise TypeError(
            "`problem` must be an odefit problem (IVP, SecondOrderIVP, BVP), got "
            f"{type(problem).__name__}."
        )
    if not isinstance(model, AbstractModel):
        raise TypeError(
            f"`model` must be an odefit model such as odefit.PINN, got "
            f"{type(model).__name__}."
        )
    check_model_matches(problem, model)
    steps = _check_steps(steps)
    trainer = as_trainer(optimizer, steps)
    if collocation is None:
        collocation = trainer.default_collocation(steps)
    elif not isinstance(collocation, AbstractCollocation):
        raise TypeError(
            "`collocation` must be odefit.Grid(n), odefit.Uniform(n) or another "
            f"odefit collocation, got {type(collocation).__name__}."
        )
    observations = _check_observations(observations, problem, model)
    if isinstance(model, NeuralODE):
        check_neural_ode_fit(model, problem, observations)
    weights = check_weights(weights)
    _check_key(key)
    _check_checkpointing(checkpoint_path, checkpoint_every, resume)
    devices = _sharding.check_devices(devices)
    chunk = _pick_chunk(steps, chunk_size)
    if checkpoint_path is not None and checkpoint_every is None:
        checkpoint_every = 10 * chunk

    params, static = eqx.partition(
        (model, problem.args), (model.trainable(), args_mask(problem.args))
    )
    dtype = problem.state.dtype
    colloc_state = collocation.init(problem.t0, problem.t1, dtype)
    _check_collocation(collocation, colloc_state, problem, key)

    def residuals_at_start(p):
        model_, args_ = eqx.combine(p, static)
        ts, _ = collocation.sample(
            colloc_state, problem.t0, problem.t1, lambda ts: ts, key=key
        )
        return loss_terms(
            model_, problem, resolve_args(args_), ts, observations, weights
        )

    opt_state = trainer.init(residuals_at_start, params)
    collocation = _sharding.shard_points(collocation, devices)

    history: list[dict[str, np.ndarray]] = []
    done = 0
    if checkpoint_path is not None and resume and os.path.exists(checkpoint_path):
        saved = _checkpoint.resume(
            checkpoint_path,
            problem=problem,
            model=model,
            opt_state=opt_state,
            collocation_state=colloc_state,
            key=key,
            steps=steps,
        )
        params, static = eqx.partition(
            (saved.model, saved.args),
            (saved.model.trainable(), args_mask(saved.args)),
        )
        opt_state, colloc_state = saved.opt_state, saved.collocation_state
        done = saved.steps
        history.append(saved.history)

    def advance(state, start: int, n: int):
        """`n` steps from `state`, the state after `start` steps."""
        *new_state, stats = _run_chunk(
            *state,
            static,
            problem,
            observations,
            weights,
            trainer,
            collocation,
            key,
            jnp.asarray(start),
            n,
        )
        return tuple(new_state), stats

    def write_checkpoint(state, steps_done: int, reason: str) -> None:
        model_, args_ = eqx.combine(state[0], static)
        try:
            _checkpoint.write(
                checkpoint_path,
                model=model_,
                problem=_with_args(problem, args_),
                opt_state=state[1],
                collocation_state=state[2],
                key=key,
                steps=steps_done,
                history=_concat_history(history, steps_done),
                stop_reason=reason,
            )
        except OSError as e:
            # A full disk must not cost the fit itself; the previous checkpoint
            # is intact (writes are atomic).
            warnings.warn(
                f"odefit could not write the checkpoint at step {steps_done} to "
                f"{os.fspath(checkpoint_path)!r} ({e}); the fit goes on.",
                RuntimeWarning,
                stacklevel=3,
            )

    # `state` is the state after `done` steps; `previous` the one at the chunk
    # boundary before, to step back to if a chunk's first loss is non-finite.
    # Both are only ever replaced whole, so an interrupt leaves them consistent.
    state = _sharding.replicate((params, opt_state, colloc_state), devices)
    previous = None
    # Resumed fits count a run of unchanged losses from the saved history, so
    # they stop where an uninterrupted fit would.
    saved_losses = np.asarray(history[0]["loss"]) if history else np.zeros((0,))
    flat_run = _flat_run(0, math.nan, saved_losses)
    last_loss = float(saved_losses[-1]) if saved_losses.size else math.nan
    stop_reason = "completed"
    failed = False
    chunk_times = []
    bar = tqdm(
        total=steps,
        initial=done,
        disable=not progress,
        unit="step",
        dynamic_ncols=True,
        mininterval=0.5,
        desc="odefit",
    )
    with _InterruptGuard(verbose=progress) as interrupt:
        try:
            while done < steps:
                if interrupt.requested:
                    stop_reason = "interrupted"
                    break
                # Chunks end on multiples of `chunk` (and of `checkpoint_every`),
                # counted from step 0, so a resumed fit compiles the same lengths.
                length = min(chunk - done % chunk, steps - done)
                if checkpoint_every is not None:
                    length = min(length, checkpoint_every - done % checkpoint_every)
                tic = time.perf_counter()
                new_state, stats = advance(state, done, length)
                stats = jax.device_get(stats)
                chunk_times.append((length, time.perf_counter() - tic))
                losses = np.asarray(stats["loss"])
                bad = _first_bad_step(losses, new_state[0])
                if bad is not None:
                    # Step back to the last state with a finite loss, by
                    # recomputing from a chunk boundary (per-step keys make this
                    # exact).
                    if bad > 0:
                        target, source, source_done = done + bad - 1, state, done
                        kept_loss = float(losses[bad - 1])
                    elif previous is not None:
                        (source, source_done), target = previous, done - 1
                        kept_loss = float(history[-1]["loss"][-1])
                    else:
                        target, source, source_done = done, state, done
                        kept_loss = math.nan
                    kept = source
                    if target > source_done:
                        kept, _ = advance(source, source_done, target - source_done)
                    if not bool(_all_finite(kept[0])):
                        kept, target, kept_loss = state, done, math.nan
                    value = float(losses[bad]) if bad < length else 0.0
                    stop_reason = _divergence_message(
                        done + bad, value, target, kept_loss
                    )
                    history.append(stats)
                    failed = True
                    state, done = kept, target
                    break
                history.append(stats)
                previous = (state, done)
                state, done = new_state, done + length
                bar.update(length)
                bar.set_postfix(loss=f"{float(losses[-1]):.3e}", refresh=False)
                stalled = np.asarray(stats.get("stalled", False))
                flat_run = _flat_run(flat_run, last_loss, losses)
                last_loss = float(losses[-1])
                if np.any(stalled):
                    stop_reason = _stalled_message(
                        done - length + int(np.argmax(stalled)),
                        "the trainer reports that it can make no progress",
                    )
                    failed = True
                    break
                if flat_run >= _STALL_STEPS and last_loss != 0.0:
                    stop_reason = _stalled_message(
                        done - 1 - flat_run,
                        f"the loss ({last_loss:.4g}) has not changed in "
                        f"{flat_run + 1} steps: the trainer rejects every step "
                        "(e.g. a least-squares trainer's damping reached its limit)",
                    )
                    failed = True
                    break
                if (
                    checkpoint_path is not None
                    and done % checkpoint_every == 0
                    and done < steps
                ):
                    write_checkpoint(state, done, _checkpoint.RUNNING)
        except KeyboardInterrupt:
            stop_reason = "interrupted"
        finally:
            bar.close()
    if checkpoint_path is not None:
        write_checkpoint(state, done, stop_reason)

    params, opt_state, colloc_state = state
    model, args = eqx.combine(params, static)
    if failed and throw:
        raise RuntimeError(stop_reason)
    wall_time = time.perf_counter() - start_time
    return FitResult(
        model=model,
        problem=_with_args(problem, args),
        args=resolve_args(args),
        history=_concat_history(history, done),
        stop_reason=stop_reason,
        steps=done,
        opt_state=opt_state,
        collocation_state=colloc_state,
        key=key,
        wall_time=wall_time,
        compile_time=_compile_time(chunk_times),
    )


def _compile_time(chunk_times: list[tuple[int, float]]) -> float:
    if len(chunk_times) < 2:
        return math.nan
    (n0, t_first), rest = chunk_times[0], chunk_times[1:]
    per_step = float(np.median([t / n for n, t in rest]))
    return max(t_first - n0 * per_step, 0.0)
