"""A first-order step on many points computes its loss and gradient in parts of
points (OptaxTrainer.part): the same numbers as all points at once."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

import odefit
from odefit._objective import make_objective, split
from odefit._trainers import OptaxTrainer, _value_and_grad


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def _lotka_volterra(t, y, args):
    a, b, c, d = args
    return jnp.stack([a * y[0] - b * y[0] * y[1], -c * y[1] + d * y[0] * y[1]])


def _problem():
    return odefit.IVP(
        _lotka_volterra, 0.0, 3.0, jnp.array([1.0, 1.0]), (1.5, 1.0, 3.0, 1.0)
    )


@pytest.mark.parametrize("n", [600, 1024])
@pytest.mark.parametrize("weighted", [False, True])
def test_parts_equal_all_points(n, weighted):
    problem = _problem()
    model = odefit.PINN(problem, width=16, depth=2, key=jr.key(0))
    params, static = split(model, problem.args)
    observations = odefit.Observations(
        jnp.linspace(0.0, 3.0, 7), problem.solve(jnp.linspace(0.0, 3.0, 7))
    )
    residuals = make_objective(problem, static, observations).residuals(
        jnp.linspace(0.0, 3.0, n)
    )
    assert residuals.separable
    if weighted:
        residuals = residuals.reweight(jr.uniform(jr.key(1), (n,)))
    (loss, losses), grads = _value_and_grad(residuals, params)
    trainer = OptaxTrainer(optax.sgd(0.0), part=128)
    new, _, stats = trainer.step(residuals, params, trainer.init(residuals, params))
    assert abs(float(stats["loss"]) - float(loss)) <= 1e-12 * float(loss)
    for name in losses:
        np.testing.assert_allclose(stats[name], losses[name], rtol=1e-12)
    # The step's gradient, read back through sgd(1): params - new = grads.
    trainer = OptaxTrainer(optax.sgd(1.0), part=128)
    new, _, _ = trainer.step(residuals, params, trainer.init(residuals, params))
    for g, p, q in zip(
        jax.tree.leaves(grads),
        jax.tree.leaves(params),
        jax.tree.leaves(new),
        strict=True,
    ):
        np.testing.assert_allclose(p - q, g, rtol=1e-9, atol=1e-13)


def test_user_terms_are_not_split():
    """A user's term may use all of `ts` at once (here the spread of an energy
    along the points), so the loss is then computed on all points together."""
    problem = _problem()
    model = odefit.PINN(problem, width=16, depth=2, key=jr.key(0))
    _, static = split(model, problem.args)

    def spread(model, problem, args, ts):
        y = jax.vmap(model)(ts)
        return y[:, 0] - jnp.mean(y[:, 0])

    objective = make_objective(problem, static, terms={"spread": spread})
    assert not objective.residuals(jnp.linspace(0.0, 3.0, 1024)).separable


def test_fit_on_many_points_same_with_and_without_parts():
    problem = _problem()
    model = odefit.PINN(problem, width=16, depth=2, key=jr.key(0))
    results = [
        odefit.fit(
            problem,
            model,
            steps=20,
            optimizer=OptaxTrainer(optax.adam(1e-3), part=part),
            collocation=odefit.Grid(1000),
            key=jr.key(2),
            progress=False,
        )
        for part in (None, 256)
    ]
    a, b = (eqx.filter(r.model, eqx.is_inexact_array) for r in results)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(
        results[0].history["loss"], results[1].history["loss"], rtol=1e-10
    )
