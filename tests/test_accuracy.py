"""The accuracy bars of the core, against closed-form solutions, in float32 as a
user gets by default (the conftest turns x64 on, so float32 is asked for by
passing float32 initial values)."""

import jax
import jax.numpy as jnp
import jax.random as jr
import pytest

import odefit


def _fit_error(problem, exact, steps, width=64, depth=3, seed=0):
    model = odefit.PINN(problem, width=width, depth=depth, key=jr.key(seed))
    result = odefit.fit(
        problem, model, steps=steps, key=jr.key(seed + 1), progress=False
    )
    ts = jnp.linspace(problem.t0, problem.t1, 1001, dtype=jnp.float32)
    pred = jax.vmap(result.model)(ts)
    assert pred.dtype == jnp.float32
    return float(odefit.relative_l2(pred, exact(ts)))


def test_decay_quick():
    problem = odefit.IVP(lambda t, y, args: -2.0 * y, 0.0, 2.0, jnp.float32(1.0))
    error = _fit_error(problem, lambda ts: jnp.exp(-2.0 * ts), 2000, width=32, depth=2)
    assert error < 3e-2


@pytest.mark.slow
def test_decay_bar():
    problem = odefit.IVP(lambda t, y, args: -2.0 * y, 0.0, 2.0, jnp.float32(1.0))
    assert _fit_error(problem, lambda ts: jnp.exp(-2.0 * ts), 20_000) <= 1e-4


@pytest.mark.slow
def test_logistic_bar():
    problem = odefit.IVP(lambda t, y, args: y * (1 - y), 0.0, 10.0, jnp.float32(0.1))

    def exact(ts):
        return 1 / (1 + 9 * jnp.exp(-ts))

    assert _fit_error(problem, exact, 20_000) <= 1e-3


@pytest.mark.slow
def test_oscillator_bar():
    def field(t, y, args):
        return jnp.stack([y[1], -400.0 * y[0] - 4.0 * y[1]])

    def exact(ts):
        a, w = 2.0, jnp.sqrt(jnp.float32(396.0))
        u = jnp.exp(-a * ts) * (jnp.cos(w * ts) + a / w * jnp.sin(w * ts))
        du = -jnp.exp(-a * ts) * (w + a**2 / w) * jnp.sin(w * ts)
        return jnp.stack([u, du], axis=-1)

    problem = odefit.IVP(field, 0.0, 1.0, jnp.array([1.0, 0.0], jnp.float32))
    assert _fit_error(problem, exact, 40_000) <= 1e-2
