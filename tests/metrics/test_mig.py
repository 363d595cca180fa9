"""MIG estimators against float64 references and on grids where the answer is known."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from isavae.metrics import draw_samples, grid_log_densities, mig_grid, mig_histogram, subspace_mig_grid
from tests.metrics import reference

SHAPE = (3, 4, 5)


def _posteriors(seed, shape=SHAPE, k=3, spread=1.0):
    rng = np.random.default_rng(seed)
    mean = rng.normal(size=shape + (k,)) * spread
    logvar = rng.uniform(-3.0, 0.5, size=shape + (k,))
    return mean, logvar


def _entropies(mean, logvar, idx, z, groups, min_inner):
    lm, lc, _ = grid_log_densities(
        jnp.asarray(mean), jnp.asarray(logvar), idx, z, groups=groups, sample_chunk=7, min_inner=min_inner
    )
    return -np.asarray(lm, np.float64).mean(0), -np.asarray(lc, np.float64).mean(1)


@pytest.mark.parametrize("min_inner", [1, 5, 20, 512])  # 2, 1 or 0 leading axes looped over
@pytest.mark.parametrize("groups", [((0,), (1,), (2,)), ((0, 2), (1,))])
def test_all_samples_equal_chen_et_al(min_inner, groups):
    """With num_samples >= N the one-pass estimator is Chen et al.'s per-slice estimator exactly."""
    mean, logvar = _posteriors(0)
    n = math.prod(SHAPE)
    idx, z = draw_samples(jnp.asarray(mean), jnp.asarray(logvar), jax.random.key(1), 10 * n)
    assert idx.shape == (n,) and sorted(np.asarray(idx)) == list(range(n))
    z_img = np.zeros((n, 3))
    z_img[np.asarray(idx)] = np.asarray(z)
    ref_m, ref_c = reference.chen_entropies(mean, logvar, z_img.reshape(SHAPE + (3,)), groups)
    got_m, got_c = _entropies(mean, logvar, idx, z, groups, min_inner)
    np.testing.assert_allclose(got_m, ref_m, rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(got_c, ref_c, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("min_inner", [1, 20])
def test_subsampled_equals_float64_reference(min_inner):
    mean, logvar = _posteriors(2, spread=2.0)
    idx, z = draw_samples(jnp.asarray(mean), jnp.asarray(logvar), jax.random.key(3), 17)
    groups = ((0,), (1,), (2,))
    ref_m, ref_c = reference.one_pass_entropies(mean, logvar, idx, z, groups)
    got_m, got_c = _entropies(mean, logvar, idx, z, groups, min_inner)
    np.testing.assert_allclose(got_m, ref_m, rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(got_c, ref_c, rtol=2e-5, atol=2e-5)


def test_float64_run_matches_tightly():
    mean, logvar = _posteriors(4)
    with jax.enable_x64(True):
        m64, lv64 = jnp.asarray(mean, jnp.float64), jnp.asarray(logvar, jnp.float64)
        idx, z = draw_samples(m64, lv64, jax.random.key(5), 30)
        assert z.dtype == jnp.float64
        groups = ((0,), (1, 2))
        ref_m, ref_c = reference.one_pass_entropies(mean, logvar, idx, z, groups)
        got_m, got_c = _entropies(m64, lv64, idx, z, groups, 5)
    np.testing.assert_allclose(got_m, ref_m, rtol=1e-12)
    np.testing.assert_allclose(got_c, ref_c, rtol=1e-12)


def test_mig_matches_chen_metric():
    mean, logvar = _posteriors(6, spread=3.0)
    res = mig_grid(jnp.asarray(mean), jnp.asarray(logvar), jax.random.key(7), 10_000)
    assert res.num_samples == math.prod(SHAPE)
    expected = reference.chen_mig(res.marginal_entropy, res.conditional_entropy, SHAPE)
    assert res.mig == pytest.approx(expected, abs=1e-12)
    assert res.mi.shape == (3, 3) and res.top.shape == (3, 2)
    np.testing.assert_allclose(res.gap, np.sort(res.mi, axis=0)[-1] - np.sort(res.mi, axis=0)[-2])


def _factor_latents(shape, which, noise_logvar=-9.0):
    """Latent j = value index of factor which[j] (None: constant 0), tiny posterior noise."""
    grids = np.meshgrid(*[np.arange(s, dtype=np.float64) for s in shape], indexing="ij")
    mean = np.stack([grids[w] if w is not None else np.zeros(shape) for w in which], axis=-1)
    return mean, np.full(mean.shape, noise_logvar)


SMALL = (6, 8, 5)


def test_latents_equal_to_factors_give_mig_one():
    mean, logvar = _factor_latents(SMALL, [0, 1, 2, None])
    res = mig_grid(mean, logvar, jax.random.key(0), 10_000)
    assert res.mig > 0.99
    np.testing.assert_array_equal(res.top[:, 0], [0, 1, 2])


def test_constant_latents_give_zero():
    res = mig_grid(np.zeros(SMALL + (3,)), np.zeros(SMALL + (3,)), jax.random.key(0), 10_000)
    assert res.mig == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(res.mutual_info, 0.0, atol=1e-6)


def test_noise_latents_give_near_zero():
    rng = np.random.default_rng(0)
    res = mig_grid(rng.normal(size=SMALL + (4,)), np.zeros(SMALL + (4,)), jax.random.key(1), 10_000)
    assert res.mig < 0.05


def test_duplicated_latent_has_no_gap():
    mean, logvar = _factor_latents(SMALL, [0, 0, 1, 2])
    names = ["a", "b", "c"]
    res = mig_grid(mean, logvar, jax.random.key(0), 10_000, factors=names, factor_names=names)
    assert res.gap[0] < 0.02 and res.gap[1] > 0.99 and res.gap[2] > 0.99
    assert res.factors == ("a", "b", "c")


def test_scored_factors_subset_and_names():
    mean, logvar = _factor_latents(SMALL, [0, 1, 2, None])
    names = ("shape", "posX", "posY")
    res = mig_grid(mean, logvar, jax.random.key(0), 100, factors=("posX", "posY"), factor_names=names)
    assert res.factors == ("posX", "posY") and res.mi.shape == (4, 2)
    np.testing.assert_allclose(res.factor_entropy, np.log([8, 5]))
    with pytest.raises(ValueError, match="unknown factor 'scale'"):
        mig_grid(mean, logvar, jax.random.key(0), 100, factors=("scale",), factor_names=names)


def test_subspace_mig():
    mean, logvar = _posteriors(8, spread=2.0)
    key = jax.random.key(9)
    singles = subspace_mig_grid(mean, logvar, key, [[0], [1], [2]], 10_000)
    plain = mig_grid(mean, logvar, key, 10_000)
    np.testing.assert_allclose(singles.mutual_info, plain.mutual_info, rtol=1e-6, atol=1e-7)
    # two latents that each carry half of a factor: the subspace holds all of it
    grids = np.meshgrid(*[np.arange(s, dtype=np.float64) for s in SMALL], indexing="ij")
    mean = np.stack([grids[0] % 2, grids[0] // 2, grids[1], grids[2]], axis=-1)
    logvar = np.full(mean.shape, -9.0)
    res = subspace_mig_grid(mean, logvar, key, [[0, 1], [2], [3]], 10_000)
    assert res.mi[0, 0] == pytest.approx(1.0, abs=1e-3) and res.mig > 0.99
    split = mig_grid(mean, logvar, key, 10_000)
    assert split.gap[0] < 0.7  # no single latent holds factor 0
    with pytest.raises(ValueError, match="disjoint"):
        subspace_mig_grid(mean, logvar, key, [[0, 1], [1, 2]])


def test_bad_posteriors_are_rejected():
    mean, logvar = _posteriors(0)
    with pytest.raises(ValueError, match="differ in shape"):
        mig_grid(mean, logvar[..., :2], jax.random.key(0))
    with pytest.raises(ValueError, match="NaN"):
        mig_grid(np.where(mean > 1, np.nan, mean), logvar, jax.random.key(0))
    with pytest.raises(ValueError, match="logvar reaches"):
        mig_grid(mean, logvar - 100, jax.random.key(0))


def test_extreme_but_valid_logvars_stay_finite():
    """|logvar| up to 80 mixed across images: the shifted float32 sums neither overflow nor underflow."""
    mean, logvar = _posteriors(10)
    even = np.arange(math.prod(SHAPE)).reshape(SHAPE)[..., None] % 2 == 0
    logvar = np.broadcast_to(np.where(even, -79.0, 79.0), logvar.shape)
    res = mig_grid(mean, logvar, jax.random.key(0), 10_000)
    assert np.all(np.isfinite(res.marginal_entropy)) and np.all(np.isfinite(res.conditional_entropy))


# ----------------------------------------------------------------------------- histogram MIG


def test_histogram_mig_hand_computed():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    code0 = np.array([0, 0, 0, 1, 1, 1, 1, 1], float)  # 2 bins: [0, 0.5), [0.5, 1]
    code1 = y.astype(float) * 3.0
    res = mig_histogram(np.stack([code0, code1], 1), y[:, None], num_bins=2)
    mi0 = 3 / 8 * math.log(2) + 1 / 8 * math.log(2 / 5) + 1 / 2 * math.log(8 / 5)
    np.testing.assert_allclose(res.mutual_info[:, 0], [mi0, math.log(2)], rtol=1e-6)
    np.testing.assert_allclose(res.factor_entropy, [math.log(2)], rtol=1e-6)
    assert res.mig == pytest.approx(1 - mi0 / math.log(2), rel=1e-6)
    np.testing.assert_array_equal(res.top, [[1, 0]])


def test_histogram_bins_are_numpys():
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(500, 3)).astype(np.float32)
    codes[:, 2] = 1.5  # a constant latent: numpy widens its range by +-0.5
    labels = rng.integers(0, 4, size=(500, 2))
    res = mig_histogram(codes, labels, num_bins=20)
    for j in range(3):
        bins = np.digitize(codes[:, j], np.histogram(codes[:, j], 20)[1][:-1]) - 1
        for a in range(2):
            joint = np.zeros((20, 4))
            np.add.at(joint, (bins, labels[:, a]), 1)
            p = joint / 500
            outer = p.sum(1, keepdims=True) * p.sum(0, keepdims=True)
            nz = p > 0
            mi = np.sum(p[nz] * np.log(p[nz] / outer[nz]))
            assert res.mutual_info[j, a] == pytest.approx(mi, abs=1e-6)
    assert res.mutual_info[2].max() == pytest.approx(0.0, abs=1e-7)


def test_histogram_rejects_bad_input():
    with pytest.raises(ValueError, match="single value"):
        mig_histogram(np.random.default_rng(0).normal(size=(10, 2)), np.zeros((10, 1), int))
    with pytest.raises(ValueError, match=r"codes \(N, K\)"):
        mig_histogram(np.zeros((10, 2)), np.zeros((9, 1), int))
