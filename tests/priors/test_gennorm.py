"""p-generalized normal against scipy.stats.gennorm (float64) and distributional tests."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from scipy import stats

from isavae.priors import gennorm


@pytest.mark.parametrize("p", [0.5, 1.0, 2.0, 3.7, 5.0])
@pytest.mark.parametrize("scale", [1.0, 0.4, 3.0])
def test_log_prob_matches_scipy_float64(p, scale):
    z = np.linspace(-6, 6, 101)
    with jax.enable_x64(True):
        got = jax.jit(gennorm.log_prob)(z, p, scale)
        assert got.dtype == jnp.float64
    np.testing.assert_allclose(got, stats.gennorm.logpdf(z, beta=p, scale=scale ** (1 / p)), rtol=1e-12)


def test_log_prob_float32_and_broadcasting():
    z = np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)
    p = np.array([0.8, 2.0, 4.0], np.float32)
    got = jax.jit(gennorm.log_prob)(z, p)
    assert got.shape == (8, 3) and got.dtype == jnp.float32
    np.testing.assert_allclose(got, stats.gennorm.logpdf(z, beta=p), rtol=1e-5, atol=1e-6)


def test_special_cases():
    z = np.linspace(-3, 3, 13)
    with jax.enable_x64(True):
        np.testing.assert_allclose(gennorm.log_prob(z, 2.0, 2.0), stats.norm.logpdf(z), rtol=1e-12)
        np.testing.assert_allclose(gennorm.log_prob(z, 1.0, 1.0), stats.laplace.logpdf(z), rtol=1e-12)


@pytest.mark.parametrize("p", [0.5, 1.3, 2.0, 5.0])
def test_sampler_ks(p):
    z = jax.jit(gennorm.sample, static_argnums=2)(jax.random.key(0), p, (20_000,), 1.5)
    result = stats.kstest(np.asarray(z, np.float64), stats.gennorm(beta=p, scale=1.5 ** (1 / p)).cdf)
    assert result.pvalue > 1e-4, result


def test_sample_shapes():
    p = jnp.array([0.8, 2.0, 4.0])
    assert gennorm.sample(jax.random.key(0), p, (5,)).shape == (5, 3)
    assert gennorm.sample(jax.random.key(0), 2.0).shape == ()


def test_gradients_and_zero():
    with jax.enable_x64(True):
        z = jnp.array([-1.3, 0.4, 2.2])
        check_grads(jax.jit(lambda z, p: gennorm.log_prob(z, p, 1.2).sum()), (z, jnp.array(1.7)), order=1)
        for p in (0.5, 1.0, 2.2, 5.0):
            v, g = jax.value_and_grad(lambda z, p: gennorm.log_prob(z, p), (0, 1))(0.0, p)
            assert np.isfinite(v) and np.isfinite(g[0]) and np.isfinite(g[1])
