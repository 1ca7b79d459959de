from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import Array, ArrayLike, Float

from .._conditions import AbstractCondition
from .._custom_types import Key, Scalar
from .._problems import AbstractProblem
from .base import AbstractModel


def _check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be an integer >= 1, got {value!r}.")
    return value


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

    A `PINN` maps one scalar `t` to an array of the state's shape; use `jax.vmap`
    for many times.

    **Arguments:**

    - `problem`: the problem whose solution this approximates.
    - `width`, `depth`: hidden width and number of hidden layers of the MLP
        (`depth=3` is 1→width→width→width→out).
    - `activation`: the hidden activation; default `jnp.tanh` (smooth, as the
        residual needs derivatives).
    - `hard_constraints`: build the conditions into the ansatz exactly.
    - `scale`: the typical size of each state component, so that the network
        works with O(1) numbers. Default: the peak of each component along a
        coarse fixed-step RK4 integration of the problem (for a `BVP`, the larger
        boundary value; 1 where that is zero). The residual is measured in the
        same units (divided by `scale / (t1 - t0)**order`).
    - `key`: a `jax.random` key for the initial weights.

    **Example:**

    ```python
    import jax
    import odefit

    problem = odefit.IVP(lambda t, y, args: -y, t0=0.0, t1=1.0, y0=1.0)
    model = odefit.PINN(problem, width=32, depth=2, key=jax.random.key(0))
    model(0.0)   # exactly y0
    ```
    """

    mlp: eqx.nn.MLP
    condition: AbstractCondition | None
    scale: Float[Array, "*state"]
    t0: float = eqx.field(static=True)
    t1: float = eqx.field(static=True)
    shape: tuple[int, ...] = eqx.field(static=True)

    def __init__(
        self,
        problem: AbstractProblem,
        *,
        width: int = 64,
        depth: int = 3,
        activation: Callable[[Array], Array] = jnp.tanh,
        hard_constraints: bool = True,
        scale: Float[ArrayLike, "*state"] | None = None,
        key: Key,
    ):
        if not isinstance(problem, AbstractProblem):
            raise TypeError(
                "`problem` must be an odefit problem (IVP, SecondOrderIVP, BVP), "
                f"got {type(problem).__name__}."
            )
        width = _check_positive_int(width, "width")
        depth = _check_positive_int(depth, "depth")
        if not callable(activation):
            raise TypeError(
                f"`activation` must be callable, got {type(activation).__name__}."
            )
        state = problem.state
        if scale is None:
            scale = problem.characteristic_scale()
        else:
            scale = jnp.asarray(scale, state.dtype)
            if scale.shape != state.shape:
                scale = (
                    jnp.broadcast_to(scale, state.shape) if scale.ndim == 0 else scale
                )
            if scale.shape != state.shape:
                raise ValueError(
                    f"`scale` has shape {scale.shape} but the state has shape "
                    f"{state.shape}."
                )
            if not bool(jnp.all(jnp.isfinite(scale) & (scale > 0))):
                raise ValueError(f"`scale` must be finite and > 0, got {scale}.")
        self.mlp = eqx.nn.MLP(
            in_size=1,
            out_size=state.size,
            width_size=width,
            depth=depth,
            activation=activation,
            dtype=state.dtype,
            key=key,
        )
        self.condition = problem.condition() if hard_constraints else None
        self.scale = scale
        self.t0, self.t1 = problem.t0, problem.t1
        self.shape = state.shape

    def __call__(self, t: Scalar) -> Float[Array, "*state"]:
        t = jnp.asarray(t, self.scale.dtype)
        s = (t - self.t0) / (self.t1 - self.t0)
        n = self.mlp(jnp.expand_dims(2 * s - 1, 0)).reshape(self.shape) * self.scale
        return n if self.condition is None else self.condition(t, s, n)

    def predict(self, ts: Float[Array, " times"]) -> Float[Array, "times *state"]:
        """The states at times `ts` (`jax.vmap` of the model)."""
        return jax.vmap(self)(ts)

    def trainable(self):
        mask = jtu.tree_map(lambda _: False, self)
        return eqx.tree_at(
            lambda m: m.mlp, mask, jtu.tree_map(eqx.is_inexact_array, self.mlp)
        )

    def residual_scale(self) -> Float[Array, "*state"]:
        return self.scale

    def conditions_built_in(self) -> bool:
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
