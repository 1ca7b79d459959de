"""The problems of the tolerance suite (`benchmarks/ode_suite.py`) are what they say:
every problem builds; an exact solution satisfies its ODE (residual by forward
mode) and its initial or boundary conditions; a diffrax reference agrees with an
independent solve (Dopri5, tighter tolerances) to 1e-8 relative; inverse problems
have observations of the true solution and unknowns to learn."""

import importlib.util
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import odefit

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "ode_suite.py"


def _load_suite():
    if "ode_suite" in sys.modules:
        return sys.modules["ode_suite"]
    spec = importlib.util.spec_from_file_location("ode_suite", _PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["ode_suite"] = module
    spec.loader.exec_module(module)
    return module


suite = _load_suite()
NAMES = [p.name for p in suite.PROBLEMS]
EXACT = [p.name for p in suite.PROBLEMS if p.exact is not None]
SOLVED = [p.name for p in suite.PROBLEMS if p.exact is None]


def test_suite_size_and_coverage():
    assert len(suite.PROBLEMS) >= 20
    assert len(set(NAMES)) == len(NAMES)
    kinds = " ".join(p.kind for p in suite.PROBLEMS)
    for kind in ("scalar IVP", "system", "second order", "BVP", "long horizon"):
        assert kind in kinds
    assert "blow-up" in kinds and "oscillatory" in kinds
    assert sum(p.inverse for p in suite.PROBLEMS) >= 2
    types = {type(p.build(jnp.float64)).__name__ for p in suite.PROBLEMS}
    assert types == {"IVP", "SecondOrderIVP", "BVP"}


def _times(problem, n=7):
    return jnp.linspace(problem.t0, problem.t1, n, dtype=jnp.float64)


@pytest.mark.parametrize("name", EXACT)
def test_exact_solution_satisfies_the_problem(name):
    entry = suite.BY_NAME[name]
    problem = entry.true_problem(jnp.float64)
    exact = entry.exact
    args = problem.args

    def first(t):
        return jax.jvp(exact, (t,), (jnp.ones_like(t),))

    for t in _times(problem):
        y, dy = first(t)
        scale = 1.0 + float(jnp.max(jnp.abs(dy)))
        if problem.order == 1:
            residual = dy - problem.vector_field(t, y, args)
        else:
            _, d2y = jax.jvp(lambda s: first(s)[1], (t,), (jnp.ones_like(t),))
            residual = d2y - problem.acceleration(t, y, dy, args)
            scale = 1.0 + float(jnp.max(jnp.abs(d2y)))
        assert jnp.shape(y) == problem.state.shape
        np.testing.assert_allclose(residual / scale, 0.0, atol=1e-12)
    t0 = jnp.asarray(problem.t0, jnp.float64)
    t1 = jnp.asarray(problem.t1, jnp.float64)
    if isinstance(problem, odefit.BVP):
        np.testing.assert_allclose(exact(t0), problem.ya, atol=1e-13)
        np.testing.assert_allclose(exact(t1), problem.yb, atol=1e-12)
    else:
        np.testing.assert_allclose(exact(t0), problem.y0, atol=1e-13)
        if isinstance(problem, odefit.SecondOrderIVP):
            np.testing.assert_allclose(first(t0)[1], problem.dy0, atol=1e-13)


@pytest.mark.parametrize("name", SOLVED)
def test_reference_matches_an_independent_solve(name):
    entry = suite.BY_NAME[name]
    problem = entry.true_problem(jnp.float64)
    ts = jnp.linspace(problem.t0, problem.t1, 201, dtype=jnp.float64)
    reference = entry.reference(ts)
    check = entry.verification(ts)
    assert reference.shape == (201, *problem.state.shape)
    difference = float(jnp.max(jnp.abs(reference - check)) / jnp.max(jnp.abs(check)))
    assert difference <= 1e-8


@pytest.mark.parametrize("name", [p.name for p in suite.PROBLEMS if p.inverse])
def test_inverse_problems_have_unknowns_and_data(name):
    entry = suite.BY_NAME[name]
    problem = entry.build(jnp.float64)
    unknowns = [
        a
        for a in jax.tree.leaves(
            problem.args, is_leaf=lambda x: isinstance(x, odefit.Unknown)
        )
        if isinstance(a, odefit.Unknown)
    ]
    assert len(unknowns) == len(entry.true_args)
    data = entry.observations(jnp.float64)
    assert data.ts.shape == (entry.n_observations,)
    assert bool(jnp.all(jnp.diff(data.ts) > 0))
    assert data.ys.shape == (entry.n_observations, *problem.state.shape)
    assert bool(jnp.all(jnp.isfinite(data.ys)))
    if entry.exact is not None:
        np.testing.assert_allclose(data.ys, jax.vmap(entry.exact)(data.ts))
    # Deterministic: the same times again.
    np.testing.assert_array_equal(entry.observations(jnp.float64).ts, data.ts)


def test_every_problem_builds_in_float32():
    for entry in suite.PROBLEMS:
        problem = entry.build(jnp.float32)
        assert problem.state.dtype == jnp.float32
