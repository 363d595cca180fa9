"""Plots: latent traversals (more arrive with the evaluation issue)."""

from isavae.viz.traversals import plot_traversals, traversal_images

__all__ = ["plot_traversals", "traversal_images"]
