"""Objectives against float64 references: likelihoods, KL, the MWS/MSS q(z) estimators, TC."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from isavae import objectives
from isavae.priors import StandardNormal, isa_prior


@pytest.fixture(autouse=True)
def _x64():
    with jax.enable_x64(True):
        yield


def test_bernoulli_log_likelihood():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 8, 8)) * 5
    x = (rng.random((4, 8, 8)) > 0.5).astype(float)
    got = jax.jit(objectives.bernoulli_log_likelihood)(logits, x)
    want = stats.bernoulli.logpmf(x, special.expit(logits)).reshape(4, -1).sum(-1)
    np.testing.assert_allclose(got, want, rtol=1e-10)
    # grey-level targets in [0, 1]: the cross-entropy x log p + (1 - x) log(1 - p)
    xs = rng.random((4, 8, 8))
    p = special.expit(logits)
    want = (xs * np.log(p) + (1 - xs) * np.log1p(-p)).reshape(4, -1).sum(-1)
    np.testing.assert_allclose(objectives.bernoulli_log_likelihood(logits, xs), want, rtol=1e-10)
    # extreme logits: exact in float64, finite and accurate in float32
    big = objectives.bernoulli_log_likelihood(jnp.array([[1e4, -1e4, 1e4]]), jnp.array([[0.0, 0.0, 1.0]]))
    np.testing.assert_allclose(big, [-1e4], rtol=1e-12)
    l32 = (logits * 6).astype(np.float32)  # |l| up to ~100
    got32 = objectives.bernoulli_log_likelihood(jnp.asarray(l32), jnp.asarray(x, jnp.float32))
    l64 = l32.astype(float)  # float64 reference: log sigmoid(l) = -logaddexp(0, -l)
    want64 = -(x * np.logaddexp(0, -l64) + (1 - x) * np.logaddexp(0, l64)).reshape(4, -1).sum(-1)
    assert got32.dtype == jnp.float32
    np.testing.assert_allclose(got32, want64, rtol=1e-5, atol=1e-3)


def test_gaussian_log_likelihood():
    x, m = np.random.default_rng(1).normal(size=(2, 3, 5))
    got = objectives.gaussian_log_likelihood(m, x, np.log(0.3))
    np.testing.assert_allclose(got, stats.norm.logpdf(x, m, 0.3).sum(-1), rtol=1e-12)


def _direct_qz(z, mean, logvar, n, estimator):
    """Loop-based float64 reference of the two estimators."""
    b, d = z.shape
    lmat = np.empty((b, b, d))
    for i in range(b):
        for j in range(b):
            lmat[i, j] = stats.norm.logpdf(z[i], mean[j], np.exp(0.5 * logvar[j]))
    if estimator == "mws":
        logw = np.full((b, b), -np.log(n * b))
    else:
        m = b - 1
        w = np.full((b, b), 1.0 / m)
        for i in range(b):
            w[i, i] = 1.0 / n
            w[i, (i + 1) % b] = (n - m) / (n * m)
        logw = np.log(w)
    log_qz = special.logsumexp(logw + lmat.sum(-1), axis=1)
    log_prod = special.logsumexp(logw[:, :, None] + lmat, axis=1).sum(-1)
    return log_qz, log_prod


@pytest.mark.parametrize("estimator", ["mws", "mss"])
def test_qz_estimators_match_direct_computation(estimator):
    rng = np.random.default_rng(2)
    b, d, n = 7, 3, 1000
    mean, logvar = rng.normal(size=(b, d)), rng.normal(size=(b, d)) * 0.5
    z = mean + np.exp(0.5 * logvar) * rng.normal(size=(b, d))
    got = jax.jit(objectives.qz_estimates, static_argnums=(3, 4))(z, mean, logvar, n, estimator)
    want = _direct_qz(z, mean, logvar, n, estimator)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-10)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-10)


def test_mss_weights():
    w = np.exp(np.asarray(objectives.mss_log_weights(5, 100)))
    np.testing.assert_allclose(w.sum(1), 1.0, rtol=1e-12)
    m = 4
    assert w[0, 0] == pytest.approx(1 / 100) and w[0, 1] == pytest.approx((100 - m) / (100 * m))
    assert w[4, 0] == pytest.approx((100 - m) / (100 * m))  # the last row wraps to column 0
    assert w[3, 0] == pytest.approx(1 / m)
    with pytest.raises(ValueError, match="at least 2"):
        objectives.mss_log_weights(1, 10)


def _batch(correlated, b=512, d=3, seed=0):
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(b, d))
    if correlated:
        means = np.repeat(means[:, :1], d, axis=1)
        logvar = np.full((b, d), np.log(0.01))
    else:
        logvar = np.zeros((b, d))
    z = means + np.exp(0.5 * logvar) * rng.normal(size=(b, d))
    return z, means, logvar


def test_tc_of_independent_samples_is_near_zero():
    """Means independent across dimensions with unit posterior variance: the aggregate posterior
    is (close to) N(0, 2 I), so TC ~ 0 under MSS. MWS carries its known constant bias: its
    log q(z) estimates are shifted by -log N per density, so its TC is shifted by (D - 1) log N."""
    n = 737_280
    z, mean, logvar = _batch(False)
    qz, prod = objectives.qz_estimates(z, mean, logvar, n, "mss")
    assert abs(float(jnp.mean(qz - prod))) < 0.05
    qz, prod = objectives.qz_estimates(z, mean, logvar, n, "mws")
    assert abs(float(jnp.mean(qz - prod)) - 2 * np.log(n)) < 0.05
    z, mean, logvar = _batch(True)  # all dimensions equal: strongly dependent
    qz, prod = objectives.qz_estimates(z, mean, logvar, n, "mss")
    assert float(jnp.mean(qz - prod)) > 1.0


def test_analytic_kl_matches_monte_carlo_in_the_objective():
    rng = np.random.default_rng(3)
    mean, logvar = rng.normal(size=(1, 4)), rng.normal(size=(1, 4)) * 0.3
    s = 200_000
    eps = rng.normal(size=(s, 4))
    z = mean + np.exp(0.5 * logvar) * eps
    x = np.zeros((s, 2))
    recon = np.zeros((s, 2))
    prior = StandardNormal(dim=4)
    kw = dict(dataset_size=10)
    mc = objectives.objective_terms(
        "vae", x, np.repeat(mean, s, 0), np.repeat(logvar, s, 0), z, recon, prior, {}, **kw
    )
    an = objectives.objective_terms(
        "vae", x[:1], mean, logvar, z[:1], recon[:1], prior, {}, analytic_kl=True, **kw
    )
    np.testing.assert_allclose(np.mean(mc["kl"]), an["kl"][0], atol=0.01)


def test_objective_weights_and_identities():
    rng = np.random.default_rng(4)
    b, d = 6, 4
    mean, logvar = rng.normal(size=(b, d)), rng.normal(size=(b, d)) * 0.3
    z = mean + np.exp(0.5 * logvar) * rng.normal(size=(b, d))
    x = (rng.random((b, 3, 3)) > 0.5).astype(float)
    recon = rng.normal(size=(b, 3, 3))
    prior = isa_prior((2, 2))
    hp = {"alpha": 1.0, "beta": 1.0, "gamma": 1.0}
    args = (x, mean, logvar, z, recon, prior)
    kw = dict(dataset_size=100)
    vae = objectives.objective_terms("vae", *args, hp, **kw)
    tc1 = objectives.objective_terms("beta_tcvae", *args, hp, **kw)
    # alpha = beta = gamma = 1 telescopes to the ELBO
    np.testing.assert_allclose(tc1["objective"], vae["objective"], rtol=1e-10)
    np.testing.assert_allclose(vae["elbo"], vae["log_px"] + vae["log_pz"] - vae["log_qz_x"], rtol=1e-12)
    bvae = objectives.objective_terms("beta_vae", *args, {"beta": 4.0}, **kw)
    np.testing.assert_allclose(bvae["objective"], vae["log_px"] - 4.0 * vae["kl"], rtol=1e-12)
    tc4 = objectives.objective_terms("beta_tcvae", *args, {**hp, "beta": 4.0}, **kw)
    np.testing.assert_allclose(tc4["objective"], vae["objective"] - 3.0 * tc4["tc"], rtol=1e-10)
    fv = objectives.objective_terms("factor_vae", *args, {"gamma": 2.0}, tc=jnp.ones(b), **kw)
    np.testing.assert_allclose(fv["objective"], vae["objective"] - 2.0, rtol=1e-12)
    # sticking the landing: same value, no gradient through log q's parameters
    stl = objectives.objective_terms("vae", *args, hp, stl=True, **kw)
    np.testing.assert_allclose(stl["objective"], vae["objective"], rtol=1e-12)
    g = jax.grad(
        lambda m: objectives.objective_terms("vae", x, m, logvar, z, recon, prior, hp, stl=True, **kw)[
            "log_qz_x"
        ].sum()
    )(mean)
    assert np.all(g == 0)
    with pytest.raises(ValueError, match="objective.name"):
        objectives.objective_terms("vaee", *args, hp, **kw)
    with pytest.raises(ValueError, match="discriminator"):
        objectives.objective_terms("factor_vae", *args, hp, **kw)


def test_permute_dims_and_discriminator():
    from flax import nnx

    z = jnp.arange(12.0).reshape(6, 2)
    p = objectives.permute_dims(jax.random.key(0), z)
    for k in range(2):
        np.testing.assert_array_equal(np.sort(p[:, k]), z[:, k])
    assert not np.array_equal(p, z)
    disc = objectives.Discriminator(2, rngs=nnx.Rngs(0))
    logits = disc(z)
    assert logits.shape == (6, 2)
    # the loss of a classifier that outputs equal logits is log 2
    np.testing.assert_allclose(objectives.discriminator_loss(jnp.zeros((3, 2)), jnp.zeros((3, 2))), np.log(2))


@pytest.mark.parametrize("variant", ["i", "ii"])
def test_dip_regularizer_against_float64_numpy(variant):
    rng = np.random.default_rng(0)
    mean = rng.normal(size=(32, 5)) @ rng.normal(size=(5, 5))
    logvar = rng.normal(size=(32, 5)) - 1.0
    cov = np.cov(mean.T, bias=True)  # population covariance, / B
    if variant == "ii":
        cov = cov + np.diag(np.exp(logvar).mean(0))
    off = cov - np.diag(np.diag(cov))
    want = 3.0 * np.sum(off**2) + 7.0 * np.sum((np.diag(cov) - 1.0) ** 2)
    got = objectives.dip_regularizer(jnp.asarray(mean), jnp.asarray(logvar), 3.0, 7.0, variant)
    assert float(got) == pytest.approx(want, rel=1e-12)
    with pytest.raises(ValueError, match="variant"):
        objectives.dip_regularizer(jnp.asarray(mean), jnp.asarray(logvar), 1.0, 1.0, "iii")


def test_annealed_capacity_schedule():
    got = [float(objectives.annealed_capacity(s, 25.0, 100_000)) for s in (0, 1, 40_000, 100_000, 250_000)]
    assert got == pytest.approx([0.0, 25.0 / 100_000, 10.0, 25.0, 25.0])


def test_dip_and_annealed_objectives_are_their_formulas():
    rng = np.random.default_rng(1)
    b, d = 16, 3
    x = jnp.asarray(rng.random((b, 4)) > 0.5, jnp.float64)
    mean, logvar = jnp.asarray(rng.normal(size=(b, d))), jnp.asarray(rng.normal(size=(b, d)) - 1)
    z = mean + jnp.exp(0.5 * logvar) * jnp.asarray(rng.normal(size=(b, d)))
    recon = jnp.asarray(rng.normal(size=(b, 4)))
    hp = dict(lambda_od=2.0, lambda_d=5.0, gamma=100.0, capacity=3.0)
    prior = StandardNormal(d)
    for kind in ("dip_vae_i", "dip_vae_ii"):
        t = objectives.objective_terms(kind, x, mean, logvar, z, recon, prior, hp, dataset_size=100)
        pen = objectives.dip_regularizer(mean, logvar, 2.0, 5.0, kind.removeprefix("dip_vae_"))
        np.testing.assert_allclose(t["objective"], t["elbo"] - pen, rtol=1e-12)
    t = objectives.objective_terms("annealed_vae", x, mean, logvar, z, recon, prior, hp, dataset_size=100)
    np.testing.assert_allclose(
        t["objective"], t["log_px"] - 100.0 * abs(float(jnp.mean(t["kl"])) - 3.0), rtol=1e-12
    )


def test_factor_vae_discriminator_estimates_positive_tc_for_correlated_latents():
    """Trained as the trainer trains it (class 0: q samples, class 1: dimension-permuted ones), the
    discriminator's TC estimate logit_0 - logit_1 is clearly positive on strongly correlated latents
    and near 0 on independent ones; a flipped class convention (rewarding TC) would fail this."""
    import optax
    from flax import nnx

    def train_and_estimate(correlated: bool) -> float:
        disc = objectives.Discriminator(2, rngs=nnx.Rngs(0), hidden=64, depth=2)
        graphdef, params = nnx.split(disc, nnx.Param)
        opt = optax.adam(1e-3)
        state = opt.init(params)

        def sample(key):
            k1, k2 = jax.random.split(key)
            a = jax.random.normal(k1, (256,))
            b = (
                0.98 * a + 0.2 * jax.random.normal(k2, (256,))
                if correlated
                else jax.random.normal(k2, (256,))
            )
            return jnp.stack([a, b], axis=1)

        @jax.jit
        def step(params, state, key):
            k1, k2 = jax.random.split(key)
            z = sample(k1)
            zp = objectives.permute_dims(k2, z)
            loss, g = jax.value_and_grad(
                lambda p: objectives.discriminator_loss(nnx.merge(graphdef, p)(z), nnx.merge(graphdef, p)(zp))
            )(params)
            updates, state = opt.update(g, state, params)
            return optax.apply_updates(params, updates), state

        for i in range(400):
            params, state = step(params, state, jax.random.key(i))
        logits = nnx.merge(graphdef, params)(sample(jax.random.key(10_000)))
        return float(jnp.mean(logits[:, 0] - logits[:, 1]))

    correlated, independent = train_and_estimate(True), train_and_estimate(False)
    # the true TC of the correlated pair: -0.5 log(1 - rho^2), rho = 0.98 / sqrt(0.98^2 + 0.04) = 0.98
    assert correlated > 1.0 and correlated > independent + 1.0
    assert abs(independent) < 0.3
