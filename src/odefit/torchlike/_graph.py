"""Which inputs a function's outputs depend on, differentiably.

PyTorch knows from its recorded graph whether a tensor was "used": an input with
no path to the outputs raises unless `allow_unused=True`. JAX has no recorded
graph and returns zeros for such inputs, indistinguishable from a derivative that
happens to be zero. So we recover PyTorch's notion from the backward pass itself:
the jaxpr of the `jax.vjp` pullback. An input is used when its cotangent depends on
the output cotangents. JAX's symbolic zeros make this exact for inputs that never
meet the outputs, for `jax.lax.stop_gradient` (PyTorch's `.detach()`) and for
integer casts, and `x * 0` still counts as used, as in PyTorch. Custom VJP rules
are analysed as written (their backward function is what runs).

The analysis is exact through calls (`jax.jit`, `jax.checkpoint`, custom rules),
`lax.cond` and `lax.scan` (so `fori_loop` with static bounds); any other primitive
that carries a sub-jaxpr is treated conservatively (every output depends on every
input), which can only turn an "unused" error into zeros, never hide a real
dependency.
"""

from collections.abc import Callable, Sequence

import jax
import jax.extend as jex
from jaxtyping import Array

_CALLS = frozenset(
    {
        "jit",
        "pjit",
        "closed_call",
        "core_call",
        "custom_jvp_call",
        "custom_vjp_call",
        "custom_vjp_call_jaxpr",
        "checkpoint",
        "remat",
    }
)


def _open(jaxpr):
    return jaxpr.jaxpr if isinstance(jaxpr, jex.core.ClosedJaxpr) else jaxpr


def _call_body(eqn):
    for name in ("jaxpr", "call_jaxpr", "fun_jaxpr"):
        body = eqn.params.get(name)
        if body is None:
            continue
        body = _open(body)
        if len(body.invars) == len(eqn.invars) and len(body.outvars) == len(
            eqn.outvars
        ):
            return body
    return None


def _fixpoint(body, consts: list[int], carry: list[int], rest: list[int]):
    """Dependencies of a scan body's outputs, iterated until the carry stops
    gaining dependencies (a monotone bitmask union, so this terminates)."""
    while True:
        outs = _propagate(body, consts + carry + rest)
        new = [c | o for c, o in zip(carry, outs[: len(carry)], strict=True)]
        if new == carry:
            return outs
        carry = new


def _eqn_deps(eqn, ins: list[int]) -> list[int]:
    try:
        return _structured_deps(eqn, ins)
    except (KeyError, AttributeError, IndexError, TypeError, ValueError):
        # A primitive whose parameters are not laid out as expected (another JAX
        # version): fall back to the conservative answer.
        return _all_deps(eqn, ins)


def _all_deps(eqn, ins: list[int]) -> list[int]:
    merged = 0
    for dep in ins:
        merged |= dep
    return [merged] * len(eqn.outvars)


def _structured_deps(eqn, ins: list[int]) -> list[int]:
    name = eqn.primitive.name
    n_out = len(eqn.outvars)
    if name in _CALLS:
        body = _call_body(eqn)
        if body is not None:
            return _propagate(body, ins)
    elif name == "cond":
        outs = [0] * n_out
        for branch in eqn.params["branches"]:
            for k, dep in enumerate(_propagate(_open(branch), ins[1:])):
                outs[k] |= dep
        return outs
    elif name == "scan":
        n_consts, n_carry = eqn.params["num_consts"], eqn.params["num_carry"]
        return _fixpoint(
            _open(eqn.params["jaxpr"]),
            ins[:n_consts],
            ins[n_consts : n_consts + n_carry],
            ins[n_consts + n_carry :],
        )
    return _all_deps(eqn, ins)


def _propagate(jaxpr, in_deps: Sequence[int]) -> list[int]:
    """Bitmask of the tracked inputs each output of `jaxpr` depends on."""
    deps: dict = {}
    for var, dep in zip(jaxpr.invars, in_deps, strict=True):
        if dep:
            deps[var] = dep

    def dep_of(var) -> int:
        if isinstance(var, jex.core.Literal):
            return 0
        return deps.get(var, 0)

    for eqn in jaxpr.eqns:
        ins = [dep_of(v) for v in eqn.invars]
        if not any(ins):
            continue
        for var, dep in zip(eqn.outvars, _eqn_deps(eqn, ins), strict=True):
            if dep and not isinstance(var, jex.core.DropVar):
                deps[var] = dep
    return [dep_of(v) for v in jaxpr.outvars]


def used_inputs(
    pullback: Callable[[tuple[Array, ...]], tuple[Array, ...]],
    cotangents: Sequence[Array],
) -> list[bool]:
    """For the pullback returned by `jax.vjp` (which maps one cotangent per output
    to one per primal), whether each primal's cotangent depends on the output
    cotangents. Traces the pullback abstractly; computes nothing."""
    closed = jax.make_jaxpr(pullback)(tuple(cotangents))
    jaxpr = closed.jaxpr
    outs = _propagate(jaxpr, [1 << k for k in range(len(jaxpr.invars))])
    return [bool(dep) for dep in outs]
