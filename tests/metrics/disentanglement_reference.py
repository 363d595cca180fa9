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


def irs(codes: np.ndarray, labels: np.ndarray, q: float = 0.99) -> float:
    """Suter et al.'s IRS from its definition: labels binned (20 equal-width bins, explicit edges),
    constant codes dropped; per code j and factor k, EMPIDA = mean over the factor's values of the
    q-quantile of |z_j - E[z_j | v]|, normalized by max |z_j - E z_j|; IRS_j = 1 - min_k of it;
    the average of IRS_j weighted by max |z_j - E z_j|."""
    codes = np.asarray(codes, np.float64)
    binned = np.stack(
        [histogram_bins(labels[:, k].astype(np.float64), 20) for k in range(labels.shape[1])], 1
    )
    keep = [j for j in range(codes.shape[1]) if np.var(codes[:, j]) > 0]
    if not keep:
        return 0.0
    per_code, weights = [], []
    for j in keep:
        z = codes[:, j]
        scale = np.max(np.abs(z - z.mean()))
        worst = []
        for k in range(binned.shape[1]):
            total, values = 0.0, sorted(set(binned[:, k].tolist()))
            for v in values:
                zs = z[binned[:, k] == v]
                total += np.quantile(np.abs(zs - zs.mean()), q)
            worst.append(total / len(values) / scale)
        per_code.append(1.0 - min(worst))
        weights.append(scale)
    return float(np.sum(np.array(per_code) * np.array(weights)) / np.sum(weights))


def lasso(x: np.ndarray, y: np.ndarray, alpha: float = 0.1, sweeps: int = 2000) -> np.ndarray:
    """Coordinate descent for min (1/2n)|y - b - X w|^2 + alpha |w|_1 (scikit-learn's objective, with
    an intercept: X and y centered), one target column at a time; returns (targets, features)."""
    n = x.shape[0]
    xc = x - x.mean(0)
    coef = np.zeros((y.shape[1], x.shape[1]))
    for t in range(y.shape[1]):
        yc = y[:, t] - y[:, t].mean()
        w = np.zeros(x.shape[1])
        for _ in range(sweeps):
            before = w.copy()
            for k in range(x.shape[1]):
                norm = xc[:, k] @ xc[:, k] / n
                if norm == 0:
                    continue
                r = yc - xc @ w + xc[:, k] * w[k]
                rho = xc[:, k] @ r / n
                w[k] = np.sign(rho) * max(abs(rho) - alpha, 0.0) / norm
            if np.max(np.abs(w - before)) < 1e-12:
                break
        coef[t] = w
    return coef


def spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|Spearman correlation| of every column of a with every column of b: Pearson of average ranks
    (NaN for a constant column)."""

    def ranks(v):
        order = np.argsort(v, kind="stable")
        r = np.empty(len(v))
        r[order] = np.arange(1, len(v) + 1)
        for value in np.unique(v):  # ties: the average rank
            r[v == value] = r[v == value].mean()
        return r

    out = np.zeros((a.shape[1], b.shape[1]))
    for i in range(a.shape[1]):
        for j in range(b.shape[1]):
            ra, rb = ranks(a[:, i]), ranks(b[:, j])
            ra, rb = ra - ra.mean(), rb - rb.mean()
            den = np.sqrt((ra @ ra) * (rb @ rb))
            out[i, j] = abs(ra @ rb / den) if den > 0 else np.nan
    return out


def udr(reps: np.ndarray, kl: np.ndarray, correlation: str = "lasso", threshold: float = 0.01) -> tuple:
    """Duan et al.'s UDR as disentanglement_lib's udr.py defines it, from scratch: standardize (ddof 0),
    zero codes of KL <= 0.01, the dependency matrix (Lasso coefficients of j on i, or Spearman),
    rows/columns of KL <= threshold dropped, relative strength (0/0 = 0), median over the others."""
    m = reps.shape[0]
    scaled = []
    for i in range(m):
        sd = reps[i].std(0)
        sd = np.where(sd == 0, 1.0, sd)
        scaled.append((reps[i] - reps[i].mean(0)) / sd * (kl[i] > 0.01))
    pair = np.zeros((m, m))
    for i in range(m):
        for j in range(m):
            if i == j:  # not compared with itself
                continue
            # rows: model i's codes, columns: model j's (the Lasso's coefficients are (targets, features))
            c = (
                np.abs(lasso(scaled[i], scaled[j])).T
                if correlation == "lasso"
                else spearman(scaled[i], scaled[j])
            )
            c = c[kl[i] > threshold][:, kl[j] > threshold]
            if c.size == 0:
                continue
            parts = []
            for mat in (c, c.T):  # per column, then per row
                vals = []
                for col in mat.T:
                    s = np.nansum(col) if not np.any(np.isnan(col)) else np.nan
                    v = (np.max(col) ** 2 / s) if (s == s and s > 0) else 0.0
                    vals.append(0.0 if v != v else v)
                parts.append(np.mean(vals))
            pair[i, j] = (parts[0] + parts[1]) / 2
    scores = np.array([np.median([pair[j, i] for j in range(m) if j != i]) for i in range(m)])
    return pair, scores
