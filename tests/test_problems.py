import jax.numpy as jnp
import numpy as np
import pytest

import odefit


def oscillator(t, y, args):
    u, v = y
    return jnp.stack([v, -400.0 * u - 4.0 * v])


def oscillator_exact(ts):
    a, w = 2.0, jnp.sqrt(396.0)
    return jnp.exp(-a * ts) * (jnp.cos(w * ts) + a / w * jnp.sin(w * ts))


def test_ivp_solve_matches_exponential():
    problem = odefit.IVP(lambda t, y, args: -args * y, 0.0, 2.0, 1.0, args=2.0)
    ts = jnp.linspace(0.0, 2.0, 51)
    ys = problem.solve(ts)
    assert ys.shape == (51,)
    assert ys.dtype == jnp.float64
    np.testing.assert_allclose(ys, jnp.exp(-2.0 * ts), rtol=1e-9, atol=1e-12)


def test_ivp_solve_oscillator_system():
    problem = odefit.IVP(oscillator, 0.0, 1.0, jnp.array([1.0, 0.0]))
    ts = jnp.linspace(0.0, 1.0, 101)
    ys = problem.solve(ts)
    assert ys.shape == (101, 2)
    assert float(jnp.max(jnp.abs(ys[:, 0] - oscillator_exact(ts)))) < 1e-8


def test_stiff_solver_selectable():
    import diffrax as dfx

    problem = odefit.IVP(lambda t, y, args: -1000.0 * (y - jnp.cos(t)), 0.0, 1.0, 0.0)
    ts = jnp.linspace(0.0, 1.0, 11)
    ys = problem.solve(ts, solver=dfx.Kvaerno5())
    explicit = problem.solve(ts)
    np.testing.assert_allclose(ys, explicit, atol=1e-6)


def test_float32_problem_solves_in_float32():
    problem = odefit.IVP(lambda t, y, args: -y, 0.0, 1.0, jnp.float32(1.0))
    ys = problem.solve(jnp.linspace(0.0, 1.0, 5, dtype=jnp.float32))
    assert ys.dtype == jnp.float32
    np.testing.assert_allclose(ys, np.exp(-np.linspace(0, 1, 5)), rtol=1e-5)


def test_solve_rejects_unsorted_times():
    problem = odefit.IVP(lambda t, y, args: -y, 0.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="`ts` must be sorted"):
        problem.solve(jnp.array([0.0, 0.5, 0.2]))


def test_bad_interval():
    with pytest.raises(ValueError, match="`t1` must be greater than `t0`"):
        odefit.IVP(lambda t, y, args: -y, 1.0, 1.0, 1.0)


def test_non_finite_y0():
    with pytest.raises(ValueError, match="`y0` must be finite"):
        odefit.IVP(lambda t, y, args: -y, 0.0, 1.0, jnp.array([1.0, jnp.nan]))


def test_vector_field_shape_mismatch():
    with pytest.raises(
        ValueError,
        match=r"`vector_field` returned shape \(2,\) but the state has shape \(3,\)",
    ):
        odefit.IVP(lambda t, y, args: y[:2], 0.0, 1.0, jnp.ones(3))


def test_characteristic_scale_tracks_solution_size():
    problem = odefit.IVP(oscillator, 0.0, 1.0, jnp.array([1.0, 0.0]))
    ts = jnp.linspace(0.0, 1.0, 2001)
    peak = jnp.max(jnp.abs(problem.solve(ts)), axis=0)
    np.testing.assert_allclose(problem.characteristic_scale(), peak, rtol=0.05)
