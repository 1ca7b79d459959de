"""What every `fit*` front end checks and builds before it runs the training core:
one set of argument checks, so that `fit` and `fit_ensemble` say the same thing
about the same mistake."""

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np

from ._checkpoint import check_path
from ._collocation import AbstractCollocation
from ._family_fit import check_family_fit
from ._loop import MAX_STEPS, check_callback, pick_chunk
from ._losses import Term, check_terms, check_weights
from ._models.base import AbstractModel
from ._observations import Observations
from ._problems import AbstractProblem
from ._trainers import AbstractTrainer, as_trainer
from ._validate import check_key as check_key


def check_problem(problem, name: str = "`problem`") -> AbstractProblem:
    if not isinstance(problem, AbstractProblem):
        raise TypeError(
            f"{name} must be an odefit problem (IVP, SecondOrderIVP, BVP), got "
            f"{type(problem).__name__}."
        )
    return problem


def check_model(model, name: str = "`model`") -> AbstractModel:
    if not isinstance(model, AbstractModel):
        raise TypeError(
            f"{name} must be an odefit model such as odefit.PINN, got "
            f"{type(model).__name__}."
        )
    return model


def check_steps(steps) -> int:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"`steps` must be an integer >= 1, got {steps!r}.")
    if steps > MAX_STEPS:
        raise ValueError(
            f"`steps` must be at most {MAX_STEPS} (the compiled loop counts steps "
            f"in 32-bit integers), got {steps!r}."
        )
    return int(steps)


def check_observations(observations, problem: AbstractProblem, model):
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


def check_collocation(collocation, problem: AbstractProblem, key) -> None:
    """Samples the collocation once, eagerly: a bad custom collocation fails here
    with a message instead of silently training on the wrong points."""
    state = collocation.init(problem.t0, problem.t1, problem.state.dtype)
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


def check_checkpointing(checkpoint_path, checkpoint_every, resume) -> None:
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
        check_path(checkpoint_path)


class Setup(NamedTuple):
    """The checked options of a fit, shared by every member of an ensemble."""

    trainer: AbstractTrainer
    collocation: AbstractCollocation
    observations: Observations | None
    weights: dict[str, float]
    terms: dict[str, Term]
    chunk: int


# The options every `fit*` front end passes on to `prepare` unchanged.
SHARED = (
    "optimizer",
    "collocation",
    "observations",
    "weights",
    "terms",
    "chunk_size",
    "callback",
    "progress",
    "throw",
)


def shared(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The shared options among a front end's arguments (its `locals()`)."""
    return {name: arguments[name] for name in SHARED}


def prepare(
    problem: AbstractProblem,
    model: AbstractModel,
    steps: int,
    *,
    optimizer,
    collocation,
    observations,
    weights: Mapping[str, float] | None,
    terms: Mapping[str, Term] | None,
    chunk_size: int | None,
    callback: Callable | None,
    progress: bool,
    throw: bool,
    model_name: str = "`model`",
) -> Setup:
    """Checks the options every `fit*` function shares (for a run of `steps`
    steps in all) against one problem and model."""
    model.check_problem(problem, name=model_name)
    trainer = as_trainer(optimizer, steps)
    if collocation is None:
        collocation = trainer.default_collocation(steps)
    elif not isinstance(collocation, AbstractCollocation):
        raise TypeError(
            "`collocation` must be odefit.Grid(n), odefit.Uniform(n) or another "
            f"odefit collocation, got {type(collocation).__name__}."
        )
    check_family_fit(problem, model, observations, terms)
    observations = check_observations(observations, problem, model)
    if model.residual_scale() is None and observations is None:
        raise ValueError(
            f"A {type(model).__name__} is fit to data, but `observations` is None: "
            "pass `observations=odefit.Observations(ts, ys)`."
        )
    terms = check_terms(terms)
    weights = check_weights(weights, terms)
    check_callback(callback)
    for name, flag in (("progress", progress), ("throw", throw)):
        if not isinstance(flag, (bool, np.bool_)):
            raise TypeError(f"`{name}` must be True or False, got {flag!r}.")
    return Setup(
        trainer,
        collocation,
        observations,
        weights,
        terms,
        pick_chunk(steps, chunk_size),
    )


def same_structure(saved: Any, fresh: Any) -> bool:
    """Whether two states have the same PyTree structure and array shapes."""
    a, b = jtu.tree_flatten(saved), jtu.tree_flatten(fresh)
    return a[1] == b[1] and all(
        np.shape(x) == np.shape(y) for x, y in zip(a[0], b[0], strict=True)
    )
