r"""Families of ODEs: the parameters that range over a box ([`odefit.Varies`][]),
where they sit in a problem, and the plain problem of one member.

A problem whose `args` or initial value hold `Varies` markers carries a `Family`:
the box $\prod_i [\text{low}_i, \text{high}_i]$ and, for each parameter, its name
and its place. Everything else is derived from it: the member problem of a
parameter vector $p$ (markers replaced by the entries of $p$), its reference
solve, and the conditions of that member built into a network.
"""

import dataclasses
import functools
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from ._custom_types import Key
from ._validate import check_int, check_key
from ._varies import Varies, is_varies

_PRIMES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71)


def halton(n: int, dims: int) -> np.ndarray:
    """The first `n` points (from index 1) of the Halton sequence in `[0, 1)^dims`:
    a fixed, evenly spread set, as least-squares trainers need."""
    if dims > len(_PRIMES):
        rng = np.random.default_rng(0)
        return rng.random((n, dims))
    out = np.zeros((n, dims))
    for d in range(dims):
        base = _PRIMES[d]
        i = np.arange(1, n + 1)
        f = 1.0 / base
        while np.any(i > 0):
            out[:, d] += f * (i % base)
            i //= base
            f /= base
    return out


class Family(eqx.Module):
    r"""The family parameters of a problem: the box spanned by its
    [`odefit.Varies`][] markers, as `problem.family` (`None` for a single ODE).

    The parameter vector $p$ lists the markers' entries in a fixed order: those
    in `args` (in PyTree order, an array marker entry by entry), then those of
    the initial value (`y0`, then `dy0`; `ya`, `yb` for a `BVP`).

    **Attributes:**

    - `low`, `high`: the box, arrays of shape `(size,)` in the state's dtype.
    - `names`: one name per parameter (a marker's `name`, or its place such as
        `"args[1]"` or `"y0[0]"`).

    **Example:**

    ```python
    import jax, odefit

    problem = odefit.IVP(
        lambda t, y, args: -args * y, t0=0.0, t1=1.0,
        y0=odefit.Varies(0.5, 2.0), args=odefit.Varies(1.0, 3.0, name="rate"),
    )
    problem.family.names                       # ('rate', 'y0')
    ps = problem.family.sample(100, key=jax.random.key(0))   # shape (100, 2)
    ```
    """

    low: Float[Array, " size"]
    high: Float[Array, " size"]
    names: tuple[str, ...] = eqx.field(static=True)
    # How many leading entries of p go to the markers of `args`.
    args_size: int = eqx.field(static=True)
    # For each state field holding markers: its name, the positions in the
    # flattened field that vary, and where its entries start in p.
    states: tuple[tuple[str, tuple[int, ...], int], ...] = eqx.field(static=True)

    @property
    def size(self) -> int:
        """The number of family parameters."""
        return len(self.names)

    @property
    def centre(self) -> Float[Array, " size"]:
        """The middle of the box."""
        return (self.low + self.high) / 2

    def scaled(self, params: Float[Array, " size"]) -> Float[Array, " size"]:
        r"""`params` mapped affinely from the box to $[-1, 1]$ (a network's
        input)."""
        return 2 * (params - self.low) / (self.high - self.low) - 1

    def sample(self, n: int, *, key: Key | None = None) -> Float[Array, "n size"]:
        """`n` members of the box: drawn uniformly with `key`, or without a key
        the first `n` points of a Halton sequence (fixed, evenly spread)."""
        n = check_int(n, "n", 1)
        if key is None:
            u = jnp.asarray(halton(n, self.size), self.low.dtype)
        else:
            check_key(key)
            u = jr.uniform(key, (n, self.size), self.low.dtype)
        return self.low + u * (self.high - self.low)

    def check(self, params, name: str = "params") -> Float[Array, " size"]:
        """`params` as one member's parameter vector, or a clear error."""
        if params is None or isinstance(params, (bool, str)):
            raise TypeError(
                f"`{name}` must be an array of the {self.size} family parameters "
                f"{self.names}, got {params!r}."
            )
        try:
            array = jnp.asarray(params)
        except (TypeError, ValueError) as e:
            raise TypeError(
                f"`{name}` must be an array of the {self.size} family parameters "
                f"{self.names}, got {type(params).__name__}."
            ) from e
        if array.shape != (self.size,):
            raise ValueError(
                f"`{name}` must have shape ({self.size},), one entry per family "
                f"parameter {self.names}, got shape {array.shape}."
            )
        if not (
            jnp.issubdtype(array.dtype, jnp.floating)
            or jnp.issubdtype(array.dtype, jnp.integer)
        ):
            raise TypeError(f"`{name}` must be real, got dtype {array.dtype}.")
        return array.astype(self.low.dtype)

    def args(self, args: Any, params: Float[Array, " size"]) -> Any:
        """`args` with each `Varies` marker replaced by its entries of `params`
        (any `odefit.Unknown` left as it is)."""
        leaves, treedef = jtu.tree_flatten(args, is_leaf=is_varies)
        start, out = 0, []
        for x in leaves:
            if is_varies(x):
                size = x.low.size
                out.append(params[start : start + size].reshape(x.low.shape))
                start += size
            else:
                out.append(x)
        if start != self.args_size:
            raise ValueError(
                f"`args` holds {start} varying entries but the family has "
                f"{self.args_size} in `args`; pass the problem's own `args` (with "
                "its `odefit.Varies` markers)."
            )
        return jtu.tree_unflatten(treedef, out)

    def set_states(self, obj: Any, params: Float[Array, " size"]) -> Any:
        """`obj` (a problem, or the conditions it builds into a network) with the
        varying entries of its initial value set from `params`."""
        present = {f.name for f in dataclasses.fields(obj)}
        fields = [entry for entry in self.states if entry[0] in present]
        if not fields:
            return obj
        new = []
        for field, positions, start in fields:
            old = getattr(obj, field)
            values = params[start : start + len(positions)].astype(old.dtype)
            flat = jnp.ravel(old).at[np.asarray(positions)].set(values)
            new.append(flat.reshape(old.shape))
        return eqx.tree_at(
            lambda o: tuple(getattr(o, f) for f, _, _ in fields), obj, tuple(new)
        )

    def astype(self, dtype) -> "Family":
        """The same family with its box in `dtype` (the state's)."""
        return eqx.tree_at(
            lambda f: (f.low, f.high),
            self,
            (self.low.astype(dtype), self.high.astype(dtype)),
        )


def _marker_names(marker: Varies, place: str) -> list[str]:
    base = place if marker.name is None else marker.name
    if marker.low.shape == ():
        return [base]
    return [f"{base}[{', '.join(map(str, i))}]" for i in np.ndindex(marker.low.shape)]


def _split_state(value, field: str):
    """`(centre, positions, lows, highs, names)` of one state field, or `None`
    when it holds no marker."""
    if is_varies(value):
        positions = tuple(range(value.low.size))
        names = (
            [field if value.name is None else value.name]
            if value.low.shape == ()
            else [
                f"{field if value.name is None else value.name}[{i}]" for i in positions
            ]
        )
        if value.low.ndim > 1:
            raise ValueError(
                f"`{field}` is an `odefit.Varies` of shape {value.low.shape}; the "
                "state is a scalar or a 1-D array."
            )
        return (
            value.centre,
            positions,
            list(np.ravel(value.low)),
            list(np.ravel(value.high)),
            names,
        )
    if not isinstance(value, (list, tuple)) or not any(map(is_varies, value)):
        return None
    centre, positions, lows, highs, names = [], [], [], [], []
    for i, entry in enumerate(value):
        if is_varies(entry):
            if entry.low.shape != ():
                raise ValueError(
                    f"`{field}[{i}]` is an `odefit.Varies` of shape "
                    f"{entry.low.shape}; inside a list each entry is one number."
                )
            centre.append(entry.centre)
            positions.append(i)
            lows.append(entry.low)
            highs.append(entry.high)
            names.append(f"{field}[{i}]" if entry.name is None else entry.name)
        else:
            centre.append(entry)
    try:
        centre = jnp.stack([jnp.asarray(c) for c in centre])
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"`{field}` must be a list of numbers and `odefit.Varies`, got {value!r}."
        ) from e
    return centre, tuple(positions), lows, highs, names


def split_family(args: Any, **states) -> tuple["Family | None", dict[str, Any]]:
    """Finds the `Varies` markers of a problem's `args` and state fields: returns
    its `Family` (`None` without markers) and the state fields with their
    markers replaced by the box centre."""
    lows, highs, names = [], [], []
    leaves = jtu.tree_flatten_with_path(args, is_leaf=is_varies)[0]
    for path, x in leaves:
        if is_varies(x):
            lows.extend(np.ravel(x.low))
            highs.extend(np.ravel(x.high))
            names.extend(_marker_names(x, "args" + jtu.keystr(path)))
    args_size = len(names)
    entries, centred = [], {}
    for field, value in states.items():
        split = _split_state(value, field)
        if split is None:
            centred[field] = value
            continue
        centre, positions, low, high, marker_names = split
        entries.append((field, positions, len(names)))
        lows.extend(low)
        highs.extend(high)
        names.extend(marker_names)
        centred[field] = centre
    if not names:
        return None, centred
    if len(set(names)) != len(names):
        raise ValueError(f"The family parameters' names must differ, got {names}.")
    low = jnp.asarray(np.asarray(lows, dtype=np.float64))
    high = jnp.asarray(np.asarray(highs, dtype=np.float64))
    return Family(low, high, tuple(names), args_size, tuple(entries)), centred


def typed(family: "Family | None", dtype) -> "Family | None":
    return None if family is None else family.astype(dtype)


def member(problem, params: Float[ArrayLike, " size"]):
    """The plain problem (no `Varies`) of family member `params`."""
    family = problem.family
    if family is None:
        raise TypeError(
            "This problem is not a family (none of its `args` or initial values "
            "is an `odefit.Varies`), so it has no members."
        )
    p = family.check(params)
    problem = family.set_states(problem, p)
    return eqx.tree_at(
        lambda q: (q.args, q.family),
        problem,
        (family.args(problem.args, p), None),
        is_leaf=lambda x: x is None,
    )


def solves_members(solve):
    """Gives a problem's `solve(ts, **options)` a second positional argument,
    `params`: the member of a family to solve (one vector, or one per row)."""

    @functools.wraps(solve)
    def wrapper(self, ts, params=None, /, **options):
        if self.family is None:
            if params is not None:
                raise TypeError(
                    "`params` was given, but this problem is not a family (none of "
                    "its `args` or initial values is an `odefit.Varies`)."
                )
            return solve(self, ts, **options)
        if params is None:
            raise TypeError(
                f"This problem is a family of ODEs over {self.family.names}: pass "
                "the member to solve, `problem.solve(ts, params)`, with `params` "
                f"of shape ({self.family.size},) (or one row per member)."
            )
        array = jnp.asarray(params)
        if array.ndim == 2:
            outs = [solve(member(self, p), ts, **options) for p in array]
            return jax.tree.map(lambda *xs: jnp.stack(xs), *outs)
        return solve(member(self, params), ts, **options)

    return wrapper


def family_scale(problem) -> Float[Array, "*state"]:
    """The typical size of each state component over the family: the largest
    `characteristic_scale` of the box centre and 16 evenly spread members."""
    family = problem.family
    params = jnp.concatenate([family.centre[None], family.sample(16)])
    scales = [member(problem, p).characteristic_scale() for p in params]
    return jnp.max(jnp.stack(scales), axis=0)
