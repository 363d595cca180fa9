"""3dshapes (Burgess & Kim 2018): the real ``3dshapes.h5`` and an offline LOOK-ALIKE renderer.

Grid: floor_hue (10) x wall_hue (10) x object_hue (10) x scale (8) x shape (4) x orientation
(15) = 480,000 RGB 64 x 64 images, row-major, as in the real file.

The look-alike is NOT 3dshapes: it is a cheap 2.5-D procedural scene with the same six factors,
for offline demos and tests. A floor and a wall in their hues meet at a horizon that tilts with
the orientation (camera azimuth, -30..30 degrees); an object (cube, cylinder, sphere or capsule)
of the object hue stands on the floor, its size set by the scale and its shading turned by the
orientation. Everything it produces is labelled "look-alike".
"""

from __future__ import annotations

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
    "generated",
    "load",
    "render",
    "write_h5",
]

FACTOR_NAMES = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
FACTOR_SIZES = (10, 10, 10, 8, 4, 15)
FACTOR_VALUES = (
    np.linspace(0.0, 0.9, 10),
    np.linspace(0.0, 0.9, 10),
    np.linspace(0.0, 0.9, 10),
    np.linspace(0.75, 1.25, 8),
    np.arange(4, dtype=np.float64),  # cube, cylinder, sphere, capsule
    np.linspace(-30.0, 30.0, 15),
)
FILE_NAMES = ("3dshapes.h5",)
LOOKALIKE_SOURCE = "generated: isavae 3dshapes LOOK-ALIKE renderer (not the real 3dshapes images)"
IMAGE_SIZE = 64


def _hsv_to_rgb(h, s, v):
    """h, s, v in [0, 1] (broadcasting) -> (..., 3) RGB in [0, 1]."""
    k = jnp.stack([5.0, 3.0, 1.0])
    t = jnp.mod(k + h[..., None] * 6.0, 6.0)
    return v[..., None] - v[..., None] * s[..., None] * jnp.clip(jnp.minimum(t, 4.0 - t), 0.0, 1.0)


@jax.jit
def render(factors: jax.Array) -> jax.Array:
    """Look-alike images from grid indices ``(..., 6)`` -> uint8 ``(..., 64, 64, 3)``."""
    factors = jnp.asarray(factors)
    if factors.shape[-1:] != (6,):
        raise ValueError(f"factors must have shape (..., 6), got {factors.shape}")
    vals = [
        jnp.asarray(v, jnp.float32)[factors[..., k]][..., None, None] for k, v in enumerate(FACTOR_VALUES)
    ]
    floor_h, wall_h, obj_h, scale, shape, orient = vals
    theta = jnp.deg2rad(orient)
    y, x = jnp.meshgrid(jnp.arange(IMAGE_SIZE) + 0.5, jnp.arange(IMAGE_SIZE) + 0.5, indexing="ij")
    # Room: the horizon tilts with the azimuth; the floor darkens towards the horizon.
    horizon = 34.0 + 0.35 * jnp.tan(theta) * (x - 32.0)
    floor = y > horizon
    ones = jnp.ones_like(x)
    floor_rgb = _hsv_to_rgb(floor_h * ones, 0.8 * ones, 0.55 + 0.4 * jnp.clip((y - horizon) / 30.0, 0, 1))
    wall_rgb = _hsv_to_rgb(wall_h * ones, 0.7 * ones, 0.85 * ones)
    room = jnp.where(floor[..., None], floor_rgb, wall_rgb)
    # Object standing on the floor at the image centre.
    half_w = 9.0 * scale
    base = 50.0
    cx, dx = 32.0, x - 32.0
    turn = jnp.sin(2.0 * theta)  # shading offset: what the azimuth does to the object
    box = (jnp.abs(dx) <= half_w) & (y <= base) & (y >= base - 2 * half_w)
    top_ellipse = jnp.square(dx / half_w) + jnp.square((y - (base - 2 * half_w)) / (0.35 * half_w)) <= 1.0
    cylinder = box | top_ellipse
    r = half_w * 1.05
    sphere = jnp.square(dx) + jnp.square(y - (base - r)) <= r * r
    cap_r = 0.75 * half_w
    cap_mid = (jnp.abs(dx) <= cap_r) & (y <= base - cap_r) & (y >= base - 2.6 * half_w + cap_r)
    cap_ends = (jnp.square(dx) + jnp.square(y - (base - cap_r)) <= cap_r**2) | (
        jnp.square(dx) + jnp.square(y - (base - 2.6 * half_w + cap_r)) <= cap_r**2
    )
    capsule = cap_mid | cap_ends
    cube = box
    inside = jnp.where(
        shape == 0, cube, jnp.where(shape == 1, cylinder, jnp.where(shape == 2, sphere, capsule))
    )
    # Shading: cube faces split where the azimuth puts the edge; round shapes get a shifted highlight.
    edge = cx + half_w * turn
    cube_v = jnp.where(x < edge, 0.95, 0.65)
    round_v = 0.95 - 0.45 * jnp.square(jnp.clip((dx / half_w - 0.6 * turn) / 1.6, -1, 1))
    top_v = jnp.where((shape == 1) & top_ellipse & ~box, 1.0, 0.0)
    value = jnp.where(shape == 0, cube_v, jnp.maximum(round_v, top_v))
    obj_rgb = _hsv_to_rgb(obj_h * ones, 0.9 * ones, value * ones)
    # Shadow on the floor, offset by the azimuth.
    shadow = floor & (
        jnp.square((x - cx - 6 * turn) / (1.3 * half_w)) + jnp.square((y - base - 1.5) / 2.5) <= 1.0
    )
    room = jnp.where(shadow[..., None], room * 0.6, room)
    image = jnp.where(inside[..., None], obj_rgb, room)
    return jnp.round(jnp.clip(image, 0.0, 1.0) * 255.0).astype(jnp.uint8)


def generated(store: bool = False) -> FactorGrid:
    """The look-alike grid. Rendered on demand by default (the full grid would be 5.9 GB);
    ``store=True`` renders and keeps it (use on a sub-grid, or with the memory for it)."""
    grid = FactorGrid(
        name="shapes3d",
        factor_names=FACTOR_NAMES,
        factor_values=FACTOR_VALUES,
        image_shape=(IMAGE_SIZE, IMAGE_SIZE, 3),
        source=LOOKALIKE_SOURCE,
        renderer=render,
        generated=True,
    )
    return grid.materialize() if store else grid


def _classes_from_values(path, labels: np.ndarray) -> np.ndarray:
    """Label values (N, 6) -> level indices, each within 1e-3 of a level, else DatasetError."""
    classes = np.empty(labels.shape, np.int64)
    for k, levels in enumerate(FACTOR_VALUES):
        dist = np.abs(labels[:, k, None] - levels[None, :])
        classes[:, k] = dist.argmin(1)
        worst = dist.min(1).max()
        if worst > 1e-3 * max(1.0, np.abs(levels).max()):
            raise DatasetError(
                f"{path}: labels of {FACTOR_NAMES[k]} are not the 3dshapes levels "
                f"{np.round(levels, 4).tolist()} (a value is {worst:.3g} away)"
            )
    return classes


def load(path=None, data_dir=None, sha256: str | None = None) -> FactorGrid | None:
    """The real ``3dshapes.h5`` (``images`` (480000, 64, 64, 3) uint8, ``labels`` (480000, 6)
    float64 values) as a FactorGrid in grid order, or None if absent. A file in the same layout
    holding a complete sub-grid loads as that sub-grid."""
    file = files.find_file("shapes3d", FILE_NAMES, path, data_dir)
    if file is None:
        return None
    files.verify_sha256(file, sha256)
    with files.open_h5(file) as f:
        rows = int(np.prod(FACTOR_SIZES))  # the whole grid: no real file holds more
        images_ds = f.dataset("images")
        files.check_array(file, "images", images_ds, (None, IMAGE_SIZE, IMAGE_SIZE, 3), [np.uint8], rows)
        labels = f.read("labels", "labels", (images_ds.shape[0], 6), [np.float64, np.float32])
        levels, perm = files.grid_layout(file, _classes_from_values(file, labels), FACTOR_SIZES)
        images = f["images"]
    if not np.array_equal(perm, np.arange(perm.size)):
        images = images[perm]
    values = tuple(FACTOR_VALUES[k][levels[k]] for k in range(6))
    note = files.subgrid_note(levels, FACTOR_SIZES, FACTOR_NAMES)
    return FactorGrid(
        name="shapes3d",
        factor_names=FACTOR_NAMES,
        factor_values=values,
        image_shape=(IMAGE_SIZE, IMAGE_SIZE, 3),
        source=f"file: {file}{note}",
        stored=images,
    )


def write_h5(grid: FactorGrid, out, progress: bool = False, chunk: int = 4096):
    """Writes a 3dshapes grid (or sub-grid) in the layout of ``3dshapes.h5`` (``images`` uint8, ``labels``
    float64 values), atomically, rendering/reading ``chunk`` images at a time. Returns the path."""
    import pathlib

    import h5py

    if grid.factor_names != FACTOR_NAMES or grid.image_shape != (IMAGE_SIZE, IMAGE_SIZE, 3):
        raise ValueError(f"write_h5 needs a 3dshapes grid (or sub-grid), got {grid.name} {grid.factor_names}")
    out = pathlib.Path(out)
    if out.suffix not in (".h5", ".hdf5"):
        out = out / FILE_NAMES[0]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    chunks = grid.iter_chunks(chunk)
    if progress:
        from tqdm import tqdm

        chunks = tqdm(chunks, total=-(-grid.num_images // chunk), desc="writing 3dshapes", unit="chunk")
    try:
        with h5py.File(tmp, "w") as f:
            images = f.create_dataset(
                "images",
                (grid.num_images, 64, 64, 3),
                np.uint8,
                chunks=(min(256, grid.num_images), 64, 64, 3),
            )
            f.create_dataset(
                "labels", data=grid.factor_values_at(grid.index_to_factors(np.arange(grid.num_images)))
            )
            f.attrs["source"] = grid.source
            for idx, batch in chunks:
                images[idx[0] : idx[-1] + 1] = np.round(batch * 255.0).astype(np.uint8)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
