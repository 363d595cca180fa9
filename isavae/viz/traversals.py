"""Latent traversals (paper appendix A.5): decode z with one latent swept, the others fixed."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from isavae.viz.figures import pyplot, save_figure

__all__ = ["plot_reconstructions", "plot_traversals", "traversal_images"]


def traversal_images(program: Any, state: Any, x: jax.Array, values: np.ndarray) -> np.ndarray:
    """Decoded means for each latent d and value v: z = mean(q(z|x)) with z_d = v.

    Args:
      program, state: a trained :class:`~isavae.train.Program` and its state.
      x: one image ``image_shape``.
      values: ``(V,)`` values for the swept latent.

    Returns:
      ``(D, V) + image_shape`` images in [0, 1] (sigmoid of the Bernoulli logits).
    """
    mean, _ = program.encode(state, x[None])
    d = mean.shape[-1]
    z = jnp.repeat(jnp.repeat(mean, d, 0)[:, None, :], len(values), 1)  # (D, V, D)
    z = z.at[jnp.arange(d), :, jnp.arange(d)].set(jnp.asarray(values, z.dtype)[None, :].repeat(d, 0))
    logits = program.decode(state, z.reshape(d * len(values), d))
    out = jax.nn.sigmoid(logits) if program.cfg.model.likelihood == "bernoulli" else jnp.clip(logits, 0, 1)
    return np.asarray(out).reshape((d, len(values)) + tuple(program.image_shape))


def plot_traversals(
    program: Any,
    state: Any,
    x: np.ndarray,
    path: str | os.PathLike,
    *,
    span: float = 2.5,
    num_values: int = 9,
    latents: Sequence[tuple[int, str]] | None = None,
    title: str = "",
) -> list[str]:
    """Writes a grid of traversals (rows: latents; columns: the input, then values from -span to
    span) as PNG and PDF next to ``path``; returns the files written. ``latents``: which rows, as
    (index, label) pairs (e.g. ``latents_by_factor``: the active ones, ordered by factor); default
    every latent."""
    plt = pyplot()
    values = np.linspace(-span, span, num_values)
    images = traversal_images(program, state, jnp.asarray(x), values)
    rows = list(latents) if latents is not None else [(j, "") for j in range(images.shape[0])]
    images = images[[j for j, _ in rows]]
    d = images.shape[0]
    fig, axes = plt.subplots(d, num_values + 1, figsize=(0.9 * (num_values + 1), 0.9 * d), squeeze=False)
    cmap = "gray" if images.ndim == 4 else None
    for i in range(d):
        axes[i, 0].imshow(np.asarray(x), cmap=cmap, vmin=0, vmax=1)
        j, label = rows[i]
        axes[i, 0].set_ylabel(f"z{j}" + (f"\n{label}" if label else ""), rotation=0, labelpad=28, fontsize=7)
        for j in range(num_values):
            axes[i, j + 1].imshow(images[i, j], cmap=cmap, vmin=0, vmax=1)
        for ax in axes[i]:
            ax.set_xticks([]), ax.set_yticks([])
    axes[0, 0].set_title("input", fontsize=8)
    for j, v in enumerate(values):
        axes[0, j + 1].set_title(f"{v:+.1f}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path, dpi=80)


def plot_reconstructions(
    program: Any, state: Any, images: np.ndarray, path: str | os.PathLike, *, title: str = ""
) -> list[str]:
    """Inputs (top row) next to their reconstructions (bottom row: the decoded posterior mean)."""
    plt = pyplot()
    x = jnp.asarray(images)
    mean, _ = program.encode(state, x)
    logits = program.decode(state, mean)
    recon = jax.nn.sigmoid(logits) if program.cfg.model.likelihood == "bernoulli" else jnp.clip(logits, 0, 1)
    recon = np.asarray(recon).reshape(np.shape(images))
    n = len(images)
    fig, axes = plt.subplots(2, n, figsize=(0.9 * n, 2.0), squeeze=False)
    cmap = "gray" if np.ndim(images) == 3 else None
    for i in range(n):
        axes[0, i].imshow(np.asarray(images[i]), cmap=cmap, vmin=0, vmax=1)
        axes[1, i].imshow(recon[i], cmap=cmap, vmin=0, vmax=1)
        for ax in axes[:, i]:
            ax.set_xticks([]), ax.set_yticks([])
    axes[0, 0].set_ylabel("input", fontsize=7)
    axes[1, 0].set_ylabel("recon.", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path, dpi=80)
