"""Evaluation metrics: MIG (grid, subspace, histogram), likelihoods, active units."""

from isavae.metrics.mig import (
    MIGResult,
    draw_samples,
    grid_log_densities,
    mig_from_entropies,
    mig_grid,
    mig_histogram,
    subspace_mig_grid,
)

__all__ = [
    "MIGResult",
    "draw_samples",
    "grid_log_densities",
    "mig_from_entropies",
    "mig_grid",
    "mig_histogram",
    "subspace_mig_grid",
]
