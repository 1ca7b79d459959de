from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PyTree

from .._conditions import AbstractCondition
from .._custom_types import Key, Scalar
from .._family import Family, family_scale
from .._memory import check_mlp
from .._problems import AbstractProblem, relaxation_rates, stiff_scale
from .._unknown import resolve_args
from .._validate import check_bool, check_int, check_key, check_scale
from .base import AbstractModel


def _check_positive_int(value, name: str) -> int:
    return check_int(value, name, minimum=1)


def _check_network(network, state: jax.ShapeDtypeStruct, in_size: int = 1) -> None:
    """Raises a `ValueError` unless `network` maps an array of shape `(in_size,)`
    and the state's dtype to one array of the state's size and dtype. Checked
    abstractly (`eqx.filter_eval_shape`): no computation runs."""
    received = f"an array of shape ({in_size},) and dtype {state.dtype}"
    if not callable(network):
        raise ValueError(
            "`network` must be callable: an Equinox module mapping the scaled time "
            f"τ, {received}, to {state.size} output(s); got "
            f"{type(network).__name__}."
        )
    dummy = jax.ShapeDtypeStruct((in_size,), state.dtype)
    try:
        out = eqx.filter_eval_shape(network, dummy)
    except Exception as e:
        raise ValueError(
            f"`network` raised {type(e).__name__} when called on the scaled time "
            f"τ, {received} (as `eqx.nn.MLP(in_size={in_size}, ...)` takes it): {e}"
        ) from e
    if not isinstance(out, jax.ShapeDtypeStruct):
        raise ValueError(
            f"`network` must return one array, but called on {received} it "
            f"returned {type(out).__name__}."
        )
    if out.size != state.size:
        raise ValueError(
            f"`network` returned shape {out.shape} ({out.size} elements) when "
            f"called on {received}, but the state has shape {state.shape}: the "
            f"output must have {state.size} element(s) (e.g. "
            f"`out_size={state.size}`)."
        )
    if out.dtype != state.dtype:
        raise ValueError(
            f"`network` returned dtype {out.dtype} when called on {received}, but "
            f"the state has dtype {state.dtype}: build the network with "
            f"`dtype=jnp.{state.dtype}`."
        )


def network_trainable(network) -> PyTree[bool]:
    """The filter spec selecting the trained leaves of `network`: what its own
    `trainable()` method returns when it has one (as `odefit.FourierMLP`, whose
    frequencies are fixed), otherwise every inexact array."""
    # A user's module is not asked to subclass anything of ours: the hook is a
    # method name, like `__call__`.
    method = getattr(network, "trainable", None)
    if callable(method):
        return method()
    return jtu.tree_map(eqx.is_inexact_array, network)


def _check_trainable(network) -> None:
    try:
        spec = network_trainable(network)
        eqx.partition(network, spec)
    except Exception as e:
        raise ValueError(
            "`network.trainable()` must return a filter spec for `network` (a "
            "PyTree prefix of it with bools, as "
            "`jax.tree.map(eqx.is_inexact_array, network)`), but using it failed "
            f"with {type(e).__name__}: {e}"
        ) from e


def _projector(conserved, problem: AbstractProblem, hard: bool, scale) -> Array:
    r"""$P = I - W A^\top (A W A^\top)^{-1} A$ with $W = \mathrm{diag}(s^2)$: a
    projection onto the directions that leave every conserved quantity $A y$
    unchanged."""
    state = problem.state
    if problem.order != 1 or not hard:
        raise ValueError(
            "`conserved` needs a first-order initial-value problem (odefit.IVP) "
            "with `hard_constraints=True`: the laws are built into "
            "y = y0 + s N, which then keeps A y = A y0 exactly; got "
            f"{type(problem).__name__} with hard_constraints={hard}."
        )
    try:
        a = np.asarray(conserved, dtype=float)
    except (TypeError, ValueError) as e:
        raise TypeError(
            "`conserved` must be a matrix of shape (laws, state size), got "
            f"{type(conserved).__name__}."
        ) from e
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2 or a.shape[1] != state.size or not 0 < a.shape[0] < state.size:
        raise ValueError(
            f"`conserved` must have shape (laws, {state.size}) with 1 <= laws < "
            f"{state.size} (one row per conserved linear combination A y of the "
            f"state), got shape {a.shape}."
        )
    if not np.all(np.isfinite(a)) or np.linalg.matrix_rank(a) < a.shape[0]:
        raise ValueError(
            "`conserved` must be finite with linearly independent rows, got "
            f"{a.tolist()}."
        )
    field = problem.first_order_field()
    t0 = jnp.asarray(problem.t0, state.dtype)
    rate = np.asarray(field(t0, state, resolve_args(problem.args))).ravel()
    drift = a @ rate
    size = np.abs(a) @ np.abs(rate) + np.finfo(np.float32).tiny
    if np.any(np.abs(drift) > 1e-5 * size):
        raise ValueError(
            "`conserved` does not hold for this problem: A f(t0, y0) should be 0 "
            f"but is {drift.tolist()} (A = {a.tolist()})."
        )
    # Oblique, weighted by the squared scales: the correction that restores the
    # laws falls on the large components, and a species of size `1e-5` is not
    # perturbed by one of size 1.
    w = np.diag(np.asarray(scale, dtype=float).ravel() ** 2)
    projector = np.eye(state.size) - w @ a.T @ np.linalg.solve(a @ w @ a.T, a)
    return jnp.asarray(projector, state.dtype)


class PINN(AbstractModel):
    r"""A physics-informed network ansatz for a problem's solution.

    The network sees time scaled to $\tau = 2 (t - t_0)/(t_1 - t_0) - 1 \in [-1, 1]$;
    its output $N(\tau)$ is multiplied by a per-component state `scale` and passed
    through the problem's conditions, so that (with `hard_constraints=True`, the
    default) initial or boundary values hold exactly:

    - `IVP`: $y(t) = y_0 + s\, N$, with $s = (t - t_0)/(t_1 - t_0)$;
    - `SecondOrderIVP`: $y(t) = y_0 + y'_0 (t - t_0) + s^2 N$;
    - `BVP`: $y(t) = (1 - s) y_a + s y_b + s(1 - s) N$.

    With `hard_constraints=False`, $y(t) = N$ and `fit` adds the conditions as a
    soft loss term, the way most PyTorch PINNs do.

    $N$ is an `eqx.nn.MLP` built from `width`, `depth` and `activation`, or any
    Equinox module passed as `network` (for instance [`odefit.FourierMLP`][] or
    [`odefit.ResidualMLP`][]). Either way the scaling and the exact conditions are
    applied around it, and every inexact array of the network is trained — unless
    the network has a method `trainable()` returning a filter spec for itself, which
    is then used instead (that is how `FourierMLP` keeps its frequencies fixed).

    A `PINN` maps one scalar `t` to an array of the state's shape; use `jax.vmap`
    for many times.

    For a family of ODEs (a problem with [`odefit.Varies`][] entries) the network
    also takes the member's parameters $p$, each scaled to $[-1, 1]$ over its
    interval, and the conditions built in are those of member $p$: the model is
    called as `model(t, params)`, and a `network` of your own takes an input of
    shape `(1 + problem.family.size,)`.

    **Arguments:**

    - `problem`: the problem whose solution this approximates.
    - `network`: your own network $N$: a callable PyTree (usually an `eqx.Module`)
        taking $\tau$ as an array of shape `(1,)` in the state's dtype, as
        `eqx.nn.MLP(in_size=1, ...)` does, and returning an array with
        `problem.state.size` elements in the state's dtype (any shape; it is
        reshaped to the state's). Checked when the `PINN` is built. Default: the
        MLP below.
    - `width`, `depth`: hidden width and number of hidden layers of the default
        MLP (`depth=3` is 1→width→width→width→out). Only without `network`.
    - `activation`: the hidden activation of the default MLP; default `jnp.tanh`
        (smooth, as the residual needs derivatives). Only without `network`.
    - `hard_constraints`: build the conditions into the ansatz exactly.
    - `scale`: the typical size of each state component, so that the network
        works with O(1) numbers. Default: the peak of each component along a
        coarse fixed-step RK4 integration of the problem (for a `BVP`, the larger
        boundary value; 1 where that is zero). The residual is measured in the
        same units (divided by `scale / (t1 - t0)**order`).
    - `stiff`: for stiff problems (time scales decades apart, as in chemical
        kinetics; use float64). The default `scale` then comes from an implicit
        (`Kvaerno5`) solve and keeps components far smaller than the others (a
        species of size `1e-5` beside one of size 1), and the residual of
        component $i$ is measured in units of its relaxation: divided by
        $\max(1, (t_1 - t_0) \max_t |\partial f_i/\partial y_i|)$ on top of the
        state scale, so that a stiff component's residual counts as its state
        error does, instead of outweighing the slow components by its
        stiffness. Usually with [`odefit.fit_marching`][]`(..., stiff=True)`.
    - `conserved`: linear conservation laws $A y(t) = A y_0$, as a matrix $A$
        of shape `(laws, state size)` (or one row), e.g. `[[1, 1, 1]]` for
        $y_1 + y_2 + y_3$ constant. Built into the ansatz: the network's output
        is projected onto the null space of $A$ (along the large components:
        the projection is weighted by the squared scales), so the laws hold at
        every $t$ to rounding. Only for an `IVP` with `hard_constraints=True`; checked
        against the vector field at $t_0$.
    - `key`: a `jax.random` key for the initial weights of the default MLP;
        required without `network`, ignored with it.

    **Example:**

    ```python
    import equinox as eqx
    import jax
    import odefit

    problem = odefit.IVP(lambda t, y, args: -y, t0=0.0, t1=1.0, y0=1.0)
    model = odefit.PINN(problem, width=32, depth=2, key=jax.random.key(0))
    model(0.0)   # exactly y0

    # Any Equinox network: input shape (1,), output with problem.state.size entries.
    network = eqx.nn.MLP(1, 1, width_size=16, depth=2, key=jax.random.key(1))
    model = odefit.PINN(problem, network=network)
    model(0.0)   # still exactly y0
    ```
    """

    network: eqx.Module
    condition: AbstractCondition | None
    scale: Float[Array, "*state"]
    residual_units: Float[Array, "*state"] | None
    projector: Float[Array, "size size"] | None
    t0: float = eqx.field(static=True)
    t1: float = eqx.field(static=True)
    shape: tuple[int, ...] = eqx.field(static=True)
    family: Family | None = None

    def __init__(
        self,
        problem: AbstractProblem,
        *,
        network: Callable[[Float[Array, "1"]], Float[Array, "..."]] | None = None,
        width: int = 64,
        depth: int = 3,
        activation: Callable[[Array], Array] = jnp.tanh,
        hard_constraints: bool = True,
        scale: Float[ArrayLike, "*state"] | None = None,
        stiff: bool = False,
        conserved: Float[ArrayLike, "laws size"] | None = None,
        key: Key | None = None,
    ):
        if not isinstance(problem, AbstractProblem):
            raise TypeError(
                "`problem` must be an odefit problem (IVP, SecondOrderIVP, BVP), "
                f"got {type(problem).__name__}."
            )
        state = problem.state
        # A family's network also takes its parameters, scaled to [-1, 1].
        family = problem.family
        in_size = 1 if family is None else 1 + family.size
        if network is None:
            width = _check_positive_int(width, "width")
            depth = _check_positive_int(depth, "depth")
            if not callable(activation):
                raise TypeError(
                    f"`activation` must be callable, got {type(activation).__name__}."
                )
            if key is None:
                raise TypeError(
                    "`key` is required to initialise the default MLP (e.g. "
                    "`key=jax.random.key(0)`), unless you pass your own `network`."
                )
            check_key(key)
            check_mlp(width=width, depth=depth, out_size=state.size, dtype=state.dtype)
        else:
            # Compared with the defaults (not `None` sentinels) so that
            # `width=None` stays an error and the signature shows the defaults.
            given = {
                name: value
                for name, value, default in (
                    ("width", width, 64),
                    ("depth", depth, 3),
                    ("activation", activation, jnp.tanh),
                )
                if not (value is default or (type(value) is int and value == default))
            }
            if given:
                listed = ", ".join(f"{name}={value!r}" for name, value in given.items())
                raise TypeError(
                    f"`{'`, `'.join(given)}` cannot be given together with "
                    f"`network` (got {listed}): they only configure the MLP that "
                    "PINN builds when no `network` is passed. Configure your "
                    "network when you build it."
                )
            _check_network(
                network, jax.ShapeDtypeStruct(state.shape, state.dtype), in_size
            )
            _check_trainable(network)
        stiff = check_bool(stiff, "stiff")
        if family is not None and (stiff or conserved is not None):
            raise ValueError(
                "`stiff=True` and `conserved` are not supported for a family of ODEs "
                f"(the problem's `odefit.Varies` {family.names}); got "
                f"stiff={stiff!r}, conserved={'None' if conserved is None else '...'}."
            )
        if scale is None and family is not None:
            scale = family_scale(problem)
        elif scale is None:
            scale = stiff_scale(problem) if stiff else problem.characteristic_scale()
        else:
            scale = check_scale(scale, state)
        if network is None:
            network = eqx.nn.MLP(
                in_size=in_size,
                out_size=state.size,
                width_size=width,
                depth=depth,
                activation=activation,
                dtype=state.dtype,
                key=key,
            )
        self.network = network
        hard_constraints = check_bool(hard_constraints, "hard_constraints")
        if family is not None and not hard_constraints:
            raise ValueError(
                "`hard_constraints=False` is not supported for a family of ODEs "
                f"(the problem's `odefit.Varies` {family.names}): its conditions "
                "are built into the network exactly, for every member."
            )
        self.family = family
        self.condition = problem.condition() if hard_constraints else None
        self.scale = scale
        if stiff:
            self.residual_units = scale * jnp.maximum(1.0, relaxation_rates(problem))
        else:
            self.residual_units = None
        self.projector = (
            None
            if conserved is None
            else _projector(conserved, problem, self.condition is not None, scale)
        )
        self.t0, self.t1 = problem.t0, problem.t1
        self.shape = state.shape

    @property
    def mlp(self) -> eqx.Module:
        """The network (`self.network`), under the name it had when `PINN` could
        only hold an `eqx.nn.MLP`; kept so that existing code runs unchanged."""
        return self.network

    def __call__(
        self, t: Scalar, params: Float[Array, " family"] | None = None
    ) -> Float[Array, "*state"]:
        if params is not None or self.family is not None:
            return self._member(t, params)
        t = jnp.asarray(t, self.scale.dtype)
        s = (t - self.t0) / (self.t1 - self.t0)
        tau = jnp.expand_dims(2 * s - 1, 0)
        n = self.network(tau).reshape(self.shape) * self.scale
        if self.projector is not None:
            n = (self.projector @ n.ravel()).reshape(self.shape)
        return n if self.condition is None else self.condition(t, s, n)

    def _member(self, t, params):
        """The state of family member `params` at `t`."""
        if self.family is None:
            raise TypeError(
                "`params` was given, but this PINN was built for a single ODE (its "
                "problem has no `odefit.Varies`); call it as `model(t)`."
            )
        if params is None:
            raise TypeError(
                "This PINN solves a family of ODEs over "
                f"{self.family.names}: call it as `model(t, params)` with `params` "
                f"of shape ({self.family.size},)."
            )
        params = self.family.check(params)
        t = jnp.asarray(t, self.scale.dtype)
        s = (t - self.t0) / (self.t1 - self.t0)
        inputs = jnp.concatenate(
            [jnp.expand_dims(2 * s - 1, 0), self.family.scaled(params)]
        )
        n = self.network(inputs).reshape(self.shape) * self.scale
        return self.family.set_states(self.condition, params)(t, s, n)

    def predict(
        self, ts: Float[Array, " times"], params: Float[Array, " family"] | None = None
    ) -> Float[Array, "times *state"]:
        """The states at times `ts` (`jax.vmap` of the model); for a family, of
        member `params`."""
        if params is None and self.family is None:
            return jax.vmap(self)(ts)
        return jax.vmap(lambda t: self(t, params))(ts)

    def trainable(self) -> PyTree[bool]:
        """The filter spec of the trained leaves: the network's (every inexact
        array, or what the network's own `trainable()` selects); never `scale` or
        the conditions."""
        mask = jtu.tree_map(lambda _: False, self)
        return eqx.tree_at(lambda m: m.network, mask, network_trainable(self.network))

    def residual_scale(self) -> Float[Array, "*state"]:
        """The units of the state in which the physics residual is measured:
        `scale`, or with `stiff=True` `scale` times each component's relaxation
        rates over the interval (the training core divides by
        `units / (t1 - t0)**order`)."""
        return self.scale if self.residual_units is None else self.residual_units

    def conditions_built_in(self) -> bool:
        """Whether the initial/boundary conditions hold exactly by construction
        (`hard_constraints=True`), so that no condition loss term is needed."""
        return self.condition is not None

    def check_problem(self, problem, *, name: str = "`model`") -> None:
        mine = None if self.family is None else self.family.names
        theirs = None if problem.family is None else problem.family.names
        if mine != theirs:
            built = "a single ODE" if mine is None else f"a family over {mine}"
            posed = "a single ODE" if theirs is None else f"a family over {theirs}"
            raise ValueError(
                f"{name} was built for {built} but the problem is {posed}; build "
                "the model from this problem (odefit.PINN(problem, ...))."
            )
        if (self.t0, self.t1) != (problem.t0, problem.t1):
            raise ValueError(
                f"{name} was built for [{self.t0}, {self.t1}] but the problem is on "
                f"[{problem.t0}, {problem.t1}]; build the model from this problem "
                f"(odefit.PINN(problem, ...)), or pose the problem on "
                f"[{self.t0}, {self.t1}]."
            )
        state = problem.state
        if self.shape != state.shape or self.scale.dtype != state.dtype:
            raise ValueError(
                f"{name} predicts shape {self.shape} and dtype {self.scale.dtype} but "
                f"the problem's state has shape {state.shape} and dtype "
                f"{state.dtype}; build the model from this problem."
            )
