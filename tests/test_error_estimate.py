import jax
import jax.numpy as jnp
import numpy as np
import pytest

import odefit

EPS = 1e-3


def _oscillator():
    def field(t, y, args):
        return jnp.stack([y[1], -400.0 * y[0] - 4.0 * y[1]])

    return odefit.IVP(field, 0.0, 1.0, jnp.array([1.0, 0.0]))


def _oscillator_exact(t):
    a, w = 2.0, jnp.sqrt(400.0 - 4.0)
    u = jnp.exp(-a * t) * (jnp.cos(w * t) + a / w * jnp.sin(w * t))
    du = -jnp.exp(-a * t) * (w + a**2 / w) * jnp.sin(w * t)
    return jnp.stack([u, du])


def test_linear_problem_estimate_is_exact():
    # For a linear ODE the linearised error equation is the error equation: the
    # estimate must recover a known perturbation of the exact solution.
    problem = _oscillator()

    def perturbation(t):
        return EPS * jnp.stack([jnp.sin(3.0 * t) * t, jnp.cos(5.0 * t) - 1.0])

    def solution(t):
        return _oscillator_exact(t) + perturbation(t)

    ts = jnp.linspace(0.0, 1.0, 201)
    est = odefit.error_estimate(problem, solution, ts)
    truth = jax.vmap(perturbation)(ts)
    np.testing.assert_allclose(est.error, truth, rtol=0, atol=1e-6 * EPS)
    pred = jax.vmap(solution)(ts)
    ref = jax.vmap(_oscillator_exact)(ts)
    np.testing.assert_allclose(
        est.relative_l2, odefit.relative_l2(pred, ref), rtol=1e-5
    )
    np.testing.assert_allclose(est.max_error, np.max(np.abs(truth)), rtol=1e-5)
    # The Grönwall bound bounds the error norm at every time.
    norms = np.linalg.norm(np.asarray(truth), axis=1)
    assert np.all(np.asarray(est.bound) >= norms * (1 - 1e-6))
    assert est.relative_l2_bound >= est.relative_l2


def test_nonlinear_problem_estimate_to_second_order():
    # Logistic growth: the linearisation error is O(eps^2).
    problem = odefit.IVP(lambda t, y, args: y * (1.0 - y), 0.0, 6.0, 0.1)

    def exact(t):
        return 0.1 * jnp.exp(t) / (1.0 - 0.1 + 0.1 * jnp.exp(t))

    ts = jnp.linspace(0.0, 6.0, 301)
    for eps in (1e-2, 1e-3):

        def solution(t, eps=eps):
            return exact(t) + eps * jnp.sin(t)

        est = odefit.error_estimate(problem, solution, ts)
        truth = eps * jnp.sin(ts)
        assert float(jnp.max(jnp.abs(est.error - truth))) < 20 * eps**2


def test_second_order_and_initial_mismatch():
    # y'' = -y with an approximate solution that misses both initial conditions.
    problem = odefit.SecondOrderIVP(lambda t, y, dy, args: -y, 0.0, 4.0, 1.0, 0.0)

    def solution(t):
        return jnp.cos(t) + EPS * (1.0 + t + t**2)

    ts = jnp.linspace(0.0, 4.0, 101)
    est = odefit.error_estimate(problem, solution, ts)
    np.testing.assert_allclose(
        est.error, EPS * (1.0 + ts + ts**2), rtol=0, atol=1e-6 * EPS
    )


def test_boundary_value_problem_by_linear_shooting():
    # y'' = 4 y - y' with Dirichlet conditions; the error must vanish at both ends
    # (where the approximation meets the conditions).
    problem = odefit.BVP(lambda t, y, dy, args: 4.0 * y - dy, 0.0, 1.0, 1.0, 2.0)
    ts = jnp.linspace(0.0, 1.0, 101)
    reference = problem.solve(ts)
    # A smooth approximation: the reference interpolated, plus a bump.
    coeffs = np.polyfit(np.asarray(ts), np.asarray(reference), 12)

    def solution(t):
        return jnp.polyval(jnp.asarray(coeffs), t) + EPS * jnp.sin(jnp.pi * t) ** 2

    est = odefit.error_estimate(problem, solution, ts)
    pred = jax.vmap(solution)(ts)
    np.testing.assert_allclose(est.error, pred - reference, rtol=0, atol=1e-4 * EPS)
    assert np.all(np.isnan(np.asarray(est.bound)))


def test_piecewise_solution_and_fitted_model(getkey):
    problem = odefit.IVP(lambda t, y, args: -2.0 * y, 0.0, 2.0, 1.0)
    model = odefit.PINN(problem, width=8, depth=2, key=getkey())
    result = odefit.fit(problem, model, steps=200, key=getkey(), progress=False)
    ts = jnp.linspace(0.0, 2.0, 201)
    est = odefit.error_estimate(problem, result.model, ts)
    pred = jax.vmap(result.model)(ts)
    true = odefit.relative_l2(pred, jnp.exp(-2.0 * ts))
    np.testing.assert_allclose(est.relative_l2, true, rtol=1e-3)
    assert est.error.shape == (201,)
    assert float(est.residual_rms) > 0

    # A two-piece solution, continuous at the breakpoint but with a kink there:
    # the error EPS * min(t, 2 - t) must be followed across the kink.
    pieces = odefit.PiecewiseSolution(
        (
            lambda s: jnp.exp(-2.0 * s) + EPS * s,
            lambda s: jnp.exp(-2.0 * (1 + s)) + EPS * (1 - s),
        ),
        (0.0, 1.0, 2.0),
    )
    est = odefit.error_estimate(problem, pieces, ts)
    truth = jax.vmap(pieces)(ts) - jnp.exp(-2.0 * ts)
    np.testing.assert_allclose(truth, EPS * jnp.minimum(ts, 2 - ts), atol=1e-15)
    np.testing.assert_allclose(est.error, truth, rtol=0, atol=1e-6 * EPS)


def test_bad_arguments():
    problem = odefit.IVP(lambda t, y, args: -y, 0.0, 1.0, 1.0)
    with pytest.raises(TypeError, match="`problem` must be an odefit problem"):
        odefit.error_estimate("problem", jnp.exp)
    with pytest.raises(TypeError, match="`solution` must map a scalar time"):
        odefit.error_estimate(problem, 3.0)
    with pytest.raises(ValueError, match="`ts` must be increasing times in"):
        odefit.error_estimate(problem, jnp.exp, jnp.array([0.0, 2.0]))
    with pytest.raises(ValueError, match="`solution` returns shape"):
        odefit.error_estimate(problem, lambda t: jnp.stack([t, t]))
    with pytest.raises(ValueError, match="`rtol` must be"):
        odefit.error_estimate(problem, jnp.exp, rtol=0.0)
