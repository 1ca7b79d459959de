"""Trainable entries of a problem's `args`, for inverse problems."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import Array, ArrayLike, Float, PyTree

from ._validate import check_bool, real_array
from ._varies import Varies


class Unknown(eqx.Module):
    r"""Marks an entry of a problem's `args` as unknown: `fit` learns it jointly with
    the network (an inverse problem).

    With `positive=True` the value is stored as its logarithm, $p = e^{\rho}$, so it
    stays positive whatever step the optimiser takes: the usual choice for rate
    constants, masses and diffusivities.

    **Arguments:**

    - `value`: the initial guess (a scalar or an array of floats).
    - `positive`: whether to constrain the value to be positive.

    **Example:**

    ```python
    import odefit
    problem_args = (odefit.Unknown(0.75, positive=True), 1.0)
    ```
    """

    raw: Float[Array, "..."]
    positive: bool = eqx.field(static=True, default=False)

    def __init__(self, value: Float[ArrayLike, "..."], *, positive: bool = False):
        positive = check_bool(positive, "positive")
        if isinstance(value, Unknown):
            raise TypeError("`value` is already an `odefit.Unknown`; do not nest them.")
        array = real_array(value, "value")
        if not isinstance(array, jax.core.Tracer) and not bool(
            jnp.all(jnp.isfinite(array))
        ):
            raise ValueError(f"`value` must be finite, got {value!r}.")
        if positive:
            if not isinstance(array, jax.core.Tracer) and not bool(jnp.all(array > 0)):
                raise ValueError(
                    f"`value` must be > 0 when `positive=True`, got {value!r}."
                )
            array = jnp.log(array)
        self.raw = array
        self.positive = positive

    @property
    def value(self) -> Float[Array, "..."]:
        """The current value, in the problem's own units."""
        return jnp.exp(self.raw) if self.positive else self.raw


def _is_unknown(x) -> bool:
    return isinstance(x, Unknown)


def _is_marker(x) -> bool:
    return isinstance(x, (Unknown, Varies))


def _resolve(x):
    if isinstance(x, Unknown):
        return x.value
    return x.centre if isinstance(x, Varies) else x


def resolve_args(args: PyTree) -> PyTree:
    """Replaces every `Unknown` in `args` by its current value (and every
    `Varies` by the centre of its box, the member standing for the family)."""
    return jtu.tree_map(_resolve, args, is_leaf=_is_marker)


def args_mask(args: PyTree) -> PyTree[bool]:
    """The trainable part of `args`: the raw values of `Unknown`s, nothing else."""
    return jtu.tree_map(
        lambda x: jtu.tree_map(eqx.is_inexact_array, x) if _is_unknown(x) else False,
        args,
        is_leaf=_is_unknown,
    )


def has_unknowns(args: PyTree) -> bool:
    leaves = jtu.tree_leaves(args, is_leaf=_is_unknown)
    return any(_is_unknown(x) for x in leaves)
