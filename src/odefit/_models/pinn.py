from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import Array, ArrayLike, Float, PyTree

from .._conditions import AbstractCondition
from .._custom_types import Key, Scalar
from .._family import Family, family_scale
from .._memory import check_mlp
from .._problems import AbstractProblem
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
        if scale is None and family is not None:
            scale = family_scale(problem)
        elif scale is None:
            scale = problem.characteristic_scale()
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
        `scale` (the training core divides by `scale / (t1 - t0)**order`)."""
        return self.scale

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
