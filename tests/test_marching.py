import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

import odefit
from odefit._causal import causal_weights
from odefit._loop import run_chunk as _run_chunk


def _decay(t1=4.0):
    return odefit.IVP(lambda t, y, args: -args * y, 0.0, t1, 1.0, args=0.5)


def _lm_stages(steps=40, points=32):
    return [(odefit.LevenbergMarquardt(points=points), steps)]


# --- PiecewiseSolution and windows -----------------------------------------------


def test_piecewise_solution_picks_the_window():
    solution = odefit.PiecewiseSolution(
        (lambda s: s, lambda s: 10.0 + s, lambda s: 20.0 + s), (0.0, 1.0, 3.0, 4.0)
    )
    ts = jnp.array([0.0, 0.5, 1.0, 2.0, 3.0, 3.5, 4.0])
    expected = [0.0, 0.5, 10.0, 10.5, 20.0, 20.5, 21.0]
    np.testing.assert_allclose(jax.vmap(solution)(ts), expected)
    np.testing.assert_allclose(jax.jit(solution)(2.0), 10.5)
    # d/dt of the second piece is 1 / (window length).
    np.testing.assert_allclose(jax.grad(solution)(2.0), 0.5)
    with pytest.raises(ValueError, match="one more entry than `models`"):
        odefit.PiecewiseSolution((lambda s: s,), (0.0, 1.0, 2.0))


def test_auto_breakpoints_equal_change():
    # y' = -y on [0, 10]: S(t) = 1 - exp(-t), so the breakpoints with equal
    # change are b_k = -log(1 - k S(10) / K).
    problem = odefit.IVP(lambda t, y, args: -y, 0.0, 10.0, 1.0)
    points = odefit.auto_breakpoints(problem, max_change=0.25)
    total = 1.0 - math.exp(-10.0)
    expected = [-math.log(1.0 - k * total / 4) for k in range(5)]
    np.testing.assert_allclose(points, expected, atol=1e-3)
    assert points[0] == 0.0 and points[-1] == 10.0
    assert len(odefit.auto_breakpoints(problem, max_change=10.0)) == 2


@pytest.mark.parametrize(
    "windows, error, match",
    [
        (0, ValueError, "`windows` must be >= 1"),
        ([0.0, 2.0, 1.0, 4.0], ValueError, "breakpoints must increase"),
        ([0.5, 4.0], ValueError, "must run from t0=0.0 to t1=4.0"),
        ([[0.0, 4.0]], ValueError, "1-D sequence of at least two"),
        ("four", TypeError, "must be an integer or a sequence"),
        (True, TypeError, "must be an integer or a sequence"),
    ],
)
def test_bad_windows(windows, error, match, getkey):
    with pytest.raises(error, match=match):
        odefit.fit_marching(
            _decay(), stages=_lm_stages(), windows=windows, key=getkey()
        )


def test_bad_problems_and_arguments(getkey):
    bvp = odefit.BVP(lambda t, y, dy, args: -y, 0.0, 1.0, 0.0, 1.0)
    with pytest.raises(TypeError, match="needs an initial-value problem"):
        odefit.fit_marching(bvp, stages=_lm_stages(), key=getkey())
    inverse = odefit.IVP(
        lambda t, y, args: -args * y, 0.0, 1.0, 1.0, args=odefit.Unknown(1.0)
    )
    with pytest.raises(ValueError, match="holds odefit.Unknown entries"):
        odefit.fit_marching(inverse, stages=_lm_stages(), key=getkey())
    with pytest.raises(TypeError, match="`model` must be a function"):
        odefit.fit_marching(_decay(), stages=_lm_stages(), model=3, key=getkey())
    with pytest.raises(ValueError, match="`max_change` must be"):
        odefit.auto_breakpoints(_decay(), max_change=0.0)


# --- fit_marching ----------------------------------------------------------------


def test_marching_first_order(getkey):
    problem = _decay()
    before = eqx.debug.get_num_traces(_run_chunk)
    result = odefit.fit_marching(
        problem,
        stages=_lm_stages(),
        windows=3,
        width=8,
        key=getkey(),
        progress=False,
    )
    # All windows share one compiled program (posed on [0, 1]).
    assert eqx.debug.get_num_traces(_run_chunk) - before <= 1
    assert result.stop_reason == "completed"
    assert len(result.windows) == 3 and len(result.breakpoints) == 4
    assert result.steps == 3 * 40
    np.testing.assert_array_equal(np.unique(result.history["window"]), [0, 1, 2])
    assert result.history["loss"].shape == (120,)
    ts = jnp.linspace(0.0, 4.0, 401)
    pred = jax.vmap(result.model)(ts)
    assert float(odefit.relative_l2(pred, jnp.exp(-0.5 * ts))) < 1e-6
    # Each window starts exactly where the previous one ended.
    for k in (1, 2):
        b = result.breakpoints[k]
        left = result.model.models[k - 1](jnp.asarray(1.0))
        right = result.model.models[k](jnp.asarray(0.0))
        np.testing.assert_array_equal(left, right)
        np.testing.assert_array_equal(result.model(b), right)


def test_marching_second_order_warm_start(getkey):
    problem = odefit.SecondOrderIVP(
        lambda t, y, dy, args: -y, 0.0, 2 * math.pi, 1.0, 0.0
    )
    result = odefit.fit_marching(
        problem,
        stages=[(optax.adam(1e-2), 100), (odefit.LevenbergMarquardt(points=32), 40)],
        windows=[0.0, 2.0, 2 * math.pi],
        width=8,
        warm_start=True,
        key=getkey(),
        progress=False,
    )
    ts = jnp.linspace(0.0, 2 * math.pi, 401)
    pred = jax.vmap(result.model)(ts)
    assert float(odefit.relative_l2(pred, jnp.cos(ts))) < 3e-4
    assert set(result.history) >= {"stage", "window", "damping"}
    # Value and slope are continuous at the breakpoint.
    t = jnp.asarray(2.0)
    left, dleft = jax.jvp(
        lambda t: result.model.models[0](t / 2.0), (t,), (jnp.ones_like(t),)
    )
    right, dright = jax.jvp(
        lambda t: result.model.models[1]((t - 2.0) / (2 * math.pi - 2.0)),
        (t,),
        (jnp.ones_like(t),),
    )
    np.testing.assert_allclose(left, right, rtol=1e-14)
    np.testing.assert_allclose(dleft, dright, rtol=1e-12)


def test_marching_custom_model_and_plot_compatibility(getkey):
    problem = _decay(2.0)

    def build(window_problem, key):
        assert (window_problem.t0, window_problem.t1) == (0.0, 1.0)
        return odefit.PINN(window_problem, width=4, depth=1, key=key)

    result = odefit.fit_marching(
        problem,
        stages=_lm_stages(20),
        windows=2,
        model=build,
        key=getkey(),
        progress=False,
    )
    assert result.windows[0].model.mlp.width_size == 4
    # The fields plot_fit reads.
    assert result.problem is problem
    assert "loss" in result.history


# --- local error control (tolerance) ---------------------------------------------


def _oscillator(t1=2 * math.pi):
    def field(t, y, args):
        return jnp.stack([y[1], -y[0]])

    return odefit.IVP(field, 0.0, t1, jnp.array([1.0, 0.0]))


def _exact_oscillator(ts):
    return jnp.stack([jnp.cos(ts), -jnp.sin(ts)], axis=-1)


def test_tolerance_splits_windows_until_each_meets_it(getkey):
    # One window of a tiny network over a whole period misses 1e-6 by far;
    # with `tolerance` the windows shrink until every local error meets it.
    problem, tolerance = _oscillator(), 1e-6
    options = dict(stages=_lm_stages(40), width=6, windows=1, progress=False)
    plain = odefit.fit_marching(problem, key=getkey(), **options)
    result = odefit.fit_marching(problem, key=getkey(), tolerance=tolerance, **options)
    ts = jnp.linspace(0.0, 2 * math.pi, 401)
    exact = _exact_oscillator(ts)
    before = float(odefit.relative_l2(jax.vmap(plain.model)(ts), exact))
    after = float(odefit.relative_l2(jax.vmap(result.model)(ts), exact))
    assert before > 100 * tolerance
    assert result.refits >= 1 and len(result.windows) >= 2
    assert len(result.local_errors) == len(result.windows)
    assert max(result.local_errors) <= tolerance
    assert result.breakpoints[-1] == 2 * math.pi
    # Every window is the whole interval halved, or doubled after that, a
    # whole number of times.
    for h in np.diff(result.breakpoints):
        halvings = math.log2(2 * math.pi / h)
        assert (
            abs(halvings - round(halvings)) < 1e-6
            or h == result.breakpoints[-1] - result.breakpoints[-2]
        )
    # The global error follows the local ones (a stable problem: of their order).
    assert after <= 20 * tolerance
    # Only the accepted windows' steps are counted.
    assert result.steps == 40 * len(result.windows)
    assert plain.local_errors == () and plain.refits == 0


def test_tolerance_grows_windows_again_and_keeps_planned_breakpoints(getkey):
    # Decay to 1e-3 of its start: a window well within the tolerance is followed
    # by one twice as long, and no window crosses a planned breakpoint.
    problem = odefit.IVP(lambda t, y, args: -y, 0.0, 7.0, 1.0)
    result = odefit.fit_marching(
        problem,
        stages=_lm_stages(40),
        width=6,
        windows=[0.0, 0.25, 7.0],
        tolerance=1e-6,
        key=getkey(),
        progress=False,
    )
    assert 0.25 in result.breakpoints
    lengths = np.diff(result.breakpoints)
    assert np.any(lengths[1:] > 1.5 * lengths[:-1])
    assert max(result.local_errors) <= 1e-6
    ts = jnp.linspace(0.0, 7.0, 141)
    error = odefit.relative_l2(jax.vmap(result.model)(ts), jnp.exp(-ts))
    assert float(error) <= 1e-5


def test_local_error_measures_the_window_against_a_classical_solve(getkey):
    # A model off by exactly 1e-3 in its first component (scale 1): the local
    # error is 1e-3, measured in the problem's own state scale.
    from odefit._marching import _local_error, _window

    window = _window(_oscillator(), 0.0, 1.0, None)

    def off(s):
        return _exact_oscillator(s) + jnp.array([1e-3, 0.0])

    scale = jnp.array([1.0, 2.0])
    error = _local_error(window, off, scale, 1e-6, stiff=False)
    assert error == pytest.approx(1e-3, rel=1e-4)
    error = _local_error(window, _exact_oscillator, scale, 1e-6, stiff=True)
    assert error < 1e-7


def test_tolerance_on_a_second_order_problem(getkey):
    problem = odefit.SecondOrderIVP(
        lambda t, y, dy, args: -y, 0.0, 2 * math.pi, 1.0, 0.0
    )
    result = odefit.fit_marching(
        problem,
        stages=_lm_stages(40),
        width=6,
        windows=1,
        tolerance=1e-6,
        key=getkey(),
        progress=False,
    )
    assert result.stop_reason == "completed" and result.refits >= 1
    assert max(result.local_errors) <= 1e-6
    ts = jnp.linspace(0.0, 2 * math.pi, 201)
    error = odefit.relative_l2(jax.vmap(result.model)(ts), jnp.cos(ts))
    assert float(error) <= 2e-5


def test_tolerance_out_of_reach_stops_the_march(getkey, monkeypatch):
    monkeypatch.setattr(odefit._marching, "_MAX_HALVINGS", 1)
    result = odefit.fit_marching(
        _oscillator(),
        stages=_lm_stages(5),
        width=4,
        windows=2,
        tolerance=1e-12,
        key=getkey(),
        progress=False,
    )
    assert result.stop_reason.startswith("window 0 [0, 1.5708]: its local error")
    assert "exceeds `tolerance`=1e-12 after 1 halvings" in result.stop_reason
    assert len(result.windows) == 1 and result.refits == 1
    assert result.local_errors[0] > 1e-12 and result.breakpoints == (0.0, math.pi / 2)


def test_tolerance_with_checkpoints_resumes(getkey, tmp_path):
    path = tmp_path / "march"
    options = dict(
        stages=_lm_stages(20),
        width=6,
        windows=1,
        tolerance=1e-5,
        key=getkey(),
        progress=False,
        checkpoint_path=path,
    )
    first = odefit.fit_marching(_oscillator(3.0), **options)
    assert first.refits >= 1
    again = odefit.fit_marching(_oscillator(3.0), **options)
    assert again.breakpoints == first.breakpoints
    ts = jnp.linspace(0.0, 3.0, 31)
    np.testing.assert_array_equal(jax.vmap(again.model)(ts), jax.vmap(first.model)(ts))


@pytest.mark.parametrize("tolerance", [0.0, -1.0, float("nan"), "small"])
def test_bad_tolerance(tolerance, getkey):
    with pytest.raises((ValueError, TypeError), match="`tolerance`"):
        odefit.fit_marching(
            _decay(), stages=_lm_stages(), tolerance=tolerance, key=getkey()
        )


# --- fit_stages ------------------------------------------------------------------


def test_fit_stages_joins_histories(getkey):
    problem = _decay(2.0)
    model = odefit.PINN(problem, width=8, depth=2, key=getkey())
    result = odefit.fit_stages(
        problem,
        model,
        [(optax.adam(1e-2), 50), (odefit.LevenbergMarquardt(points=32), 20)],
        key=getkey(),
        progress=False,
    )
    assert result.steps == 70
    assert result.history["loss"].shape == (70,)
    np.testing.assert_array_equal(result.history["stage"], [0] * 50 + [1] * 20)
    assert np.all(np.isnan(result.history["damping"][:50]))
    assert np.all(np.isfinite(result.history["damping"][50:]))
    # The same as two calls of fit.
    first = odefit.fit(
        problem,
        model,
        steps=50,
        optimizer=optax.adam(1e-2),
        key=jr.fold_in(result.key, 0),
        progress=False,
    )
    np.testing.assert_allclose(result.history["loss"][:50], first.history["loss"])


@pytest.mark.parametrize(
    "stages, error, match",
    [
        ([], ValueError, "at least one"),
        ("adam", TypeError, "must be a sequence"),
        ([(optax.adam(1e-3),)], TypeError, "must be a tuple"),
        ([(optax.adam(1e-3), 0)], ValueError, "needs at least 1"),
        ([(optax.adam(1e-3), 1.5)], ValueError, "as an integer"),
        ([("adam", 10)], TypeError, "optimizer must be"),
        ([(optax.adam(1e-3), 10, "grid")], TypeError, "collocation must be"),
    ],
)
def test_fit_stages_bad_stages(stages, error, match, getkey):
    problem = _decay(2.0)
    model = odefit.PINN(problem, width=4, depth=1, key=getkey())
    with pytest.raises(error, match=match):
        odefit.fit_stages(problem, model, stages, key=getkey())


# --- causal weighting ------------------------------------------------------------


def test_causal_weights_formula():
    # Four points in two groups (by time, whatever their order in the array).
    ts = jnp.array([0.9, 0.1, 0.6, 0.3])
    losses = jnp.array([5.0, 1.0, 7.0, 3.0])
    w = causal_weights(ts, losses, epsilon=0.5, chunks=2)
    # Early group {0.1, 0.3}: mean 2, weight 1. Late group: exp(-0.5 * 2).
    np.testing.assert_allclose(w, [math.exp(-1.0), 1.0, math.exp(-1.0), 1.0])
    assert jax.grad(lambda x: causal_weights(ts, x, 0.5, 2).sum())(losses).sum() == 0


@pytest.mark.parametrize("inner", ["adam", "lm"])
def test_causal_weighting_in_fit(getkey, inner):
    problem = _decay(4.0)
    model = odefit.PINN(problem, width=8, depth=2, key=getkey())
    optimizer = (
        optax.adam(1e-2) if inner == "adam" else odefit.LevenbergMarquardt(points=32)
    )
    result = odefit.fit(
        problem,
        model,
        steps=60,
        optimizer=odefit.CausalWeighting(optimizer, epsilon=10.0, chunks=8),
        key=getkey(),
        progress=False,
    )
    h = result.history
    assert result.stop_reason == "completed"
    assert np.all((h["causal_weight"] > 0) & (h["causal_weight"] <= 1))
    assert np.all(h["weighted_loss"] <= h["loss"] * (1 + 1e-12))
    np.testing.assert_allclose(h["loss"], h["residual"])
    if inner == "lm":
        assert "damping" in h
        # The weights approach one as the residual vanishes.
        assert h["causal_weight"][-1] > 0.99


def test_causal_weighting_bad_arguments():
    with pytest.raises(ValueError, match="`epsilon` must be"):
        odefit.CausalWeighting(optax.adam(1e-3), epsilon=-1.0)
    with pytest.raises(ValueError, match="`chunks` must be"):
        odefit.CausalWeighting(optax.adam(1e-3), chunks=0)
    with pytest.raises(TypeError, match="`optimizer` must be"):
        odefit.CausalWeighting("adam")
    with pytest.raises(TypeError, match="do not nest"):
        odefit.CausalWeighting(odefit.CausalWeighting(optax.adam(1e-3)))
    trainer = odefit.CausalWeighting(optax.adam(1e-3))
    with pytest.raises(TypeError, match="needs the collocation times"):
        trainer.step(lambda p: {"residual": p}, jnp.ones(3), None)


# --- the bar (slow) --------------------------------------------------------------


def _lotka_volterra(t1):
    def field(t, y, args):
        a, b, c, d = args
        return jnp.stack([a * y[0] - b * y[0] * y[1], -c * y[1] + d * y[0] * y[1]])

    return odefit.IVP(field, 0.0, t1, jnp.array([1.0, 1.0]), args=(1.5, 1.0, 3.0, 1.0))


@pytest.mark.slow
def test_bar_lotka_volterra_0_10():
    problem = _lotka_volterra(10.0)
    stages = [
        (optax.adam(optax.exponential_decay(1e-2, 300, 1e-2)), 300),
        (odefit.LevenbergMarquardt(points=128), 100),
    ]
    result = odefit.fit_marching(
        problem, stages=stages, width=20, depth=2, key=jr.key(0), progress=False
    )
    ts = jnp.linspace(0.0, 10.0, 2001)
    error = odefit.relative_l2(jax.vmap(result.model)(ts), problem.solve(ts))
    assert float(error) <= 1e-4


def _marching_bar(problem, reference_points):
    stages = [
        (optax.adam(optax.exponential_decay(1e-2, 300, 1e-2)), 300),
        (odefit.LevenbergMarquardt(points=128), 100),
    ]
    result = odefit.fit_marching(
        problem, stages=stages, width=20, depth=2, key=jr.key(0), progress=False
    )
    ts = jnp.linspace(problem.t0, problem.t1, reference_points)
    return float(odefit.relative_l2(jax.vmap(result.model)(ts), problem.solve(ts)))


@pytest.mark.slow
def test_bar_lotka_volterra_0_30():
    assert _marching_bar(_lotka_volterra(30.0), 3001) <= 1e-3


@pytest.mark.slow
def test_bar_van_der_pol():
    def field(t, y, args):
        return jnp.stack([y[1], (1.0 - y[0] ** 2) * y[1] - y[0]])

    problem = odefit.IVP(field, 0.0, 10.0, jnp.array([2.0, 0.0]))
    assert _marching_bar(problem, 2001) <= 1e-3
