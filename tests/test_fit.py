import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

import odefit
from odefit._loop import run_chunk as _run_chunk
from odefit._losses import check_weights, loss_terms
from odefit._trainers import total_loss


def _decay(rate=2.0):
    return odefit.IVP(lambda t, y, args: -args * y, 0.0, 2.0, 1.0, args=rate)


def _system():
    def field(t, y, args):
        return jnp.stack([y[1], -4.0 * y[0] - 0.5 * y[1] + jnp.sin(t)])

    return odefit.IVP(field, 0.0, 3.0, jnp.array([1.0, 0.0]))


def test_loss_gradient_matches_finite_differences(getkey):
    problem = _system()
    model = odefit.PINN(problem, width=8, depth=2, key=getkey())
    ts = jr.uniform(getkey(), (16,), minval=0.0, maxval=3.0)
    params, static = eqx.partition(model, model.trainable())
    weights = check_weights(None)

    def loss(p):
        m = eqx.combine(p, static)
        return total_loss(loss_terms(m, problem, ts, weights=weights))[0]

    grads = jax.grad(loss)(params)
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    flat_grads, _ = jax.flatten_util.ravel_pytree(grads)
    h = 1e-6
    for i in np.random.default_rng(0).choice(flat.size, 12, replace=False):
        e = jnp.zeros_like(flat).at[i].set(h)
        fd = (loss(unravel(flat + e)) - loss(unravel(flat - e))) / (2 * h)
        np.testing.assert_allclose(flat_grads[i], fd, rtol=1e-6, atol=1e-8)


def test_forward_gradient_matches_reverse(getkey):
    problem = _system()
    model = odefit.PINN(problem, width=8, depth=2, key=getkey())
    ts = jnp.linspace(0.0, 3.0, 10)
    params, static = eqx.partition(model, model.trainable())
    weights = check_weights(None)
    flat, unravel = jax.flatten_util.ravel_pytree(params)

    def loss(x):
        m = eqx.combine(unravel(x), static)
        return total_loss(loss_terms(m, problem, ts, weights=weights))[0]

    direction = jr.normal(getkey(), flat.shape)
    _, forward = jax.jvp(loss, (flat,), (direction,))
    reverse = jnp.dot(jax.grad(loss)(flat), direction)
    np.testing.assert_allclose(forward, reverse, rtol=1e-10)


def test_history_and_loss_decrease(getkey):
    problem = _decay()
    model = odefit.PINN(problem, width=16, depth=2, key=getkey())
    result = odefit.fit(problem, model, steps=600, key=getkey(), progress=False)
    assert result.stop_reason == "completed"
    assert result.steps == 600
    assert set(result.history) == {"loss", "residual"}
    assert result.history["loss"].shape == (600,)
    np.testing.assert_allclose(result.history["loss"], result.history["residual"])
    assert (
        result.history["loss"][-50:].mean() < 0.1 * result.history["loss"][:50].mean()
    )


def test_compiled_chunk_is_not_retraced(getkey):
    problem = _decay(3.0)
    model = odefit.PINN(problem, width=8, depth=1, key=getkey())
    before = eqx.debug.get_num_traces(_run_chunk)
    odefit.fit(problem, model, steps=40, chunk_size=10, key=getkey(), progress=False)
    assert eqx.debug.get_num_traces(_run_chunk) == before + 1
    # Same shapes and same static configuration: no new trace either.
    odefit.fit(problem, model, steps=40, chunk_size=10, key=getkey(), progress=False)
    assert eqx.debug.get_num_traces(_run_chunk) == before + 1


def test_chunking_does_not_change_the_result(getkey):
    problem = _decay()
    model = odefit.PINN(problem, width=8, depth=2, key=getkey())
    key = getkey()
    a = odefit.fit(problem, model, steps=60, chunk_size=60, key=key, progress=False)
    b = odefit.fit(problem, model, steps=60, chunk_size=7, key=key, progress=False)
    for x, y in zip(
        jax.tree.leaves(eqx.filter(a.model, eqx.is_array)),
        jax.tree.leaves(eqx.filter(b.model, eqx.is_array)),
        strict=True,
    ):
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(a.history["loss"], b.history["loss"], rtol=1e-12)


def test_continue_from_result(getkey):
    problem = _decay()
    model = odefit.PINN(problem, width=16, depth=2, key=getkey())
    first = odefit.fit(problem, model, steps=300, key=getkey(), progress=False)
    second = odefit.fit(
        problem,
        first.model,
        steps=300,
        optimizer=optax.adam(1e-3),
        collocation=odefit.Uniform(256),
        key=getkey(),
        progress=False,
    )
    assert second.history["loss"][-50:].mean() < first.history["loss"][-50:].mean()


def test_lbfgs_on_a_grid(getkey):
    problem = _decay()
    model = odefit.PINN(problem, width=16, depth=2, key=getkey())
    warm = odefit.fit(problem, model, steps=500, key=getkey(), progress=False)
    result = odefit.fit(
        problem,
        warm.model,
        steps=300,
        optimizer=optax.lbfgs(),
        collocation=odefit.Grid(128),
        key=getkey(),
        progress=False,
    )
    assert result.history["loss"][-1] < 1e-3 * result.history["loss"][0]
    ts = jnp.linspace(0.0, 2.0, 201)
    error = odefit.relative_l2(jax.vmap(result.model)(ts), problem.solve(ts))
    assert error < 1e-4


def test_fit_rejects_bad_arguments(getkey):
    problem = _decay()
    model = odefit.PINN(problem, width=4, depth=1, key=getkey())
    with pytest.raises(ValueError, match="`steps` must be an integer >= 1, got 0"):
        odefit.fit(problem, model, steps=0, key=getkey())
    with pytest.raises(TypeError, match="`optimizer` must be an optax"):
        odefit.fit(problem, model, steps=1, optimizer="adam", key=getkey())
    with pytest.raises(TypeError, match="`collocation` must be"):
        odefit.fit(problem, model, steps=1, collocation=128, key=getkey())
    with pytest.raises(ValueError, match="`weights` has an unknown term 'physics'"):
        odefit.fit(problem, model, steps=1, weights={"physics": 1.0}, key=getkey())
    other = odefit.IVP(lambda t, y, args: -y, 0.0, 5.0, 1.0)
    with pytest.raises(ValueError, match=r"`model` was built for \[0.0, 2.0\]"):
        odefit.fit(other, model, steps=1, key=getkey())


def test_import_does_not_pull_torch_or_matplotlib():
    import subprocess
    import sys

    code = (
        "import sys, odefit; "
        "bad = [m for m in ('torch', 'matplotlib') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
