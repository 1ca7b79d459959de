"""odefit.torchlike without PyTorch: semantics, errors, composition with JAX
transformations, threads, and the promise that torch is never imported by odefit.
The comparisons with real PyTorch are in test_torchlike_torch.py."""

import subprocess
import sys
import textwrap

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import odefit
from odefit import torchlike
from odefit.torchlike import _crosscheck

# Makes every `import torch` fail, as if PyTorch were not installed.
_BLOCK_TORCH = """
import importlib.abc, sys

class _NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError("No module named 'torch'", name=name)
        return None

sys.meta_path.insert(0, _NoTorch())
"""


def _run_python(code: str, *, block_torch: bool = False) -> subprocess.CompletedProcess:
    prelude = _BLOCK_TORCH if block_torch else ""
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=600,
    )


def _central_difference(f, x, eps=1e-6):
    """Central finite differences of a scalar function of one array."""
    x = np.asarray(x, dtype=np.float64)
    out = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[index] = eps
        out[index] = (f(x + step) - f(x - step)) / (2 * eps)
    return out


# -- imports -----------------------------------------------------------------------


def test_import_odefit_does_not_import_torch():
    result = _run_python(
        """
        import sys
        import odefit
        import odefit.torchlike
        from odefit.torchlike import _crosscheck
        assert "torch" not in sys.modules, "importing odefit imported torch"
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_torchlike_works_without_torch():
    result = _run_python(
        """
        import jax.numpy as jnp
        from odefit import torchlike
        from odefit.torchlike import _crosscheck
        print(torchlike.grad(lambda a, b: a**2 + 5 * b, (2.0, 3.0)))
        print(_crosscheck.torch_available())
        try:
            _crosscheck._import_torch()
        except ImportError as e:
            print(e)
        """,
        block_torch=True,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert "4." in lines[0] and "5." in lines[0]
    assert lines[1] == "False"
    assert 'pip install "odefit[torch]"' in lines[2]


@pytest.mark.slow
def test_side_by_side_without_torch_runs_jax_side():
    result = _run_python(
        """
        import runpy
        runpy.run_module("odefit.torchlike", run_name="__main__")
        """,
        block_torch=True,
    )
    assert result.returncode == 0, result.stderr
    assert 'pip install "odefit[torch]"' in result.stdout
    assert "PINN loss, SecondOrderIVP" in result.stdout


def test_side_by_side_table_of_jax_side():
    # The small cases only: the PINN ones are run (with PyTorch) elsewhere.
    rows = [row for case in _crosscheck.CASES[:7] for row in case.run(False)]
    assert all(r.torch is None and r.difference is None for r in rows)
    table = _crosscheck.format_table(rows)
    assert len(table.splitlines()) == len(rows) + 2
    first = table.splitlines()[2]
    assert first.split()[-1] == "-" and "4" in first


# -- grad ------------------------------------------------------------------------


def test_grad_two_input_example():
    x1, x2 = jnp.asarray(2.0), jnp.asarray(3.0)
    g1, g2 = torchlike.grad(lambda a, b: a**2 + 5 * b, (x1, x2))
    assert float(g1) == 4.0 and float(g2) == 5.0
    # A single input, not in a tuple, gives a 1-tuple (as in PyTorch).
    (g,) = torchlike.grad(lambda a: a**3, x1)
    assert float(g) == 12.0


def test_grad_is_vector_jacobian_product(getkey):
    x = jr.normal(getkey(), (4,))
    w = jr.normal(getkey(), (3, 4))
    v = jr.normal(getkey(), (3,))
    f = lambda x, w: jnp.tanh(w @ x)
    gx, gw = torchlike.grad(f, (x, w), grad_outputs=v)
    jx, jw = jax.jacobian(f, argnums=(0, 1))(x, w)
    np.testing.assert_allclose(gx, v @ jx, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(gw, jnp.tensordot(v, jw, axes=1), rtol=1e-13, atol=1e-14)
    fd = _central_difference(lambda x_: float(v @ f(jnp.asarray(x_), w)), x)
    np.testing.assert_allclose(gx, fd, rtol=1e-7, atol=1e-8)


def test_grad_several_outputs_sum_weighted():
    x = jnp.array([0.5, -1.0, 2.0])
    v = jnp.array([1.0, -2.0, 0.25])
    (g,) = torchlike.grad(lambda x: (jnp.sin(x), jnp.sum(x**2)), x, (v, None))
    np.testing.assert_allclose(g, v * jnp.cos(x) + 2 * x, rtol=1e-15)
    (g,) = torchlike.grad(lambda x: [jnp.sin(x), jnp.sum(x**2)], x, [v, 3.0])
    np.testing.assert_allclose(g, v * jnp.cos(x) + 6 * x, rtol=1e-15)


def test_grad_single_element_output_needs_no_grad_outputs():
    x = jnp.array([1.0, 2.0])
    (g,) = torchlike.grad(lambda x: x[:1] ** 2, x)  # shape (1,): allowed, as in torch
    np.testing.assert_array_equal(g, [2.0, 0.0])


def test_grad_outputs_cast_to_output_dtype():
    x = jnp.array([1.0, 2.0])
    (g,) = torchlike.grad(lambda x: x**2, x, jnp.ones(2, jnp.float32))
    assert g.dtype == jnp.float64
    (g,) = torchlike.grad(lambda x: x**2, x, jnp.array([1, 2]))
    np.testing.assert_array_equal(g, [2.0, 8.0])


def test_grad_of_equinox_model_matches_filter_grad(getkey):
    mlp = eqx.nn.MLP(2, 3, 8, 2, key=getkey())
    x = jr.normal(getkey(), (2,))
    loss = lambda m: jnp.sum(m(x) ** 2)
    (g,) = torchlike.grad(loss, mlp)
    expected = eqx.filter_grad(loss)(mlp)
    for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(expected), strict=True):
        np.testing.assert_array_equal(a, b)
    # Non-array leaves (the activation functions) get None, like eqx.filter_grad.
    assert g.activation is None


def test_grad_python_floats_become_arrays():
    g1, g2 = torchlike.grad(lambda a, b: a * b, (2.0, np.float64(3.0)))
    assert float(g1) == 3.0 and float(g2) == 2.0


def test_grad_create_and_retain_graph_change_nothing():
    x = jnp.array([0.5, 1.5])
    f = lambda x: jnp.sum(x**3)
    for kwargs in ({}, {"create_graph": True}, {"retain_graph": True}):
        (g,) = torchlike.grad(f, x, **kwargs)
        np.testing.assert_array_equal(g, 3 * x**2)


def test_grad_differentiable_again_matches_hessian():
    x = jnp.array([0.3, -0.7, 1.1])
    f = lambda x: jnp.sum(jnp.sin(x) * x[::-1] ** 2)

    def first(x):
        return torchlike.grad(f, x, create_graph=True)[0]

    rows = [torchlike.grad(first, x, grad_outputs=e)[0] for e in jnp.eye(3)]
    np.testing.assert_allclose(jnp.stack(rows), jax.hessian(f)(x), rtol=1e-13)


def test_grad_under_jit_and_vmap():
    x = jnp.array([0.5, -1.0, 2.0])
    jitted = jax.jit(lambda x: torchlike.grad(lambda a: jnp.sum(a**3), x)[0])
    np.testing.assert_allclose(jitted(x), 3 * x**2, rtol=1e-15)
    batched = jax.vmap(lambda x: torchlike.grad(lambda a: a**3, x)[0])
    np.testing.assert_allclose(batched(x), 3 * x**2, rtol=1e-15)


def test_grad_mutates_nothing():
    x = jnp.array([1.0, 2.0])
    before = np.asarray(x).copy()
    torchlike.grad(lambda a: jnp.sum(a**2), x)
    np.testing.assert_array_equal(x, before)


# -- unused inputs -----------------------------------------------------------------


@pytest.mark.parametrize(
    "f, used",
    [
        (lambda x, w: jnp.sum(x**2), False),
        (lambda x, w: jnp.sum(x**2) + 0 * w, True),  # x * 0 is used, as in torch
        (lambda x, w: jnp.sum(x**2) + jax.lax.stop_gradient(w), False),  # .detach()
        (lambda x, w: jnp.sum(x) + w.astype(jnp.int32).astype(x.dtype), False),
        (lambda x, w: jnp.sum(x) + jnp.zeros_like(w), False),
        (lambda x, w: jax.jit(lambda a, b: jnp.sum(a))(x, w), False),
        (lambda x, w: jax.jit(lambda a, b: jnp.sum(a) * b)(x, w), True),
        (lambda x, w: jax.checkpoint(lambda a, b: jnp.sum(a * b))(x, w), True),
        (
            lambda x, w: jax.lax.cond(
                jnp.sum(x) > 0, lambda: jnp.sum(x), lambda: 2 * jnp.sum(x)
            ),
            False,
        ),
        (
            lambda x, w: jax.lax.cond(
                jnp.sum(x) > 0, lambda: jnp.sum(x), lambda: w + jnp.sum(x)
            ),
            True,
        ),
        # w reaches the output only after two scan steps (through the carry).
        (
            lambda x, w: jax.lax.scan(
                lambda c, _: ((c[1], c[2], jnp.sum(x)), None),
                (0 * w, 0 * w, w),
                None,
                3,
            )[0][0],
            True,
        ),
        (
            lambda x, w: jax.lax.scan(
                lambda c, _: ((c[0] * 2, c[1]), None), (jnp.sum(x), w), None, 3
            )[0][0],
            False,
        ),
        (
            lambda x, w: jax.lax.fori_loop(
                0, 3, lambda i, c: (c[1], c[0] + 1.0), (jnp.sum(x), w)
            )[0],
            True,
        ),
    ],
)
def test_unused_input_detection(f, used):
    x, w = jnp.array([0.5, 1.0]), jnp.asarray(1.5, jnp.float64)
    if used:
        gx, gw = torchlike.grad(f, (x, w))
        np.testing.assert_allclose(gw, jax.grad(f, argnums=1)(x, w), rtol=1e-15)
    else:
        with pytest.raises(torchlike.GradientError, match="allow_unused=True"):
            torchlike.grad(f, (x, w))
        assert torchlike.grad(f, (x, w), allow_unused=True)[1] is None
        zero = torchlike.grad(f, (x, w), materialize_grads=True)[1]
        assert zero.shape == () and float(zero) == 0.0


def test_unused_input_through_custom_vjp_and_diffrax():
    @jax.custom_vjp
    def scaled_sin(x, w):
        return jnp.sin(x) * w

    scaled_sin.defvjp(
        lambda x, w: (scaled_sin(x, w), (x, w)),
        lambda res, g: (g * jnp.cos(res[0]) * res[1], jnp.sum(g * jnp.sin(res[0]))),
    )
    x, w = jnp.array([0.5, 1.0]), jnp.asarray(1.5, jnp.float64)
    gx, gw = torchlike.grad(lambda x, w: jnp.sum(scaled_sin(x, w)), (x, w))
    np.testing.assert_allclose(gw, jnp.sum(jnp.sin(x)), rtol=1e-15)
    assert (
        torchlike.grad(
            lambda x, w, b: jnp.sum(scaled_sin(x, w)), (x, w, w), allow_unused=True
        )[2]
        is None
    )

    import diffrax as dfx

    def final_state(rate, unused):
        sol = dfx.diffeqsolve(
            dfx.ODETerm(lambda t, y, a: -a * y),
            dfx.Tsit5(),
            t0=0.0,
            t1=1.0,
            dt0=0.1,
            y0=jnp.ones(2),
            args=rate,
        )
        return jnp.sum(sol.ys[-1])

    rate = jnp.asarray(1.0, jnp.float64)
    g_rate, g_unused = torchlike.grad(final_state, (rate, rate), allow_unused=True)
    assert g_unused is None
    np.testing.assert_allclose(g_rate, -2 * jnp.exp(-1.0), rtol=1e-6)


def test_unused_input_error_is_value_and_runtime_error():
    f = lambda x, w: jnp.sum(x**2)
    x, w = jnp.ones(2), jnp.asarray(1.0)
    for kind in (ValueError, RuntimeError):
        with pytest.raises(
            kind, match=r"index 1 appears to not have been used in the graph"
        ):
            torchlike.grad(f, (x, w))


def test_unused_rule_applies_to_whole_pytree_input():
    # A model whose second layer is unused still counts as used; the unused leaves
    # get zeros (JAX's convention).
    params = {"a": jnp.asarray(2.0), "b": jnp.asarray(3.0)}
    (g,) = torchlike.grad(lambda p: p["a"] ** 2, params)
    assert float(g["a"]) == 4.0 and float(g["b"]) == 0.0


def test_materialize_grads_with_allow_unused_false():
    with pytest.raises(ValueError, match="Expected allow_unused to be True"):
        torchlike.grad(
            lambda x: x, jnp.asarray(1.0), allow_unused=False, materialize_grads=True
        )


# -- errors ------------------------------------------------------------------------


def test_non_scalar_output_without_grad_outputs():
    x = jnp.ones(3)
    for kind in (ValueError, RuntimeError):
        with pytest.raises(
            kind,
            match=r"grad can be implicitly created only for scalar outputs: output 0 "
            r"of `fn` has shape \(3,\)\. Pass `grad_outputs`",
        ):
            torchlike.grad(lambda a: a**2, x)
    with pytest.raises(
        torchlike.GradientError, match="output 1 .* Pass `grad_tensors`"
    ):
        torchlike.backward(lambda a: (jnp.sum(a), a**2), x)


def test_grad_outputs_mismatches():
    x = jnp.ones(3)
    with pytest.raises(
        torchlike.GradientError,
        match=r"Mismatch in shape: `grad_outputs\[0\]` has shape \(2,\) and output 0",
    ):
        torchlike.grad(lambda a: a**2, x, jnp.ones(2))
    with pytest.raises(
        torchlike.GradientError, match="got 2 outputs and 1 `grad_outputs`"
    ):
        torchlike.grad(lambda a: (a**2, a), x, (jnp.ones(3),))


def test_bad_arguments():
    x = jnp.ones(2)
    with pytest.raises(TypeError, match="`fn` must be a function of the inputs"):
        torchlike.grad(jnp.sum(x), x)
    with pytest.raises(TypeError, match="`fn` must be a function of the inputs"):
        torchlike.backward(jnp.sum(x), x)
    with pytest.raises(ValueError, match="`inputs` must hold at least one input"):
        torchlike.grad(jnp.sum, ())
    with pytest.raises(TypeError, match=r"`inputs\[1\]` has nothing to differentiate"):
        torchlike.grad(lambda a, i: jnp.sum(a) * i, (x, jnp.arange(2)))
    with pytest.raises(TypeError, match="`create_graph` must be True, False or None"):
        torchlike.grad(jnp.sum, x, create_graph="yes")
    with pytest.raises(TypeError, match="output 0 of `fn` has dtype int"):
        torchlike.grad(lambda a: jnp.sum(a).astype(jnp.int32), x)
    with pytest.raises(TypeError, match="but output 0 is a str"):
        torchlike.grad(lambda a: "loss", x)
    with pytest.raises(ValueError, match="returned an empty sequence"):
        torchlike.grad(lambda a: (), x)


# -- backward ----------------------------------------------------------------------


def _two(x1, x2):
    return x1**2 + 5 * x2


def test_backward_two_input_example_and_accumulation():
    x1, x2 = jnp.asarray(2.0), jnp.asarray(3.0)
    grads = None
    for calls in range(1, 4):
        grads = torchlike.backward(_two, (x1, x2), grads=grads)
        assert (float(grads[0]), float(grads[1])) == (4.0 * calls, 5.0 * calls)


def test_backward_returns_new_store_and_mutates_nothing():
    x = jnp.array([1.0, 2.0])
    store = torchlike.backward(lambda a: jnp.sum(a**2), x)
    again = torchlike.backward(lambda a: jnp.sum(a**2), x, grads=store)
    np.testing.assert_array_equal(store[0], 2 * x)  # the old store is unchanged
    np.testing.assert_array_equal(again[0], 4 * x)


def test_backward_wrt_indices_and_masks():
    x1, x2 = jnp.asarray(2.0), jnp.asarray(3.0)
    assert torchlike.backward(_two, (x1, x2), wrt=(0,))[1] is None
    assert torchlike.backward(_two, (x1, x2), wrt=0)[1] is None
    assert torchlike.backward(_two, (x1, x2), wrt=-1)[0] is None
    assert torchlike.backward(_two, (x1, x2), wrt=(False, True))[0] is None
    g = torchlike.backward(_two, (x1, x2), wrt=[0, 1])
    assert (float(g[0]), float(g[1])) == (4.0, 5.0)
    # A filter spec may hold callables, as in Equinox.
    params = {"a": jnp.asarray(2.0), "n": jnp.asarray(3)}
    (g,) = torchlike.backward(
        lambda p: p["a"] ** 2 * p["n"], params, wrt=(eqx.is_inexact_array,)
    )
    assert float(g["a"]) == 12.0 and g["n"] is None
    with pytest.raises(ValueError, match="a filter spec whose structure is a prefix"):
        torchlike.backward(lambda p: p["a"] ** 2, params, wrt=({"b": True},))
    # Entries outside `wrt` keep their old value, exactly like .grad.
    store = (jnp.asarray(10.0), jnp.asarray(20.0))
    g = torchlike.backward(_two, (x1, x2), grads=store, wrt=(1,))
    assert (float(g[0]), float(g[1])) == (10.0, 25.0)


def test_backward_unused_input_leaves_store_unchanged():
    x, w = jnp.array([1.0, 2.0]), jnp.asarray(3.0)
    f = lambda x, w: jnp.sum(x**2)
    assert torchlike.backward(f, (x, w))[1] is None
    g = torchlike.backward(f, (x, w), grads=(None, jnp.asarray(7.0)))
    assert float(g[1]) == 7.0


def test_backward_bad_wrt_and_store():
    x1, x2 = jnp.asarray(2.0), jnp.asarray(3.0)
    with pytest.raises(ValueError, match="`wrt` must not be empty"):
        torchlike.backward(_two, (x1, x2), wrt=())
    with pytest.raises(ValueError, match="`wrt` holds index 2, but there are 2 inputs"):
        torchlike.backward(_two, (x1, x2), wrt=(2,))
    with pytest.raises(ValueError, match="one bool/filter spec per input"):
        torchlike.backward(_two, (x1, x2), wrt=(True,))
    with pytest.raises(TypeError, match=r"`wrt\[0\]` must be a bool or a filter spec"):
        torchlike.backward(_two, (x1, x2), wrt=("yes", True))
    with pytest.raises(TypeError, match="`wrt` must be None, an input index"):
        torchlike.backward(_two, (x1, x2), wrt="x1")
    with pytest.raises(TypeError, match=r"`wrt` selects `inputs\[1\]`"):
        torchlike.backward(lambda a, i: a * i, (x1, jnp.asarray(2)), wrt=(0, 1))
    with pytest.raises(torchlike.GradientError, match="Nothing requires grad"):
        torchlike.backward(_two, (x1, x2), wrt=(False, False))
    with pytest.raises(ValueError, match="`grads` must be None or a tuple with one"):
        torchlike.backward(_two, (x1, x2), grads=(None,))
    with pytest.raises(
        ValueError, match=r"`grads\[1\]` holds a gradient of shape \(2,\)"
    ):
        torchlike.backward(_two, (x1, x2), grads=(None, jnp.ones(2)))
    with pytest.raises(ValueError, match=r"`grads\[0\]` must be None or shaped like"):
        torchlike.backward(_two, (x1, x2), grads=((x1, x1), None))


def test_zero_grad():
    store = torchlike.backward(_two, (jnp.asarray(2.0), jnp.asarray(3.0)), wrt=0)
    assert torchlike.zero_grad(store) == (None, None)
    zeroed = torchlike.zero_grad(store, set_to_none=False)
    assert float(zeroed[0]) == 0.0 and zeroed[1] is None
    with pytest.raises(TypeError, match="`grads` must be a store"):
        torchlike.zero_grad(None)
    with pytest.raises(TypeError, match="`set_to_none` must be True or False"):
        torchlike.zero_grad(store, set_to_none=None)


def test_requires_grad_freezes_part_of_a_model(getkey):
    mlp = eqx.nn.MLP(1, 1, 8, 2, key=getkey())
    x = jnp.array([0.3])
    loss = lambda m, x: jnp.sum(m(x) ** 2)
    spec = torchlike.requires_grad(mlp, False, where=lambda m: m.layers[0])
    store, gx = torchlike.backward(loss, (mlp, x), wrt=(spec, False))
    assert gx is None
    assert store.layers[0].weight is None and store.layers[0].bias is None
    expected = eqx.filter_grad(loss)(mlp, x)
    for k in (1, 2):
        np.testing.assert_array_equal(store.layers[k].weight, expected.layers[k].weight)
    # The same spec partitions the model for `grad`, the Equinox way.
    params, static = eqx.partition(mlp, spec)
    (g,) = torchlike.grad(lambda p: loss(eqx.combine(p, static), x), params)
    assert g.layers[0].weight is None
    np.testing.assert_array_equal(g.layers[2].bias, expected.layers[2].bias)
    # All frozen: nothing requires grad.
    with pytest.raises(torchlike.GradientError, match="Nothing requires grad"):
        torchlike.backward(
            loss, (mlp, x), wrt=(torchlike.requires_grad(mlp, False), False)
        )
    with pytest.raises(TypeError, match="`flag` must be True or False"):
        torchlike.requires_grad(mlp, 0)
    with pytest.raises(TypeError, match="`where` must be a function"):
        torchlike.requires_grad(mlp, False, where="layers")


def test_backward_with_pinn_trainable_spec(getkey):
    problem = odefit.IVP(lambda t, y, args: -y, t0=0.0, t1=1.0, y0=1.0)
    model = odefit.PINN(problem, width=8, depth=1, key=getkey())
    ts = jnp.linspace(0.0, 1.0, 5)
    loss = lambda m: _crosscheck.odefit_pinn_loss(m, problem, ts)
    (store,) = torchlike.backward(loss, model, wrt=(model.trainable(),))
    assert store.scale is None  # a buffer, not a parameter
    params, static = eqx.partition(model, model.trainable())
    expected = jax.grad(lambda p: loss(eqx.combine(p, static)))(params)
    np.testing.assert_array_equal(
        store.mlp.layers[0].weight, expected.mlp.layers[0].weight
    )


def test_backward_under_jit_accumulates():
    x = jnp.array([1.0, -2.0])
    step = jax.jit(lambda x, g: torchlike.backward(lambda a: jnp.sum(a**3), x, grads=g))
    g = step(x, (jnp.zeros(2),))
    g = step(x, g)
    np.testing.assert_allclose(g[0], 2 * 3 * x**2, rtol=1e-15)


# -- threads -----------------------------------------------------------------------


def test_threads_get_bit_identical_correct_gradients():
    mlp, batches = _crosscheck._thread_setup()
    threaded, serial = _crosscheck.odefit_thread_gradients(mlp, batches)
    for a, b in zip(threaded, serial, strict=True):
        np.testing.assert_array_equal(a, b)
    n = len(batches)
    for k, xs in enumerate(batches):
        expected = eqx.filter_grad(_crosscheck._mlp_loss)(mlp, jnp.asarray(xs))
        flat = _crosscheck._flat_grads(expected)
        np.testing.assert_allclose(threaded[k], flat, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(threaded[n + k], flat, rtol=1e-13, atol=1e-15)


def test_threaded_training_the_jax_ways_are_exact():
    """Synchronous data parallelism, independent fits and a locked shared variable
    give, in threads, exactly what the serial run gives; a literal port of the
    Hogwild loop without a lock loses the updates it overwrites."""
    from odefit.torchlike import _threads

    rows = {o.name: o for o in _threads.observations(False)}
    exact = [o for o in rows.values() if o.exact]
    assert len(exact) == 3
    for o in exact:
        assert o.value == 0, o
    forced = rows[
        "JAX shared variable, no lock, all read before any write: updates lost"
    ]
    # Every round, all 4 workers read the same weights and only the last write
    # survives: 3 of 4 updates lost in each of the 10 rounds.
    assert forced.value == 30
