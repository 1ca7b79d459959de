"""What a user brings to the training core: loss terms, callbacks, a hand-written
loop, a model of their own, and continuing a fit exactly."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

import odefit
import odefit._loop


def decay(t, y, args):
    return -2.0 * y


PROBLEM = odefit.IVP(decay, t0=0.0, t1=1.0, y0=1.0)
MODEL = odefit.PINN(PROBLEM, width=8, depth=2, key=jr.key(0))
ADAM = optax.adam(1e-2)  # constant learning rate, shared so programs are reused


def weights_of(model):
    return jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array))


def assert_identical(a, b):
    for x, y in zip(weights_of(a), weights_of(b), strict=True):
        np.testing.assert_array_equal(x, y)


def fit(model=MODEL, **kwargs):
    options = dict(
        steps=60,
        optimizer=ADAM,
        collocation=odefit.Uniform(32, warmup=40),
        key=jr.key(1),
        progress=False,
        chunk_size=20,
    )
    options.update(kwargs)
    return odefit.fit(PROBLEM, model, **options)


def middle(model, problem, args, ts):
    """A user term: pull y(0.5) towards 0.5 (the solution has exp(-1) = 0.37)."""
    return model(jnp.asarray(0.5)) - 0.5


@pytest.mark.parametrize("optimizer", [ADAM, odefit.LevenbergMarquardt(points=32)])
def test_custom_term_is_weighted_recorded_and_changes_the_fit(optimizer):
    collocation = odefit.Grid(32)
    plain = fit(optimizer=optimizer, collocation=collocation, steps=40)
    pulled = fit(
        optimizer=optimizer,
        collocation=collocation,
        steps=40,
        terms={"middle": middle},
        weights={"middle": 100.0},
    )
    assert "middle" not in plain.history
    h = pulled.history
    assert set(h) >= {"loss", "residual", "middle"}
    np.testing.assert_allclose(h["loss"], h["residual"] + h["middle"], rtol=1e-12)
    # The term's loss is weight * mean(fn(...)**2), at the incoming parameters.
    model = MODEL
    expected = 100.0 * float(middle(model, PROBLEM, None, None) ** 2)
    np.testing.assert_allclose(h["middle"][0], expected, rtol=1e-12)
    y_plain = float(plain.model(0.5))
    y_pulled = float(pulled.model(0.5))
    assert abs(y_pulled - 0.5) < 0.5 * abs(y_plain - 0.5)


def test_terms_are_checked():
    with pytest.raises(ValueError, match="`terms` has the name 'residual'"):
        fit(terms={"residual": middle})
    with pytest.raises(TypeError, match=r"`terms\['x'\]` must be a function"):
        fit(terms={"x": 1.0})
    with pytest.raises(ValueError, match="`weights` has an unknown term 'y'"):
        fit(terms={"x": middle}, weights={"y": 1.0})


def test_callback_stops_at_the_step_it_chooses():
    seen = []

    def stop_at_40(info):
        seen.append(info)
        return info.step >= 40

    result = fit(callback=stop_at_40)
    assert result.stop_reason == "stopped by callback"
    assert result.steps == 40
    assert [i.step for i in seen] == [20, 40]
    last = seen[-1]
    assert last.history["loss"].shape == (40,)
    assert float(last.losses["loss"]) == last.history["loss"][-1]
    assert_identical(last.model, result.model)
    assert_identical(result.model, fit(steps=40).model)


def test_callback_of_an_ensemble_sees_every_member():
    infos = []
    result = odefit.fit_ensemble(
        PROBLEM,
        [MODEL, MODEL],
        steps=40,
        optimizer=ADAM,
        collocation=odefit.Uniform(32),
        key=jr.key(1),
        progress=False,
        chunk_size=20,
        callback=lambda info: infos.append(info),
    )
    assert result.stop_reason == ("completed", "completed")
    assert infos[0].losses["loss"].shape == (2,)
    assert infos[-1].history["loss"].shape == (2, 40)


def test_callback_is_checked():
    with pytest.raises(TypeError, match="`callback` must be a function"):
        fit(callback="print")


def test_continuing_a_result_equals_one_longer_fit():
    once = fit(steps=60)
    first = fit(steps=30)
    continued = odefit.fit(PROBLEM, first, steps=30, optimizer=ADAM,
                           collocation=odefit.Uniform(32, warmup=40),
                           progress=False, chunk_size=20)  # fmt: skip
    assert continued.steps == 60 and continued.stop_reason == "completed"
    assert_identical(continued.model, once.model)
    for name in once.history:
        np.testing.assert_array_equal(continued.history[name], once.history[name])
    for a, b in zip(
        jax.tree.leaves(continued.opt_state),
        jax.tree.leaves(once.opt_state),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)


def test_continuing_with_another_optimizer_is_refused():
    first = fit(steps=20)
    with pytest.raises(ValueError, match="optimiser state does not match"):
        odefit.fit(PROBLEM, first, steps=10, optimizer=odefit.LevenbergMarquardt(),
                   collocation=odefit.Uniform(32, warmup=40),
                   progress=False)  # fmt: skip
    # Its model restarts an optimiser from the same weights.
    restarted = odefit.fit(
        PROBLEM,
        first.model,
        steps=5,
        optimizer=odefit.LevenbergMarquardt(points=32),
        key=jr.key(2),
        progress=False,
    )
    assert restarted.steps == 5


def test_a_hand_written_loop_equals_fit():
    ts = jnp.linspace(0.0, 1.0, 32)
    result = fit(steps=25, collocation=odefit.Grid(32))
    np.testing.assert_array_equal(odefit.Grid(32).init(0.0, 1.0, ts.dtype), ts)
    params, static = eqx.partition(MODEL, MODEL.trainable())
    with jax.numpy_dtype_promotion("standard"):
        opt_state = ADAM.init(params)

    @eqx.filter_jit
    def step(params, opt_state):
        value, grads = eqx.filter_value_and_grad(
            lambda p: odefit.loss(eqx.combine(p, static), PROBLEM, ts)
        )(params)
        # optax mixes dtypes; the tests' strict promotion is relaxed for it only.
        with jax.numpy_dtype_promotion("standard"):
            updates, opt_state = ADAM.update(grads, opt_state, params)
        return eqx.apply_updates(params, updates), opt_state, value

    losses = []
    for _ in range(25):
        params, opt_state, value = step(params, opt_state)
        losses.append(float(value))
    np.testing.assert_allclose(losses, result.history["loss"], rtol=1e-12)
    for a, b in zip(
        weights_of(eqx.combine(params, static)), weights_of(result.model), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)


def test_loss_terms_are_public_pure_functions():
    ts = jnp.linspace(0.0, 1.0, 16)
    terms = odefit.loss_terms(MODEL, PROBLEM, ts)
    assert set(terms) == {"residual"}
    r = jax.vmap(lambda t: odefit.physics_residual(MODEL, PROBLEM, t))(ts)
    np.testing.assert_allclose(terms["residual"], r / 4.0, rtol=1e-12)
    np.testing.assert_allclose(
        odefit.loss(MODEL, PROBLEM, ts), jnp.mean(r**2), rtol=1e-12
    )


class Decaying(odefit.AbstractModel):
    """A user's own model, not a PINN: y(t) = exp(-a t) with a learned rate `a`."""

    rate: jax.Array

    def __call__(self, t):
        return jnp.exp(-self.rate * t)

    def predict(self, ts):
        return jax.vmap(self)(ts)

    def trainable(self):
        return jax.tree.map(eqx.is_inexact_array, self)


def test_a_users_own_model_gets_the_physics_residual():
    model = Decaying(jnp.asarray(0.5))
    observations = odefit.Observations(jnp.array([0.0]), jnp.array([1.0]))
    result = odefit.fit(
        PROBLEM,
        model,
        steps=40,
        optimizer=odefit.LevenbergMarquardt(points=16),
        observations=observations,
        key=jr.key(0),
        progress=False,
    )
    assert {"residual", "conditions", "data"} <= set(result.history)
    # Only the residual knows the rate: data at t = 0 does not.
    np.testing.assert_allclose(result.model.rate, 2.0, rtol=1e-8)


def test_a_model_without_residual_needs_data():
    model = odefit.NeuralODE(PROBLEM, width=4, depth=1, key=jr.key(0))
    with pytest.raises(ValueError, match="is fit to data, but `observations` is None"):
        odefit.fit(PROBLEM, model, steps=2, key=jr.key(0), progress=False)


def test_ensemble_throw_raises_on_a_diverging_member():
    def field(t, y, c):
        # log(-1) is NaN: member 1's residual is not finite past t = 0.5.
        return -2.0 * y + jnp.where(t > 0.5, jnp.log(c), 0.0)

    problems = [odefit.IVP(field, 0.0, 1.0, 1.0, args=c) for c in (1.0, -1.0)]
    options = dict(
        steps=40,
        optimizer=ADAM,
        collocation=odefit.Uniform(32),
        key=jr.key(1),
        progress=False,
    )
    result = odefit.fit_ensemble(problems, [MODEL, MODEL], **options)
    assert result.stop_reason[0] == "completed"
    assert result.stop_reason[1].startswith("diverged at step 0")
    with pytest.raises(RuntimeError, match=r"1 of 2 members failed; member 1: div"):
        odefit.fit_ensemble(problems, [MODEL, MODEL], throw=True, **options)


def test_stages_and_windows_checkpoint_and_resume(tmp_path, monkeypatch):
    stages = [(ADAM, 30), (odefit.LevenbergMarquardt(points=16), 10)]
    path = tmp_path / "run.ckpt"
    options = dict(key=jr.key(1), progress=False, checkpoint_path=path)
    first = odefit.fit_stages(PROBLEM, MODEL, stages, **options)
    assert (tmp_path / "run.ckpt.stage0").is_file()
    assert (tmp_path / "run.ckpt.stage1").is_file()
    marched = odefit.fit_marching(PROBLEM, stages=stages, windows=2, width=8, **options)
    assert (tmp_path / "run.ckpt.window1.stage1").is_file()
    # A rerun of the finished script finds every stage done: the same result,
    # and not one training step is run.
    monkeypatch.setattr(odefit._loop, "run_chunk", None)
    again = odefit.fit_stages(PROBLEM, MODEL, stages, **options)
    assert_identical(again.model, first.model)
    np.testing.assert_array_equal(again.history["loss"], first.history["loss"])
    marched = odefit.fit_marching(PROBLEM, stages=stages, windows=2, width=8, **options)
    assert (tmp_path / "run.ckpt.window1.stage1").is_file()
    rerun = odefit.fit_marching(PROBLEM, stages=stages, windows=2, width=8, **options)
    np.testing.assert_array_equal(rerun.history["loss"], marched.history["loss"])
