import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import odefit


def _peak(ts):
    return 100.0 * jnp.exp(-(((ts - 0.7) / 0.02) ** 2))


def test_initial_grid_fixed_between_redraws(getkey):
    colloc = odefit.Adaptive(16, every=3)
    state = colloc.init(0.0, 1.0, jnp.float64)
    sample = jax.jit(lambda s, k: colloc.sample(s, 0.0, 1.0, _peak, key=k))
    seen = []
    for _ in range(7):
        ts, state = sample(state, getkey())
        seen.append(np.asarray(ts))
    np.testing.assert_array_equal(seen[0], np.linspace(0.0, 1.0, 16))
    np.testing.assert_array_equal(seen[1], seen[0])
    np.testing.assert_array_equal(seen[2], seen[0])
    assert not np.array_equal(seen[3], seen[0])  # redrawn at step 3
    np.testing.assert_array_equal(seen[4], seen[3])
    np.testing.assert_array_equal(seen[5], seen[3])
    assert not np.array_equal(seen[6], seen[3])  # and at step 6
    for ts in seen:
        assert np.all(np.diff(ts) >= 0) and ts.min() >= 0.0 and ts.max() <= 1.0
        assert ts.dtype == np.float64


def test_points_concentrate_where_the_residual_is_large(getkey):
    state = (jnp.linspace(0.0, 1.0, 64), jnp.asarray(1, jnp.int32))
    # Without the uniform floor every point comes from where the residual is
    # non-negligible.
    sharp = odefit.Adaptive(64, every=1, candidates=2048, floor=0.0)
    ts, _ = sharp.sample(state, 0.0, 1.0, _peak, key=getkey())
    assert np.all(np.abs(np.asarray(ts) - 0.7) < 0.1)
    # With the default floor c = 1, the density is |R|/mean|R| + 1: about half
    # of the mass sits in the peak (which covers ~3.5% of the interval).
    mixed = odefit.Adaptive(256, every=1, candidates=4096)
    state = (jnp.linspace(0.0, 1.0, 256), jnp.asarray(1, jnp.int32))
    ts, _ = mixed.sample(state, 0.0, 1.0, _peak, key=getkey())
    near = float(np.mean(np.abs(np.asarray(ts) - 0.7) < 0.05))
    assert 0.35 < near < 0.75
    # Zero residual and no floor: uniform sampling, no NaNs.
    flat = odefit.Adaptive(32, every=1, floor=0.0)
    state = (jnp.linspace(0.0, 1.0, 32), jnp.asarray(1, jnp.int32))
    ts, _ = flat.sample(state, 0.0, 1.0, jnp.zeros_like, key=getkey())
    assert np.all(np.isfinite(np.asarray(ts)))


def test_adaptive_collocation_in_fit(getkey):
    problem = odefit.IVP(lambda t, y, args: -2.0 * y, 0.0, 2.0, 1.0)
    model = odefit.PINN(problem, width=8, depth=2, key=getkey())
    result = odefit.fit(
        problem,
        model,
        steps=40,
        optimizer=odefit.LevenbergMarquardt(),
        collocation=odefit.Adaptive(32, every=10),
        key=getkey(),
        progress=False,
    )
    ts, count = result.collocation_state
    assert int(count) == 40
    assert not np.allclose(np.asarray(ts), np.linspace(0.0, 2.0, 32))
    grid = jnp.linspace(0.0, 2.0, 501)
    pred = jax.vmap(result.model)(grid)
    assert float(odefit.relative_l2(pred, jnp.exp(-2.0 * grid))) < 1e-4


def test_sample_traces_once(getkey):
    colloc = odefit.Adaptive(8, every=2)

    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def sample(state, key):
        return colloc.sample(state, 0.0, 1.0, _peak, key=key)

    state = colloc.init(0.0, 1.0, jnp.float64)
    for _ in range(4):
        _, state = sample(state, getkey())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n": 0}, "`n` must be an integer >= 1"),
        ({"n": 8, "every": 0}, "`every` must be an integer >= 1"),
        ({"n": 8, "candidates": 4}, "`candidates` must be at least `n`"),
        ({"n": 8, "exponent": -1.0}, "`exponent` must be a finite number >= 0"),
        ({"n": 8, "floor": float("nan")}, "`floor` must be a finite number >= 0"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        odefit.Adaptive(**kwargs)


def test_uses_key(getkey):
    colloc = odefit.Adaptive(16, every=1)
    state = (jnp.linspace(0.0, 1.0, 16), jnp.asarray(1, jnp.int32))
    a, _ = colloc.sample(state, 0.0, 1.0, _peak, key=jr.key(0))
    b, _ = colloc.sample(state, 0.0, 1.0, _peak, key=jr.key(0))
    c, _ = colloc.sample(state, 0.0, 1.0, _peak, key=jr.key(1))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
