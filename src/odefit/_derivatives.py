"""Time derivatives of scalar-time functions, in forward (Taylor) mode.

Time is a single scalar input, so forward mode is the cheap direction: one `jax.jvp`
gives $y$ and $y'$ together, and Taylor mode (`jax.experimental.jet`) propagates a
truncated Taylor series to get every derivative up to order $k$ in one pass, instead
of the $k$ nested reverse passes a PyTorch PINN builds with
`autograd.grad(..., create_graph=True)`.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.experimental import jet
from jaxtyping import Array

from ._custom_types import Scalar


def _nested_jvp(fn, t, order):
    if order == 0:
        return (fn(t),)
    primals, tangents = jax.jvp(
        lambda s: _nested_jvp(fn, s, order - 1), (t,), (jnp.ones_like(t),)
    )
    return (*primals, tangents[-1])


def derivatives(
    fn: Callable[[Scalar], Array],
    t: Scalar,
    order: int,
    *,
    taylor: bool = True,
) -> tuple[Array, ...]:
    r"""The value and the first `order` derivatives of `fn` at `t`.

    Returns $(y(t), y'(t), \ldots, y^{(k)}(t))$ for $k$ = `order`. Order 1 uses one
    `jax.jvp`; higher orders use Taylor-mode automatic differentiation
    (`jax.experimental.jet`): a series $t + \varepsilon$ pushed through `fn` once.
    If `fn` uses an operation with no Taylor rule, or with `taylor=False`, the
    derivatives come from nested `jax.jvp`s instead (same numbers, more work).

    **Arguments:**

    - `fn`: a function of one scalar time returning an array.
    - `t`: the scalar time.
    - `order`: how many derivatives, `>= 0`.
    - `taylor`: use Taylor mode for orders `>= 2`.

    **Returns:** a tuple of `order + 1` arrays shaped like `fn(t)`.

    **Example:**

    ```python
    import jax.numpy as jnp
    import odefit

    y, dy, ddy = odefit.derivatives(jnp.sin, jnp.asarray(0.5), 2)
    # (sin 0.5, cos 0.5, -sin 0.5)
    ```

    **Reference:** Bettencourt, Johnson & Duvenaud, "Taylor-mode automatic
    differentiation for higher-order derivatives in JAX" (2019),
    https://openreview.net/forum?id=SkxEF3FNPH
    """
    if isinstance(order, bool) or not isinstance(order, int) or order < 0:
        raise ValueError(f"`order` must be an integer >= 0, got {order!r}.")
    t = jnp.asarray(t)
    if t.shape != ():
        raise ValueError(f"`t` must be a scalar, got shape {t.shape}.")
    if order <= 1 or not taylor:
        return _nested_jvp(fn, t, order)
    series = (jnp.ones_like(t),) + (jnp.zeros_like(t),) * (order - 1)
    try:
        y, terms = jet.jet(fn, (t,), (series,))
    except NotImplementedError:
        return _nested_jvp(fn, t, order)
    return (y, *terms)
