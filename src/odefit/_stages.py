"""Several optimisers one after the other, as one fit."""

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence

import jax
import jax.random as jr
import numpy as np
import optax

from ._checkpoint import check_path
from ._collocation import AbstractCollocation
from ._custom_types import Key
from ._fit import fit
from ._loop import interruptible
from ._losses import Term
from ._models.base import AbstractModel
from ._observations import Observations
from ._problems import AbstractProblem
from ._result import FitResult, join_results
from ._trainers import AbstractTrainer, as_trainer
from ._validate import check_key

Stage = (
    tuple[optax.GradientTransformation | AbstractTrainer | None, int]
    | tuple[
        optax.GradientTransformation | AbstractTrainer | None,
        int,
        AbstractCollocation,
    ]
)


def check_stages(stages) -> list[tuple]:
    """Validates `stages`: a non-empty sequence of `(optimizer, steps)` or
    `(optimizer, steps, collocation)` tuples."""
    if isinstance(stages, (str, bytes)) or not isinstance(stages, Sequence):
        raise TypeError(
            "`stages` must be a sequence of (optimizer, steps) pairs, e.g. "
            "[(optax.adam(1e-3), 5000), (odefit.LevenbergMarquardt(), 300)], got "
            f"{type(stages).__name__}."
        )
    if (
        isinstance(stages, tuple)
        and len(stages) in (2, 3)
        and isinstance(stages[1], (int, np.integer))
        and not isinstance(stages[0], tuple)
    ):
        raise TypeError(
            "`stages` must be a list of (optimizer, steps) pairs; got one pair "
            f"{stages!r}: wrap it in a list, [{stages!r}]."
        )
    if len(stages) == 0:
        raise ValueError("`stages` must contain at least one (optimizer, steps) pair.")
    out = []
    for i, stage in enumerate(stages):
        if not isinstance(stage, tuple) or len(stage) not in (2, 3):
            raise TypeError(
                f"`stages[{i}]` must be a tuple (optimizer, steps) or (optimizer, "
                f"steps, collocation), got {stage!r}."
            )
        optimizer, steps = stage[0], stage[1]
        collocation = stage[2] if len(stage) == 3 else None
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)):
            raise ValueError(
                f"`stages[{i}]` must give the number of steps as an integer, got "
                f"{steps!r}."
            )
        if steps < 1:
            raise ValueError(f"`stages[{i}]` has {steps} steps; it needs at least 1.")
        if optimizer is not None and not isinstance(
            optimizer, (optax.GradientTransformation, AbstractTrainer)
        ):
            raise TypeError(
                f"`stages[{i}]`'s optimizer must be an optax.GradientTransformation "
                f"or an odefit trainer, got {type(optimizer).__name__}."
            )
        if collocation is not None and not isinstance(collocation, AbstractCollocation):
            raise TypeError(
                f"`stages[{i}]`'s collocation must be an odefit collocation such as "
                f"odefit.Grid(256), got {type(collocation).__name__}."
            )
        # Converted once, so that every fit given this stage (one per window in
        # time marching) reuses one compiled program.
        out.append((as_trainer(optimizer, int(steps)), int(steps), collocation))
    return out


@interruptible
def fit_stages(
    problem: AbstractProblem,
    model: AbstractModel,
    stages: Sequence[Stage],
    *,
    key: Key,
    collocation: AbstractCollocation | None = None,
    observations: Observations | None = None,
    weights: Mapping[str, float] | None = None,
    terms: Mapping[str, Term] | None = None,
    progress: bool = True,
    chunk_size: int | None = None,
    throw: bool = False,
    callback: Callable | None = None,
    checkpoint_path: str | os.PathLike | None = None,
    devices: Sequence[jax.Device] | None = None,
) -> FitResult:
    """Runs [`odefit.fit`][] once per stage, each stage starting from the model
    (and learned unknowns) the previous one ended with.

    The usual recipe for accuracy: a first-order warm-up that finds the right basin,
    then a quasi-Newton or least-squares polish that converges in it:

    ```python
    import optax, odefit

    stages = [(optax.adam(1e-3), 5000), (odefit.LevenbergMarquardt(), 300)]
    ```

    It is the same as calling `fit` once per stage and passing `result.model` on;
    the results are joined into one [`odefit.FitResult`][].

    **Arguments:**

    - `problem`, `model`: as for [`odefit.fit`][].
    - `stages`: a sequence of `(optimizer, steps)` or `(optimizer, steps,
        collocation)` tuples. `optimizer` is anything `fit` accepts (`None`: the
        default Adam for that many steps).
    - `key`: a `jax.random` key; stage `i` uses `jax.random.fold_in(key, i)`.
    - `collocation`: the collocation of every stage that does not name its own;
        default each optimiser's own default (uniform redraws for optax, a
        fixed grid for the least-squares trainers).
    - `observations`, `weights`, `terms`, `progress`, `chunk_size`, `throw`,
        `callback`, `devices`: passed to every `fit` (the callback sees each
        stage's step count and history).
    - `checkpoint_path`: stage `i` checkpoints to `f"{checkpoint_path}.stage{i}"`
        (see `fit`); rerunning the script skips the finished stages and resumes
        the interrupted one.

    **Returns:** an [`odefit.FitResult`][]: the last stage's model, problem, args
    and optimiser state; the histories of all stages end to end, with NaN where a
    stage does not record a statistic and a `"stage"` entry giving each step's
    stage; the total steps and wall time. If a stage stops early (divergence,
    interruption), the later stages are not run and `stop_reason` says which
    stage stopped.

    **Example:**

    ```python
    import jax, optax, odefit

    problem = odefit.IVP(lambda t, y, args: -2.0 * y, t0=0.0, t1=2.0, y0=1.0)
    model = odefit.PINN(problem, width=16, depth=2, key=jax.random.key(0))
    result = odefit.fit_stages(
        problem, model,
        [(optax.adam(1e-2), 500), (odefit.LevenbergMarquardt(points=64), 50)],
        key=jax.random.key(1), progress=False,
    )
    ```
    """
    stages = check_stages(stages)
    check_key(key)
    if checkpoint_path is not None:
        checkpoint_path = check_path(checkpoint_path)
    results = []
    for i, (optimizer, steps, stage_collocation) in enumerate(stages):
        result = fit(
            problem,
            model,
            steps=steps,
            optimizer=optimizer,
            collocation=collocation if stage_collocation is None else stage_collocation,
            observations=observations,
            weights=weights,
            terms=terms,
            key=jr.fold_in(key, i),
            progress=progress,
            chunk_size=chunk_size,
            throw=throw,
            callback=callback,
            checkpoint_path=None
            if checkpoint_path is None
            else f"{checkpoint_path}.stage{i}",
            devices=devices,
        )
        results.append(result)
        model, problem = result.model, result.problem
        if result.stop_reason != "completed":
            break
    stop_reason = results[-1].stop_reason
    if stop_reason != "completed" and len(stages) > 1:
        stop_reason = f"stage {len(results) - 1}: {stop_reason}"
    # `replace` keeps any other field of the last stage's result as it is.
    return dataclasses.replace(
        join_results(results, "stage"), stop_reason=stop_reason, key=key
    )
