"""odefit.torchlike against real PyTorch (float64, CPU): the same inputs and weights,
the same numbers. Skipped as a whole when PyTorch is not installed; CI installs it,
and then none of these is skipped."""

import subprocess
import sys

import hypothesis.extra.numpy as hnp
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from odefit import torchlike
from odefit.torchlike import _crosscheck

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("case", _crosscheck.CASES, ids=lambda c: c.name)
def test_cross_check(case):
    rows = case.run(True)
    assert rows
    for row in rows:
        assert row.difference is not None
        assert row.difference <= _crosscheck.TOLERANCE, (
            f"{row.quantity}: PyTorch {row.torch} vs odefit {row.odefit}"
        )
    if case.name.startswith("PINN"):
        # Equal gradients must also be informative ones: a residual far from
        # solved, and nonzero gradients in every layer.
        by_name = {row.quantity: row for row in rows}
        assert float(by_name["loss"].odefit) > 1e-3
        grads = [r.odefit for q, r in by_name.items() if q.startswith("dloss/d")]
        assert len(grads) == 6
        assert all(np.max(np.abs(g)) > 1e-6 for g in grads)


def test_error_messages_mirror_torch():
    x = torch.ones(3, dtype=torch.float64, requires_grad=True)
    w = torch.ones((), dtype=torch.float64, requires_grad=True)
    with pytest.raises(RuntimeError) as theirs:
        torch.autograd.grad(x**2, x)
    with pytest.raises(RuntimeError) as ours:
        torchlike.grad(lambda a: a**2, jnp.ones(3))
    assert str(theirs.value) in str(ours.value)

    with pytest.raises(RuntimeError) as theirs:
        torch.autograd.grad(torch.sum(x**2), (x, w))
    with pytest.raises(RuntimeError) as ours:
        torchlike.grad(lambda a, b: jnp.sum(a**2), (jnp.ones(3), jnp.asarray(1.0)))
    phrase = "at index 1 appears to not have been used in the graph"
    assert phrase in str(theirs.value) and phrase in str(ours.value)
    assert "allow_unused=True" in str(theirs.value)
    assert "allow_unused=True" in str(ours.value)

    with pytest.raises(ValueError) as theirs:
        torch.autograd.grad(torch.sum(x), x, allow_unused=False, materialize_grads=True)
    with pytest.raises(ValueError) as ours:
        torchlike.grad(jnp.sum, jnp.ones(3), allow_unused=False, materialize_grads=True)
    assert str(theirs.value) == str(ours.value)


# -- randomised shapes and values ------------------------------------------------

_values = st.floats(-2.0, 2.0, allow_nan=False, allow_infinity=False, width=64)


def _jax_functions(k):
    return [
        lambda x, W, b: jnp.tanh(W @ x + b),
        lambda x, W, b: (jnp.sin(x) * b, jnp.sum((W @ x) ** 2)),
        lambda x, W, b: (W * x * b, jnp.exp(-(x**2)) * jnp.sum(W)),
        lambda x, W, b: jnp.cos(W @ x),  # b unused
    ][k]


def _torch_functions(k):
    return [
        lambda x, W, b: torch.tanh(W @ x + b),
        lambda x, W, b: (torch.sin(x) * b, torch.sum((W @ x) ** 2)),
        lambda x, W, b: (W * x * b, torch.exp(-(x**2)) * torch.sum(W)),
        lambda x, W, b: torch.cos(W @ x),
    ][k]


@st.composite
def _examples(draw):
    n, m = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    x = draw(hnp.arrays(np.float64, (n,), elements=_values))
    W = draw(hnp.arrays(np.float64, (m, n), elements=_values))
    b = np.float64(draw(_values))
    k = draw(st.integers(0, 3))
    outputs = _jax_functions(k)(jnp.asarray(x), jnp.asarray(W), jnp.asarray(b))
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    weights = []
    for out in outputs:
        if out.size == 1 and draw(st.booleans()):
            weights.append(None)  # implicit ones, allowed for a scalar output
        else:
            weights.append(draw(hnp.arrays(np.float64, out.shape, elements=_values)))
    return k, (x, W, b), weights


def _torch_leaves(arrays):
    return [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]


def _torch_weights(weights):
    return [
        None if v is None else torch.tensor(v, dtype=torch.float64) for v in weights
    ]


def _close(ours, theirs):
    if theirs is None:
        assert ours is None
        return
    np.testing.assert_allclose(
        np.asarray(ours), theirs.detach().numpy(), rtol=1e-12, atol=1e-12
    )


@settings(max_examples=15, deadline=None)
@given(_examples())
def test_random_grad_matches_torch(example):
    k, arrays, weights = example
    ours = torchlike.grad(
        _jax_functions(k),
        tuple(jnp.asarray(a) for a in arrays),
        grad_outputs=weights,
        allow_unused=True,
    )
    leaves = _torch_leaves(arrays)
    outputs = _torch_functions(k)(*leaves)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    theirs = torch.autograd.grad(
        outputs, leaves, grad_outputs=_torch_weights(weights), allow_unused=True
    )
    for a, b in zip(ours, theirs, strict=True):
        _close(a, b)


@settings(max_examples=12, deadline=None)
@given(
    _examples(),
    st.lists(
        st.lists(st.integers(0, 2), min_size=1, max_size=3, unique=True),
        min_size=1,
        max_size=3,
    ),
)
def test_random_backward_accumulation_matches_torch(example, selections):
    k, arrays, weights = example
    inputs = tuple(jnp.asarray(a) for a in arrays)
    leaves = _torch_leaves(arrays)
    grads = None
    for wrt in selections:  # one backward call per selection, accumulating
        grads = torchlike.backward(
            _jax_functions(k), inputs, grad_tensors=weights, grads=grads, wrt=tuple(wrt)
        )
        outputs = _torch_functions(k)(*leaves)
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        torch.autograd.backward(
            outputs,
            grad_tensors=_torch_weights(weights),
            inputs=[leaves[i] for i in wrt],
        )
        for ours, leaf in zip(grads, leaves, strict=True):
            _close(ours, leaf.grad)


@pytest.mark.slow
def test_side_by_side_script_with_torch():
    result = subprocess.run(
        [sys.executable, "-m", "odefit.torchlike"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "quantities agree within 1e-10" in result.stdout
    assert "torch 2." in result.stdout


# -- training loops and threads ----------------------------------------------------


@pytest.mark.parametrize("ode", ["IVP", "SecondOrderIVP"])
def test_hand_written_adam_loop_matches_pytorch(ode):
    """The JAX loop written by hand (`eqx.partition`, `eqx.filter_value_and_grad`
    of `odefit.loss`, `optimizer.update`, `eqx.apply_updates`) and PyTorch's
    (`zero_grad`, `backward`, `step`), from the same weights on the same fixed
    points: 10 Adam steps in float64 end at the same weights."""
    from odefit.torchlike import _training

    problem = {
        "IVP": _crosscheck._first_order,
        "SecondOrderIVP": _crosscheck._second_order,
    }
    ours, theirs = _training.compare(True, problem[ode])
    weights = [q for q in ours if q.startswith("after")]
    assert len(weights) == 6  # every weight and bias of the three layers
    for quantity in ours:
        difference = _crosscheck.difference(
            _crosscheck._np(theirs[quantity]), _crosscheck._np(ours[quantity])
        )
        assert difference <= 1e-10, (quantity, difference)
    losses = np.asarray(ours[f"loss at steps 1..{_training.STEPS}"])
    assert losses[-1] < 0.9 * losses[0]  # the steps did something


@pytest.mark.slow
def test_hogwild_observations_with_torch():
    from odefit.torchlike import _threads

    rows = {o.name: o for o in _threads.observations(True)}
    for o in rows.values():
        if o.exact:
            assert o.value == 0, o
    label = "PyTorch Hogwild threads, p.data -= lr * p.grad"
    assert f"{label}: runs that failed" in rows
    assert f"{label}: updates skipped" in rows
