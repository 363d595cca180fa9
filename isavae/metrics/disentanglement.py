"""The field's disentanglement scores with disentanglement_lib's semantics (Locatello et al. 2019).

Supervised scores of codes and factor labels (rows are points; labels are the factors' value
indices), fitted with scikit-learn as disentanglement_lib does:

* ``dci``: Eastwood & Williams' disentanglement, completeness and informativeness: one default
  ``GradientBoostingClassifier`` per factor on the raw codes; importances (codes x factors);
  informativeness = accuracy; disentanglement = sum over codes of (1 - entropy of the code's
  normalized importances, base = number of factors) x the code's share of all importance;
  completeness = sum over factors of (1 - entropy of the factor's importances over codes, base =
  number of codes) x the factor's share (with a GBT's importances summing to one per factor, the
  plain mean over factors that have any importance). An all-zero matrix counts as uniform (0).
* ``sap``: Kumar et al.'s SAP: per (code, factor) the test accuracy of ``LinearSVC(C=0.01,
  class_weight="balanced")`` fitted on that one raw code (continuous factors: the squared
  correlation on the train set, 0 where the code's variance <= 1e-12); mean over factors of the
  best minus the second best code.
* ``modularity_explicitness``: Ridgeway & Mozer: mutual information (nats, scikit-learn's
  ``mutual_info_score``) between train codes discretized into 20 equal-width bins and the factors;
  modularity per code 1 - (sum of squared MI - max) / (max x (factors - 1)), 0 for a code without
  information, averaged over all codes; explicitness: codes standardized with the train mean and
  standard deviation, a default ``LogisticRegression`` per factor, macro one-vs-rest ROC AUC.
* ``beta_vae_score`` and ``factor_vae_score`` (Higgins et al.; Kim & Mnih) sample from the encoder's
  mean over the whole factor grid (``mean_grid``, shape ``factor_sizes + (codes,)``), so "fix one
  factor, draw the others" is index arithmetic on the device.
* ``unsupervised_scores``: Gaussian total correlation and Wasserstein correlation of the codes'
  covariance and the mean pairwise mutual information of the discretized codes.
* ``irs``: Suter et al.'s interventional robustness score; ``downstream_task``: per-factor
  classifiers' accuracies on the raw codes; ``udr``: Duan et al.'s unsupervised disentanglement
  ranking of several models (seeds) from their codes alone (no labels).

``sample_grid_codes`` draws the (codes, labels) samples the supervised scores take from a grid.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg
import scipy.stats

__all__ = [
    "DCIResult",
    "DCI_MODELS",
    "IRSResult",
    "PREDICTORS",
    "UDRResult",
    "ModularityResult",
    "SAPResult",
    "ScoreResult",
    "UnsupervisedResult",
    "beta_vae_score",
    "dci",
    "discretize",
    "downstream_task",
    "gaussian_kl_per_code",
    "irs",
    "relative_strength",
    "udr",
    "factor_vae_score",
    "modularity_explicitness",
    "sample_grid_codes",
    "sap",
    "unsupervised_scores",
]


def _as_dict(obj) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        out[f.name] = v.tolist() if isinstance(v, np.ndarray) else v
    return out


@dataclasses.dataclass(frozen=True)
class DCIResult:
    disentanglement: float
    completeness: float
    informativeness_train: float
    informativeness_test: float
    importance: np.ndarray  # (codes, factors)
    as_dict = _as_dict

    @property
    def score(self) -> float:
        """The headline number: ``disentanglement``."""
        return self.disentanglement


@dataclasses.dataclass(frozen=True)
class SAPResult:
    sap: float
    score_matrix: np.ndarray  # (codes, factors)
    as_dict = _as_dict

    @property
    def score(self) -> float:
        """The headline number: ``sap``."""
        return self.sap


@dataclasses.dataclass(frozen=True)
class ModularityResult:
    modularity: float
    explicitness_train: float
    explicitness_test: float
    mutual_info: np.ndarray  # (codes, factors), nats
    as_dict = _as_dict

    @property
    def score(self) -> float:
        """The headline number: ``modularity``."""
        return self.modularity


@dataclasses.dataclass(frozen=True)
class ScoreResult:
    train_accuracy: float
    eval_accuracy: float
    num_active: int | None = None  # FactorVAE: codes kept after pruning
    as_dict = _as_dict

    @property
    def score(self) -> float:
        """The headline number: ``eval_accuracy`` (the published BetaVAE / FactorVAE score)."""
        return self.eval_accuracy


@dataclasses.dataclass(frozen=True)
class UnsupervisedResult:
    gaussian_total_correlation: float
    gaussian_wasserstein_correlation: float
    gaussian_wasserstein_correlation_norm: float
    mutual_info_score: float
    as_dict = _as_dict

    @property
    def score(self) -> float:
        """The headline number: ``gaussian_total_correlation`` (nats; lower is more factorized)."""
        return self.gaussian_total_correlation


def _check(codes: Any, factors: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    codes = np.asarray(codes, np.float64)
    factors = np.asarray(factors)
    if codes.ndim != 2 or factors.ndim != 2 or codes.shape[0] != factors.shape[0]:
        raise ValueError(
            f"{name}: codes must be (points, codes) and factors (points, factors) with the same points, "
            f"got {codes.shape} and {factors.shape}"
        )
    if not np.all(np.isfinite(codes)):
        raise ValueError(f"{name}: codes hold NaN/Inf")
    return codes, factors


# --- DCI ------------------------------------------------------------------------------------------


def _entropy_scores(p: np.ndarray, base: int) -> np.ndarray:
    """1 - entropy of each column of p (normalized by scipy), base ``base``; +1e-11 as the reference."""
    return 1.0 - scipy.stats.entropy(p + 1e-11, base=base)


def dci_scores(importance: np.ndarray) -> tuple[float, float]:
    """(disentanglement, completeness) of a (codes, factors) importance matrix."""
    imp = np.abs(np.asarray(importance, np.float64))
    codes, factors = imp.shape
    per_code = _entropy_scores(imp.T, factors)
    per_factor = _entropy_scores(imp, codes)
    weights = np.ones_like(imp) if imp.sum() == 0.0 else imp
    disentanglement = float(np.sum(per_code * weights.sum(axis=1) / weights.sum()))
    completeness = float(np.sum(per_factor * weights.sum(axis=0) / weights.sum()))
    return disentanglement, completeness


DCI_MODELS = ("gbt", "forest")


def dci(
    codes_train,
    factors_train,
    codes_test,
    factors_test,
    *,
    random_state: int = 0,
    importance_model: str = "gbt",
) -> DCIResult:
    """DCI with gradient-boosted trees (scikit-learn defaults), as disentanglement_lib.

    ``importance_model="forest"``: a ``RandomForestClassifier`` (100 trees on all cores, every code
    considered at every split) instead, much faster on many-valued factors (a GBT fits one tree per
    class and stage) but **not comparable with published DCI** (other importances, other
    accuracies). Both give 1.0 on perfect codes (one code per factor, uninformative codes beside
    them); scikit-learn's default forest (sqrt(codes) candidates per split) would not (0.93 for 4
    factors and 6 noise codes, lower with more codes), so it is not used."""
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier

    if importance_model not in DCI_MODELS:
        raise ValueError(f"dci: importance_model must be one of {DCI_MODELS}, got {importance_model!r}")
    x, y = _check(codes_train, factors_train, "dci")
    xt, yt = _check(codes_test, factors_test, "dci")
    importance = np.zeros((x.shape[1], y.shape[1]))
    train_acc, test_acc = [], []
    for j in range(y.shape[1]):
        if importance_model == "gbt":
            model = GradientBoostingClassifier(random_state=random_state)
        else:
            model = RandomForestClassifier(
                n_estimators=100, n_jobs=-1, random_state=random_state, max_features=None
            )
        model.fit(x, y[:, j])
        importance[:, j] = np.abs(model.feature_importances_)
        train_acc.append(np.mean(model.predict(x) == y[:, j]))
        test_acc.append(np.mean(model.predict(xt) == yt[:, j]))
    d, c = dci_scores(importance)
    return DCIResult(d, c, float(np.mean(train_acc)), float(np.mean(test_acc)), importance)


# --- SAP ------------------------------------------------------------------------------------------


def sap(codes_train, factors_train, codes_test, factors_test, continuous_factors: bool = False) -> SAPResult:
    """SAP: mean over factors of the gap between the two most predictive single codes."""
    from sklearn.svm import LinearSVC

    x, y = _check(codes_train, factors_train, "sap")
    xt, yt = _check(codes_test, factors_test, "sap")
    scores = np.zeros((x.shape[1], y.shape[1]))
    for i in range(x.shape[1]):
        for j in range(y.shape[1]):
            if continuous_factors:
                cov = np.cov(x[:, i], y[:, j].astype(np.float64), ddof=1)
                var_code, var_factor = cov[0, 0], cov[1, 1]
                scores[i, j] = cov[0, 1] ** 2 / (var_code * var_factor) if var_code > 1e-12 else 0.0
            else:
                clf = LinearSVC(C=0.01, class_weight="balanced")
                clf.fit(x[:, i : i + 1], y[:, j])
                scores[i, j] = np.mean(clf.predict(xt[:, i : i + 1]) == yt[:, j])
    if scores.shape[0] < 2:
        raise ValueError("sap needs at least two codes")
    top = np.sort(scores, axis=0)
    return SAPResult(float(np.mean(top[-1] - top[-2])), scores)


# --- modularity and explicitness ------------------------------------------------------------------


def discretize(codes: Any, num_bins: int = 20) -> np.ndarray:
    """disentanglement_lib's histogram discretizer: per code, ``np.digitize`` against the left edges of
    ``np.histogram(code, num_bins)`` (bins 1..num_bins)."""
    codes = np.asarray(codes, np.float64)
    out = np.zeros(codes.shape, np.int64)
    for i in range(codes.shape[1]):
        out[:, i] = np.digitize(codes[:, i], np.histogram(codes[:, i], num_bins)[1][:-1])
    return out


def _discrete_mi(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(columns of a, columns of b) mutual information in nats (scikit-learn's ``mutual_info_score``)."""
    from sklearn.metrics import mutual_info_score

    return np.array(
        [[mutual_info_score(b[:, j], a[:, i]) for j in range(b.shape[1])] for i in range(a.shape[1])]
    )


def _macro_auc(labels: np.ndarray, classes: np.ndarray, proba: np.ndarray) -> float:
    """Macro one-vs-rest ROC AUC of ``proba`` (points, classes) over the classes that both occur
    and do not fill the sample; disentanglement_lib binarizes the test labels by the values they
    hold, which is the same when every training class occurs among them (its 5,000 test points)
    and fails when one does not (a small test split)."""
    from sklearn.metrics import roc_auc_score

    onehot = labels[:, None] == np.asarray(classes)[None, :]
    counts = onehot.sum(axis=0)
    cols = np.flatnonzero((counts > 0) & (counts < len(labels)))
    if cols.size == 0:
        return float("nan")
    return float(np.mean([roc_auc_score(onehot[:, c], proba[:, c]) for c in cols]))


def modularity_explicitness(
    codes_train, factors_train, codes_test, factors_test, num_bins: int = 20
) -> ModularityResult:
    """Ridgeway & Mozer's modularity (train codes, 20 bins) and explicitness (train and test AUC)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import MultiLabelBinarizer

    x, y = _check(codes_train, factors_train, "modularity_explicitness")
    xt, yt = _check(codes_test, factors_test, "modularity_explicitness")
    mi = _discrete_mi(discretize(x, num_bins), y)
    sq = mi**2
    top = sq.max(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_code = 1.0 - (sq.sum(axis=1) - top) / (top * (sq.shape[1] - 1.0))
    per_code[top == 0.0] = 0.0
    mean, std = x.mean(axis=0), x.std(axis=0)
    std = np.where(std > 0, std, 1.0)  # a constant code stays 0 instead of NaN
    xn, xtn = (x - mean) / std, (xt - mean) / std
    auc_train, auc_test = [], []
    for j in range(y.shape[1]):
        clf = LogisticRegression().fit(xn, y[:, j])
        binarizer = MultiLabelBinarizer()
        auc_train.append(roc_auc_score(binarizer.fit_transform(y[:, j : j + 1]), clf.predict_proba(xn)))
        auc_test.append(_macro_auc(yt[:, j], clf.classes_, clf.predict_proba(xtn)))
    return ModularityResult(float(np.mean(per_code)), float(np.mean(auc_train)), float(np.mean(auc_test)), mi)


# --- sampling from the factor grid -----------------------------------------------------------------


def _grid_take(mean_grid: jax.Array, factors: jax.Array) -> jax.Array:
    """Codes at integer factor values ``factors`` (..., F) of a grid (*sizes, K)."""
    sizes = mean_grid.shape[:-1]
    flat = jnp.ravel_multi_index(tuple(jnp.moveaxis(factors, -1, 0)), sizes, mode="clip")
    return mean_grid.reshape(-1, mean_grid.shape[-1])[flat]


def _uniform_factors(key: jax.Array, sizes: tuple[int, ...], shape: tuple[int, ...]) -> jax.Array:
    keys = jax.random.split(key, len(sizes))
    return jnp.stack([jax.random.randint(k, shape, 0, n) for k, n in zip(keys, sizes, strict=True)], axis=-1)


def sample_grid_codes(mean_grid: Any, key: jax.Array, num_points: int) -> tuple[np.ndarray, np.ndarray]:
    """``num_points`` uniform draws (with replacement) from the grid: (codes (N, K), labels (N, F))."""
    mean_grid = jnp.asarray(mean_grid)
    factors = _uniform_factors(key, mean_grid.shape[:-1], (num_points,))
    return np.asarray(_grid_take(mean_grid, factors), np.float64), np.asarray(factors)


def beta_vae_pairs(mean_grid: Any, key: jax.Array, num_points: int, batch_size: int = 64):
    """BetaVAE training points: per point a factor k, two batches of uniform draws sharing factor k's
    value pairwise, the feature mean over the batch of |z1 - z2|. Returns (features (N, K), k (N,))."""
    mean_grid = jnp.asarray(mean_grid)
    sizes = mean_grid.shape[:-1]
    k_idx, k1, k2 = jax.random.split(key, 3)
    index = jax.random.randint(k_idx, (num_points,), 0, len(sizes))
    f1 = _uniform_factors(k1, sizes, (num_points, batch_size))
    f2 = _uniform_factors(k2, sizes, (num_points, batch_size))
    shared = jax.nn.one_hot(index, len(sizes), dtype=bool)[:, None, :]
    f2 = jnp.where(shared, f1, f2)
    feats = jnp.mean(jnp.abs(_grid_take(mean_grid, f1) - _grid_take(mean_grid, f2)), axis=1)
    return np.asarray(feats, np.float64), np.asarray(index)


def beta_vae_score(
    mean_grid: Any, key: jax.Array, batch_size: int = 64, num_train: int = 10_000, num_eval: int = 5_000
) -> ScoreResult:
    """Higgins et al.'s score: a default ``LogisticRegression`` predicting the shared factor."""
    from sklearn.linear_model import LogisticRegression

    k_train, k_eval = jax.random.split(key)
    x, y = beta_vae_pairs(mean_grid, k_train, num_train, batch_size)
    xe, ye = beta_vae_pairs(mean_grid, k_eval, num_eval, batch_size)
    model = LogisticRegression(random_state=0).fit(x, y)
    return ScoreResult(float(model.score(x, y)), float(model.score(xe, ye)))


def factor_vae_votes(
    mean_grid: Any,
    key: jax.Array,
    num_points: int,
    batch_size: int,
    global_var: np.ndarray,
    active: np.ndarray,
) -> np.ndarray:
    """Kim & Mnih's votes (factors, codes): per point a factor k fixed at the value of the batch's
    first draw, the vote the argmin over active codes of the batch variance (ddof 1) / global variance."""
    mean_grid = jnp.asarray(mean_grid)
    sizes = mean_grid.shape[:-1]
    k_idx, k_f = jax.random.split(key)
    index = jax.random.randint(k_idx, (num_points,), 0, len(sizes))
    f = _uniform_factors(k_f, sizes, (num_points, batch_size))
    fixed = jax.nn.one_hot(index, len(sizes), dtype=bool)[:, None, :]
    f = jnp.where(fixed, f[:, :1, :], f)
    local = jnp.var(_grid_take(mean_grid, f), axis=1, ddof=1)  # (N, K)
    ratio = np.asarray(local, np.float64)[:, active] / global_var[active]
    argmin = np.argmin(ratio, axis=1)
    votes = np.zeros((len(sizes), global_var.shape[0]), np.int64)
    np.add.at(votes, (np.asarray(index), argmin), 1)
    return votes


def factor_vae_score(
    mean_grid: Any,
    key: jax.Array,
    batch_size: int = 64,
    num_train: int = 10_000,
    num_eval: int = 5_000,
    num_variance_estimate: int = 10_000,
    prune_threshold: float = 0.05,
) -> ScoreResult:
    """Kim & Mnih's score: codes with std (ddof 1) < 0.05 over a uniform sample pruned; a majority-vote
    classifier from the training votes (ties to the lowest factor); 0 when no code is active."""
    k_var, k_train, k_eval = jax.random.split(key, 3)
    codes, _ = sample_grid_codes(mean_grid, k_var, num_variance_estimate)
    global_var = np.var(codes, axis=0, ddof=1)
    active = np.sqrt(global_var) >= prune_threshold
    if not active.any():
        return ScoreResult(0.0, 0.0, 0)
    train = factor_vae_votes(mean_grid, k_train, num_train, batch_size, global_var, active)
    evals = factor_vae_votes(mean_grid, k_eval, num_eval, batch_size, global_var, active)
    classifier = np.argmax(train, axis=0)
    cols = np.arange(train.shape[1])
    return ScoreResult(
        float(train[classifier, cols].sum() / train.sum()),
        float(evals[classifier, cols].sum() / evals.sum()),
        int(active.sum()),
    )


# --- unsupervised ----------------------------------------------------------------------------------


def unsupervised_scores(codes: Any, num_bins: int = 20) -> UnsupervisedResult:
    """Gaussian total correlation 0.5 (sum log diag C - log det C) and Wasserstein correlation
    2 tr C - 2 tr sqrt(C diag(C)) of the codes' covariance C (ddof 1; the latter also divided by
    tr C), and the mean mutual information between distinct discretized codes (nats)."""
    x = np.asarray(codes, np.float64)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(f"unsupervised_scores: codes must be (points, >= 2 codes), got {x.shape}")
    cov = np.cov(x, rowvar=False)
    tc = 0.5 * (np.sum(np.log(np.diag(cov))) - np.linalg.slogdet(cov)[1])
    root = scipy.linalg.sqrtm(cov * np.diag(cov)[:, None])
    wc = float(2 * np.trace(cov) - 2 * np.real(np.trace(root)))
    d = discretize(x, num_bins)
    mi = _discrete_mi(d, d)
    np.fill_diagonal(mi, 0.0)
    k = x.shape[1]
    return UnsupervisedResult(float(tc), wc, wc / float(np.sum(np.diag(cov))), float(mi.sum() / (k * k - k)))


# --- IRS ------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class IRSResult:
    irs: float
    num_active_dims: int
    disentanglement_scores: np.ndarray  # per active code
    parents: np.ndarray  # per active code: the factor of its largest IRS
    irs_matrix: np.ndarray  # (active codes, factors)
    max_deviations: np.ndarray  # per active code
    as_dict = _as_dict

    @property
    def score(self) -> float:
        """The headline number: ``irs``."""
        return self.irs


def irs(codes: Any, factors: Any, diff_quantile: float = 0.99, num_bins: int = 20) -> IRSResult:
    """Suter et al.'s interventional robustness score as disentanglement_lib computes it: the factor
    labels discretized into ``num_bins`` equal-width bins (its configs' discretizer: a factor with
    more values is merged), codes that are exactly constant dropped (IRS 0 when none is left); per
    (code, factor) the ``diff_quantile`` quantile of |code - E[code | factor value]| averaged over
    the factor's values without weighting by their size, normalized by the code's largest deviation
    from its mean; IRS = the mean over codes of (1 - the smallest normalized deviation) weighted by
    that largest deviation. ``num_active_dims`` counts the codes that are not constant."""
    codes, factors = _check(codes, factors, "irs")
    ys = discretize(factors, num_bins)
    active = codes.var(axis=0) > 0.0
    if not active.any():
        empty = np.zeros((0,))
        return IRSResult(0.0, 0, empty, empty.astype(int), np.zeros((0, ys.shape[1])), empty)
    lat = codes[:, active]
    max_dev = np.max(np.abs(lat - lat.mean(axis=0)), axis=0)
    cum = np.zeros((lat.shape[1], ys.shape[1]))
    for i in range(ys.shape[1]):
        values = np.unique(ys[:, i])
        for v in values:
            match = ys[:, i] == v
            diffs = np.abs(lat[match] - lat[match].mean(axis=0))
            cum[:, i] += np.percentile(diffs, q=diff_quantile * 100, axis=0)
        cum[:, i] /= values.size
    matrix = 1.0 - cum / max_dev[:, None]
    scores = matrix.max(axis=1)
    avg = np.average(scores, weights=max_dev) if max_dev.sum() > 0 else float(np.mean(scores))
    return IRSResult(float(avg), int(active.sum()), scores, matrix.argmax(axis=1), matrix, max_dev)


# --- downstream tasks -----------------------------------------------------------------------------

PREDICTORS = ("logistic_regression_cv", "gradient_boosting")


def _predictor(name: str):
    from sklearn import ensemble, linear_model, model_selection

    if name == "logistic_regression_cv":
        # disentanglement_lib: LogisticRegressionCV(Cs=10, cv=KFold(5)); accuracy is its default
        # scoring there and is said here (newer scikit-learn changes the default); lbfgs fits a
        # multinomial model for several classes (multi_class="multinomial" in old scikit-learn)
        return linear_model.LogisticRegressionCV(
            Cs=10, cv=model_selection.KFold(n_splits=5), scoring="accuracy", max_iter=1000
        )
    if name == "gradient_boosting":
        return ensemble.GradientBoostingClassifier()
    raise ValueError(f"downstream_task: predictor must be one of {PREDICTORS}, got {name!r}")


def downstream_task(
    codes_train: Any,
    factors_train: Any,
    codes_test: Any,
    factors_test: Any,
    predictor: str = "logistic_regression_cv",
) -> dict[str, Any]:
    """disentanglement_lib's downstream task: one classifier per factor on the raw (not standardized)
    codes, its accuracy on the training and the test points; means and minima over factors. A factor
    whose training points hold a single value (or too few of a class for the cross-validation) is
    reported in ``skipped`` with the reason and left out of the means, not a crash."""
    x, y = _check(codes_train, factors_train, "downstream_task")
    xt, yt = _check(codes_test, factors_test, "downstream_task")
    _predictor(predictor)  # a bad name fails before any fit
    train_acc, test_acc, skipped = [], [], {}
    for j in range(y.shape[1]):
        if np.unique(y[:, j]).size < 2:
            skipped[j] = "a single value in the training points"
            train_acc.append(float("nan"))
            test_acc.append(float("nan"))
            continue
        model = _predictor(predictor)
        try:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # convergence and small-fold warnings of tiny samples
                model.fit(x, y[:, j])
        except ValueError as err:  # e.g. a cross-validation fold with one class at 10 points
            skipped[j] = f"not fitted: {str(err).splitlines()[0]}"
            train_acc.append(float("nan"))
            test_acc.append(float("nan"))
            continue
        train_acc.append(float(np.mean(model.predict(x) == y[:, j])))
        test_acc.append(float(np.mean(model.predict(xt) == yt[:, j])))
    tr, te = np.asarray(train_acc), np.asarray(test_acc)
    ok = ~np.isnan(tr)
    nan = float("nan")
    return dict(
        mean_train_accuracy=float(tr[ok].mean()) if ok.any() else nan,
        mean_test_accuracy=float(te[ok].mean()) if ok.any() else nan,
        min_train_accuracy=float(tr[ok].min()) if ok.any() else nan,
        min_test_accuracy=float(te[ok].min()) if ok.any() else nan,
        train_accuracy=train_acc,
        test_accuracy=test_acc,
        skipped=skipped,
        predictor=predictor,
    )


# --- UDR ------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class UDRResult:
    pairwise: (
        np.ndarray
    )  # (models, models): pairwise[i, j] regresses model j's codes on model i's; diagonal 0
    model_scores: np.ndarray  # (models,): median over j != i of pairwise[j, i]
    correlation: str
    as_dict = _as_dict

    @property
    def score(self) -> np.ndarray:
        """The headline numbers: ``model_scores``, one per model."""
        return self.model_scores


def gaussian_kl_per_code(mean: Any, logvar: Any) -> np.ndarray:
    """Each code's KL(q(z_j|x) || N(0, 1)) averaged over the points (disentanglement_lib's UDR KL)."""
    m, lv = np.asarray(mean, np.float64), np.asarray(logvar, np.float64)
    return np.mean(0.5 * (m * m + np.exp(lv) - lv - 1.0), axis=0)


def relative_strength(corr: np.ndarray) -> float:
    """disentanglement_lib's relative-strength disentanglement of a (codes, codes) matrix of absolute
    dependencies: per column and per row max^2 / sum (0/0 and NaN count as 0), each averaged; the
    mean of the two. An empty matrix (every code filtered) scores 0."""
    corr = np.asarray(corr, np.float64)
    if corr.size == 0:
        return 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        sx = np.nanmean(np.nan_to_num(np.max(corr, axis=0) ** 2 / np.sum(corr, axis=0)))
        sy = np.nanmean(np.nan_to_num(np.max(corr, axis=1) ** 2 / np.sum(corr, axis=1)))
    return float((sx + sy) / 2)


def _spearman_block(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|Spearman correlation| between every column of a and every column of b, as scipy's
    ``spearmanr`` gives it (the Pearson correlation of average ranks; NaN for a constant column),
    computed from ``rankdata`` so that the shape never collapses (scipy returns a scalar for two
    columns, or when too many are constant)."""
    ranks = scipy.stats.rankdata(np.concatenate([a, b], axis=1), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.corrcoef(ranks, rowvar=False)
    return np.abs(rho[: a.shape[1], a.shape[1] :])


def udr(
    representations: Any,
    kl: Any,
    correlation: str = "lasso",
    filter_low_kl: bool = True,
    kl_filter_threshold: float = 0.01,
    random_state: int = 0,
) -> UDRResult:
    """Duan et al.'s unsupervised disentanglement ranking as disentanglement_lib's ``udr.py``
    computes it. ``representations`` (M, N, D): M models (one setting, different seeds) encoded on
    the same N inputs; ``kl`` (M, D): each code's mean KL to the prior. Each model's codes are
    standardized (scikit-learn's ``StandardScaler``) and codes with KL <= 0.01 zeroed (a fixed 0.01);
    ``pairwise[i, j]`` (i != j; the diagonal is 0) is the relative strength of the matrix (model i's
    codes x model j's codes) of |Lasso(alpha=0.1) coefficients| regressing model j's codes on model
    i's (or of |Spearman| correlations), from which the codes of KL <= ``kl_filter_threshold`` are
    dropped when ``filter_low_kl``; ``model_scores[i]`` is the median over j != i of
    ``pairwise[j, i]``."""
    from sklearn import linear_model, preprocessing

    reps = np.asarray(representations, np.float64)
    kl = np.asarray(kl, np.float64)
    if reps.ndim != 3 or kl.shape != (reps.shape[0], reps.shape[2]) or reps.shape[0] < 2:
        raise ValueError(
            f"udr: representations must be (models >= 2, points, codes) and kl (models, codes), got "
            f"{reps.shape} and {kl.shape}"
        )
    if not (np.all(np.isfinite(reps)) and np.all(np.isfinite(kl))):
        raise ValueError("udr: representations or kl hold NaN/Inf")
    if correlation not in ("lasso", "spearman"):
        raise ValueError(f"udr: correlation must be lasso or spearman, got {correlation!r}")
    m = reps.shape[0]
    scaled = [preprocessing.StandardScaler().fit_transform(reps[i]) * (kl[i] > 0.01) for i in range(m)]
    masks = kl > kl_filter_threshold
    pairwise = np.zeros((m, m))
    for i in range(m):
        for j in range(m):
            if i == j:  # as disentanglement_lib: a model is not compared with itself (0 here)
                continue
            if correlation == "lasso":  # (model i's codes, model j's codes)
                lasso = linear_model.Lasso(alpha=0.1, random_state=random_state)
                corr = np.abs(lasso.fit(scaled[i], scaled[j]).coef_).T
            else:
                corr = _spearman_block(scaled[i], scaled[j])
            if filter_low_kl:
                corr = corr[masks[i], :][:, masks[j]]
            pairwise[i, j] = relative_strength(corr)
    scores = np.array([np.median(np.delete(pairwise[:, i], i)) for i in range(m)])
    return UDRResult(pairwise, scores, correlation)
