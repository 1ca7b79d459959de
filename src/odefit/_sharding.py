r"""Running fits across several devices with `jax.sharding`.

odefit adds no parallelism of its own: it places arrays with `jax.sharding` and lets
XLA's partitioner split the compiled training loop.

- `fit(..., devices=...)` shards each step's **collocation points** across the
    devices and replicates the parameters and optimiser state. Every device
    evaluates the residual on its share of the points; the mean over points and the
    gradient become all-reduces that XLA inserts. The random points are the same
    whatever the number of devices (JAX's partitionable Threefry), so the trained
    model is the same as on one device up to the order of floating-point sums.
- `fit_ensemble(..., devices=...)` shards the **members** of an ensemble: each
    device trains its share of the members, with no communication at all.

Several processes (one per host, or one per GPU) work the same way once
`jax.distributed.initialize()` has been called in every process: `jax.devices()`
then lists the devices of all of them, and it is the default `devices`. Every
process runs the same script with the same key; the compiled loop runs on all the
devices at once, while the host side is split as follows:

- **Process 0 only**: the progress bar and checkpoint files (and their lock).
- **Every process, kept in step**: the history, the stop decisions and the result
    (each process returns the same result, held by itself, so that process 0 can
    evaluate, plot and save it alone). A Ctrl-C in any process stops all of them
    after the current chunk; a callback runs in every process and the value
    returned in process 0 decides.
"""

from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ._collocation import AbstractCollocation
from ._custom_types import Key

POINTS = "points"
MEMBERS = "members"


def check_devices(devices) -> tuple[jax.Device, ...] | None:
    """Validates the `devices` argument of `fit` and `fit_ensemble`; `None` is the
    default device, or with several processes every process's devices."""
    if devices is None:
        return tuple(jax.devices()) if jax.process_count() > 1 else None
    if isinstance(devices, jax.Device) or not isinstance(devices, Sequence):
        raise TypeError(
            "`devices` must be None or a sequence of jax devices such as "
            f"jax.devices(), got {type(devices).__name__}."
        )
    devices = tuple(devices)
    if not devices:
        raise ValueError("`devices` must not be empty; pass None for the default.")
    for d in devices:
        if not isinstance(d, jax.Device):
            raise TypeError(
                "`devices` must contain jax devices (from jax.devices()), got an "
                f"element of type {type(d).__name__}."
            )
    if len(set(devices)) != len(devices):
        raise ValueError(f"`devices` lists a device more than once: {devices}.")
    processes = {d.process_index for d in devices}
    if len(processes) > 1 and len(processes) < jax.process_count():
        raise ValueError(
            "`devices` must lie in one process or include devices of every "
            f"process; got devices of processes {sorted(processes)} of "
            f"{jax.process_count()}."
        )
    return devices


def mesh(devices: tuple[jax.Device, ...], axis: str) -> Mesh:
    return Mesh(np.asarray(devices, dtype=object), (axis,))


def _place(tree: Any, sharding: NamedSharding) -> Any:
    arrays, rest = eqx.partition(tree, eqx.is_array)
    if jax.process_count() > 1:
        # Every process holds the same global value (same script, same key); each
        # contributes the pieces its own devices hold.
        def global_array(x):
            if isinstance(x, jax.Array) and not x.is_fully_addressable:
                # Already spread over the processes (computed from placed inputs).
                return jax.device_put(x, sharding)
            if _is_key(x):
                return jax.random.wrap_key_data(
                    global_array(jax.random.key_data(x)), impl=jax.random.key_impl(x)
                )
            x = np.asarray(x)
            return jax.make_array_from_callback(x.shape, sharding, lambda i: x[i])

        arrays = jax.tree.map(global_array, arrays)
    else:
        arrays = jax.device_put(arrays, sharding)
    return eqx.combine(arrays, rest)


def replicate(tree: Any, devices: tuple[jax.Device, ...] | None) -> Any:
    """Every array of `tree` replicated on `devices` (unchanged for `None`)."""
    if devices is None:
        return tree
    m = mesh(devices, POINTS)
    return _place(tree, NamedSharding(m, PartitionSpec()))


def shard_members(tree: Any, devices: tuple[jax.Device, ...] | None) -> Any:
    """Every array of `tree` split along its leading (member) axis over
    `devices` (unchanged for `None`)."""
    if devices is None:
        return tree
    m = mesh(devices, MEMBERS)
    return _place(tree, NamedSharding(m, PartitionSpec(MEMBERS)))


def constrain_members(tree: Any, devices: tuple[jax.Device, ...] | None) -> Any:
    """Inside a compiled function: keeps `tree`'s leading axis split over
    `devices`."""
    if devices is None:
        return tree
    sharding = NamedSharding(mesh(devices, MEMBERS), PartitionSpec(MEMBERS))
    arrays, rest = eqx.partition(tree, eqx.is_array)
    arrays = jax.tree.map(
        lambda x: jax.lax.with_sharding_constraint(x, sharding), arrays
    )
    return eqx.combine(arrays, rest)


class _ShardedPoints(AbstractCollocation):
    """Wraps a collocation so that its points are split across devices."""

    collocation: AbstractCollocation
    sharding: NamedSharding = eqx.field(static=True)

    def init(self, t0, t1, dtype):
        return self.collocation.init(t0, t1, dtype)

    def sample(self, state, t0, t1, residual_fn, *, key: Key):
        ts, state = self.collocation.sample(state, t0, t1, residual_fn, key=key)
        return jax.lax.with_sharding_constraint(ts, self.sharding), state

    def redraws(self) -> bool:
        return self.collocation.redraws()


def shard_points(
    collocation: AbstractCollocation, devices: tuple[jax.Device, ...] | None
) -> AbstractCollocation:
    """`collocation` with its points split over `devices` (unchanged for `None`
    or a single device)."""
    if devices is None or len(devices) == 1:
        return collocation
    sharding = NamedSharding(mesh(devices, POINTS), PartitionSpec(POINTS))
    return _ShardedPoints(collocation, sharding)


def check_divisible(n: int, devices: tuple[jax.Device, ...] | None, what: str):
    if devices is not None and n % len(devices) != 0:
        raise ValueError(
            f"{what} ({n}) must be divisible by the number of `devices` "
            f"({len(devices)}) to be split evenly across them."
        )


def _is_key(x) -> bool:
    return jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _gather(x):
    """One array whole on this host, as NumPy (a key array as a local key array)."""
    if not isinstance(x, jax.Array):
        return x
    if _is_key(x):
        data = jnp.asarray(_gather(jax.random.key_data(x)))
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
    if x.is_fully_addressable:
        return np.asarray(x)
    if x.is_fully_replicated:
        # Every process already holds the whole value: no communication.
        return np.asarray(x.addressable_data(0))
    from jax.experimental import multihost_utils

    return multihost_utils.process_allgather(x, tiled=True)


def fetch(tree: Any) -> Any:
    """`tree`'s arrays as NumPy arrays on this host, whole: `jax.device_get`, or
    with several processes an all-gather of arrays split across hosts (every
    process must call it at the same point)."""
    if jax.process_count() > 1:
        return jax.tree.map(_gather, tree)
    return jax.device_get(tree)


def local(tree: Any) -> Any:
    """With several processes, `tree` with each array gathered whole into an
    ordinary array of this process (uncommitted, so that it mixes with any
    other); unchanged with one process. Every process must call it at the same
    point."""
    if jax.process_count() == 1:
        return tree

    def one(x):
        x = _gather(x)
        return x if not isinstance(x, np.ndarray) else jnp.asarray(x)

    return jax.tree.map(one, tree)


def spans_processes(devices: tuple[jax.Device, ...] | None) -> bool:
    """Whether a fit on `devices` runs in several processes at once (then all of
    them must take each host-side decision together)."""
    return devices is not None and len({d.process_index for d in devices}) > 1


def writes(devices: tuple[jax.Device, ...] | None) -> bool:
    """Whether this process shows the progress and writes the files of a fit on
    `devices`: process 0 of a fit across processes, any process of its own."""
    return not spans_processes(devices) or jax.process_index() == 0


def _gather_flags(*flags: int) -> np.ndarray:
    """`(processes, len(flags))`: every process's flags (one small all-gather)."""
    from jax.experimental import multihost_utils

    return np.asarray(
        multihost_utils.process_allgather(np.asarray(flags, np.int32))
    ).reshape(jax.process_count(), len(flags))


def any_process(flag: bool, devices: tuple[jax.Device, ...] | None) -> bool:
    """`flag` in any process of a fit on `devices`; in a fit across processes all
    must call it at the same point."""
    if not spans_processes(devices):
        return flag
    return bool(_gather_flags(flag).any())


def main_decides(flag: bool, devices: tuple[jax.Device, ...] | None) -> bool:
    """Process 0's `flag` in a fit across processes (all must call it at the
    same point); this process's own otherwise."""
    if not spans_processes(devices):
        return flag
    return bool(_gather_flags(flag)[0, 0])


def barrier(name: str, devices: tuple[jax.Device, ...] | None) -> None:
    """Waits for every process of a fit across processes."""
    if spans_processes(devices):
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def check_same_start(done: int, devices: tuple[jax.Device, ...] | None) -> None:
    """Raises in every process of a fit across processes unless all start it at
    the same step (a checkpoint that some processes cannot see)."""
    if not spans_processes(devices):
        return
    steps = _gather_flags(done)[:, 0]
    if (steps != steps[0]).any():
        raise ValueError(
            "The processes would start this fit at different steps "
            f"({', '.join(map(str, steps))} by process): `checkpoint_path` must "
            "be on a file system that every process sees."
        )
