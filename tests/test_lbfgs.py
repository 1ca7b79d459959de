import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import odefit
from odefit._lbfgs import _direction


def _decay():
    return odefit.IVP(lambda t, y, args: -2.0 * y, 0.0, 2.0, 1.0)


def _error(result, problem, n=1001):
    ts = jnp.linspace(problem.t0, problem.t1, n)
    return float(odefit.relative_l2(jax.vmap(result.model)(ts), problem.solve(ts)))


def _run(trainer, residuals, params, steps):
    state = trainer.init(residuals, params)
    step = jax.jit(lambda p, s: trainer.step(residuals, p, s))
    history = []
    for _ in range(steps):
        params, state, stats = step(params, state)
        history.append(jax.device_get(stats))
    return params, state, history


def test_direction_is_the_bfgs_inverse_hessian(getkey):
    # The two-loop recursion over a wrapped-around buffer against the explicit
    # BFGS update of the inverse Hessian, oldest pair first, from γI.
    n, memory, pairs = 6, 4, 7
    a = jax.random.normal(getkey(), (n, n))
    hessian = a @ a.T + n * jnp.eye(n)
    s_all = jax.random.normal(getkey(), (pairs, n))
    y_all = s_all @ hessian  # s·y > 0
    s = jnp.zeros((memory, n))
    y = jnp.zeros((memory, n))
    rho = jnp.zeros(memory)
    newest = memory - 1
    for k in range(pairs):
        newest = (newest + 1) % memory
        s = s.at[newest].set(s_all[k])
        y = y.at[newest].set(y_all[k])
        rho = rho.at[newest].set(1 / jnp.dot(s_all[k], y_all[k]))
    g = jax.random.normal(getkey(), (n,))

    kept = range(pairs - memory, pairs)
    last = pairs - 1
    gamma = jnp.dot(s_all[last], y_all[last]) / jnp.dot(y_all[last], y_all[last])
    h = gamma * jnp.eye(n)
    for k in kept:
        r = 1 / jnp.dot(s_all[k], y_all[k])
        v = jnp.eye(n) - r * jnp.outer(y_all[k], s_all[k])
        h = v.T @ h @ v + r * jnp.outer(s_all[k], s_all[k])
    expected = -h @ g
    got = _direction(g, s, y, rho, jnp.asarray(newest, jnp.int32))
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    # An empty memory gives steepest descent.
    empty = _direction(g, s, y, jnp.zeros(memory), jnp.asarray(0, jnp.int32))
    np.testing.assert_allclose(empty, -g, rtol=1e-12)


def test_rosenbrock_plain_residuals():
    # The Rosenbrock valley on a plain residual function; every step satisfies
    # the decrease condition, so the loss never increases.
    def residuals(p):
        x, y = p["xy"]
        return {"a": jnp.stack([10.0 * (y - x**2), 1.0 - x])}

    params, _, history = _run(
        odefit.LBFGS(), residuals, {"xy": jnp.array([-1.2, 1.0]), "frozen": None}, 60
    )
    losses = np.array([h["loss"] for h in history])
    assert np.all(np.diff(losses) <= 0)
    np.testing.assert_allclose(params["xy"], [1.0, 1.0], atol=1e-8)
    evaluations = np.array([h["evaluations"] for h in history])
    # At the minimum the gradient is zero and the step ends after evaluating it.
    assert np.all((evaluations >= 2) | (losses == 0)) and np.all(evaluations <= 20)


def test_non_finite_trials_shrink_the_step():
    # The loss is NaN beyond x = 0.5: every trial there must be rejected, so the
    # iterates approach 0.5 from below and every step's loss stays finite.
    def residuals(x):
        return {"a": jnp.where(x > 0.5, jnp.nan, x - 1.0)}

    x, _, history = _run(odefit.LBFGS(), residuals, jnp.array([0.0]), 15)
    losses = np.array([h["loss"] for h in history])
    assert np.all(np.isfinite(losses)) and np.all(np.diff(losses) <= 0)
    assert 0.45 < float(x[0]) <= 0.5


def test_failed_search_keeps_parameters_and_clears_memory():
    # One trial only, and a first trial far past the minimum of a steep bowl:
    # the decrease test fails, the parameters stay and the memory is emptied.
    def residuals(x):
        return {"a": 1e3 * (x - 1.0) ** 3}

    trainer = odefit.LBFGS(line_search=2)
    state = trainer.init(residuals, jnp.array([0.0]))
    # Not the first step (which would start at 1/|g|), and a stored pair.
    state["steps"] = jnp.asarray(1, jnp.int32)
    state["rho"] = state["rho"].at[0].set(1.0)
    x, new_state, stats = trainer.step(residuals, jnp.array([0.0]), state)
    assert float(stats["step_size"]) == 0.0
    np.testing.assert_array_equal(x, [0.0])
    np.testing.assert_array_equal(new_state["rho"], 0.0)


def test_fits_decay(getkey):
    problem = _decay()
    model = odefit.PINN(problem, width=8, depth=2, key=getkey())
    result = odefit.fit(
        problem,
        model,
        steps=1000,
        optimizer=odefit.LBFGS(points=64),
        key=getkey(),
        progress=False,
    )
    assert result.stop_reason == "completed"
    assert set(result.history) >= {"loss", "residual", "step_size", "evaluations"}
    assert np.all(np.diff(result.history["loss"]) <= 1e-15)
    assert _error(result, problem) < 1e-4  # 2.0e-5 measured


def test_loss_and_gradient_compiled_once():
    # The point of the trainer: one differentiated evaluation site per step (the
    # other trace is a forward-only shape evaluation). optax's L-BFGS with its
    # zoom line search has three.
    params = jnp.ones(3)
    traces = []

    def residuals(p):
        traces.append(p)
        return {"a": jnp.sin(p) - 0.5}

    trainer = odefit.LBFGS()
    state = trainer.init(residuals, params)
    jax.make_jaxpr(lambda p, s: trainer.step(residuals, p, s))(params, state)
    assert len(traces) == 2

    traces.clear()
    optax_trainer = odefit._trainers.OptaxTrainer(optax.lbfgs())
    state = optax_trainer.init(residuals, params)
    jax.make_jaxpr(lambda p, s: optax_trainer.step(residuals, p, s))(params, state)
    assert len(traces) >= 3


def test_float32_under_strict_promotion(getkey):
    problem = odefit.IVP(
        lambda t, y, args: -2.0 * y, 0.0, 2.0, jnp.asarray(1.0, jnp.float32)
    )
    model = odefit.PINN(problem, width=8, depth=2, key=getkey())
    result = odefit.fit(
        problem,
        model,
        steps=100,
        optimizer=odefit.LBFGS(points=32),
        key=getkey(),
        progress=False,
    )
    assert result.history["loss"].dtype == np.float32
    assert _error(result, problem) < 1e-2


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"memory": 0}, "`memory` must be an integer >= 1"),
        ({"line_search": 1}, "`line_search` must be an integer >= 2"),
        ({"armijo": 0.0}, r"`armijo` must be a number in \(0, 1\)"),
        ({"curvature": 1.5}, r"`curvature` must be a number in \(0, 1\)"),
        ({"armijo": 0.5, "curvature": 0.4}, "`armijo` must be smaller"),
        ({"points": 2.5}, "`points` must be an integer >= 1"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        odefit.LBFGS(**kwargs)


def test_ensemble_members_equal_sequential_fits(getkey):
    # Under vmap the members' line searches run in one loop until the last one
    # is done; each member must still take exactly its own steps.
    def decay(t, y, rate):
        return -rate * y

    problems = [odefit.IVP(decay, 0.0, 2.0, 1.0, args=rate) for rate in (1.0, 2.0, 3.0)]
    keys = jax.random.split(getkey(), 3)
    models = [
        odefit.PINN(p, width=8, depth=2, key=k)
        for p, k in zip(problems, keys, strict=True)
    ]
    trainer = odefit.LBFGS(points=32)
    key = getkey()
    result = odefit.fit_ensemble(
        problems, models, steps=40, optimizer=trainer, key=key, progress=False
    )
    member_keys = jax.random.split(key, 3)
    for i, (problem, model) in enumerate(zip(problems, models, strict=True)):
        alone = odefit.fit(
            problem,
            model,
            steps=40,
            optimizer=trainer,
            key=member_keys[i],
            progress=False,
        )
        np.testing.assert_allclose(
            result.history["loss"][i], alone.history["loss"], rtol=1e-8
        )
        np.testing.assert_array_equal(
            result.history["evaluations"][i], alone.history["evaluations"]
        )


def test_checkpoint_resume_continues_the_same_fit(getkey, tmp_path):
    # The trainer's state (the stored pairs) goes through a checkpoint: a fit
    # continued from one follows the uninterrupted fit.
    problem = _decay()
    model = odefit.PINN(problem, width=8, depth=2, key=getkey())
    kw = dict(optimizer=odefit.LBFGS(points=32), key=getkey(), progress=False)
    whole = odefit.fit(problem, model, steps=40, **kw)
    path = tmp_path / "lbfgs.ckpt"
    odefit.fit(problem, model, steps=20, checkpoint_path=path, **kw)
    resumed = odefit.fit(problem, model, steps=40, checkpoint_path=path, **kw)
    assert resumed.steps == 40
    np.testing.assert_allclose(
        resumed.history["loss"], whole.history["loss"], rtol=1e-12
    )
    np.testing.assert_array_equal(
        resumed.history["evaluations"], whole.history["evaluations"]
    )
