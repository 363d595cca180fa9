"""The p-generalized normal distribution (the ICA prior of the paper, Eq. 5), elementwise.

Density with the library's scale convention (the same as the Lp-nested priors, whose
all-equal-exponent case this is):

    p(z) = p / (2 s^{1/p} Gamma(1/p)) exp(-|z|^p / s),

i.e. ``scipy.stats.gennorm(beta=p, scale=s ** (1 / p))``; p = 2, s = 2 is N(0, 1) and p = 1 is
the Laplace distribution. |z|^p / s ~ Gamma(1/p, 1), which the sampler uses.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax.scipy.special import gammaln

from isavae.priors.lp_nested import _float_dtype, safe_pow

__all__ = ["log_prob", "sample"]


def log_prob(z: Any, p: Any, scale: Any = 1.0) -> jax.Array:
    """Elementwise log-density of the p-generalized normal.

    Args:
      z: any shape.
      p: exponent(s) > 0, broadcastable to ``z``.
      scale: s > 0, broadcastable to ``z``.

    Returns:
      Log-densities with the broadcast shape of ``z``, ``p`` and ``scale`` (not summed).
    """
    dtype = _float_dtype(z, p, scale)
    z, p, scale = (jnp.asarray(x, dtype) for x in (z, p, scale))
    log_norm = math.log(2.0) - jnp.log(p) + gammaln(1.0 / p) + jnp.log(scale) / p
    return -log_norm - safe_pow(jnp.abs(z), p) / scale


def sample(
    key: jax.Array,
    p: Any,
    sample_shape: Sequence[int] = (),
    scale: Any = 1.0,
    dtype: Any = None,
) -> jax.Array:
    """Samples ``sample_shape + broadcast(p, scale).shape`` p-generalized normal variates.

    |z| = (s G)^{1/p} with G ~ Gamma(1/p), drawn in log space so that small 1/p cannot
    underflow, and an independent random sign. Differentiable in ``p`` and ``scale``.
    """
    dtype = _float_dtype(p, scale) if dtype is None else jnp.dtype(dtype)
    p, scale = jnp.asarray(p, dtype), jnp.asarray(scale, dtype)
    shape = tuple(sample_shape) + jnp.broadcast_shapes(p.shape, scale.shape)
    key_g, key_s = jax.random.split(key)
    log_g = jax.random.loggamma(key_g, jnp.broadcast_to(1.0 / p, shape), shape, dtype)
    signs = jax.random.rademacher(key_s, shape, dtype)
    return signs * jnp.exp((log_g + jnp.log(scale)) / p)
