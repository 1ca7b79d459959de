from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import Array, ArrayLike, Float, PyTree

from .._conditions import AbstractCondition
from .._custom_types import Key, Scalar
from .._memory import check_mlp
from .._problems import AbstractProblem, relaxation_rates, stiff_scale
from .._validate import check_bool, check_int, check_key, check_scale
from .base import AbstractModel


def _check_positive_int(value, name: str) -> int:
    return check_int(value, name, minimum=1)


def _check_network(network, state: jax.ShapeDtypeStruct) -> None:
    """Raises a `ValueError` unless `network` maps an array of shape `(1,)` and the
    state's dtype to one array of the state's size and dtype. Checked abstractly
    (`eqx.filter_eval_shape`): no computation runs."""
    received = f"an array of shape (1,) and dtype {state.dtype}"
    if not callable(network):
        raise ValueError(
            "`network` must be callable: an Equinox module mapping the scaled time "
            f"τ, {received}, to {state.size} output(s); got "
            f"{type(network).__name__}."
        )
    dummy = jax.ShapeDtypeStruct((1,), state.dtype)
    try:
        out = eqx.filter_eval_shape(network, dummy)
    except Exception as e:
        raise ValueError(
            f"`network` raised {type(e).__name__} when called on the scaled time "
            f"τ, {received} (as `eqx.nn.MLP(in_size=1, ...)` takes it): {e}"
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
    residual_units: Float[Array, "*state"] | None
    t0: float = eqx.field(static=True)
    t1: float = eqx.field(static=True)
    shape: tuple[int, ...] = eqx.field(static=True)

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
        key: Key | None = None,
    ):
        if not isinstance(problem, AbstractProblem):
            raise TypeError(
                "`problem` must be an odefit problem (IVP, SecondOrderIVP, BVP), "
                f"got {type(problem).__name__}."
            )
        state = problem.state
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
            _check_network(network, jax.ShapeDtypeStruct(state.shape, state.dtype))
            _check_trainable(network)
        stiff = check_bool(stiff, "stiff")
        if scale is None:
            scale = stiff_scale(problem) if stiff else problem.characteristic_scale()
        else:
            scale = check_scale(scale, state)
        if network is None:
            network = eqx.nn.MLP(
                in_size=1,
                out_size=state.size,
                width_size=width,
                depth=depth,
                activation=activation,
                dtype=state.dtype,
                key=key,
            )
        self.network = network
        hard_constraints = check_bool(hard_constraints, "hard_constraints")
        self.condition = problem.condition() if hard_constraints else None
        self.scale = scale
        if stiff:
            self.residual_units = scale * jnp.maximum(1.0, relaxation_rates(problem))
        else:
            self.residual_units = None
        self.t0, self.t1 = problem.t0, problem.t1
        self.shape = state.shape

    @property
    def mlp(self) -> eqx.Module:
        """The network (`self.network`), under the name it had when `PINN` could
        only hold an `eqx.nn.MLP`; kept so that existing code runs unchanged."""
        return self.network

    def __call__(self, t: Scalar) -> Float[Array, "*state"]:
        t = jnp.asarray(t, self.scale.dtype)
        s = (t - self.t0) / (self.t1 - self.t0)
        tau = jnp.expand_dims(2 * s - 1, 0)
        n = self.network(tau).reshape(self.shape) * self.scale
        return n if self.condition is None else self.condition(t, s, n)

    def predict(self, ts: Float[Array, " times"]) -> Float[Array, "times *state"]:
        """The states at times `ts` (`jax.vmap` of the model)."""
        return jax.vmap(self)(ts)

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
