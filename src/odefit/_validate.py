"""Checks of scalar arguments shared by every public constructor and function.

One definition of "an integer", "a number" and "a boolean" for all of odefit:
Python and NumPy integers are integers (`16`, `np.int64(16)`), Python and NumPy
reals are numbers, and only `True`/`False` (or `np.bool_`) are booleans — the
string `"no"` is not `False`. Each check names the argument and shows what it
received, and returns the value as a plain Python `int`, `float` or `bool`, so
that static fields hash and compare as expected.
"""

import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np

# The largest count a step counter or a static size may hold: int32, the integer
# type JAX uses when x64 is off.
INT32_MAX = int(np.iinfo(np.int32).max)


def _is_bool(value) -> bool:
    return isinstance(value, (bool, np.bool_))


def check_int(
    value, name: str, minimum: int | None = None, maximum: int | None = None
) -> int:
    """`value` as a Python int: a Python or NumPy integer (not a bool, not a
    float such as 2.0) in `[minimum, maximum]`; `ValueError` naming `name`
    otherwise."""
    parts = [f">= {minimum}"] if minimum is not None else []
    parts += [f"<= {maximum}"] if maximum is not None else []
    bounds = (
        " and ".join(["an integer " + parts[0], *parts[1:]])
        if parts
        else ("an integer")
    )
    if _is_bool(value) or not isinstance(value, (numbers.Integral, np.integer)):
        raise ValueError(f"`{name}` must be {bounds}, got {value!r}.")
    out = int(value)
    if (minimum is not None and out < minimum) or (
        maximum is not None and out > maximum
    ):
        raise ValueError(f"`{name}` must be {bounds}, got {out}.")
    return out


def check_float(
    value,
    name: str,
    minimum: float | None = None,
    maximum: float | None = None,
    *,
    open_minimum: bool = False,
    open_maximum: bool = False,
    what: str | None = None,
) -> float:
    """`value` as a finite Python float: a Python or NumPy real (int or float, not
    a bool) within the bounds (open or closed); `ValueError` naming `name`
    otherwise. `what` replaces the default description in the message (e.g.
    "a number in (0, 1)")."""
    if what is None:
        parts = []
        if minimum is not None:
            parts.append(f"{'>' if open_minimum else '>='} {minimum:g}")
        if maximum is not None:
            parts.append(f"{'<' if open_maximum else '<='} {maximum:g}")
        what = "a finite number" + (" " + " and ".join(parts) if parts else "")
    if _is_bool(value) or not isinstance(
        value, (numbers.Real, np.integer, np.floating)
    ):
        raise ValueError(f"`{name}` must be {what}, got {value!r}.")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"`{name}` must be {what}, got {out!r}.")
    if minimum is not None and (out <= minimum if open_minimum else out < minimum):
        raise ValueError(f"`{name}` must be {what}, got {out!r}.")
    if maximum is not None and (out >= maximum if open_maximum else out > maximum):
        raise ValueError(f"`{name}` must be {what}, got {out!r}.")
    return out


def check_bool(value, name: str) -> bool:
    """`value` as a Python bool: only `True`, `False` or a NumPy bool; a string
    such as `"no"` (which Python would treat as true) is a `TypeError`."""
    if not _is_bool(value):
        raise TypeError(
            f"`{name}` must be a bool (True or False), got "
            f"{type(value).__name__} {value!r}."
        )
    return bool(value)


def check_key(key, name: str = "key") -> None:
    """`key` must be one `jax.random` key: a scalar typed key
    (`jax.random.key(0)`) or a legacy raw key of shape (2,) and dtype uint32
    (`jax.random.PRNGKey(0)`). A Python int, `None` or a batch of keys is a
    `TypeError` naming `name`."""
    if isinstance(key, jax.Array):
        typed = jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
        if (typed and key.shape == ()) or (
            not typed and key.dtype == jnp.uint32 and key.shape == (2,)
        ):
            return
        if typed:
            raise TypeError(
                f"`{name}` must be a single jax.random key, got a batch of keys of "
                f"shape {key.shape}; pass one key (e.g. `{name}[0]`), or "
                "`jax.vmap` over the call for many."
            )
        raise TypeError(
            f"`{name}` must be a jax.random key such as jax.random.key(0), got an "
            f"array of shape {key.shape} and dtype {key.dtype}."
        )
    raise TypeError(
        f"`{name}` must be a jax.random key such as jax.random.key(0), got "
        f"{type(key).__name__} {key!r}."
    )


def real_array(value, name: str, *, boolean_arrays: bool = True):
    """`value`, a number or an array of numbers (possibly traced), as a JAX array
    of a floating dtype: integers are converted; `bool`, `str`, `None`, complex
    numbers and what JAX cannot convert are a `TypeError` naming `name`, and so
    are boolean arrays with `boolean_arrays=False`. Whether the values are
    finite is the caller's to check (a traced value cannot be)."""
    if isinstance(value, (bool, str)) or value is None:
        raise TypeError(
            f"`{name}` must be a float or an array of floats, got {value!r}."
        )
    try:
        array = jnp.asarray(value)
    except (TypeError, ValueError, OverflowError) as e:
        raise TypeError(
            f"`{name}` must be a float or an array of floats, got {value!r}."
        ) from e
    if jnp.issubdtype(array.dtype, jnp.complexfloating) or (
        not boolean_arrays and array.dtype == jnp.bool_
    ):
        raise TypeError(f"`{name}` must be real, got dtype {array.dtype}.")
    if not jnp.issubdtype(array.dtype, jnp.floating):
        array = array.astype(jnp.result_type(float))
    return array


def check_scale(scale, state, name: str = "scale"):
    """A per-component scale for a state shaped and typed like `state`: positive
    finite numbers, a scalar (broadcast) or an array of the state's shape.
    Returns a JAX array of the state's dtype. A string such as `"auto"` is a
    `TypeError` naming `name`; the default (`None`) is the caller's to handle."""
    shape, dtype = jnp.shape(state), jnp.result_type(state)
    description = (
        f"`{name}` must be positive numbers: a float or an array of shape {shape}"
    )
    if isinstance(scale, (str, bytes)) or _is_bool(scale) or scale is None:
        raise TypeError(f"{description}, got {type(scale).__name__} {scale!r}.")
    try:
        array = np.asarray(scale)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{description}, got {type(scale).__name__}.") from e
    if array.dtype.kind not in "iuf":
        raise TypeError(f"{description}, got dtype {array.dtype}.")
    if array.ndim == 0:
        array = np.broadcast_to(array, shape)
    if array.shape != shape:
        raise ValueError(
            f"`{name}` has shape {array.shape} but the state has shape {shape}."
        )
    out = jnp.asarray(array, dtype)
    if not bool(jnp.all(jnp.isfinite(out) & (out > 0))):
        raise ValueError(f"`{name}` must be finite and > 0, got {np.asarray(out)}.")
    return out
