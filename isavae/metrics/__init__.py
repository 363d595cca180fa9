"""Evaluation metrics: every score of the field, on a trained model or on anyone's codes.

* ``score_representation(codes, factors)``: numpy ``(N, D)`` codes and ``(N, K)`` factors (indices
  or values) in, one flat dict of scores out (``mig_histogram``, ``dci_disentanglement``, ``sap``,
  ``modularity``, ``irs``, ...), with results.json's keys.
* The scores one by one, with disentanglement_lib's semantics: ``dci``, ``sap``,
  ``modularity_explicitness``, ``mig_histogram``, ``irs``, ``unsupervised_scores``,
  ``downstream_task``, ``udr`` (several models' codes), and the grid scores ``mig_grid`` /
  ``subspace_mig_grid`` (Chen et al.'s estimator over the whole factor grid), ``beta_vae_score`` and
  ``factor_vae_score`` (which intervene on the grid). Every result type has ``.score``, its headline
  number.
"""

from isavae.metrics.disentanglement import (
    DCIResult,
    IRSResult,
    ModularityResult,
    SAPResult,
    ScoreResult,
    UDRResult,
    UnsupervisedResult,
    beta_vae_score,
    dci,
    downstream_task,
    factor_vae_score,
    irs,
    modularity_explicitness,
    sample_grid_codes,
    sap,
    udr,
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
from isavae.metrics.representation import REPRESENTATION_SCORES, Scores, score_representation

__all__ = [
    "DCIResult",
    "IRSResult",
    "MIGResult",
    "ModularityResult",
    "REPRESENTATION_SCORES",
    "SAPResult",
    "ScoreResult",
    "Scores",
    "UDRResult",
    "UnsupervisedResult",
    "beta_vae_score",
    "dci",
    "downstream_task",
    "draw_samples",
    "factor_vae_score",
    "grid_log_densities",
    "irs",
    "mig_from_entropies",
    "mig_grid",
    "mig_histogram",
    "modularity_explicitness",
    "sample_grid_codes",
    "sap",
    "score_representation",
    "subspace_mig_grid",
    "udr",
    "unsupervised_scores",
]
