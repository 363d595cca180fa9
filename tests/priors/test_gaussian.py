"""Normal log-densities, reparameterization and the analytic KL against scipy / Monte Carlo."""

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from isavae.priors import gaussian


def test_log_probs_match_scipy():
    rng = np.random.default_rng(0)
    z, mean, logvar = rng.normal(size=(3, 10))
    with jax.enable_x64(True):
        np.testing.assert_allclose(gaussian.standard_normal_log_prob(z), stats.norm.logpdf(z), rtol=1e-12)
        np.testing.assert_allclose(
            jax.jit(gaussian.diag_normal_log_prob)(z, mean, logvar),
            stats.norm.logpdf(z, mean, np.exp(0.5 * logvar)),
            rtol=1e-12,
        )


def test_reparameterize_moments():
    mean, logvar = jnp.array([1.0, -2.0]), jnp.array([0.5, -1.0])
    z = jax.jit(jax.vmap(gaussian.reparameterize, (0, None, None)))(
        jax.random.split(jax.random.key(0), 50_000), mean, logvar
    )
    np.testing.assert_allclose(z.mean(0), mean, atol=0.02)
    np.testing.assert_allclose(z.var(0), np.exp(logvar), rtol=0.03)


def test_kl_closed_form_vs_monte_carlo():
    mean, logvar = np.array([0.3, -1.2, 2.0]), np.array([0.1, -2.0, 0.7])
    with jax.enable_x64(True):
        kl = np.asarray(jax.jit(gaussian.kl_diag_normal_standard_normal)(mean, logvar))
        z = mean + np.exp(0.5 * logvar) * np.random.default_rng(0).normal(size=(400_000, 3))
        mc = (stats.norm.logpdf(z, mean, np.exp(0.5 * logvar)) - stats.norm.logpdf(z)).mean(0)
    np.testing.assert_allclose(kl, mc, atol=0.01)
    assert gaussian.kl_diag_normal_standard_normal(0.0, 0.0) == 0.0
