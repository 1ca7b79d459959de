r"""Many fits in one compiled program: `jax.vmap` over the members of an ensemble.

An ensemble is a batch of fits that share their structure (the vector field, the
interval, the network's architecture, the optimiser, the collocation) and differ in
array values: initial weights (seeds), problem parameters in `args` (a sweep), initial
values. Every array of the batched model and problem carries a leading member axis.
One training step of every member runs as one vectorised step inside one compiled
`jax.lax.scan`; member $i$ follows exactly the trajectory of
`fit(problems[i], models[i], key=keys[i])` (to floating-point rounding).
"""

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np
import optax
from jaxtyping import Array, Float
from tqdm.auto import tqdm

from . import _sharding
from ._collocation import AbstractCollocation
from ._custom_types import Args, Key
from ._fit import (
    FitResult,
    _check_key,
    _check_observations,
    _check_steps,
    _compile_time,
    _InterruptGuard,
    _pick_chunk,
    _with_args,
    check_model_matches,
    train_step,
)
from ._losses import check_weights, loss_terms
from ._metrics import relative_l2
from ._models.base import AbstractModel
from ._observations import Observations
from ._problems import AbstractProblem
from ._trainers import AbstractTrainer, as_trainer
from ._unknown import args_mask, resolve_args

# Member status codes, carried through the compiled loop.
_RUNNING, _DIVERGED, _STALLED = 0, 1, 2
# As in `fit`: a member stalls when its loss is exactly unchanged this many steps.
_STALL_STEPS = 50


class EnsembleResult(eqx.Module):
    """What [`odefit.fit_ensemble`][] returns: every member's fit, batched.

    `result[i]` is member `i` as an [`odefit.FitResult`][] (for plots, metrics,
    checkpoints, or to continue it alone with `fit`), and `len(result)` the number
    of members.

    **Attributes:**

    - `models`: the trained models, batched: every array has a leading member axis
        (each member's last finite model if it diverged).
    - `problems`: the problems, batched likewise, with any `Unknown`s at their
        learned values.
    - `args`: the problems' `args`, `Unknown`s replaced by their learned values
        (batched).
    - `history`: per-step NumPy arrays of shape `(members, steps)`: `"loss"` and
        one per loss term; a member's entries after it stopped are NaN.
    - `stop_reasons`: one per member: `"completed"`, `"interrupted"` or why the
        member stopped early (divergence, stall).
    - `steps`: the steps each member completed.
    - `opt_state`, `collocation_state`: batched states after the last step.
    - `keys`: each member's key.
    - `wall_time`: seconds spent in `fit_ensemble`, compilation included.
    - `compile_time`: seconds of that spent compiling (estimated from the first
        chunk).
    """

    models: AbstractModel
    problems: AbstractProblem
    args: Args
    history: dict[str, np.ndarray]
    stop_reasons: tuple[str, ...] = eqx.field(static=True)
    steps: tuple[int, ...] = eqx.field(static=True)
    opt_state: Any
    collocation_state: Any
    keys: Key
    wall_time: float = eqx.field(static=True)
    compile_time: float = eqx.field(static=True)

    def __len__(self) -> int:
        return len(self.stop_reasons)

    def __getitem__(self, i: int) -> FitResult:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"An ensemble is indexed by an int, got {i!r}.")
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"Member {i} out of range for an ensemble of {n}.")
        i = int(i) % n
        steps = self.steps[i]
        return FitResult(
            model=_member(self.models, i),
            problem=_member(self.problems, i),
            args=_member(self.args, i),
            history={k: v[i, :steps] for k, v in self.history.items()},
            stop_reason=self.stop_reasons[i],
            steps=steps,
            opt_state=_member(self.opt_state, i),
            collocation_state=_member(self.collocation_state, i),
            key=self.keys[i],
            wall_time=self.wall_time,
            compile_time=self.compile_time,
        )

    def predict(self, ts: Float[Array, " times"]) -> Float[Array, "members times ..."]:
        """Every member's prediction at times `ts`: shape
        `(members, len(ts), *state)`."""
        ts = jnp.asarray(ts)
        arrays, rest = eqx.partition(self.models, eqx.is_array)
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
                [_member(self.problems, i).solve(ts) for i in range(len(self))]
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
    _check_key(key)
    return jr.split(key, n)


# The work of one batch that `batch_size="auto"` aims at on a CPU, in points x
# trainable weights per step: that of 8 members of a width-64, depth-3, 256-point
# oscillator PINN. Measured with 64 members on 2 cores (benchmarks/README.md): for
# that network, 8 per batch trained 1.10x faster than sequential fits and all 64 at
# once 0.87x; for a width-16, 64-point one (60x less work per member), all at once
# was fastest, 1.87x, against 1.38x with 8 per batch.
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


def _map_members(fn, batched, batch_size: int | None):
    """`fn` applied to each member of `batched` (arrays with a leading member axis;
    other leaves shared): all at once with `vmap`, or `batch_size` at a time."""
    arrays, rest = eqx.partition(batched, eqx.is_array)

    def one(a):
        return fn(eqx.combine(a, rest))

    if batch_size is None:
        return jax.vmap(one)(arrays)
    return jax.lax.map(one, arrays, batch_size=batch_size)


def _select(mask, on_true, on_false):
    """Per member: `on_true` where `mask`, else `on_false` (PyTrees of arrays with
    a leading member axis)."""

    def pick(a, b):
        return jnp.where(mask.reshape(mask.shape + (1,) * (a.ndim - 1)), a, b)

    return jtu.tree_map(pick, on_true, on_false)


@eqx.filter_jit
def _init_members(
    params,
    static,
    problems,
    keys,
    colloc_state,
    collocation,
    observations,
    weights,
    trainer,
    batch_size,
):
    def init(member):
        p, s, problem, key = member

        def residuals_at_start(q):
            model, args = eqx.combine(q, s)
            ts, _ = collocation.sample(
                colloc_state, problem.t0, problem.t1, lambda t: t, key=key
            )
            return loss_terms(
                model, problem, resolve_args(args), ts, observations, weights
            )

        return trainer.init(residuals_at_start, p)

    return _map_members(init, (params, static, problems, keys), batch_size)


@eqx.filter_jit
# Counts traces (no limit), so tests can check that chunks never retrace.
@eqx.debug.assert_max_traces(max_traces=None)
def _run_members(
    carry,
    static,
    problems,
    keys,
    observations,
    weights,
    trainer: AbstractTrainer,
    collocation: AbstractCollocation,
    start,
    length: int,
    batch_size: int | None,
    devices,
):
    def member_step(member, step):
        state, s, problem, key = member
        return train_step(
            state,
            step,
            static=s,
            problem=problem,
            observations=observations,
            weights=weights,
            trainer=trainer,
            collocation=collocation,
            key=key,
        )

    # The carry holds, per member, the `current` state and the last `accepted`
    # one: a state is accepted once its loss (computed at the next step) is
    # finite. A member whose loss becomes non-finite, or that stalls, stops: its
    # accepted state is frozen and its result. This costs one select per array
    # per step; no step is ever recomputed.
    def body(carry, i):
        accepted, current, status, at, flat, last = carry
        step = start + i
        new_state, stats = _map_members(
            lambda m: member_step(m, step),
            (current, static, problems, keys),
            batch_size,
        )
        loss = stats["loss"]
        running = status == _RUNNING
        finite = jnp.isfinite(loss)
        accepted = _select(running & finite, current, accepted)
        flat = jnp.where(loss == last, flat + 1, 0)
        stalled = (flat >= _STALL_STEPS) & (loss != 0)
        if "stalled" in stats:
            stalled = stalled | (stats["stalled"] != 0)
        status = jnp.where(
            running & ~finite,
            _DIVERGED,
            jnp.where(running & stalled, _STALLED, status),
        ).astype(status.dtype)
        at = jnp.where(running & (status != _RUNNING), step.astype(at.dtype), at)
        recorded = jtu.tree_map(
            lambda x: (
                jnp.where(running, x, jnp.asarray(jnp.nan, x.dtype))
                if jnp.issubdtype(x.dtype, jnp.floating)
                else x
            ),
            stats,
        )
        carry = (accepted, new_state, status, at, flat, loss)
        carry = _sharding.constrain_members(carry, devices)
        return carry, recorded

    carry, stats = jax.lax.scan(body, carry, jnp.arange(length))
    return carry, stats


def _diverged_message(step: int, value, kept: int, kept_loss: float) -> str:
    if step == 0:
        return (
            f"diverged at step 0: the loss of the initial model is {value}. The "
            "initial model is returned. Check that the vector field is finite over "
            "the whole interval for this member's parameters."
        )
    what = (
        "the parameters became non-finite"
        if value is None
        else f"the loss became {value}"
    )
    return (
        f"diverged at step {step}: {what}. The last finite model, from step {kept} "
        f"(loss {kept_loss:.4g}), is returned. Try a lower learning rate, float64, "
        "or rescaling the problem."
    )


def _stop_reasons(status, at, history, done: int, interrupted: bool):
    """Each member's stop reason and the number of steps of its returned state."""
    reasons, steps = [], []
    loss = history.get("loss")
    for i, (code, s) in enumerate(zip(status.tolist(), at.tolist(), strict=True)):
        if code == _RUNNING:
            reasons.append("interrupted" if interrupted else "completed")
            steps.append(done)
        elif code == _STALLED:
            reasons.append(
                f"stalled at step {s}: the loss has not changed for {_STALL_STEPS} "
                "steps or the trainer reports that it can make no progress. The "
                f"model of step {s} is returned."
            )
            steps.append(s)
        else:
            # Stopped at step `s` because the loss of the state after `s` steps is
            # non-finite (or, at the end of the run, its parameters are): the state
            # after `s - 1` steps is returned.
            value = float(loss[i, s]) if s < done else None
            kept = max(s - 1, 0)
            kept_loss = float(loss[i, kept]) if s > 0 else math.nan
            reasons.append(_diverged_message(s, value, kept, kept_loss))
            steps.append(kept)
    return tuple(reasons), tuple(steps)


def _members_finite(tree, n: int) -> np.ndarray:
    ok = np.ones((n,), bool)
    for x in jtu.tree_leaves(tree):
        if eqx.is_array(x) and jnp.issubdtype(x.dtype, jnp.inexact):
            ok &= np.isfinite(np.asarray(x).reshape(n, -1)).all(axis=1)
    return ok


def _host_select(mask: np.ndarray, on_true, on_false):
    def pick(a, b):
        a, b = np.asarray(a), np.asarray(b)
        return jnp.asarray(
            np.where(mask.reshape(mask.shape + (1,) * (a.ndim - 1)), a, b)
        )

    return jtu.tree_map(pick, on_true, on_false)


def fit_ensemble(
    problems: AbstractProblem | Sequence[AbstractProblem],
    models: AbstractModel | Sequence[AbstractModel],
    *,
    steps: int,
    optimizer: optax.GradientTransformation | AbstractTrainer | None = None,
    collocation: AbstractCollocation | None = None,
    observations: Observations | None = None,
    weights: Mapping[str, float] | None = None,
    key: Key,
    progress: bool = True,
    chunk_size: int | None = None,
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

    The members share their structure: the vector field, the interval, the
    network architecture, the optimiser, the collocation (its points are drawn
    independently per member) and `observations`. What varies is array and number
    values: weights, `args` entries, initial values.

    **Arguments:**

    - `problems`: one problem shared by every member, or a sequence of problems
        (one per member) of the same structure, e.g. the same vector field with
        different `args`.
    - `models`: a sequence of models, one per member, or one batched model whose
        every array has a leading member axis (e.g.
        `eqx.filter_vmap(lambda k: odefit.PINN(problem, key=k))(keys)`).
    - `steps`, `optimizer`, `collocation`, `observations`, `weights`, `progress`,
        `chunk_size`: as for [`odefit.fit`][] (the default optimiser and
        collocation are `fit`'s).
    - `key`: one `jax.random` key, split into one per member, or a batch of
        keys, one per member.
    - `batch_size`: an integer `k` runs `k` members at a time inside the
        compiled step (`jax.lax.map(..., batch_size=k)`); `None` vectorises all
        members at once. `"auto"` (default) is `None` on an accelerator or with
        `devices`; on a CPU it batches members up to a fixed amount of work per
        step (collocation points times weights): 8 members of a width-64,
        256-point PINN, all members of small networks. Measured on 2 cores with
        64 members: width 64, 256 points: 8 per batch 1.10x the speed of
        sequential fits, all at once 0.87x; width 16, 64 points: all at once
        1.87x, 8 per batch 1.38x. The results do not depend on it, to rounding.
    - `devices`: split the members across these devices (e.g. `jax.devices()`);
        the number of members must be divisible by their number. Members never
        communicate, so this scales across devices and hosts (after
        `jax.distributed.initialize()`).

    **Returns:** an [`odefit.EnsembleResult`][]: batched models and per-member
    histories, stop reasons and step counts; `result[i]` is member `i` as an
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
    # Problems.
    if isinstance(problems, AbstractProblem):
        shared_problem: AbstractProblem | None = problems
        problem_list = None
    elif isinstance(problems, Sequence) and not isinstance(problems, (str, bytes)):
        shared_problem = None
        problem_list = list(problems)
        if not problem_list:
            raise ValueError("`problems` must not be empty.")
        for i, p in enumerate(problem_list):
            if not isinstance(p, AbstractProblem):
                raise TypeError(
                    f"`problems[{i}]` must be an odefit problem (IVP, SecondOrderIVP, "
                    f"BVP), got {type(p).__name__}."
                )
    else:
        raise TypeError(
            "`problems` must be an odefit problem or a sequence of them, got "
            f"{type(problems).__name__}."
        )
    problem0 = shared_problem if shared_problem is not None else problem_list[0]
    dtype = problem0.state.dtype
    # Models.
    if isinstance(models, AbstractModel):
        n = _batch_size(models, "models")
        batched_models = models
    elif isinstance(models, Sequence) and not isinstance(models, (str, bytes)):
        model_list = list(models)
        if not model_list:
            raise ValueError("`models` must not be empty.")
        for i, m in enumerate(model_list):
            if not isinstance(m, AbstractModel):
                raise TypeError(
                    f"`models[{i}]` must be an odefit model such as odefit.PINN, got "
                    f"{type(m).__name__}."
                )
        n = len(model_list)
        batched_models = _stack(model_list, "models", dtype)
    else:
        raise TypeError(
            "`models` must be an odefit model (batched) or a sequence of models, got "
            f"{type(models).__name__}."
        )
    if problem_list is not None:
        if len(problem_list) != n:
            raise ValueError(
                f"`problems` has {len(problem_list)} members but `models` has {n}."
            )
        batched_problems = _stack(problem_list, "problems", dtype)
    else:
        batched_problems = _broadcast(shared_problem, n)
    check_model_matches(problem0, _member(batched_models, 0), ensemble=True)

    steps = _check_steps(steps)
    trainer = as_trainer(optimizer, steps)
    if collocation is None:
        collocation = trainer.default_collocation(steps)
    elif not isinstance(collocation, AbstractCollocation):
        raise TypeError(
            "`collocation` must be odefit.Grid(n), odefit.Uniform(n) or another "
            f"odefit collocation, got {type(collocation).__name__}."
        )
    observations = _check_observations(
        observations, problem0, _member(batched_models, 0)
    )
    weights = check_weights(weights)
    keys = _member_keys(key, n)
    devices = _sharding.check_devices(devices)
    _sharding.check_divisible(n, devices, "The number of members")
    chunk = _pick_chunk(steps, chunk_size)

    params, static = eqx.partition(
        (batched_models, batched_problems.args),
        (
            _member(batched_models, 0).trainable(),
            args_mask(batched_problems.args),
        ),
    )
    member_weights = sum(x.size for x in jtu.tree_leaves(params)) // n
    work = getattr(collocation, "n", 256) * member_weights
    batch_size = _check_batch_size(batch_size, n, devices, work)
    colloc_state = collocation.init(problem0.t0, problem0.t1, dtype)
    # The problems' own `args` are not read by the loss: `train_step` passes the
    # args rebuilt from `params` and `static` (with `Unknown`s being trained).
    params, static, keys, member_problems = _sharding.shard_members(
        (params, static, keys, batched_problems), devices
    )
    opt_state = _init_members(
        params,
        static,
        member_problems,
        keys,
        colloc_state,
        collocation,
        observations,
        weights,
        trainer,
        batch_size,
    )
    state = (params, opt_state, _broadcast(colloc_state, n))
    carry = (
        state,
        state,
        jnp.zeros((n,), jnp.int32),
        jnp.zeros((n,), jnp.int32),
        jnp.zeros((n,), jnp.int32),
        jnp.full((n,), jnp.nan, dtype),
    )
    carry = _sharding.shard_members(carry, devices)

    history: list[dict[str, np.ndarray]] = []
    chunk_times: list[tuple[int, float]] = []
    done = 0
    interrupted = False
    bar = tqdm(
        total=steps,
        disable=not progress,
        unit="step",
        dynamic_ncols=True,
        mininterval=0.5,
        desc=f"odefit ensemble ({n})",
    )
    with _InterruptGuard(verbose=progress) as interrupt:
        try:
            while done < steps:
                if interrupt.requested:
                    interrupted = True
                    break
                length = min(chunk - done % chunk, steps - done)
                tic = time.perf_counter()
                new_carry, stats = _run_members(
                    carry,
                    static,
                    member_problems,
                    keys,
                    observations,
                    weights,
                    trainer,
                    collocation,
                    jnp.asarray(done),
                    length,
                    batch_size,
                    devices,
                )
                stats = _sharding.fetch(stats)
                chunk_times.append((length, time.perf_counter() - tic))
                history.append({k: np.asarray(v).T for k, v in stats.items()})
                carry, done = new_carry, done + length
                status = np.asarray(_sharding.fetch(carry[2]))
                bar.update(length)
                running = status == _RUNNING
                if running.any():
                    last = history[-1]["loss"][running, -1]
                    bar.set_postfix(
                        loss=f"{float(np.median(last)):.3e}",
                        running=int(running.sum()),
                        refresh=False,
                    )
                else:
                    break
        except KeyboardInterrupt:
            interrupted = True
        finally:
            bar.close()

    accepted, current, status, at, _, _ = _sharding.fetch(carry)
    status, at = np.array(status), np.array(at)
    # A running member whose last step made its parameters non-finite ends on
    # its accepted state, like a member whose loss became non-finite.
    bad_end = (status == _RUNNING) & ~_members_finite(current[0], n)
    status[bad_end], at[bad_end] = _DIVERGED, done
    params, opt_state, colloc_state = _host_select(
        status == _RUNNING, current, accepted
    )
    hist = (
        {
            name: np.concatenate([h[name] for h in history], axis=1)
            for name in history[0]
        }
        if history
        else {}
    )
    reasons, member_steps = _stop_reasons(status, at, hist, done, interrupted)
    trained_models, args = eqx.combine(params, static)
    trained_problems = _with_args(batched_problems, args)
    return EnsembleResult(
        models=trained_models,
        problems=trained_problems,
        args=resolve_args(args),
        history=hist,
        stop_reasons=reasons,
        steps=member_steps,
        opt_state=opt_state,
        collocation_state=colloc_state,
        keys=keys,
        wall_time=time.perf_counter() - start_time,
        compile_time=_compile_time(chunk_times),
    )
