import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import odefit


def _problem():
    return odefit.IVP(lambda t, y, args: -y, 0.5, 3.0, jnp.array([1.0, -2.0]))


def test_initial_condition_exact(getkey):
    problem = _problem()
    model = odefit.PINN(problem, width=8, depth=2, key=getkey())
    np.testing.assert_array_equal(model(0.5), problem.y0)
    assert model(1.7).shape == (2,)
    assert model(1.7).dtype == jnp.float64


def test_scalar_state(getkey):
    problem = odefit.IVP(lambda t, y, args: -y, 0.0, 1.0, 2.0)
    model = odefit.PINN(problem, width=8, depth=1, key=getkey())
    assert model(0.3).shape == ()
    assert jax.vmap(model)(jnp.linspace(0, 1, 7)).shape == (7,)


def test_soft_constraints_leave_output_free(getkey):
    problem = _problem()
    model = odefit.PINN(problem, width=8, depth=2, hard_constraints=False, key=getkey())
    assert model.condition is None
    assert not np.allclose(model(0.5), problem.y0)


def test_trainable_is_only_the_network(getkey):
    model = odefit.PINN(_problem(), width=8, depth=2, key=getkey())
    params, _ = eqx.partition(model, model.trainable())
    assert params.condition is None or all(
        x is None
        for x in jax.tree.leaves(params.condition, is_leaf=lambda x: x is None)
    )
    assert params.scale is None
    n_params = sum(x.size for x in jax.tree.leaves(params))
    assert n_params == (1 * 8 + 8) + (8 * 8 + 8) + (8 * 2 + 2)


def test_time_derivative_matches_finite_differences(getkey):
    model = odefit.PINN(_problem(), width=16, depth=2, key=getkey())
    t, h = jnp.asarray(1.3), 1e-5
    _, dy = jax.jvp(model, (t,), (jnp.ones_like(t),))
    fd = (model(t + h) - model(t - h)) / (2 * h)
    np.testing.assert_allclose(dy, fd, rtol=1e-7, atol=1e-9)


def test_physics_residual_of_exact_ansatz_is_zero(getkey):
    # A network whose last layer is zero makes y(t) = y0 exactly, so for the
    # constant-solution problem y' = 0 the residual must vanish identically.
    problem = odefit.IVP(lambda t, y, args: jnp.zeros_like(y), 0.0, 2.0, jnp.ones(3))
    model = odefit.PINN(problem, width=8, depth=2, key=getkey())
    last = model.mlp.layers[-1]
    model = eqx.tree_at(
        lambda m: (m.mlp.layers[-1].weight, m.mlp.layers[-1].bias),
        model,
        (jnp.zeros_like(last.weight), jnp.zeros_like(last.bias)),
    )
    from odefit._losses import physics_residual

    r = jax.vmap(lambda t: physics_residual(model, problem, t))(
        jnp.linspace(0.0, 2.0, 9)
    )
    np.testing.assert_array_equal(r, 0.0)


@pytest.mark.parametrize("value", [0, -1, 2.5, True])
def test_bad_width(value, getkey):
    with pytest.raises(ValueError, match="`width` must be an integer >= 1"):
        odefit.PINN(_problem(), width=value, depth=2, key=getkey())


def test_bad_scale_shape(getkey):
    with pytest.raises(ValueError, match="`scale` has shape"):
        odefit.PINN(_problem(), width=4, depth=1, scale=jnp.ones(3), key=getkey())
