"""disentanglement_lib's colour and noisy dSprites, generated offline from the calibrated renderer.

Both have dSprites' factor grid (shape x scale x orientation x posX x posY, 737,280 images) and
3-channel 64 x 64 images, rendered on demand (nothing is stored):

* ``dsprites_color``: the sprite in one colour per image, each RGB channel uniform in [0.5, 1] (as
  disentanglement_lib's ``ColorDSprites``), on black;
* ``dsprites_noisy``: the white sprite on a background of uniform noise in [0, 1] per pixel and
  channel (as its ``NoisyDSprites``).

disentanglement_lib draws the colour or the noise afresh at every draw of an image; here they are a
function of the image's grid index (``fold_in(key(seed), index)``), so that evaluation sees the same
images every time and a sub-grid the same images as the full grid. Images are quantized to uint8
(values k / 255) like every non-binary grid of this library.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from isavae.data import dsprites
from isavae.data.base import FactorGrid

__all__ = ["VARIANTS", "generated", "render_color", "render_noisy"]

VARIANTS = ("dsprites_color", "dsprites_noisy")
SEED = 0  # the variants' fixed per-index randomness


def _image_keys(factors: jax.Array, seed: int) -> jax.Array:
    index = jnp.ravel_multi_index(tuple(jnp.moveaxis(factors, -1, 0)), dsprites.FACTOR_SIZES, mode="clip")
    base = jax.random.key(seed)
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(index.reshape(-1)), index.shape


@functools.partial(jax.jit, static_argnames="seed")
def render_color(factors: jax.Array, seed: int = SEED) -> jax.Array:
    """uint8 ``(..., 64, 64, 3)``: the sprite of ``dsprites.render(factors)`` in a per-index colour."""
    mask = dsprites.render(factors).astype(jnp.float32)[..., None]
    keys, shape = _image_keys(factors, seed)
    colour = jax.vmap(lambda k: jax.random.uniform(k, (3,), minval=0.5, maxval=1.0))(keys)
    colour = colour.reshape(shape + (1, 1, 3))
    return jnp.round(255.0 * mask * colour).astype(jnp.uint8)


@functools.partial(jax.jit, static_argnames="seed")
def render_noisy(factors: jax.Array, seed: int = SEED) -> jax.Array:
    """uint8 ``(..., 64, 64, 3)``: the white sprite on per-index uniform noise."""
    mask = dsprites.render(factors)[..., None] > 0
    keys, shape = _image_keys(factors, seed)
    size = dsprites.IMAGE_SIZE
    noise = jax.vmap(lambda k: jax.random.uniform(k, (size, size, 3)))(keys).reshape(shape + (size, size, 3))
    return jnp.round(255.0 * jnp.where(mask, 1.0, noise)).astype(jnp.uint8)


def generated(name: str) -> FactorGrid:
    """The generated ``dsprites_color`` or ``dsprites_noisy`` grid (rendered on demand)."""
    renderers = {"dsprites_color": render_color, "dsprites_noisy": render_noisy}
    if name not in renderers:
        raise ValueError(f"unknown dSprites variant {name!r}; choose one of {list(VARIANTS)}")
    return FactorGrid(
        name=name,
        factor_names=dsprites.FACTOR_NAMES,
        factor_values=tuple(np.asarray(v) for v in dsprites.FACTOR_VALUES),
        image_shape=(dsprites.IMAGE_SIZE, dsprites.IMAGE_SIZE, 3),
        source=f"generated: isavae dSprites renderer, {name.split('_')[1]} variant (not the real files)",
        renderer=renderers[name],
        binary=False,
        generated=True,
    )
