"""Problem definitions: first- and second-order initial-value problems and two-point
boundary-value problems, with their classical (diffrax) reference solves."""

import abc
import math
import re
from collections.abc import Callable
from typing import ClassVar

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from equinox import AbstractClassVar, AbstractVar
from jaxtyping import Array, ArrayLike, Float

from ._conditions import (
    AbstractCondition,
    Dirichlet,
    InitialValue,
    InitialValueAndSlope,
)
from ._custom_types import Acceleration, Args, Scalar, ScalarLike, VectorField
from ._family import Family, member, solves_members, split_family, typed
from ._unknown import resolve_args
from ._validate import check_bool, check_float, check_int


def _as_time(value, name: str) -> float:
    if isinstance(value, bool) or value is None:
        raise TypeError(f"`{name}` must be a real number, got {value!r}.")
    try:
        array = np.asarray(value)
    except Exception as e:  # noqa: BLE001
        raise TypeError(f"`{name}` must be a real number, got {value!r}.") from e
    if array.shape != ():
        raise ValueError(f"`{name}` must be a scalar, got shape {array.shape}.")
    if np.iscomplexobj(array) or not np.issubdtype(array.dtype, np.number):
        raise TypeError(f"`{name}` must be a real number, got {value!r}.")
    out = float(array)
    if not math.isfinite(out):
        raise ValueError(f"`{name}` must be finite, got {out}.")
    return out


def _check_interval(t0, t1) -> tuple[float, float]:
    t0, t1 = _as_time(t0, "t0"), _as_time(t1, "t1")
    if not t1 > t0:
        raise ValueError(f"`t1` must be greater than `t0`, got t0={t0} and t1={t1}.")
    return t0, t1


# The fewest distinct values of the state's dtype that [t0, t1] must hold: with
# fewer, collocation points collapse onto a handful of times (at 1e9 in float32
# the spacing is 64, so [1e9, 1e9 + 1] holds one value) and the network's scaled
# input is constant.
MIN_RESOLVED_TIMES = 10_000


def _ordered(value: float, dtype) -> int:
    """The position of `value` (rounded to `dtype`) among that dtype's floats: the
    difference of two positions counts the floats between them."""
    dtype = np.dtype(dtype)
    bits = np.array(value, dtype).view(np.dtype(f"i{dtype.itemsize}")).item()
    sign = 1 << (8 * dtype.itemsize - 1)
    return bits if bits >= 0 else -(bits & (sign - 1))


def _check_resolution(t0: float, t1: float, dtype) -> None:
    count = _ordered(t1, dtype) - _ordered(t0, dtype)
    if count < MIN_RESOLVED_TIMES:
        dtype = np.dtype(dtype)
        raise ValueError(
            f"`t0`={t0!r} and `t1`={t1!r} are too close together for {dtype} (the "
            f"state's dtype): only {max(count, 0) + 1} distinct {dtype} values lie "
            f"in [t0, t1], and resolving the interval needs at least "
            f"{MIN_RESOLVED_TIMES}. Shift time so that it starts at 0 (t0=0.0, "
            f"t1={t1 - t0!r}), or use float64 (enable "
            "`jax.config.update('jax_enable_x64', True)` and pass a float64 state)."
        )


def _as_state(value, name: str) -> Float[Array, "*state"]:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        raise TypeError(f"`{name}` must be a float or a 1-D array, got {value!r}.")
    try:
        array = jnp.asarray(value)
    except (TypeError, ValueError, OverflowError) as e:
        # Strings, objects, ragged nested lists, integers too large for any dtype.
        raise TypeError(
            f"`{name}` must be a float or a 1-D array, got {type(value).__name__} "
            f"({e})."
        ) from e
    if jnp.issubdtype(array.dtype, jnp.complexfloating):
        raise TypeError(
            f"`{name}` must be real; complex dtype {array.dtype} is not supported."
        )
    if not (
        jnp.issubdtype(array.dtype, jnp.floating)
        or jnp.issubdtype(array.dtype, jnp.integer)
    ):
        raise TypeError(f"`{name}` must be real, got dtype {array.dtype}.")
    if array.ndim > 1:
        raise ValueError(
            f"`{name}` must be a scalar or a 1-D array, got shape {array.shape}."
        )
    if array.size == 0:
        raise ValueError(f"`{name}` must not be empty, got shape {array.shape}.")
    if not jnp.issubdtype(array.dtype, jnp.floating):
        array = array.astype(jnp.result_type(float))
    # A Python float would give a weakly-typed array; the state's dtype is fixed.
    array = jnp.asarray(array, dtype=array.dtype)
    if not bool(jnp.all(jnp.isfinite(array))):
        raise ValueError(f"`{name}` must be finite, got {np.asarray(array)}.")
    return array


def _check_same_shape(name: str, reference_name: str, value, reference) -> None:
    if value.shape != reference.shape:
        raise ValueError(
            f"`{name}` has shape {value.shape} but `{reference_name}` has shape "
            f"{reference.shape}; they must match."
        )


def _summary(error: Exception) -> str:
    """The gist of an error raised by user code: JAX and Equinox runtime errors
    carry whole stack traces in their message (the full error stays chained)."""
    lines = [line.strip() for line in str(error).strip().splitlines()]
    lines = [line for line in lines if line]
    if len(lines) <= 1:
        return lines[0] if lines else type(error).__name__
    for line in reversed(lines):
        if re.match(r"^[\w.]*(Error|Exception): ", line):
            return line
    return lines[0]


# What to do when a vector field fails to trace, by the error JAX raised. These are
# the first errors a function ported from PyTorch or NumPy meets: odefit calls it
# on traced values (under `jax.jit`, `jax.vmap`, `jax.jvp`), never on numbers.
_TRACING_HINTS = {
    "TracerBoolConversionError": (
        "a Python `if`/`while`/`and`/`or` on a value that depends on `t`, `y` or "
        "`args`: write it with `jnp.where(condition, a, b)` (or `jax.lax.cond`)"
    ),
    "TracerArrayConversionError": (
        "a NumPy function (`np.sin`, `np.array`, ...) applied to the state: use "
        "`jax.numpy` (`jnp.sin`, `jnp.stack`) inside the function"
    ),
    "ConcretizationTypeError": (
        "`.item()`, `float()`, `int()` or a shape taken from a traced value: keep "
        "values as arrays (`y[0]`, not `y[0].item()`)"
    ),
    "TypeError: JAX arrays are immutable": (
        "an in-place assignment such as `dy[0] = ...`: build the result with "
        "`jnp.stack([...])`, or write `dy = dy.at[0].set(...)`"
    ),
}


def _hint(e: Exception) -> str:
    for key, hint in _TRACING_HINTS.items():
        kind, _, text = key.partition(": ")
        if type(e).__name__ == kind and text in str(e):
            return f" Likely {hint}."
    return ""


def _check_function(fn, name: str, call: str, example_args, y) -> None:
    """Checks that `fn` returns an array shaped and typed like `y` (at trace time)
    and finite at the example arguments (evaluated once)."""
    if not callable(fn):
        raise TypeError(f"`{name}` must be callable, got {type(fn).__name__}.")
    try:
        out = jax.eval_shape(fn, *example_args)
    except Exception as e:
        raise ValueError(
            f"`{name}` raised {type(e).__name__} when called as `{call}` on traced "
            f"values: {_summary(e).rstrip('.')}.{_hint(e)}"
        ) from e
    if not isinstance(out, jax.ShapeDtypeStruct):
        raise ValueError(
            f"`{name}` must return a single array shaped like the state, got "
            f"{jax.tree.structure(out)}."
        )
    if out.shape != y.shape:
        raise ValueError(
            f"`{name}` returned shape {out.shape} but the state has shape {y.shape}."
        )
    # A weakly-typed output (a Python float) adopts the state's dtype.
    if not jnp.issubdtype(out.dtype, jnp.floating) or (
        out.dtype != y.dtype and not out.weak_type
    ):
        raise ValueError(
            f"`{name}` returned dtype {out.dtype} but the state has dtype {y.dtype}."
        )
    # Once eagerly: an exception only raised at run time (e.g. `eqx.error_if`) or
    # a NaN at t0 would otherwise surface mid-training.
    try:
        value = fn(*example_args)
    except Exception as e:
        raise ValueError(
            f"`{name}` raised {type(e).__name__} when evaluated as `{call}`: "
            f"{_summary(e)}"
        ) from e
    if not isinstance(value, jax.core.Tracer) and not np.all(
        np.isfinite(np.asarray(value))
    ):
        raise ValueError(
            f"`{name}` returned non-finite values when evaluated as `{call}`: "
            f"{np.asarray(value)}. Training would produce NaN from its first step; "
            "if the equation is singular at t0, start the interval just after it."
        )


def _default_tolerances(dtype) -> tuple[float, float]:
    if jnp.finfo(dtype).bits >= 64:
        return 1e-11, 1e-12
    return 1e-6, 1e-7


def _check_times(ts, t0: float) -> Float[Array, " times"]:
    ts = jnp.asarray(ts)
    if ts.ndim != 1 or ts.size == 0:
        raise ValueError(f"`ts` must be a non-empty 1-D array, got shape {ts.shape}.")
    if not jnp.issubdtype(ts.dtype, jnp.floating):
        ts = ts.astype(jnp.result_type(float))
    if not bool(jnp.all(jnp.isfinite(ts))):
        raise ValueError("`ts` must be finite.")
    if bool(jnp.any(jnp.diff(ts) < 0)):
        raise ValueError("`ts` must be sorted in increasing order.")
    if float(ts[0]) < t0:
        raise ValueError(f"`ts` must start at or after t0={t0}, got {float(ts[0])}.")
    return ts


def _check_solve_options(rtol, atol, max_steps, **flags):
    """The options every `solve` takes, checked before anything is compiled and
    returned as Python numbers: `(rtol, atol, max_steps)`."""
    rtol, atol = (
        None if value is None else check_float(value, name, 0.0, open_minimum=True)
        for name, value in (("rtol", rtol), ("atol", atol))
    )
    for name, value in flags.items():
        check_bool(value, name)
    return rtol, atol, check_int(max_steps, "max_steps", 1)


def _diffrax_solve(
    vector_field, t0, ts, y0, args, *, solver, rtol, atol, max_steps, dtype
):
    """The diffrax solution at `ts`. `solver=None` picks one: `Tsit5`, and, when it
    runs out of steps (a stiff problem), `Kvaerno5` with `atol` per component
    relative to the solution's size (`stiff_scale`), so that a species of size
    `1e-5` is resolved as finely as one of size 1."""
    if rtol is None or atol is None:
        default_rtol, default_atol = _default_tolerances(dtype)
        rtol = default_rtol if rtol is None else rtol
        atol = default_atol if atol is None else atol
    t_end = float(ts[-1])
    if t_end == t0:
        return jax.tree.map(lambda y: jnp.broadcast_to(y, (ts.size, *y.shape)), y0)
    chosen = dfx.Tsit5() if solver is None else solver
    sol = _solve_once(
        vector_field, chosen, t0, t_end, ts, y0, args, rtol, atol, max_steps, dtype
    )
    if solver is None and sol.result == dfx.RESULTS.max_steps_reached:
        chosen = dfx.Kvaerno5()
        peak = _implicit_peak(vector_field, t0, t_end, y0, args)
        atol = jax.tree.map(lambda p: atol * _safe_scale(p, 1.0).astype(dtype), peak)
        sol = _solve_once(
            vector_field, chosen, t0, t_end, ts, y0, args, rtol, atol, max_steps, dtype
        )
    if not bool(dfx.RESULTS.successful == sol.result):
        x64 = (
            "enable float64 (`jax.config.update('jax_enable_x64', True)` at the "
            "start of the script)"
        )
        float32 = jnp.dtype(dtype) == jnp.float32
        if isinstance(chosen, dfx.AbstractImplicitSolver):
            advice = (
                "In float32 an implicit solver's Newton iterations cannot meet the "
                f"reference's tolerances: {x64}."
                if float32
                else "Raise `max_steps`, or loosen `rtol`/`atol`."
            )
        else:
            fix = "pass `solver=diffrax.Kvaerno5()`"
            if float32:
                fix = f"{x64}, then {fix} (in float32 that fails too)"
            advice = (
                "If the problem is stiff (time scales far apart), an explicit solver "
                f"runs out of steps whatever the budget: {fix}."
            )
        raise RuntimeError(
            "The reference solve failed: "
            f"{str(dfx.RESULTS[sol.result]).rstrip('.')}. {advice}"
        )
    return sol.ys


def _solve_once(
    vector_field, solver, t0, t_end, ts, y0, args, rtol, atol, max_steps, dtype
):
    return dfx.diffeqsolve(
        dfx.ODETerm(vector_field),
        solver,
        # As arrays, so that a new interval does not recompile the solve.
        t0=jnp.asarray(t0, dtype),
        t1=jnp.asarray(t_end, dtype),
        dt0=None,
        y0=y0,
        args=args,
        saveat=dfx.SaveAt(ts=ts),
        stepsize_controller=dfx.PIDController(rtol=rtol, atol=atol),
        max_steps=max_steps,
        throw=False,
    )


@eqx.filter_jit
def _implicit_path(field, t0, t1, y0, args):
    """The accepted steps of a loose implicit (`Kvaerno5`) solve: times and states,
    the unused slots of the step buffer filled with `inf`. Stable on stiff
    problems, and its steps follow the solution's own time scales."""
    dtype = jax.tree.leaves(y0)[0].dtype
    sol = dfx.diffeqsolve(
        dfx.ODETerm(field),
        dfx.Kvaerno5(),
        t0=jnp.asarray(t0, dtype),
        t1=jnp.asarray(t1, dtype),
        dt0=None,
        y0=y0,
        args=args,
        saveat=dfx.SaveAt(t0=True, steps=True),
        # A small atol, so that a species of size `1e-5` is followed closely too.
        stepsize_controller=dfx.PIDController(rtol=1e-6, atol=1e-12),
        max_steps=_IMPLICIT_STEPS,
        throw=False,
    )
    return sol.ts, sol.ys


# The step budget of the loose implicit solves used for scales and windows.
_IMPLICIT_STEPS = 65_536


def _implicit_peak(field, t0, t1, y0, args):
    """The largest |state| along a loose implicit solve (`_implicit_path`)."""
    ts, ys = _implicit_path(field, t0, t1, y0, args)
    ok = jnp.isfinite(ts)
    return jax.tree.map(
        lambda y: jnp.max(
            jnp.where(ok.reshape(-1, *([1] * (y.ndim - 1))), jnp.abs(y), 0.0), axis=0
        ),
        ys,
    )


def _trajectory(field, t0: float, t1: float, y0, args, steps: int):
    """States along a fixed-step RK4 integration (`steps + 1` of them)."""
    dt = (t1 - t0) / steps

    def rk4(y, i):
        t = t0 + i * dt
        k1 = field(t, y, args)
        k2 = field(t + dt / 2, jax.tree.map(lambda a, b: a + dt / 2 * b, y, k1), args)
        k3 = field(t + dt / 2, jax.tree.map(lambda a, b: a + dt / 2 * b, y, k2), args)
        k4 = field(t + dt, jax.tree.map(lambda a, b: a + dt * b, y, k3), args)
        y = jax.tree.map(
            lambda a, b1, b2, b3, b4: a + dt / 6 * (b1 + 2 * b2 + 2 * b3 + b4),
            y,
            k1,
            k2,
            k3,
            k4,
        )
        return y, y

    dtype = jax.tree.leaves(y0)[0].dtype
    _, ys = jax.lax.scan(rk4, y0, jnp.arange(steps, dtype=dtype))
    return jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), y0, ys)


def _rk4_peak(field, t0, t1, y0, args, steps: int = 256):
    """The largest |state| met by a coarse fixed-step RK4 integration: a cheap
    estimate of the solution's size, accurate to a few per cent, for scaling.
    Also says whether it is trustworthy: the same peak, within a tenth, with half the
    steps (on a stiff problem a coarse explicit method is unstable and the two
    differ, or blow up)."""
    path = _trajectory(field, t0, t1, y0, args, steps)
    half = _trajectory(field, t0, t1, y0, args, steps // 2)
    peak, coarse = (
        jax.tree.map(lambda ys: jnp.max(jnp.abs(ys), axis=0), p) for p in (path, half)
    )
    agree = jax.tree.map(
        lambda a, b: jnp.all(
            jnp.isfinite(a) & jnp.isfinite(b) & (jnp.abs(a - b) <= 0.1 * jnp.abs(a))
        ),
        peak,
        coarse,
    )
    return peak, jnp.all(jnp.stack(jax.tree.leaves(agree)))


def is_stiff(problem) -> bool:
    """Whether a coarse explicit integration of `problem` over its interval is
    unstable (`_rk4_peak` untrusted): the sign of a stiff problem, or of one much
    faster than the interval."""
    args = resolve_args(problem.args)
    y0 = problem.y0 if problem.order == 1 else (problem.y0, problem.dy0)
    _, trusted = eqx.filter_jit(_rk4_peak)(
        problem.first_order_field(), problem.t0, problem.t1, y0, args
    )
    return not bool(trusted)


def _peak(field, t0, t1, y0, args):
    """The peak |state| over [t0, t1]: by coarse RK4 when that is stable, otherwise
    along a loose implicit solve (stiff problems)."""
    peak, trusted = eqx.filter_jit(_rk4_peak)(field, t0, t1, y0, args)
    if bool(trusted):
        return peak
    return _implicit_peak(field, t0, t1, y0, args)


def stiff_scale(problem) -> Float[Array, "*state"]:
    """The peak |state| of each component along a loose implicit solve, keeping
    components far smaller than the others (a radical of size `1e-8` beside a
    reactant of size one): only exact zeros, or sizes near the dtype's rounding
    of the largest, fall back to 1. For first-order problems; others use
    `characteristic_scale`."""
    if not isinstance(problem, IVP):
        return problem.characteristic_scale()
    peak = _implicit_peak(
        problem.vector_field,
        problem.t0,
        problem.t1,
        problem.y0,
        resolve_args(problem.args),
    )
    dtype = problem.y0.dtype
    floor = 1e3 * float(jnp.finfo(dtype).eps)
    top = jnp.max(jnp.where(jnp.isfinite(peak), peak, 0.0))
    ok = jnp.isfinite(peak) & (peak > floor * top)
    return jnp.where(ok, peak, 1.0).astype(dtype)


def relaxation_rates(problem) -> Float[Array, "*state"]:
    r"""How stiff each component of a first-order problem is: the largest
    $|\partial f_i / \partial y_i|$ along a loose implicit solve, times the
    interval length (the number of relaxation times of component $i$ that fit in
    $[t_0, t_1]$). Ones for second-order problems and boundary-value problems."""
    state = problem.state
    if not isinstance(problem, IVP):
        return jnp.ones_like(state)
    args = resolve_args(problem.args)
    ts, ys = _implicit_path(
        problem.vector_field, problem.t0, problem.t1, problem.y0, args
    )
    ok = jnp.isfinite(ts)
    safe_t = jnp.where(ok, ts, problem.t0)
    safe_y = jnp.where(ok.reshape(-1, *([1] * state.ndim)), ys, problem.y0)

    def diagonal(t, y):
        flat = y.ravel()

        def f(flat):
            return problem.vector_field(t, flat.reshape(state.shape), args).ravel()

        return jnp.diagonal(jax.jacfwd(f)(flat)).reshape(state.shape)

    rates = jnp.abs(jax.vmap(diagonal)(safe_t, safe_y))
    rates = jnp.where(ok.reshape(-1, *([1] * state.ndim)), rates, 0.0)
    out = jnp.max(rates, axis=0) * (problem.t1 - problem.t0)
    return jnp.where(jnp.isfinite(out), out, 1.0).astype(state.dtype)


def _safe_scale(peak, fallback):
    """Replaces entries that are non-finite or negligible by `fallback`."""
    peak = jnp.asarray(peak)
    ok = jnp.isfinite(peak) & (
        peak
        > 1e-6 * jnp.maximum(1.0, jnp.max(jnp.where(jnp.isfinite(peak), peak, 0.0)))
    )
    return jnp.where(ok, peak, fallback)


class AbstractProblem(eqx.Module):
    """An ODE problem on $[t_0, t_1]$: the residual a solution must zero, the
    conditions it must meet and a classical reference solve."""

    t0: AbstractVar[float]
    t1: AbstractVar[float]
    args: AbstractVar[Args]
    family: AbstractVar[Family | None]
    order: AbstractClassVar[int]

    def member(self, params: Float[ArrayLike, " family"]) -> "AbstractProblem":
        """The plain problem of one member of a family (see [`odefit.Varies`][]):
        every marker replaced by its entries of `params`, shape
        `(problem.family.size,)`."""
        return member(self, params)

    @property
    @abc.abstractmethod
    def state(self) -> Float[Array, "*state"]:
        """An array shaped and typed like the solution at one time."""

    @abc.abstractmethod
    def residual(
        self, t: Scalar, derivatives: tuple[Array, ...], args: Args
    ) -> Float[Array, "*state"]:
        """The ODE residual at `t`, given `(y, y', ..., y^(order))` there."""

    @abc.abstractmethod
    def condition(self) -> AbstractCondition:
        """The conditions as an exact ansatz (used by `PINN` by default)."""

    @abc.abstractmethod
    def condition_residuals(
        self, solution: Callable[[Scalar], Array]
    ) -> Float[Array, " conditions"]:
        """How far `solution` is from meeting the conditions (soft constraints)."""

    @abc.abstractmethod
    def solve(self, ts: Float[ArrayLike, " times"], **options) -> Array:
        """A classical reference solution on `ts`."""

    @abc.abstractmethod
    def first_order_field(self) -> VectorField:
        """The vector field of the equivalent first-order system."""

    @abc.abstractmethod
    def characteristic_scale(self) -> Float[Array, "*state"]:
        """The typical size of each state component over $[t_0, t_1]$ (used to
        non-dimensionalise the state)."""


class IVP(AbstractProblem):
    r"""A first-order initial-value problem

    $$\frac{dy}{dt} = f(t, y, \text{args}), \quad y(t_0) = y_0.$$

    **Arguments:**

    - `vector_field`: $f$, called as `vector_field(t, y, args)` (diffrax's signature)
        and returning an array shaped like `y0`.
    - `t0`, `t1`: the time interval; `t1 > t0`.
    - `y0`: the initial value, a scalar or a 1-D array.
    - `args`: any PyTree passed to `vector_field`; entries wrapped in
        [`odefit.Unknown`][] are learned by `fit` (an inverse problem).

    **Example:**

    ```python
    import jax.numpy as jnp
    import odefit

    problem = odefit.IVP(lambda t, y, args: -args * y, t0=0.0, t1=2.0, y0=1.0, args=2.0)
    ys = problem.solve(jnp.linspace(0.0, 2.0, 5))   # ≈ exp(-2 t)
    ```
    """

    vector_field: VectorField
    t0: float
    t1: float
    y0: Float[Array, "*state"]
    args: Args
    family: Family | None
    order: ClassVar[int] = 1

    def __init__(
        self,
        vector_field: VectorField,
        t0: ScalarLike,
        t1: ScalarLike,
        y0: Float[ArrayLike, "*state"],
        args: Args = None,
    ):
        self.t0, self.t1 = _check_interval(t0, t1)
        family, states = split_family(args, y0=y0)
        self.y0 = _as_state(states["y0"], "y0")
        self.family = typed(family, self.y0.dtype)
        _check_resolution(self.t0, self.t1, self.y0.dtype)
        self.args = args
        _check_function(
            vector_field,
            "vector_field",
            "vector_field(t0, y0, args)",
            (jnp.asarray(self.t0, self.y0.dtype), self.y0, resolve_args(args)),
            self.y0,
        )
        self.vector_field = vector_field

    @property
    def state(self):
        return self.y0

    def residual(self, t, derivatives, args):
        y, dy = derivatives
        return dy - self.vector_field(t, y, args)

    def condition(self):
        return InitialValue(self.y0)

    def condition_residuals(self, solution):
        return jnp.ravel(solution(jnp.asarray(self.t0, self.y0.dtype)) - self.y0)

    def first_order_field(self):
        return self.vector_field

    def characteristic_scale(self):
        peak = _peak(
            self.vector_field, self.t0, self.t1, self.y0, resolve_args(self.args)
        )
        return _safe_scale(peak, 1.0).astype(self.y0.dtype)

    @solves_members
    def solve(
        self,
        ts: Float[ArrayLike, " times"],
        *,
        solver: dfx.AbstractSolver | None = None,
        rtol: float | None = None,
        atol: float | None = None,
        max_steps: int = 1_000_000,
    ) -> Float[Array, "times *state"]:
        """The classical reference solution on `ts`, by diffrax.

        **Arguments:**

        - `ts`: increasing times, `ts[0] >= t0` (times past `t1` are allowed, for
            extrapolation).
        - `solver`: a diffrax solver. Default: `Tsit5()`, and when that runs out
            of steps (a stiff problem) `Kvaerno5()`, implicit, with `atol` taken
            per component relative to its peak magnitude (so that a species of
            size `1e-5` is resolved to the same relative accuracy as one of size 1).
        - `rtol`, `atol`: tolerances; default 1e-11/1e-12 in float64 and
            1e-6/1e-7 in float32.
        - `max_steps`: the solver's step budget.

        **Returns:** an array of shape `(len(ts), *y0.shape)`.
        """
        rtol, atol, max_steps = _check_solve_options(rtol, atol, max_steps)
        ts = _check_times(ts, self.t0).astype(self.y0.dtype)
        return _diffrax_solve(
            self.vector_field,
            self.t0,
            ts,
            self.y0,
            resolve_args(self.args),
            solver=solver,
            rtol=rtol,
            atol=atol,
            max_steps=max_steps,
            dtype=self.y0.dtype,
        )


class _SecondOrderField(eqx.Module):
    """$(y, y')' = (y', g(t, y, y'))$. A Module rather than a closure, so that it
    compares equal for the same `acceleration` and compiled solves are reused."""

    acceleration: Acceleration

    def __call__(self, t, state, args):
        y, dy = state
        return dy, self.acceleration(t, y, dy, args)


def _second_order_field(acceleration):
    return _SecondOrderField(acceleration)


class _AbstractSecondOrder(AbstractProblem):
    acceleration: AbstractVar[Acceleration]
    order: ClassVar[int] = 2

    def residual(self, t, derivatives, args):
        y, dy, ddy = derivatives
        return ddy - self.acceleration(t, y, dy, args)

    def first_order_field(self):
        return _second_order_field(self.acceleration)


class SecondOrderIVP(_AbstractSecondOrder):
    r"""A second-order initial-value problem

    $$y'' = g(t, y, y', \text{args}), \qquad y(t_0) = y_0, \quad y'(t_0) = y'_0.$$

    **Arguments:**

    - `acceleration`: $g$, called as `acceleration(t, y, dy, args)`.
    - `t0`, `t1`: the time interval; `t1 > t0`.
    - `y0`, `dy0`: initial value and slope, scalars or 1-D arrays of one shape.
    - `args`: any PyTree passed to `acceleration` (may hold `odefit.Unknown`s).

    **Example:**

    ```python
    import jax.numpy as jnp
    import odefit

    pendulum = odefit.SecondOrderIVP(
        lambda t, y, dy, args: -jnp.sin(y), t0=0.0, t1=6.0, y0=1.0, dy0=0.0
    )
    ```
    """

    acceleration: Acceleration
    t0: float
    t1: float
    y0: Float[Array, "*state"]
    dy0: Float[Array, "*state"]
    args: Args
    family: Family | None

    def __init__(
        self,
        acceleration: Acceleration,
        t0: ScalarLike,
        t1: ScalarLike,
        y0: Float[ArrayLike, "*state"],
        dy0: Float[ArrayLike, "*state"],
        args: Args = None,
    ):
        self.t0, self.t1 = _check_interval(t0, t1)
        family, states = split_family(args, y0=y0, dy0=dy0)
        self.y0 = _as_state(states["y0"], "y0")
        self.family = typed(family, self.y0.dtype)
        _check_resolution(self.t0, self.t1, self.y0.dtype)
        self.dy0 = _as_state(states["dy0"], "dy0").astype(self.y0.dtype)
        _check_same_shape("dy0", "y0", self.dy0, self.y0)
        self.args = args
        _check_function(
            acceleration,
            "acceleration",
            "acceleration(t0, y0, dy0, args)",
            (
                jnp.asarray(self.t0, self.y0.dtype),
                self.y0,
                self.dy0,
                resolve_args(args),
            ),
            self.y0,
        )
        self.acceleration = acceleration

    @property
    def state(self):
        return self.y0

    def condition(self):
        return InitialValueAndSlope(self.t0, self.y0, self.dy0)

    def characteristic_scale(self):
        peak, _ = _peak(
            self.first_order_field(),
            self.t0,
            self.t1,
            (self.y0, self.dy0),
            resolve_args(self.args),
        )
        return _safe_scale(peak, 1.0).astype(self.y0.dtype)

    def condition_residuals(self, solution):
        t0 = jnp.asarray(self.t0, self.y0.dtype)
        y, dy = jax.jvp(solution, (t0,), (jnp.ones_like(t0),))
        return jnp.concatenate([jnp.ravel(y - self.y0), jnp.ravel(dy - self.dy0)])

    @solves_members
    def solve(
        self,
        ts: Float[ArrayLike, " times"],
        *,
        solver: dfx.AbstractSolver | None = None,
        rtol: float | None = None,
        atol: float | None = None,
        max_steps: int = 1_000_000,
        derivative: bool = False,
    ):
        """The classical reference on `ts` (diffrax on the first-order form).

        Options as for [`odefit.IVP.solve`][]; with `derivative=True` returns the
        pair `(y, y')`, otherwise `y` alone, each of shape `(len(ts), *y0.shape)`.
        """
        rtol, atol, max_steps = _check_solve_options(
            rtol, atol, max_steps, derivative=derivative
        )
        ts = _check_times(ts, self.t0).astype(self.y0.dtype)
        y, dy = _diffrax_solve(
            self.first_order_field(),
            self.t0,
            ts,
            (self.y0, self.dy0),
            resolve_args(self.args),
            solver=solver,
            rtol=rtol,
            atol=atol,
            max_steps=max_steps,
            dtype=self.y0.dtype,
        )
        return (y, dy) if derivative else y


class BVP(_AbstractSecondOrder):
    r"""A two-point boundary-value problem with Dirichlet conditions

    $$y'' = g(t, y, y', \text{args}), \qquad y(t_0) = y_a, \quad y(t_1) = y_b.$$

    **Arguments:**

    - `acceleration`: $g$, called as `acceleration(t, y, dy, args)`.
    - `t0`, `t1`: the interval; `t1 > t0`.
    - `ya`, `yb`: the boundary values, scalars or 1-D arrays of one shape.
    - `args`: any PyTree passed to `acceleration`.

    The reference `solve` uses single shooting: a Newton solve (optimistix) for the
    initial slope such that the diffrax solution hits `yb`.

    **Example:**

    ```python
    import jax.numpy as jnp
    import odefit

    problem = odefit.BVP(
        lambda t, y, dy, args: -jnp.pi**2 * jnp.sin(jnp.pi * t),
        t0=0.0, t1=1.0, ya=0.0, yb=0.0,
    )
    ys = problem.solve(jnp.linspace(0.0, 1.0, 11))   # ≈ sin(pi t)
    ```
    """

    acceleration: Acceleration
    t0: float
    t1: float
    ya: Float[Array, "*state"]
    yb: Float[Array, "*state"]
    args: Args
    family: Family | None

    def __init__(
        self,
        acceleration: Acceleration,
        t0: ScalarLike,
        t1: ScalarLike,
        ya: Float[ArrayLike, "*state"],
        yb: Float[ArrayLike, "*state"],
        args: Args = None,
    ):
        self.t0, self.t1 = _check_interval(t0, t1)
        family, states = split_family(args, ya=ya, yb=yb)
        self.ya = _as_state(states["ya"], "ya")
        self.family = typed(family, self.ya.dtype)
        _check_resolution(self.t0, self.t1, self.ya.dtype)
        self.yb = _as_state(states["yb"], "yb").astype(self.ya.dtype)
        _check_same_shape("yb", "ya", self.yb, self.ya)
        self.args = args
        _check_function(
            acceleration,
            "acceleration",
            "acceleration(t0, ya, dy, args)",
            (
                jnp.asarray(self.t0, self.ya.dtype),
                self.ya,
                jnp.zeros_like(self.ya),
                resolve_args(args),
            ),
            self.ya,
        )
        self.acceleration = acceleration

    @property
    def state(self):
        return self.ya

    def condition(self):
        return Dirichlet(self.ya, self.yb)

    def characteristic_scale(self):
        peak = jnp.maximum(jnp.abs(self.ya), jnp.abs(self.yb))
        return _safe_scale(peak, 1.0).astype(self.ya.dtype)

    def condition_residuals(self, solution):
        dtype = self.ya.dtype
        ya = solution(jnp.asarray(self.t0, dtype))
        yb = solution(jnp.asarray(self.t1, dtype))
        return jnp.concatenate([jnp.ravel(ya - self.ya), jnp.ravel(yb - self.yb)])

    @solves_members
    def solve(
        self,
        ts: Float[ArrayLike, " times"],
        *,
        solver: dfx.AbstractSolver | None = None,
        rtol: float | None = None,
        atol: float | None = None,
        max_steps: int = 100_000,
        shooting_max_steps: int = 50,
        derivative: bool = False,
    ):
        """The classical reference on `ts`, by single shooting.

        Options as for [`odefit.SecondOrderIVP.solve`][]; `shooting_max_steps`
        bounds the Newton iterations. Raises `RuntimeError` when shooting fails to
        converge (try a better-conditioned formulation or a shorter interval).
        """
        rtol, atol, max_steps = _check_solve_options(
            rtol, atol, max_steps, derivative=derivative
        )
        shooting_max_steps = check_int(shooting_max_steps, "shooting_max_steps", 1)
        ts = _check_times(ts, self.t0).astype(self.ya.dtype)
        dtype = self.ya.dtype
        default_rtol, default_atol = _default_tolerances(dtype)
        rtol = default_rtol if rtol is None else rtol
        atol = default_atol if atol is None else atol
        solver = dfx.Tsit5() if solver is None else solver
        field = self.first_order_field()
        args = resolve_args(self.args)
        t0, t1 = self.t0, self.t1

        def end_mismatch(slope, _):
            sol = dfx.diffeqsolve(
                dfx.ODETerm(field),
                solver,
                t0=t0,
                t1=t1,
                dt0=None,
                y0=(self.ya, slope),
                args=args,
                stepsize_controller=dfx.PIDController(rtol=rtol, atol=atol),
                max_steps=max_steps,
                # Newton differentiates through the solve in forward mode.
                adjoint=dfx.ForwardMode(),
                # A trial slope whose solution blows up gives a non-finite miss,
                # so that Newton fails and the error below explains it.
                throw=False,
            )
            return sol.ys[0][-1] - self.yb

        guess = (self.yb - self.ya) / (t1 - t0)
        shoot = optx.root_find(
            end_mismatch,
            optx.Newton(rtol=100 * rtol, atol=100 * atol),
            guess,
            max_steps=shooting_max_steps,
            throw=False,
        )
        miss = float(jnp.max(jnp.abs(end_mismatch(shoot.value, None))))
        scale = 1.0 + float(jnp.max(jnp.abs(self.yb)))
        if shoot.result != optx.RESULTS.successful and not miss <= 1e3 * atol * scale:
            raise RuntimeError(
                "Shooting for the BVP reference failed to converge "
                f"({optx.RESULTS[shoot.result]}; end-point miss {miss:.3g}). "
                "Try a shorter interval or pass `shooting_max_steps`."
            )
        y, dy = _diffrax_solve(
            field,
            t0,
            ts,
            (self.ya, shoot.value),
            args,
            solver=solver,
            rtol=rtol,
            atol=atol,
            max_steps=max_steps,
            dtype=dtype,
        )
        return (y, dy) if derivative else y
