"""`fit_to_tolerance`: one call with a tolerance, an honest estimate."""

import jax.numpy as jnp
import jax.random as jr
import pytest

import odefit


def decay(t, y, args):
    return -2.0 * y


def test_float32_cannot_reach_a_tight_tolerance():
    problem = odefit.IVP(decay, 0.0, 2.0, jnp.asarray(1.0, jnp.float32))
    with pytest.raises(ValueError, match=r"jax_enable_x64"):
        odefit.fit_to_tolerance(problem, tol=1e-6, key=jr.key(0))


@pytest.mark.parametrize("tol", [0.0, -1e-3, 2.0, "1e-3"])
def test_tolerance_is_checked(tol):
    problem = odefit.IVP(decay, 0.0, 2.0, 1.0)
    with pytest.raises((ValueError, TypeError), match="`tol`"):
        odefit.fit_to_tolerance(problem, tol=tol, key=jr.key(0))


@pytest.mark.slow
def test_meets_the_tolerance_with_an_honest_estimate():
    problem = odefit.IVP(decay, 0.0, 2.0, 1.0)
    result = odefit.fit_to_tolerance(problem, tol=1e-6, key=jr.key(0), progress=False)
    ts = jnp.linspace(0.0, 2.0, 1000)
    true = float(odefit.relative_l2(result.model.predict(ts), jnp.exp(-2.0 * ts)))
    assert result.met and result.stop_reason == "completed"
    assert true <= 1e-6
    estimate = float(result.estimate.relative_l2)
    assert true / 10 <= estimate <= 10 * true
    assert result.choices[0]["attempt"] == "single"


@pytest.mark.slow
def test_a_budget_too_short_says_so():
    problem = odefit.SecondOrderIVP(
        lambda t, y, dy, a: -400.0 * y - 4.0 * dy, 0.0, 1.0, 1.0, 0.0
    )
    result = odefit.fit_to_tolerance(
        problem, tol=1e-9, key=jr.key(0), time_budget=5.0, progress=False
    )
    # Five seconds are spent compiling and warming up: far from 1e-9.
    assert not result.met
    assert result.stop_reason.startswith("tolerance not met")
    assert "time budget ran out" in result.stop_reason
    assert float(result.estimate.relative_l2) > 1e-9


def test_an_inverse_fit_is_judged_on_its_data_too():
    # A budget that ends the first attempt after its first chunks: the verdict
    # weighs the relative misfit to the observations as well as the estimate.
    ts = jnp.linspace(0.0, 2.0, 11)
    problem = odefit.IVP(
        lambda t, y, k: -k * y, 0.0, 2.0, 1.0, args=odefit.Unknown(1.0)
    )
    data = odefit.Observations(ts, jnp.exp(-2.0 * ts))
    result = odefit.fit_to_tolerance(
        problem, tol=1e-6, key=jr.key(0), time_budget=0.01, observations=data,
        progress=False,
    )  # fmt: skip
    assert not result.met
    assert result.choices[0]["data_misfit"] > 1e-6
    assert result.stop_reason.startswith("tolerance not met")
