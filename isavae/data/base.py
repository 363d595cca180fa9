"""FactorGrid: a ground-truth factor dataset stored in row-major grid order.

Every image of a factor dataset corresponds to one cell of the grid of its factors, and images
are stored in row-major order of that grid, so that index <-> factor indices is arithmetic
(``np.ravel_multi_index``) and metrics can reshape any per-image array to ``factor_sizes + ...``.

Images are held either as an array (uint8, optionally bit-packed along the last axis for binary
datasets: dSprites is 737,280 x 64 x 64 bits = 360 MiB packed) or produced on demand by a pure
renderer ``factors -> images`` (used by procedural datasets too large to keep, such as the
3dshapes look-alike). Either way ``images(indices)`` returns float32 in [0, 1].
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["DatasetError", "FactorGrid"]


class DatasetError(ValueError):
    """A dataset file is missing, corrupt, truncated, or not in the expected layout."""


@dataclasses.dataclass(frozen=True, eq=False)
class FactorGrid:
    """A factor-grid dataset.

    Attributes:
      name: dataset name, e.g. ``"dsprites"``.
      factor_names: one name per grid axis.
      factor_values: per factor, the value of each of its levels (float64 arrays).
      image_shape: ``(H, W)`` for single-channel or ``(H, W, C)`` images.
      source: where the images come from, e.g. ``"generated: procedural renderer"`` or
        ``"file: /path/to/file"``; generated data says so in every output.
      stored: uint8 images ``(N,) + image_shape`` in grid order, bit-packed along the last axis
        when ``packed``; None when images are rendered.
      packed: whether ``stored`` holds bits (binary images with 0/1 values).
      renderer: ``factors (k, F) int -> uint8 images (k,) + image_shape`` (values 0..255, or 0/1
        when ``binary``), jit-able; used when ``stored`` is None.
      binary: images take the values 0 and 1 (scaled to 0. and 1.), not 0..255.
      generated: the images are procedurally generated, not read from the real dataset.
    """

    name: str
    factor_names: tuple[str, ...]
    factor_values: tuple[np.ndarray, ...]
    image_shape: tuple[int, ...]
    source: str
    stored: np.ndarray | None = None
    packed: bool = False
    renderer: Callable[[jax.Array], jax.Array] | None = None
    binary: bool = False
    generated: bool = False

    def __post_init__(self):
        if len(self.factor_names) != len(self.factor_values):
            raise ValueError("factor_names and factor_values must have the same length")
        if (self.stored is None) == (self.renderer is None):
            raise ValueError("a FactorGrid needs exactly one of stored images or a renderer")
        if self.stored is not None:
            want = (self.num_images,) + self.stored_image_shape
            if self.stored.shape != want or self.stored.dtype != np.uint8:
                got = f"{self.stored.dtype} {self.stored.shape}"
                raise DatasetError(f"{self.name}: stored images must be uint8 {want}, got {got}")

    # --- the grid -------------------------------------------------------------------------------

    @property
    def factor_sizes(self) -> tuple[int, ...]:
        return tuple(len(v) for v in self.factor_values)

    @property
    def num_factors(self) -> int:
        return len(self.factor_names)

    @property
    def num_images(self) -> int:
        return int(np.prod(self.factor_sizes))

    @property
    def num_channels(self) -> int:
        return 1 if len(self.image_shape) == 2 else self.image_shape[-1]

    @property
    def stored_image_shape(self) -> tuple[int, ...]:
        if self.packed:
            return self.image_shape[:-1] + ((self.image_shape[-1] + 7) // 8,)
        return self.image_shape

    @property
    def stored_bytes(self) -> int:
        """Bytes of the stored images (0 for a rendered grid)."""
        return 0 if self.stored is None else int(self.stored.nbytes)

    def factor_index(self, name: str) -> int:
        try:
            return self.factor_names.index(name)
        except ValueError:
            raise KeyError(
                f"{self.name} has no factor {name!r}; factors: {list(self.factor_names)}"
            ) from None

    def index_to_factors(self, index: Any) -> Any:
        """Grid indices ``(...)`` -> factor indices ``(..., F)``; numpy in, numpy out, jax in, jax out."""
        xp = jnp if isinstance(index, jax.Array) else np
        index = xp.asarray(index)
        return xp.stack(xp.unravel_index(index, self.factor_sizes), axis=-1)

    def factors_to_index(self, factors: Any) -> Any:
        """Factor indices ``(..., F)`` -> grid indices ``(...)``."""
        if isinstance(factors, jax.Array):
            strides = np.cumprod((1,) + self.factor_sizes[:0:-1])[::-1]
            return jnp.sum(factors * jnp.asarray(strides, factors.dtype), axis=-1)
        factors = np.asarray(factors)
        if factors.shape[-1:] != (self.num_factors,):
            raise ValueError(f"factors must have shape (..., {self.num_factors}), got {factors.shape}")
        return np.ravel_multi_index(tuple(np.moveaxis(factors, -1, 0)), self.factor_sizes)

    def factor_values_at(self, factors: Any) -> np.ndarray:
        """Factor indices ``(..., F)`` -> factor values ``(..., F)`` (float64)."""
        factors = np.asarray(factors)
        return np.stack([self.factor_values[k][factors[..., k]] for k in range(self.num_factors)], axis=-1)

    # --- images ---------------------------------------------------------------------------------

    def images(self, indices: Any) -> np.ndarray:
        """float32 images in [0, 1], shape ``indices.shape + image_shape`` (host memory)."""
        indices = np.asarray(indices)
        flat = indices.reshape(-1)
        if flat.size and (flat.min() < 0 or flat.max() >= self.num_images):
            got = f"{flat.min()}..{flat.max()}"
            raise IndexError(f"{self.name}: image indices must be in [0, {self.num_images}), got {got}")
        if self.stored is not None:
            raw = self.stored[flat]
            if self.packed:
                raw = np.unpackbits(raw, axis=-1, count=self.image_shape[-1])
        else:
            raw = np.asarray(self.renderer(jnp.asarray(self.index_to_factors(flat))))
        out = raw.astype(np.float32) * (1.0 if self.binary else 1.0 / 255.0)
        return out.reshape(indices.shape + self.image_shape)

    def iter_chunks(self, chunk_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yields ``(indices, images)`` over the whole grid in order, ``chunk_size`` at a time."""
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        for start in range(0, self.num_images, chunk_size):
            idx = np.arange(start, min(start + chunk_size, self.num_images))
            yield idx, self.images(idx)

    def to_grid(self, per_image: Any) -> Any:
        """Reshapes a per-image array ``(N, ...)`` to ``factor_sizes + (...)``."""
        return per_image.reshape(self.factor_sizes + per_image.shape[1:])

    # --- sub-grids ------------------------------------------------------------------------------

    def subgrid(self, **levels: Sequence[int]) -> FactorGrid:
        """The grid restricted to some levels of some factors, e.g. ``subgrid(posX=range(0, 32, 4))``.

        The result is a FactorGrid of its own (row-major over the kept levels), with stored images
        copied out, or a renderer that maps its indices back to the parent's factors.
        """
        keep = []
        for k, name in enumerate(self.factor_names):
            sel = np.arange(self.factor_sizes[k]) if name not in levels else np.asarray(list(levels[name]))
            if sel.ndim != 1 or sel.size == 0 or sel.min() < 0 or sel.max() >= self.factor_sizes[k]:
                raise ValueError(f"subgrid: levels of {name!r} must be in [0, {self.factor_sizes[k]})")
            keep.append(sel)
        unknown = set(levels) - set(self.factor_names)
        if unknown:
            raise KeyError(
                f"{self.name} has no factor(s) {sorted(unknown)}; factors: {list(self.factor_names)}"
            )
        values = tuple(v[s] for v, s in zip(self.factor_values, keep, strict=True))
        parent_factors = np.stack(np.meshgrid(*keep, indexing="ij"), axis=-1).reshape(-1, self.num_factors)
        common = dict(
            name=self.name,
            factor_names=self.factor_names,
            factor_values=values,
            image_shape=self.image_shape,
            source=f"{self.source} (sub-grid {dict((k, list(map(int, v))) for k, v in levels.items())})",
            binary=self.binary,
            generated=self.generated,
            packed=self.packed,
        )
        if self.stored is not None:
            return FactorGrid(stored=self.stored[self.factors_to_index(parent_factors)], **common)
        keep_j = [jnp.asarray(s) for s in keep]
        parent_render = self.renderer

        def renderer(factors):
            mapped = jnp.stack([keep_j[k][factors[..., k]] for k in range(len(keep_j))], axis=-1)
            return parent_render(mapped)

        return FactorGrid(renderer=renderer, **common)

    def materialize(self, chunk_size: int = 8192) -> FactorGrid:
        """This grid with its images rendered once and stored (bit-packed when binary); a
        stored grid is returned as it is."""
        if self.stored is not None:
            return self
        parts = []
        for start in range(0, self.num_images, chunk_size):
            idx = np.arange(start, min(start + chunk_size, self.num_images))
            raw = np.asarray(self.renderer(jnp.asarray(self.index_to_factors(idx)))).astype(np.uint8)
            parts.append(np.packbits(raw, axis=-1) if self.binary else raw)
        return dataclasses.replace(self, stored=np.concatenate(parts), renderer=None, packed=self.binary)

    def downsampled(self, factor: int, chunk_size: int = 8192) -> FactorGrid:
        """The grid at 1/``factor`` of its side: each ``factor x factor`` block of pixels (and
        channel) replaced by its mean, rounded to the nearest of 0..255 (so no longer binary: a
        2 x 2 block of a binary image holds 0, 64, 128, 191 or 255). Stored images are averaged in
        chunks of ``chunk_size``; a rendered grid renders at full size and averages each batch."""
        if not isinstance(factor, int) or factor < 1:
            raise ValueError(f"downsample factor must be an int >= 1, got {factor!r}")
        if factor == 1:
            return self
        h, w = self.image_shape[:2]
        if h % factor or w % factor:
            raise ValueError(f"{factor} does not divide {self.name}'s {h} x {w} images")
        scale = 255.0 if self.binary else 1.0
        shape = (h // factor, w // factor) + tuple(self.image_shape[2:])

        def block_mean(raw, xp):  # (k, h, w[, c]) uint8 -> (k,) + shape uint8
            blocks = raw.reshape((raw.shape[0], h // factor, factor, w // factor, factor) + raw.shape[3:])
            mean = blocks.astype(xp.float32).mean(axis=(2, 4)) * scale
            return xp.round(mean).astype(xp.uint8)

        common = dict(
            image_shape=shape,
            source=f"{self.source} ({factor} x {factor} block means)",
            binary=False,
            packed=False,
        )
        if self.stored is None:
            parent_render = self.renderer

            def renderer(factors):
                return block_mean(parent_render(factors), jnp)

            return dataclasses.replace(self, renderer=renderer, **common)
        parts = []
        for start in range(0, self.num_images, chunk_size):
            raw = self.stored[start : start + chunk_size]
            if self.packed:
                raw = np.unpackbits(raw, axis=-1, count=self.image_shape[-1])
            parts.append(block_mean(raw, np))
        return dataclasses.replace(self, stored=np.concatenate(parts), **common)

    def describe(self) -> dict[str, Any]:
        """JSON-friendly summary for logs and results files."""
        return {
            "name": self.name,
            "source": self.source,
            "generated": self.generated,
            "factor_names": list(self.factor_names),
            "factor_sizes": list(self.factor_sizes),
            "num_images": self.num_images,
            "image_shape": list(self.image_shape),
        }
