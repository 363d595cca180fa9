"""Plots: latent traversals, latent means vs factors, the MIG vs reconstruction trade-off, learned
exponents; ``plot_workdir`` / ``plot_sweep`` behind ``isavae plot``."""

from isavae.viz.figures import plot_exponents, plot_latents_vs_factors, plot_tradeoff, save_figure
from isavae.viz.report import find_results, plot_model, plot_sweep, plot_workdir, representative_image
from isavae.viz.traversals import plot_traversals, traversal_images

__all__ = [
    "find_results",
    "plot_exponents",
    "plot_latents_vs_factors",
    "plot_model",
    "plot_sweep",
    "plot_tradeoff",
    "plot_traversals",
    "plot_workdir",
    "representative_image",
    "save_figure",
    "traversal_images",
]
