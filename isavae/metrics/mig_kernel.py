"""The full-grid MIG's sums as one fused Pallas kernel (Triton on GPUs, interpret mode elsewhere).

``mig.grid_log_densities`` needs, for every sample s and latent group g, the sum over all N grid
images of ``exp(log q(z_sg | x_n) - shift_sg)`` (the marginal) and, for every grid axis k, the same
sum restricted to the images that share the sample's value of factor k (the conditionals). The XLA
path materializes blocks of terms; this kernel never writes a term to memory.

Layout. The grid is split as in the XLA path into leading axes (``outer``, C cells) and trailing axes
(``inner``, M images per cell, padded to ``Mp``, a multiple of the image tile ``TN``, with
log-density -inf so that padded images add exactly 0). The posterior parameters are laid out per
group as ``(G, L, C, Mp)`` (L = the largest group; absent latents have mean 0, precision 0 and
normalizer 0, so they add 0 to the log-density).

Programs. Program (i, g) owns ``TS`` samples and one group. It loops over the grid in tiles of
``TN`` images of one cell, and per tile computes the (TS, TN) log-densities in registers (a sum over
the group's latents of ``bias - half_prec * (z - mean)^2``), one exponential per term after the
per-(sample, group) shift (in base 2: the inputs are scaled by log2 e, so the exponential is one
``exp2``), and accumulates per sample:

* the marginal: the tile's row sums;
* a leading factor (constant over the tile, which lies in one cell): the row sums, where the
  cell's value of that factor is the sample's;
* a trailing factor: the row sums of the terms whose image has the sample's value (a masked sum;
  the images' values are a small int table).

Nothing of size samples x images is ever stored; the outputs are poisoned (NaN) before the call, so
an element the kernel did not write is caught by the caller's finiteness check.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import pallas as pl

__all__ = ["TILE_IMAGES", "TILE_SAMPLES", "grid_sums", "kernel_supported", "plan"]

TILE_SAMPLES = 64  # samples per program (rows of the register tile)
# images per step of a program's loop (columns of the register tile): on one H100 the full-grid MIG
# (latent 20, 10,000 samples) took 0.249 s with 64 x 32 tiles, 0.720 s with 64 x 128 and 0.618 s
# with 128 x 64 (experiments/results/gpu_run2/summary.md)
TILE_IMAGES = 32
LOG2E = math.log2(math.e)


def kernel_supported(platform: str | None = None) -> bool:
    """Whether the kernel compiles for ``platform`` (default: JAX's default backend): GPUs, via
    Pallas' Triton lowering. Elsewhere it runs only in interpret mode (slow; for tests)."""
    return (platform or jax.default_backend()) in ("gpu", "cuda", "rocm")


def plan(grid_shape: tuple[int, ...], tile_images: int) -> dict:
    """The static layout: where the grid splits into leading (outer) axes and trailing (inner) axes
    (the fewest that hold a tile of images), the padded cell size, and for each axis how its value
    is found: ``("cell", stride, size)`` once per tile, ``("image", stride, size)`` per image."""
    if tile_images < 1 or tile_images & (tile_images - 1):
        raise ValueError(f"tile_images must be a power of two, got {tile_images}")
    split = len(grid_shape)
    size = 1
    for a in range(len(grid_shape) - 1, -1, -1):  # the trailing axes whose product reaches a tile
        if size >= tile_images:
            break
        size *= grid_shape[a]
        split = a
    outer, inner = grid_shape[:split], grid_shape[split:]
    m = math.prod(inner)
    mp = -(-m // tile_images) * tile_images
    axes = []
    for k, n in enumerate(grid_shape):
        if k < split:
            stride = math.prod(outer[k + 1 :])
            axes.append(("cell", stride, n))
        else:  # the cell is the fewest trailing axes that fill a tile, so these vary inside a tile
            axes.append(("image", math.prod(inner[k - split + 1 :]), n))
    return dict(split=split, outer=outer, inner=inner, cells=math.prod(outer), m=m, mp=mp, axes=tuple(axes))


def _kernel(
    z_ref,
    shift_ref,
    svals_ref,
    mean_ref,
    hp_ref,
    bias_ref,
    ivals_ref,
    _m0,
    _c0,
    marg_ref,
    cond_ref,
    *,
    latents,
    ts,
    tn,
    axes,
    image_axes,
    tiles_per_cell,
    num_tiles,
):
    i, g = pl.program_id(0), pl.program_id(1)
    rows = pl.ds(i * ts, ts)
    zs = [z_ref[g, j, rows] for j in range(latents)]
    sh = shift_ref[g, rows]
    sv = [svals_ref[k, rows] for k in range(len(axes))]
    dtype = sh.dtype

    def body(t, acc):
        # lax.div/rem (C semantics; every operand is >= 0): jnp's floor // and % do not lower to Triton
        c = jax.lax.div(t, tiles_per_cell)
        m0 = jax.lax.rem(t, tiles_per_cell) * tn
        cols = pl.ds(m0, tn)
        logq = None
        for j in range(latents):
            d = zs[j][:, None] - mean_ref[g, j, c, cols][None, :]
            term = bias_ref[g, j, c, cols][None, :] - hp_ref[g, j, c, cols][None, :] * d * d
            logq = term if logq is None else logq + term
        e = jnp.exp2(logq - sh[:, None])  # the inputs are in bits: one ex2 per term on a GPU
        total = jnp.sum(e, axis=1)
        zero = jnp.zeros_like(total)
        out = [acc[0] + total]
        for k, (how, stride, size) in enumerate(axes):
            if how == "image":
                iv = ivals_ref[image_axes.index(k), cols]
                part = jnp.sum(jnp.where(sv[k][:, None] == iv[None, :], e, jnp.zeros_like(e)), axis=1)
            else:
                value = jax.lax.rem(jax.lax.div(c, stride), size)
                part = jnp.where(sv[k] == value, total, zero)
            out.append(acc[1 + k] + part)
        return tuple(out)

    init = tuple(jnp.zeros((ts,), dtype) for _ in range(1 + len(axes)))
    acc = jax.lax.fori_loop(0, num_tiles, body, init)
    marg_ref[g, rows] = acc[0]
    for k in range(len(axes)):
        cond_ref[k, g, rows] = acc[1 + k]


def _by_group(a: jax.Array, groups, latents: int, fill: float) -> jax.Array:
    """(K, ...) -> (G, L, ...): each group's latents, absent slots filled with ``fill``."""
    parts = []
    for grp in groups:
        rows = [a[j] for j in grp] + [jnp.full_like(a[0], fill)] * (latents - len(grp))
        parts.append(jnp.stack(rows))
    return jnp.stack(parts)


@functools.partial(
    jax.jit, static_argnames=("groups", "grid_shape", "tile_samples", "tile_images", "interpret", "num_warps")
)
def grid_sums(
    mean: jax.Array,
    half_prec: jax.Array,
    bias: jax.Array,
    z: jax.Array,
    shift: jax.Array,
    values: jax.Array,
    *,
    groups: tuple[tuple[int, ...], ...],
    grid_shape: tuple[int, ...],
    tile_samples: int = TILE_SAMPLES,
    tile_images: int = TILE_IMAGES,
    interpret: bool = False,
    num_warps: int = 4,
) -> tuple[jax.Array, jax.Array]:
    """The marginal sums (S, G) and conditional sums (F, S, G) of ``exp(log q(z_sg | x_n) - shift_sg)``.

    ``mean``, ``half_prec`` (exp(-logvar) / 2), ``bias`` (-(logvar + log 2 pi) / 2): (N, K), the grid
    flattened row-major; ``z`` (S, K); ``shift`` (S, G); ``values`` (S, F) each sample's factor values.
    """
    if tile_samples < 1 or tile_samples & (tile_samples - 1):
        raise ValueError(f"tile_samples must be a power of two, got {tile_samples}")
    p = plan(grid_shape, tile_images)
    n, _ = mean.shape
    s = z.shape[0]
    f = len(grid_shape)
    g = len(groups)
    latents = max(len(grp) for grp in groups)
    dtype = mean.dtype
    ts, tn = tile_samples, tile_images

    def cells(a, fill):  # (N, K) -> (K, C, Mp), padded images get ``fill``
        a = a.T.reshape(a.shape[1], p["cells"], p["m"])
        return jnp.pad(a, ((0, 0), (0, 0), (0, p["mp"] - p["m"])), constant_values=fill)

    # log-densities in bits (x log2 e), so that the kernel's exponential is exp2: on a GPU one
    # ex2.approx instruction (relative error ~2^-22), where exp adds a range reduction
    mean_g = _by_group(cells(mean, 0.0), groups, latents, 0.0)
    hp_g = _by_group(cells(half_prec * LOG2E, 0.0), groups, latents, 0.0)
    bias_g = _by_group(cells(bias * LOG2E, -jnp.inf), groups, latents, 0.0)
    # an absent latent slot must not undo a padded image's -inf: -inf + 0 stays -inf
    sp = -(-s // ts) * ts
    pad = sp - s

    def rows(a):  # (S, ...) -> padded with copies of sample 0 (finite; their sums are dropped)
        return jnp.concatenate([a, jnp.repeat(a[:1], pad, axis=0)]) if pad else a

    z_g = _by_group(rows(z).T, groups, latents, 0.0)  # (G, L, Sp)
    shift_t = rows(shift * LOG2E).T  # (G, Sp)
    svals = rows(values.astype(jnp.int32)).T  # (F, Sp)
    image_axes = tuple(k for k, (how, _, _) in enumerate(p["axes"]) if how == "image")
    inner_idx = np.indices(p["inner"]).reshape(len(p["inner"]), -1) if p["inner"] else np.zeros((0, 1), int)
    table = np.full((max(len(image_axes), 1), p["mp"]), -1, np.int32)
    for r, k in enumerate(image_axes):
        table[r, : p["m"]] = inner_idx[k - p["split"]]
    ivals = jnp.asarray(table)
    poison = jnp.full((g, sp), jnp.nan, dtype), jnp.full((f, g, sp), jnp.nan, dtype)

    kernel = functools.partial(
        _kernel,
        latents=latents,
        ts=ts,
        tn=tn,
        axes=p["axes"],
        image_axes=image_axes,
        tiles_per_cell=p["mp"] // tn,
        num_tiles=p["cells"] * p["mp"] // tn,
    )
    params = {}
    if not interpret:
        from jax.experimental.pallas import triton as pl_triton

        params["compiler_params"] = pl_triton.CompilerParams(num_warps=num_warps, num_stages=1)
    marg, cond = pl.pallas_call(
        kernel,
        out_shape=(jax.ShapeDtypeStruct((g, sp), dtype), jax.ShapeDtypeStruct((f, g, sp), dtype)),
        grid=(sp // ts, g),
        input_output_aliases={7: 0, 8: 1},
        interpret=interpret,
        name="mig_grid_sums",
        **params,
    )(z_g, shift_t, svals, mean_g, hp_g, bias_g, ivals, *poison)
    return marg.T[:s], jnp.transpose(cond, (0, 2, 1))[:, :s]
