"""Several processes with JAX's own runtime (`jax.distributed.initialize`).

Each test launches local CPU processes that meet on the loopback address and talk
through JAX's CPU collectives (gloo); every process runs the same script, like
one process per host of a cluster. The fits must equal the one-process fit."""

import os
import socket
import subprocess
import sys
import textwrap
import time

import equinox as eqx
import jax
import numpy as np
import pytest

# Run in every child process and, for the one-process reference, in this one.
SETUP = textwrap.dedent(
    """
    import equinox as eqx, jax, jax.numpy as jnp, jax.random as jr, numpy as np, optax
    import odefit

    def decay(t, y, rate):
        return -rate * y

    problem = odefit.IVP(decay, 0.0, 1.0, 1.0, args=2.0)
    model = odefit.PINN(problem, width=8, depth=1, key=jr.key(0), scale=1.0)
    optimizer = optax.adam(1e-2)
    collocation = odefit.Uniform(64, warmup=20)
    problems = [odefit.IVP(decay, 0.0, 1.0, 1.0, args=c) for c in (1.0, 2.0, 3.0, 4.0)]
    models = [
        odefit.PINN(p, width=8, depth=1, key=k, scale=1.0)
        for p, k in zip(problems, jr.split(jr.key(2), 4))
    ]
    ts = jnp.linspace(0.0, 1.0, 11)

    def flat(tree):
        arrays = jax.tree.leaves(eqx.filter(tree, eqx.is_array))
        return np.concatenate([np.ravel(np.asarray(x)) for x in arrays])

    def run_fit(**kwargs):
        options = dict(steps=40, optimizer=optimizer, collocation=collocation,
                       key=jr.key(1), chunk_size=20, progress=False)
        return odefit.fit(problem, model, **{**options, **kwargs})

    def run_ensemble(**kwargs):
        return odefit.fit_ensemble(problems, models, steps=40, optimizer=optimizer,
                                   collocation=collocation, key=jr.key(3),
                                   chunk_size=20, progress=False, **kwargs)
    """
)

CHILD = (
    textwrap.dedent(
        """
    import os, sys
    import jax

    process, processes, port, out = sys.argv[1:]
    process, processes = int(process), int(processes)
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_numpy_dtype_promotion", "strict")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=f"127.0.0.1:{port}",
        num_processes=processes,
        process_id=process,
    )
    """
    )
    + SETUP
    + textwrap.dedent(
        """
    from odefit import _checkpoint

    saves = []
    _save = _checkpoint.save
    _checkpoint.save = lambda path, result: (saves.append(path), _save(path, result))

    local = len(jax.local_devices())
    assert len(jax.devices()) == processes * local, jax.devices()
    results = {}
    # The default `devices`: every process's devices.
    fit = run_fit(progress=True)
    results["fit"] = flat(fit.model)
    results["fit_loss"] = fit.history["loss"]
    # The result is this process's own: evaluated here alone.
    results["fit_pred"] = np.asarray(jax.vmap(fit.model)(ts))

    # Process 0 alone decides to stop at step 20 and writes the checkpoint; the
    # others stop with it.
    path = os.path.join(out, "fit.ckpt")
    stop = lambda info: jax.process_index() == 0 and info.step >= 20
    stopped = run_fit(checkpoint_path=path, checkpoint_every=20, callback=stop)
    results["stopped_steps"] = stopped.steps
    results["stopped_reason"] = stopped.stop_reason
    # Every process resumes from that file to the full 40 steps.
    resumed = run_fit(checkpoint_path=path, devices=jax.devices())
    results["resumed"] = flat(resumed.model)
    results["saves"] = len(saves)

    ensemble = run_ensemble()
    results["ensemble"] = flat(ensemble.models)
    results["ensemble_loss"] = ensemble.history["loss"]
    results["ensemble_errors"] = ensemble.relative_l2(ts)
    np.savez(os.path.join(out, f"process{process}.npz"), **results)
    """
    )
)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(out, processes: int, local_devices: int = 1, timeout: float = 600):
    """Runs CHILD in `processes` processes of `local_devices` CPU devices each;
    returns each process's results and stderr."""
    env = dict(os.environ)
    env["JAX_PLATFORMS"] = "cpu"
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "")
        + f" --xla_force_host_platform_device_count={local_devices}"
    ).strip()
    port = _free_port()
    logs = [open(out / f"stderr{i}.txt", "w+") for i in range(processes)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(i), str(processes), str(port), str(out)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=logs[i],
        )
        for i in range(processes)
    ]
    deadline = time.monotonic() + timeout
    try:
        for p in procs:
            p.wait(timeout=max(deadline - time.monotonic(), 1))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    stderr = []
    for log in logs:
        log.seek(0)
        stderr.append(log.read())
        log.close()
    for i, p in enumerate(procs):
        assert p.returncode == 0, f"process {i} of {processes}:\n{stderr[i][-4000:]}"
    results = [dict(np.load(out / f"process{i}.npz")) for i in range(processes)]
    return results, stderr


def one_process_runs():
    namespace: dict = {}
    exec(SETUP, namespace)
    fit = namespace["run_fit"]()
    ensemble = namespace["run_ensemble"]()
    flat = namespace["flat"]
    return {
        "fit": flat(fit.model),
        "fit_loss": fit.history["loss"],
        "ensemble": flat(ensemble.models),
        "ensemble_loss": ensemble.history["loss"],
    }


def check(out, results, stderr, reference):
    for process, r in enumerate(results):
        # Each process's fit is the one-process fit.
        for name in ("fit", "fit_loss", "ensemble", "ensemble_loss"):
            np.testing.assert_allclose(
                r[name], reference[name], rtol=1e-9, atol=1e-12, err_msg=name
            )
        # Continued from process 0's checkpoint, the fit is the uninterrupted one.
        np.testing.assert_allclose(r["resumed"], reference["fit"], rtol=1e-9)
        assert int(r["stopped_steps"]) == 20
        assert str(r["stopped_reason"]) == "stopped by callback"
        # Every process holds the same result, usable on its own.
        for name in ("fit_pred", "ensemble_errors"):
            np.testing.assert_array_equal(r[name], results[0][name])
        # Only process 0 writes checkpoints (and shows progress).
        assert int(r["saves"]) > 0 if process == 0 else int(r["saves"]) == 0
        assert ("40/40" in stderr[process]) == (process == 0), stderr[process][-2000:]
    assert reference["fit_loss"][-1] < reference["fit_loss"][0]
    # One checkpoint file, no leftovers (temporary files, locks).
    files = {p.name for p in out.iterdir()} - {
        f"{kind}{i}.{ext}"
        for i in range(len(results))
        for kind, ext in (("process", "npz"), ("stderr", "txt"))
    }
    assert files == {"fit.ckpt"}, files


@pytest.fixture(scope="module")
def reference():
    return one_process_runs()


def test_two_processes_give_the_one_process_fit(tmp_path, reference):
    results, stderr = launch(tmp_path, processes=2)
    check(tmp_path, results, stderr, reference)


@pytest.mark.slow
def test_four_processes_give_the_one_process_fit(tmp_path, reference):
    results, stderr = launch(tmp_path, processes=4)
    check(tmp_path, results, stderr, reference)


@pytest.mark.slow
def test_two_processes_of_two_devices_give_the_one_process_fit(tmp_path, reference):
    results, stderr = launch(tmp_path, processes=2, local_devices=2)
    check(tmp_path, results, stderr, reference)


def test_devices_of_one_process_need_no_other():
    # One process: `devices` spans no other process and the defaults are those
    # of a plain fit (nothing to agree on).
    from odefit import _sharding

    devices = _sharding.check_devices(jax.devices()[:1])
    assert not _sharding.spans_processes(devices)
    assert _sharding.writes(devices) and _sharding.writes(None)
    assert _sharding.check_devices(None) is None
    assert _sharding.any_process(True, devices) is True
    assert _sharding.main_decides(False, devices) is False
    tree = {"a": jax.numpy.ones(3), "b": "static"}
    assert _sharding.local(tree) is tree
    assert eqx.tree_equal(_sharding.fetch(tree), tree)
