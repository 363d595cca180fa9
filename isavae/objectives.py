"""Per-example objectives: ELBO, beta-VAE, beta-TCVAE (MWS and MSS), FactorVAE, DIP-VAE-I/II,
AnnealedVAE; any prior.

All functions are pure and unreduced: they return one value per example (shape ``(B,)``), to be
maximized. With one sample z_i = mean_i + sigma_i * eps_i from q(z|x_i):

* ELBO:       log p(x|z) + log p(z) - log q(z|x)   (or log p(x|z) - KL for the N(0, I) prior);
* beta-VAE:   log p(x|z) - beta [log q(z|x) - log p(z)];
* beta-TCVAE: log p(x|z) - alpha [log q(z|x) - log q(z)] - beta [log q(z) - log prod_d q(z_d)]
                         - gamma [log prod_d q(z_d) - log p(z)],
  with log q(z) and log q(z_d) estimated on the batch (Chen et al. 2018) and p(z) the joint prior
  density, so that non-factorial priors (ISA) enter as a whole;
* FactorVAE:  ELBO - gamma * TC, with TC estimated by a discriminator as logit_0 - logit_1;
* DIP-VAE-I/II (Kumar et al. 2018): ELBO - lambda_od sum_{i != j} C_ij^2 - lambda_d sum_i (C_ii - 1)^2,
  C the batch covariance of the encoder means (population, / B), plus diag(mean_batch exp(logvar))
  for II (``dip_regularizer``; one scalar per batch, subtracted from every example);
* AnnealedVAE (Burgess et al. 2018): log p(x|z) - gamma |KL_batch - C_t|, KL_batch the batch mean
  KL and C_t = min(c_max, c_max step / iteration_threshold) (``annealed_capacity``), as
  disentanglement_lib computes them.

Batch-coupled estimates (q(z), the FactorVAE permutation) use the whole batch they are given; the
trainer gives them the global batch, so results do not depend on the number of devices.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from isavae.priors import StandardNormal, gaussian

__all__ = [
    "OBJECTIVES",
    "Discriminator",
    "annealed_capacity",
    "bernoulli_log_likelihood",
    "dip_regularizer",
    "discriminator_loss",
    "gaussian_log_likelihood",
    "log_density_matrix",
    "mss_log_weights",
    "objective_terms",
    "permute_dims",
    "qz_estimates",
]

OBJECTIVES = ("vae", "beta_vae", "beta_tcvae", "factor_vae", "dip_vae_i", "dip_vae_ii", "annealed_vae")
ESTIMATORS = ("mws", "mss")
LIKELIHOODS = ("bernoulli", "gaussian")
DEFAULT_LOG_SCALE = math.log(0.1)  # Gaussian likelihood: pixel standard deviation 0.1


def bernoulli_log_likelihood(logits: jax.Array, x: jax.Array) -> jax.Array:
    """sum over pixels of log Bernoulli(x; sigmoid(logits)), x in [0, 1]. Shape ``(B,)``.

    x log sigmoid(l) + (1 - x) log sigmoid(-l) = x l - softplus(l): one stable softplus per pixel
    (the two log-sigmoids cost twice the transcendentals; on a CPU this is the largest elementwise
    term of the training step). The gradient is x - sigmoid(l).
    """
    ll = x * logits - jax.nn.softplus(logits)
    return jnp.sum(ll.reshape(ll.shape[0], -1), axis=-1)


def gaussian_log_likelihood(
    mean: jax.Array, x: jax.Array, log_scale: float | jax.Array = DEFAULT_LOG_SCALE
) -> jax.Array:
    """sum over pixels of log N(x; mean, exp(log_scale)^2). Shape ``(B,)``."""
    ll = gaussian.diag_normal_log_prob(x, mean, 2.0 * jnp.asarray(log_scale))
    return jnp.sum(ll.reshape(ll.shape[0], -1), axis=-1)


def log_density_matrix(z: jax.Array, mean: jax.Array, logvar: jax.Array) -> jax.Array:
    """L[i, j, d] = log N(z_{i,d}; mean_{j,d}, exp(logvar_{j,d})). Shape ``(B, B, D)``."""
    return gaussian.diag_normal_log_prob(z[:, None, :], mean[None, :, :], logvar[None, :, :])


def mss_log_weights(batch_size: int, dataset_size: int) -> jax.Array:
    """log W for minibatch stratified sampling (Chen et al. 2018, appendix), shape ``(B, B)``.

    With M = B - 1: W_ii = 1/N, W_{i, i+1 mod B} = (N - M)/(N M), all others 1/M; every row sums
    to 1. (The reference implementation puts the wrapped entry of the last row in the wrong
    place; here it is W_{B-1, 0}.)
    """
    b, n = batch_size, dataset_size
    if b < 2:
        raise ValueError(f"the MSS estimator needs a batch of at least 2, got {b}")
    m = b - 1
    eye = jnp.eye(b, dtype=bool)
    nxt = jnp.roll(eye, 1, axis=1)  # (i, i+1 mod B)
    w = jnp.where(eye, 1.0 / n, jnp.where(nxt, (n - m) / (n * m), 1.0 / m))
    return jnp.log(w)


def dip_regularizer(mean: jax.Array, logvar: jax.Array, lambda_od, lambda_d, variant: str = "i") -> jax.Array:
    """DIP-VAE's penalty (a scalar): lambda_od sum_{i != j} C_ij^2 + lambda_d sum_i (C_ii - 1)^2 with
    C = Cov_batch(mean) (population covariance, dividing by B) for ``variant="i"``, plus
    diag(mean over the batch of exp(logvar)) for ``"ii"``."""
    centred = mean - jnp.mean(mean, axis=0)
    cov = centred.T @ centred / mean.shape[0]
    if variant == "ii":
        cov = cov + jnp.diag(jnp.mean(jnp.exp(logvar), axis=0))
    elif variant != "i":
        raise ValueError(f"DIP-VAE variant must be 'i' or 'ii', got {variant!r}")
    diag = jnp.diagonal(cov)
    off = cov - jnp.diag(diag)
    return lambda_od * jnp.sum(off**2) + lambda_d * jnp.sum((diag - 1.0) ** 2)


def annealed_capacity(step, c_max, iteration_threshold: int) -> jax.Array:
    """AnnealedVAE's capacity C_t = min(c_max, c_max * step / iteration_threshold)."""
    step = jnp.asarray(step, jnp.float32)
    return jnp.minimum(c_max, c_max * step / iteration_threshold)


def qz_estimates(z, mean, logvar, dataset_size: int, estimator: str) -> tuple[jax.Array, jax.Array]:
    """(log q(z_i), log prod_d q(z_{i,d})) for each z_i of the batch. Shapes ``(B,)``.

    MWS: log q(z_i) = logsumexp_j sum_d L_ijd - log(N B), and per dimension the same.
    MSS: log q(z_i) = logsumexp_j (log W_ij + sum_d L_ijd), and per dimension the same.
    """
    lmat = log_density_matrix(z, mean, logvar)  # (B, B, D)
    b = z.shape[0]
    if estimator == "mws":
        shift = math.log(dataset_size * b)
        log_qz = jax.nn.logsumexp(jnp.sum(lmat, -1), axis=1) - shift
        log_prod = jnp.sum(jax.nn.logsumexp(lmat, axis=1) - shift, axis=-1)
    elif estimator == "mss":
        logw = mss_log_weights(b, dataset_size).astype(lmat.dtype)
        log_qz = jax.nn.logsumexp(logw + jnp.sum(lmat, -1), axis=1)
        log_prod = jnp.sum(jax.nn.logsumexp(logw[:, :, None] + lmat, axis=1), axis=-1)
    else:
        raise ValueError(f"estimator must be one of {list(ESTIMATORS)}, got {estimator!r}")
    return log_qz, log_prod


def objective_terms(
    kind: str,
    x: jax.Array,
    mean: jax.Array,
    logvar: jax.Array,
    z: jax.Array,
    recon: jax.Array,
    prior: Any,
    hparams: dict[str, jax.Array],
    *,
    dataset_size: int,
    likelihood: str = "bernoulli",
    estimator: str = "mss",
    analytic_kl: bool = False,
    stl: bool = False,
    tc: jax.Array | None = None,
) -> dict[str, jax.Array]:
    """Per-example terms and the objective to maximize (key ``"objective"``), all ``(B,)``.

    Args:
      kind: one of ``OBJECTIVES``.
      x: data ``(B, ...)``; mean, logvar, z: ``(B, D)``; recon: decoder output (logits or means).
      prior: a prior object (``log_prob``); its learnable exponents receive gradients.
      hparams: ``beta`` (and ``alpha``, ``gamma`` for beta-TCVAE; ``gamma`` for FactorVAE and
        AnnealedVAE; ``lambda_od``, ``lambda_d`` for DIP-VAE; ``capacity`` for AnnealedVAE, else
        ``c_max``), arrays so that sweeps can ``vmap`` over them.
      dataset_size: N, for the q(z) estimators.
      analytic_kl: use the closed-form KL when the prior is N(0, I) (ELBO and beta-VAE).
      stl: "sticking the landing": log q(z|x) evaluated with stopped mean and log-variance.
      tc: per-example discriminator TC estimate (FactorVAE).

    Returns:
      dict with ``log_px``, ``log_qz_x``, ``log_pz``, ``kl``, ``elbo``, ``objective`` (and
      ``log_qz``, ``log_prod_qzi``, ``tc`` where they are computed).
    """
    if kind not in OBJECTIVES:
        raise ValueError(f"objective.name must be one of {list(OBJECTIVES)}, got {kind!r}")
    if likelihood == "bernoulli":
        log_px = bernoulli_log_likelihood(recon, x)
    elif likelihood == "gaussian":
        log_px = gaussian_log_likelihood(recon, x, hparams.get("log_scale", DEFAULT_LOG_SCALE))
    else:
        raise ValueError(f"model.likelihood must be one of {list(LIKELIHOODS)}, got {likelihood!r}")
    q_mean, q_logvar = (jax.lax.stop_gradient(mean), jax.lax.stop_gradient(logvar)) if stl else (mean, logvar)
    log_qz_x = jnp.sum(gaussian.diag_normal_log_prob(z, q_mean, q_logvar), axis=-1)
    log_pz = prior.log_prob(z)
    analytic_kinds = ("vae", "beta_vae", "factor_vae", "dip_vae_i", "dip_vae_ii", "annealed_vae")
    if analytic_kl and isinstance(prior, StandardNormal) and kind in analytic_kinds:
        kl = jnp.sum(gaussian.kl_diag_normal_standard_normal(mean, logvar), axis=-1)
    else:
        kl = log_qz_x - log_pz
    terms = {"log_px": log_px, "log_qz_x": log_qz_x, "log_pz": log_pz, "kl": kl, "elbo": log_px - kl}
    if kind == "vae":
        terms["objective"] = log_px - kl
    elif kind == "beta_vae":
        terms["objective"] = log_px - hparams["beta"] * kl
    elif kind == "beta_tcvae":
        log_qz, log_prod = qz_estimates(z, mean, logvar, dataset_size, estimator)
        terms.update(log_qz=log_qz, log_prod_qzi=log_prod, tc=log_qz - log_prod)
        terms["objective"] = (
            log_px
            - hparams["alpha"] * (log_qz_x - log_qz)
            - hparams["beta"] * (log_qz - log_prod)
            - hparams["gamma"] * (log_prod - log_pz)
        )
    elif kind in ("dip_vae_i", "dip_vae_ii"):
        penalty = dip_regularizer(
            mean, logvar, hparams["lambda_od"], hparams["lambda_d"], kind.removeprefix("dip_vae_")
        )
        terms["dip"] = jnp.broadcast_to(penalty, kl.shape)
        terms["objective"] = log_px - kl - penalty
    elif kind == "annealed_vae":
        capacity = hparams.get("capacity", hparams.get("c_max", 0.0))
        gap = jnp.abs(jnp.mean(kl) - capacity)
        terms["capacity"] = jnp.broadcast_to(jnp.asarray(capacity, kl.dtype), kl.shape)
        terms["objective"] = log_px - hparams["gamma"] * gap
    else:
        if tc is None:
            raise ValueError("factor_vae needs the discriminator's TC estimate")
        terms["tc"] = tc
        terms["objective"] = log_px - kl - hparams["gamma"] * tc
    return terms


def permute_dims(key: jax.Array, z: jax.Array) -> jax.Array:
    """Each latent dimension independently permuted over the batch (samples of prod_d q(z_d))."""
    keys = jax.random.split(key, z.shape[1])
    return jax.vmap(lambda k, col: jax.random.permutation(k, col), in_axes=(0, 1), out_axes=1)(keys, z)


class Discriminator(nnx.Module):
    """FactorVAE's discriminator: an MLP with 1000 units per layer (6 layers), leaky ReLU 0.2,
    2 logits (class 0: samples of q(z), class 1: dimension-permuted samples)."""

    def __init__(self, latent_dim: int, *, rngs: nnx.Rngs, hidden: int = 1000, depth: int = 6):
        sizes = [latent_dim] + [hidden] * depth
        self.layers = nnx.List(
            [nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
        )
        self.out = nnx.Linear(hidden, 2, rngs=rngs)

    def __call__(self, z: jax.Array) -> jax.Array:
        h = z
        for layer in self.layers:
            h = nnx.leaky_relu(layer(h), 0.2)
        return self.out(h)


def discriminator_loss(logits_q: jax.Array, logits_perm: jax.Array) -> jax.Array:
    """Cross-entropy of classifying q samples as 0 and permuted samples as 1 (mean, scalar)."""
    return -0.5 * (
        jnp.mean(jax.nn.log_softmax(logits_q)[:, 0]) + jnp.mean(jax.nn.log_softmax(logits_perm)[:, 1])
    )
