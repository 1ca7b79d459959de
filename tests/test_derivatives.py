import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import odefit
from odefit._derivatives import _taylor

ORDERS = (1, 2, 3, 4)
SLOW = pytest.mark.slow


def _analytic_cases():
    """Functions with their first four derivatives in closed form."""

    def tanh_derivs(t):
        y = jnp.tanh(t)
        d1 = 1 - y**2
        d2 = -2 * y * d1
        d3 = -2 * d1**2 - 2 * y * d2
        d4 = -6 * d1 * d2 - 2 * y * d3
        return (y, d1, d2, d3, d4)

    return {
        "sin(3t)": (
            lambda t: jnp.sin(3 * t),
            lambda t: (
                jnp.sin(3 * t),
                3 * jnp.cos(3 * t),
                -9 * jnp.sin(3 * t),
                -27 * jnp.cos(3 * t),
                81 * jnp.sin(3 * t),
            ),
        ),
        "exp(-2t)": (
            lambda t: jnp.exp(-2 * t),
            lambda t: tuple((-2.0) ** k * jnp.exp(-2 * t) for k in range(5)),
        ),
        "t^5": (
            lambda t: t**5,
            lambda t: (t**5, 5 * t**4, 20 * t**3, 60 * t**2, 120 * t),
        ),
        "tanh": (jnp.tanh, tanh_derivs),
        "1/(1+t^2)": (
            lambda t: 1 / (1 + t**2),
            lambda t: (
                1 / (1 + t**2),
                -2 * t / (1 + t**2) ** 2,
                (6 * t**2 - 2) / (1 + t**2) ** 3,
                24 * t * (1 - t**2) / (1 + t**2) ** 4,
                24 * (5 * t**4 - 10 * t**2 + 1) / (1 + t**2) ** 5,
            ),
        ),
        "vector": (
            lambda t: jnp.stack([jnp.cos(t), t**3 * jnp.exp(t)]),
            lambda t: tuple(
                jnp.stack([c, p * jnp.exp(t)])
                for c, p in zip(
                    (jnp.cos(t), -jnp.sin(t), -jnp.cos(t), jnp.sin(t), jnp.cos(t)),
                    (
                        t**3,
                        t**3 + 3 * t**2,
                        t**3 + 6 * t**2 + 6 * t,
                        t**3 + 9 * t**2 + 18 * t + 6,
                        t**3 + 12 * t**2 + 36 * t + 24,
                    ),
                    strict=True,
                )
            ),
        ),
    }


@pytest.mark.parametrize("name", list(_analytic_cases()))
@pytest.mark.parametrize("taylor", [True, False])
def test_matches_analytic_derivatives(name, taylor):
    fn, exact = _analytic_cases()[name]
    for t in (-0.7, 0.0, 0.3, 1.9):
        t = jnp.asarray(t)
        got = odefit.derivatives(fn, t, 4, taylor=taylor)
        want = exact(t)
        assert len(got) == 5
        for k, (g, w) in enumerate(zip(got, want, strict=True)):
            np.testing.assert_allclose(
                g, w, rtol=1e-12, atol=1e-12, err_msg=f"{name}, order {k}, t={t}"
            )


@pytest.mark.parametrize("order", ORDERS)
def test_lower_orders_are_prefixes(order):
    fn = lambda t: jnp.sin(2 * t) * jnp.exp(t)
    t = jnp.asarray(0.4)
    full = odefit.derivatives(fn, t, 4)
    part = odefit.derivatives(fn, t, order)
    assert len(part) == order + 1
    for a, b in zip(part, full[: order + 1], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)


def test_order_zero_is_the_value():
    (y,) = odefit.derivatives(jnp.cos, jnp.asarray(0.2), 0)
    np.testing.assert_allclose(y, np.cos(0.2), rtol=1e-15)


ACTIVATIONS = {
    "tanh": jnp.tanh,
    "softplus": jax.nn.softplus,  # a custom-JVP function
    "gelu": jax.nn.gelu,
    "sigmoid": jax.nn.sigmoid,
    "silu": jax.nn.silu,
    "sin": jnp.sin,
}


def _mlp(activation, key, out_size=3, dtype=jnp.float64):
    mlp = eqx.nn.MLP(1, out_size, 32, 3, activation=activation, dtype=dtype, key=key)
    return lambda t: mlp(jnp.expand_dims(t, 0))


@pytest.mark.parametrize(
    "activation",
    [
        name if name in ("tanh", "softplus") else pytest.param(name, marks=SLOW)
        for name in ACTIVATIONS
    ],
)
def test_taylor_agrees_with_nested_jvp_float64(activation, getkey):
    """The issue's bar: Taylor mode agrees with nested jvp to 1e-12 in float64."""
    fn = _mlp(ACTIVATIONS[activation], getkey())
    ts = jnp.linspace(-1.0, 1.0, 7)
    for order in ORDERS[1:]:
        # Taylor mode really runs (no silent fallback) for these networks.
        assert _taylor(fn, ts[0], order) is not None

    @jax.jit
    def both(ts):
        def at(t):
            return [
                (
                    odefit.derivatives(fn, t, order),
                    odefit.derivatives(fn, t, order, taylor=False),
                )
                for order in ORDERS
            ]

        return jax.vmap(at)(ts)

    for order, (taylor, nested) in zip(ORDERS, both(ts), strict=True):
        assert len(taylor) == len(nested) == order + 1
        for k, (a, b) in enumerate(zip(taylor, nested, strict=True)):
            scale = max(1.0, float(jnp.max(jnp.abs(b))))
            np.testing.assert_allclose(
                a, b, rtol=0, atol=1e-12 * scale, err_msg=f"order {order}, k={k}"
            )


@SLOW
def test_taylor_agrees_with_nested_jvp_float32(getkey):
    fn = _mlp(jnp.tanh, getkey(), dtype=jnp.float32)
    t = jnp.asarray(0.3, jnp.float32)
    for a, b in zip(
        jax.jit(lambda t: odefit.derivatives(fn, t, 4))(t),
        jax.jit(lambda t: odefit.derivatives(fn, t, 4, taylor=False))(t),
        strict=True,
    ):
        assert a.dtype == jnp.float32
        scale = max(1.0, float(jnp.max(jnp.abs(b))))
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5 * scale)


def test_under_jit_and_vmap(getkey):
    fn = _mlp(jnp.tanh, getkey())
    ts = jnp.linspace(0.0, 2.0, 5)
    jitted = jax.jit(jax.vmap(lambda t: odefit.derivatives(fn, t, 3)))(ts)
    eager = [odefit.derivatives(fn, t, 3) for t in ts]
    for k in range(4):
        np.testing.assert_allclose(
            jitted[k], np.stack([e[k] for e in eager]), rtol=1e-13, atol=1e-13
        )


@pytest.mark.parametrize("activation", ["tanh", pytest.param("softplus", marks=SLOW)])
def test_parameter_gradients_through_taylor_mode(activation, getkey):
    """What `fit` needs: the gradient of a residual loss with respect to the weights,
    through the time derivatives, is the same in Taylor mode and nested jvp."""
    mlp = eqx.nn.MLP(1, 2, 16, 2, activation=ACTIVATIONS[activation], key=getkey())
    ts = jnp.linspace(0.0, 1.0, 9)

    def loss(model, taylor):
        def residual(t):
            y, dy, ddy = odefit.derivatives(
                lambda s: model(jnp.expand_dims(s, 0)), t, 2, taylor=taylor
            )
            return ddy + jnp.sin(y) + 0.1 * dy

        return jnp.mean(jax.vmap(residual)(ts) ** 2)

    g_taylor = eqx.filter_jit(eqx.filter_grad(lambda m: loss(m, True)))(mlp)
    g_nested = eqx.filter_jit(eqx.filter_grad(lambda m: loss(m, False)))(mlp)
    for a, b in zip(jax.tree.leaves(g_taylor), jax.tree.leaves(g_nested), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)


def test_falls_back_without_a_taylor_rule():
    # `arctan` has no Taylor rule in jax.experimental.jet.
    fn = jnp.arctan
    t = jnp.asarray(0.5)
    assert _taylor(fn, t, 3) is None
    y, d1, d2, d3 = odefit.derivatives(fn, t, 3)
    np.testing.assert_allclose(y, np.arctan(0.5), rtol=1e-15)
    np.testing.assert_allclose(d1, 1 / 1.25, rtol=1e-14)
    np.testing.assert_allclose(d2, -2 * 0.5 / 1.25**2, rtol=1e-14)
    np.testing.assert_allclose(d3, (6 * 0.25 - 2) / 1.25**3, rtol=1e-14)


def test_falls_back_for_control_flow():
    def fn(t):
        # t^4 by repeated multiplication inside a scan.
        out, _ = jax.lax.scan(lambda c, _: (c * t, None), jnp.ones_like(t), None, 4)
        return out

    t = jnp.asarray(1.5)
    assert _taylor(fn, t, 2) is None
    got = odefit.derivatives(fn, t, 4)
    want = (t**4, 4 * t**3, 12 * t**2, 24 * t, 24.0)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-13)


def test_pytree_output():
    fn = lambda t: {"a": jnp.sin(t), "b": (t**2, jnp.exp(t))}
    t = jnp.asarray(0.25)
    for taylor in (True, False):
        y, d1, d2 = odefit.derivatives(fn, t, 2, taylor=taylor)
        np.testing.assert_allclose(d2["a"], -np.sin(0.25), rtol=1e-14)
        np.testing.assert_allclose(d2["b"][0], 2.0, rtol=1e-14)
        np.testing.assert_allclose(d1["b"][1], np.exp(0.25), rtol=1e-14)


def test_with_a_pinn(getkey):
    problem = odefit.SecondOrderIVP(
        lambda t, y, dy, args: -jnp.sin(y), t0=0.0, t1=6.0, y0=1.0, dy0=0.0
    )
    model = odefit.PINN(problem, width=16, depth=2, key=getkey())
    t = jnp.asarray(2.0)
    for a, b in zip(
        eqx.filter_jit(lambda m, t: odefit.derivatives(m, t, 4))(model, t),
        eqx.filter_jit(lambda m, t: odefit.derivatives(m, t, 4, taylor=False))(
            model, t
        ),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


def test_bad_input():
    with pytest.raises(ValueError, match="`order` must be an integer >= 0, got -1"):
        odefit.derivatives(jnp.sin, 0.0, -1)
    with pytest.raises(ValueError, match="`order` must be an integer >= 0, got True"):
        odefit.derivatives(jnp.sin, 0.0, True)
    with pytest.raises(ValueError, match="`order` must be an integer >= 0, got 2.0"):
        odefit.derivatives(jnp.sin, 0.0, 2.0)
    with pytest.raises(ValueError, match=r"`t` must be a scalar, got shape \(3,\)"):
        odefit.derivatives(jnp.sin, jnp.zeros(3), 2)
    with pytest.raises(TypeError, match="`t` must be a float, got dtype int"):
        odefit.derivatives(jnp.sin, jnp.asarray(1), 2)
    with pytest.raises(TypeError, match="`taylor` must be a bool, got 1"):
        odefit.derivatives(jnp.sin, 0.0, 2, taylor=1)
    with pytest.raises(TypeError, match="`fn` must be callable, got str"):
        odefit.derivatives("sin", 0.0, 2)


def test_accepts_a_python_float():
    out = odefit.derivatives(lambda t: t**2, 3.0, 2)
    np.testing.assert_allclose(out, (9.0, 6.0, 2.0))


def test_taylor_products_with_constant_operands(getkey):
    # Matrix products whose time-dependent operand is on either side, with batch
    # and several free dimensions: Taylor mode applies them to all coefficients in
    # one product; the numbers must equal nested jvp's.
    a = jax.random.normal(getkey(), (3, 4))
    b = jax.random.normal(getkey(), (2, 4, 5))
    c = jax.random.normal(getkey(), (5,))

    def fn(t):
        x = jnp.sin(t * jnp.arange(1.0, 4.0))  # (3,)
        m = jnp.tanh(jnp.outer(x, jnp.arange(1.0, 5.0)) * t)  # (3, 4)
        left = x @ a  # series on the left: (4,)
        right = a @ jnp.cos(t * jnp.arange(1.0, 5.0))  # series on the right: (3,)
        batched = jnp.einsum("bij,bjk->bik", jnp.stack([m, m**2])[:, :2], b)
        free = jnp.einsum("ij,bjk,k->bi", m, b, c)  # several free dimensions
        return left.sum() * right, batched, free

    t = jnp.asarray(0.7)
    taylor = odefit.derivatives(fn, t, 3)
    nested = odefit.derivatives(fn, t, 3, taylor=False)
    assert _taylor(fn, t, 3) is not None
    for got, want in zip(jax.tree.leaves(taylor), jax.tree.leaves(nested), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
