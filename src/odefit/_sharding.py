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

Several hosts work the same way once `jax.distributed.initialize()` has been
called in every process: `jax.devices()` then lists the devices of all hosts, and
passing them as `devices` spans the fit across hosts (every process runs the same
script, with the same key).
"""

from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ._collocation import AbstractCollocation
from ._custom_types import Key

POINTS = "points"
MEMBERS = "members"


def check_devices(devices) -> tuple[jax.Device, ...] | None:
    """Validates the `devices` argument of `fit` and `fit_ensemble`."""
    if devices is None:
        return None
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
    return devices


def mesh(devices: tuple[jax.Device, ...], axis: str) -> Mesh:
    return Mesh(np.asarray(devices, dtype=object), (axis,))


def _place(tree: Any, sharding: NamedSharding) -> Any:
    arrays, rest = eqx.partition(tree, eqx.is_array)
    if jax.process_count() > 1:
        # Every process holds the same global value (same script, same key); each
        # contributes the pieces its own devices hold.
        def global_array(x):
            if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
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


def fetch(tree: Any) -> Any:
    """`tree`'s arrays as NumPy arrays on this host, whole: `jax.device_get`, or
    with several processes an all-gather of arrays split across hosts."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.device_get(tree)
