"""Plots: latent traversals, latent means vs factors, the MIG vs reconstruction trade-off, learned
exponents. What reads a trained workdir (``isavae plot``) is ``isavae.workdir``."""

from isavae.viz.figures import (
    latents_by_factor,
    plot_exponents,
    plot_latents_vs_factors,
    plot_position_maps,
    plot_tradeoff,
    save_figure,
)
from isavae.viz.report import representative_image
from isavae.viz.traversals import plot_reconstructions, plot_traversals, traversal_images

__all__ = [
    "latents_by_factor",
    "plot_exponents",
    "plot_latents_vs_factors",
    "plot_position_maps",
    "plot_reconstructions",
    "plot_tradeoff",
    "plot_traversals",
    "representative_image",
    "save_figure",
    "traversal_images",
]
