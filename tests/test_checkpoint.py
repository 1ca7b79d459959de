"""Checkpoints: atomic writes, integrity checks, and resumed fits that end
bit-identical to uninterrupted ones — after Ctrl-C, a crash, or SIGKILL."""

import json
import os
import pathlib
import signal
import struct
import subprocess
import sys
import textwrap
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np
import optax
import pytest

import odefit
import odefit._loop
from odefit import _checkpoint
from odefit._loop import InterruptGuard as _InterruptGuard


def rotation(t, y, args):
    (rate,) = args
    return rate * jnp.stack([y[1], -y[0]])


TS = jnp.linspace(0.0, 2.0, 9)
PROBLEM = odefit.IVP(
    rotation, t0=0.0, t1=2.0, y0=jnp.array([1.0, 0.0]), args=(odefit.Unknown(0.7),)
)
DATA = odefit.Observations(TS, jnp.stack([jnp.cos(TS), -jnp.sin(TS)], axis=1))
MODEL = odefit.PINN(PROBLEM, width=8, depth=2, key=jr.key(0))

# `jax.debug.callback` inside the compiled loop: interrupt the process (as Ctrl-C
# would) or crash it at a chosen step, so that tests are deterministic.
TRIP: dict[str, int] = {}


def _trip(step):
    step = int(step)
    if TRIP.get("interrupt_at") == step:
        os.kill(os.getpid(), signal.SIGINT)
    if TRIP.get("crash_at") == step:
        raise RuntimeError("simulated crash")


@pytest.fixture
def default_sigint():
    """Python's own SIGINT handler for the test: `fit` only takes Ctrl-C over from
    it, and a test run started in the background inherits an ignored SIGINT."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


class Tripwire(odefit.AbstractCollocation):
    """Uniform points, and a call to `_trip` with the step number."""

    n: int = eqx.field(static=True)

    def init(self, t0, t1, dtype):
        return jnp.zeros((), jnp.int32)

    def sample(self, state, t0, t1, residual_fn, *, key):
        jax.debug.callback(_trip, state)
        ts = jr.uniform(key, (self.n,), PROBLEM.state.dtype, t0, t1)
        return ts, state + 1


COLLOCATION = Tripwire(16)
OPTIMIZER = optax.adam(1e-2)


def fit(problem=PROBLEM, model=MODEL, **kwargs):
    options = dict(
        steps=60,
        optimizer=OPTIMIZER,
        collocation=COLLOCATION,
        observations=DATA,
        key=jr.key(1),
        progress=False,
        chunk_size=10,
    )
    options.update(kwargs)
    return odefit.fit(problem, model, **options)


def arrays(tree):
    leaves = jtu.tree_leaves(eqx.filter(tree, eqx.is_array))
    return [
        jr.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x
        for x in leaves
    ]


def assert_identical(a, b):
    a, b = arrays(a), arrays(b)
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)


def assert_same_result(a, b):
    assert a.steps == b.steps
    assert_identical(a.model, b.model)
    assert_identical(a.problem.args, b.problem.args)
    assert_identical(a.opt_state, b.opt_state)
    assert_identical(a.collocation_state, b.collocation_state)
    assert set(a.history) == set(b.history)
    for name in a.history:
        np.testing.assert_array_equal(a.history[name], b.history[name])


@pytest.fixture(scope="module")
def uninterrupted():
    TRIP.clear()
    return fit()


@pytest.fixture(autouse=True)
def disarm():
    TRIP.clear()
    yield
    TRIP.clear()


# --- save and load ---------------------------------------------------------------


def test_save_load_round_trip(uninterrupted, tmp_path):
    path = tmp_path / "run.ckpt"
    odefit.save(path, uninterrupted)
    loaded = odefit.load(
        path, PROBLEM, MODEL, optimizer=OPTIMIZER, collocation=COLLOCATION
    )
    assert_same_result(loaded, uninterrupted)
    assert loaded.stop_reason == "completed"
    assert_identical(loaded.key, uninterrupted.key)
    np.testing.assert_array_equal(loaded.args[0], uninterrupted.args[0])
    # Without the optimiser and collocation, their states are not restored.
    bare = odefit.load(str(path), PROBLEM, MODEL)
    assert bare.opt_state is None and bare.collocation_state is None
    assert_identical(bare.model, uninterrupted.model)
    # Nothing in the file is a pickle: the header is JSON.
    data = path.read_bytes()
    assert data[:8] == b"ODEFITCK"
    (size,) = struct.unpack("<Q", data[8:16])
    header = json.loads(data[16 : 16 + size])
    assert header["steps"] == 60
    assert header["metadata"]["problem"] == "IVP"
    assert header["metadata"]["state_shape"] == [2]


def test_write_is_atomic(uninterrupted, tmp_path, monkeypatch):
    path = tmp_path / "run.ckpt"
    odefit.save(path, uninterrupted)
    before = path.read_bytes()

    def crash(*args):
        raise KeyboardInterrupt

    for name in ("fsync", "replace"):
        with monkeypatch.context() as m:
            m.setattr(os, name, crash)
            with pytest.raises(KeyboardInterrupt):
                odefit.save(path, uninterrupted)
        assert path.read_bytes() == before
        assert os.listdir(tmp_path) == ["run.ckpt"]  # no temporary file left


def _damage(path: pathlib.Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    (size,) = struct.unpack("<Q", data[8:16])
    if how == "payload":
        data[-100] ^= 0x01
    elif how == "header":
        data[20] ^= 0x01
    elif how == "magic":
        data[0:8] = b"NOTODEFT"
    elif how == "trailing":
        data += b"\0"
    elif how == "version":
        header = json.loads(data[16 : 16 + size])
        header["version"] = 99
        new = json.dumps(header, sort_keys=True).encode()
        import hashlib

        data = (
            data[:8]
            + struct.pack("<Q", len(new))
            + new
            + hashlib.sha256(new).digest()
            + data[16 + size + 32 :]
        )
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "how, match",
    [
        ("payload", r"its data is corrupted \(checksum mismatch\)"),
        ("header", r"its header is corrupted \(checksum mismatch\)"),
        ("magic", r"it is not an odefit checkpoint"),
        ("trailing", r"it has 1 unexpected trailing bytes"),
        ("version", r"has format version 99"),
    ],
)
def test_corrupted_checkpoint(uninterrupted, tmp_path, how, match):
    path = tmp_path / "run.ckpt"
    odefit.save(path, uninterrupted)
    _damage(path, how)
    with pytest.raises(ValueError, match=match):
        odefit.load(path, PROBLEM, MODEL)


@pytest.mark.parametrize("keep", [0, 5, 12, 100, -5000, -1])
def test_truncated_checkpoint(uninterrupted, tmp_path, keep):
    path = tmp_path / "run.ckpt"
    odefit.save(path, uninterrupted)
    data = path.read_bytes()
    path.write_bytes(data[:keep])
    with pytest.raises(ValueError, match=r"is unreadable: it is truncated"):
        odefit.load(path, PROBLEM, MODEL)


def test_checkpoint_of_another_model_or_problem(uninterrupted, tmp_path):
    path = tmp_path / "run.ckpt"
    odefit.save(path, uninterrupted)
    wider = odefit.PINN(PROBLEM, width=16, depth=2, key=jr.key(0))
    with pytest.raises(
        ValueError,
        match=r"does not match this fit: its `model` differs \(the checkpoint has "
        r"\.network\.layers\[0\]\.weight with shape \(8, 1\) .* where `model` has "
        r".* shape \(16, 1\)",
    ):
        odefit.load(path, PROBLEM, wider)
    longer = odefit.IVP(rotation, 0.0, 3.0, jnp.array([1.0, 0.0]), args=(0.7,))
    model = odefit.PINN(longer, width=8, depth=2, key=jr.key(0))
    with pytest.raises(
        ValueError, match=r"different problem or model: its t1 is 2.0 but .* 3.0"
    ):
        odefit.load(path, longer, model)
    with pytest.raises(ValueError, match=r"its `opt_state` differs"):
        odefit.load(path, PROBLEM, MODEL, optimizer=optax.sgd(0.1))


# --- resuming fits ---------------------------------------------------------------


def test_interrupted_fit_resumes_bit_identical(uninterrupted, tmp_path, default_sigint):
    path = tmp_path / "run.ckpt"
    TRIP["interrupt_at"] = 25
    first = fit(checkpoint_path=path)
    # Ctrl-C is honoured at the end of the chunk in which it arrives.
    assert first.stop_reason == "interrupted"
    assert first.steps == 30
    assert first.history["loss"].shape == (30,)
    assert _checkpoint.read(path).steps == 30
    TRIP.clear()
    resumed = fit(checkpoint_path=path)
    assert resumed.stop_reason == "completed"
    assert_same_result(resumed, uninterrupted)
    # Running the finished script again runs no more steps.
    with pytest.MonkeyPatch.context() as m:
        m.setattr(odefit._loop, "run_chunk", None)
        again = fit(checkpoint_path=path)
    assert_same_result(again, uninterrupted)


def test_crashed_fit_resumes_from_the_periodic_checkpoint(uninterrupted, tmp_path):
    path = tmp_path / "run.ckpt"
    TRIP["crash_at"] = 45
    with pytest.raises(Exception, match="simulated crash"):
        fit(checkpoint_path=path, checkpoint_every=20)
    checkpoint = _checkpoint.read(path)
    assert checkpoint.steps == 40
    assert checkpoint.stop_reason == _checkpoint.RUNNING
    TRIP.clear()
    resumed = fit(checkpoint_path=path, checkpoint_every=20)
    assert_same_result(resumed, uninterrupted)


def test_resume_refuses_a_bad_checkpoint_and_leaves_it_alone(uninterrupted, tmp_path):
    path = tmp_path / "run.ckpt"
    odefit.save(path, fit(steps=20))
    good = path.read_bytes()

    wider = odefit.PINN(PROBLEM, width=16, depth=2, key=jr.key(0))
    with pytest.raises(ValueError, match=r"does not match this fit: its `model`"):
        fit(model=wider, checkpoint_path=path)
    with pytest.raises(ValueError, match=r"written by a fit with a different `key`"):
        fit(key=jr.key(2), checkpoint_path=path)
    with pytest.raises(ValueError, match=r"is at step 20, past `steps`=10"):
        fit(steps=10, checkpoint_path=path)
    with pytest.raises(ValueError, match=r"its `opt_state` differs"):
        fit(optimizer=optax.sgd(1e-2), checkpoint_path=path)
    assert path.read_bytes() == good

    path.write_bytes(good[:-10])
    with pytest.raises(ValueError, match=r"truncated.*left as it is"):
        fit(checkpoint_path=path)
    assert path.read_bytes() == good[:-10]

    # `resume=False` starts afresh and overwrites it.
    fresh = fit(checkpoint_path=path, resume=False)
    assert_same_result(fresh, uninterrupted)
    assert _checkpoint.read(path).steps == 60


def test_failed_checkpoint_write_does_not_lose_the_fit(
    uninterrupted, tmp_path, monkeypatch
):
    def full_disk(path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_checkpoint, "_atomic_write", full_disk)
    with pytest.warns(RuntimeWarning, match=r"could not write the checkpoint"):
        result = fit(checkpoint_path=tmp_path / "run.ckpt", checkpoint_every=20)
    assert_same_result(result, uninterrupted)
    assert not (tmp_path / "run.ckpt").exists()


def test_second_ctrl_c_interrupts_at_once(default_sigint):
    guard = _InterruptGuard(verbose=False)
    with guard:
        assert signal.getsignal(signal.SIGINT) == guard._handle
        guard._handle(signal.SIGINT, None)
        assert guard.requested
        with pytest.raises(KeyboardInterrupt):
            guard._handle(signal.SIGINT, None)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# --- real processes ---------------------------------------------------------------

_SCRIPT = textwrap.dedent(
    """
    import sys
    import jax, jax.numpy as jnp, optax, odefit
    jax.config.update("jax_enable_x64", True)

    checkpoint, out, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    problem = odefit.IVP(lambda t, y, args: jnp.stack([y[1], -y[0]]),
                         t0=0.0, t1=3.0, y0=jnp.array([1.0, 0.0]))
    model = odefit.PINN(problem, width=16, depth=2, key=jax.random.key(0))
    options = {} if checkpoint == "-" else dict(
        checkpoint_path=checkpoint, checkpoint_every=50
    )
    result = odefit.fit(
        problem, model, steps=steps, key=jax.random.key(1), progress=False,
        chunk_size=25, **options
    )
    odefit.save(out, result)
    print(result.stop_reason, result.steps, flush=True)
    """
)


def _python(script: pathlib.Path, *args: str) -> list[str]:
    return [sys.executable, str(script), *map(str, args)]


def _load(path):
    problem = odefit.IVP(
        lambda t, y, args: jnp.stack([y[1], -y[0]]),
        t0=0.0,
        t1=3.0,
        y0=jnp.array([1.0, 0.0]),
    )
    model = odefit.PINN(problem, width=16, depth=2, key=jr.key(0))
    return odefit.load(path, problem, model)


@pytest.mark.slow
def test_sigkill_then_resume_is_bit_identical(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(_SCRIPT)
    steps = 3000
    subprocess.run(
        _python(script, "-", tmp_path / "reference.ckpt", steps),
        check=True,
        timeout=600,
    )
    reference = _load(tmp_path / "reference.ckpt")
    assert reference.steps == steps

    checkpoint = tmp_path / "run.ckpt"
    child = subprocess.Popen(_python(script, checkpoint, tmp_path / "x.ckpt", steps))
    try:
        deadline = time.monotonic() + 300
        while not checkpoint.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL, "the run ended before it was killed"
    # Whatever the moment of the kill, the checkpoint is a complete one.
    killed_at = _checkpoint.read(checkpoint).steps
    assert 0 < killed_at < steps
    assert not (tmp_path / "x.ckpt").exists()

    out = subprocess.run(
        _python(script, checkpoint, tmp_path / "resumed.ckpt", steps),
        check=True,
        timeout=600,
        capture_output=True,
        text=True,
    )
    assert out.stdout.split() == ["completed", str(steps)]
    resumed = _load(tmp_path / "resumed.ckpt")
    assert_identical(resumed.model, reference.model)
    for name in reference.history:
        np.testing.assert_array_equal(resumed.history[name], reference.history[name])


_WRITER = textwrap.dedent(
    """
    import sys
    import jax, jax.numpy as jnp, odefit
    from odefit import _checkpoint
    jax.config.update("jax_enable_x64", True)

    problem = odefit.IVP(lambda t, y, args: -y, t0=0.0, t1=1.0, y0=1.0)
    model = odefit.PINN(problem, width=1024, depth=4, key=jax.random.key(0))
    print("ready", flush=True)
    for i in range(1_000_000):
        _checkpoint.write(
            sys.argv[1], model=model, problem=problem, opt_state=None,
            collocation_state=None, key=jax.random.key(i), steps=i,
            history={"loss": jnp.zeros(i % 1000)}, stop_reason="running",
        )
    """
)


@pytest.mark.slow
def test_checkpoint_never_half_written_when_killed(tmp_path):
    # A process rewriting a 25 MB checkpoint in a loop, killed at random moments:
    # the file is always a complete checkpoint.
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    path = tmp_path / "big.ckpt"
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(3):
        child = subprocess.Popen(
            _python(script, path), stdout=subprocess.PIPE, text=True
        )
        try:
            assert child.stdout.readline().strip() == "ready"
            time.sleep(rng.uniform(0.5, 2.0))
            child.send_signal(signal.SIGKILL)
        finally:
            child.wait(timeout=60)
        assert child.returncode == -signal.SIGKILL
        if path.exists():
            checkpoint = _checkpoint.read(path)
            assert checkpoint.stop_reason == "running"
            seen.add(checkpoint.steps)
    assert seen, "no checkpoint was ever written"
