"""A fit that diverges or stalls stops, returns its last finite model and says why;
`throw=True` raises instead."""

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np
import optax
import pytest

import odefit
from odefit._trainers import AbstractTrainer, OptaxTrainer


def decay(t, y, args):
    return -2.0 * y


PROBLEM = odefit.IVP(decay, t0=0.0, t1=1.0, y0=1.0)
MODEL = odefit.PINN(PROBLEM, width=8, depth=2, key=jr.key(0))
COLLOCATION = odefit.Uniform(32)


def arrays(tree):
    return jtu.tree_leaves(eqx.filter(tree, eqx.is_array))


def assert_identical(a, b):
    for x, y in zip(arrays(a), arrays(b), strict=True):
        np.testing.assert_array_equal(x, y)


def assert_finite_result(result, steps):
    assert result.steps < steps
    for values in result.history.values():
        assert values.shape == (result.steps,)
        assert np.isfinite(values).all()
    for leaf in arrays(result.model):
        assert np.isfinite(leaf).all()


def fit(problem=PROBLEM, model=MODEL, **kwargs):
    options = dict(
        steps=200,
        optimizer=optax.sgd(10.0),
        collocation=COLLOCATION,
        key=jr.key(1),
        progress=False,
        chunk_size=20,
    )
    options.update(kwargs)
    return odefit.fit(problem, model, **options)


def test_learning_rate_10_diverges_to_the_best_model():
    result = fit()
    assert result.stop_reason.startswith("diverged at step")
    assert "lower learning rate" in result.stop_reason
    assert "float64" in result.stop_reason
    assert_finite_result(result, 200)
    # The loss grows by orders of magnitude long before it overflows: the fit
    # stops there and returns the model with the lowest loss seen.
    assert f"The model of step {result.steps}, with the lowest loss" in (
        result.stop_reason
    )
    if result.steps == 0:
        assert_identical(result.model, MODEL)
    else:
        shorter = fit(steps=result.steps, chunk_size=result.steps)
        assert_identical(shorter.model, result.model)


def test_divergence_in_float32():
    problem = odefit.IVP(decay, t0=0.0, t1=1.0, y0=jnp.asarray(1.0, jnp.float32))
    model = odefit.PINN(problem, width=8, depth=2, key=jr.key(0))
    result = fit(problem, model)
    assert result.stop_reason.startswith("diverged")
    assert_finite_result(result, 200)
    assert result.model.scale.dtype == jnp.float32


def test_throw_raises_on_divergence():
    with pytest.raises(RuntimeError, match=r"diverged at step \d+: the loss became"):
        fit(throw=True)


def test_non_finite_loss_at_the_start():
    def field(t, y, args):
        # Finite at t0, so the problem is accepted; NaN on half the interval.
        return jnp.where(t > 0.5, jnp.nan, -y)

    problem = odefit.IVP(field, t0=0.0, t1=1.0, y0=1.0)
    model = odefit.PINN(problem, width=8, depth=2, key=jr.key(0))
    result = fit(problem, model, optimizer=optax.adam(1e-3))
    assert result.stop_reason.startswith(
        "diverged at step 0: the loss of the initial model is nan"
    )
    assert "whole interval" in result.stop_reason
    assert result.steps == 0
    assert_identical(result.model, model)


class _Poisoned(AbstractTrainer):
    """Adam, except that the parameters after step `at` are NaN."""

    inner: OptaxTrainer
    at: int

    def init(self, residuals_fn, params):
        return self.inner.init(residuals_fn, params), jnp.zeros((), jnp.int32)

    def step(self, residuals_fn, params, state):
        inner, count = state
        params, inner, stats = self.inner.step(residuals_fn, params, inner)
        params = jtu.tree_map(lambda x: jnp.where(count == self.at, jnp.nan, x), params)
        return params, (inner, count + 1), stats

    def default_collocation(self, steps):
        return odefit.Grid(16)


@pytest.mark.parametrize("at", [33, 59])
def test_non_finite_parameters(at):
    # At 33 the next loss is NaN; at 59, the last step, no loss ever sees the NaN
    # parameters and only the end-of-chunk check catches them.
    trainer = _Poisoned(OptaxTrainer(optax.adam(1e-2)), at)
    result = fit(steps=60, optimizer=trainer, chunk_size=10)
    assert result.stop_reason.startswith(f"diverged at step {at + 1}")
    assert result.steps == at
    assert_finite_result(result, 60)
    if at == 59:
        assert "the parameters became non-finite" in result.stop_reason
    reference = fit(steps=at, optimizer=trainer, chunk_size=10)
    assert_identical(reference.model, result.model)


class _Frozen(AbstractTrainer):
    """Never moves: a least-squares trainer that rejects every step, or one that
    says so with a `stalled` statistic from step `report_at` on."""

    report_at: int | None = None

    def init(self, residuals_fn, params):
        return jnp.zeros((), jnp.int32)

    def step(self, residuals_fn, params, count):
        terms = residuals_fn(params)
        losses = {name: jnp.sum(r**2) for name, r in terms.items()}
        stats = {"loss": sum(losses.values()), **losses}
        if self.report_at is not None:
            stats["stalled"] = (count >= self.report_at).astype(stats["loss"].dtype)
        return params, count + 1, stats

    def default_collocation(self, steps):
        return odefit.Grid(16)


def test_stalled_trainer():
    result = fit(steps=500, optimizer=_Frozen(), collocation=None)
    assert result.stop_reason.startswith("stalled at step 0: the loss ("), (
        result.stop_reason
    )
    assert "has not changed in" in result.stop_reason
    assert result.steps < 500
    with pytest.raises(RuntimeError, match=r"stalled at step 0"):
        fit(steps=500, optimizer=_Frozen(), collocation=None, throw=True)


def test_trainer_reporting_a_stall():
    result = fit(steps=500, optimizer=_Frozen(report_at=30), collocation=None)
    assert result.stop_reason.startswith(
        "stalled at step 30: the trainer reports that it can make no progress"
    )
    # The model of the step at which it stalled, not of the end of its chunk.
    assert result.steps == 30


def test_levenberg_marquardt_stalls_in_float32():
    # In float32 Levenberg–Marquardt soon reaches rounding level and then rejects
    # every step: the fit stops instead of running on.
    problem = odefit.IVP(decay, t0=0.0, t1=1.0, y0=jnp.asarray(1.0, jnp.float32))
    model = odefit.PINN(problem, width=8, depth=1, key=jr.key(0))
    result = odefit.fit(
        problem,
        model,
        steps=2000,
        optimizer=odefit.LevenbergMarquardt(),
        collocation=odefit.Grid(32),
        key=jr.key(1),
        progress=False,
    )
    assert result.stop_reason.startswith("stalled at step"), result.stop_reason
    assert result.steps < 2000
    loss = result.history["loss"]
    assert np.isfinite(loss).all()
    assert loss[-1] == loss[-50]
    assert loss[-1] < 1e-3 * loss[0]


def test_divergence_writes_the_last_finite_model(tmp_path):
    path = tmp_path / "run.ckpt"
    result = fit(checkpoint_path=path)
    assert result.stop_reason.startswith("diverged")
    loaded = odefit.load(path, PROBLEM, MODEL)
    assert loaded.steps == result.steps
    assert loaded.stop_reason == result.stop_reason
    assert_identical(loaded.model, result.model)
