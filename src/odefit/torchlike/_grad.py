from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
from jaxtyping import Array, ArrayLike, PyTree

from ._autograd import as_inputs, pull_back
from ._errors import GradientError


def _check_flag(value, name: str) -> None:
    if value is not None and not isinstance(value, bool):
        raise TypeError(f"`{name}` must be True, False or None, got {value!r}.")


def grad(
    fn: Callable[..., Array | Sequence[Array]],
    inputs: PyTree | Sequence[PyTree],
    grad_outputs: ArrayLike | Sequence[ArrayLike | None] | None = None,
    *,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    allow_unused: bool | None = None,
    materialize_grads: bool = False,
) -> tuple[Any, ...]:
    r"""The gradients of `fn(*inputs)` with respect to each input: the mirror of
    `torch.autograd.grad(outputs, inputs, grad_outputs, ...)`.

    Where PyTorch takes already-computed `outputs` and walks back through the graph
    recorded while computing them, JAX records nothing: pass the function instead,
    and `fn(*inputs)` plays the role of `outputs`. With outputs $y_k$ and weights
    $v_k$ (`grad_outputs`) the result for input $x_i$ is the vector–Jacobian product

    $$g_i = \sum_k v_k^\top \frac{\partial y_k}{\partial x_i},$$

    computed by one `jax.vjp` (plus an abstract trace of its pullback, which decides
    which inputs are used; under `jax.jit` that happens once, at trace time).
    Nothing is mutated and nothing is accumulated: like
    `torch.autograd.grad`, and unlike `backward`, the result is returned, not added
    into a gradient store.

    PyTorch's rules hold: an output with more than one element needs its entry in
    `grad_outputs` (otherwise "grad can be implicitly created only for scalar
    outputs"), and an input that `fn`'s outputs do not depend on raises unless
    `allow_unused=True` (its gradient is then `None`) or `materialize_grads=True`
    (zeros).

    **Differences from PyTorch:**

    - `create_graph` and `retain_graph` change nothing. A JAX gradient is an
        ordinary traced value, always differentiable again (`create_graph=True`
        is implied; nest `grad` or use `jax.jacfwd`/`jax.hessian` for higher
        orders), and there is no graph to free (`retain_graph=True` is implied).
    - An input may be any PyTree (an Equinox model, a tuple of arrays); its
        gradient has the same structure, with `None` at leaves that are not
        floating-point arrays. The "unused" rule applies to the input as a whole;
        leaves of a used input that the outputs ignore get zeros, as in JAX.
    - An output that depends on no input is not itself an error (PyTorch raises
        "element 0 of tensors does not require grad"): it contributes nothing.
    - There is no `is_grads_batched`; wrap the call in `jax.vmap` instead.
    - `grad` works under `jax.jit`, `jax.vmap` and other transformations.

    **Arguments:**

    - `fn`: a function of the inputs returning an array or a tuple/list of arrays
        (the `outputs`).
    - `inputs`: the inputs `fn` is called with, as a tuple or list; any other
        value (one array, one model) is a single input. Python floats are
        converted to arrays.
    - `grad_outputs`: the weights $v_k$, one per output, each shaped like its
        output (cast to the output's dtype); `None` (for the whole argument or
        one entry) means ones and is allowed only for single-element outputs.
    - `retain_graph`, `create_graph`: accepted for compatibility; see above.
    - `allow_unused`: return `None` for an input the outputs do not depend on,
        instead of raising. Defaults to `materialize_grads`.
    - `materialize_grads`: return zeros for such an input.

    **Returns:** a tuple with one gradient per input, each shaped like its input
    (or `None`, see `allow_unused`).

    **Raises:** [`odefit.torchlike.GradientError`][] (a `ValueError` and a
    `RuntimeError`) for a non-scalar output without `grad_outputs`, mismatched
    shapes, or an unused input; `TypeError` for an input with nothing
    floating-point to differentiate.

    **Example:**

    ```python
    import jax.numpy as jnp
    from odefit import torchlike

    x1, x2 = jnp.array(2.0), jnp.array(3.0)
    torchlike.grad(lambda a, b: a**2 + 5 * b, (x1, x2))
    # (Array(4.), Array(5.))    torch.autograd.grad(y, (x1, x2)) gives the same

    x = jnp.array([1.0, 2.0, 3.0])
    (g,) = torchlike.grad(lambda a: a**2, x, grad_outputs=jnp.ones(3))
    # g == 2 * x: the gradient of the sum of the outputs
    ```
    """
    _check_flag(retain_graph, "retain_graph")
    _check_flag(create_graph, "create_graph")
    _check_flag(allow_unused, "allow_unused")
    _check_flag(materialize_grads, "materialize_grads")
    if materialize_grads and allow_unused is False:
        raise ValueError(
            "Expected allow_unused to be True or not passed when "
            "materialize_grads=True, but got: allow_unused=False."
        )
    if allow_unused is None:
        allow_unused = materialize_grads
    if not callable(fn):
        raise TypeError(
            f"`fn` must be a function of the inputs, got {type(fn).__name__}. "
            "Unlike torch.autograd.grad, which takes computed outputs, odefit "
            "takes the function that computes them."
        )
    inputs = as_inputs(inputs)
    for i, x in enumerate(inputs):
        leaves = jax.tree.leaves(x)
        if not any(eqx.is_inexact_array(leaf) for leaf in leaves):
            dtypes = sorted(
                {str(getattr(leaf, "dtype", type(leaf).__name__)) for leaf in leaves}
            )
            raise TypeError(
                f"`inputs[{i}]` has nothing to differentiate: only floating-point "
                f"arrays can be, and it holds {', '.join(dtypes) or 'no arrays'}."
            )
    pulled = pull_back(fn, inputs, [None] * len(inputs), grad_outputs, "grad_outputs")

    results = []
    for i, (flat, cts, used) in enumerate(
        zip(pulled.flats, pulled.cotangents, pulled.used, strict=True)
    ):
        if not any(used) and not materialize_grads:
            if allow_unused:
                results.append(None)
                continue
            raise GradientError(
                f"The differentiated input at index {i} appears to not have been used "
                "in the graph: no output of `fn` depends on `inputs"
                f"[{i}]`. Pass allow_unused=True to get None for it, or "
                "materialize_grads=True to get zeros."
            )
        results.append(flat.treedef.unflatten(cts))
    return tuple(results)
