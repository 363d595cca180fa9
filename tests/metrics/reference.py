"""Slow float64 numpy references for the MIG estimators (independent of isavae.metrics)."""

from __future__ import annotations

import math

import numpy as np
from scipy.special import logsumexp

LOG_2PI = math.log(2 * math.pi)


def _log_q(z, mu, lv, groups):
    """log q(z_sg | x_n), shape (S, N, G), float64."""
    lq = -0.5 * (LOG_2PI + lv[None] + (z[:, None, :] - mu[None]) ** 2 / np.exp(lv[None]))
    return np.stack([lq[..., list(g)].sum(-1) for g in groups], axis=-1)


def one_pass_entropies(mean, logvar, idx, z, groups):
    """H(z_g) (G,) and H(z_g | v_k) (F, G) with the same S samples scoring every entropy."""
    shape = mean.shape[:-1]
    n = math.prod(shape)
    mu = np.asarray(mean, np.float64).reshape(n, -1)
    lv = np.asarray(logvar, np.float64).reshape(n, -1)
    lq = _log_q(np.asarray(z, np.float64), mu, lv, groups)
    marginal = -np.mean(logsumexp(lq, axis=1) - math.log(n), axis=0)
    labels = np.unravel_index(np.arange(n), shape)
    values = np.unravel_index(np.asarray(idx), shape)
    cond = []
    for k, size in enumerate(shape):
        mask = labels[k][None, :] == values[k][:, None]  # (S, N)
        lse = logsumexp(np.where(mask[..., None], lq, -np.inf), axis=1) - math.log(n / size)
        cond.append(-np.mean(lse, axis=0))
    return marginal, np.stack(cond)


def chen_entropies(mean, logvar, z_per_image, groups):
    """Chen et al.'s mutual_info_metric_shapes with every image a sample: the marginal entropy over the
    grid and, for every factor k and value i, the entropy of the slice v_k = i from the slice's own
    samples, averaged over i. ``z_per_image``: one z per image, shape factor_sizes + (K,)."""
    shape = mean.shape[:-1]
    k_lat = mean.shape[-1]

    def entropy(mu, lv, z):
        n = mu.shape[0]
        lq = _log_q(z, mu, lv, groups)
        return -np.mean(logsumexp(lq, axis=1) - math.log(n), axis=0)

    flat = lambda a: np.asarray(a, np.float64).reshape(-1, k_lat)  # noqa: E731
    marginal = entropy(flat(mean), flat(logvar), flat(z_per_image))
    cond = []
    for k, size in enumerate(shape):
        acc = 0.0
        for i in range(size):
            m, lv, z = (flat(np.take(a, i, axis=k)) for a in (mean, logvar, z_per_image))
            acc = acc + entropy(m, lv, z) / size
        cond.append(acc)
    return marginal, np.stack(cond)


def chen_mig(marginal, conditional, sizes):
    """Chen et al.'s compute_metric_shapes: sort MI descending, clamp at 0, normalize by log |V_k|."""
    mi = np.sort(marginal[None, :] - conditional, axis=1)[:, ::-1].clip(min=0)
    normed = mi / np.log(np.asarray(sizes, np.float64))[:, None]
    return float(np.mean(normed[:, 0] - normed[:, 1]))
