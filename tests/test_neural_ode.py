import diffrax as dfx
import equinox as eqx
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import odefit


def _decay(t, y, args):
    return -args * y


def _lotka_volterra(t, y, args):
    a, b, c, d = args
    x, z = y
    return jnp.stack([a * x - b * x * z, -c * z + d * x * z])


@pytest.fixture
def decay():
    return odefit.IVP(_decay, t0=0.0, t1=2.0, y0=jnp.array([1.0]), args=1.0)


@pytest.fixture
def lotka_volterra():
    return odefit.IVP(
        _lotka_volterra,
        t0=0.0,
        t1=3.0,
        y0=jnp.array([1.0, 1.0]),
        args=(1.5, 1.0, 3.0, 1.0),
    )


def _tight():
    return dfx.PIDController(rtol=1e-10, atol=1e-12)


def test_predict_integrates_the_network_field(lotka_volterra, getkey):
    model = odefit.NeuralODE(
        lotka_volterra,
        width=16,
        depth=2,
        stepsize_controller=_tight(),
        key=getkey(),
    )
    ts = jnp.linspace(0.0, 4.5, 31)  # past t1 = 3: extrapolation
    pred = model.predict(ts)
    assert pred.shape == (31, 2) and pred.dtype == jnp.float64
    np.testing.assert_array_equal(pred[0], lotka_volterra.y0)
    # An independent reference: odefit's own IVP on the learned vector field.
    reference = odefit.IVP(
        lambda t, y, args: model.vector_field(t, y),
        t0=0.0,
        t1=4.5,
        y0=lotka_volterra.y0,
    ).solve(ts)
    np.testing.assert_allclose(pred, reference, rtol=1e-8, atol=1e-9)
    # One time at a time gives the same numbers.
    for i in (0, 7, 30):
        np.testing.assert_allclose(model(ts[i]), pred[i], rtol=1e-8, atol=1e-9)


def test_field_is_scaled(lotka_volterra, getkey):
    scale = jnp.array([7.0, 5.0])
    model = odefit.NeuralODE(
        lotka_volterra, width=8, depth=1, scale=scale, key=getkey()
    )
    np.testing.assert_array_equal(model.scale, scale)
    y = jnp.array([2.0, 3.0])
    mlp_out = model.field.mlp(y / scale)
    np.testing.assert_allclose(
        model.vector_field(0.0, y), mlp_out * scale / 3.0, rtol=1e-14
    )


@pytest.mark.slow
def test_non_autonomous_field_sees_time(decay, getkey):
    model = odefit.NeuralODE(decay, width=8, depth=1, autonomous=False, key=getkey())
    assert model.field.mlp.in_size == 2
    y = jnp.array([0.5])
    assert not np.allclose(model.vector_field(0.0, y), model.vector_field(2.0, y))
    assert model.predict(jnp.linspace(0.0, 2.0, 5)).shape == (5, 1)


@pytest.mark.slow
def test_several_trajectories(lotka_volterra, getkey):
    """`initial_states`: trajectories side by side, each integrated with the same
    learned field, equal to integrating each on its own."""
    y0s = jnp.array([[1.0, 1.0], [2.0, 1.5], [0.5, 2.0]])
    model = odefit.NeuralODE(
        lotka_volterra,
        width=8,
        depth=1,
        initial_states=y0s,
        stepsize_controller=_tight(),
        key=getkey(),
    )
    ts = jnp.linspace(0.0, 3.0, 7)
    pred = model.predict(ts)
    assert pred.shape == (7, 3, 2)
    np.testing.assert_array_equal(pred[0], y0s)
    # The field acts row by row.
    rows = jax.vmap(lambda y: model.vector_field(0.0, y))(y0s)
    np.testing.assert_allclose(model.vector_field(0.0, y0s), rows, rtol=1e-14)
    single = odefit.NeuralODE(
        lotka_volterra,
        width=8,
        depth=1,
        initial_states=y0s[1:2],
        stepsize_controller=_tight(),
        key=getkey(),
    )
    single = eqx.tree_at(lambda m: m.field, single, model.field)
    np.testing.assert_allclose(single.predict(ts)[:, 0], pred[:, 1], rtol=1e-8)
    with pytest.raises(ValueError, match=r"`initial_states` must have one row"):
        odefit.NeuralODE(lotka_volterra, initial_states=jnp.ones(2), key=getkey())
    with pytest.raises(ValueError, match=r"`initial_states` must have one row"):
        odefit.NeuralODE(lotka_volterra, initial_states=jnp.ones((2, 3)), key=getkey())


@pytest.mark.slow
def test_predict_under_jit(decay, getkey):
    model = odefit.NeuralODE(decay, width=8, depth=1, key=getkey())
    ts = jnp.linspace(0.0, 3.0, 7)
    np.testing.assert_allclose(
        eqx.filter_jit(lambda m, ts: m.predict(ts))(model, ts),
        model.predict(ts),
        rtol=1e-13,
    )


def _loss(model, ts, ys):
    return jnp.mean((model.predict(ts) - ys) ** 2)


@pytest.mark.parametrize(
    "adjoint",
    [
        pytest.param(dfx.DirectAdjoint(), marks=pytest.mark.slow),
        pytest.param(dfx.BacksolveAdjoint(), marks=pytest.mark.slow),
    ],
)
def test_gradients_agree_across_adjoints(adjoint, lotka_volterra, getkey):
    """Gradients of a data loss through the solve: every adjoint agrees with the
    default (discretise-then-optimise) one. The direct adjoint differentiates the
    same discrete solve; backsolve integrates the continuous adjoint ODE, so it
    agrees to the solver's tolerance."""
    model = odefit.NeuralODE(
        lotka_volterra, width=16, depth=2, stepsize_controller=_tight(), key=getkey()
    )
    other = eqx.tree_at(lambda m: m.adjoint, model, adjoint)
    ts = jnp.linspace(0.0, 3.0, 13)
    ys = lotka_volterra.solve(ts)
    grad = eqx.filter_jit(eqx.filter_grad(_loss))
    g_ref = eqx.filter(grad(model, ts, ys), model.trainable())
    g_other = eqx.filter(grad(other, ts, ys), other.trainable())
    tol = 1e-6 if isinstance(adjoint, dfx.BacksolveAdjoint) else 1e-9
    leaves_ref = jax.tree.leaves(g_ref)
    leaves_other = jax.tree.leaves(g_other)
    assert len(leaves_ref) == len(leaves_other) == 6
    for a, b in zip(leaves_ref, leaves_other, strict=True):
        np.testing.assert_allclose(b, a, rtol=tol, atol=tol * np.max(np.abs(a)))


def test_forward_mode_agrees_with_reverse(lotka_volterra, getkey):
    """`diffrax.ForwardMode()` gives directional derivatives (no reverse pass): they
    equal the reverse-mode gradient's projections."""
    model = odefit.NeuralODE(
        lotka_volterra, width=16, depth=2, stepsize_controller=_tight(), key=getkey()
    )
    forward = eqx.tree_at(lambda m: m.adjoint, model, dfx.ForwardMode())
    ts = jnp.linspace(0.0, 3.0, 13)
    ys = lotka_volterra.solve(ts)

    def flat_loss(m):
        params, static = eqx.partition(m, m.trainable())
        flat, unravel = jax.flatten_util.ravel_pytree(params)
        return flat, lambda x: _loss(eqx.combine(unravel(x), static), ts, ys)

    flat, loss = flat_loss(model)
    grad = jax.jit(jax.grad(loss))(flat)
    flat_forward, loss_forward = flat_loss(forward)
    np.testing.assert_array_equal(flat_forward, flat)

    @jax.jit
    def directional(direction):
        return jax.jvp(loss_forward, (flat,), (direction,))[1]

    for _ in range(3):
        direction = jax.random.normal(getkey(), flat.shape, flat.dtype)
        np.testing.assert_allclose(
            directional(direction), jnp.dot(grad, direction), rtol=1e-9
        )


@pytest.mark.slow
def test_gradient_matches_finite_differences(lotka_volterra, getkey):
    model = odefit.NeuralODE(
        lotka_volterra, width=8, depth=1, stepsize_controller=_tight(), key=getkey()
    )
    ts = jnp.linspace(0.0, 3.0, 9)
    ys = lotka_volterra.solve(ts)
    params, static = eqx.partition(model, model.trainable())
    flat, unravel = jax.flatten_util.ravel_pytree(params)

    def f(x):
        return _loss(eqx.combine(unravel(x), static), ts, ys)

    grad = jax.jit(jax.grad(f))(flat)
    for _ in range(4):
        direction = jax.random.normal(getkey(), flat.shape, flat.dtype)
        h = 1e-5
        fd = (f(flat + h * direction) - f(flat - h * direction)) / (2 * h)
        np.testing.assert_allclose(jnp.dot(grad, direction), fd, rtol=1e-6)


@pytest.mark.slow
def test_fit_learns_decay_and_extrapolates(decay, getkey):
    ts = jnp.linspace(0.0, 2.0, 21)
    data = odefit.Observations(ts, decay.solve(ts))
    model = odefit.NeuralODE(decay, width=16, depth=2, key=getkey())
    result = odefit.fit(
        decay,
        model,
        steps=300,
        optimizer=optax.lbfgs(),
        observations=data,
        key=getkey(),
        progress=False,
    )
    assert result.stop_reason == "completed"
    assert set(result.history) >= {"loss", "data"}
    assert "residual" not in result.history
    assert result.history["loss"][-1] < 1e-3 * result.history["loss"][0]
    fit_error = odefit.relative_l2(result.model.predict(ts), decay.solve(ts))
    assert fit_error < 1e-3
    # Past the data: t in [2, 3].
    later = jnp.linspace(2.0, 3.0, 11)
    extrapolated = result.model.predict(jnp.concatenate([jnp.zeros(1), later]))[1:]
    assert odefit.relative_l2(extrapolated, jnp.exp(-later)[:, None]) < 2e-2


def test_fit_with_adam_decreases_the_loss(lotka_volterra, getkey):
    ts = jnp.linspace(0.0, 1.0, 11)
    data = odefit.Observations(ts, lotka_volterra.solve(ts))
    model = odefit.NeuralODE(lotka_volterra, width=8, depth=1, key=getkey())
    result = odefit.fit(
        lotka_volterra,
        model,
        steps=100,
        optimizer=optax.adam(1e-2),
        observations=data,
        key=getkey(),
        progress=False,
        chunk_size=100,  # one compiled chunk: compiles fastest
    )
    loss = result.history["loss"]
    assert loss.shape == (100,)
    assert loss[-1] < 0.25 * loss[0]


@pytest.mark.slow
def test_float32(getkey):
    problem = odefit.IVP(
        _decay, t0=0.0, t1=1.0, y0=jnp.array([1.0], jnp.float32), args=1.0
    )
    model = odefit.NeuralODE(problem, width=8, depth=1, key=getkey())
    pred = model.predict(jnp.linspace(0.0, 1.0, 5, dtype=jnp.float32))
    assert pred.dtype == jnp.float32


def test_failed_integration_gives_inf(decay, getkey):
    model = odefit.NeuralODE(decay, width=8, depth=1, max_steps=2, key=getkey())
    pred = model.predict(jnp.linspace(0.0, 50.0, 5))
    np.testing.assert_array_equal(pred[0], decay.y0)
    assert np.all(np.isinf(pred[-1]))


def test_fit_needs_observations(decay, getkey):
    model = odefit.NeuralODE(decay, width=8, depth=1, key=getkey())
    with pytest.raises(ValueError, match="`observations` is None"):
        odefit.fit(decay, model, steps=10, key=getkey(), progress=False)


def test_fit_checks_t0(decay, getkey):
    model = odefit.NeuralODE(decay, width=8, depth=1, key=getkey())
    shifted = odefit.IVP(_decay, t0=0.5, t1=2.0, y0=jnp.array([1.0]), args=1.0)
    data = odefit.Observations(jnp.array([1.0]), jnp.array([[0.5]]))
    with pytest.raises(ValueError, match="starts at t0=0.0 but `problem`"):
        odefit.fit(
            shifted, model, steps=10, observations=data, key=getkey(), progress=False
        )


def test_bad_construction(decay, getkey):
    second = odefit.SecondOrderIVP(
        lambda t, y, dy, args: -y, t0=0.0, t1=1.0, y0=1.0, dy0=0.0
    )
    with pytest.raises(TypeError, match="`problem` must be an odefit.IVP"):
        odefit.NeuralODE(second, key=getkey())
    with pytest.raises(ValueError, match="`width` must be an integer >= 1, got 0"):
        odefit.NeuralODE(decay, width=0, key=getkey())
    with pytest.raises(TypeError, match="`solver` must be a diffrax.AbstractSolver"):
        odefit.NeuralODE(decay, solver="tsit5", key=getkey())
    with pytest.raises(TypeError, match="`adjoint` must be a diffrax.AbstractAdjoint"):
        odefit.NeuralODE(decay, adjoint=dfx.Tsit5(), key=getkey())
    with pytest.raises(
        TypeError, match="`stepsize_controller` must be a diffrax.AbstractStepSize"
    ):
        odefit.NeuralODE(decay, stepsize_controller=1e-3, key=getkey())
    with pytest.raises(ValueError, match="`dt0` is required"):
        odefit.NeuralODE(
            decay, stepsize_controller=dfx.ConstantStepSize(), key=getkey()
        )
    with pytest.raises(ValueError, match="`dt0` must be a number > 0, got -0.1"):
        odefit.NeuralODE(decay, dt0=-0.1, key=getkey())
    with pytest.raises(ValueError, match=r"`scale` has shape \(2,\)"):
        odefit.NeuralODE(decay, scale=jnp.ones(2), key=getkey())
    with pytest.raises(ValueError, match="`scale` must be finite and > 0"):
        odefit.NeuralODE(decay, scale=0.0, key=getkey())
    with pytest.raises(TypeError, match="`autonomous` must be a bool"):
        odefit.NeuralODE(decay, autonomous=1, key=getkey())


def test_bad_times(decay, getkey):
    model = odefit.NeuralODE(decay, width=8, depth=1, key=getkey())
    with pytest.raises(ValueError, match="sorted in increasing order"):
        model.predict(jnp.array([0.0, 1.0, 0.5]))
    with pytest.raises(ValueError, match="start at or after t0=0.0, got -1.0"):
        model.predict(jnp.array([-1.0, 1.0]))
    with pytest.raises(ValueError, match=r"non-empty 1-D array of times, got shape"):
        model.predict(jnp.zeros((2, 2)))


@pytest.mark.slow
def test_constant_step_size(decay, getkey):
    model = odefit.NeuralODE(
        decay,
        width=8,
        depth=1,
        solver=dfx.Heun(),
        stepsize_controller=dfx.ConstantStepSize(),
        dt0=0.01,
        key=getkey(),
    )
    fine = eqx.tree_at(
        lambda m: (m.solver, m.stepsize_controller),
        model,
        (dfx.Tsit5(), _tight()),
    )
    ts = jnp.linspace(0.0, 2.0, 5)
    np.testing.assert_allclose(model.predict(ts), fine.predict(ts), rtol=1e-4)
