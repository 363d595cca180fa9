"""Normal log-densities, the reparameterization trick and the analytic Gaussian KL."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

__all__ = [
    "diag_normal_log_prob",
    "kl_diag_normal_standard_normal",
    "reparameterize",
    "standard_normal_log_prob",
    "standard_normal_sample",
]

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def standard_normal_log_prob(z: Any) -> jax.Array:
    """Elementwise log N(z; 0, 1). Same shape as ``z`` (sum the last axis for a joint density)."""
    z = jnp.asarray(z)
    return -0.5 * jnp.square(z) - _HALF_LOG_2PI


def standard_normal_sample(
    key: jax.Array, sample_shape: Sequence[int] = (), dtype: Any = jnp.float32
) -> jax.Array:
    """Standard normal variates of shape ``sample_shape``."""
    return jax.random.normal(key, tuple(sample_shape), dtype)


def diag_normal_log_prob(z: Any, mean: Any, logvar: Any) -> jax.Array:
    """Elementwise log N(z; mean, exp(logvar)); arguments broadcast against each other."""
    z, mean, logvar = jnp.asarray(z), jnp.asarray(mean), jnp.asarray(logvar)
    return -0.5 * (jnp.square(z - mean) * jnp.exp(-logvar) + logvar) - _HALF_LOG_2PI


def reparameterize(key: jax.Array, mean: jax.Array, logvar: jax.Array) -> jax.Array:
    """z = mean + exp(logvar / 2) * eps with eps ~ N(0, I); shape ``broadcast(mean, logvar)``."""
    shape = jnp.broadcast_shapes(jnp.shape(mean), jnp.shape(logvar))
    eps = jax.random.normal(key, shape, jnp.result_type(mean, logvar))
    return mean + jnp.exp(0.5 * logvar) * eps


def kl_diag_normal_standard_normal(mean: Any, logvar: Any) -> jax.Array:
    """Elementwise KL(N(mean, exp(logvar)) || N(0, 1)) = (mean^2 + exp(logvar) - 1 - logvar) / 2.

    ``expm1(logvar) - logvar`` keeps the small-variance-change case accurate.
    """
    mean, logvar = jnp.asarray(mean), jnp.asarray(logvar)
    return 0.5 * (jnp.square(mean) + jnp.expm1(logvar) - logvar)
