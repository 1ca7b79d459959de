"""Time derivatives of scalar-time functions, in forward (Taylor) mode.

Time is a single scalar input, so forward mode is the cheap direction: one `jax.jvp`
gives $y$ and $y'$ together, and Taylor mode (`jax.experimental.jet`) propagates a
truncated Taylor series to get every derivative up to order $k$ in one pass, instead
of the $k$ nested reverse passes a PyTorch PINN builds with
`autograd.grad(..., create_graph=True)`.
"""

from collections.abc import Callable

import jax
import jax.extend.core as jex
import jax.numpy as jnp
import jax.tree_util as jtu
from jax.experimental import jet
from jaxtyping import Array

from ._custom_types import Scalar

# Calls whose bodies are evaluated inline before Taylor mode sees them. `jet` has no
# working rule of its own for custom derivatives (it would leak tracers), and
# Taylor-propagating the primal implementation of a custom-JVP function (softplus,
# relu, logaddexp, ...) gives the derivatives of that function, which is what is
# wanted here.
_INLINED = frozenset(
    {
        "jit",
        "pjit",
        "closed_call",
        "core_call",
        "custom_jvp_call",
        "custom_vjp_call",
        "custom_vjp_call_jaxpr",
    }
)


def _body(eqn):
    for name in ("jaxpr", "call_jaxpr", "fun_jaxpr"):
        body = eqn.params.get(name)
        if body is not None:
            return body
    return None


def _has_taylor_rules(jaxpr) -> bool:
    """Whether every primitive of `jaxpr` (calls inlined) has a Taylor rule."""
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in _INLINED:
            body = _body(eqn)
            if body is None:
                return False
            if isinstance(body, jex.ClosedJaxpr):
                body = body.jaxpr
            if not _has_taylor_rules(body):
                return False
        elif eqn.primitive not in jet.jet_rules:
            return False
    return True


def _evaluate(jaxpr, consts, args) -> list:
    """Evaluates `jaxpr`, inlining the calls in `_INLINED`."""
    env = {}

    def read(var):
        return var.val if isinstance(var, jex.Literal) else env[var]

    env.update(zip(jaxpr.constvars, consts, strict=True))
    env.update(zip(jaxpr.invars, args, strict=True))
    for eqn in jaxpr.eqns:
        inputs = [read(var) for var in eqn.invars]
        if eqn.primitive.name in _INLINED:
            body = _body(eqn)
            if isinstance(body, jex.ClosedJaxpr):
                outputs = _evaluate(body.jaxpr, body.consts, inputs)
            else:
                outputs = _evaluate(body, (), inputs)
        else:
            outputs = eqn.primitive.bind(*inputs, **eqn.params)
            if not eqn.primitive.multiple_results:
                outputs = [outputs]
        for var, value in zip(eqn.outvars, outputs, strict=True):
            if not isinstance(var, jex.DropVar):
                env[var] = value
    return [read(var) for var in jaxpr.outvars]


def _taylor(fn, t, order):
    """`(y, y', ..., y^(order))` in one Taylor-mode pass, or `None` when some
    operation of `fn` has no Taylor rule."""
    closed, out_shape = jax.make_jaxpr(fn, return_shape=True)(t)
    if not _has_taylor_rules(closed.jaxpr):
        return None
    treedef = jtu.tree_structure(out_shape)

    def flat(s):
        return _evaluate(closed.jaxpr, closed.consts, [s])

    # `jet` takes the series of the input in derivative form: t + ε has first
    # derivative 1 and no higher ones.
    series = (jnp.ones_like(t),) + (jnp.zeros_like(t),) * (order - 1)
    values, terms = jet.jet(flat, (t,), (series,))
    out = [values] + [[leaf[k] for leaf in terms] for k in range(order)]
    return tuple(jtu.tree_unflatten(treedef, leaves) for leaves in out)


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
    (`jax.experimental.jet`): the truncated series $t + \varepsilon$ pushed through
    `fn` once, costing a small multiple of one evaluation per order instead of the
    doubling per order of nested differentiation. Functions with custom derivative
    rules (`jax.nn.softplus`, `jax.nn.relu`, ...) are expanded through their primal
    implementation. If `fn` uses an operation with no Taylor rule (`jnp.arctan`,
    control flow such as `lax.scan` or a diffrax solve), or with `taylor=False`, the
    derivatives come from nested `jax.jvp`s instead: the same numbers to rounding,
    more work.

    **Arguments:**

    - `fn`: a function of one scalar time returning an array (or a PyTree of
        arrays).
    - `t`: the scalar time (a float).
    - `order`: how many derivatives, `>= 0`.
    - `taylor`: use Taylor mode for orders `>= 2`; `False` forces nested `jax.jvp`.

    **Returns:** a tuple of `order + 1` arrays shaped like `fn(t)`: the value, then
    the derivatives by increasing order.

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
    if not callable(fn):
        raise TypeError(f"`fn` must be callable, got {type(fn).__name__}.")
    if not isinstance(taylor, bool):
        raise TypeError(f"`taylor` must be a bool, got {taylor!r}.")
    t = jnp.asarray(t)
    if t.shape != ():
        raise ValueError(f"`t` must be a scalar, got shape {t.shape}.")
    if not jnp.issubdtype(t.dtype, jnp.floating):
        raise TypeError(f"`t` must be a float, got dtype {t.dtype}.")
    if order <= 1 or not taylor:
        return _nested_jvp(fn, t, order)
    out = _taylor(fn, t, order)
    return _nested_jvp(fn, t, order) if out is None else out
