"""Families of ODEs: `odefit.Varies` in `args` and initial values, one PINN for
every member, its fit, and its reference solves."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

import odefit
from odefit._objective import make_objective, split


def decay(t, y, args):
    return -args * y


def oscillator(t, y, dy, args):
    damping, stiffness = args
    return -damping * dy - stiffness * y


def lotka_volterra(t, y, args):
    x, z = y
    return jnp.stack([x - x * z, -z + x * z])


DECAY = odefit.IVP(
    decay,
    0.0,
    1.0,
    y0=odefit.Varies(0.5, 2.0),
    args=odefit.Varies(1.0, 3.0, name="rate"),
)


def _errors(problem, model, params, ts):
    reference = problem.solve(ts, params)
    pred = eqx.filter_jit(jax.vmap(lambda p: model.predict(ts, p)))(params)
    return np.array(
        [float(odefit.relative_l2(pred[i], reference[i])) for i in range(len(params))]
    )


# --- markers and problems ------------------------------------------------------


@pytest.mark.parametrize(
    ("low", "high", "error", "match"),
    [
        (2.0, 1.0, ValueError, r"`low` must be less than `high`"),
        (1.0, 1.0, ValueError, r"`low` must be less than `high`"),
        ([0.0, 1.0], [1.0], ValueError, r"`low` has shape \(2,\) but `high`"),
        (float("nan"), 1.0, ValueError, r"`low` must be finite"),
        ("a", 1.0, TypeError, r"`low` must be a float"),
        (None, 1.0, TypeError, r"`low` must be a float"),
    ],
)
def test_varies_rejects_bad_bounds(low, high, error, match):
    with pytest.raises(error, match=match):
        odefit.Varies(low, high)


def test_family_names_order_and_box():
    problem = odefit.SecondOrderIVP(
        lambda t, y, dy, args: -args[0] * dy - args[1][0] * y,
        0.0,
        1.0,
        y0=odefit.Varies(0.5, 1.5),
        dy0=odefit.Varies(-1.0, 1.0, name="v0"),
        args=(odefit.Varies(0.1, 0.5), odefit.Varies(jnp.array([1.0]), [2.0])),
    )
    family = problem.family
    assert family.names == ("args[0]", "args[1][0]", "y0", "v0")
    np.testing.assert_array_equal(family.low, [0.1, 1.0, 0.5, -1.0])
    np.testing.assert_array_equal(family.high, [0.5, 2.0, 1.5, 1.0])
    assert family.size == 4
    # The box centre stands in where one member is needed.
    assert float(problem.y0) == 1.0 and float(problem.dy0) == 0.0
    member = problem.member(jnp.array([0.2, 1.5, 0.7, 0.3]))
    assert member.family is None
    assert float(member.y0) == 0.7 and float(member.dy0) == 0.3
    assert float(member.args[0]) == 0.2
    np.testing.assert_array_equal(member.args[1], [1.5])
    assert odefit.IVP(decay, 0.0, 1.0, y0=1.0, args=2.0).family is None


def test_solve_of_a_member_is_the_plain_problem_solve():
    ts = jnp.linspace(0.0, 1.0, 11)
    p = jnp.array([2.5, 1.2])
    plain = odefit.IVP(decay, 0.0, 1.0, y0=1.2, args=2.5)
    np.testing.assert_allclose(DECAY.solve(ts, p), plain.solve(ts), rtol=1e-12)
    np.testing.assert_allclose(DECAY.solve(ts, p), 1.2 * np.exp(-2.5 * ts), 1e-9)
    many = DECAY.solve(ts, jnp.stack([p, p + 0.1]))
    assert many.shape == (2, 11)
    np.testing.assert_allclose(many[1], 1.3 * np.exp(-2.6 * ts), rtol=1e-9)
    with pytest.raises(TypeError, match=r"is a family of ODEs over \('rate', 'y0'\)"):
        DECAY.solve(ts)
    with pytest.raises(TypeError, match=r"`params` was given, but this problem is not"):
        plain.solve(ts, p)
    with pytest.raises(ValueError, match=r"`params` must have shape \(2,\)"):
        DECAY.solve(ts, jnp.ones(3))
    with pytest.raises(TypeError, match=r"is not a family"):
        plain.member(p)


def test_state_list_with_markers():
    problem = odefit.IVP(lotka_volterra, 0.0, 1.0, y0=[odefit.Varies(0.5, 1.5), 1.0])
    assert problem.family.names == ("y0[0]",)
    np.testing.assert_array_equal(problem.y0, [1.0, 1.0])
    with pytest.raises(ValueError, match=r"inside a list each entry is one number"):
        odefit.IVP(lotka_volterra, 0.0, 1.0, y0=[odefit.Varies([0.0], [1.0]), 1.0])


# --- the model -----------------------------------------------------------------


def test_conditions_exact_for_every_member(getkey):
    problem = odefit.SecondOrderIVP(
        oscillator,
        0.0,
        2.0,
        y0=odefit.Varies(-1.0, 1.0),
        dy0=odefit.Varies(-2.0, 2.0),
        args=(0.3, odefit.Varies(1.0, 4.0)),
    )
    model = odefit.PINN(problem, width=16, depth=2, key=getkey())
    params = problem.family.sample(32, key=getkey())
    t0 = jnp.asarray(0.0)
    values, slopes = jax.vmap(
        lambda p: jax.jvp(lambda t: model(t, p), (t0,), (jnp.ones(()),))
    )(params)
    # params: (stiffness, y0, dy0).
    np.testing.assert_allclose(values, params[:, 1], rtol=0, atol=1e-14)
    np.testing.assert_allclose(slopes, params[:, 2], rtol=0, atol=1e-13)
    # vmap over times and members at once.
    ts = jnp.linspace(0.0, 2.0, 5)
    grid = jax.vmap(jax.vmap(model, in_axes=(None, 0)), in_axes=(0, None))(ts, params)
    assert grid.shape == (5, 32)
    np.testing.assert_allclose(grid[2, 3], model(ts[2], params[3]), rtol=1e-14)


def test_model_errors(getkey):
    model = odefit.PINN(DECAY, width=8, depth=1, key=getkey())
    with pytest.raises(TypeError, match=r"call it as `model\(t, params\)`"):
        model(0.5)
    with pytest.raises(ValueError, match=r"`params` must have shape \(2,\)"):
        model(0.5, jnp.ones(3))
    plain = odefit.IVP(decay, 0.0, 1.0, y0=1.0, args=2.0)
    single = odefit.PINN(plain, width=8, depth=1, key=getkey())
    with pytest.raises(TypeError, match=r"built for a single ODE"):
        single(0.5, jnp.ones(2))
    with pytest.raises(ValueError, match=r"`hard_constraints=False` is not supported"):
        odefit.PINN(DECAY, width=8, depth=1, hard_constraints=False, key=getkey())
    with pytest.raises(ValueError, match=r"built for a family over .* single ODE"):
        odefit.fit(plain, model, steps=2, key=getkey(), progress=False)
    with pytest.raises(ValueError, match=r"built for a single ODE but the problem is"):
        odefit.fit(DECAY, single, steps=2, key=getkey(), progress=False)
    observations = odefit.Observations(jnp.array([0.5]), jnp.array([1.0]))
    with pytest.raises(ValueError, match=r"`observations` cannot be fit for a family"):
        odefit.fit(
            DECAY,
            model,
            steps=2,
            observations=observations,
            key=getkey(),
            progress=False,
        )
    # A custom network must take (t, params).
    network = eqx.nn.MLP(1, 1, 8, 1, key=getkey())
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        odefit.PINN(DECAY, network=network)
    odefit.PINN(DECAY, network=eqx.nn.MLP(3, 1, 8, 1, key=getkey()))


def test_default_path_unchanged(getkey):
    plain = odefit.IVP(decay, 0.0, 1.0, y0=1.0, args=2.0)
    model = odefit.PINN(plain, width=8, depth=1, key=getkey())
    assert model.family is None
    t = jnp.asarray(0.3)
    s = (t - 0.0) / 1.0
    by_hand = 1.0 + s * model.network(jnp.expand_dims(2 * s - 1, 0))[0] * model.scale
    assert float(model(t)) == float(by_hand)


# --- sampling ------------------------------------------------------------------


def test_grid_rows_are_fixed_and_uniform_rows_redrawn(getkey):
    model = odefit.PINN(DECAY, width=8, depth=1, key=getkey())
    params, static = split(model, DECAY.args)
    objective = make_objective(DECAY, static)
    for collocation, fixed in ((odefit.Grid(64), True), (odefit.Uniform(64), False)):
        state = collocation.init(0.0, 1.0, jnp.float64)
        a, _ = objective.sample(collocation, state, params, key=getkey())
        b, _ = objective.sample(collocation, state, params, key=getkey())
        assert a.shape == (64, 3)
        assert bool(
            jnp.all((a[:, 1:] >= DECAY.family.low) & (a[:, 1:] <= DECAY.family.high))
        )
        assert bool(jnp.all(a == b)) == fixed
        # Members spread over the box either way.
        assert float(jnp.std(a[:, 1])) > 0.4 and float(jnp.std(a[:, 2])) > 0.3


# --- fits ----------------------------------------------------------------------


def test_adam_then_levenberg_marquardt_fits_members_not_trained_on(getkey):
    model = odefit.PINN(DECAY, width=16, depth=2, key=jr.key(0))
    warm = odefit.fit(
        DECAY,
        model,
        steps=400,
        optimizer=optax.adam(3e-3),
        collocation=odefit.Uniform(128),
        key=jr.key(1),
        progress=False,
    )
    result = odefit.fit(
        DECAY,
        warm.model,
        steps=40,
        optimizer=odefit.LevenbergMarquardt(),
        collocation=odefit.Grid(256),
        key=jr.key(2),
        progress=False,
    )
    assert result.history["loss"][-1] < 1e-3 * warm.history["loss"][-1]
    params = DECAY.family.sample(20, key=jr.key(99))
    errors = _errors(DECAY, result.model, params, jnp.linspace(0.0, 1.0, 51))
    warm_errors = _errors(DECAY, warm.model, params, jnp.linspace(0.0, 1.0, 51))
    assert np.median(errors) < 1e-3, errors
    assert np.max(errors) < 1e-2, errors
    assert np.median(errors) < 0.1 * np.median(warm_errors)


def test_fit_ensemble_of_families(getkey):
    models = [odefit.PINN(DECAY, width=8, depth=1, key=jr.key(i)) for i in range(2)]
    result = odefit.fit_ensemble(
        [DECAY, DECAY], models, steps=200, key=jr.key(3), progress=False
    )
    loss = result.history["loss"]
    assert loss.shape == (2, 200)
    assert np.all(loss[:, -20:].mean(axis=1) < 0.5 * loss[:, :20].mean(axis=1))
    # Each member is the fit `fit` makes with that member's key.
    single = odefit.fit(
        DECAY, models[0], steps=200, key=jr.split(jr.key(3), 2)[0], progress=False
    )
    np.testing.assert_allclose(loss[0], single.history["loss"], rtol=1e-8)


def test_checkpoint_resumes_a_family_fit_bit_identical(tmp_path):
    model = odefit.PINN(DECAY, width=8, depth=1, key=jr.key(0))

    def run(path=None, crash_at=None):
        def callback(info):
            if crash_at is not None and info.step >= crash_at:
                raise RuntimeError("simulated crash")

        return odefit.fit(
            DECAY,
            model,
            steps=60,
            key=jr.key(1),
            progress=False,
            chunk_size=10,
            callback=callback,
            checkpoint_path=path,
            checkpoint_every=None if path is None else 20,
        )

    uninterrupted = run()
    path = tmp_path / "family.ckpt"
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(path, crash_at=40)
    resumed = run(path)
    np.testing.assert_array_equal(
        resumed.history["loss"], uninterrupted.history["loss"]
    )
    p = jnp.array([2.0, 1.5])
    assert float(resumed.model(0.5, p)) == float(uninterrupted.model(0.5, p))
    loaded = odefit.load(path, DECAY, model)
    assert float(loaded.model(0.5, p)) == float(uninterrupted.model(0.5, p))
    assert loaded.model.family.names == ("rate", "y0")


# --- the bars ------------------------------------------------------------------


@pytest.mark.slow
def test_oscillator_over_damping_and_stiffness():
    problem = odefit.SecondOrderIVP(
        oscillator,
        0.0,
        5.0,
        y0=1.0,
        dy0=0.0,
        args=(odefit.Varies(0.1, 0.5), odefit.Varies(1.0, 4.0)),
    )
    model = odefit.PINN(problem, width=24, depth=3, key=jr.key(0))
    warm = odefit.fit(
        problem,
        model,
        steps=3000,
        collocation=odefit.Uniform(512),
        key=jr.key(1),
        progress=False,
    )
    result = odefit.fit(
        problem,
        warm.model,
        steps=200,
        optimizer=odefit.LevenbergMarquardt(),
        collocation=odefit.Grid(1024),
        key=jr.key(2),
        progress=False,
    )
    params = problem.family.sample(50, key=jr.key(42))
    errors = _errors(problem, result.model, params, jnp.linspace(0.0, 5.0, 201))
    assert np.median(errors) <= 1e-3, np.median(errors)
    assert np.percentile(errors, 95) <= 1e-2, np.percentile(errors, 95)


@pytest.mark.slow
def test_lotka_volterra_over_initial_values():
    box = odefit.Varies(0.6, 1.4)
    problem = odefit.IVP(lotka_volterra, 0.0, 3.0, y0=[box, box])
    model = odefit.PINN(problem, width=24, depth=3, key=jr.key(0))
    warm = odefit.fit(
        problem,
        model,
        steps=3000,
        collocation=odefit.Uniform(512),
        key=jr.key(1),
        progress=False,
    )
    result = odefit.fit(
        problem,
        warm.model,
        steps=200,
        optimizer=odefit.LevenbergMarquardt(),
        collocation=odefit.Grid(1024),
        key=jr.key(2),
        progress=False,
    )
    params = problem.family.sample(50, key=jr.key(42))
    errors = _errors(problem, result.model, params, jnp.linspace(0.0, 3.0, 201))
    assert np.median(errors) <= 1e-3, np.median(errors)
    assert np.percentile(errors, 95) <= 1e-2, np.percentile(errors, 95)
