"""The same key gives the same fit, bit for bit, on CPU: run to run, after
recompiling, and whatever the chunking."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np
import pytest

import odefit


def logistic(t, y, args):
    return y * (1.0 - y)


PROBLEM = odefit.IVP(logistic, t0=0.0, t1=4.0, y0=jnp.array([0.1, 0.5]))
MODEL = odefit.PINN(PROBLEM, width=8, depth=2, key=jr.key(0))


def fit(**kwargs):
    # Defaults on purpose: Adam with its schedule, Uniform points with warm-up.
    options = dict(steps=120, key=jr.key(1), progress=False)
    options.update(kwargs)
    return odefit.fit(PROBLEM, MODEL, **options)


def leaves(result):
    tree = (result.model, result.opt_state, result.collocation_state)
    return jtu.tree_leaves(eqx.filter(tree, eqx.is_array))


def same(a, b) -> bool:
    if set(a.history) != set(b.history):
        return False
    return all(
        np.array_equal(a.history[name], b.history[name]) for name in a.history
    ) and all(np.array_equal(x, y) for x, y in zip(leaves(a), leaves(b), strict=True))


@pytest.fixture(scope="module")
def reference():
    return fit()


def test_same_key_same_result(reference):
    assert reference.stop_reason == "completed"
    assert same(fit(), reference)


def test_same_result_after_recompiling(reference):
    jax.clear_caches()
    assert same(fit(), reference)


@pytest.mark.parametrize("chunk_size", [1, 7, 120])
def test_chunking_does_not_change_the_result(reference, chunk_size):
    assert same(fit(chunk_size=chunk_size), reference)


def test_another_key_gives_another_result(reference):
    assert not same(fit(key=jr.key(2)), reference)


@pytest.mark.slow
def test_least_squares_is_deterministic():
    options = dict(
        steps=30,
        optimizer=odefit.LevenbergMarquardt(),
        collocation=odefit.Grid(32),
        chunk_size=10,
    )
    first = fit(**options)
    assert same(fit(**options), first)
    assert same(fit(**{**options, "chunk_size": 4}), first)
