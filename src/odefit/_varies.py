"""Entries of a problem that range over a box: one network for a family of ODEs."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from ._validate import real_array


def _as_bound(value, name: str) -> Array:
    array = real_array(value, name, boolean_arrays=False)
    if isinstance(array, jax.core.Tracer):
        raise TypeError(f"`{name}` must be a concrete value, not a traced one.")
    if not bool(jnp.all(jnp.isfinite(array))):
        raise ValueError(f"`{name}` must be finite, got {np.asarray(array)}.")
    return array


class Varies(eqx.Module):
    r"""Marks an entry of a problem's `args`, or of its initial value, as ranging
    over an interval $[\text{low}, \text{high}]$: the problem becomes a *family*
    of ODEs, one member per value, and one network learns them all.

    The markers of a problem together span a box of family parameters
    $p \in \prod_i [\text{low}_i, \text{high}_i]$, listed in
    [`odefit.Family`][] (`problem.family`) in a fixed order: those in `args` in
    PyTree order, then those in `y0`, then those in `dy0` (`ya`, `yb` for a
    `BVP`). A [`odefit.PINN`][] of the problem takes them as inputs besides `t`,
    `model(t, p)`; `fit` samples them together with the collocation times; and
    `problem.solve(ts, p)` is the classical reference of member `p`.

    Where a single member is needed (the checks of the vector field when the
    problem is built), the box centre stands in.

    **Arguments:**

    - `low`, `high`: the bounds, floats or arrays of one shape with
        `low < high` everywhere (an array marks that many parameters, one per
        entry).
    - `name`: what to call the parameter (default: its place, e.g. `"args[1]"`
        or `"y0[0]"`).

    **Example:**

    ```python
    import jax.numpy as jnp
    import odefit

    def oscillator(t, y, dy, args):
        damping, stiffness = args
        return -damping * dy - stiffness * y

    problem = odefit.SecondOrderIVP(
        oscillator, t0=0.0, t1=5.0, y0=1.0, dy0=0.0,
        args=(odefit.Varies(0.1, 0.5), odefit.Varies(1.0, 4.0)),
    )
    problem.family.names          # ('args[0]', 'args[1]')
    ys = problem.solve(jnp.linspace(0.0, 5.0, 11), jnp.array([0.3, 2.0]))
    ```
    """

    low: Float[Array, "..."]
    high: Float[Array, "..."]
    name: str | None = eqx.field(static=True, default=None)

    def __init__(
        self,
        low: Float[ArrayLike, "..."],
        high: Float[ArrayLike, "..."],
        *,
        name: str | None = None,
    ):
        if isinstance(low, Varies) or isinstance(high, Varies):
            raise TypeError("`low` and `high` must be numbers, not `odefit.Varies`.")
        low, high = _as_bound(low, "low"), _as_bound(high, "high")
        if low.shape != high.shape:
            raise ValueError(
                f"`low` has shape {low.shape} but `high` has shape {high.shape}; "
                "they must match."
            )
        if not bool(jnp.all(low < high)):
            raise ValueError(
                "`low` must be less than `high` (every entry), got "
                f"low={np.asarray(low)} and high={np.asarray(high)}."
            )
        if name is not None and (not isinstance(name, str) or not name):
            raise TypeError(f"`name` must be a non-empty string, got {name!r}.")
        dtype = jnp.result_type(low.dtype, high.dtype)
        self.low, self.high = low.astype(dtype), high.astype(dtype)
        self.name = name

    @property
    def centre(self) -> Float[Array, "..."]:
        """The middle of the interval: the member that stands for the family
        where one is needed."""
        return (self.low + self.high) / 2


def is_varies(x) -> bool:
    return isinstance(x, Varies)
