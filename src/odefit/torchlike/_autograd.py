"""The machinery shared by `grad` and `backward`: inputs flattened to leaves, one
`jax.vjp`, PyTorch's rules for implicit output gradients, and which leaves the
outputs actually use."""

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PyTree

from ._errors import GradientError
from ._graph import used_inputs


class Flat(NamedTuple):
    """One input flattened: its leaves and which of them are differentiated."""

    treedef: Any
    leaves: list[Any]
    diff: list[bool]


class Pulled(NamedTuple):
    """The result of one backward pass, leaf by leaf."""

    flats: list[Flat]
    cotangents: list[list[Array | None]]  # None where a leaf is not differentiated
    used: list[list[bool]]  # whether some output depends on the leaf


def as_inputs(inputs) -> tuple[PyTree, ...]:
    """`inputs` as a tuple: a tuple or list is a sequence of inputs, anything else
    (an array, an Equinox module) is one input. Top-level Python and NumPy numbers
    become JAX arrays, so that `grad(f, 3.0)` works."""
    seq = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    if not seq:
        raise ValueError(
            "`inputs` must hold at least one input to differentiate, got an empty "
            f"{type(inputs).__name__}."
        )
    return tuple(
        jnp.asarray(x) if isinstance(x, (int, float, np.ndarray, np.generic)) else x
        for x in seq
    )


def _is_bool(x) -> bool:
    return isinstance(x, (bool, np.bool_))


def spec_leaves(spec, tree, name: str) -> list[bool]:
    """Broadcasts an Equinox-style filter spec (a bool, a callable, or a prefix
    PyTree of those) over `tree` and returns one bool per leaf of `tree`."""

    def value(s, leaf):
        if _is_bool(s):
            return bool(s)
        if callable(s):
            return bool(s(leaf))
        raise TypeError(
            f"`{name}` must be a bool or a filter spec (a PyTree of bools or "
            f"callables shaped like the input), but it holds {s!r}."
        )

    try:
        full = jax.tree.map(
            lambda s, sub: jax.tree.map(lambda leaf: value(s, leaf), sub), spec, tree
        )
        return jax.tree.structure(tree).flatten_up_to(full)
    except (ValueError, KeyError) as e:
        raise ValueError(
            f"`{name}` must be a bool or a filter spec whose structure is a prefix "
            f"of the input's; got structure {jax.tree.structure(spec)} for an input "
            f"of structure {jax.tree.structure(tree)}."
        ) from e


def flatten(inputs: Sequence[PyTree], masks: Sequence[list[bool] | None]):
    flats = []
    for x, mask in zip(inputs, masks, strict=True):
        leaves, treedef = jax.tree.flatten(x)
        if mask is None:
            mask = [True] * len(leaves)
        diff = [
            bool(m) and eqx.is_inexact_array(leaf)
            for leaf, m in zip(leaves, mask, strict=True)
        ]
        flats.append(Flat(treedef, leaves, diff))
    return flats


def as_outputs(out) -> tuple[Array, ...]:
    seq = tuple(out) if isinstance(out, (tuple, list)) else (out,)
    if not seq:
        raise ValueError(
            "`fn` returned an empty sequence; it must return an array or a tuple of "
            "arrays (PyTorch's `outputs`/`tensors`)."
        )
    arrays = []
    for k, o in enumerate(seq):
        try:
            o = jnp.asarray(o)
        except TypeError as e:
            raise TypeError(
                "`fn` must return an array or a tuple/list of arrays, but output "
                f"{k} is a {type(o).__name__}."
            ) from e
        if not jnp.issubdtype(o.dtype, jnp.floating):
            raise TypeError(
                f"output {k} of `fn` has dtype {o.dtype}; only real floating-point "
                "outputs can be differentiated."
            )
        arrays.append(o)
    return tuple(arrays)


def output_cotangents(outs, given, name: str) -> tuple[Array, ...]:
    """PyTorch's `_make_grads`: one cotangent per output; `None` (or no argument)
    means ones, allowed only for single-element outputs; others are cast to the
    output's dtype, as PyTorch does."""
    if given is None:
        given = (None,) * len(outs)
    elif isinstance(given, (tuple, list)):
        given = tuple(given)
    else:
        given = (given,)
    if len(given) != len(outs):
        raise GradientError(
            f"got {len(outs)} outputs and {len(given)} `{name}`: pass one entry "
            f"per output of `fn` (None for a single-element output)."
        )
    cotangents = []
    for k, (o, g) in enumerate(zip(outs, given, strict=True)):
        if g is None:
            if o.size != 1:
                raise GradientError(
                    "grad can be implicitly created only for scalar outputs: output "
                    f"{k} of `fn` has shape {o.shape}. Pass `{name}` with an array "
                    "of that shape per output (the weights of the vector-Jacobian "
                    "product; jnp.ones_like(output) differentiates its sum)."
                )
            cotangents.append(jnp.ones_like(o))
            continue
        g = jnp.asarray(g)
        if g.shape != o.shape:
            raise GradientError(
                f"Mismatch in shape: `{name}[{k}]` has shape {g.shape} and output "
                f"{k} of `fn` has shape {o.shape}."
            )
        cotangents.append(g.astype(o.dtype))
    return tuple(cotangents)


def pull_back(
    fn: Callable[..., Any],
    inputs: Sequence[PyTree],
    masks: Sequence[list[bool] | None],
    output_weights,
    weights_name: str,
) -> Pulled:
    """One vector-Jacobian product of `fn(*inputs)` with respect to every
    differentiated leaf, and the leaves' usage."""
    flats = flatten(inputs, masks)
    primals = [
        jnp.asarray(leaf)
        for flat in flats
        for leaf, d in zip(flat.leaves, flat.diff, strict=True)
        if d
    ]

    def flat_fn(*ps):
        it = iter(ps)
        rebuilt = [
            flat.treedef.unflatten(
                [
                    next(it) if d else leaf
                    for leaf, d in zip(flat.leaves, flat.diff, strict=True)
                ]
            )
            for flat in flats
        ]
        return as_outputs(fn(*rebuilt))

    outs, vjp_fn = jax.vjp(flat_fn, *primals)
    cotangents = output_cotangents(outs, output_weights, weights_name)
    primal_cts = vjp_fn(cotangents)
    primal_used = used_inputs(vjp_fn, cotangents)

    cts_iter, used_iter = iter(primal_cts), iter(primal_used)
    cotangents, used = [], []
    for flat in flats:
        cotangents.append([next(cts_iter) if d else None for d in flat.diff])
        used.append([next(used_iter) if d else False for d in flat.diff])
    return Pulled(flats, cotangents, used)
