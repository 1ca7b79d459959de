"""What a fit returns, why it stopped, and its history: below both the training core
and checkpoints, so that neither imports the other."""

import dataclasses
import enum
import math
from collections.abc import Mapping, Sequence
from typing import Any

import equinox as eqx
import numpy as np

from ._custom_types import Args, Key
from ._models.base import AbstractModel
from ._problems import AbstractProblem

# A fit stalls when its loss is exactly the same for this many consecutive steps
# (a least-squares trainer rejecting every step on a fixed grid), or when the
# trainer reports a nonzero `"stalled"` statistic.
STALL_STEPS = 50
# A fit has blown up when its loss, still finite, exceeds the loss of its first
# step this many times: no fit that is converging gets there, not even while a
# growing collocation window shows it new parts of the interval.
BLOWUP = 1e6


class Stop(enum.IntEnum):
    """Why a fit (or one member of an ensemble) stopped. The first four are
    decided inside the compiled loop, per member; the others by the host."""

    RUNNING = 0
    DIVERGED = 1
    STALLED = 2  # the loss has not changed in STALL_STEPS steps
    TRAINER_STALLED = 3  # the trainer's own `"stalled"` statistic
    COMPLETED = 4
    INTERRUPTED = 5
    CALLBACK = 6
    BLOWUP = 7  # finite, but BLOWUP times the first step's loss


# What a periodic checkpoint of a fit that is still running records as its stop
# reason.
RUNNING = "running"

_FIXES = (
    "Try a lower learning rate, float64 (jax.config.update('jax_enable_x64', "
    "True)), or rescaling the problem (the model's `scale`, a shorter interval, "
    "non-dimensional variables)."
)


def stop_message(
    stop: Stop,
    *,
    step: int = 0,
    value: float | None = None,
    kept: int = 0,
    kept_loss: float = math.nan,
    initial: float = math.nan,
    detail: str = "",
) -> str:
    """The one sentence that says why a fit stopped, where, and what to try.

    `step`: where it stopped (for `STALLED`, where the flat run began); `value`:
    the non-finite loss (`None` when only the parameters were non-finite) or the
    unchanged loss; `kept`, `kept_loss`: the step and loss of the model returned;
    `initial`: the first step's loss; `detail`: what is non-finite, and where.
    """
    if stop in (Stop.RUNNING, Stop.COMPLETED):
        return "completed" if stop == Stop.COMPLETED else RUNNING
    if stop == Stop.INTERRUPTED:
        return "interrupted"
    if stop == Stop.CALLBACK:
        return "stopped by callback"
    if stop == Stop.BLOWUP:
        return (
            f"diverged at step {step}: the loss became {value:.4g}, more than "
            f"{BLOWUP:.0e} times that of the first step ({initial:.4g}), though it "
            f"stayed finite. The model of step {kept}, with the lowest loss "
            f"({kept_loss:.4g}), is returned. {_FIXES}"
        )
    if stop == Stop.DIVERGED:
        detail = f" ({detail})" if detail else ""
        if step == 0:
            return (
                f"diverged at step 0: the loss of the initial model is {value}"
                f"{detail}. The initial model is returned. Check that the vector "
                "field is finite over the whole interval [t0, t1], not only at t0, "
                "and the observations."
            )
        what = (
            "the parameters became non-finite"
            if value is None
            else f"the loss became {value}{detail}"
        )
        return (
            f"diverged at step {step}: {what}. The last finite model, from step "
            f"{kept} (loss {kept_loss:.4g}), is returned. {_FIXES}"
        )
    why = (
        "the trainer reports that it can make no progress"
        if stop == Stop.TRAINER_STALLED
        else f"the loss ({value:.4g}) has not changed in {STALL_STEPS + 1} steps: "
        "the trainer rejects every step (e.g. a least-squares trainer's damping "
        "reached its limit)"
    )
    return (
        f"stalled at step {step}: {why}. The model of step {kept} is returned. If "
        "the loss is already tiny, this is as far as this precision goes; otherwise "
        "try float64 (jax.config.update('jax_enable_x64', True)), rescaling the "
        "problem, more collocation points, or a few thousand Adam steps before the "
        "least-squares trainer."
    )


def with_args(problem: AbstractProblem, args: Args) -> AbstractProblem:
    """`problem` with its `args` replaced."""
    return eqx.tree_at(lambda p: p.args, problem, args, is_leaf=lambda x: x is None)


def failed(stop_reason: str) -> bool:
    """Whether a stop reason is a failure (divergence or stall)."""
    return stop_reason.startswith(("diverged", "stalled"))


def history_length(history: Mapping[str, np.ndarray]) -> int:
    loss = history.get("loss")
    return 0 if loss is None else int(np.shape(loss)[-1])


def join_histories(
    parts: Sequence[Mapping[str, np.ndarray]],
    label: str | None = None,
    labels: Sequence[int] | None = None,
) -> dict[str, np.ndarray]:
    """Joins per-step histories end to end, along their last (step) axis.

    Every history has the same format: named NumPy arrays with one entry per step
    (shape `(steps,)`, or `(members, steps)` for an ensemble). A statistic missing
    from a part (e.g. `"damping"` during an Adam stage) is NaN there. With
    `label`, a column of that name records `labels[i]` for each step of part `i`
    (e.g. `"stage"` or `"window"`).
    """
    names: list[str] = []
    for part in parts:
        names += [n for n in part if n not in names]
    lengths = [history_length(part) for part in parts]
    out = {}
    for name in names:
        pieces = []
        for part, n in zip(parts, lengths, strict=True):
            if name in part:
                pieces.append(np.asarray(part[name])[..., :n])
            else:
                like = np.asarray(part["loss"])
                dtype = like.dtype if name != label else np.int64
                pieces.append(np.full(like.shape[:-1] + (n,), np.nan, dtype))
        out[name] = np.concatenate(pieces, axis=-1)
    if label is not None:
        labels = range(len(parts)) if labels is None else labels
        out[label] = np.concatenate(
            [np.full((n,), i, np.int64) for i, n in zip(labels, lengths, strict=True)]
        )
    return out


class FitResult(eqx.Module):
    """What [`odefit.fit`][] returns (and [`odefit.fit_stages`][], and each member
    of an ensemble).

    **Attributes:**

    - `model`: the trained model (the last finite one if the fit diverged).
    - `problem`: the problem, with any `Unknown`s updated to their learned values
        (pass it back to `fit` to continue an inverse problem).
    - `args`: the problem's `args` with every `Unknown` replaced by its learned value.
    - `history`: per-step NumPy arrays: `"loss"`, one per loss term (`"residual"`,
        `"conditions"`, `"data"`, each user term, as active) and any trainer
        statistics (e.g. `"damping"`); fits made of parts add an integer column
        naming each step's part (`"stage"` in `fit_stages`, `"window"` in
        `fit_marching`).
    - `stop_reason`: `"completed"`, `"interrupted"`, `"stopped by callback"` or a
        sentence saying why the fit stopped early (divergence, stall) and what to
        try.
    - `steps`: how many steps were completed (including those of the checkpoint
        or result a fit continued from).
    - `opt_state`: the optimiser state after the last completed step.
    - `collocation_state`: the collocation's state after the last completed step.
    - `key`: the key the fit was run with.
    - `wall_time`: seconds spent in this call, compilation included.
    - `compile_time`: seconds of that spent compiling (estimated from the first
        chunk, which includes compilation).

    Pass a `FitResult` to [`odefit.fit`][] in place of the model to continue it
    exactly: the optimiser state, step count and collocation state carry on.
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


def join_results(results: Sequence[FitResult], label: str = "stage") -> FitResult:
    """One [`odefit.FitResult`][] for fits run one after the other, each starting
    from the model the previous one ended with (e.g. Adam, then L-BFGS).

    **Arguments:**

    - `results`: the fits' results, in order.
    - `label`: the name of the history column that gives each step's part.

    **Returns:** the last result (model, problem, args, optimiser state, stop
    reason), with the histories joined end to end (a statistic missing from a part
    is NaN there; column `label` holds the part's index) and the steps, wall and
    compile times summed.

    **Example:**

    ```python
    import jax, optax, odefit

    problem = odefit.IVP(lambda t, y, args: -y, t0=0.0, t1=1.0, y0=1.0)
    model = odefit.PINN(problem, width=16, depth=2, key=jax.random.key(0))
    warm = odefit.fit(problem, model, steps=300, key=jax.random.key(1),
                      progress=False)
    polish = odefit.fit(problem, warm.model, steps=20,
                        optimizer=odefit.LevenbergMarquardt(points=32),
                        key=jax.random.key(2), progress=False)
    both = odefit.join_results([warm, polish])
    both.history["stage"]      # 300 zeros, then 20 ones
    ```
    """
    results = list(results)
    if not results or not all(isinstance(r, FitResult) for r in results):
        raise TypeError("`results` must be a non-empty sequence of odefit.FitResult.")
    compile_times = [r.compile_time for r in results if not math.isnan(r.compile_time)]
    return dataclasses.replace(
        results[-1],
        history=join_histories([r.history for r in results], label),
        steps=sum(r.steps for r in results),
        wall_time=sum(r.wall_time for r in results),
        compile_time=sum(compile_times) if compile_times else math.nan,
    )
