"""Issue 20: checkpoints that identify their fit, intervals a dtype cannot resolve,
integer step counts, non-finite times, allocations bounded by the machine's
memory, files that would hang, checkpoint locks and argument validation."""

import hashlib
import json
import os
import signal
import struct
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

import odefit
from odefit import _checkpoint, _memory, _validate
from odefit._collocation import UniformState


def decay(t, y, args):
    return -y


def faster_decay(t, y, args):
    return -2.0 * y


def rate_decay(t, y, args):
    rate, _ = args
    return -rate * y


def _model(problem, **kwargs):
    return odefit.PINN(problem, width=8, depth=1, key=jr.key(0), **kwargs)


def _fit(problem, path, *, steps=20, model=None, **kwargs):
    return odefit.fit(
        problem,
        _model(problem) if model is None else model,
        steps=steps,
        key=jr.key(1),
        progress=False,
        checkpoint_path=path,
        **kwargs,
    )


@pytest.fixture
def alarm():
    """Fails a test that blocks (e.g. opening a FIFO) instead of hanging."""

    def timeout(signum, frame):
        raise TimeoutError("blocked")

    previous = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


# --- 1. a checkpoint identifies the fit it was made for ---------------------------

BASE = odefit.IVP(decay, 0.0, 1.0, y0=1.0)
STAGES = [(optax.adam(1e-3), 10)]


@pytest.mark.parametrize(
    "other, match",
    [
        (
            odefit.IVP(decay, 0.0, 1.0, y0=2.0),
            r"its problem\.y0 is 1\.0 .* this fit's is 2\.0",
        ),
        (odefit.IVP(faster_decay, 0.0, 1.0, y0=1.0), r"its vector field gives other"),
        (
            odefit.IVP(rate_decay, 0.0, 1.0, y0=1.0, args=(jnp.array(1.0), 0)),
            r"this fit's problem has problem\.args",
        ),
    ],
)
def test_resume_and_load_refuse_another_problem(tmp_path, other, match):
    path = tmp_path / "run.ckpt"
    done = _fit(BASE, path, steps=100)
    assert done.stop_reason == "completed"
    before = path.read_bytes()
    with pytest.raises(ValueError, match=match + r".*`resume=False`"):
        _fit(other, path, steps=100)
    with pytest.raises(ValueError, match=match):
        odefit.load(path, other, _model(other))
    assert path.read_bytes() == before
    # Starting afresh is what the message offers.
    fresh = _fit(other, path, steps=100, resume=False)
    assert float(fresh.model(0.0)) == float(other.y0)


def test_resume_refuses_other_array_args(tmp_path):
    path = tmp_path / "run.ckpt"
    problem = odefit.IVP(rate_decay, 0.0, 1.0, y0=1.0, args=(jnp.array(1.0), 0))
    _fit(problem, path)
    other = odefit.IVP(rate_decay, 0.0, 1.0, y0=1.0, args=(jnp.array(3.0), 0))
    with pytest.raises(ValueError, match=r"its problem\.args\[0\] is 1\.0"):
        _fit(other, path)
    # Python numbers in `args` are part of the identity too.
    other = odefit.IVP(rate_decay, 0.0, 1.0, y0=1.0, args=(jnp.array(1.0), 1))
    with pytest.raises(ValueError, match=r"its problem\.args\[1\] is 0 but"):
        _fit(other, path)
    # The same problem resumes (and has nothing left to do).
    again = _fit(problem, path)
    assert again.steps == 20 and again.stop_reason == "completed"


def test_unknowns_are_identified_by_structure_not_value(tmp_path):
    path = tmp_path / "run.ckpt"
    data = odefit.Observations(
        jnp.linspace(0.0, 1.0, 5), jnp.exp(-jnp.linspace(0, 1, 5))
    )

    def problem(guess, positive=False):
        args = (odefit.Unknown(guess, positive=positive), 0)
        return odefit.IVP(rate_decay, 0.0, 1.0, y0=1.0, args=args)

    first = _fit(problem(0.5), path, observations=data)
    # Training moved the Unknown: the saved value differs from the initial guess,
    # and even another initial guess loads (the saved value wins).
    loaded = odefit.load(path, problem(0.9), _model(problem(0.9)))
    np.testing.assert_array_equal(loaded.args[0], first.args[0])
    resumed = _fit(problem(0.5), path, steps=30, observations=data)
    assert resumed.steps == 30
    with pytest.raises(ValueError, match=r"an Unknown .* \(positive\)"):
        odefit.load(path, problem(0.5, True), _model(problem(0.5, True)))


def test_model_fixed_parts_are_identified(tmp_path):
    path = tmp_path / "run.ckpt"
    _fit(BASE, path)
    with pytest.raises(ValueError, match=r"its model\.scale is .* this fit's is 3\.0"):
        odefit.load(path, BASE, _model(BASE, scale=3.0))


def _rewrite_header(path, edit):
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[8:16])
    header = json.loads(data[16 : 16 + size])
    edit(header)
    new = json.dumps(header, sort_keys=True).encode()
    path.write_bytes(
        data[:8]
        + struct.pack("<Q", len(new))
        + new
        + hashlib.sha256(new).digest()
        + data[16 + size + 32 :]
    )


def test_checkpoint_without_identity_is_refused(tmp_path):
    path = tmp_path / "run.ckpt"
    _fit(BASE, path)
    _rewrite_header(path, lambda h: h["metadata"].pop("identity"))
    with pytest.raises(ValueError, match=r"does not record which problem"):
        odefit.load(path, BASE, _model(BASE))


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda h: h.update(steps=-5), r"steps -5 is not an integer >= 0"),
        (lambda h: h.update(steps=2.5), r"steps 2.5 is not an integer >= 0"),
        (lambda h: h["sections"]["model"].update(offset=-1), r"model is out of range"),
        (lambda h: h["history"][0].update(size=10**12), r"history entry 0 is out of"),
    ],
)
def test_hand_edited_header_is_refused(tmp_path, edit, match):
    path = tmp_path / "run.ckpt"
    _fit(BASE, path)
    _rewrite_header(path, edit)
    with pytest.raises(ValueError, match=match):
        odefit.load(path, BASE, _model(BASE))


def test_write_refuses_negative_steps(tmp_path):
    model = _model(BASE)
    with pytest.raises(ValueError, match=r"`steps` must be an integer >= 0"):
        _checkpoint.write(
            tmp_path / "x.ckpt",
            model=model,
            problem=BASE,
            opt_state=None,
            collocation_state=None,
            key=jr.key(0),
            steps=-1,
            history={},
            stop_reason="completed",
        )


# --- 2. an interval the state's dtype cannot resolve -------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda y: odefit.IVP(decay, 1e9, 1e9 + 1, y),
        lambda y: odefit.SecondOrderIVP(lambda t, y, dy, a: -y, 1e9, 1e9 + 1, y, y),
        lambda y: odefit.BVP(lambda t, y, dy, a: -y, 1e9, 1e9 + 1, y, y),
    ],
)
def test_unresolvable_interval_is_refused(make):
    with pytest.raises(
        ValueError,
        match=r"`t0`=1000000000.0 and `t1`=1000000001.0 are too close together for "
        r"float32 .* only 1 distinct .* starts at 0 \(t0=0.0, t1=1.0\).*float64",
    ):
        make(jnp.asarray(1.0, jnp.float32))
    make(jnp.asarray(1.0, jnp.float64))  # float64 resolves it


def test_resolution_threshold():
    f32 = jnp.asarray(1.0, jnp.float32)
    odefit.IVP(decay, 0.0, 1e-30, f32)  # tiny, but float32 resolves it
    odefit.IVP(decay, 1000.0, 1010.0, f32)  # spacing 6e-5: 1.6e5 values
    with pytest.raises(ValueError, match=r"too close together for float32"):
        odefit.IVP(decay, 1000.0, 1000.1, f32)  # 1600 values
    with pytest.raises(ValueError, match=r"too close together for float16"):
        odefit.IVP(decay, 1.0, 2.0, jnp.asarray(1.0, jnp.float16))


# --- 3. step counts in integers -----------------------------------------------------


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.float32])
def test_uniform_counts_steps_in_integers(dtype):
    collocation = odefit.Uniform(4, warmup=6000, start=0.5)
    state = collocation.init(0.0, 1.0, dtype)
    assert state.step.dtype == jnp.int32 and state.like.dtype == dtype

    def step(state, key):
        ts, state = collocation.sample(state, 0.0, 1.0, None, key=key)
        return state, ts

    state, ts = jax.lax.scan(step, state, jr.split(jr.key(0), 3000))
    assert ts.dtype == dtype
    # In float16 a float count would stop at 2048.
    assert int(state.step) == 3000
    # Past 2**24 steps, where a float32 count freezes, the window still grows.
    big = UniformState(jnp.asarray(2**24, jnp.int32), jnp.zeros((), dtype))
    collocation = odefit.Uniform(4, warmup=2**25)
    _, after = collocation.sample(big, 0.0, 1.0, None, key=jr.key(0))
    assert int(after.step) == 2**24 + 1
    # The count stops at `warmup`, where the window is whole: no overflow.
    end = UniformState(jnp.asarray(2**25, jnp.int32), jnp.zeros((), dtype))
    _, after = collocation.sample(end, 0.0, 1.0, None, key=jr.key(0))
    assert int(after.step) == 2**25


def test_uniform_window_grows_with_the_integer_count():
    collocation = odefit.Uniform(1000, warmup=100, start=0.2)
    state = UniformState(jnp.asarray(50, jnp.int32), jnp.zeros((), jnp.float32))
    ts, _ = collocation.sample(state, 0.0, 10.0, None, key=jr.key(0))
    assert float(ts.max()) <= 6.0 and float(ts.max()) > 5.5  # window 0.6


def test_adaptive_count_never_overflows():
    every = 5
    collocation = odefit.Adaptive(4, every=every, candidates=8)
    ts, count = collocation.init(0.0, 1.0, jnp.float32)
    assert count.dtype == jnp.int32

    def sample(count):
        _, (_, count) = collocation.sample(
            (ts, jnp.asarray(count, jnp.int32)), 0.0, 1.0, jnp.abs, key=jr.key(0)
        )
        return int(count)

    assert sample(7) == 8  # the number of steps, while far from the limit
    # At the int32 limit it steps back by a multiple of `every`: same phase,
    # still > 0, no overflow to a negative count (which would stop redraws).
    after = sample(2**31 - 1)
    assert 0 < after < 2 * every + 1 and after % every == 2**31 % every
    with pytest.raises(ValueError, match=r"`every` must be an integer >= 1 and <="):
        odefit.Adaptive(4, every=2**31)


# --- 4. error_estimate and non-finite times ------------------------------------------


@pytest.mark.parametrize("bad", [jnp.nan, jnp.inf])
def test_error_estimate_refuses_non_finite_times(bad):
    model = _model(BASE)
    ts = jnp.array([0.0, 0.5, bad, 1.0])
    with pytest.raises(
        ValueError, match=r"`ts` must be finite, got 1 non-finite .* index 2"
    ):
        odefit.error_estimate(BASE, model, ts)


# --- 5. allocations bounded by the machine's memory -----------------------------------

HUGE = 10**13  # more than any machine holds, in any unit used here


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: odefit.Grid(HUGE), "n"),
        (lambda: odefit.Uniform(HUGE), "n"),
        (lambda: odefit.Adaptive(HUGE), "n"),
        (lambda: odefit.Adaptive(8, candidates=HUGE), "candidates"),
        (lambda: odefit.LBFGS(points=HUGE), "points"),
        (lambda: odefit.LevenbergMarquardt(points=HUGE), "points"),
        (lambda: odefit.LBFGS(memory=2**31 - 1), "memory"),
        (
            lambda: odefit.NeuralODE(BASE, width=10**7, depth=2, key=jr.key(0)),
            "width",
        ),
    ],
)
def test_allocations_beyond_memory_are_refused(make, name, monkeypatch):
    # A machine of 1 GiB, so that the test does not depend on this one.
    monkeypatch.setattr(_memory, "physical_memory", lambda: 2**30)
    with pytest.raises(
        ValueError, match=rf"`{name}` asks for .* more than this machine's memory"
    ):
        make()


def test_lbfgs_history_is_checked_against_the_parameter_count():
    trainer = odefit.LBFGS(memory=10**8)  # fine alone
    params = jnp.zeros(10**4)
    with pytest.raises(ValueError, match=r"`memory` asks for .* of 10000 parameters"):
        trainer.init(None, params)


def test_too_many_windows_is_refused(getkey):
    with pytest.raises(ValueError, match=r"`windows` asks for .* time windows"):
        odefit.fit_marching(
            BASE, stages=STAGES, windows=HUGE, key=getkey(), progress=False
        )


def test_pinn_width_helper():
    _memory.check_mlp(width=64, depth=3)
    with pytest.raises(ValueError, match=r"`width` asks for .* width 1000000000000"):
        _memory.check_mlp(width=10**12, depth=3)
    with pytest.raises(ValueError, match=r"`depth` asks for"):
        _memory.check_mlp(width=10**4, depth=10**6)


def test_memory_limit_comes_from_the_machine(monkeypatch):
    monkeypatch.setattr(_memory, "physical_memory", lambda: 1000 * 16 * 8)
    odefit.Grid(1000)
    with pytest.raises(ValueError, match=r"`n` asks for 2000 collocation points"):
        odefit.Grid(2000)


def test_load_checks_the_size_before_reading(tmp_path, alarm):
    path = tmp_path / "big.ckpt"
    # A header length of 2**62 is refused from the file's size, not read.
    path.write_bytes(b"ODEFITCK" + struct.pack("<Q", 2**62) + b"{}")
    with pytest.raises(ValueError, match=r"truncated \(18 bytes, the header alone"):
        odefit.load(path, BASE, _model(BASE))
    # A (sparse) file larger than memory is refused before it is read.
    with open(path, "wb") as f:
        f.write(b"ODEFITCK")
        f.truncate(_memory.physical_memory() + 1)
    with pytest.raises(ValueError, match=r"more than this machine's memory"):
        odefit.load(path, BASE, _model(BASE))


# --- 6. files that would block; writable folders; locks ---------------------------


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_load_of_a_fifo_or_device_refuses_at_once(tmp_path, alarm):
    fifo = tmp_path / "pipe.ckpt"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match=r"is a FIFO \(named pipe\), not a regular"):
        odefit.load(fifo, BASE, _model(BASE))
    with pytest.raises(ValueError, match=r"is a character device"):
        odefit.load("/dev/zero", BASE, _model(BASE))
    with pytest.raises(ValueError, match=r"is a directory"):
        _checkpoint.read(tmp_path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fit_with_a_fifo_checkpoint_path_refuses_at_once(tmp_path, alarm):
    fifo = tmp_path / "pipe.ckpt"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match=r"FIFO"):
        _fit(BASE, fifo)


def test_malformed_identity_is_refused(tmp_path):
    path = tmp_path / "run.ckpt"
    _fit(BASE, path)
    _rewrite_header(path, lambda h: h["metadata"]["identity"].update(problem=[{}]))
    with pytest.raises(ValueError, match=r"its metadata is malformed"):
        odefit.load(path, BASE, _model(BASE))


def test_check_path(tmp_path, monkeypatch):
    good = tmp_path / "run.ckpt"
    assert _checkpoint.check_path(good) == str(good)
    good.write_bytes(b"")
    assert _checkpoint.check_path(good) == str(good)
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe")
        with pytest.raises(ValueError, match=r"`checkpoint_path` is .*a FIFO"):
            _checkpoint.check_path(tmp_path / "pipe")
    with pytest.raises(ValueError, match=r"a character device, not a regular file"):
        _checkpoint.check_path("/dev/null")
    with pytest.raises(ValueError, match=r"a directory; pass a file path inside"):
        _checkpoint.check_path(tmp_path)
    with pytest.raises(ValueError, match=r"its folder .*missing.* does not exist"):
        _checkpoint.check_path(tmp_path / "missing" / "run.ckpt")
    with pytest.raises(TypeError, match=r"`checkpoint_path` must be a str"):
        _checkpoint.check_path(3)
    # Nothing is left behind by the writability probe.
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["run.ckpt"] + (["pipe"] if hasattr(os, "mkfifo") else [])
    )

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(_checkpoint.tempfile, "mkstemp", read_only)
    with pytest.raises(ValueError, match=r"is not writable \(Permission denied\)"):
        _checkpoint.check_path(good)


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0,
    reason="root writes to read-only folders",
)
def test_check_path_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(ValueError, match=r"is not writable"):
            _checkpoint.check_path(folder / "run.ckpt")
    finally:
        folder.chmod(0o700)


def test_save_into_a_missing_folder(tmp_path):
    result = _fit(BASE, None)
    with pytest.raises(ValueError, match=r"`path` is .* its folder .* does not exist"):
        odefit.save(tmp_path / "missing" / "run.ckpt", result)
    # The low-level write names the folder, not a temporary file.
    with pytest.raises(FileNotFoundError, match=r"its folder .*missing.* does not"):
        _checkpoint._atomic_write(str(tmp_path / "missing" / "run.ckpt"), b"")


_HOLDER = textwrap.dedent(
    """
    import sys, time
    from odefit import _checkpoint
    with _checkpoint.lock(sys.argv[1]):
        print("held", flush=True)
        time.sleep(600)
    """
)


def test_lock_refuses_a_second_holder(tmp_path):
    path = tmp_path / "run.ckpt"
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert child.stdout.readline().strip() == "held"
        with pytest.raises(
            ValueError,
            match=rf"in use by process {child.pid}, .*another `checkpoint_path`",
        ):
            with _checkpoint.lock(path):
                pass
    finally:
        child.kill()  # SIGKILL: no clean-up; the system releases the lock
        child.wait(timeout=60)
    with _checkpoint.lock(path) as lock_path:
        assert lock_path == str(path) + ".lock"
        assert open(lock_path).read() == str(os.getpid())
        # A second fit in this very process is refused too.
        with pytest.raises(ValueError, match=rf"in use by process {os.getpid()}"):
            with _checkpoint.lock(path):
                pass
    assert not os.path.exists(str(path) + ".lock")
    with _checkpoint.lock(path):  # free again
        pass


# --- poor behaviours: arguments validated, naming the argument ------------------------


def test_numpy_scalars_are_accepted():
    assert odefit.Grid(np.int64(16)).n == 16
    uniform = odefit.Uniform(np.int64(8), warmup=np.int32(10), start=np.float32(0.5))
    assert (uniform.n, uniform.warmup, uniform.start) == (8, 10, 0.5)
    assert type(uniform.n) is int
    odefit.Adaptive(np.int64(8), every=np.int64(5), exponent=np.float32(2.0))
    odefit.LBFGS(np.int64(5), armijo=np.float32(1e-4), points=np.int64(32))
    odefit.LevenbergMarquardt(np.float32(1e-3), points=np.int64(32))
    odefit.GaussNewton(np.float64(1e-6), line_search=np.int64(4))
    odefit.CausalWeighting(
        optax.adam(1e-3), epsilon=np.float64(1.0), chunks=np.int64(4)
    )
    ts = jnp.linspace(0.0, 1.0, 5)
    assert odefit.Observations(ts, ts, weight=np.float32(2.0)).weight == 2.0
    odefit.NeuralODE(BASE, width=np.int64(4), depth=np.int64(1), key=jr.key(0))


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: odefit.Unknown(1.0, positive="yes"), "positive"),
        (lambda: odefit.LevenbergMarquardt(scaled="no"), "scaled"),
        (lambda: odefit.LevenbergMarquardt(geodesic="no"), "geodesic"),
        (
            lambda: odefit.NeuralODE(BASE, width=4, autonomous="no", key=jr.key(0)),
            "autonomous",
        ),
    ],
)
def test_strings_are_not_booleans(make, name):
    with pytest.raises(TypeError, match=rf"`{name}` must be a bool \(True or False\)"):
        make()


SECOND = odefit.SecondOrderIVP(lambda t, y, dy, a: -y, 0.0, 1.0, 1.0, 0.0)


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: SECOND.solve(jnp.linspace(0, 1, 3), derivative="no"), "derivative"),
        (
            lambda: odefit.fit_marching(
                BASE, stages=STAGES, windows=2, key=jr.key(0), warm_start="no"
            ),
            "warm_start",
        ),
        (
            lambda: odefit.fit_marching(
                BASE, stages=STAGES, windows=2, key=jr.key(0), progress="no"
            ),
            "progress",
        ),
    ],
)
def test_strings_are_not_booleans_in_functions(make, name):
    with pytest.raises(TypeError, match=rf"`{name}` must be a bool \(True or False\)"):
        make()


@pytest.mark.parametrize(
    "key, match",
    [
        (0, r"got int 0"),
        (None, r"got NoneType None"),
        (jr.split(jr.key(0), 3), r"a batch of keys of shape \(3,\)"),
        (jnp.zeros(3), r"an array of shape \(3,\)"),
    ],
)
def test_keys_are_checked(key, match):
    with pytest.raises(TypeError, match=r"`key` must be .*" + match):
        _validate.check_key(key)
    with pytest.raises(TypeError, match=r"`key` must be .*" + match):
        odefit.NeuralODE(BASE, width=4, key=key)
    with pytest.raises(TypeError, match=r"`key` must be .*" + match):
        odefit.fit_marching(BASE, stages=STAGES, windows=2, key=key, progress=False)
    _validate.check_key(jr.key(0))
    _validate.check_key(jr.PRNGKey(0))


def test_solve_options_are_checked():
    ts = jnp.linspace(0.0, 1.0, 3)
    BASE.solve(ts, max_steps=np.int64(1000), rtol=np.float32(1e-6), atol=1e-8)
    with pytest.raises(ValueError, match=r"`max_steps` must be an integer >= 1"):
        BASE.solve(ts, max_steps=0)
    with pytest.raises(ValueError, match=r"`rtol` must be a finite number > 0"):
        BASE.solve(ts, rtol="tight")


def test_deep_errors_become_messages():
    with pytest.raises(ValueError, match=r"`warmup` must be an integer >= 0 and <="):
        odefit.Uniform(8, warmup=3 * 10**9)
    with pytest.raises(TypeError, match=r"`scale` must be positive numbers.*'auto'"):
        odefit.NeuralODE(BASE, width=4, scale="auto", key=jr.key(0))
    with pytest.raises(TypeError, match=r"`scale` must be positive numbers"):
        _validate.check_scale("auto", BASE.state)
    with pytest.raises(ValueError, match=r"`n` must be an integer >= 1, got 2.0"):
        odefit.Grid(2.0)
    with pytest.raises(ValueError, match=r"`epsilon` must be a finite number >= 0"):
        odefit.CausalWeighting(optax.adam(1e-3), epsilon=float("nan"))


def test_small_arrays_are_compared_relatively(tmp_path):
    path = tmp_path / "run.ckpt"
    small = odefit.IVP(decay, 0.0, 1.0, y0=1e-10)
    _fit(small, path)
    other = odefit.IVP(decay, 0.0, 1.0, y0=2e-10)
    with pytest.raises(ValueError, match=r"its problem\.y0 is 1e-10"):
        odefit.load(path, other, _model(other))
