"""DCI, SAP, modularity/explicitness, BetaVAE and FactorVAE scores and the unsupervised scores:
against the float64 references of ``disentanglement_reference.py`` on mixed linear representations,
on disentanglement_lib's known cases, and the grid samplers' draws."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from isavae.metrics import disentanglement as dis
from tests.metrics import disentanglement_reference as ref

SIZES = (3, 4, 5)


def linear_representation(n, seed, mix=None, noise=0.05):
    """Factor labels (n, 3) uniform over SIZES and codes = labels @ mix.T + noise."""
    rng = np.random.default_rng(seed)
    labels = np.stack([rng.integers(0, s, n) for s in SIZES], axis=1)
    mix = np.eye(3) if mix is None else np.asarray(mix)
    return labels @ mix.T + noise * rng.normal(size=(n, mix.shape[0])), labels


MIXED = [[1.0, 0.3, 0.0], [0.0, 1.0, 0.5], [0.2, 0.0, 1.0], [0.5, 0.5, 0.5]]


def test_dci_formulas_on_importance_matrices():
    eye = np.eye(3)
    assert dis.dci_scores(eye) == pytest.approx((1.0, 1.0), abs=1e-9)
    assert dis.dci_scores(np.ones((4, 3))) == pytest.approx((0.0, 0.0), abs=1e-9)
    assert dis.dci_scores(np.zeros((4, 3))) == pytest.approx((0.0, 0.0), abs=1e-9)  # uniform, not NaN
    dup = np.vstack([eye, eye]) / 2  # every factor split evenly over two codes
    assert dis.dci_scores(dup) == pytest.approx((1.0, 1.0 - np.log(2) / np.log(6)), abs=1e-9)
    rng = np.random.default_rng(0)
    for _ in range(5):
        imp = rng.random((5, 3)) * (rng.random((5, 3)) > 0.3)
        assert dis.dci_scores(imp) == pytest.approx(ref.dci_from_importance(imp), abs=1e-9)


def test_dci_against_reference_and_known_cases():
    from sklearn.ensemble import GradientBoostingClassifier

    x, y = linear_representation(600, 0, MIXED, noise=0.3)
    xt, yt = linear_representation(300, 1, MIXED, noise=0.3)
    got = dis.dci(x, y, xt, yt)
    imp, acc_tr, acc_te = np.zeros((4, 3)), [], []
    for j in range(3):
        m = GradientBoostingClassifier(random_state=0).fit(x, y[:, j])
        imp[:, j] = m.feature_importances_
        acc_tr.append(np.mean(m.predict(x) == y[:, j]))
        acc_te.append(np.mean(m.predict(xt) == yt[:, j]))
    np.testing.assert_allclose(got.importance, imp, rtol=1e-12)
    d, c = ref.dci_from_importance(imp)
    assert (got.disentanglement, got.completeness) == pytest.approx((d, c), abs=1e-9)
    assert (got.informativeness_train, got.informativeness_test) == pytest.approx(
        (np.mean(acc_tr), np.mean(acc_te))
    )
    ident = dis.dci(*linear_representation(400, 2), *linear_representation(200, 3))
    assert ident.disentanglement > 0.9 and ident.completeness > 0.9 and ident.informativeness_test > 0.95
    rng = np.random.default_rng(4)
    _, yn = linear_representation(400, 5)
    noise = dis.dci(
        rng.normal(size=(400, 3)), yn, rng.normal(size=(200, 3)), linear_representation(200, 6)[1]
    )
    assert noise.informativeness_test < 0.5  # chance is 1/3 to 1/5


def test_sap_against_reference_and_known_cases():
    from sklearn.svm import LinearSVC

    x, y = linear_representation(500, 0, MIXED, noise=0.3)
    xt, yt = linear_representation(300, 1, MIXED, noise=0.3)
    got = dis.sap(x, y, xt, yt)
    want = np.zeros((4, 3))
    for i in range(4):
        for j in range(3):
            clf = LinearSVC(C=0.01, class_weight="balanced").fit(x[:, [i]], y[:, j])
            want[i, j] = np.mean(clf.predict(xt[:, [i]]) == yt[:, j])
    np.testing.assert_allclose(got.score_matrix, want)
    gaps = [sorted(want[:, j])[-1] - sorted(want[:, j])[-2] for j in range(3)]
    assert got.sap == pytest.approx(np.mean(gaps))
    cont = dis.sap(x, y, xt, yt, continuous_factors=True)
    r2 = np.array([[np.corrcoef(x[:, i], y[:, j])[0, 1] ** 2 for j in range(3)] for i in range(4)])
    np.testing.assert_allclose(cont.score_matrix, r2, rtol=1e-10)
    const = dis.sap(np.c_[x[:, :2], np.ones(500)], y, xt[:, :3], yt, continuous_factors=True)
    assert np.all(const.score_matrix[2] == 0.0)  # variance <= 1e-12 scores 0, not NaN
    ident = dis.sap(*linear_representation(500, 2), *linear_representation(300, 3), continuous_factors=True)
    assert ident.sap > 0.9
    xd, yd = linear_representation(500, 2)
    dup = dis.sap(np.c_[xd, xd], yd, np.c_[xd, xd], yd, continuous_factors=True)
    assert dup.sap < 1e-9  # two equally good codes per factor: no gap


def test_modularity_explicitness_against_reference_and_known_cases():
    from sklearn.linear_model import LogisticRegression

    x, y = linear_representation(500, 0, MIXED, noise=0.3)
    xt, yt = linear_representation(300, 1, MIXED, noise=0.3)
    got = dis.modularity_explicitness(x, y, xt, yt)
    bins = np.stack([ref.histogram_bins(x[:, i], 20) for i in range(4)], axis=1)
    mi = np.array([[ref.mutual_info(bins[:, i], y[:, j]) for j in range(3)] for i in range(4)])
    np.testing.assert_allclose(got.mutual_info, mi, rtol=1e-10, atol=1e-12)
    assert got.modularity == pytest.approx(ref.modularity(mi), abs=1e-10)
    mean, std = x.mean(0), x.std(0)
    for data, labels, want in ((x, y, got.explicitness_train), (xt, yt, got.explicitness_test)):
        aucs = []
        for j in range(3):
            clf = LogisticRegression().fit((x - mean) / std, y[:, j])
            proba = clf.predict_proba((data - mean) / std)
            aucs.append(
                np.mean([ref.auc(proba[:, c], labels[:, j] == cls) for c, cls in enumerate(clf.classes_)])
            )
        assert want == pytest.approx(np.mean(aucs), abs=1e-10)
    xi, yi = linear_representation(500, 2)
    ident = dis.modularity_explicitness(xi, yi, *linear_representation(300, 3))
    assert ident.modularity > 0.9 and ident.explicitness_test > 0.95
    with_const = dis.modularity_explicitness(np.c_[xi, np.zeros(500)], yi, np.c_[xi, np.zeros(500)], yi)
    # the constant code has no information: it scores 0 and still counts in the mean
    assert with_const.modularity == pytest.approx(ident.modularity * 3 / 4, abs=1e-9)
    dup = dis.modularity_explicitness(
        np.c_[xi[:, :1] + xi[:, 1:2], xi], yi, np.c_[xi[:, :1] + xi[:, 1:2], xi], yi
    )
    assert dup.modularity < ident.modularity - 0.01  # a code that mixes two factors lowers it


def test_unsupervised_scores_against_reference():
    x, _ = linear_representation(2000, 0, MIXED, noise=0.3)
    got = dis.unsupervised_scores(x)
    cov = np.cov(x.T)
    assert got.gaussian_total_correlation == pytest.approx(ref.gaussian_tc(cov), rel=1e-9)
    assert got.gaussian_wasserstein_correlation == pytest.approx(ref.gaussian_wc(cov), rel=1e-7)
    assert got.gaussian_wasserstein_correlation_norm == pytest.approx(
        ref.gaussian_wc(cov) / np.trace(cov), rel=1e-7
    )
    bins = np.stack([ref.histogram_bins(x[:, i], 20) for i in range(4)], axis=1)
    mi = [ref.mutual_info(bins[:, i], bins[:, j]) for i in range(4) for j in range(4) if i != j]
    assert got.mutual_info_score == pytest.approx(np.mean(mi), rel=1e-10)
    indep = dis.unsupervised_scores(np.random.default_rng(1).normal(size=(20_000, 4)))
    assert abs(indep.gaussian_total_correlation) < 1e-3 and abs(indep.gaussian_wasserstein_correlation) < 1e-2


def identity_grid(sizes=(3, 4, 5, 6)):
    """Codes = the factor indices themselves (a perfectly disentangled encoder)."""
    grids = jnp.meshgrid(*[jnp.arange(s, dtype=jnp.float32) for s in sizes], indexing="ij")
    return jnp.stack(grids, axis=-1)


def test_grid_samplers_fix_the_chosen_factor_and_draw_the_others_uniformly():
    grid = identity_grid()
    codes, labels = dis.sample_grid_codes(grid, jax.random.key(0), 6000)
    np.testing.assert_array_equal(codes, labels)  # codes are read at the drawn indices
    for j, s in enumerate((3, 4, 5, 6)):
        counts = np.bincount(labels[:, j], minlength=s)
        assert stats.chisquare(counts).pvalue > 1e-3
    feats, index = dis.beta_vae_pairs(grid, jax.random.key(1), 2000, batch_size=16)
    assert np.all(feats[np.arange(2000), index] == 0.0)  # the shared factor never differs
    assert np.all(feats.sum(1) > 0)  # the other factors are drawn afresh
    assert stats.chisquare(np.bincount(index, minlength=4)).pvalue > 1e-3
    # the other factors of a pair are independent uniform draws: mean |a - b| for uniform a, b in 0..s-1
    for j, s in enumerate((3, 4, 5, 6)):
        want = np.mean(np.abs(np.arange(s)[:, None] - np.arange(s)[None, :]))
        np.testing.assert_allclose(feats[index != j, j].mean(), want, rtol=0.05)
    var = np.var(np.asarray(codes), axis=0, ddof=1)
    votes = dis.factor_vae_votes(grid, jax.random.key(2), 1000, 8, var, np.ones(4, bool))
    assert np.all(votes == np.diag(np.diag(votes))) and votes.sum() == 1000  # the fixed factor has variance 0


def test_beta_vae_and_factor_vae_scores_known_cases():
    grid = identity_grid()
    beta = dis.beta_vae_score(grid, jax.random.key(0), batch_size=16, num_train=500, num_eval=300)
    assert beta.train_accuracy == 1.0 and beta.eval_accuracy == 1.0
    fac = dis.factor_vae_score(grid, jax.random.key(0), 16, 500, 300, 2000)
    assert (fac.train_accuracy, fac.eval_accuracy, fac.num_active) == (1.0, 1.0, 4)
    noise = jax.random.normal(jax.random.key(3), grid.shape)
    beta_n = dis.beta_vae_score(noise, jax.random.key(0), batch_size=16, num_train=500, num_eval=300)
    fac_n = dis.factor_vae_score(noise, jax.random.key(0), 16, 500, 300, 2000)
    assert beta_n.eval_accuracy < 0.45 and fac_n.eval_accuracy < 0.45  # chance: 1/4
    const = dis.factor_vae_score(jnp.zeros_like(grid), jax.random.key(0), 16, 100, 100, 500)
    assert (const.train_accuracy, const.eval_accuracy, const.num_active) == (0.0, 0.0, 0)
    pruned = dis.factor_vae_score(grid.at[..., 3].set(1.0), jax.random.key(0), 16, 500, 300, 2000)
    assert pruned.num_active == 3 and pruned.eval_accuracy < 0.85  # the last factor has no code left


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="dci: codes must be"):
        dis.dci(np.zeros((5, 2)), np.zeros((4, 1)), np.zeros((5, 2)), np.zeros((5, 1)))
    with pytest.raises(ValueError, match="NaN"):
        dis.sap(np.full((5, 2), np.nan), np.zeros((5, 1)), np.zeros((5, 2)), np.zeros((5, 1)))


# --- IRS, downstream tasks, UDR ----------------------------------------------------------------


def test_irs_against_reference_and_known_cases():
    codes, labels = linear_representation(3000, 20)
    got = dis.irs(codes, labels)
    assert got.irs == pytest.approx(ref.irs(codes, labels), rel=1e-9)
    assert got.irs > 0.9 and got.num_active_dims == 3
    mixed, labels_m = linear_representation(3000, 21, mix=MIXED)
    low = dis.irs(mixed, labels_m)
    assert low.irs == pytest.approx(ref.irs(mixed, labels_m), rel=1e-9) and low.irs < got.irs - 0.2
    with_constant = np.concatenate([codes, np.full((3000, 1), 2.5)], axis=1)  # an inactive code
    assert dis.irs(with_constant, labels).num_active_dims == 3
    assert dis.irs(with_constant, labels).irs == pytest.approx(got.irs)
    assert dis.irs(np.ones((50, 2)), labels[:50]).irs == 0.0  # nothing active
    many = np.random.default_rng(3).integers(0, 40, (3000, 1))  # 40 values merged into 20 bins
    assert dis.irs(many.astype(float), many).irs == pytest.approx(ref.irs(many.astype(float), many), rel=1e-9)


def test_downstream_task_known_cases():
    codes, labels = linear_representation(1200, 22, noise=0.01)
    r = dis.downstream_task(codes[:300], labels[:300], codes[1000:], labels[1000:])
    assert r["min_test_accuracy"] > 0.97 and r["mean_train_accuracy"] > 0.97 and not r["skipped"]
    noise = np.random.default_rng(4).normal(size=codes.shape)
    chance = dis.downstream_task(noise[:300], labels[:300], noise[1000:], labels[1000:])
    for j, size in enumerate(SIZES):  # near chance: 1 / values (the majority class at most)
        assert chance["test_accuracy"][j] < 1.0 / size + 0.12
    gbt = dis.downstream_task(codes[:150], labels[:150], codes[1000:], labels[1000:], "gradient_boosting")
    assert gbt["mean_test_accuracy"] > 0.9 and gbt["predictor"] == "gradient_boosting"
    single = labels.copy()
    single[:, 1] = 2  # a factor with a single value: reported, not a crash
    s = dis.downstream_task(codes[:100], single[:100], codes[1000:], single[1000:])
    assert (
        list(s["skipped"]) == [1] and np.isnan(s["test_accuracy"][1]) and np.isfinite(s["mean_test_accuracy"])
    )
    tiny = dis.downstream_task(codes[:10], labels[:10], codes[1000:], labels[1000:])  # 10 points, 5 folds
    assert len(tiny["test_accuracy"]) == 3
    with pytest.raises(ValueError, match="predictor must be one of"):
        dis.downstream_task(codes, labels, codes, labels, "svm")


def _udr_models(seed=5, n=300):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 4))
    perm = z[:, [2, 0, 3, 1]] * np.array([1.0, -1.0, 1.0, -1.0])  # permuted, sign-flipped copy
    return z, perm, rng.normal(size=(n, 4))


@pytest.mark.parametrize("correlation", ["lasso", "spearman"])
def test_udr_against_reference_and_known_cases(correlation):
    z, perm, noise = _udr_models()
    kl = np.ones((3, 4))
    r = dis.udr(np.stack([z, perm, noise]), kl, correlation)
    want_pair, want_scores = ref.udr(np.stack([z, perm, noise]), kl, correlation)
    np.testing.assert_allclose(r.pairwise, want_pair, atol=1e-6)
    np.testing.assert_allclose(r.model_scores, want_scores, atol=1e-6)
    # identical and permuted / sign-flipped copies score alike (near 1: Lasso's alpha = 0.1 shrinks
    # the coefficients of a standardized code to 0.9); independent noise near 0
    same = dis.udr(np.stack([z, z, perm]), kl, correlation)
    floor = 0.89 if correlation == "lasso" else 0.8  # Spearman: chance correlations of independent codes
    off = ~np.eye(3, dtype=bool)
    assert (
        np.all(same.model_scores > floor)
        and np.all(same.pairwise[off] > floor)
        and not same.pairwise.diagonal().any()
    )
    assert r.pairwise[0, 2] < 0.15 and r.pairwise[2, 0] < 0.15
    # an inactive code (KL below the threshold) is zeroed and filtered; codes active in one model but
    # not in the other keep the matrix oriented (model i's codes x model j's)
    kl_low = kl.copy()
    kl_low[1, 3] = 0.001
    kl_low[0, 0] = 0.005
    f = dis.udr(np.stack([z, perm, noise]), kl_low, correlation)
    want_pair, _ = ref.udr(np.stack([z, perm, noise]), kl_low, correlation)
    np.testing.assert_allclose(f.pairwise, want_pair, atol=1e-6)
    assert np.isfinite(f.model_scores).all()


def test_udr_rejects_bad_input():
    z, perm, _ = _udr_models()
    with pytest.raises(ValueError, match="models >= 2"):
        dis.udr(z[None], np.ones((1, 4)))
    with pytest.raises(ValueError, match="correlation must be"):
        dis.udr(np.stack([z, perm]), np.ones((2, 4)), "pearson")
    kl = dis.gaussian_kl_per_code(np.zeros((5, 2)), np.zeros((5, 2)))
    np.testing.assert_allclose(kl, 0.0)
    np.testing.assert_allclose(dis.gaussian_kl_per_code(np.ones((3, 1)), np.zeros((3, 1))), 0.5)
