"""`PINN(problem, network=...)` with any Equinox network, and the two networks
odefit ships for it: `FourierMLP` and `ResidualMLP`."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import odefit


class TwoLayerTanh(eqx.Module):
    """A user's own network, written without `eqx.nn`: x -> W2 tanh(W1 x + b1) + b2."""

    w1: jax.Array
    b1: jax.Array
    w2: jax.Array
    b2: jax.Array

    def __init__(self, width: int, out_size: int, *, key):
        k1, k2 = jr.split(key)
        self.w1 = jr.normal(k1, (width, 1))
        self.b1 = jnp.zeros(width)
        self.w2 = jr.normal(k2, (out_size, width)) / jnp.sqrt(width)
        self.b2 = jnp.zeros(out_size)

    def __call__(self, x):
        return self.w2 @ jnp.tanh(self.w1 @ x + self.b1) + self.b2


DECAY = odefit.IVP(lambda t, y, args: -2.0 * y, 0.0, 1.0, 1.0)
TS = jnp.linspace(0.0, 1.0, 201)


def _decay_error(model) -> float:
    return float(odefit.relative_l2(jax.vmap(model)(TS), jnp.exp(-2.0 * TS)))


def _fit_lm(model, steps=100, points=64):
    return odefit.fit(
        DECAY,
        model,
        steps=steps,
        optimizer=odefit.LevenbergMarquardt(points=points),
        key=jr.key(1),
        progress=False,
    )


def test_user_network_fits_exponential_decay(getkey):
    model = odefit.PINN(DECAY, network=TwoLayerTanh(16, 1, key=getkey()))
    assert _decay_error(model) > 1e-2
    result = _fit_lm(model)
    # Measured 2.2e-8 (conftest seed, 100 LM steps, 64 points).
    assert _decay_error(result.model) <= 1e-4
    assert isinstance(result.model.network, TwoLayerTanh)


def test_user_network_condition_is_exact(getkey):
    problem = odefit.IVP(lambda t, y, args: -y, 0.5, 3.0, jnp.array([1.0, -2.0]))
    model = odefit.PINN(problem, network=TwoLayerTanh(8, 2, key=getkey()))
    np.testing.assert_array_equal(model(0.5), problem.y0)
    assert model(1.7).shape == (2,)
    assert model(1.7).dtype == jnp.float64
    bvp = odefit.BVP(lambda t, y, dy, args: -y, 0.0, 2.0, 1.0, -0.5)
    model = odefit.PINN(bvp, network=TwoLayerTanh(8, 1, key=getkey()))
    np.testing.assert_array_equal(model(0.0), 1.0)
    np.testing.assert_array_equal(model(2.0), -0.5)


def test_user_network_output_of_any_shape(getkey):
    class Matrix(eqx.Module):
        linear: eqx.nn.Linear

        def __call__(self, x):
            return self.linear(x).reshape(2, 1)

    problem = odefit.IVP(lambda t, y, args: -y, 0.0, 1.0, jnp.array([1.0, 2.0]))
    model = odefit.PINN(problem, network=Matrix(eqx.nn.Linear(1, 2, key=getkey())))
    assert model(0.3).shape == (2,)


def test_network_sees_scaled_time_and_output_is_scaled(getkey):
    seen = []

    class Record(eqx.Module):
        def __call__(self, x):
            seen.append(x)
            return jnp.ones(2)

    problem = odefit.IVP(lambda t, y, args: -y, 1.0, 3.0, jnp.array([1.0, 2.0]))
    model = odefit.PINN(
        problem, network=Record(), hard_constraints=False, scale=jnp.array([3.0, 5.0])
    )
    seen.clear()
    np.testing.assert_array_equal(model(2.5), [3.0, 5.0])
    (tau,) = seen
    assert tau.shape == (1,)
    np.testing.assert_allclose(tau, [0.5])


def test_trainable_is_every_inexact_array_of_the_network(getkey):
    model = odefit.PINN(DECAY, network=TwoLayerTanh(8, 1, key=getkey()))
    params, _ = eqx.partition(model, model.trainable())
    assert params.scale is None
    assert sum(x.size for x in jax.tree.leaves(params)) == 8 + 8 + 8 + 1


def test_network_trainable_hook(getkey):
    class HalfFrozen(eqx.Module):
        frozen: jax.Array
        free: jax.Array

        def __call__(self, x):
            return self.frozen * x + self.free

        def trainable(self):
            return HalfFrozen(frozen=False, free=True)

    net = HalfFrozen(jnp.ones(1), jnp.zeros(1))
    model = odefit.PINN(DECAY, network=net)
    params, _ = eqx.partition(model, model.trainable())
    assert params.network.frozen is None
    assert params.network.free is not None
    result = _fit_lm(model, steps=3)
    np.testing.assert_array_equal(result.model.network.frozen, net.frozen)


def test_mlp_is_the_network(getkey):
    model = odefit.PINN(DECAY, width=8, depth=2, key=getkey())
    assert isinstance(model.network, eqx.nn.MLP)
    assert model.mlp is model.network
    assert model.mlp.width_size == 8
    # `eqx.tree_at` through the old name still replaces the network.
    zero = jax.tree.map(
        lambda x: jnp.zeros_like(x) if eqx.is_array(x) else x, model.mlp
    )
    model = eqx.tree_at(lambda m: m.mlp, model, zero)
    np.testing.assert_array_equal(model.network.layers[0].weight, 0.0)
    np.testing.assert_array_equal(model(0.7), 1.0)


def test_residual_scale_and_conditions_built_in(getkey):
    model = odefit.PINN(DECAY, width=4, depth=1, scale=3.0, key=getkey())
    np.testing.assert_array_equal(model.residual_scale(), 3.0)
    assert model.conditions_built_in()
    soft = odefit.PINN(DECAY, width=4, depth=1, hard_constraints=False, key=getkey())
    assert not soft.conditions_built_in()


def test_construction_under_vmap(getkey):
    keys = jr.split(getkey(), 3)
    models = eqx.filter_vmap(
        lambda k: odefit.PINN(DECAY, network=TwoLayerTanh(4, 1, key=k))
    )(keys)
    ys = eqx.filter_vmap(lambda m: m(0.8))(models)
    assert ys.shape == (3,)
    assert len(set(np.asarray(ys).tolist())) == 3


# -- validation ------------------------------------------------------------------


def test_network_not_callable():
    with pytest.raises(ValueError, match=r"`network` must be callable.*got int"):
        odefit.PINN(DECAY, network=3)


def test_network_wrong_output_size(getkey):
    problem = odefit.IVP(lambda t, y, args: -y, 0.0, 1.0, jnp.array([1.0, 2.0]))
    net = eqx.nn.MLP(1, 3, 4, 1, key=getkey())
    with pytest.raises(
        ValueError,
        match=r"`network` returned shape \(3,\) \(3 elements\) .* the state has "
        r"shape \(2,\): the output must have 2 element",
    ):
        odefit.PINN(problem, network=net)


def test_network_that_raises(getkey):
    net = eqx.nn.MLP(2, 1, 4, 1, key=getkey())
    with pytest.raises(
        ValueError,
        match=r"`network` raised TypeError when called on the scaled time τ, an "
        r"array of shape \(1,\) and dtype float64",
    ):
        odefit.PINN(DECAY, network=net)


def test_network_returning_a_tuple():
    with pytest.raises(
        ValueError, match=r"`network` must return one array, .* returned tuple"
    ):
        odefit.PINN(DECAY, network=lambda x: (x, x))


def test_network_wrong_dtype():
    with pytest.raises(
        ValueError, match=r"`network` returned dtype float32 .* dtype float64"
    ):
        odefit.PINN(DECAY, network=lambda x: jnp.ones(1, jnp.float32))


def test_network_bad_trainable_hook():
    class Bad(eqx.Module):
        w: jax.Array

        def __call__(self, x):
            return self.w * x

        def trainable(self):
            return (True, False)

    with pytest.raises(ValueError, match=r"`network.trainable\(\)` must return"):
        odefit.PINN(DECAY, network=Bad(jnp.ones(1)))


@pytest.mark.parametrize(
    "options", [dict(width=8), dict(depth=2), dict(activation=jnp.sin)]
)
def test_mlp_options_with_network(options, getkey):
    (name,) = options
    with pytest.raises(
        TypeError, match=rf"`{name}` cannot be given together with `network`"
    ):
        odefit.PINN(DECAY, network=TwoLayerTanh(4, 1, key=getkey()), **options)


def test_key_required_without_network():
    with pytest.raises(TypeError, match=r"`key` is required"):
        odefit.PINN(DECAY, width=8)


# -- FourierMLP ------------------------------------------------------------------


def test_fourier_mlp_fits_and_keeps_its_frequencies(getkey):
    net = odefit.FourierMLP(out_size=1, width=16, depth=2, frequencies=4, key=getkey())
    model = odefit.PINN(DECAY, network=net)
    params, _ = eqx.partition(model, model.trainable())
    assert params.network.frequencies is None
    result = _fit_lm(model, points=128)
    # Measured 6.1e-8 (conftest seed, 100 LM steps, 128 points).
    assert _decay_error(result.model) <= 1e-4
    np.testing.assert_array_equal(result.model.network.frequencies, net.frequencies)


def test_fourier_mlp_frequencies_are_fixed_under_adam(getkey):
    # Even a loop that trains every inexact array leaves the frequencies alone.
    net = odefit.FourierMLP(out_size=1, width=8, depth=1, frequencies=3, key=getkey())
    model = odefit.PINN(DECAY, network=net, hard_constraints=False)
    grads = eqx.filter_grad(lambda m: jnp.sum(jax.vmap(m)(TS) ** 2))(model)
    np.testing.assert_array_equal(grads.network.frequencies, 0.0)


def test_fourier_mlp_embedding(getkey):
    b = jnp.array([0.5, 2.0])
    net = odefit.FourierMLP(out_size=2, width=4, depth=1, frequencies=b, key=getkey())
    assert net.frequencies.shape == (2, 1)
    x = jnp.array([0.3])
    angle = 2 * jnp.pi * b * 0.3
    features = jnp.concatenate([jnp.sin(angle), jnp.cos(angle)])
    np.testing.assert_allclose(net(x), net.mlp(features), rtol=1e-14)
    drawn = odefit.FourierMLP(
        out_size=1, frequencies=1000, sigma=3.0, width=4, depth=1, key=getkey()
    )
    assert drawn.frequencies.shape == (1000, 1)
    assert 2.7 < float(jnp.std(drawn.frequencies)) < 3.3
    assert drawn.frequencies.dtype == jnp.float64


def test_fourier_mlp_validation(getkey):
    with pytest.raises(ValueError, match=r"`frequencies` must be an integer >= 1"):
        odefit.FourierMLP(out_size=1, frequencies=0, key=getkey())
    with pytest.raises(ValueError, match=r"`sigma` must be a finite number > 0"):
        odefit.FourierMLP(out_size=1, sigma=-1.0, key=getkey())
    with pytest.raises(TypeError, match=r"`sigma` only applies"):
        odefit.FourierMLP(out_size=1, frequencies=jnp.ones(3), sigma=2.0, key=getkey())
    with pytest.raises(ValueError, match=r"shape \(m, in_size\) = \(m, 2\)"):
        odefit.FourierMLP(in_size=2, out_size=1, frequencies=jnp.ones(3), key=getkey())


# -- ResidualMLP -----------------------------------------------------------------


def test_residual_mlp_fits(getkey):
    net = odefit.ResidualMLP(out_size=1, width=16, depth=3, key=getkey())
    result = _fit_lm(odefit.PINN(DECAY, network=net))
    # Measured 2.1e-9 (conftest seed, 100 LM steps, 64 points).
    assert _decay_error(result.model) <= 1e-4


def test_residual_mlp_structure(getkey):
    net = odefit.ResidualMLP(in_size=2, out_size=3, width=5, depth=3, key=getkey())
    mlp = eqx.nn.MLP(2, 3, 5, 3, key=getkey())
    shapes = [x.shape for x in jax.tree.leaves(eqx.filter(net, eqx.is_array))]
    assert shapes == [x.shape for x in jax.tree.leaves(eqx.filter(mlp, eqx.is_array))]
    # Same weights as the MLP: the skip connections are the only difference.
    net = eqx.tree_at(lambda n: n.layers, net, mlp.layers)
    x = jnp.array([0.2, -0.4])
    h = jnp.tanh(mlp.layers[0](x))
    h = h + jnp.tanh(mlp.layers[1](h))
    h = h + jnp.tanh(mlp.layers[2](h))
    np.testing.assert_allclose(net(x), mlp.layers[3](h), rtol=1e-14)
    with pytest.raises(ValueError, match=r"`depth` must be an integer >= 1"):
        odefit.ResidualMLP(out_size=1, depth=0, key=getkey())


# -- with the rest of odefit -------------------------------------------------------


def test_custom_network_checkpoint_round_trip(getkey, tmp_path):
    net = odefit.FourierMLP(out_size=1, width=8, depth=1, frequencies=3, key=getkey())
    model = odefit.PINN(DECAY, network=net)
    result = _fit_lm(model, steps=3, points=32)
    path = tmp_path / "run.ckpt"
    odefit.save(path, result)
    loaded = odefit.load(path, DECAY, model)
    for a, b in zip(
        jax.tree.leaves(eqx.filter(loaded.model, eqx.is_array)),
        jax.tree.leaves(eqx.filter(result.model, eqx.is_array)),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)


def test_custom_networks_in_an_ensemble(getkey):
    models = [
        odefit.PINN(DECAY, network=TwoLayerTanh(8, 1, key=k))
        for k in jr.split(getkey(), 2)
    ]
    result = odefit.fit_ensemble(
        DECAY,
        models,
        steps=20,
        optimizer=odefit.LevenbergMarquardt(points=32),
        key=getkey(),
        progress=False,
    )
    assert result.models.network.w1.shape == (2, 8, 1)
    assert np.all(np.asarray(result.relative_l2(TS, jnp.exp(-2.0 * TS))) < 1e-3)
