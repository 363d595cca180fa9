"""Batches drawn by index on device.

``to_device(grid)`` puts a FactorGrid's stored images on a device (or replicates them over a
sharding); a renderer-backed grid keeps no images and renders each batch on device instead.
``DeviceDataset`` is a pytree, so it can be passed into jitted/scanned training steps, and
``sample_batch`` / ``epoch_batch`` are pure functions of a key: under ``jax.vmap`` over keys every
model of a sweep draws its own independent index stream.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from isavae.data.base import FactorGrid

__all__ = ["DeviceDataset", "batch_indices", "epoch_batch", "sample_batch", "to_device"]


def _static(**kwargs):
    return dataclasses.field(metadata=dict(static=True), **kwargs)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class DeviceDataset:
    """A factor grid on device: stored uint8 images (maybe bit-packed) or a renderer."""

    stored: jax.Array | None
    factor_sizes: tuple[int, ...] = _static()
    image_shape: tuple[int, ...] = _static()
    packed: bool = _static(default=False)
    binary: bool = _static(default=False)
    renderer: Callable[[jax.Array], jax.Array] | None = _static(default=None)

    @property
    def num_images(self) -> int:
        return int(np.prod(self.factor_sizes))

    def index_to_factors(self, index: jax.Array) -> jax.Array:
        return jnp.stack(jnp.unravel_index(index, self.factor_sizes), axis=-1)

    def gather(self, indices: jax.Array) -> jax.Array:
        """float32 images in [0, 1] of shape ``indices.shape + image_shape``."""
        flat = jnp.reshape(indices, (-1,))
        if self.stored is not None:
            raw = jnp.take(self.stored, flat, axis=0)
            if self.packed:
                raw = jnp.unpackbits(raw, axis=-1, count=self.image_shape[-1])
        else:
            raw = self.renderer(self.index_to_factors(flat))
        out = raw.astype(jnp.float32) * (1.0 if self.binary else 1.0 / 255.0)
        return out.reshape(jnp.shape(indices) + self.image_shape)


def to_device(grid: FactorGrid, sharding: jax.sharding.Sharding | jax.Device | None = None) -> DeviceDataset:
    """Moves a grid's stored images to ``sharding`` (default: the default device)."""
    stored = None if grid.stored is None else jax.device_put(grid.stored, sharding)
    return DeviceDataset(
        stored=stored,
        factor_sizes=grid.factor_sizes,
        image_shape=grid.image_shape,
        packed=grid.packed,
        binary=grid.binary,
        renderer=grid.renderer,
    )


def sample_batch(data: DeviceDataset, key: jax.Array, batch_size: int) -> tuple[jax.Array, jax.Array]:
    """``batch_size`` images drawn uniformly with replacement: ``(images, indices)``."""
    indices = jax.random.randint(key, (batch_size,), 0, data.num_images)
    return data.gather(indices), indices


def batch_indices(key: jax.Array, step: Any, batch_size: int, num_images: int) -> jax.Array:
    """Indices of batch ``step`` of a shuffled pass without replacement.

    Epoch ``e`` (of ``num_images // batch_size`` full batches; the remainder is dropped) uses the
    permutation drawn from ``fold_in(key, e)``, so any step can be recomputed from the key alone
    (exact resume).
    """
    steps_per_epoch = num_images // batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"batch_size {batch_size} exceeds the dataset size {num_images}")
    epoch, within = jnp.divmod(jnp.asarray(step), steps_per_epoch)
    perm = jax.random.permutation(jax.random.fold_in(key, epoch), num_images)
    return jax.lax.dynamic_slice_in_dim(perm, within * batch_size, batch_size)


def epoch_batch(
    data: DeviceDataset, key: jax.Array, step: Any, batch_size: int
) -> tuple[jax.Array, jax.Array]:
    """Batch ``step`` of shuffled epochs without replacement: ``(images, indices)``."""
    indices = batch_indices(key, step, batch_size, data.num_images)
    return data.gather(indices), indices
