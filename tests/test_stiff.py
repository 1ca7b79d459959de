"""Stiff problems: trustworthy references, scales that survive stiffness, windows
sized to the local time scale, residuals in relaxation units, and conservation laws
built into the ansatz."""

import importlib.util
import sys
from pathlib import Path

import diffrax as dfx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import odefit

# --- the problems (shared with benchmarks/stiff.py) ---------------------------------


def _load_problems():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "stiff_problems.py"
    if "stiff_problems" not in sys.modules:
        spec = importlib.util.spec_from_file_location("stiff_problems", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["stiff_problems"] = module
        spec.loader.exec_module(module)
    return sys.modules["stiff_problems"]


_stiff = _load_problems()
robertson, van_der_pol = _stiff.robertson, _stiff.van_der_pol
_robertson, _van_der_pol = _stiff.robertson_problem, _stiff.van_der_pol_problem
_hires, _log_times = _stiff.hires_problem, _stiff.log_times


# --- references --------------------------------------------------------------------


def _radau(problem, ts):
    """A second method: SciPy's Radau IIA (order 5) at tolerances far below the
    reference's."""
    from scipy.integrate import solve_ivp

    args = problem.args

    def f(t, y):
        return np.asarray(problem.vector_field(t, jnp.asarray(y), args))

    def jac(t, y):
        return np.asarray(
            jax.jacfwd(lambda y: problem.vector_field(t, y, args))(jnp.asarray(y))
        )

    sol = solve_ivp(
        f,
        (problem.t0, float(ts[-1])),
        np.asarray(problem.y0),
        method="Radau",
        t_eval=np.asarray(ts),
        rtol=1e-13,
        atol=1e-20,
        jac=jac,
    )
    assert sol.status == 0, sol.message
    return sol.y.T


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["robertson", "van_der_pol_100", "van_der_pol_1000", "hires"]
)
def test_reference_agrees_with_a_second_method(name):
    """The default `solve` (Tsit5 runs out of steps, Kvaerno5 takes over with a
    per-component atol) agrees with Radau IIA at 1e-13 to 1e-8 per component."""
    problem, ts = _stiff.problems()[name]
    reference = problem.solve(ts)
    second = _radau(problem, ts)
    # Van der Pol mu = 1000: the default reference's y2 (peaks of ~1e3 in jumps of
    # width ~1e-3) measured 1.015e-8 from Radau; the other problems are within
    # 1e-8.
    bound = 2e-8 if name == "van_der_pol_1000" else 1e-8
    for i in range(reference.shape[1]):
        error = odefit.relative_l2(reference[:, i], jnp.asarray(second[:, i]))
        assert error <= bound, (i, float(error))


@pytest.mark.slow
def test_solve_falls_back_to_an_implicit_solver():
    """Tsit5 cannot finish Robertson on [0, 1e3] in the step budget; the default
    solve then switches to Kvaerno5 and matches an explicit Kvaerno5 solve."""
    problem = _robertson(1e3)
    ts = _log_times(1e3, 1e-4, 50)
    auto = problem.solve(ts)
    tight = problem.solve(ts, solver=dfx.Kvaerno5(), rtol=1e-12, atol=1e-17)
    np.testing.assert_allclose(auto, tight, rtol=1e-7, atol=1e-14)
    with pytest.raises(RuntimeError, match="Kvaerno5"):
        problem.solve(ts, solver=dfx.Tsit5(), max_steps=20_000)


# --- scales ------------------------------------------------------------------------


def test_characteristic_scale_survives_stiffness():
    """Coarse RK4 is unstable on Robertson; the scale falls back to an implicit
    solve and finds the peaks (y2 peaks at 3.65e-5)."""
    problem = _robertson()
    np.testing.assert_allclose(
        problem.characteristic_scale(), [1.0, 3.6487e-5, 0.982], rtol=1e-3
    )
    # A non-stiff problem keeps the cheap RK4 estimate.
    decay = odefit.IVP(lambda t, y, args: -y, 0.0, 1.0, jnp.array([2.0, 3.0]))
    np.testing.assert_allclose(decay.characteristic_scale(), [2.0, 3.0])


def test_stiff_pinn_scales_and_units(getkey):
    problem = _robertson()
    model = odefit.PINN(problem, width=8, depth=1, stiff=True, key=getkey())
    # The peaks of the reference (Kvaerno5 at 1e-12): y1(0), max y2, y3(1e5).
    np.testing.assert_allclose(model.scale, [1.0, 3.6487e-5, 0.98213], rtol=1e-3)
    # The residual of y2 is measured in its relaxation time (~1e4 per unit time at
    # late times, over an interval of 1e5), y3 (no self-coupling) in the scale.
    units = model.residual_scale() / model.scale
    assert units[1] > 1e8
    assert units[2] == 1.0
    plain = odefit.PINN(problem, width=8, depth=1, key=getkey())
    np.testing.assert_array_equal(plain.residual_scale(), plain.scale)


def test_stiff_scale_keeps_tiny_species(getkey):
    """A window late in Robertson's run, where y2 ~ 1e-7: the plain rule treats it
    as negligible (scale 1), `stiff=True` keeps it."""
    y0 = _robertson().solve(jnp.array([0.0, 1e4]), solver=dfx.Kvaerno5())[-1]
    problem = odefit.IVP(robertson, 1e4, 1e5, y0)
    stiff = odefit.PINN(problem, width=8, depth=1, stiff=True, key=getkey())
    assert 1e-8 < stiff.scale[1] < 1e-6
    with pytest.raises(TypeError, match="`stiff`"):
        odefit.PINN(problem, width=8, depth=1, stiff="yes", key=getkey())


# --- windows -----------------------------------------------------------------------


def test_stiff_breakpoints_grow_geometrically():
    problem = _robertson()
    points = np.asarray(odefit.auto_breakpoints(problem, stiff=True))
    assert points[0] == 0.0 and points[-1] == 1e5
    assert 10 <= points.size - 1 <= 60
    # Past the transient each window is a fixed factor longer than where it starts.
    late = points[points > 1e-2]
    ratios = late[1:] / late[:-1]
    assert np.all(ratios > 1.5) and np.all(ratios < 20.0)
    # The first window resolves the fast transient (y2 settles by ~1e-3).
    assert points[1] < 1e-4
    with pytest.raises(TypeError, match="first-order"):
        pendulum = odefit.SecondOrderIVP(lambda t, y, dy, args: -y, 0.0, 1.0, 1.0, 0.0)
        odefit.auto_breakpoints(pendulum, stiff=True)


# --- conservation laws -------------------------------------------------------------


def test_conserved_laws_hold_exactly(getkey):
    problem = _robertson()
    model = odefit.PINN(problem, width=8, depth=2, conserved=[[1, 1, 1]], key=getkey())
    ts = _log_times(1e5, 1e-6, 50)
    np.testing.assert_allclose(jnp.sum(model.predict(ts), axis=1), 1.0, atol=1e-14)
    # Two laws of HIRES-like structure: y7 + y8 constant.
    hires_problem = _hires()
    model = odefit.PINN(
        hires_problem,
        width=8,
        depth=1,
        conserved=[0, 0, 0, 0, 0, 0, 1, 1],
        key=getkey(),
    )
    ys = model.predict(jnp.linspace(0.0, 321.8122, 7))
    np.testing.assert_allclose(ys[:, 6] + ys[:, 7], 0.0057, atol=1e-15)
    # Not trained: the projector is not a trainable leaf.
    assert not model.trainable().projector


def test_conserved_errors(getkey):
    problem = _robertson()
    with pytest.raises(ValueError, match="does not hold"):
        odefit.PINN(problem, width=8, depth=1, conserved=[[1, 0, 0]], key=getkey())
    with pytest.raises(ValueError, match=r"shape \(laws, 3\)"):
        odefit.PINN(problem, width=8, depth=1, conserved=[[1, 1]], key=getkey())
    with pytest.raises(ValueError, match="linearly independent"):
        odefit.PINN(
            problem, width=8, depth=1, conserved=[[1, 1, 1], [2, 2, 2]], key=getkey()
        )
    with pytest.raises(ValueError, match="hard_constraints=True"):
        odefit.PINN(
            problem,
            width=8,
            depth=1,
            conserved=[[1, 1, 1]],
            hard_constraints=False,
            key=getkey(),
        )
    pendulum = odefit.SecondOrderIVP(lambda t, y, dy, args: -y, 0.0, 1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="first-order"):
        odefit.PINN(pendulum, width=8, depth=1, conserved=[1.0], key=getkey())


# --- fits --------------------------------------------------------------------------


def _stages(adam=300, lm=100, points=128):
    schedule = optax.exponential_decay(1e-2, adam, 1e-2)
    return [
        (optax.adam(schedule), adam),
        (odefit.LevenbergMarquardt(points=points), lm),
    ]


def test_stiff_marching_short_robertson():
    """Robertson on [0, 1] (the fast transient and its slow manifold), marched
    with `stiff=True`: a few windows and steps reach 1e-3 per species."""
    problem = _robertson(1.0)
    result = odefit.fit_marching(
        problem,
        stages=_stages(adam=100, lm=30, points=48),
        stiff=True,
        max_change=2.0,
        width=8,
        key=jax.random.key(0),
        progress=False,
    )
    ts = _log_times(1.0, 1e-6, 200)
    reference = problem.solve(ts)
    pred = jax.vmap(result.model)(ts)
    for i in range(3):
        assert odefit.relative_l2(pred[:, i], reference[:, i]) < 1e-3, i


@pytest.mark.slow
def test_stiff_marching_robertson_full_interval():
    """The headline: Robertson on [0, 1e5], no reduction, no data, 1e-3 per
    species on 1000 log-spaced times."""
    problem = _robertson()
    options = dict(stages=_stages(), stiff=True, width=16, progress=False)
    ts = _log_times(1e5, 1e-6)
    reference = problem.solve(ts)
    planned = odefit.fit_marching(problem, key=jax.random.key(0), **options)
    assert planned.stop_reason == "completed"
    pred = jax.vmap(planned.model)(ts)
    for i in range(3):
        assert odefit.relative_l2(pred[:, i], reference[:, i]) < 1e-3, i
    # With local error control, far below the bar.
    checked = odefit.fit_marching(
        problem, key=jax.random.key(0), tolerance=1e-7, **options
    )
    assert checked.stop_reason == "completed"
    assert max(checked.local_errors) <= 1e-7
    pred = jax.vmap(checked.model)(ts)
    for i in range(3):
        assert odefit.relative_l2(pred[:, i], reference[:, i]) < 1e-6, i


@pytest.mark.slow
@pytest.mark.parametrize("name", ["van_der_pol_100", "van_der_pol_1000", "hires"])
def test_stiff_marching_with_local_error_control(name):
    """Relaxation oscillations and HIRES: 1e-3 per component, no data, with
    `tolerance` (without it Van der Pol drifts off its jumps)."""
    problem, ts = _stiff.problems()[name]
    result = odefit.fit_marching(
        problem,
        stages=_stages(),
        stiff=True,
        tolerance=1e-7,
        width=16,
        key=jax.random.key(0),
        progress=False,
    )
    assert result.stop_reason == "completed"
    assert max(result.local_errors) <= 1e-7
    assert len(result.local_errors) == len(result.windows)
    reference = problem.solve(ts)
    pred = jax.vmap(result.model)(ts)
    for i in range(reference.shape[1]):
        assert odefit.relative_l2(pred[:, i], reference[:, i]) < 1e-3, i


def test_stiff_window_scales_keep_species_near_their_own_size():
    """In HIRES's first instants most products are still ~0: each window scale
    is the component's peak in the window, floored at 1e-6 of its peak over the
    whole problem (not 1e-17, nor a fallback of 1)."""
    from odefit._marching import _window, _window_scale
    from odefit._problems import _implicit_peak, stiff_scale

    problem = _stiff.hires_problem()
    whole = stiff_scale(problem)
    window = _window(problem, 0.0, 1e-6, None)
    scale = _window_scale(window, whole)
    peak = _implicit_peak(window.vector_field, 0.0, 1.0, window.y0, window.args)
    np.testing.assert_allclose(scale, jnp.maximum(peak, 1e-6 * whole), rtol=1e-12)
    assert bool(jnp.all(scale >= 1e-6 * whole))
    assert bool(jnp.all(scale <= jnp.maximum(whole, 1e-6)))
    # y1 (of size 1) keeps its window peak; y7 (~1e-25 there) is floored.
    assert float(scale[0]) == pytest.approx(1.0, rel=1e-5)
    assert float(scale[6]) == pytest.approx(1e-6 * float(whole[6]), rel=1e-12)


@pytest.mark.slow
def test_fit_to_tolerance_marches_stiff_problems():
    """`fit_to_tolerance` recognises a stiff problem (coarse RK4 unstable) and
    marches it with `stiff=True` first."""
    problem = _robertson(1.0)
    result = odefit.fit_to_tolerance(
        problem, tol=1e-3, key=jax.random.key(0), time_budget=300, progress=False
    )
    assert result.choices[0]["attempt"] == "marching"
    assert result.choices[0]["stiff"] is True
    ts = _log_times(1.0, 1e-6, 200)
    reference = problem.solve(ts)
    pred = jax.vmap(result.model)(ts)
    for i in range(3):
        assert odefit.relative_l2(pred[:, i], reference[:, i]) < 1e-3, i


def test_is_stiff():
    from odefit._problems import is_stiff

    assert is_stiff(_robertson())
    decay = odefit.IVP(lambda t, y, args: -y, 0.0, 1.0, 1.0)
    assert not is_stiff(decay)
