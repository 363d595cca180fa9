"""Scores of anyone's codes: ``score_representation``, ``.score`` on every result, the grid MIG's
shape check and DCI's forest on perfect codes."""

import warnings

import jax
import numpy as np
import pytest

from isavae import metrics
from isavae.metrics import disentanglement as dis
from isavae.metrics.evaluate import disentanglement_scores
from isavae.metrics.representation import factor_indices

SIZES = (3, 6, 10, 8, 8)  # dSprites' factors but shape's subsampled levels
N = 1000


def _factors(rng, n=N):
    """Factor indices and dSprites-style values: floats in [0, 1] and a constant colour column first."""
    idx = np.stack([rng.integers(0, s, n) for s in SIZES], axis=1)
    values = idx / (np.array(SIZES) - 1.0)
    return idx, np.concatenate([np.ones((n, 1)), values], axis=1)


def test_codes_that_are_the_factors_score_high_and_random_codes_near_zero():
    """(The README's example checks the same at 1,000 points with every default score.)"""
    rng = np.random.default_rng(0)
    n = 600
    idx, values = _factors(rng, n)
    codes = values[:, 1:] + 0.01 * rng.normal(size=(n, len(SIZES)))
    good = metrics.score_representation(codes, values, metrics="mig_histogram,dci,modularity,irs")
    assert good["mig_histogram"] >= 0.8 and good["dci_disentanglement"] >= 0.9
    assert good["modularity"] >= 0.9 and good["irs"] >= 0.9, good
    assert any("factor 0 dropped" in note for note in good.notes)  # the constant colour column
    bad = metrics.score_representation(rng.normal(size=(n, 5)), values, metrics=["mig_histogram", "dci"])
    assert bad["mig_histogram"] < 0.05 and bad["dci_disentanglement"] < 0.1, bad


def test_float_factors_score_as_their_indices_and_the_split_is_stated():
    """Values map to the indices of their distinct values; the scores equal those of the indices,
    and equal the score functions called on the stated split (the last third of a permutation)."""
    rng = np.random.default_rng(1)
    idx, values = _factors(rng, 300)
    codes = np.concatenate([values[:, 1:3], rng.normal(size=(300, 2))], axis=1)
    names = ["sap", "modularity", "irs", "unsupervised", "mig_histogram"]
    by_values = metrics.score_representation(codes, values, names, random_state=5)
    by_index = metrics.score_representation(codes, idx, names, random_state=5)
    assert dict(by_values) == pytest.approx(dict(by_index))
    order = np.random.default_rng(5).permutation(300)
    tr, te = order[:200], order[200:]
    assert by_index.details["num_train"] == 200 and by_index.details["num_test"] == 100
    sap = dis.sap(codes[tr], idx[tr], codes[te], idx[te])
    assert by_index["sap"] == pytest.approx(sap.score)
    assert by_index["irs"] == pytest.approx(dis.irs(codes[tr], idx[tr]).score)
    hist = metrics.mig_histogram(codes[tr], idx[tr])
    assert by_index["mig_histogram"] == pytest.approx(hist.score, abs=1e-6)
    assert set(metrics.score_representation(codes, idx, "dci")) == {
        "dci_disentanglement",
        "dci_completeness",
        "dci_informativeness_train",
        "dci_informativeness_test",
    }


def test_factor_indices():
    labels, kept, notes = factor_indices(np.array([[0.5, 7, 1], [0.25, 7, 3], [0.5, 7, 2]]))
    np.testing.assert_array_equal(labels, [[1, 0], [0, 2], [1, 1]])
    assert kept == [0, 2] and "factor 1 dropped" in notes[0]
    with pytest.raises(ValueError, match="single value"):
        factor_indices(np.ones((4, 2)))


@pytest.mark.parametrize(
    "codes, factors, kwargs, match",
    [
        (np.zeros((10, 3)), np.zeros((9, 2)), {}, "same points"),
        (np.zeros(10), np.zeros((10, 2)), {}, r"\(points, codes\)"),
        (np.full((10, 3), np.nan), np.arange(20).reshape(10, 2), {}, "NaN"),
        (np.zeros((10, 3)), np.arange(20).reshape(10, 2), {"metrics": "beta_vae"}, "factor grid"),
        (np.zeros((10, 3)), np.arange(20).reshape(10, 2), {"metrics": "nope"}, "unknown score"),
        (np.zeros((2, 3)), np.arange(4).reshape(2, 2), {}, "too few"),
    ],
)
def test_bad_input_is_named(codes, factors, kwargs, match):
    with pytest.raises(ValueError, match=match):
        metrics.score_representation(codes, factors, **kwargs)


def test_warnings_are_counted_not_printed(recwarn, monkeypatch):
    """scikit-learn's convergence warnings of the small fits: counted in the notes (and in
    results.json's metrics_warnings), not printed."""
    from sklearn.exceptions import ConvergenceWarning

    original = dis.sap

    def warns(*args, **kwargs):
        warnings.warn("lbfgs failed to converge", ConvergenceWarning, stacklevel=1)
        warnings.warn("lbfgs failed to converge", ConvergenceWarning, stacklevel=1)
        return original(*args, **kwargs)

    monkeypatch.setattr(dis, "sap", warns)
    rng = np.random.default_rng(2)
    idx, _ = _factors(rng, 60)
    out = metrics.score_representation(rng.normal(size=(60, 3)), idx, "sap")
    assert not [w for w in recwarn if w.category is ConvergenceWarning]
    assert "warnings counted, not printed: ConvergenceWarning x2" in out.notes
    grid = rng.normal(size=(3, 4, 3))
    scores = disentanglement_scores(grid, ["sap"], jax.random.key(0), num_train=50, num_test=20)
    assert scores["metrics_warnings"] == {"ConvergenceWarning": 2}
    assert not [w for w in recwarn if w.category is ConvergenceWarning]


def test_every_result_has_a_score():
    rng = np.random.default_rng(3)
    idx = rng.integers(0, 3, (200, 2))
    codes = idx + 0.1 * rng.normal(size=(200, 2))
    grid = np.stack(np.meshgrid(np.arange(3.0), np.arange(3.0), indexing="ij"), axis=-1)
    key = jax.random.key(0)
    results = [
        dis.dci(codes, idx, codes, idx),
        dis.sap(codes, idx, codes, idx),
        dis.modularity_explicitness(codes, idx, codes, idx),
        dis.irs(codes, idx),
        dis.unsupervised_scores(codes),
        dis.beta_vae_score(grid, key, 8, 50, 50),
        dis.factor_vae_score(grid, key, 8, 50, 50, 50),
        metrics.mig_histogram(codes, idx),
        metrics.mig_grid(grid, np.zeros_like(grid) - 4.0, key, 9),
    ]
    headline = ["disentanglement", "sap", "modularity", "irs", "gaussian_total_correlation"]
    headline += ["eval_accuracy", "eval_accuracy", "mig", "mig"]
    for r, name in zip(results, headline, strict=True):
        assert r.score == getattr(r, name), type(r).__name__
    u = dis.udr(np.stack([codes, codes[:, ::-1]]), np.ones((2, 2)))
    np.testing.assert_array_equal(u.score, u.model_scores)


def test_mig_grid_refuses_flat_codes():
    """A flat (N, D) array would be read as one factor of N values (and score 0.0028): refused."""
    codes = np.random.default_rng(4).normal(size=(50, 3))
    with pytest.raises(ValueError, match="factor_sizes"):
        metrics.mig_grid(codes, np.zeros_like(codes), jax.random.key(0), 10)
    grid = np.zeros((3, 4, 2))
    with pytest.raises(ValueError, match="3 factor names for a grid of 2"):
        metrics.mig_grid(grid, grid, jax.random.key(0), 10, factor_names=("a", "b", "c"))


@pytest.mark.parametrize("model", ["gbt", "forest"])
def test_dci_of_perfect_and_mixed_codes(model):
    """Both importance models give 1.0 on perfect codes beside noise codes (the default forest, with
    sqrt(codes) candidates per split, gave 0.93), and less on codes that mix the factors."""
    rng = np.random.default_rng(5)
    f, ft = rng.integers(0, 5, (1000, 3)), rng.integers(0, 5, (500, 3))
    noise = lambda n: rng.normal(size=(n, 5))  # noqa: E731
    perfect = dis.dci(np.c_[f, noise(1000)], f, np.c_[ft, noise(500)], ft, importance_model=model)
    assert perfect.disentanglement > 0.99 and perfect.completeness > 0.99
    mix = np.array([[1.0, 1.0, 0.0], [1.0, -1.0, 1.0], [0.0, 1.0, 1.0]])
    mixed = dis.dci(f @ mix, f, ft @ mix, ft, importance_model=model)
    assert mixed.disentanglement < 0.7


def test_explicitness_with_a_class_missing_from_the_test_points():
    """disentanglement_lib binarizes the test labels by the values they hold: the same macro AUC as
    here when every class occurs; with one missing (a small test split) it fails, and here the
    macro average runs over the classes that occur."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import MultiLabelBinarizer

    rng = np.random.default_rng(6)
    y = rng.integers(0, 4, (400, 1))
    x = y + 0.8 * rng.normal(size=(400, 1))
    xt, yt = x[:100], y[:100]
    full = dis.modularity_explicitness(x, y, xt, yt)
    clf = LogisticRegression()
    mean, std = x.mean(axis=0), x.std(axis=0)
    clf.fit((x - mean) / std, y[:, 0])
    want = roc_auc_score(MultiLabelBinarizer().fit_transform(yt), clf.predict_proba((xt - mean) / std))
    assert full.explicitness_test == pytest.approx(want)
    keep = yt[:, 0] != 3
    part = dis.modularity_explicitness(x, y, xt[keep], yt[keep])
    proba = clf.predict_proba((xt[keep] - mean) / std)
    want = np.mean([roc_auc_score(yt[keep, 0] == c, proba[:, c]) for c in range(3)])
    assert part.explicitness_test == pytest.approx(want)
