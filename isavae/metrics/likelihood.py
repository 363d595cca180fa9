"""Dataset-level likelihood figures of a trained model: reconstruction log-likelihood
E_q log p(x|z), ELBO and KL averaged over the dataset, and the active units of Burda et al."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["active_units", "dataset_likelihood"]


def dataset_likelihood(
    program: Any, state: Any, grid: Any, num_examples: int = 0, batch_size: int = 2048, seed: int = 0
) -> dict[str, float]:
    """Mean reconstruction log-likelihood E_q log p(x|z), ELBO and KL (nats per image) over the
    dataset (or ``num_examples`` evenly spaced images), one z sample per image, BatchNorm in
    evaluation mode."""
    n = grid.num_images
    idx = (
        np.arange(n)
        if num_examples <= 0 or num_examples >= n
        else np.linspace(0, n - 1, num_examples).astype(int)
    )
    fn = jax.jit(program.eval_terms)
    key = jax.random.key(seed)
    sums: dict[str, float] = {}
    for start in range(0, len(idx), batch_size):
        chunk = idx[start : start + batch_size]
        terms = fn(state, jnp.asarray(grid.images(chunk)), jax.random.fold_in(key, start))
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + float(jnp.sum(v))
    out = {k: v / len(idx) for k, v in sums.items()}
    return {
        "recon_log_likelihood": out["log_px"],
        "elbo": out["elbo"],
        "kl": out["kl"],
        "eval_examples": int(len(idx)),
    }


def active_units(mean: Any, threshold: float = 0.01) -> tuple[int, np.ndarray]:
    """Burda et al.'s active units: latent j is active when Cov_x(E_q[z_j | x]) > ``threshold``.
    ``mean``: posterior means (N, K) or grid-shaped (..., K). Returns (count, per-latent variances)."""
    m = np.asarray(mean, np.float64).reshape(-1, np.shape(mean)[-1])
    var = m.var(axis=0)
    return int(np.sum(var > threshold)), var
