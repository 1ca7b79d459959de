"""Measured data as a loss term."""

from collections.abc import Callable

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from ._validate import check_float


def _as_real_array(value, name: str) -> Array:
    try:
        array = jnp.asarray(value)
    except (TypeError, ValueError, OverflowError) as e:
        # Strings, objects, ragged nested lists, integers too large for any dtype.
        raise TypeError(
            f"`{name}` must be an array of real numbers, got {type(value).__name__} "
            f"({e})."
        ) from e
    if not (
        jnp.issubdtype(array.dtype, jnp.floating)
        or jnp.issubdtype(array.dtype, jnp.integer)
        or jnp.issubdtype(array.dtype, jnp.complexfloating)
    ):
        raise TypeError(f"`{name}` must be real numbers, got dtype {array.dtype}.")
    return array


class Observations(eqx.Module):
    r"""Measurements $y_j$ at times $t_j$: a data term
    $w \cdot \operatorname{mean}_j \lVert h(y_\theta(t_j)) - y_j \rVert^2$ in `fit`.

    Use them for an inverse problem (with [`odefit.Unknown`][] entries in `args`),
    for a supervised fit to data or to a reference solution, and to fit a
    [`odefit.NeuralODE`][].

    **Arguments:**

    - `ts`: observation times, 1-D, inside the problem's interval.
    - `ys`: the observed values, shape `(len(ts), *observed_shape)`.
    - `weight`: the weight $w$ of the data term.
    - `observe`: $h$, mapping the state to what was measured (e.g.
        `lambda y: y[0]` when only the first component is observed); default the
        whole state.

    **Example:**

    ```python
    import jax.numpy as jnp
    import odefit

    ts = jnp.linspace(0.0, 1.0, 20)
    data = odefit.Observations(ts, jnp.exp(-ts), weight=10.0)
    ```
    """

    ts: Float[Array, " obs"]
    ys: Float[Array, "obs ..."]
    weight: float = eqx.field(static=True, default=1.0)
    observe: Callable[[Array], Array] | None = eqx.field(static=True, default=None)

    def __init__(
        self,
        ts: Float[ArrayLike, " obs"],
        ys: Float[ArrayLike, "obs ..."],
        *,
        weight: float = 1.0,
        observe: Callable[[Array], Array] | None = None,
    ):
        ts = _as_real_array(ts, "ts")
        ys = _as_real_array(ys, "ys")
        if ts.ndim != 1 or ts.size == 0:
            raise ValueError(
                f"`ts` must be a non-empty 1-D array of times, got shape {ts.shape}."
            )
        if ys.ndim < 1 or ys.shape[0] != ts.shape[0]:
            raise ValueError(
                f"`ys` must have one row per time: `ts` has shape {ts.shape} but "
                f"`ys` has shape {ys.shape}."
            )
        for name, value in (("ts", ts), ("ys", ys)):
            if jnp.issubdtype(value.dtype, jnp.complexfloating):
                raise TypeError(f"`{name}` must be real, got dtype {value.dtype}.")
            if not bool(jnp.all(jnp.isfinite(value))):
                bad = int(np.sum(~np.isfinite(np.asarray(value))))
                raise ValueError(f"`{name}` has {bad} non-finite entries.")
        weight = check_float(weight, "weight", 0.0)
        if observe is not None and not callable(observe):
            raise TypeError(
                f"`observe` must be callable, got {type(observe).__name__}."
            )
        float_dtype = jnp.result_type(float)
        self.ts = (
            ts if jnp.issubdtype(ts.dtype, jnp.floating) else ts.astype(float_dtype)
        )
        self.ys = (
            ys if jnp.issubdtype(ys.dtype, jnp.floating) else ys.astype(float_dtype)
        )
        self.weight = float(weight)
        self.observe = observe
