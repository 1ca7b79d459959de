from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, PyTree

from ._autograd import as_inputs, pull_back, spec_leaves
from ._errors import GradientError

Grads = tuple[Any, ...]


def _is_index(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _masks(wrt, inputs) -> list[list[bool] | None]:
    n = len(inputs)
    if wrt is None:
        return [None] * n
    if _is_index(wrt):
        wrt = (wrt,)
    if not isinstance(wrt, (tuple, list)):
        raise TypeError(
            "`wrt` must be None, an input index, a tuple of indices, or a tuple "
            f"with one bool/filter spec per input; got {type(wrt).__name__}."
        )
    if not wrt:
        raise ValueError(
            "`wrt` must not be empty (PyTorch: 'inputs' argument to backward() "
            "cannot be empty); pass None to accumulate into every input."
        )
    if all(_is_index(w) for w in wrt):
        for w in wrt:
            if not -n <= w < n:
                raise ValueError(f"`wrt` holds index {w}, but there are {n} inputs.")
        chosen = {w % n for w in wrt}
        specs = [i in chosen for i in range(n)]
    elif len(wrt) == n:
        specs = list(wrt)
    else:
        raise ValueError(
            f"`wrt` must hold input indices, or one bool/filter spec per input "
            f"({n}), got {wrt!r}."
        )
    masks = []
    for i, (spec, x) in enumerate(zip(specs, inputs, strict=True)):
        mask = spec_leaves(spec, x, f"wrt[{i}]")
        if spec is True and not any(
            eqx.is_inexact_array(leaf) for leaf in jax.tree.leaves(x)
        ):
            raise TypeError(
                f"`wrt` selects `inputs[{i}]`, which holds no floating-point array "
                "(PyTorch: only Tensors of floating point dtype can require "
                "gradients)."
            )
        masks.append(mask)
    return masks


def _store(grads, inputs) -> list[list[Array | None]]:
    treedefs = [jax.tree.structure(x) for x in inputs]
    if grads is None:
        return [[None] * t.num_leaves for t in treedefs]
    if not isinstance(grads, (tuple, list)) or len(grads) != len(inputs):
        raise ValueError(
            "`grads` must be None or a tuple with one entry per input, as returned "
            f"by `backward` or `zero_grad` ({len(inputs)} entries), got "
            f"{type(grads).__name__}"
            + (f" of length {len(grads)}." if isinstance(grads, (tuple, list)) else ".")
        )
    store = []
    for i, (g, x, treedef) in enumerate(zip(grads, inputs, treedefs, strict=True)):
        if g is None:
            store.append([None] * treedef.num_leaves)
            continue
        try:
            leaves = treedef.flatten_up_to(g)
        except (ValueError, TypeError) as e:
            raise ValueError(
                f"`grads[{i}]` must be None or shaped like `inputs[{i}]` (with None "
                f"for leaves without a gradient): expected structure {treedef}."
            ) from e
        checked = []
        for leaf, old in zip(jax.tree.leaves(x), leaves, strict=True):
            if old is not None:
                if isinstance(old, (float, np.ndarray, np.generic)):
                    old = jnp.asarray(old)
                if not isinstance(old, jax.Array):
                    raise ValueError(
                        f"`grads[{i}]` must be None or shaped like `inputs[{i}]` "
                        f"(arrays, None for leaves without a gradient), but it holds "
                        f"a {type(old).__name__} where `inputs[{i}]` has an array."
                    )
                if old.shape != jnp.shape(leaf):
                    raise ValueError(
                        f"`grads[{i}]` holds a gradient of shape {old.shape} for a "
                        f"leaf of `inputs[{i}]` of shape {jnp.shape(leaf)}."
                    )
            checked.append(old)
        store.append(checked)
    return store


def backward(
    fn: Callable[..., Array | Sequence[Array]],
    inputs: PyTree | Sequence[PyTree],
    grad_tensors: ArrayLike | Sequence[ArrayLike | None] | None = None,
    *,
    grads: Grads | None = None,
    wrt: int | Sequence[int] | Sequence[bool | PyTree] | None = None,
) -> Grads:
    r"""Adds the gradients of `fn(*inputs)` into a gradient store and returns the
    new store: the functional mirror of `torch.autograd.backward(tensors, ...)` and
    `loss.backward()`.

    PyTorch's `backward` returns nothing; it *adds* each leaf's gradient into that
    leaf's `.grad` attribute, which starts as `None`. JAX arrays carry no
    attributes and are never mutated, so the `.grad` attributes become an explicit
    store: a tuple with one entry per input, shaped like the input, `None` where no
    gradient has been accumulated yet. `backward` returns the new store

    $$\text{grads}_i \leftarrow \text{grads}_i + \sum_k v_k^\top
        \frac{\partial y_k}{\partial x_i},$$

    for every input (leaf) that requires grad, is selected by `wrt` and is used by
    the outputs $y_k$ = `fn(*inputs)`; every other entry is returned unchanged
    (`None` stays `None`, as `.grad` does). Calling it twice with the same store
    accumulates twice, exactly like calling `loss.backward()` twice; reset the
    store with [`odefit.torchlike.zero_grad`][].

    **Differences from PyTorch:**

    - The store is passed in and returned, not stored on the arrays: two threads,
        or two models sharing weights, never accumulate into each other's
        gradients by accident.
    - "Requires grad" is not a flag on an array but an Equinox filter: every
        floating-point leaf of the inputs requires grad unless `wrt` says
        otherwise (see [`odefit.torchlike.requires_grad`][]). Integer leaves never
        do, like integer tensors.
    - `wrt` plays PyTorch's `inputs=` argument (which leaves accumulate) and also
        `requires_grad=False` (which leaves are frozen); both only restrict what
        is accumulated, so the numbers are the same.
    - `retain_graph` and `create_graph` do not exist: nothing is freed, and the
        store is an ordinary differentiable value.

    **Arguments:**

    - `fn`: a function of the inputs returning an array or a tuple/list of arrays
        (the `tensors`).
    - `inputs`: the inputs `fn` is called with: a tuple or list, or one array or
        model.
    - `grad_tensors`: the weights of the vector–Jacobian product, one per output,
        as `grad_outputs` in [`odefit.torchlike.grad`][]; `None` means ones and is
        allowed only for single-element outputs.
    - `grads`: the store to accumulate into; `None` is an empty store (every
        `.grad` is `None`).
    - `wrt`: which inputs accumulate: `None` (all), an index or a tuple of
        indices (like `inputs=[x1]`), or a tuple with one bool or Equinox filter
        spec per input (a PyTree of bools shaped like the input, e.g. from
        [`odefit.torchlike.requires_grad`][] or a PINN's `trainable()`).

    **Returns:** the new store, a tuple with one entry per input.

    **Raises:** [`odefit.torchlike.GradientError`][] for a non-scalar output
    without `grad_tensors`, mismatched shapes, or when nothing requires grad.

    **Example:**

    ```python
    import jax.numpy as jnp
    from odefit import torchlike

    def f(x1, x2):
        return x1**2 + 5 * x2

    x1, x2 = jnp.array(2.0), jnp.array(3.0)
    grads = torchlike.backward(f, (x1, x2))                # (4., 5.)
    grads = torchlike.backward(f, (x1, x2), grads=grads)   # (8., 10.): accumulated
    grads = torchlike.zero_grad(grads)                     # (None, None)
    grads = torchlike.backward(f, (x1, x2), wrt=(0,))      # (4., None): inputs=[x1]
    ```
    """
    if not callable(fn):
        raise TypeError(
            f"`fn` must be a function of the inputs, got {type(fn).__name__}. "
            "Unlike loss.backward(), which starts from a computed loss, odefit "
            "takes the function that computes it."
        )
    inputs = as_inputs(inputs)
    masks = _masks(wrt, inputs)
    store = _store(grads, inputs)
    pulled = pull_back(fn, inputs, masks, grad_tensors, "grad_tensors")
    if not any(any(flat.diff) for flat in pulled.flats):
        raise GradientError(
            "Nothing requires grad: no input selected by `wrt` holds a floating-point "
            "array, so there is nothing to accumulate (PyTorch: element 0 of tensors "
            "does not require grad and does not have a grad_fn)."
        )
    out = []
    for flat, old, cts, used in zip(
        pulled.flats, store, pulled.cotangents, pulled.used, strict=True
    ):
        new = [
            (ct if g is None else g + ct) if (d and u) else g
            for g, ct, d, u in zip(old, cts, flat.diff, used, strict=True)
        ]
        out.append(None if all(g is None for g in new) else flat.treedef.unflatten(new))
    return tuple(out)


def zero_grad(grads: Grads, *, set_to_none: bool = True) -> Grads:
    """A cleared gradient store: the functional `optimizer.zero_grad()`.

    **Arguments:**

    - `grads`: a store returned by [`odefit.torchlike.backward`][].
    - `set_to_none`: as in PyTorch (default `True` since PyTorch 2.0): every entry
        becomes `None`; with `False`, every accumulated gradient becomes zeros of
        its shape and `None` entries stay `None`.

    **Returns:** the cleared store.

    **Example:**

    ```python
    import jax.numpy as jnp
    from odefit import torchlike

    grads = torchlike.backward(lambda x: jnp.sum(x**2), (jnp.ones(3),))
    torchlike.zero_grad(grads)                     # (None,)
    torchlike.zero_grad(grads, set_to_none=False)  # (Array([0., 0., 0.]),)
    ```
    """
    if not isinstance(grads, (tuple, list)):
        raise TypeError(
            "`grads` must be a store returned by `backward` (a tuple with one entry "
            f"per input), got {type(grads).__name__}."
        )
    if not isinstance(set_to_none, bool):
        raise TypeError(f"`set_to_none` must be True or False, got {set_to_none!r}.")
    if set_to_none:
        return (None,) * len(grads)
    return tuple(jax.tree.map(jnp.zeros_like, g) for g in grads)


def requires_grad(
    tree: PyTree,
    flag: bool = True,
    *,
    where: Callable[[PyTree], Any] | None = None,
) -> PyTree[bool]:
    """A filter spec saying which leaves of `tree` require grad: the functional
    `module.requires_grad_(flag)`, for `backward(..., wrt=...)` and for
    `eqx.partition`.

    Floating-point array leaves are `True` (they require grad, like an
    `nn.Parameter`), everything else `False`. `where` picks the part set to `flag`
    (as in `eqx.tree_at`); without it the whole tree is.

    **Arguments:**

    - `tree`: an Equinox model or any PyTree.
    - `flag`: whether the selected part requires grad.
    - `where`: a function from `tree` to the node (or tuple of nodes) to set, e.g.
        `lambda m: m.layers[0]`, like `for p in model[0].parameters():
        p.requires_grad_(False)`.

    **Returns:** a PyTree of bools shaped like `tree`.

    **Example:**

    ```python
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    from odefit import torchlike

    mlp = eqx.nn.MLP(1, 1, width_size=8, depth=2, key=jax.random.key(0))
    frozen_first = torchlike.requires_grad(mlp, False, where=lambda m: m.layers[0])
    loss = lambda m, x: jnp.sum(m(x) ** 2)
    (grads, _) = torchlike.backward(
        loss, (mlp, jnp.ones(1)), wrt=(frozen_first, False)
    )
    grads.layers[0].weight   # None: frozen, like a requires_grad=False parameter
    ```
    """
    if not isinstance(flag, bool):
        raise TypeError(f"`flag` must be True or False, got {flag!r}.")
    spec = jax.tree.map(eqx.is_inexact_array, tree)
    if where is None:
        return jax.tree.map(lambda s: s and flag, spec)
    if not callable(where):
        raise TypeError(
            f"`where` must be a function selecting part of `tree`, got {where!r}."
        )
    return eqx.tree_at(
        where, spec, replace_fn=lambda sub: jax.tree.map(lambda s: s and flag, sub)
    )
