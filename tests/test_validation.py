"""Every malformed input raises ValueError/TypeError naming the argument, before
any training, never an error from inside JAX."""

import math

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

import odefit


def decay(t, y, args):
    return -y


def rotation(t, y, args):
    return jnp.stack([y[1], -y[0]])


PROBLEM = odefit.IVP(rotation, t0=0.0, t1=1.0, y0=jnp.array([1.0, 0.0]))
MODEL = odefit.PINN(PROBLEM, width=4, depth=1, key=jr.key(0))


def fit(problem=PROBLEM, model=MODEL, **kwargs):
    options = dict(steps=2, key=jr.key(1), progress=False)
    options.update(kwargs)
    return odefit.fit(problem, model, **options)


# --- the interval -------------------------------------------------------------


@pytest.mark.parametrize("t0, t1", [(1.0, 1.0), (2.0, 1.0), (0.0, -1e-9)])
def test_t1_not_after_t0(t0, t1):
    with pytest.raises(ValueError, match=r"`t1` must be greater than `t0`"):
        odefit.IVP(decay, t0=t0, t1=t1, y0=1.0)


@pytest.mark.parametrize(
    "name, t0, t1",
    [
        ("t0", math.nan, 1.0),
        ("t0", -math.inf, 1.0),
        ("t1", 0.0, math.inf),
        ("t1", 0.0, jnp.nan),
        ("t0", np.float32("nan"), 1.0),
    ],
)
def test_non_finite_times(name, t0, t1):
    with pytest.raises(ValueError, match=rf"`{name}` must be finite"):
        odefit.IVP(decay, t0=t0, t1=t1, y0=1.0)


@pytest.mark.parametrize("bad", ["0", None, True, 1j, object(), np.datetime64(1, "s")])
def test_time_of_wrong_type(bad):
    with pytest.raises(TypeError, match=r"`t0` must be a real number"):
        odefit.IVP(decay, t0=bad, t1=1.0, y0=1.0)


def test_time_not_scalar():
    with pytest.raises(ValueError, match=r"`t1` must be a scalar, got shape \(2,\)"):
        odefit.IVP(decay, t0=0.0, t1=[1.0, 2.0], y0=1.0)


@pytest.mark.parametrize("cls", ["SecondOrderIVP", "BVP"])
def test_interval_checked_for_second_order(cls):
    def acc(t, y, dy, args):
        return -y

    with pytest.raises(ValueError, match=r"`t1` must be greater than `t0`"):
        getattr(odefit, cls)(acc, 1.0, 0.0, 1.0, 0.0)


# --- the initial state ----------------------------------------------------------


@pytest.mark.parametrize("bad", [jnp.array([1.0, jnp.nan]), jnp.inf, [0.0, -jnp.inf]])
def test_non_finite_y0(bad):
    with pytest.raises(ValueError, match=r"`y0` must be finite"):
        odefit.IVP(decay, t0=0.0, t1=1.0, y0=bad)


@pytest.mark.parametrize("shape", [(2, 2), (1, 3), (2, 1, 1)])
def test_y0_of_rank_above_one(shape):
    with pytest.raises(ValueError, match=r"`y0` must be a scalar or a 1-D array"):
        odefit.IVP(decay, t0=0.0, t1=1.0, y0=jnp.ones(shape))


def test_empty_y0():
    with pytest.raises(ValueError, match=r"`y0` must not be empty"):
        odefit.IVP(decay, t0=0.0, t1=1.0, y0=jnp.zeros((0,)))


@pytest.mark.parametrize(
    "bad", [jnp.ones(2, jnp.complex128), 1 + 2j, np.array([1j], np.complex64)]
)
def test_complex_y0(bad):
    with pytest.raises(TypeError, match=r"`y0` must be real; complex dtype"):
        odefit.IVP(decay, t0=0.0, t1=1.0, y0=bad)


@pytest.mark.parametrize(
    "bad",
    ["1.0", None, [[1.0, 2.0], [3.0]], 2**80, {"a": 1.0}, b"x", [True, False]],
)
def test_y0_not_numbers(bad):
    with pytest.raises(TypeError, match=r"`y0` must be"):
        odefit.IVP(decay, t0=0.0, t1=1.0, y0=bad)


def test_second_order_shapes_must_match():
    def acc(t, y, dy, args):
        return -y

    with pytest.raises(ValueError, match=r"`dy0` has shape \(3,\) but `y0`"):
        odefit.SecondOrderIVP(acc, 0.0, 1.0, jnp.ones(2), jnp.ones(3))
    with pytest.raises(ValueError, match=r"`yb` has shape \(2,\) but `ya`"):
        odefit.BVP(acc, 0.0, 1.0, 0.0, jnp.ones(2))
    with pytest.raises(ValueError, match=r"`dy0` must be finite"):
        odefit.SecondOrderIVP(acc, 0.0, 1.0, 1.0, jnp.nan)


# --- the vector field -----------------------------------------------------------


def test_vector_field_not_callable():
    with pytest.raises(TypeError, match=r"`vector_field` must be callable"):
        odefit.IVP(3.0, t0=0.0, t1=1.0, y0=1.0)


def test_vector_field_wrong_shape():
    with pytest.raises(
        ValueError,
        match=r"`vector_field` returned shape \(3,\) but the state has shape \(2,\)",
    ):
        odefit.IVP(lambda t, y, args: jnp.ones(3), t0=0.0, t1=1.0, y0=jnp.ones(2))


def test_vector_field_wrong_dtype():
    with pytest.raises(
        ValueError,
        match=r"`vector_field` returned dtype float32 but the state has dtype float64",
    ):
        odefit.IVP(
            lambda t, y, args: (-y).astype(jnp.float32), 0.0, 1.0, y0=jnp.ones(2)
        )
    with pytest.raises(ValueError, match=r"`vector_field` returned dtype int"):
        odefit.IVP(lambda t, y, args: jnp.zeros(2, int), 0.0, 1.0, y0=jnp.ones(2))


def test_vector_field_python_float_is_fine():
    problem = odefit.IVP(lambda t, y, args: 1.0, t0=0.0, t1=1.0, y0=0.5)
    assert problem.y0.dtype == jnp.float64


def test_vector_field_returning_a_tuple():
    with pytest.raises(ValueError, match=r"`vector_field` must return a single array"):
        odefit.IVP(lambda t, y, args: (y, y), t0=0.0, t1=1.0, y0=jnp.ones(2))


def test_vector_field_raising_at_trace_time():
    def field(t, y, args):
        return y @ jnp.ones((3, 3))  # shapes do not fit

    with pytest.raises(
        ValueError, match=r"`vector_field` raised TypeError when called as"
    ):
        odefit.IVP(field, t0=0.0, t1=1.0, y0=jnp.ones(2))


def test_vector_field_raising_a_python_error():
    def field(t, y, args):
        return y * args["rate"]

    with pytest.raises(ValueError, match=r"`vector_field` raised TypeError"):
        odefit.IVP(field, t0=0.0, t1=1.0, y0=1.0, args=(2.0,))


def test_vector_field_raising_at_run_time():
    def field(t, y, args):
        return eqx.error_if(-y, y > 0.5, "y is too large")

    with pytest.raises(
        ValueError,
        match=r"`vector_field` raised .* when (called|evaluated) as .*too large",
    ):
        odefit.IVP(field, t0=0.0, t1=1.0, y0=1.0)


def test_vector_field_nan_at_t0():
    with pytest.raises(
        ValueError, match=r"`vector_field` returned non-finite values .*singular"
    ):
        odefit.IVP(lambda t, y, args: -y / t, t0=0.0, t1=1.0, y0=jnp.ones(2))
    with pytest.raises(ValueError, match=r"`acceleration` returned non-finite"):
        odefit.SecondOrderIVP(
            lambda t, y, dy, args: jnp.log(y), t0=0.0, t1=1.0, y0=-1.0, dy0=0.0
        )
    with pytest.raises(ValueError, match=r"`acceleration` returned non-finite"):
        odefit.BVP(
            lambda t, y, dy, args: jnp.sqrt(y - 2.0), t0=0.0, t1=1.0, ya=1.0, yb=0.0
        )


# --- the model ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["width", "depth"])
@pytest.mark.parametrize("bad", [0, -3, 2.0, True, None])
def test_width_and_depth(name, bad):
    options = {"width": 4, "depth": 1, name: bad}
    with pytest.raises(ValueError, match=rf"`{name}` must be an integer >= 1"):
        odefit.PINN(PROBLEM, key=jr.key(0), **options)


def test_pinn_problem_type():
    with pytest.raises(TypeError, match=r"`problem` must be an odefit problem"):
        odefit.PINN("ivp", width=4, depth=1, key=jr.key(0))


@pytest.mark.parametrize(
    "scale, match",
    [(jnp.array([1.0, -1.0]), "finite and > 0"), (jnp.ones(3), r"has shape \(3,\)")],
)
def test_pinn_scale(scale, match):
    with pytest.raises(ValueError, match=rf"`scale` {match}|`scale` must be {match}"):
        odefit.PINN(PROBLEM, width=4, depth=1, scale=scale, key=jr.key(0))


def test_model_for_another_problem():
    other = odefit.IVP(decay, 0.0, 1.0, jnp.ones(3))
    model = odefit.PINN(other, width=4, depth=1, key=jr.key(0))
    with pytest.raises(ValueError, match=r"`model` predicts shape \(3,\)"):
        fit(model=model)
    shifted = odefit.IVP(rotation, 0.0, 2.0, jnp.array([1.0, 0.0]))
    with pytest.raises(ValueError, match=r"`model` was built for \[0.0, 2.0\]"):
        fit(model=odefit.PINN(shifted, width=4, depth=1, key=jr.key(0)))
    single = odefit.IVP(rotation, 0.0, 1.0, jnp.array([1.0, 0.0], jnp.float32))
    with pytest.raises(ValueError, match=r"`model` predicts .* dtype float64"):
        fit(problem=single)


# --- fit's own arguments --------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "10", None])
def test_steps(bad):
    with pytest.raises(ValueError, match=r"`steps` must be an integer >= 1"):
        fit(steps=bad)


def test_problem_and_model_types():
    with pytest.raises(TypeError, match=r"`problem` must be an odefit problem"):
        odefit.fit(rotation, MODEL, steps=1, key=jr.key(0))
    with pytest.raises(TypeError, match=r"`model` must be an odefit model"):
        odefit.fit(PROBLEM, MODEL.mlp, steps=1, key=jr.key(0))


@pytest.mark.parametrize("bad", [0, 1.5, jnp.array(1.0), jnp.zeros(3, jnp.uint32)])
def test_key(bad):
    with pytest.raises(TypeError, match=r"`key` must be a jax.random key"):
        fit(key=bad)


def test_optimizer_and_weights():
    with pytest.raises(TypeError, match=r"`optimizer` must be an optax"):
        fit(optimizer="adam")
    with pytest.raises(ValueError, match=r"`weights` has an unknown term 'physics'"):
        fit(weights={"physics": 1.0})
    with pytest.raises(ValueError, match=r"`weights\['data'\]` must be a finite"):
        fit(weights={"data": math.inf})


def test_chunk_size():
    with pytest.raises(ValueError, match=r"`chunk_size` must be an integer >= 1"):
        fit(chunk_size=0)


def test_checkpoint_arguments(tmp_path):
    with pytest.raises(ValueError, match=r"`checkpoint_every` was given without"):
        fit(checkpoint_every=10)
    with pytest.raises(ValueError, match=r"`checkpoint_every` must be an integer"):
        fit(checkpoint_every=0, checkpoint_path=tmp_path / "a.ckpt")
    with pytest.raises(TypeError, match=r"`checkpoint_path` must be a str"):
        fit(checkpoint_path=3)
    with pytest.raises(TypeError, match=r"`resume` must be True or False"):
        fit(checkpoint_path=tmp_path / "a.ckpt", resume="yes")
    with pytest.raises(ValueError, match=r"`checkpoint_path` is .* does not exist"):
        fit(checkpoint_path=tmp_path / "missing" / "a.ckpt")
    with pytest.raises(ValueError, match=r"`checkpoint_path` is .* a directory"):
        fit(checkpoint_path=tmp_path)


# --- collocation ----------------------------------------------------------------


@pytest.mark.parametrize("cls", [odefit.Grid, odefit.Uniform])
@pytest.mark.parametrize("bad", [0, -5, 3.0, None])
def test_empty_collocation(cls, bad):
    with pytest.raises(ValueError, match=r"`n` must be an integer >= 1"):
        cls(bad)


class _Fixed(odefit.AbstractCollocation):
    """A user's own collocation returning fixed points (possibly wrong ones)."""

    points: tuple = eqx.field(static=True)

    def init(self, t0, t1, dtype):
        return jnp.zeros((), dtype)

    def sample(self, state, t0, t1, residual_fn, *, key):
        dtype = state.dtype
        return jnp.asarray(self.points, dtype), state


@pytest.mark.parametrize(
    "points, match",
    [
        (np.array([-0.5, 0.5]), r"must give times in \[t0, t1\] = \[0.0, 1.0\]"),
        (np.array([0.5, 1.5]), r"got times from 0.5 to 1.5"),
        (np.array([0.5, np.nan]), r"must give times in"),
        (np.zeros((0,)), r"must give a non-empty 1-D array .* shape \(0,\)"),
        (np.zeros((2, 2)), r"must give a non-empty 1-D array"),
    ],
)
def test_out_of_domain_collocation(points, match):
    with pytest.raises(ValueError, match=r"`collocation` \(_Fixed\) .*" + match):
        points = (
            tuple(map(tuple, points.tolist()))
            if points.ndim == 2
            else tuple(points.tolist())
        )
        fit(collocation=_Fixed(points))


def test_collocation_type():
    with pytest.raises(TypeError, match=r"`collocation` must be"):
        fit(collocation=jnp.linspace(0.0, 1.0, 5))


# --- observations ---------------------------------------------------------------


def test_observations_outside_the_interval():
    ts = jnp.linspace(0.0, 2.0, 5)
    data = odefit.Observations(ts, jnp.ones((5, 2)))
    with pytest.raises(ValueError, match=r"`observations.ts` must lie in \[t0, t1\]"):
        fit(observations=data)
    data = odefit.Observations(ts - 1.0, jnp.ones((5, 2)))
    with pytest.raises(ValueError, match=r"got times from -1.0 to 1.0"):
        fit(observations=data)


def test_observations_of_the_wrong_shape():
    ts = jnp.linspace(0.0, 1.0, 5)
    with pytest.raises(ValueError, match=r"`ys` must have one row per time"):
        odefit.Observations(ts, jnp.ones((4, 2)))
    with pytest.raises(ValueError, match=r"`observations.ys` has shape \(5, 3\)"):
        fit(observations=odefit.Observations(ts, jnp.ones((5, 3))))
    data = odefit.Observations(ts, jnp.ones((5, 2)), observe=lambda y: y[0])
    with pytest.raises(ValueError, match=r"predicts shape \(\) after `observe`"):
        fit(observations=data)
    data = odefit.Observations(ts, jnp.ones(5), observe=lambda y: y @ jnp.ones(3))
    with pytest.raises(ValueError, match=r"`observations.observe` raised TypeError"):
        fit(observations=data)
    with pytest.raises(ValueError, match=r"`ts` must be a non-empty 1-D array"):
        odefit.Observations(jnp.zeros((0,)), jnp.zeros((0, 2)))


@pytest.mark.parametrize(
    "name, ts, ys",
    [
        ("ys", jnp.linspace(0.0, 1.0, 3), jnp.array([1.0, jnp.nan, 2.0])),
        ("ys", jnp.linspace(0.0, 1.0, 3), jnp.array([1.0, jnp.inf, 2.0])),
        ("ts", jnp.array([0.0, jnp.nan, 1.0]), jnp.ones(3)),
    ],
)
def test_non_finite_observations(name, ts, ys):
    with pytest.raises(ValueError, match=rf"`{name}` has 1 non-finite entries"):
        odefit.Observations(ts, ys)


@pytest.mark.parametrize(
    "ts, ys, match",
    [
        (jnp.linspace(0.0, 1.0, 2), jnp.array([1.0, 2.0j]), r"`ys` must be real"),
        (["a", "b"], [1.0, 2.0], r"`ts` must be an array of real numbers"),
        ([0.0, 1.0], [[1.0], [2.0, 3.0]], r"`ys` must be an array of real numbers"),
        ([0.0, 1.0], [True, False], r"`ys` must be real numbers, got dtype bool"),
    ],
)
def test_observations_not_real_numbers(ts, ys, match):
    with pytest.raises(TypeError, match=match):
        odefit.Observations(ts, ys)


@pytest.mark.parametrize("bad", [-1.0, math.nan, "1", None, True])
def test_observation_weight(bad):
    with pytest.raises(ValueError, match=r"`weight` must be a finite number >= 0"):
        odefit.Observations(jnp.linspace(0.0, 1.0, 2), jnp.ones(2), weight=bad)


def test_float32_observations_in_a_float64_fit():
    # Cast to the model's dtype rather than failing under strict promotion.
    ts = jnp.linspace(0.0, 1.0, 4, dtype=jnp.float32)
    data = odefit.Observations(ts, jnp.ones((4, 2), jnp.float32))
    result = fit(observations=data, optimizer=optax.adam(1e-3))
    assert np.isfinite(result.history["data"]).all()


# --- unknowns -------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    ["0.5", None, True, {"a": 1.0}, object(), [1.0, "a"], [[1.0], [2.0, 3.0]], 2**80],
)
def test_unknown_with_a_non_array_value(bad):
    with pytest.raises(TypeError, match=r"`value` must be a float or an array"):
        odefit.Unknown(bad)


def test_unknown_other_cases():
    with pytest.raises(TypeError, match=r"`value` must be real, got dtype complex"):
        odefit.Unknown(1.0 + 1j)
    with pytest.raises(ValueError, match=r"`value` must be finite"):
        odefit.Unknown(jnp.array([1.0, jnp.nan]))
    with pytest.raises(ValueError, match=r"`value` must be > 0 when `positive=True`"):
        odefit.Unknown(-1.0, positive=True)
    with pytest.raises(TypeError, match=r"`value` is already an `odefit.Unknown`"):
        odefit.Unknown(odefit.Unknown(1.0))


# --- load and save ---------------------------------------------------------------


def test_save_and_load_arguments(tmp_path):
    with pytest.raises(TypeError, match=r"`result` must be an odefit.FitResult"):
        odefit.save(tmp_path / "a.ckpt", MODEL)
    with pytest.raises(TypeError, match=r"`path` must be a str or os.PathLike"):
        odefit.load(3, PROBLEM, MODEL)
    with pytest.raises(TypeError, match=r"`model` must be an odefit model"):
        odefit.load(tmp_path / "a.ckpt", PROBLEM, None)
    with pytest.raises(FileNotFoundError):
        odefit.load(tmp_path / "missing.ckpt", PROBLEM, MODEL)
