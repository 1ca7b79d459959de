r"""The training core that every `fit*` function runs on.

- **One compiled chunk** (`run_chunk`): `length` steps inside one `jax.lax.scan`,
  for one fit or, with a leading member axis, for an ensemble (`jax.vmap` or
  `jax.lax.map` over the members). Each step draws the collocation points, asks
  the trainer for a step and updates the stopping rules: the carry holds, per
  member, the `current` state and the last `accepted` one (a state is accepted
  once its loss, computed at the next step, is finite). A member whose loss
  becomes non-finite or that stalls stops there: its accepted state is its result.
  No step is ever recomputed.
- **One host driver** (`drive`): the progress bar, Ctrl-C, the history, the
  callback and the checkpoint hook, between chunks.
- **One initial objective**: [`odefit._objective.Objective.init`].
"""

import contextlib
import functools
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array, PyTree
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from . import _sharding
from ._collocation import AbstractCollocation
from ._custom_types import Key
from ._objective import Objective
from ._result import (
    BLOWUP,
    STALL_STEPS,
    Stop,
    failed,
    history_length,
    join_histories,
    stop_message,
    with_args,
)
from ._trainers import AbstractTrainer
from ._unknown import resolve_args

# The largest step count the compiled loop's int32 counters hold.
MAX_STEPS = 2**31 - 1


class LoopState(eqx.Module):
    """The carry of the compiled loop (every array has a leading member axis in an
    ensemble). A fit's state is `(params, opt_state, collocation_state)`."""

    accepted: PyTree  # the last state whose loss was finite
    current: PyTree  # the state after the steps done so far
    status: Array  # a `Stop` code: RUNNING until the member stops
    at: Array  # the step at which it stopped
    flat: Array  # how many consecutive steps left the loss exactly unchanged
    last: Array  # the loss of the previous step
    initial: Array  # the loss of the fit's first step
    best: Array  # the lowest loss so far,
    best_state: PyTree  # of this state,
    best_at: Array  # after this many steps


def initial_state(
    state, *, members: int | None, dtype, flat=0, last=math.nan, initial=math.nan
):
    shape = () if members is None else (members,)
    return LoopState(
        accepted=state,
        current=state,
        status=jnp.full(shape, int(Stop.RUNNING), jnp.int32),
        at=jnp.zeros(shape, jnp.int32),
        flat=jnp.full(shape, flat, jnp.int32),
        last=jnp.full(shape, last, dtype),
        initial=jnp.full(shape, initial, dtype),
        best=jnp.full(shape, jnp.inf, dtype),
        best_state=state,
        best_at=jnp.zeros(shape, jnp.int32),
    )


def map_members(fn, batched, batch_size: int | None):
    """`fn` applied to each member of `batched` (arrays with a leading member axis;
    other leaves shared): all at once with `vmap`, or `batch_size` at a time."""
    arrays, rest = eqx.partition(batched, eqx.is_array)

    def one(a):
        return fn(eqx.combine(a, rest))

    if batch_size is None:
        return jax.vmap(one)(arrays)
    return jax.lax.map(one, arrays, batch_size=batch_size)


def _select(mask, on_true, on_false):
    """Per member: `on_true` where `mask`, else `on_false`."""

    def pick(a, b):
        return jnp.where(mask.reshape(mask.shape + (1,) * (a.ndim - mask.ndim)), a, b)

    return jtu.tree_map(pick, on_true, on_false)


def train_step(state, step, objective: Objective, trainer, collocation, key):
    """One training step of one fit: `(params, opt_state, colloc_state)` -> (new
    state, statistics evaluated at the incoming parameters)."""
    params, opt_state, colloc_state = state
    ts, colloc_state = objective.sample(
        collocation, colloc_state, params, key=jr.fold_in(key, step)
    )
    params, opt_state, stats = trainer.step(objective.residuals(ts), params, opt_state)
    return (params, opt_state, colloc_state), stats


@eqx.filter_jit
# Counts traces (no limit), so tests can check that chunks never retrace.
@eqx.debug.assert_max_traces(max_traces=None)
def run_chunk(
    carry: LoopState,
    objective: Objective,
    key: Key,
    trainer: AbstractTrainer,
    collocation: AbstractCollocation,
    start,
    length: int,
    members: bool,
    batch_size: int | None,
    devices,
):
    """`length` steps from `carry`, the state after `start` steps. With `members`,
    `objective.problem`, `objective.static`, `key` and every array of `carry`
    have a leading member axis."""

    def step_all(current, step):
        if not members:
            return train_step(current, step, objective, trainer, collocation, key)

        def one(member):
            state, problem, static, k = member
            o = eqx.tree_at(
                lambda o: (o.problem, o.static), objective, (problem, static)
            )
            return train_step(state, step, o, trainer, collocation, k)

        member_data = (current, objective.problem, objective.static, key)
        return map_members(one, member_data, batch_size)

    def body(carry: LoopState, i):
        step = (start + i).astype(jnp.int32)
        new_state, stats = step_all(carry.current, step)
        loss = stats["loss"]
        running = carry.status == Stop.RUNNING
        finite = jnp.isfinite(loss)
        accepted = _select(running & finite, carry.current, carry.accepted)
        better = running & finite & (loss < carry.best)
        best_state = _select(better, carry.current, carry.best_state)
        best = jnp.where(better, loss, carry.best)
        best_at = jnp.where(better, step, carry.best_at)
        initial = jnp.where(jnp.isnan(carry.initial), loss, carry.initial)
        flat = jnp.where(loss == carry.last, carry.flat + 1, 0)
        code = jnp.where((flat >= STALL_STEPS) & (loss != 0), Stop.STALLED, 0)
        if "stalled" in stats:
            code = jnp.where(stats["stalled"] != 0, Stop.TRAINER_STALLED, code)
        code = jnp.where(loss > BLOWUP * initial, Stop.BLOWUP, code)
        code = jnp.where(finite, code, Stop.DIVERGED)
        status = jnp.where(running, code, carry.status).astype(jnp.int32)
        at = jnp.where(running & (code != 0), step, carry.at).astype(jnp.int32)
        recorded = jtu.tree_map(
            lambda x: (
                jnp.where(running, x, jnp.asarray(jnp.nan, x.dtype))
                if jnp.issubdtype(x.dtype, jnp.floating)
                else x
            ),
            stats,
        )
        carry = LoopState(
            accepted,
            new_state,
            status,
            at,
            flat,
            loss,
            initial,
            best,
            best_state,
            best_at.astype(jnp.int32),
        )
        if members:
            carry = _sharding.constrain_members(carry, devices)
        return carry, recorded

    return jax.lax.scan(body, carry, jnp.arange(length))


class InterruptGuard:
    """While a fit runs, turns the first Ctrl-C (SIGINT) into a request to stop
    after the current chunk; a second Ctrl-C raises `KeyboardInterrupt` at once
    (which the driver still turns into a result). Python's default handler is
    replaced only in the main thread, and only while the fit runs; a user's own
    handler is kept."""

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


# The guard of the `fit*` call in progress: nested calls (the stages of
# `fit_stages`, the windows of `fit_marching`) share the outermost one.
_GUARDS: list[InterruptGuard] = []


def interruptible(fit_function):
    """Guards a whole `fit*` call, set-up and compilation included, so that a
    Ctrl-C at any moment gives a result ("interrupted"), never a traceback from
    inside the compiler; a second Ctrl-C still stops at once."""

    @functools.wraps(fit_function)
    def guarded(*args, **kwargs):
        if _GUARDS:
            return fit_function(*args, **kwargs)
        with InterruptGuard(verbose=kwargs.get("progress", True) is True) as guard:
            _GUARDS.append(guard)
            try:
                return fit_function(*args, **kwargs)
            finally:
                _GUARDS.pop()

    return guarded


class CallbackInfo(eqx.Module):
    """What a `callback` of [`odefit.fit`][] (and every other `fit*` function)
    receives between chunks.

    **Attributes:**

    - `step`: the number of steps done so far.
    - `model`: the model after `step` steps (batched in an ensemble).
    - `args`: the problem's `args` values at that point (`Unknown`s resolved).
    - `losses`: the latest value of `"loss"` and of every term and statistic, as
        floats (NumPy arrays, one value per member, in an ensemble).
    - `history`: the history so far, in the format of `FitResult.history`.
    """

    step: int = eqx.field(static=True)
    model: Any
    args: Any
    losses: dict[str, Any]
    history: dict[str, np.ndarray]


def check_callback(callback) -> None:
    if callback is not None and not callable(callback):
        raise TypeError(
            "`callback` must be a function callback(info) -> bool | None, got "
            f"{type(callback).__name__}."
        )


def pick_chunk(steps: int, chunk_size: int | None) -> int:
    if chunk_size is not None:
        if (
            isinstance(chunk_size, bool)
            or not isinstance(chunk_size, (int, np.integer))
            or chunk_size < 1
        ):
            raise ValueError(
                f"`chunk_size` must be an integer >= 1, got {chunk_size!r}."
            )
        return min(int(chunk_size), steps)
    # About a hundred host wake-ups per fit, but at least 50 steps per chunk: each
    # wake-up costs about a millisecond, which made a 500-step fit of a small PINN
    # 1.3x slower with 5-step chunks. A chunk length that divides `steps` when one
    # is near, so that only one chunk length is compiled.
    target = min(max(steps // 100, 50), 1000, steps)
    for c in range(target, max(target // 2, 1) - 1, -1):
        if steps % c == 0:
            return c
    return target


def _finite_members(tree, shape) -> np.ndarray:
    ok = np.ones(shape, bool)
    for x in jtu.tree_leaves(tree):
        if eqx.is_array(x) and jnp.issubdtype(x.dtype, jnp.inexact):
            ok &= np.isfinite(np.asarray(x).reshape(shape + (-1,))).all(axis=-1)
    return ok


def _host_select(mask: np.ndarray, on_true, on_false):
    def pick(a, b):
        if mask.ndim == 0:
            return a if mask else b
        a, b = np.asarray(a), np.asarray(b)
        return jnp.asarray(
            np.where(mask.reshape(mask.shape + (1,) * (a.ndim - 1)), a, b)
        )

    return jtu.tree_map(pick, on_true, on_false)


class Outcome(NamedTuple):
    """A run's result, before the front end builds its result type: the state of
    each member, its steps and its stop reason (scalars without a member axis)."""

    state: PyTree  # (params, opt_state, collocation_state)
    steps: Any  # int, or a tuple of ints
    reasons: Any  # str, or a tuple of str
    history: dict[str, np.ndarray]
    done: int
    compile_time: float

    def result(self, cls, *, problem, static, key, start_time: float):
        """The front end's result (`FitResult` or `EnsembleResult`, which share
        their field names): trained model, problem with its learned args, ..."""
        params, opt_state, colloc_state = self.state
        # With several processes: arrays of this process, like the state.
        static, key = _sharding.local((static, key))
        model, args = eqx.combine(params, static)
        return cls(
            model=model,
            problem=with_args(problem, args),
            args=resolve_args(args),
            history=self.history,
            stop_reason=self.reasons,
            steps=self.steps,
            opt_state=opt_state,
            collocation_state=colloc_state,
            key=key,
            wall_time=time.perf_counter() - start_time,
            compile_time=self.compile_time,
        )


def _outcome(
    carry: LoopState,
    history,
    done: int,
    host_stop: Stop,
    compile_time: float,
    diagnose: Callable[[], str] | None = None,
) -> Outcome:
    fetch = _sharding.fetch
    status, at = np.array(fetch(carry.status)), np.array(fetch(carry.at))
    # A running member whose last step made its parameters non-finite ends on its
    # accepted state, like a member whose loss became non-finite.
    bad_end = (status == Stop.RUNNING) & ~_finite_members(
        fetch(carry.current[0]), status.shape
    )
    status = np.where(bad_end, int(Stop.DIVERGED), status)
    at = np.where(bad_end, done, at)
    # Without a member axis the state stays where it is (e.g. replicated on
    # several devices; with several processes, each takes its own copy); an
    # ensemble's members are picked on the host.
    trees = (carry.current, carry.accepted, carry.best_state)
    if status.ndim == 0:
        current, accepted, best_state = _sharding.local(trees)
    else:
        current, accepted, best_state = fetch(trees)
    state = _host_select(status == Stop.RUNNING, current, accepted)
    state = _host_select(status == Stop.BLOWUP, best_state, state)
    best_at, best = np.asarray(fetch(carry.best_at)), np.asarray(fetch(carry.best))
    initial = np.asarray(fetch(carry.initial))
    loss = history["loss"]
    steps, reasons = [], []
    for index in np.ndindex(status.shape):
        code, s = Stop(int(status[index])), int(at[index])
        losses = loss[index]
        if code == Stop.RUNNING:
            steps.append(done)
            reasons.append(stop_message(host_stop))
        elif code == Stop.DIVERGED:
            kept = max(s - 1, 0)
            steps.append(kept)
            value = float(losses[s]) if s < losses.shape[-1] else None
            terms = [
                name
                for name, values in history.items()
                if name != "loss"
                and values.dtype.kind == "f"
                and s < values.shape[-1]
                and not np.isfinite(values[index][s])
            ]
            detail = f"non-finite term: {', '.join(terms)}" if terms else ""
            if s == 0 and diagnose is not None:
                detail = "; ".join(d for d in (detail, diagnose()) if d)
            reasons.append(
                stop_message(
                    code,
                    step=s,
                    value=value,
                    kept=kept,
                    kept_loss=float(losses[kept]) if s > 0 else math.nan,
                    detail=detail,
                )
            )
        elif code == Stop.BLOWUP:
            steps.append(int(best_at[index]))
            reasons.append(
                stop_message(
                    code,
                    step=s,
                    value=float(losses[s]),
                    kept=int(best_at[index]),
                    kept_loss=float(best[index]),
                    initial=float(initial[index]),
                )
            )
        else:
            begin = s - STALL_STEPS if code == Stop.STALLED else s
            steps.append(s)
            reasons.append(
                stop_message(code, step=begin, value=float(losses[s]), kept=s)
            )
    if status.ndim == 0:
        steps, reasons = steps[0], reasons[0]
        history = {k: v[..., :steps] for k, v in history.items()}
    else:
        steps, reasons = tuple(steps), tuple(reasons)
    return Outcome(state, steps, reasons, history, done, compile_time)


def diagnosis(objective: Objective, params, *, points: int = 1001) -> str:
    """Where the initial model's loss is not finite: the model itself, or its
    residual, at which times (on a grid of the interval)."""
    problem = objective.problem
    ts = jnp.linspace(problem.t0, problem.t1, points, dtype=problem.state.dtype)
    model, args = objective.model_and_args(params)

    def where(values) -> str:
        bad = ~np.isfinite(np.asarray(values).reshape(points, -1)).all(axis=1)
        if not bad.any():
            return ""
        t = np.asarray(ts)[bad]
        return f"at {bad.sum()} of {points} times in [{t.min():.6g}, {t.max():.6g}]"

    try:
        found = where(model.predict(ts))
        if found:
            return (
                f"the model's own prediction is not finite {found}: check the "
                "interval (t0, t1) and the model's `scale` for this dtype"
            )
        found = where(objective.residual_norms(params)(ts))
        if found:
            return f"the ODE residual is not finite {found}"
    except Exception:  # a diagnosis must never hide the fit's own result
        return ""
    return ""


def _compile_time(chunk_times: list[tuple[int, float]]) -> float:
    if len(chunk_times) < 2:
        return math.nan
    (n0, t_first), rest = chunk_times[0], chunk_times[1:]
    per_step = float(np.median([t / n for n, t in rest]))
    return max(t_first - n0 * per_step, 0.0)


def _postfix(
    history: Mapping[str, np.ndarray], running: np.ndarray, names: Sequence[str]
) -> dict:
    """The progress bar's figures: the loss and each term's (the median over the
    running members of an ensemble)."""
    out = {}
    for name in ("loss", *names):
        if name not in history:
            continue
        last = np.asarray(history[name])[..., -1]
        if last.ndim:
            last = last[running]
            if last.size == 0:
                continue
        out[name] = f"{float(np.median(last)):.3e}"
    if running.ndim:
        out["running"] = int(running.sum())
    return out


def drive(
    state,
    objective: Objective,
    key: Key,
    trainer: AbstractTrainer,
    collocation: AbstractCollocation,
    *,
    steps: int,
    chunk: int,
    done: int = 0,
    history: Mapping[str, np.ndarray] | None = None,
    members: int | None = None,
    batch_size: int | None = None,
    devices=None,
    progress: bool = True,
    desc: str = "odefit",
    callback: Callable | None = None,
    checkpoint: Callable[[Outcome], None] | None = None,
    checkpoint_every: int | None = None,
) -> Outcome:
    """Runs `state` (the state after `done` steps, whose history so far is
    `history`) up to `steps` steps, chunk by chunk.

    Between chunks: the progress bar, Ctrl-C (stop after this chunk), the
    callback (`True` stops), periodic checkpoints (`checkpoint(outcome)` with the
    stop reason "running"). The final outcome is checkpointed too.
    """
    history = dict(history or {})
    # A run of unchanged losses continues from the saved history, so a continued
    # fit stops where an uninterrupted one would.
    flat, last = _flat_run(history)
    dtype = objective.problem.state.dtype
    initial = math.nan
    if members is None and history_length(history):
        initial = float(history["loss"][0])
    carry = initial_state(
        state, members=members, dtype=dtype, flat=flat, last=last, initial=initial
    )
    if members is None:
        carry = _sharding.replicate(carry, devices)
    else:
        carry = _sharding.shard_members(carry, devices)
    parts = [history] if history_length(history) else []
    chunk_times: list[tuple[int, float]] = []
    host_stop = Stop.COMPLETED
    bar = tqdm(
        total=steps,
        initial=done,
        disable=not progress or not _sharding.writes(devices),
        unit="step",
        dynamic_ncols=True,
        mininterval=0.5,
        desc=desc,
    )

    def outcome(stop: Stop) -> Outcome:
        shape = () if members is None else (members,)
        joined = join_histories(parts) if parts else {"loss": np.zeros(shape + (0,))}
        diagnose = None
        if members is None:
            diagnose = functools.partial(diagnosis, objective, state[0])
        return _outcome(
            carry,
            joined,
            done,
            stop,
            _compile_time(chunk_times),
            diagnose,
        )

    guard = _GUARDS[-1] if _GUARDS else InterruptGuard(verbose=progress)
    with contextlib.nullcontext(guard) if _GUARDS else guard as interrupt:
        try:
            while done < steps:
                # Every process leaves the loop at the same chunk.
                if _sharding.any_process(interrupt.requested, devices):
                    host_stop = Stop.INTERRUPTED
                    break
                # Chunks end on multiples of `chunk` (and of `checkpoint_every`),
                # counted from step 0, so a resumed fit compiles the same lengths.
                length = min(chunk - done % chunk, steps - done)
                if checkpoint_every is not None:
                    length = min(length, checkpoint_every - done % checkpoint_every)
                tic = time.perf_counter()
                # XLA runs its own threads; the LAPACK calls inside a step (the
                # least-squares solves) go to OpenBLAS, whose threads would spin
                # against XLA's (benchmarks/results/lapack_threads.json).
                with threadpool_limits(limits=1, user_api="blas"):
                    new_carry, stats = run_chunk(
                        carry,
                        objective,
                        key,
                        trainer,
                        collocation,
                        jnp.asarray(done),
                        length,
                        members is not None,
                        batch_size,
                        devices,
                    )
                    stats = _sharding.fetch(stats)
                chunk_times.append((length, time.perf_counter() - tic))
                # The history's format: (steps,) or (members, steps).
                parts.append(
                    {k: np.moveaxis(np.asarray(v), 0, -1) for k, v in stats.items()}
                )
                carry, done = new_carry, done + length
                running = np.asarray(_sharding.fetch(carry.status)) == Stop.RUNNING
                bar.update(length)
                bar.set_postfix(
                    _postfix(parts[-1], running, tuple(objective.weights)),
                    refresh=False,
                )
                if not running.any():
                    break
                if callback is not None:
                    joined = join_histories(parts)
                    params = _sharding.local(carry.current[0])
                    model, args = objective.model_and_args(params)
                    info = CallbackInfo(
                        step=done,
                        model=model,
                        args=args,
                        losses={k: v[..., -1] for k, v in joined.items()},
                        history=joined,
                    )
                    if _sharding.main_decides(callback(info) is True, devices):
                        host_stop = Stop.CALLBACK
                        break
                if (
                    checkpoint is not None
                    and done % checkpoint_every == 0
                    and done < steps
                ):
                    running_outcome = outcome(Stop.RUNNING)
                    if _sharding.writes(devices):
                        checkpoint(running_outcome)
        except KeyboardInterrupt:
            host_stop = Stop.INTERRUPTED
        finally:
            bar.close()
    result = outcome(host_stop)
    if checkpoint is not None:
        if _sharding.writes(devices):
            checkpoint(result)
        # No process goes on (to read the file, say) before it is written.
        _sharding.barrier("odefit checkpoint", devices)
    return result


def _flat_run(history: Mapping[str, np.ndarray]) -> tuple[int, float]:
    """How many of the latest steps had exactly the loss of the step before, and
    the last loss (a history without a member axis; an ensemble starts afresh)."""
    loss = np.asarray(history.get("loss", np.zeros((0,))))
    if loss.ndim != 1 or loss.size == 0:
        return 0, math.nan
    same = loss[1:] == loss[:-1]
    run = int(np.argmin(same[::-1])) if not same.all() else same.size
    return run, float(loss[-1])


def raise_if_failed(reasons: str | Sequence[str], throw: bool) -> None:
    """With `throw`, raises `RuntimeError` for a failed fit or member."""
    if not throw:
        return
    if isinstance(reasons, str):
        reasons = (reasons,)
    bad = [(i, r) for i, r in enumerate(reasons) if failed(r)]
    if not bad:
        return
    if len(reasons) == 1:
        raise RuntimeError(bad[0][1])
    raise RuntimeError(
        f"{len(bad)} of {len(reasons)} members failed; member {bad[0][0]}: {bad[0][1]}"
    )
