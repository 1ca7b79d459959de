"""fit_ensemble: many fits in one compiled program."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

import odefit
from odefit._loop import run_chunk as _run_members

# Shared across tests so that the compiled programs are reused.
OPTIMIZER = optax.adam(1e-2)
COLLOCATION = odefit.Uniform(32, warmup=20)
STEPS, CHUNK = 30, 10
DAMPINGS = (2.0, 4.0, 8.0)


def oscillator(t, y, dy, damping):
    return -400.0 * y - damping * dy


def make_problems(as_arrays: bool = False):
    # The last member also starts elsewhere: `y0` varies across members too.
    return [
        odefit.SecondOrderIVP(
            oscillator,
            0.0,
            1.0,
            0.5 if i == 2 else 1.0,
            0.0,
            args=jnp.asarray(c) if as_arrays else c,
        )
        for i, c in enumerate(DAMPINGS)
    ]


def make_models(problems, key):
    keys = jr.split(key, len(problems))
    return [
        odefit.PINN(p, width=8, depth=2, key=k, scale=1.0)
        for p, k in zip(problems, keys, strict=True)
    ]


def leaves(model):
    return [np.asarray(x) for x in jax.tree.leaves(eqx.filter(model, eqx.is_array))]


def assert_models_close(a, b, rtol=1e-10):
    for x, y in zip(leaves(a), leaves(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol * np.abs(y).max())


@pytest.fixture(scope="module")
def ensemble():
    problems = make_problems()
    models = make_models(problems, jr.key(0))
    result = odefit.fit_ensemble(
        problems,
        models,
        steps=STEPS,
        optimizer=OPTIMIZER,
        collocation=COLLOCATION,
        key=jr.key(1),
        chunk_size=CHUNK,
        progress=False,
    )
    return problems, models, result


def test_members_equal_sequential_fits(ensemble):
    problems, models, result = ensemble
    keys = jr.split(jr.key(1), len(problems))
    assert len(result) == 3
    assert result.stop_reasons == ("completed",) * 3
    assert result.steps == (STEPS,) * 3
    assert result.history["loss"].shape == (3, STEPS)
    for i, problem in enumerate(make_problems(as_arrays=True)):
        alone = odefit.fit(
            problem,
            models[i],
            steps=STEPS,
            optimizer=OPTIMIZER,
            collocation=COLLOCATION,
            key=keys[i],
            chunk_size=CHUNK,
            progress=False,
        )
        assert_models_close(result[i].model, alone.model)
        np.testing.assert_allclose(
            result.history["loss"][i], alone.history["loss"], rtol=1e-10
        )
        np.testing.assert_allclose(
            result.history["residual"][i], alone.history["residual"], rtol=1e-10
        )
    # The members really differ (different dampings, seeds and initial values).
    assert not np.allclose(result.history["loss"][0], result.history["loss"][1])
    assert np.all(np.diff(result.history["loss"][:, [0, -1]], axis=1) < 0)


def test_member_result_and_predictions(ensemble):
    problems, _, result = ensemble
    member = result[-1]
    assert isinstance(member, odefit.FitResult)
    assert member.steps == STEPS and member.stop_reason == "completed"
    assert float(member.model(0.0)) == 0.5  # member 2's initial value, exact
    ts = jnp.linspace(0.0, 1.0, 11)
    pred = result.predict(ts)
    assert pred.shape == (3, 11)
    np.testing.assert_allclose(pred[1], jax.vmap(result[1].model)(ts), rtol=1e-12)
    # Errors against each member's own diffrax reference, or a given one.
    errors = result.relative_l2(ts)
    references = np.stack([result[i].problem.solve(ts) for i in range(3)])
    assert errors.shape == (3,)
    np.testing.assert_allclose(errors, result.relative_l2(ts, references), rtol=1e-6)
    shared = result.relative_l2(ts, references[0])
    assert shared[0] == pytest.approx(errors[0], rel=1e-6)
    with pytest.raises(ValueError, match="`reference` has shape"):
        result.relative_l2(ts, references[:, :5])
    with pytest.raises(IndexError, match="out of range"):
        result[3]
    with pytest.raises(TypeError, match="indexed by an int"):
        result["a"]


def test_batched_model_shared_problem_and_no_retrace(ensemble):
    problems, models, result = ensemble
    # A batched model built with filter_vmap and a batch of keys: the same fit as
    # a list of models and one key split.
    problem = make_problems(as_arrays=True)[0]  # `args` an array, as when stacked

    def make(k):
        return odefit.PINN(problem, width=8, depth=2, key=k, scale=1.0)

    batched = eqx.filter_vmap(make)(jr.split(jr.key(0), 3))
    traces = eqx.debug.get_num_traces(_run_members)
    shared = odefit.fit_ensemble(
        problem,
        batched,
        steps=STEPS,
        optimizer=OPTIMIZER,
        collocation=COLLOCATION,
        key=jr.split(jr.key(1), 3),
        chunk_size=CHUNK,
        progress=False,
    )
    # Same structure as the module's ensemble: the compiled chunk is reused.
    assert eqx.debug.get_num_traces(_run_members) == traces
    assert_models_close(shared[0].model, result[0].model)
    # Members 1 and 2 differ from the module's: shared damping and initial value.
    assert not np.allclose(shared.history["loss"][1], result.history["loss"][1])
    np.testing.assert_array_equal(np.asarray(shared.args), 2.0)


def test_divergence_freezes_one_member_like_fit():
    # log(-1) is NaN: the member with damping -1 has a non-finite residual past
    # t = 0.5, which the growing collocation window reaches after a few steps.
    def field(t, y, dy, c):
        return -400.0 * y - c * dy + jnp.where(t > 0.5, jnp.log(jnp.abs(c) * c), 0.0)

    problems = [
        odefit.SecondOrderIVP(field, 0.0, 1.0, 1.0, 0.0, args=jnp.asarray(c))
        for c in (-1.0, 4.0)
    ]
    models = make_models(problems, jr.key(2))
    collocation = odefit.Uniform(16, warmup=40, start=0.2)
    result = odefit.fit_ensemble(
        problems,
        models,
        steps=40,
        optimizer=OPTIMIZER,
        collocation=collocation,
        key=jr.key(3),
        chunk_size=20,
        progress=False,
    )
    keys = jr.split(jr.key(3), 2)
    bad = odefit.fit(
        problems[0],
        models[0],
        steps=40,
        optimizer=OPTIMIZER,
        collocation=collocation,
        key=keys[0],
        chunk_size=20,
        progress=False,
    )
    assert bad.stop_reason.startswith("diverged at step")
    assert result.stop_reasons[0].startswith(bad.stop_reason.split(":")[0] + ":")
    assert result.steps[0] == bad.steps > 0
    assert_models_close(result[0].model, bad.model)
    losses = result.history["loss"][0]
    assert np.all(np.isfinite(losses[: bad.steps + 1]))
    assert not np.isfinite(losses[bad.steps + 1])
    assert np.all(np.isnan(losses[bad.steps + 2 :]))
    # The other member is untouched.
    assert result.stop_reasons[1] == "completed" and result.steps[1] == 40
    assert np.all(np.isfinite(result.history["loss"][1]))


def test_bad_input_is_named():
    problems = make_problems()
    models = make_models(problems, jr.key(0))
    kwargs = dict(steps=5, key=jr.key(1), progress=False)
    with pytest.raises(ValueError, match="`problems` has 2 members but `models` has 3"):
        odefit.fit_ensemble(problems[:2], models, **kwargs)
    other = odefit.SecondOrderIVP(lambda t, y, dy, c: -y, 0.0, 1.0, 1.0, 0.0, args=2.0)
    with pytest.raises(
        ValueError, match=r"`problems\[1\]` differs from `problems\[0\]` in a value"
    ):
        odefit.fit_ensemble([problems[0], other], models[:2], **kwargs)
    wide = odefit.PINN(problems[0], width=4, depth=2, key=jr.key(0), scale=1.0)
    with pytest.raises(ValueError, match=r"`models\[1\]` differs in structure"):
        odefit.fit_ensemble(problems[0], [models[0], wide], **kwargs)
    vector = odefit.SecondOrderIVP(
        oscillator, 0.0, 1.0, jnp.ones(2), jnp.zeros(2), args=2.0
    )
    with pytest.raises(ValueError, match=r"`problems\[1\]` has an array of shape"):
        odefit.fit_ensemble([problems[0], vector], models[:2], **kwargs)
    with pytest.raises(ValueError, match="leading .member. axis"):
        odefit.fit_ensemble(problems[0], models[0], **kwargs)
    with pytest.raises(TypeError, match=r"`models\[1\]` must be an odefit model"):
        odefit.fit_ensemble(problems[0], [models[0], "net"], **kwargs)
    with pytest.raises(TypeError, match="`problems` must be an odefit problem"):
        odefit.fit_ensemble("ivp", models, **kwargs)
    with pytest.raises(ValueError, match="`models` must not be empty"):
        odefit.fit_ensemble(problems[0], [], **kwargs)
    with pytest.raises(ValueError, match="one key or a batch of 3 keys"):
        odefit.fit_ensemble(
            problems, models, steps=5, key=jr.split(jr.key(1), 2), progress=False
        )
    with pytest.raises(TypeError, match="`key` must be a jax.random key"):
        odefit.fit_ensemble(problems, models, steps=5, key=0, progress=False)
    with pytest.raises(ValueError, match="`batch_size` must be .auto., None or an"):
        odefit.fit_ensemble(problems, models, batch_size=0, **kwargs)
    with pytest.raises(ValueError, match="`steps` must be an integer"):
        odefit.fit_ensemble(problems, models, steps=0, key=jr.key(1))
    with pytest.raises(TypeError, match="`devices` must be None or a sequence"):
        odefit.fit_ensemble(problems, models, devices=jax.devices()[0], **kwargs)
    ivp = odefit.IVP(lambda t, y, args: -y, 0.0, 2.0, 1.0)
    with pytest.raises(ValueError, match="built for"):
        odefit.fit_ensemble(ivp, models, **kwargs)


@pytest.mark.slow
def test_batch_size_and_unknowns_match_vmap_and_fit():
    # An inverse problem: each member learns its own damping from shared data;
    # members run two at a time.
    ts = jnp.linspace(0.0, 1.0, 20)
    truth = odefit.SecondOrderIVP(oscillator, 0.0, 1.0, 1.0, 0.0, args=4.0)
    data = odefit.Observations(ts, truth.solve(ts))
    problem = odefit.SecondOrderIVP(
        oscillator, 0.0, 1.0, 1.0, 0.0, args=odefit.Unknown(2.0, positive=True)
    )
    models = make_models([problem] * 3, jr.key(4))
    kwargs = dict(
        steps=STEPS,
        optimizer=OPTIMIZER,
        collocation=COLLOCATION,
        observations=data,
        key=jr.key(5),
        chunk_size=CHUNK,
        progress=False,
    )
    vmapped = odefit.fit_ensemble(problem, models, **kwargs)
    mapped = odefit.fit_ensemble(problem, models, batch_size=2, **kwargs)
    # `args` holds the learned values, one per member.
    assert vmapped.args.shape == (3,)
    np.testing.assert_allclose(mapped.args, vmapped.args, rtol=1e-10)
    for i in range(3):
        assert_models_close(mapped[i].model, vmapped[i].model)
    keys = jr.split(jr.key(5), 3)
    alone = odefit.fit(problem, models[1], **{**kwargs, "key": keys[1]})
    assert float(vmapped[1].args) == pytest.approx(float(alone.args), rel=1e-10)
    assert float(alone.args) != 2.0
    assert float(vmapped[1].problem.args.value) == pytest.approx(float(alone.args))


def test_batch_size_auto():
    from odefit._ensemble import _CPU_BATCH_WORK, _check_batch_size

    on_cpu = jax.default_backend() == "cpu"
    big = 256 * 8513  # points x weights of a width-64, depth-3 PINN on 256 points
    assert _check_batch_size("auto", 64, None, big) == (8 if on_cpu else None)
    assert _check_batch_size("auto", 64, None, 64 * 593) is None  # small networks
    assert _check_batch_size("auto", 8, None, big) is None
    assert _check_batch_size("auto", 64, None, 2 * _CPU_BATCH_WORK) == (
        1 if on_cpu else None
    )
    assert _check_batch_size("auto", 64, jax.devices(), big) is None
    assert _check_batch_size(None, 64, None, big) is None
    assert _check_batch_size(3, 64, None, big) == 3
    with pytest.raises(ValueError, match="got 'fast'"):
        _check_batch_size("fast", 64, None, big)
