"""A neural ODE: a network vector field integrated by diffrax."""

from collections.abc import Callable

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .. import _memory
from .._custom_types import Key, Scalar
from .._problems import IVP, AbstractProblem
from .._validate import check_bool, check_float, check_int, check_key, check_scale
from .base import AbstractModel


def _check_positive_int(value, name: str) -> int:
    return check_int(value, name, 1)


def _check_instance(value, cls, name: str, example: str):
    if not isinstance(value, cls):
        raise TypeError(
            f"`{name}` must be a {cls.__module__.split('.')[0]}.{cls.__name__} "
            f"(e.g. {example}), got {type(value).__name__}."
        )
    return value


def _default_controller(dtype) -> dfx.PIDController:
    if jnp.finfo(dtype).bits >= 64:
        return dfx.PIDController(rtol=1e-7, atol=1e-9)
    return dfx.PIDController(rtol=1e-5, atol=1e-6)


class _Field(eqx.Module):
    r"""$f_\theta(t, y) = \frac{s}{T} N_\theta(y / s, \tau)$: the network sees the
    state divided by its typical size $s$ (and, unless autonomous, the time scaled
    to $\tau \in [-1, 1]$ over the training interval of length $T$), and its O(1)
    output is a rate in units of $s / T$."""

    mlp: eqx.nn.MLP
    scale: Float[Array, "*state"]
    t0: float = eqx.field(static=True)
    span: float = eqx.field(static=True)
    autonomous: bool = eqx.field(static=True)

    def _rate(self, t, y):
        x = jnp.ravel(y / self.scale)
        if not self.autonomous:
            tau = 2 * (t - self.t0) / self.span - 1
            x = jnp.concatenate([x, jnp.expand_dims(tau, 0).astype(x.dtype)])
        return self.mlp(x).reshape(y.shape) * (self.scale / self.span)

    def __call__(self, t, y, args):
        del args
        # Leading axes, if any, index trajectories integrated side by side.
        batch = y.shape[: y.ndim - self.scale.ndim]
        if not batch:
            return self._rate(t, y)
        rows = y.reshape(-1, *self.scale.shape)
        return jax.vmap(lambda row: self._rate(t, row))(rows).reshape(y.shape)


class NeuralODE(AbstractModel):
    r"""A neural ODE: a network vector field integrated by diffrax,

    $$\frac{dy}{dt} = f_\theta(t, y), \qquad y(t_0) = y_0,$$

    with $t_0$ and $y_0$ taken from the problem (or several initial states, see
    `initial_states`). Fit it to observed trajectories with
    [`odefit.fit`][] and [`odefit.Observations`][] (the data term is its only loss;
    there is no physics residual, the problem's own vector field is not used), then
    evaluate it anywhere, beyond the data included: `model.predict(ts)` integrates
    once through all of `ts`, `model(t)` gives one time.

    The network sees the state divided by a per-component `scale` (and, when
    `autonomous=False`, the time scaled to $[-1, 1]$ over $[t_0, t_1]$); its output
    is multiplied by `scale / (t1 - t0)`, so it works with O(1) numbers.

    Gradients flow through the solve by the selected diffrax `adjoint`:
    `diffrax.RecursiveCheckpointAdjoint()` (default; discretise-then-optimise,
    exact gradients of the discrete solve), `diffrax.DirectAdjoint()` (the same
    numbers, more memory), or `diffrax.BacksolveAdjoint()` (optimise-then-
    discretise, constant memory, gradients accurate to the solver tolerance).
    `diffrax.ForwardMode()` supports forward-mode differentiation only
    (`jax.jvp`, `jax.jacfwd`); optax optimisers need reverse mode and cannot use it.

    A failed integration (e.g. `max_steps` reached because the learned dynamics
    blew up) returns `inf` at the times it did not reach, rather than raising, so
    that `fit` can stop and keep the last finite model.

    **Arguments:**

    - `problem`: an [`odefit.IVP`][] giving $t_0$, $t_1$ (the training interval)
        and $y_0$. Its `vector_field` is not used by the model; where the dynamics
        are unknown any placeholder will do, but then pass `scale`.
    - `width`, `depth`: hidden width and number of hidden layers of the MLP.
    - `activation`: the hidden activation; default `jax.nn.softplus`.
    - `autonomous`: whether $f$ ignores $t$ (the default: the network sees only
        the state).
    - `scale`: the typical size of each state component. Default: the problem's
        `characteristic_scale()` (the peak along a coarse integration of the
        problem's own vector field).
    - `initial_states`: several trajectories of the same dynamics, integrated side
        by side: their initial states at $t_0$, one row each, shape
        `(trajectories, *y0.shape)`. The model's state (and what `predict`, `fit`
        and the observations work with) then has that shape. Default: the
        problem's `y0`, one trajectory. Trajectories through different parts of
        the state space pin the vector field down where a single orbit cannot,
        which is what makes extrapolation reliable.
    - `solver`: a diffrax solver; default `diffrax.Tsit5()`.
    - `stepsize_controller`: a diffrax step-size controller; default
        `diffrax.PIDController(rtol=1e-7, atol=1e-9)` in float64 and
        `(rtol=1e-5, atol=1e-6)` in float32. With `diffrax.ConstantStepSize()`
        pass `dt0`.
    - `adjoint`: how gradients are computed through the solve (see above).
    - `dt0`: the initial (or, with a constant step size, the fixed) step; default
        chosen by the controller.
    - `max_steps`: the solver's step budget per solve.
    - `key`: a `jax.random` key for the initial weights.

    **Example:**

    ```python
    import jax, jax.numpy as jnp, odefit

    problem = odefit.IVP(lambda t, y, args: -y, t0=0.0, t1=2.0, y0=jnp.array([1.0]))
    ts = jnp.linspace(0.0, 2.0, 21)
    data = odefit.Observations(ts, problem.solve(ts))
    model = odefit.NeuralODE(problem, width=16, depth=2, key=jax.random.key(0))
    result = odefit.fit(problem, model, steps=500, observations=data,
                        key=jax.random.key(1), progress=False)
    result.model.predict(jnp.linspace(0.0, 4.0, 41))   # extrapolates to t = 4
    ```

    **Reference:** Chen, Rubanova, Bettencourt & Duvenaud, "Neural ordinary
    differential equations" (2018), https://arxiv.org/abs/1806.07366
    """

    field: _Field
    y0: Float[Array, "*state"]
    solver: dfx.AbstractSolver
    stepsize_controller: dfx.AbstractStepSizeController
    adjoint: dfx.AbstractAdjoint
    t0: float = eqx.field(static=True)
    t1: float = eqx.field(static=True)
    dt0: float | None = eqx.field(static=True)
    max_steps: int = eqx.field(static=True)

    def __init__(
        self,
        problem: AbstractProblem,
        *,
        width: int = 64,
        depth: int = 2,
        activation: Callable[[Array], Array] = jax.nn.softplus,
        autonomous: bool = True,
        scale: Float[ArrayLike, "*state"] | None = None,
        initial_states: Float[ArrayLike, "trajectories *state"] | None = None,
        solver: dfx.AbstractSolver | None = None,
        stepsize_controller: dfx.AbstractStepSizeController | None = None,
        adjoint: dfx.AbstractAdjoint | None = None,
        dt0: float | None = None,
        max_steps: int = 4096,
        key: Key,
    ):
        if not isinstance(problem, IVP):
            raise TypeError(
                "`problem` must be an odefit.IVP (a first-order system; write a "
                "higher-order problem as one), got "
                f"{type(problem).__name__}."
            )
        width = _check_positive_int(width, "width")
        depth = _check_positive_int(depth, "depth")
        max_steps = _check_positive_int(max_steps, "max_steps")
        if not callable(activation):
            raise TypeError(
                f"`activation` must be callable, got {type(activation).__name__}."
            )
        autonomous = check_bool(autonomous, "autonomous")
        check_key(key)
        y0 = problem.y0
        dtype = y0.dtype
        _memory.check_mlp(
            width=width,
            depth=depth,
            in_size=y0.size + (0 if autonomous else 1),
            out_size=y0.size,
            dtype=dtype,
        )
        if initial_states is not None:
            initial_states = jnp.asarray(initial_states)
            if (
                initial_states.ndim != y0.ndim + 1
                or initial_states.shape[1:] != y0.shape
                or initial_states.shape[0] < 1
            ):
                raise ValueError(
                    "`initial_states` must have one row per trajectory, shape "
                    f"(trajectories, *{y0.shape}), got shape {initial_states.shape}."
                )
            if not jnp.issubdtype(initial_states.dtype, jnp.floating) and not (
                jnp.issubdtype(initial_states.dtype, jnp.integer)
            ):
                raise TypeError(
                    f"`initial_states` must be real, got dtype {initial_states.dtype}."
                )
            initial_states = initial_states.astype(dtype)
            if not bool(jnp.all(jnp.isfinite(initial_states))):
                raise ValueError("`initial_states` must be finite.")
        if scale is None:
            scale = problem.characteristic_scale()
        else:
            scale = check_scale(scale, y0)
        solver = (
            dfx.Tsit5()
            if solver is None
            else _check_instance(
                solver, dfx.AbstractSolver, "solver", "diffrax.Tsit5()"
            )
        )
        stepsize_controller = (
            _default_controller(dtype)
            if stepsize_controller is None
            else _check_instance(
                stepsize_controller,
                dfx.AbstractStepSizeController,
                "stepsize_controller",
                "diffrax.PIDController(rtol=1e-6, atol=1e-8)",
            )
        )
        adjoint = (
            dfx.RecursiveCheckpointAdjoint()
            if adjoint is None
            else _check_instance(
                adjoint,
                dfx.AbstractAdjoint,
                "adjoint",
                "diffrax.BacksolveAdjoint()",
            )
        )
        if dt0 is not None:
            dt0 = check_float(dt0, "dt0", 0.0, open_minimum=True, what="a number > 0")
        elif isinstance(stepsize_controller, dfx.ConstantStepSize):
            raise ValueError(
                "`dt0` is required with `stepsize_controller=ConstantStepSize()`, "
                "got None."
            )
        self.field = _Field(
            mlp=eqx.nn.MLP(
                in_size=y0.size + (0 if autonomous else 1),
                out_size=y0.size,
                width_size=width,
                depth=depth,
                activation=activation,
                dtype=dtype,
                key=key,
            ),
            scale=scale,
            t0=problem.t0,
            span=problem.t1 - problem.t0,
            autonomous=autonomous,
        )
        self.y0 = y0 if initial_states is None else initial_states
        self.solver = solver
        self.stepsize_controller = stepsize_controller
        self.adjoint = adjoint
        self.t0, self.t1 = problem.t0, problem.t1
        self.dt0 = dt0
        self.max_steps = max_steps

    @property
    def scale(self) -> Float[Array, "*state"]:
        """The typical size of each state component, by which the network's input
        is divided (and its output, over `t1 - t0`, multiplied)."""
        return self.field.scale

    def vector_field(
        self, t: Scalar, y: Float[Array, "*state"]
    ) -> Float[Array, "*state"]:
        """The learned $f_\\theta(t, y)$, for one state or for states stacked along
        leading axes."""
        return self.field(jnp.asarray(t, self.y0.dtype), y, None)

    def _solve(self, t_end, saveat):
        dtype = self.y0.dtype
        # diffrax mixes Python scalars into its arithmetic; odefit's own code is
        # clean under strict dtype promotion, so only this call is relaxed.
        with jax.numpy_dtype_promotion("standard"):
            sol = dfx.diffeqsolve(
                dfx.ODETerm(self.field),
                self.solver,
                t0=jnp.asarray(self.t0, dtype),
                t1=t_end,
                dt0=self.dt0,
                y0=self.y0,
                saveat=saveat,
                stepsize_controller=self.stepsize_controller,
                adjoint=self.adjoint,
                max_steps=self.max_steps,
                throw=False,
            )
        return sol.ys

    def predict(self, ts: Float[ArrayLike, " times"]) -> Float[Array, "times *state"]:
        """The states at increasing times `ts >= t0` (beyond `t1` too), from one
        integration.

        **Arguments:**

        - `ts`: increasing times, `ts[0] >= t0`.

        **Returns:** an array of shape `(len(ts), *y0.shape)`, or
        `(len(ts), trajectories, *y0.shape)` with `initial_states`.
        """
        ts = jnp.asarray(ts)
        if ts.ndim != 1 or ts.size == 0:
            raise ValueError(
                f"`ts` must be a non-empty 1-D array of times, got shape {ts.shape}."
            )
        if not isinstance(ts, jax.core.Tracer):
            # Concrete times are checked here, in NumPy (under a trace a jnp
            # operation would give a tracer).
            times = np.asarray(ts)
            if np.any(np.diff(times) < 0):
                raise ValueError("`ts` must be sorted in increasing order.")
            if times[0] < self.t0:
                raise ValueError(
                    f"`ts` must start at or after t0={self.t0}, got {times[0]}."
                )
        ts = ts.astype(self.y0.dtype)
        return self._solve(ts[-1], dfx.SaveAt(ts=ts))

    def __call__(self, t: Scalar) -> Float[Array, "*state"]:
        """The state at one time `t` (integrating from `t0`; `t < t0` integrates
        backwards)."""
        t = jnp.asarray(t, self.y0.dtype)
        return self._solve(t, dfx.SaveAt(t1=True))[0]

    def residual_scale(self) -> None:
        # Its own vector field is integrated: no physics residual, data only.
        return None

    def conditions_built_in(self) -> bool:
        return True

    def check_problem(self, problem, *, name: str = "`model`") -> None:
        if self.t0 != problem.t0:
            raise ValueError(
                f"{name} starts at t0={self.t0} but `problem` starts at "
                f"t0={problem.t0}; build the model from this problem."
            )

    def trainable(self):
        mask = jtu.tree_map(lambda _: False, self)
        return eqx.tree_at(
            lambda m: m.field.mlp,
            mask,
            jtu.tree_map(eqx.is_inexact_array, self.field.mlp),
        )
