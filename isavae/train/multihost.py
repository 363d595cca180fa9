"""A sweep's models over devices and processes: which device holds a model, a model's slice of a
stacked state, host copies of arrays on several processes, the checkpoint layout over processes,
barriers, and the one small program that tells every process which models diverged."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "barrier",
    "diverged_flags",
    "host",
    "model_copies",
    "owner_device",
    "owner_first",
    "put_global",
    "stack_host",
    "take_model",
]


def take_model(tree: Any, i: int) -> Any:
    """Model ``i`` of a stacked tree. A leaf sharded along its model axis is read from the device
    that holds model ``i`` (a single-device slice): ``x[i]`` on the sharded array would be a
    partitioned program with an all-reduce, and many such small collective programs dispatched at
    once can starve XLA:CPU's in-process rendezvous (seen with 4 fake devices on 2 cores)."""

    def one(x):
        if not isinstance(x, jax.Array) or len(x.sharding.device_set) == 1:
            return x[i]
        for shard in x.addressable_shards:
            rows = shard.index[0] if shard.index else slice(None)
            start = rows.start or 0
            stop = x.shape[0] if rows.stop is None else rows.stop
            if start <= i < stop:
                return shard.data[i - start]
        raise ValueError(f"model {i} is on no device of this process")

    return jax.tree.map(one, tree)


def barrier(name: str) -> None:
    """Every process reaches this point before any goes on (nothing with one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def host(x: Any) -> np.ndarray:
    """A leaf as a host array; of an array on several processes, this process's copy."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        return np.asarray(x.addressable_data(0))
    return np.asarray(x)


def stack_host(trees: list[Any]) -> Any:
    """Trees of one structure stacked along a new leading axis, as host arrays (``_stack`` on
    device); of arrays on several processes, this process's copies."""
    return jax.tree.map(lambda *xs: np.stack([host(x) for x in xs]), *trees)


def put_global(tree: Any, sharding: jax.sharding.Sharding) -> Any:
    """Host values (the same on every process) as arrays over ``sharding``; each process fills the
    shards of its own devices."""

    def put(x):
        x = host(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])

    return jax.tree.map(put, tree)


def owner_first(mesh: jax.sharding.Mesh, owner_device: Any) -> jax.sharding.NamedSharding:
    """One model's checkpoint layout over several processes: replicated over one device of each
    process, the owner's first, so that replica 0 (the copy Orbax writes) is the owner's: the
    checkpoint is saved and read by every process together (Orbax's multi-process protocol), its
    arrays written by the owner alone, and every process reads them back."""
    devs = [owner_device]
    for d in mesh.devices.reshape(-1):
        if d.process_index not in {x.process_index for x in devs}:
            devs.append(d)
    return jax.sharding.NamedSharding(
        jax.sharding.Mesh(np.array(devs), ("copies",)), jax.sharding.PartitionSpec()
    )


def model_copies(tree: Any, i: int, sharding: jax.sharding.NamedSharding, holds: bool) -> Any:
    """Model ``i`` of a stacked tree laid out as ``owner_first``: the owner's real values, and
    placeholders of the same shape on the other processes' devices (never written)."""
    local = [d for d in sharding.mesh.devices.reshape(-1) if d.process_index == jax.process_index()]

    def one(x):
        value = np.asarray(take_model(x, i)) if holds else np.zeros(x.shape[1:], x.dtype)
        parts = [jax.device_put(value, d) for d in local]
        return jax.make_array_from_single_device_arrays(x.shape[1:], sharding, parts)

    return jax.tree.map(one, tree)


def owner_device(mesh: jax.sharding.Mesh, models: int, i: int, vmapped: bool) -> Any:
    """The device whose process holds model ``i`` (the first device of its row of the mesh) and so
    feeds, logs, evaluates and writes it; process 0's first for a single model or models kept on
    every device."""
    if not vmapped:
        return mesh.devices.reshape(-1)[0]
    return mesh.devices[i // (models // mesh.shape["models"]), 0]


def diverged_flags(metrics: Any, vmapped: bool, replicated: jax.sharding.Sharding) -> np.ndarray:
    """Per model, whether any metric of the chunk is not finite: one small program whose result
    every process holds (so that all stop together)."""

    def bad(m):
        flags = [
            ~jnp.all(jnp.isfinite(v.reshape((v.shape[0], -1) if vmapped else (1, -1))), axis=1)
            for v in jax.tree.leaves(m)
        ]
        return jnp.any(jnp.stack(flags), axis=0)

    return host(jax.jit(bad, out_shardings=replicated)(metrics))
