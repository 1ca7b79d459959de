r"""Many fits in one compiled program: `jax.vmap` over the members of an ensemble.

An ensemble is a batch of fits that share their structure (the vector field, the
interval, the network's architecture, the optimiser, the collocation) and differ in
array values: initial weights (seeds), problem parameters in `args` (a sweep), initial
values. Every array of the batched model and problem carries a leading member axis.
One training step of every member runs as one vectorised step inside one compiled
`jax.lax.scan` of the training core; member $i$ follows exactly the trajectory of
`fit(problems[i], models[i], key=keys[i])` (to floating-point rounding).
"""

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np
import optax
from jaxtyping import Array, Float

from . import _setup, _sharding
from ._collocation import AbstractCollocation
from ._custom_types import Args, Key
from ._loop import drive, interruptible, map_members, raise_if_failed
from ._losses import Term
from ._metrics import relative_l2
from ._models.base import AbstractModel
from ._objective import make_objective, split
from ._observations import Observations
from ._problems import AbstractProblem
from ._result import FitResult
from ._trainers import AbstractTrainer


class EnsembleResult(eqx.Module):
    """What [`odefit.fit_ensemble`][] returns: every member's fit, batched, with the
    field names of [`odefit.FitResult`][].

    `result[i]` is member `i` as an [`odefit.FitResult`][] (for plots, metrics,
    checkpoints, or to continue it alone with `fit`), and `len(result)` the number
    of members.

    **Attributes:**

    - `model`: the trained models, batched: every array has a leading member axis
        (each member's last finite model if it diverged). Also `models`.
    - `problem`: the problems, batched likewise, with any `Unknown`s at their
        learned values. Also `problems`.
    - `args`: the problems' `args`, `Unknown`s replaced by their learned values
        (batched).
    - `history`: per-step NumPy arrays of shape `(members, steps)`: `"loss"` and
        one per loss term; a member's entries after it stopped are NaN.
    - `stop_reason`: one per member: `"completed"`, `"interrupted"`, `"stopped by
        callback"` or why the member stopped early (divergence, stall). Also
        `stop_reasons`.
    - `steps`: the steps each member completed.
    - `opt_state`, `collocation_state`: batched states after the last step.
    - `key`: each member's key. Also `keys`.
    - `wall_time`: seconds spent in `fit_ensemble`, compilation included.
    - `compile_time`: seconds of that spent compiling (estimated from the first
        chunk).
    """

    model: AbstractModel
    problem: AbstractProblem
    args: Args
    history: dict[str, np.ndarray]
    stop_reason: tuple[str, ...] = eqx.field(static=True)
    steps: tuple[int, ...] = eqx.field(static=True)
    opt_state: Any
    collocation_state: Any
    key: Key
    wall_time: float = eqx.field(static=True)
    compile_time: float = eqx.field(static=True)

    @property
    def models(self) -> AbstractModel:
        """The batched models: `model`, under its earlier name."""
        return self.model

    @property
    def problems(self) -> AbstractProblem:
        """The batched problems: `problem`, under its earlier name."""
        return self.problem

    @property
    def stop_reasons(self) -> tuple[str, ...]:
        """Each member's stop reason: `stop_reason`, under its earlier name."""
        return self.stop_reason

    @property
    def keys(self) -> Key:
        """Each member's key: `key`, under its earlier name."""
        return self.key

    def __len__(self) -> int:
        return len(self.stop_reason)

    def __getitem__(self, i: int) -> FitResult:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"An ensemble is indexed by an int, got {i!r}.")
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"Member {i} out of range for an ensemble of {n}.")
        i = int(i) % n
        steps = self.steps[i]
        return FitResult(
            model=_member(self.model, i),
            problem=_member(self.problem, i),
            args=_member(self.args, i),
            history={k: v[i, :steps] for k, v in self.history.items()},
            stop_reason=self.stop_reason[i],
            steps=steps,
            opt_state=_member(self.opt_state, i),
            collocation_state=_member(self.collocation_state, i),
            key=self.key[i],
            wall_time=self.wall_time,
            compile_time=self.compile_time,
        )

    def predict(self, ts: Float[Array, " times"]) -> Float[Array, "members times ..."]:
        """Every member's prediction at times `ts`: shape
        `(members, len(ts), *state)`."""
        ts = jnp.asarray(ts)
        arrays, rest = eqx.partition(self.model, eqx.is_array)
        return jax.vmap(lambda a: jax.vmap(eqx.combine(a, rest))(ts))(arrays)

    def relative_l2(
        self,
        ts: Float[Array, " times"],
        reference: Float[Array, "..."] | None = None,
    ) -> np.ndarray:
        """Each member's relative L2 error on `ts`, shape `(members,)`.

        **Arguments:**

        - `ts`: the times to compare at.
        - `reference`: the reference solution, either shared (shape
            `(len(ts), *state)`) or one per member (`(members, len(ts), *state)`).
            Default: each member's problem solved by diffrax (`problem.solve`).

        **Returns:** a NumPy array of relative L2 errors, one per member.
        """
        pred = self.predict(ts)
        if reference is None:
            reference = jnp.stack(
                [_member(self.problem, i).solve(ts) for i in range(len(self))]
            )
        reference = jnp.asarray(reference, pred.dtype)
        if reference.shape == pred.shape[1:]:
            reference = jnp.broadcast_to(reference, pred.shape)
        if reference.shape != pred.shape:
            raise ValueError(
                f"`reference` has shape {reference.shape}; expected "
                f"{pred.shape[1:]} (shared) or {pred.shape} (one per member)."
            )
        return np.asarray(jax.vmap(relative_l2)(pred, reference))


# Host-side batching goes through NumPy: eager `jax.numpy` indexing and stacking
# would compile one small program per array shape, seconds in all.


def _is_key(x) -> bool:
    return jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _index(x, i: int):
    if not eqx.is_array(x):
        return x
    if _is_key(x):
        return x[i]
    return jnp.asarray(np.asarray(x)[i])


def _member(tree: Any, i: int) -> Any:
    """Member `i` of a batched PyTree (every array has a leading member axis)."""
    return jtu.tree_map(lambda x: _index(x, i), tree)


def _broadcast(tree: Any, n: int) -> Any:
    """`n` copies of `tree` along a new leading axis (arrays only)."""

    def copies(x):
        if not eqx.is_array(x):
            return x
        x = np.asarray(x)
        return jnp.asarray(np.broadcast_to(x, (n,) + x.shape).copy())

    return jtu.tree_map(copies, tree)


def _is_number(x) -> bool:
    return isinstance(x, (int, float, np.number)) and not isinstance(
        x, (bool, np.bool_)
    )


def _stack(trees: Sequence[Any], name: str, dtype) -> Any:
    """One batched PyTree from a sequence of PyTrees of the same structure: arrays
    are stacked; other leaves must be equal across the sequence, except numbers,
    which are stacked into arrays of `dtype` when they differ."""
    flat = [jtu.tree_flatten(t) for t in trees]
    treedef = flat[0][1]
    for i, (_, td) in enumerate(flat[1:], start=1):
        if td != treedef:
            raise ValueError(
                f"`{name}[{i}]` differs in structure from `{name}[0]` (e.g. another "
                "vector field, interval, network architecture or `args` structure); "
                "the members of an ensemble share their structure and differ only "
                "in array and number values."
            )
    leaves = []
    for column in zip(*(f[0] for f in flat), strict=True):
        first = column[0]
        if all(eqx.is_array(x) for x in column):
            for i, x in enumerate(column):
                if jnp.shape(x) != jnp.shape(first):
                    raise ValueError(
                        f"`{name}[{i}]` has an array of shape {jnp.shape(x)} where "
                        f"`{name}[0]` has shape {jnp.shape(first)}: arrays of "
                        "different shapes cannot be stacked into an ensemble."
                    )
            leaves.append(jnp.asarray(np.stack([np.asarray(x) for x in column])))
        elif all(_is_number(x) for x in column):
            if all(x == first for x in column):
                leaves.append(first)
            else:
                leaves.append(jnp.asarray(np.asarray(column), dtype))
        else:
            for i, x in enumerate(column):
                if not (x is first or _equal(x, first)):
                    raise ValueError(
                        f"`{name}[{i}]` differs from `{name}[0]` in a value that is "
                        f"neither an array nor a number ({x!r} vs {first!r}); only "
                        "arrays and numbers may vary across an ensemble."
                    )
            leaves.append(first)
    return jtu.tree_unflatten(treedef, leaves)


def _equal(a, b) -> bool:
    try:
        return bool(a == b)
    except Exception:
        return False


def _batch_size(tree: Any, name: str) -> int:
    sizes = {jnp.shape(x)[0] if jnp.ndim(x) else None for x in _arrays(tree)}
    if len(sizes) != 1 or None in sizes:
        raise ValueError(
            f"`{name}` must be a sequence of models or one batched model whose every "
            "array has the same leading (member) axis, e.g. "
            "`eqx.filter_vmap(make_model)(jax.random.split(key, n))`; got arrays with "
            f"leading sizes {sorted(sizes, key=str)}."
        )
    return sizes.pop()


def _arrays(tree: Any) -> list:
    return [x for x in jtu.tree_leaves(tree) if eqx.is_array(x)]


def _member_keys(key, n: int):
    if isinstance(key, jax.Array) and jax.dtypes.issubdtype(
        key.dtype, jax.dtypes.prng_key
    ):
        if key.shape == ():
            return jr.split(key, n)
        if key.shape == (n,):
            return key
        raise ValueError(
            f"`key` must be one key or a batch of {n} keys (one per member), got "
            f"shape {key.shape}."
        )
    _setup.check_key(key)
    return jr.split(key, n)


# The work of one batch that `batch_size="auto"` aims at on a CPU, in points x
# trainable weights per step: that of 8 members of a width-64, depth-3, 256-point
# oscillator PINN, the fastest batch for that network in the measurements of
# benchmarks/results/ensemble.json and ensemble_small.json (64 members, 2 cores);
# for much smaller networks, all members at once was fastest.
_CPU_BATCH_WORK = 8 * 256 * 8513


def _check_batch_size(batch_size, members: int, devices, work: int) -> int | None:
    """`work`: collocation points times trainable weights of one member."""
    if isinstance(batch_size, str) and batch_size == "auto":
        if devices is not None or jax.default_backend() != "cpu":
            return None
        batch = max(_CPU_BATCH_WORK // max(work, 1), 1)
        return None if batch >= members else batch
    if batch_size is None:
        return None
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, int)
        or batch_size < 1
    ):
        raise ValueError(
            f"`batch_size` must be 'auto', None or an integer >= 1, got {batch_size!r}."
        )
    return batch_size


def _members(value, name: str, single: type, check, what: str) -> list | None:
    """`None` for one `single` object (shared or batched), else the checked
    members of the sequence `value`."""
    if isinstance(value, single):
        return None
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
        raise TypeError(
            f"`{name}` must be {what} or a sequence of them, got "
            f"{type(value).__name__}."
        )
    if not value:
        raise ValueError(f"`{name}` must not be empty.")
    for i, x in enumerate(value):
        check(x, f"`{name}[{i}]`")
    return list(value)


def _batched(problems, models) -> tuple[AbstractProblem, AbstractModel]:
    """The members' problems and models, stacked along a leading member axis."""
    problem_list = _members(
        problems, "problems", AbstractProblem, _setup.check_problem, "an odefit problem"
    )
    model_list = _members(
        models, "models", AbstractModel, _setup.check_model, "an odefit model (batched)"
    )
    dtype = (problems if problem_list is None else problem_list[0]).state.dtype
    if model_list is None:
        n, batched_models = _batch_size(models, "models"), models
    else:
        n, batched_models = len(model_list), _stack(model_list, "models", dtype)
    if problem_list is None:
        return _broadcast(problems, n), batched_models
    if len(problem_list) != n:
        raise ValueError(
            f"`problems` has {len(problem_list)} members but `models` has {n}."
        )
    return _stack(problem_list, "problems", dtype), batched_models


@eqx.filter_jit
def _init_members(objective, keys, params, trainer, collocation, batch_size):
    def init(member):
        p, problem, static, key = member
        o = eqx.tree_at(lambda o: (o.problem, o.static), objective, (problem, static))
        return o.init(trainer, collocation, p, key=key)

    members = (params, objective.problem, objective.static, keys)
    return map_members(init, members, batch_size)


@interruptible
def fit_ensemble(
    problems: AbstractProblem | Sequence[AbstractProblem],
    models: AbstractModel | Sequence[AbstractModel],
    *,
    steps: int,
    optimizer: optax.GradientTransformation | AbstractTrainer | None = None,
    collocation: AbstractCollocation | None = None,
    observations: Observations | None = None,
    weights: Mapping[str, float] | None = None,
    terms: Mapping[str, Term] | None = None,
    key: Key,
    progress: bool = True,
    chunk_size: int | None = None,
    throw: bool = False,
    callback: Callable | None = None,
    batch_size: int | str | None = "auto",
    devices: Sequence[jax.Device] | None = None,
) -> EnsembleResult:
    r"""Fits many models at once, in one compiled program.

    Trains an ensemble of $M$ members — different initial weights, a sweep over a
    problem parameter, or both — with every training step of every member inside
    one compiled `jax.lax.scan`, vectorised over the members with `jax.vmap`.
    Member $i$ minimises exactly the loss of [`odefit.fit`][] for its own problem
    and model, with its own optimiser state and collocation draws: its result
    equals `fit(problems[i], models[i], key=keys[i], ...)` to floating-point
    rounding, where `keys = jax.random.split(key, M)`. A member that diverges or
    stalls is frozen at its last good state while the others carry on.

    Members share their structure (vector field, interval, architecture,
    optimiser, collocation, `observations`, `terms`) and differ in array and
    number values: weights, `args` entries, initial values.

    **Arguments:**

    - `problems`: one problem shared by every member, or a sequence of problems
        (one per member) of the same structure.
    - `models`: a sequence of models, one per member, or one batched model whose
        every array has a leading member axis (e.g.
        `eqx.filter_vmap(lambda k: odefit.PINN(problem, key=k))(keys)`).
    - `steps`, `optimizer`, `collocation`, `observations`, `weights`, `terms`,
        `progress`, `chunk_size`, `callback`: as for [`odefit.fit`][] (the
        callback's model is batched and its losses have one value per member).
    - `throw`: raise `RuntimeError` if any member diverges or stalls.
    - `key`: one `jax.random` key, split into one per member, or a batch of
        keys, one per member.
    - `batch_size`: `k` runs `k` members at a time in the compiled step
        (`jax.lax.map(..., batch_size=k)`), `None` all at once. `"auto"`: `None`
        on an accelerator or with `devices`; on a CPU, members up to a fixed
        work per step (see `benchmarks/results/ensemble.json`). Results do not
        depend on it, to rounding.
    - `devices`: split the members across these devices (e.g. `jax.devices()`);
        the number of members must be divisible by their number. With several
        processes (after `jax.distributed.initialize()`) the default is every
        process's devices; only process 0 shows progress.

    **Returns:** an [`odefit.EnsembleResult`][]; `result[i]` is member `i` as an
    [`odefit.FitResult`][].

    **Example:**

    ```python
    import jax, jax.numpy as jnp, odefit

    def oscillator(t, y, dy, damping):
        return -400.0 * y - damping * dy

    dampings = jnp.linspace(2.0, 8.0, 4)
    problems = [odefit.SecondOrderIVP(oscillator, 0.0, 1.0, 1.0, 0.0, args=c)
                for c in dampings]
    keys = jax.random.split(jax.random.key(0), 4)
    models = [odefit.PINN(p, width=16, depth=2, key=k)
              for p, k in zip(problems, keys)]
    result = odefit.fit_ensemble(problems, models, steps=200,
                                 key=jax.random.key(1), progress=False)
    result.history["loss"].shape        # (4, 200)
    errors = result.relative_l2(jnp.linspace(0.0, 1.0, 101))
    ```
    """
    start_time = time.perf_counter()
    options = _setup.shared(locals())
    batched_problems, batched_models = _batched(problems, models)
    steps = _setup.check_steps(steps)
    first = (_member(batched_problems, 0), _member(batched_models, 0))
    setup = _setup.prepare(*first, steps, model_name="each of `models`", **options)
    objective, state, keys, batch_size, devices = _start(
        batched_problems, batched_models, setup, key, batch_size, devices
    )
    n = keys.shape[0]
    outcome = drive(
        state,
        objective,
        keys,
        setup.trainer,
        setup.collocation,
        steps=steps,
        chunk=setup.chunk,
        members=n,
        batch_size=batch_size,
        devices=devices,
        progress=progress,
        desc=f"odefit ensemble ({n})",
        callback=callback,
    )
    raise_if_failed(outcome.reasons, throw)
    return outcome.result(
        EnsembleResult,
        problem=batched_problems,
        static=objective.static,
        key=keys,
        start_time=start_time,
    )


def _start(problems, models, setup, key, batch_size, devices):
    """The objective, the initial state of every member, their keys, the batch
    size and the devices, checked; everything placed on the devices."""
    n = _batch_size(models, "models")
    keys = _member_keys(key, n)
    devices = _sharding.check_devices(devices)
    _sharding.check_divisible(n, devices, "The number of members")
    params, static = split(models, problems.args)
    work = (
        getattr(setup.collocation, "n", 256)
        * sum(x.size for x in jtu.tree_leaves(params))
        // n
    )
    batch_size = _check_batch_size(batch_size, n, devices, work)
    problem0 = _member(problems, 0)
    params, static, keys, problems = _sharding.shard_members(
        (params, static, keys, problems), devices
    )
    objective = make_objective(
        problems, static, setup.observations, setup.weights, setup.terms
    )
    opt_state = _init_members(
        objective, keys, params, setup.trainer, setup.collocation, batch_size
    )
    colloc_state = setup.collocation.init(
        problem0.t0, problem0.t1, problem0.state.dtype
    )
    state = (params, opt_state, _broadcast(colloc_state, n))
    return objective, state, keys, batch_size, devices
