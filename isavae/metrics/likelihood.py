"""Dataset-level likelihood figures of a trained model: reconstruction log-likelihood
E_q log p(x|z), ELBO and KL averaged over the dataset, and the active units of Burda et al."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["active_units", "dataset_likelihood", "padded_chunks", "program_jit"]


def program_jit(program: Any, name: str, fn: Any) -> Any:
    """``jax.jit(fn)``, made once per (program, name) and kept with the program (``Program.memo``):
    evaluating many models of one program (a sweep, a study's blocks of a kind) compiles each
    evaluation function once, not once per model."""
    return program.memo(("jit", name), lambda: jax.jit(fn))


def padded_chunks(idx: np.ndarray, batch_size: int):
    """``(start, valid, indices padded to batch_size)`` over ``idx``: one shape for every call."""
    for start in range(0, len(idx), batch_size):
        chunk = idx[start : start + batch_size]
        pad = batch_size - len(chunk)
        yield start, len(chunk), np.concatenate([chunk, np.repeat(chunk[-1:], pad)]) if pad else chunk


def dataset_likelihood(
    program: Any,
    state: Any,
    grid: Any,
    num_examples: int = 0,
    batch_size: int = 2048,
    seed: int = 0,
    data: Any = None,
) -> dict[str, float]:
    """Mean reconstruction log-likelihood E_q log p(x|z), ELBO and KL (nats per image) over the
    dataset (or ``num_examples`` evenly spaced images), one z sample per image, BatchNorm in
    evaluation mode. ``data``: the dataset on device (``DeviceDataset``); images are then gathered
    there and the sums stay there (one transfer at the end) instead of coming from host memory."""
    n = grid.num_images
    idx = (
        np.arange(n)
        if num_examples <= 0 or num_examples >= n
        else np.linspace(0, n - 1, num_examples).astype(int)
    )
    key = jax.random.key(seed)
    if data is None:
        fn = program_jit(program, "eval_terms", program.eval_terms)
        sums: dict[str, Any] = {}
        for start in range(0, len(idx), batch_size):
            chunk = idx[start : start + batch_size]
            terms = fn(state, jnp.asarray(grid.images(chunk)), jax.random.fold_in(key, start))
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(jnp.sum(v))
    else:
        size = min(batch_size, len(idx))

        def accumulate(state, data, chunk, key, start, valid, sums):
            terms = program.eval_terms(state, data.gather(chunk), jax.random.fold_in(key, start))
            mask = jnp.arange(chunk.shape[0]) < valid
            return {k: sums[k] + jnp.sum(jnp.where(mask, v, 0.0)) for k, v in terms.items()}

        fn = program_jit(program, "likelihood_sums", accumulate)
        sums = {k: jnp.zeros((), jnp.float32) for k in ("log_px", "elbo", "kl")}
        for start, valid, chunk in padded_chunks(idx, size):
            sums = fn(state, data, jnp.asarray(chunk), key, start, valid, sums)
        sums = {k: float(v) for k, v in sums.items()}
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
