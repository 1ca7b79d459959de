import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

import odefit
from odefit._least_squares import damped_solver, residuals_and_jacobian
from odefit._losses import check_weights, loss_terms
from odefit._residuals import Residuals


def _decay():
    return odefit.IVP(lambda t, y, args: -2.0 * y, 0.0, 2.0, 1.0)


def _oscillator():
    def field(t, y, args):
        return jnp.stack([y[1], -400.0 * y[0] - 4.0 * y[1]])

    return odefit.IVP(field, 0.0, 1.0, jnp.array([1.0, 0.0]))


def _lotka_volterra(t1):
    def field(t, y, args):
        a, b, c, d = args
        return jnp.stack([a * y[0] - b * y[0] * y[1], -c * y[1] + d * y[0] * y[1]])

    return odefit.IVP(field, 0.0, t1, jnp.array([1.0, 1.0]), args=(1.5, 1.0, 3.0, 1.0))


def _error(result, problem, n=1001):
    ts = jnp.linspace(problem.t0, problem.t1, n)
    return float(odefit.relative_l2(jax.vmap(result.model)(ts), problem.solve(ts)))


def _structured(problem, model, ts, observations=None):
    params, static = eqx.partition(model, model.trainable())
    weights = check_weights({"conditions": 3.0, "data": 2.0})

    def fn(p, ts):
        return loss_terms(
            eqx.combine(p, static),
            problem,
            ts,
            observations=observations,
            weights=weights,
        )

    return Residuals(fn, ts), params


@pytest.mark.parametrize("second_order", [False, True])
def test_pointwise_jacobian_matches_forward_mode(getkey, second_order):
    # Soft constraints and data add terms that are not pointwise, so all three
    # Jacobian paths (per point, forward, reverse) are exercised.
    if second_order:
        problem = odefit.SecondOrderIVP(
            lambda t, y, dy, args: -jnp.sin(y) - 0.1 * dy, 0.0, 3.0, 1.0, 0.0
        )
    else:
        problem = _oscillator()
    model = odefit.PINN(problem, width=6, depth=2, hard_constraints=False, key=getkey())
    ts = jr.uniform(getkey(), (7,), minval=0.0, maxval=problem.t1)
    obs_ts = jnp.linspace(0.0, problem.t1, 4)
    data = odefit.Observations(obs_ts, jnp.zeros((4, *problem.state.shape)))
    residuals, params = _structured(problem, model, ts, data)
    if second_order:
        fn = residuals
    else:
        fn = residuals.reweight(jr.uniform(getkey(), ts.shape))
    terms, r, jac, unravel = eqx.filter_jit(residuals_and_jacobian)(fn, params)
    assert set(terms) == {"residual", "conditions", "data"}
    flat, _ = jax.flatten_util.ravel_pytree(params)

    def stacked(x):
        return jnp.concatenate(list(fn(unravel(x)).values()))

    np.testing.assert_allclose(r, stacked(flat), rtol=1e-13, atol=1e-13)
    expected = jax.jit(jax.jacfwd(stacked))(flat)
    np.testing.assert_allclose(jac, expected, rtol=1e-10, atol=1e-12)


def test_plain_function_jacobian_both_modes():
    def wide(p):  # 2 residuals, 3 parameters: reverse mode
        return {"a": jnp.stack([p["x"] ** 2 + p["y"][0], p["y"][1] * p["x"]])}

    def tall(p):  # 4 residuals, 3 parameters: forward mode
        return {"a": jnp.stack([p["x"], p["y"][0], p["y"][1] ** 2, p["x"] * p["y"][0]])}

    params = {"x": jnp.asarray(0.5), "y": jnp.array([1.5, -2.0]), "frozen": None}
    for fn in (wide, tall):
        _, r, jac, unravel = residuals_and_jacobian(fn, params)
        flat, _ = jax.flatten_util.ravel_pytree(params)
        expected = jax.jacrev(lambda x, fn=fn, u=unravel: fn(u(x))["a"])(flat)
        np.testing.assert_allclose(jac, expected, rtol=1e-14)


@pytest.mark.parametrize("shape", [(5, 9), (9, 5)])
@pytest.mark.parametrize("scaled", [False, True])
def test_damped_solver_both_dual_forms(getkey, shape, scaled):
    jac = jr.normal(getkey(), shape)
    v = jr.normal(getkey(), shape[:1])
    damping = jnp.asarray(0.3)
    diagonal = (
        jr.uniform(getkey(), shape[1:], minval=0.5, maxval=2.0) if scaled else None
    )
    delta = damped_solver(jac, damping, diagonal)(v)
    d = jnp.ones(shape[1]) if diagonal is None else diagonal
    expected = -jnp.linalg.solve(jac.T @ jac + damping * jnp.diag(d), jac.T @ v)
    np.testing.assert_allclose(delta, expected, rtol=1e-10, atol=1e-12)


def test_levenberg_marquardt_plain_rosenbrock():
    # The classical Rosenbrock valley as a least-squares problem, on a plain
    # residual function (no collocation structure): the trainer works on any
    # PyTree of parameters, None leaves included.
    def residuals(p):
        x, y = p["xy"]
        return {"a": jnp.stack([10.0 * (y - x**2), 1.0 - x])}

    trainer = odefit.LevenbergMarquardt()
    params = {"xy": jnp.array([-1.2, 1.0]), "frozen": None}
    state = trainer.init(residuals, params)
    step = jax.jit(lambda p, s: trainer.step(residuals, p, s))
    losses = []
    for _ in range(60):
        new, state, stats = step(params, state)
        if stats["accepted"] == 0:
            # A rejected step keeps the parameters.
            np.testing.assert_array_equal(new["xy"], params["xy"])
        params = new
        losses.append(float(stats["loss"]))
    assert np.all(np.diff(losses) <= 0)
    np.testing.assert_allclose(params["xy"], [1.0, 1.0], atol=1e-8)


def test_levenberg_marquardt_rejects_and_grows_damping():
    # From a tiny damping, the full Gauss–Newton step on a strongly nonlinear
    # residual overshoots: it must be rejected and the damping raised.
    def residuals(p):
        return {"a": jnp.sin(10.0 * p) - 0.5}

    trainer = odefit.LevenbergMarquardt(1e-12, geodesic=False, min_damping=1e-15)
    params = jnp.array([0.14])
    state = trainer.init(residuals, params)
    new, new_state, stats = trainer.step(residuals, params, state)
    assert float(stats["accepted"]) == 0.0
    np.testing.assert_array_equal(new, params)
    assert float(new_state["damping"]) > float(state["damping"])


@pytest.mark.parametrize("geodesic", [False, True])
def test_levenberg_marquardt_fits_decay(getkey, geodesic):
    problem = _decay()
    model = odefit.PINN(problem, width=8, depth=2, key=getkey())
    result = odefit.fit(
        problem,
        model,
        steps=60,
        optimizer=odefit.LevenbergMarquardt(points=32, geodesic=geodesic),
        key=getkey(),
        progress=False,
    )
    assert result.stop_reason == "completed"
    assert set(result.history) >= {"loss", "residual", "damping", "accepted"}
    accepted = result.history["accepted"] > 0
    # The loss never increases: rejected steps keep the parameters.
    assert np.all(np.diff(result.history["loss"]) <= 1e-15)
    assert accepted.sum() > 30
    assert _error(result, problem) < 1e-5


def test_gauss_newton_fits_decay(getkey):
    problem = _decay()
    model = odefit.PINN(problem, width=8, depth=2, key=getkey())
    result = odefit.fit(
        problem,
        model,
        steps=40,
        optimizer=odefit.GaussNewton(points=32),
        key=getkey(),
        progress=False,
    )
    assert result.stop_reason == "completed"
    assert "step_size" in result.history
    assert np.all(np.diff(result.history["loss"]) <= 1e-15)
    assert _error(result, problem) < 1e-4


def test_least_squares_with_unknowns_and_observations(getkey):
    # An inverse problem: the decay rate is learned jointly with the network.
    true = odefit.IVP(lambda t, y, args: -args * y, 0.0, 1.0, 1.0, args=1.3)
    ts = jnp.linspace(0.0, 1.0, 12)
    data = odefit.Observations(ts, true.solve(ts))
    problem = odefit.IVP(
        lambda t, y, args: -args * y,
        0.0,
        1.0,
        1.0,
        args=odefit.Unknown(0.5, positive=True),
    )
    model = odefit.PINN(problem, width=8, depth=2, key=getkey())
    result = odefit.fit(
        problem,
        model,
        steps=60,
        optimizer=odefit.LevenbergMarquardt(points=32),
        observations=data,
        key=getkey(),
        progress=False,
    )
    assert abs(float(result.args) - 1.3) < 1e-4


def test_float32_under_strict_promotion(getkey):
    problem = odefit.IVP(
        lambda t, y, args: -2.0 * y, 0.0, 2.0, jnp.asarray(1.0, jnp.float32)
    )
    model = odefit.PINN(problem, width=8, depth=2, key=getkey())
    for trainer in (
        odefit.LevenbergMarquardt(points=32),
        odefit.GaussNewton(points=32),
    ):
        result = odefit.fit(
            problem, model, steps=20, optimizer=trainer, key=getkey(), progress=False
        )
        assert result.history["loss"].dtype == np.float32
        assert _error(result, problem) < 1e-2


def test_step_traces_once(getkey):
    problem = _decay()
    model = odefit.PINN(problem, width=4, depth=1, key=getkey())
    params, static = eqx.partition(model, model.trainable())
    weights = check_weights(None)
    ts = jnp.linspace(0.0, 2.0, 8)

    def fn(p, ts):
        return loss_terms(eqx.combine(p, static), problem, ts, weights=weights)

    trainer = odefit.LevenbergMarquardt()

    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def step(p, s, ts):
        return trainer.step(Residuals(fn, ts), p, s)

    state = trainer.init(Residuals(fn, ts), params)
    for _ in range(3):
        params, state, _ = step(params, state, ts)


def test_adam_then_levenberg_marquardt_beats_adam(getkey):
    problem = _decay()
    model = odefit.PINN(problem, width=8, depth=2, key=getkey())
    warm = odefit.fit(
        problem,
        model,
        steps=300,
        optimizer=optax.adam(1e-2),
        key=getkey(),
        progress=False,
    )
    polished = odefit.fit(
        problem,
        warm.model,
        steps=30,
        optimizer=odefit.LevenbergMarquardt(points=32),
        key=getkey(),
        progress=False,
    )
    assert _error(polished, problem) < 1e-2 * _error(warm, problem)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"damping": 0.0}, "`damping` must be a finite number > 0"),
        ({"damping": 1e20}, "`damping` must lie in"),
        ({"accept": 1.0}, "`accept` must be in"),
        ({"points": 0}, "`points` must be an integer >= 1"),
        ({"geodesic_ratio": -1.0}, "`geodesic_ratio` must be"),
    ],
)
def test_levenberg_marquardt_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        odefit.LevenbergMarquardt(**kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"regularisation": -1.0}, "`regularisation` must be"),
        ({"line_search": 0}, "`line_search` must be an integer >= 1"),
        ({"armijo": 2.0}, "`armijo` must be in"),
    ],
)
def test_gauss_newton_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        odefit.GaussNewton(**kwargs)


def _adam_then_lm(problem, *, width, depth, adam, lm, points, key):
    k1, k2, k3 = jr.split(key, 3)
    model = odefit.PINN(problem, width=width, depth=depth, key=k1)
    warm = odefit.fit(problem, model, steps=adam, key=k2, progress=False)
    return odefit.fit(
        problem,
        warm.model,
        steps=lm,
        optimizer=odefit.LevenbergMarquardt(points=points),
        key=k3,
        progress=False,
    )


@pytest.mark.slow
def test_bar_decay_float64():
    problem = _decay()
    result = _adam_then_lm(
        problem, width=16, depth=2, adam=500, lm=200, points=128, key=jr.key(0)
    )
    assert _error(result, problem) <= 1e-6


@pytest.mark.slow
def test_bar_oscillator_float64():
    problem = _oscillator()
    result = _adam_then_lm(
        problem, width=16, depth=2, adam=500, lm=400, points=256, key=jr.key(0)
    )
    assert _error(result, problem) <= 1e-6
