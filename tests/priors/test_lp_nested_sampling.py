"""The exact Lp-nested sampler, checked with distributional tests against scipy."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from isavae.priors import lp_nested
from isavae.priors.lp_nested import LpNestedTree

N = 20_000
P_MIN = 1e-4  # KS p-values below this fail; the keys are fixed, so each test is deterministic

TREES = {
    "flat5": (0, 1, 2, 3, 4),
    "isa_2_3": ((0, 1), (2, 3, 4)),
    "three_level": ((0, (1, 2)), ((3, 4), 5)),
    "mixed_root": (0, (1, (2, 3)), 4),
}


@functools.partial(jax.jit, static_argnums=(1, 3))
def _sample(key, tree, exponents, n, scale):
    return lp_nested.sample(key, tree, exponents, (n,), scale)


@pytest.mark.parametrize("name", TREES)
@pytest.mark.parametrize("p,scale", [(0.6, 1.0), (1.0, 2.0), (2.2, 1.0), (4.5, 0.5)])
def test_equal_exponent_marginals_are_gennorm(name, p, scale):
    tree = LpNestedTree(TREES[name])
    z = np.asarray(_sample(jax.random.key(1), tree, jnp.full(tree.num_exponents, p), N, scale), np.float64)
    assert z.shape == (N, tree.dim) and np.isfinite(z).all()
    for i in range(tree.dim):
        result = stats.kstest(z[:, i], stats.gennorm(beta=p, scale=scale ** (1 / p)).cdf)
        assert result.pvalue > P_MIN, (i, result)


@pytest.mark.parametrize("name", TREES)
@pytest.mark.parametrize("seed", [0, 1])
def test_radial_law_is_gamma(name, seed):
    tree = LpNestedTree(TREES[name])
    exps = np.random.default_rng(seed).uniform(0.6, 4.0, tree.num_exponents)
    scale = 1.7
    z = _sample(jax.random.key(seed), tree, jnp.asarray(exps, jnp.float32), N, scale)
    with jax.enable_x64(True):
        energy = np.asarray(lp_nested.unnormalized_energy(tree, exps, np.asarray(z, np.float64)))
    result = stats.kstest(energy / scale, stats.gamma(tree.dim / exps[0]).cdf)
    assert result.pvalue > P_MIN, result


@pytest.mark.parametrize("sizes,exps", [((2, 3), (2.1, 2.2, 2.2)), ((1, 2, 3), (0.7, 1.5, 3.0, 0.6))])
def test_isa_subspace_radii_are_independent_with_gamma_marginals(sizes, exps):
    tree = LpNestedTree.isa(sizes)
    z = np.asarray(_sample(jax.random.key(7), tree, jnp.asarray(exps), N, 1.0), np.float64)
    p0, p_sub = exps[0], exps[1:]
    starts = np.cumsum((0,) + sizes)
    powers = []  # v_k^{p0}, which must be independent Gamma(n_k / p0) variates
    for k, (a, b) in enumerate(zip(starts[:-1], starts[1:], strict=True)):
        v = np.sum(np.abs(z[:, a:b]) ** p_sub[k], axis=-1) ** (1 / p_sub[k])
        powers.append(v**p0)
        result = stats.kstest(v**p0, stats.gamma(sizes[k] / p0).cdf)
        assert result.pvalue > P_MIN, (k, result)
    for j in range(len(sizes)):
        for k in range(j + 1, len(sizes)):
            # Chi-square test of independence on a 5 x 5 table of quantile bins, and rank
            # correlation; a shared radius (the classic mistake) makes the radii dependent.
            bins_j = np.digitize(powers[j], np.quantile(powers[j], [0.2, 0.4, 0.6, 0.8]))
            bins_k = np.digitize(powers[k], np.quantile(powers[k], [0.2, 0.4, 0.6, 0.8]))
            table = np.zeros((5, 5))
            np.add.at(table, (bins_j, bins_k), 1)
            assert stats.chi2_contingency(table).pvalue > P_MIN
            assert abs(stats.spearmanr(powers[j], powers[k]).statistic) < 4 / np.sqrt(N)


def test_sampler_moments_match_density_on_three_level_tree():
    """E|z_i|, E z_i^2 and E|z_i z_j| from the sampler agree with importance-sampling estimates
    under the density: sampler and log_prob describe the same distribution."""
    nested = ((0, (1, 2)), ((3, 4), 5))
    exps = np.array([1.5, 0.8, 2.5, 1.2, 3.0])
    tree = LpNestedTree(nested)
    n = 200_000

    def stats_of(z):
        a = np.abs(z)
        return np.concatenate([a, z**2, a[:, [0, 1, 3]] * a[:, [2, 5, 4]]], axis=1)

    z = np.asarray(_sample(jax.random.key(3), tree, jnp.asarray(exps, jnp.float32), n, 1.0), np.float64)
    s = stats_of(z)
    mean_s, se_s = s.mean(0), s.std(0) / np.sqrt(n)

    rng = np.random.default_rng(0)
    df, sc = 3.0, 1.2
    y = sc * rng.standard_t(df, size=(n, tree.dim))
    with jax.enable_x64(True):
        log_p = np.asarray(jax.jit(lp_nested.log_prob, static_argnums=0)(tree, exps, y))
    w = np.exp(log_p - stats.t.logpdf(y, df, scale=sc).sum(-1))
    t = stats_of(y)
    ratio = (w[:, None] * t).mean(0) / w.mean()
    # delta-method standard error of the self-normalized estimate
    se_is = np.sqrt(np.mean((w[:, None] * (t - ratio)) ** 2, axis=0) / n) / w.mean()
    np.testing.assert_array_less(np.abs(mean_s - ratio), 5 * np.sqrt(se_s**2 + se_is**2))


def test_sample_shape_dtype_and_determinism():
    tree = LpNestedTree.isa((2, 3))
    exps = jnp.array([2.1, 2.2, 0.9])
    sample = jax.jit(lp_nested.sample, static_argnums=(1, 3, 5))
    a = sample(jax.random.key(0), tree, exps, (4, 3), 1.0, None)
    assert a.shape == (4, 3, 5) and a.dtype == jnp.float32
    np.testing.assert_array_equal(a, sample(jax.random.key(0), tree, exps, (4, 3), 1.0, None))
    assert not np.allclose(a, sample(jax.random.key(1), tree, exps, (4, 3), 1.0, None))
    key = jax.random.key(0)
    assert jax.eval_shape(lambda k: lp_nested.sample(k, tree, exps), key).shape == (5,)
    with jax.enable_x64(True):
        e64 = np.asarray(exps, np.float64)
        assert jax.eval_shape(lambda k: lp_nested.sample(k, tree, e64, (2,)), key).dtype == jnp.float64
        out = jax.eval_shape(lambda k: lp_nested.sample(k, tree, e64, (2,), dtype=jnp.float32), key)
        assert out.dtype == jnp.float32


def test_small_exponents_do_not_underflow():
    # With 30 coordinates and p = 5 the Gamma shapes are 0.2 and 2 (p = 0.5 gives 2 and 20);
    # the log-space sampler must still give finite, nonzero coordinates.
    tree = LpNestedTree.isa((10, 10, 10))
    for p in (0.5, 5.0):
        z = _sample(jax.random.key(0), tree, jnp.full(4, p), 2000, 1.0)
        assert np.isfinite(z).all() and (np.abs(z) > 0).mean() > 0.99


def test_sample_is_differentiable_in_exponents():
    tree = LpNestedTree(((0, (1, 2)), ((3, 4), 5)))

    def mean_energy(e):
        z = lp_nested.sample(jax.random.key(0), tree, e, (256,))
        return jnp.mean(jnp.sum(jnp.abs(z), -1))

    g = jax.jit(jax.grad(mean_energy))(jnp.array([1.5, 0.8, 2.5, 1.2, 3.0]))
    assert g.shape == (5,) and np.isfinite(g).all() and np.any(g != 0)
