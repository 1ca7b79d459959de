"""Refusing, before anything is allocated, what cannot fit in the machine's memory.

Every argument that sets the size of an allocation (points, windows, a network's
width, an optimiser's history, a file read whole) is checked here against the
machine's physical memory, with a `ValueError` that names the argument and shows
the estimate, instead of a process that swaps for minutes or dies deep in XLA.
The estimates are lower bounds: what is refused could never run; what passes may
still need more (the compiled program's temporaries).
"""

import os

import jax.numpy as jnp
import numpy as np

# A training step holds, for every collocation point, at least this many arrays
# of the state's dtype: the time, the network's input and output and their
# forward-mode tangents, the residual, and the reverse pass through each.
FLOATS_PER_POINT = 16
# What a fitted time window keeps at the very least (its breakpoint, its model,
# history and result objects).
BYTES_PER_WINDOW = 1024


def physical_memory() -> int | None:
    """The machine's physical memory in bytes (`os.sysconf`), or `None` where the
    platform does not say."""
    try:
        pages = os.sysconf("SC_PHYS_PAGES")
        page_size = os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    if pages <= 0 or page_size <= 0:
        return None
    return int(pages) * int(page_size)


def format_bytes(nbytes: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(nbytes) < 1024 or unit == "PiB":
            return f"{nbytes:.0f} {unit}" if unit == "bytes" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    raise AssertionError  # unreachable


def check_bytes(nbytes: float, name: str, what: str) -> None:
    """Raises `ValueError` naming the argument `name` when `nbytes` (the estimate
    of what it asks for, described by `what`) exceeds physical memory."""
    limit = physical_memory()
    if limit is not None and nbytes > limit:
        raise ValueError(
            f"`{name}` asks for {what}: at least {format_bytes(nbytes)}, more than "
            f"this machine's memory ({format_bytes(limit)}). Use a smaller `{name}`."
        )


def itemsize(dtype=None) -> int:
    """Bytes per element of `dtype`; default JAX's default float (float32, or
    float64 with x64 enabled)."""
    return np.dtype(jnp.result_type(float) if dtype is None else dtype).itemsize


def check_points(n: int, name: str = "n", dtype=None) -> None:
    """`n` collocation points per step: `FLOATS_PER_POINT` floats each."""
    check_bytes(
        float(n) * FLOATS_PER_POINT * itemsize(dtype),
        name,
        f"{n} collocation points ({FLOATS_PER_POINT} floats each in a training step)",
    )


def mlp_parameters(in_size: int, out_size: int, width: int, depth: int) -> int:
    """The number of weights and biases of `equinox.nn.MLP`."""
    if depth == 0:
        return in_size * out_size + out_size
    return (
        in_size * width
        + width
        + (depth - 1) * (width * width + width)
        + width * out_size
        + out_size
    )


def check_mlp(
    *, width: int, depth: int, in_size: int = 1, out_size: int = 1, dtype=None
) -> None:
    """Refuses an MLP whose weights cannot be built: its parameters, and the
    random draw they are initialised from, twice their size. Names `width` (or
    `depth` when `width` alone would fit)."""
    count = mlp_parameters(in_size, out_size, width, depth)
    size = itemsize(dtype)
    # Blame `width` when even one hidden layer of that width cannot fit.
    shallow = 2.0 * mlp_parameters(in_size, out_size, width, min(depth, 2)) * size
    limit = physical_memory()
    name = "width" if limit is None or shallow > limit else "depth"
    check_bytes(
        2.0 * count * size,
        name,
        f"a network of width {width} and depth {depth} ({count:.3g} parameters, "
        "built from a random draw of the same size)",
    )
