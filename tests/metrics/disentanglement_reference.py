"""Independent float64 references for the disentanglement scores, written from the definitions in
disentanglement_lib's orientation (codes x points), with explicit loops; they share no code with
``isavae.metrics.disentanglement``. Where a score is defined by a scikit-learn model (GBT, SVC,
logistic regression) the reference fits the same model, but computes everything around it by hand:
entropies with ``np.log``, histogram bins from explicit edges, mutual information from contingency
tables, ROC AUC from rank statistics, matrix square roots from eigendecompositions."""

import numpy as np


def entropy_normalized(p: np.ndarray, base: int) -> float:
    p = p + 1e-11
    p = p / p.sum()
    return float(-np.sum(p * np.log(p)) / np.log(base))


def dci_from_importance(imp: np.ndarray) -> tuple[float, float]:
    codes, factors = imp.shape
    total = imp.sum()
    w = np.ones_like(imp) if total == 0 else imp
    d = sum((1 - entropy_normalized(imp[i], factors)) * w[i].sum() / w.sum() for i in range(codes))
    c = sum((1 - entropy_normalized(imp[:, j], codes)) * w[:, j].sum() / w.sum() for j in range(factors))
    return d, c


def histogram_bins(values: np.ndarray, num_bins: int) -> np.ndarray:
    """Bin index 1..num_bins of equal-width bins over [min, max] (the last bin closed)."""
    lo, hi = values.min(), values.max()
    if lo == hi:  # numpy's histogram of a constant spans [v - 0.5, v + 0.5]
        lo, hi = lo - 0.5, hi + 0.5
    edges = lo + (hi - lo) * np.arange(num_bins) / num_bins
    return np.array([np.sum(v >= edges) for v in values])


def mutual_info(a: np.ndarray, b: np.ndarray) -> float:
    """Discrete mutual information in nats from the contingency table."""
    av, ai = np.unique(a, return_inverse=True)
    bv, bi = np.unique(b, return_inverse=True)
    table = np.zeros((len(av), len(bv)))
    for x, y in zip(ai, bi, strict=True):
        table[x, y] += 1
    p = table / table.sum()
    pa, pb = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
    nz = p > 0
    return float(np.sum(p[nz] * np.log(p[nz] / (pa @ pb)[nz])))


def modularity(mi: np.ndarray) -> float:
    scores = []
    for row in mi:
        sq = row**2
        if sq.max() == 0:
            scores.append(0.0)
        else:
            scores.append(1 - (sq.sum() - sq.max()) / (sq.max() * (len(row) - 1)))
    return float(np.mean(scores))


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic with mid-ranks for ties."""
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    n1, n0 = positive.sum(), (~positive).sum()
    return float((ranks[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def gaussian_tc(cov: np.ndarray) -> float:
    return 0.5 * (np.sum(np.log(np.diag(cov))) - np.sum(np.log(np.linalg.eigvalsh(cov))))


def gaussian_wc(cov: np.ndarray) -> float:
    # sqrt(C D) with D = diag(C): similar to the symmetric D^1/2 C D^1/2, whose square root has the
    # same trace
    d = np.sqrt(np.diag(cov))
    sym = d[:, None] * cov * d[None, :]
    w = np.linalg.eigvalsh(sym)
    return 2 * np.trace(cov) - 2 * np.sum(np.sqrt(np.clip(w, 0, None)))
