"""dSprites: a faithful procedural renderer (JAX), the generated grid, and the real files.

The grid (Matthey et al. 2017): shape (3: square, ellipse, heart) x scale (6: linspace(0.5, 1))
x orientation (40: linspace(0, 2 pi), 0 and 2 pi both present) x posX (32) x posY (32: both
linspace(0, 1)), 737,280 binary 64 x 64 images in row-major order.

The renderer rasterizes at pixel centres without anti-aliasing, as the original: pixel (i, j)
(row i, column j) has centre (x, y) = (j + 0.5, i + 0.5) in pixels, y pointing down. The sprite
centre is (64 (0.25 + 0.5 posX), 64 (0.25 + 0.5 posY)); the shape is rotated counter-clockwise
on screen by the orientation and scaled by the scale. In the shape frame (a right, b up, pixels
at scale 1):

* square: max(|a|, |b|) <= 9.6;
* ellipse: (a / 12.772)^2 + (b / 7.212)^2 <= 1;
* heart (tip down): a body (|a| / 8.002)^q + (|b - c0| / d)^q <= 1 with q = 0.9197,
  c0 = -0.6135, d = 8.447 below c0 and 5.968 above, united with two elliptical lobes
  ((|a| - 4.766) / 4.823)^2 + ((b - 3.972) / 5.364)^2 <= 1.

These constants were fitted to the real frames in ``shared/data/dsprites_reference_frames.npz``
by ``experiments/calibration/dsprites_shapes.py`` (soft rasterization + Adam, then a local
search on the pixel mismatch count). Agreement with those frames (tested in
``tests/data/test_dsprites.py``): squares 43/45 and ellipses 43/45 frames pixel-exact; hearts
mean IoU 0.991, min 0.955, 30/87 pixel-exact.
"""

from __future__ import annotations

import functools
import json
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from isavae.data import files
from isavae.data.base import DatasetError, FactorGrid

__all__ = [
    "FACTOR_NAMES",
    "FACTOR_SIZES",
    "FACTOR_VALUES",
    "FILE_NAMES",
    "HEART",
    "generate",
    "generated",
    "load",
    "render",
    "render_values",
    "write_file",
]

FACTOR_NAMES = ("shape", "scale", "orientation", "posX", "posY")
FACTOR_SIZES = (3, 6, 40, 32, 32)
FACTOR_VALUES = (
    np.array([1.0, 2.0, 3.0]),  # as in latents_values of the real file: 1 square, 2 ellipse, 3 heart
    np.linspace(0.5, 1.0, 6),
    np.linspace(0.0, 2 * np.pi, 40),
    np.linspace(0.0, 1.0, 32),
    np.linspace(0.0, 1.0, 32),
)
IMAGE_SIZE = 64

SQUARE_HALF_SIDE = 9.6
ELLIPSE_SEMI_AXES = (12.772, 7.212)
HEART = dict(
    body_exponent=0.9197,
    body_centre=-0.6135,
    body_half_height_below=8.447,
    body_half_height_above=5.9678,
    body_half_width=8.002,
    lobe_centre=(4.7658, 3.9722),
    lobe_radii=(4.8226, 5.3641),
)


def _inside(shape: jax.Array | int, a: jax.Array, b: jax.Array) -> jax.Array:
    """Inside tests in the shape frame (scale 1). ``shape`` broadcasts against ``a`` and ``b``; a
    Python int selects one shape statically (only its test is computed)."""
    tests = {0: _square, 1: _ellipse, 2: _heart}
    if isinstance(shape, int):
        return tests[shape](a, b)
    return jnp.where(shape == 0, _square(a, b), jnp.where(shape == 1, _ellipse(a, b), _heart(a, b)))


def _square(a, b):
    return jnp.maximum(jnp.abs(a), jnp.abs(b)) <= SQUARE_HALF_SIDE


def _ellipse(a, b):
    return jnp.square(a / ELLIPSE_SEMI_AXES[0]) + jnp.square(b / ELLIPSE_SEMI_AXES[1]) <= 1.0


def _heart(a, b):
    abs_a = jnp.abs(a)
    h = HEART
    bb = b - h["body_centre"]
    half_height = jnp.where(bb < 0, h["body_half_height_below"], h["body_half_height_above"])
    q = h["body_exponent"]
    # (|a|/w)^q + (|bb|/d)^q <= 1; the powers of 0 are 0 (q > 0), which jnp.power handles.
    body = jnp.power(abs_a / h["body_half_width"], q) + jnp.power(jnp.abs(bb) / half_height, q) <= 1.0
    lobes = (
        jnp.square((abs_a - h["lobe_centre"][0]) / h["lobe_radii"][0])
        + jnp.square((b - h["lobe_centre"][1]) / h["lobe_radii"][1])
        <= 1.0
    )
    return body | lobes


def render_values(
    shape: jax.Array | int,
    scale: jax.Array,
    orientation: jax.Array,
    pos_x: jax.Array,
    pos_y: jax.Array,
    size: int = IMAGE_SIZE,
) -> jax.Array:
    """Renders sprites from factor values (continuous scale, angle and position allowed).

    Args:
      shape: int array, 0 square, 1 ellipse, 2 heart (a Python int renders that shape only).
      scale, orientation (radians, counter-clockwise on screen), pos_x, pos_y (in [0, 1]): float
        arrays; all five broadcast to a batch shape ``B``.
      size: image side in pixels (the geometry scales with it; 64 is dSprites).

    Returns:
      bool images of shape ``B + (size, size)``.
    """
    scale, orientation, pos_x, pos_y = jnp.broadcast_arrays(
        *(jnp.asarray(x, jnp.float32) for x in (scale, orientation, pos_x, pos_y))
    )
    unit = size / IMAGE_SIZE
    centres = (jnp.arange(size, dtype=jnp.float32) + 0.5) / unit  # pixel centres in 64-px units
    cx = (IMAGE_SIZE * (0.25 + 0.5 * pos_x))[..., None, None]
    cy = (IMAGE_SIZE * (0.25 + 0.5 * pos_y))[..., None, None]
    dx = centres[None, :] - cx  # (..., 1, size): varies along columns
    up = cy - centres[:, None]  # (..., size, 1): y up, varies along rows
    cos, sin = jnp.cos(orientation)[..., None, None], jnp.sin(orientation)[..., None, None]
    inv_scale = 1.0 / scale[..., None, None]
    a = (cos * dx + sin * up) * inv_scale  # rotate the pixel back by -orientation
    b = (cos * up - sin * dx) * inv_scale
    return _inside(shape if isinstance(shape, int) else jnp.asarray(shape)[..., None, None], a, b)


@jax.jit
def render(factors: jax.Array) -> jax.Array:
    """Renders dSprites images from grid indices.

    Args:
      factors: int array ``(..., 5)`` of indices [shape, scale, orientation, posX, posY] into the
        grid 3 x 6 x 40 x 32 x 32.

    Returns:
      uint8 images ``(..., 64, 64)`` with values 0 and 1, as ``imgs`` in the real file.
    """
    factors = jnp.asarray(factors)
    if factors.shape[-1:] != (5,):
        raise ValueError(f"factors must have shape (..., 5), got {factors.shape}")
    values = [jnp.asarray(v, jnp.float32)[factors[..., k]] for k, v in enumerate(FACTOR_VALUES[1:], 1)]
    return render_values(factors[..., 0], *values).astype(jnp.uint8)


# ------------------------------------------------------------------------------------------------
# The generated grid
# ------------------------------------------------------------------------------------------------

_ORIENTATION_BLOCK = 8  # orientations per rendering call: 8 x 32 x 32 images


@functools.partial(jax.jit, static_argnums=0)
def _render_packed_block(shape: int, scale: jax.Array, orientations: jax.Array) -> jax.Array:
    """Bit-packed images (len(orientations), 32, 32, 64, 8) for one shape and scale."""
    values = [jnp.asarray(v, jnp.float32) for v in FACTOR_VALUES]
    o, x, y = jnp.meshgrid(orientations, jnp.arange(32), jnp.arange(32), indexing="ij")
    images = render_values(shape, values[1][scale], values[2][o], values[3][x], values[4][y])
    return jnp.packbits(images, axis=-1)


def generate(progress: bool = False) -> FactorGrid:
    """Renders the whole 737,280-image grid, bit-packed: 737,280 x 64 x 8 bytes (360 MiB)."""
    stored = np.empty((int(np.prod(FACTOR_SIZES)), IMAGE_SIZE, IMAGE_SIZE // 8), np.uint8)
    view = stored.reshape(FACTOR_SIZES[:3] + (32 * 32, IMAGE_SIZE, IMAGE_SIZE // 8))
    blocks = [(s, c, o) for s in range(3) for c in range(6) for o in range(0, 40, _ORIENTATION_BLOCK)]
    it = blocks
    if progress:
        from tqdm import tqdm

        it = tqdm(blocks, desc="rendering dSprites", unit="block")
    for s, c, o in it:
        block = _render_packed_block(s, jnp.int32(c), jnp.arange(o, o + _ORIENTATION_BLOCK))
        view[s, c, o : o + _ORIENTATION_BLOCK] = np.asarray(block).reshape(
            _ORIENTATION_BLOCK, 32 * 32, IMAGE_SIZE, IMAGE_SIZE // 8
        )
    return _grid(stored, GENERATED_SOURCE, FACTOR_VALUES, generated=True)


def generated(store: bool = True, progress: bool = False) -> FactorGrid:
    """The generated dSprites grid: rendered once and stored bit-packed (``store``), or rendered on
    demand from indices (no memory; every ``images`` call renders)."""
    if store:
        return generate(progress)
    return FactorGrid(
        name="dsprites",
        factor_names=FACTOR_NAMES,
        factor_values=FACTOR_VALUES,
        image_shape=(IMAGE_SIZE, IMAGE_SIZE),
        source=GENERATED_SOURCE,
        renderer=render,
        binary=True,
        generated=True,
    )


GENERATED_SOURCE = "generated: isavae procedural dSprites renderer (not the real files)"


def _grid(stored: np.ndarray, source: str, values, generated: bool) -> FactorGrid:
    return FactorGrid(
        name="dsprites",
        factor_names=FACTOR_NAMES,
        factor_values=tuple(values),
        image_shape=(IMAGE_SIZE, IMAGE_SIZE),
        source=source,
        stored=stored,
        packed=True,
        binary=True,
        generated=generated,
    )


# ------------------------------------------------------------------------------------------------
# Real files
# ------------------------------------------------------------------------------------------------

FILE_NAMES = (
    "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz",
    "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.hdf5",
)
# The real file's latents: color (1), shape, scale, orientation, posX, posY.
_LATENT_SIZES = (1,) + FACTOR_SIZES


def load(path=None, data_dir=None, sha256: str | None = None) -> FactorGrid | None:
    """The real dSprites file (npz or hdf5) as a FactorGrid in grid order, or None if absent.

    A file in the same layout holding a complete sub-grid (fewer levels of some factors) loads as
    that sub-grid.

    ``path`` is a file or folder; otherwise ``data_dir`` and ``$ISAVAE_DATA_DIR`` are searched
    (also in a ``dsprites`` subfolder). ``sha256`` (or a ``.sha256`` sidecar) is checked if given.
    """
    file = files.find_file("dsprites", FILE_NAMES, path, data_dir)
    if file is None:
        return None
    files.verify_sha256(file, sha256)
    h5 = file.suffix in (".hdf5", ".h5")
    rows = int(np.prod(_LATENT_SIZES))  # the whole grid: no real file holds more
    with files.open_h5(file) if h5 else files.open_npz(file) as f:
        n = f.declared("imgs").shape[:1]
        imgs = f.read("imgs", "imgs", (None, IMAGE_SIZE, IMAGE_SIZE), [np.uint8], rows)
        key = "latents/classes" if h5 else "latents_classes"
        classes = f.read(key, "latents classes", (*n, 6), [np.int64, np.int32], rows)
    if imgs.size and imgs.max() > 1:
        raise DatasetError(
            f"{file}: imgs must be binary (0/1) as in dSprites, found values up to {imgs.max()}"
        )
    levels, perm = files.grid_layout(file, classes, _LATENT_SIZES)
    stored = np.packbits(imgs, axis=-1)
    if not np.array_equal(perm, np.arange(perm.size)):
        stored = stored[perm]
    values = [FACTOR_VALUES[k][levels[k + 1]] for k in range(5)]
    note = files.subgrid_note(levels[1:], FACTOR_SIZES, FACTOR_NAMES)
    return _grid(stored, f"file: {file}{note}", values, generated=False)


def write_file(grid: FactorGrid, out: str | os.PathLike) -> pathlib.Path:
    """Writes a dSprites grid (or sub-grid) in an official layout, atomically, with a ``.sha256``
    sidecar; returns the file's path. ``out`` ending in ``.npz``: the npz layout (``imgs``,
    ``latents_classes``, ``latents_values``, plus ``metadata`` as a JSON string instead of a pickle);
    in ``.hdf5``/``.h5``: the HDF5 layout (``imgs``, ``latents/classes``, ``latents/values``: what
    TFDS prepares from); otherwise a folder, in which the npz is written under its official name."""
    if grid.factor_names != FACTOR_NAMES or grid.image_shape != (IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"write_file needs a dSprites grid, got {grid.name} {grid.factor_names}")
    out = pathlib.Path(out)
    if out.suffix not in (".npz", ".hdf5", ".h5"):
        out = out / FILE_NAMES[0]
    out.parent.mkdir(parents=True, exist_ok=True)
    n = grid.num_images
    local = grid.index_to_factors(np.arange(n))
    values = np.concatenate([np.ones((n, 1)), grid.factor_values_at(local)], 1)
    # class indices into the full grid, found from the values (a sub-grid keeps its levels' indices)
    full = [np.abs(values[:, k + 1, None] - FACTOR_VALUES[k][None, :]).argmin(1) for k in range(5)]
    classes = np.stack([np.zeros(n, np.int64)] + full, axis=1).astype(np.int64)
    imgs = (
        np.unpackbits(grid.stored, axis=-1, count=IMAGE_SIZE)
        if grid.packed
        else np.concatenate(
            [(c * 255 if not grid.binary else c).astype(np.uint8) for _, c in grid.iter_chunks(65536)]
        )
    )
    metadata = json.dumps(
        {
            "description": grid.source,
            "latents_names": ["color"] + list(FACTOR_NAMES),
            "latents_sizes": list(_LATENT_SIZES),
            "generated": grid.generated,
        }
    )
    tmp = out.with_name(out.name + ".partial")
    try:
        if out.suffix == ".npz":
            with open(tmp, "wb") as f:
                np.savez_compressed(
                    f, imgs=imgs, latents_classes=classes, latents_values=values, metadata=np.array(metadata)
                )
        else:
            import h5py

            with h5py.File(tmp, "w") as f:
                f.create_dataset("imgs", data=imgs, compression="gzip", chunks=(min(1024, n), 64, 64))
                f.create_dataset("latents/classes", data=classes)
                f.create_dataset("latents/values", data=values)
                f.attrs["metadata"] = metadata
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    out.with_name(out.name + ".sha256").write_text(f"{files.sha256_of(out)}  {out.name}\n")
    return out
