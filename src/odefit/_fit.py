"""The compiled training loop."""

import math
import time
from collections.abc import Mapping
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

from ._collocation import AbstractCollocation
from ._custom_types import Args, Key
from ._losses import check_weights, loss_terms, physics_residual
from ._models.base import AbstractModel
from ._models.pinn import PINN
from ._observations import Observations
from ._problems import AbstractProblem
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
    - `steps`: how many steps were completed.
    - `opt_state`: the optimiser state after the last completed step.
    - `collocation_state`: the collocation's state after the last completed step.
    - `key`: the key the fit was run with.
    - `wall_time`: seconds spent in `fit`, compilation included.
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


def _check_steps(steps) -> int:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"`steps` must be an integer >= 1, got {steps!r}.")
    return int(steps)


def _check_observations(observations, problem: AbstractProblem, model) -> None:
    if observations is None:
        return
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
        state = jax.eval_shape(observations.observe, state)
    if observations.ys.shape[1:] != state.shape:
        raise ValueError(
            f"`observations.ys` has shape {observations.ys.shape}, so each "
            f"observation has shape {observations.ys.shape[1:]}, but the model "
            f"predicts shape {state.shape}"
            + (" after `observe`" if observations.observe is not None else "")
            + "."
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
    # About a hundred host wake-ups per fit, and a chunk length that divides
    # `steps` when one is near, so that only one chunk length is compiled.
    target = min(max(steps // 100, 1), 1000)
    for c in range(target, max(target // 2, 1) - 1, -1):
        if steps % c == 0:
            return c
    return target


def _tree_all_finite(tree) -> Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jtu.tree_leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


@eqx.filter_jit
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
    def residuals_fn(p, ts):
        model, args = eqx.combine(p, static)
        return loss_terms(model, problem, resolve_args(args), ts, observations, weights)

    def body(carry, i):
        params, opt_state, colloc_state, good = carry
        step_key = jr.fold_in(key, start + i)

        def residual_size(ts):
            model, args = eqx.combine(params, static)
            r = jax.vmap(
                lambda t: physics_residual(model, problem, resolve_args(args), t)
            )(ts)
            return jnp.sqrt(jnp.sum(r.reshape(ts.shape[0], -1) ** 2, axis=1))

        ts, colloc_state = collocation.sample(
            colloc_state, problem.t0, problem.t1, residual_size, key=step_key
        )
        new_params, opt_state, stats = trainer.step(
            lambda p: residuals_fn(p, ts), params, opt_state
        )
        ok = jnp.isfinite(stats["loss"]) & _tree_all_finite(params)
        good = jtu.tree_map(lambda a, b: jnp.where(ok, a, b), params, good)
        return (new_params, opt_state, colloc_state, good), stats

    init = (params, opt_state, colloc_state, params)
    (params, opt_state, colloc_state, good), stats = jax.lax.scan(
        body, init, jnp.arange(length)
    )
    return params, opt_state, colloc_state, good, stats


def _divergence_message(step: int, value: float) -> str:
    return (
        f"diverged at step {step}: the loss became {value}. The last finite model "
        "is returned. Try a lower learning rate, float64 "
        "(jax.config.update('jax_enable_x64', True)), or a `scale` for the state "
        "in the model."
    )


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
        learning rate decaying exponentially from 1e-2 to 1e-4 over `steps`.
    - `collocation`: [`odefit.Uniform`][] (points redrawn each step; the default
        for optax is `Uniform(256, warmup=steps // 2)`, a window growing from
        $t_0$ over the first half of the run) or [`odefit.Grid`][] (fixed points;
        use with L-BFGS and least-squares trainers).
    - `observations`: [`odefit.Observations`][], adding a data term.
    - `weights`: weights of the terms, keys among `"residual"`, `"conditions"` and
        `"data"`; default 1 each.
    - `key`: a `jax.random` key for the collocation draws.
    - `progress`: show a progress bar (loss and steps/s).
    - `chunk_size`: steps per compiled chunk; default about `steps / 100`.
    - `throw`: raise `RuntimeError` on divergence instead of returning the last
        finite model with a `stop_reason`.

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
    if isinstance(model, PINN) and (model.t0, model.t1) != (problem.t0, problem.t1):
        raise ValueError(
            f"`model` was built for [{model.t0}, {model.t1}] but `problem` is on "
            f"[{problem.t0}, {problem.t1}]."
        )
    steps = _check_steps(steps)
    trainer = as_trainer(optimizer, steps)
    if collocation is None:
        collocation = trainer.default_collocation(steps)
    elif not isinstance(collocation, AbstractCollocation):
        raise TypeError(
            "`collocation` must be odefit.Grid(n), odefit.Uniform(n) or another "
            f"odefit collocation, got {type(collocation).__name__}."
        )
    _check_observations(observations, problem, model)
    weights = check_weights(weights)
    if not isinstance(key, jax.Array):
        raise TypeError(f"`key` must be a jax.random key, got {type(key).__name__}.")
    chunk = _pick_chunk(steps, chunk_size)

    params, static = eqx.partition(
        (model, problem.args), (model.trainable(), args_mask(problem.args))
    )
    dtype = problem.state.dtype
    colloc_state = collocation.init(problem.t0, problem.t1, dtype)

    def residuals_at_start(p):
        model_, args_ = eqx.combine(p, static)
        ts, _ = collocation.sample(
            colloc_state, problem.t0, problem.t1, lambda ts: ts, key=key
        )
        return loss_terms(
            model_, problem, resolve_args(args_), ts, observations, weights
        )

    opt_state = trainer.init(residuals_at_start, params)

    history: dict[str, list[np.ndarray]] = {}
    done = 0
    stop_reason = "completed"
    chunk_times = []
    bar = tqdm(
        total=steps,
        disable=not progress,
        unit="step",
        dynamic_ncols=True,
        mininterval=0.5,
        desc="odefit",
    )
    try:
        while done < steps:
            length = min(chunk, steps - done)
            tic = time.perf_counter()
            out = _run_chunk(
                params,
                opt_state,
                colloc_state,
                static,
                problem,
                observations,
                weights,
                trainer,
                collocation,
                key,
                jnp.asarray(done),
                length,
            )
            new_params, new_opt_state, new_colloc_state, good, stats = out
            stats = jax.device_get(stats)
            chunk_times.append((length, time.perf_counter() - tic))
            losses = stats["loss"]
            finite = np.isfinite(losses)
            if not finite.all():
                first_bad = int(np.argmin(finite))
                for name, values in stats.items():
                    history.setdefault(name, []).append(values[:first_bad])
                params = good
                done += first_bad
                bar.update(first_bad)
                stop_reason = _divergence_message(done, float(losses[first_bad]))
                break
            for name, values in stats.items():
                history.setdefault(name, []).append(values)
            params, opt_state, colloc_state = (
                new_params,
                new_opt_state,
                new_colloc_state,
            )
            done += length
            bar.update(length)
            bar.set_postfix(loss=f"{float(losses[-1]):.3e}", refresh=False)
    except KeyboardInterrupt:
        stop_reason = "interrupted"
    finally:
        bar.close()

    model, args = eqx.combine(params, static)
    if stop_reason.startswith("diverged") and throw:
        raise RuntimeError(stop_reason)
    wall_time = time.perf_counter() - start_time
    return FitResult(
        model=model,
        problem=eqx.tree_at(
            lambda p: p.args, problem, args, is_leaf=lambda x: x is None
        ),
        args=resolve_args(args),
        history={
            name: np.concatenate(values) if values else np.zeros((0,))
            for name, values in history.items()
        },
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
