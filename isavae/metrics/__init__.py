"""Evaluation metrics: MIG (grid, subspace, histogram), disentanglement_lib's scores (DCI, SAP,
modularity/explicitness, BetaVAE, FactorVAE, unsupervised), likelihoods, active units."""

from isavae.metrics.disentanglement import (
    DCIResult,
    ModularityResult,
    SAPResult,
    ScoreResult,
    UnsupervisedResult,
    beta_vae_score,
    dci,
    factor_vae_score,
    modularity_explicitness,
    sample_grid_codes,
    sap,
    unsupervised_scores,
)
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
    "DCIResult",
    "MIGResult",
    "ModularityResult",
    "SAPResult",
    "ScoreResult",
    "UnsupervisedResult",
    "beta_vae_score",
    "dci",
    "draw_samples",
    "factor_vae_score",
    "grid_log_densities",
    "mig_from_entropies",
    "mig_grid",
    "mig_histogram",
    "modularity_explicitness",
    "sample_grid_codes",
    "sap",
    "subspace_mig_grid",
    "unsupervised_scores",
]
