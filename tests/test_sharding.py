"""Several devices: collocation points sharded in `fit`, members in `fit_ensemble`.

The multi-device runs happen in a subprocess, since the number of host (CPU)
devices must be fixed before JAX starts."""

import os
import subprocess
import sys
import textwrap

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

import odefit

# Run in the child (4 CPU devices) and, for the one-device reference, in this
# process: the same fits, with the same keys.
SETUP = textwrap.dedent(
    """
    import equinox as eqx, jax, jax.numpy as jnp, jax.random as jr, numpy as np, optax
    import odefit

    def oscillator(t, y, dy, damping):
        return -400.0 * y - damping * dy

    problem = odefit.SecondOrderIVP(oscillator, 0.0, 1.0, 1.0, 0.0, args=4.0)
    model = odefit.PINN(problem, width=8, depth=2, key=jr.key(0), scale=1.0)
    optimizer = optax.adam(1e-2)
    collocation = odefit.Uniform(64, warmup=20)
    problems = [
        odefit.SecondOrderIVP(oscillator, 0.0, 1.0, 1.0, 0.0, args=c)
        for c in (1.0, 2.0, 4.0, 8.0)
    ]
    models = [
        odefit.PINN(p, width=8, depth=2, key=k, scale=1.0)
        for p, k in zip(problems, jr.split(jr.key(2), 4))
    ]

    def flat(tree):
        arrays = jax.tree.leaves(eqx.filter(tree, eqx.is_array))
        return np.concatenate([np.ravel(np.asarray(x)) for x in arrays])

    def run_fit(devices):
        return odefit.fit(problem, model, steps=40, optimizer=optimizer,
                          collocation=collocation, key=jr.key(1), chunk_size=20,
                          progress=False, devices=devices)

    def run_ensemble(devices):
        return odefit.fit_ensemble(problems, models, steps=40, optimizer=optimizer,
                                   collocation=collocation, key=jr.key(3),
                                   chunk_size=20, progress=False, devices=devices)
    """
)

CHILD = (
    textwrap.dedent(
        """
    import sys
    import jax
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_numpy_dtype_promotion", "strict")
    """
    )
    + SETUP
    + textwrap.dedent(
        """
    devices = jax.devices()
    assert len(devices) == 4, devices
    out = {}
    for name, d in (("fit_one", None), ("fit_four", devices)):
        r = run_fit(d)
        out[name] = flat(r.model)
        out[name + "_loss"] = r.history["loss"]
    # The trained parameters are replicated on all four devices...
    weight = r.model.mlp.layers[0].weight
    assert len(weight.sharding.device_set) == 4 and weight.sharding.is_fully_replicated
    # ...and each step's points are split across them.
    from odefit._sharding import shard_points
    sharded = shard_points(collocation, tuple(devices))
    ts = jax.jit(
        lambda k: sharded.sample(sharded.init(0.0, 1.0, jnp.float64), 0.0, 1.0,
                                 None, key=k)[0]
    )(jr.key(0))
    assert len(ts.sharding.device_set) == 4 and not ts.sharding.is_fully_replicated
    assert {s.data.shape for s in ts.addressable_shards} == {(16,)}
    for name, d in (("ensemble_one", None), ("ensemble_four", devices)):
        r = run_ensemble(d)
        out[name] = flat(r.models)
        out[name + "_loss"] = r.history["loss"]
    # The members' keys were split across the four devices.
    assert len(r.keys.sharding.device_set) == 4
    assert not r.keys.sharding.is_fully_replicated
    try:
        odefit.fit_ensemble(problems[:3], models[:3], steps=2, key=jr.key(3),
                            progress=False, devices=devices)
        out["indivisible_error"] = ""
    except ValueError as e:
        out["indivisible_error"] = str(e)
    np.savez(sys.argv[1], **out)
    """
    )
)


@pytest.fixture(scope="module")
def four_devices(tmp_path_factory):
    path = tmp_path_factory.mktemp("sharding") / "out.npz"
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    ).strip()
    env["JAX_PLATFORMS"] = "cpu"  # the forced device count is for host devices
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return dict(np.load(path))


def one_device_runs():
    namespace: dict = {}
    exec(SETUP, namespace)
    return namespace


def test_four_devices_give_the_one_device_fit(four_devices):
    ns = one_device_runs()
    here = ns["run_fit"](None)
    # Four devices against one, both in the child, and against this process.
    for reference in (four_devices["fit_one"], ns["flat"](here.model)):
        np.testing.assert_allclose(
            four_devices["fit_four"], reference, rtol=1e-9, atol=1e-12
        )
    np.testing.assert_allclose(
        four_devices["fit_four_loss"], here.history["loss"], rtol=1e-9
    )
    assert here.history["loss"][-1] < here.history["loss"][0]


def test_four_devices_give_the_one_device_ensemble(four_devices):
    np.testing.assert_allclose(
        four_devices["ensemble_four"],
        four_devices["ensemble_one"],
        rtol=1e-9,
        atol=1e-12,
    )
    np.testing.assert_allclose(
        four_devices["ensemble_four_loss"],
        four_devices["ensemble_one_loss"],
        rtol=1e-9,
    )
    assert "divisible by the number of `devices` (4)" in str(
        four_devices["indivisible_error"]
    )


def test_one_device_list_is_the_default():
    problem = odefit.IVP(lambda t, y, args: -2.0 * y, 0.0, 1.0, 1.0)
    model = odefit.PINN(problem, width=8, depth=1, key=jr.key(0), scale=1.0)
    kwargs = dict(
        steps=20,
        optimizer=optax.adam(1e-2),
        collocation=odefit.Grid(16),
        key=jr.key(1),
        progress=False,
    )
    a = odefit.fit(problem, model, **kwargs)
    b = odefit.fit(problem, model, devices=jax.devices()[:1], **kwargs)
    for x, y in zip(
        jax.tree.leaves(eqx.filter(a.model, eqx.is_array)),
        jax.tree.leaves(eqx.filter(b.model, eqx.is_array)),
        strict=True,
    ):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_bad_devices_are_named():
    problem = odefit.IVP(lambda t, y, args: -y, 0.0, 1.0, 1.0)
    model = odefit.PINN(problem, width=4, depth=1, key=jr.key(0), scale=1.0)

    def run(devices):
        odefit.fit(
            problem, model, steps=2, key=jr.key(1), progress=False, devices=devices
        )

    device = jax.devices()[0]
    with pytest.raises(TypeError, match="`devices` must be None or a sequence"):
        run(device)
    with pytest.raises(TypeError, match="`devices` must contain jax devices"):
        run(["cpu"])
    with pytest.raises(ValueError, match="`devices` must not be empty"):
        run([])
    with pytest.raises(ValueError, match="lists a device more than once"):
        run([device, device])
    assert jnp.asarray(1.0).devices() == {device}
