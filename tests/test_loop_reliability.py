"""The training core says what went wrong, and where: a finite blow-up, a loss that
is not finite from the start, a Ctrl-C before the first chunk."""

import os
import signal

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

import odefit


def decay(t, y, args):
    return -2.0 * y


PROBLEM = odefit.IVP(decay, t0=0.0, t1=1.0, y0=1.0)
MODEL = odefit.PINN(PROBLEM, width=8, depth=2, key=jr.key(0))


def fit(problem=PROBLEM, model=MODEL, **kwargs):
    options = dict(
        steps=200,
        collocation=odefit.Uniform(32),
        key=jr.key(1),
        progress=False,
        chunk_size=20,
    )
    options.update(kwargs)
    return odefit.fit(problem, model, **options)


def assert_identical(a, b):
    for x, y in zip(
        jax.tree.leaves(eqx.filter(a, eqx.is_array)),
        jax.tree.leaves(eqx.filter(b, eqx.is_array)),
        strict=True,
    ):
        np.testing.assert_array_equal(x, y)


def test_a_finite_blow_up_keeps_the_best_model():
    result = fit(optimizer=optax.adam(1e4))
    assert result.stop_reason.startswith("diverged at step"), result.stop_reason
    assert "times that of the first step" in result.stop_reason
    assert "lowest loss" in result.stop_reason
    # Adam's first step of size 1e4 jumps to a loss of ~1e10: the model with
    # the lowest loss seen is the initial one.
    assert result.steps == 0 and result.history["loss"].shape == (0,)
    assert "The model of step 0, with the lowest loss" in result.stop_reason
    assert_identical(result.model, MODEL)
    with pytest.raises(RuntimeError, match="times that of the first step"):
        fit(optimizer=optax.adam(1e4), throw=True)


def test_a_converging_fit_is_not_a_blow_up():
    # The growing window shows the network new parts of the interval: the loss
    # rises a lot, far less than the blow-up threshold.
    result = fit(optimizer=optax.adam(1e-2), collocation=None, steps=400)
    assert result.stop_reason == "completed"


def test_a_residual_that_is_not_finite_says_where():
    def field(t, y, args):
        return jnp.where(t > 0.5, jnp.nan, -y)

    problem = odefit.IVP(field, t0=0.0, t1=1.0, y0=1.0)
    model = odefit.PINN(problem, width=8, depth=2, key=jr.key(0))
    result = fit(problem, model, optimizer=optax.adam(1e-3))
    reason = result.stop_reason
    assert reason.startswith("diverged at step 0: the loss of the initial model is")
    assert "non-finite term: residual" in reason
    assert "the ODE residual is not finite at" in reason
    # The times reported are those past 0.5.
    low = float(reason.split(" times in [")[1].split(",")[0])
    assert 0.5 < low < 0.502


def test_a_model_that_is_not_finite_is_named():
    problem = odefit.IVP(decay, t0=0.0, t1=1.0, y0=1.0)
    model = odefit.PINN(problem, width=8, depth=2, key=jr.key(0))
    nan = eqx.tree_at(lambda m: m.scale, model, jnp.asarray(jnp.nan))
    result = fit(problem, nan, optimizer=optax.adam(1e-3))
    assert "the model's own prediction is not finite" in result.stop_reason


SENT: list[bool] = []


class _CtrlC(odefit.AbstractCollocation):
    """Uniform points; sends Ctrl-C while the fit is being set up."""

    n: int = eqx.field(static=True)

    def init(self, t0, t1, dtype):
        if not SENT:
            SENT.append(True)
            os.kill(os.getpid(), signal.SIGINT)
        return jnp.zeros((), dtype)

    def sample(self, state, t0, t1, residual_fn, *, key):
        return jr.uniform(key, (self.n,), state.dtype, t0, t1), state


@pytest.fixture
def default_sigint():
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_during_set_up_returns_the_initial_model(default_sigint):
    result = fit(collocation=_CtrlC(16))
    assert result.stop_reason == "interrupted"
    assert result.steps == 0
    assert result.history["loss"].shape == (0,)
    assert_identical(result.model, MODEL)
