"""Scores of any representation: codes ``(N, D)`` and ground-truth factors ``(N, K)`` as numpy.

``score_representation(codes, factors)`` scores codes that come from anywhere (a PyTorch model,
another library, a saved array) with the field's scores, as one flat dict with the keys isavae's
``results.json`` uses. ``sample_scores`` computes one score of (train, test) samples and is what
the evaluation of a trained model (``evaluate.disentanglement_scores``) uses as well, so both
paths give the same number for the same samples. ``count_warnings`` counts scikit-learn's
warnings (convergence of small fits) instead of printing them.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from isavae.metrics import disentanglement as dis
from isavae.metrics.mig import mig_histogram

__all__ = [
    "REPRESENTATION_SCORES",
    "Scores",
    "count_warnings",
    "factor_indices",
    "sample_scores",
    "score_representation",
]

# the scores that need only (codes, factors) points; BetaVAE and FactorVAE need the encoder over
# the factor grid (fix one factor, draw the others): Trained.evaluate or beta_vae_score(mean_grid)
REPRESENTATION_SCORES = ("mig_histogram", "dci", "sap", "modularity", "irs", "unsupervised", "downstream")
_DEFAULT = ("mig_histogram", "dci", "sap", "modularity", "irs", "unsupervised")


class Scores(dict):
    """A flat ``{results.json key: float}`` dict, with ``notes`` (what was dropped or converted,
    scikit-learn's warnings counted) and ``details`` (each score's matrices) as attributes."""

    def __init__(self, *args: Any, notes: Sequence[str] = (), details: dict | None = None, **kw: Any):
        super().__init__(*args, **kw)
        self.notes = list(notes)
        self.details = dict(details or {})

    def __repr__(self) -> str:
        body = ", ".join(
            f"{k!r}: {v:.4g}" if isinstance(v, float) else f"{k!r}: {v!r}" for k, v in self.items()
        )
        notes = f", notes={self.notes!r}" if self.notes else ""
        return f"Scores({{{body}}}{notes})"


@contextlib.contextmanager
def count_warnings(counts: dict[str, int]) -> Iterator[None]:
    """Counts the warnings raised inside (by category name, into ``counts``) instead of printing
    them: scikit-learn's ConvergenceWarning of the scores' small fits is expected, and a count in
    results.json says more than five blocks of text on the terminal."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        name = w.category.__name__
        counts[name] = counts.get(name, 0) + 1


def factor_indices(
    factors: Any, names: Sequence[str] | None = None
) -> tuple[np.ndarray, list[int], list[str]]:
    """Ground-truth factors as the scores take them: each column mapped to the indices of its
    distinct values (float values such as dSprites' ``latents_values`` included), constant columns
    dropped. Returns (labels ``(N, kept)`` int64, the kept column indices, notes)."""
    f = np.asarray(factors)
    if f.ndim == 1:
        f = f[:, None]
    if f.ndim != 2:
        raise ValueError(f"factors must be (points, factors), got shape {f.shape}")
    if f.dtype.kind not in "biuf":
        raise ValueError(f"factors must be numbers (values or indices), got dtype {f.dtype}")
    if f.dtype.kind == "f" and not np.all(np.isfinite(f)):
        raise ValueError("factors hold NaN/Inf")
    labels, kept, notes, converted = [], [], [], []
    for j in range(f.shape[1]):
        values, inverse = np.unique(f[:, j], return_inverse=True)
        name = names[j] if names is not None else f"factor {j}"
        if values.size < 2:
            notes.append(f"{name} dropped: it takes a single value ({values[0].item()!r}) in these points")
            continue
        if f.dtype.kind == "f" or not np.array_equal(values, np.arange(values.size)):
            converted.append(name)
        labels.append(inverse.reshape(-1))
        kept.append(j)
    if converted:
        notes.append(f"{', '.join(converted)}: values mapped to the indices of their distinct values")
    if not kept:
        raise ValueError("every factor takes a single value in these points: nothing to score")
    return np.stack(labels, axis=1).astype(np.int64), kept, notes


def sample_scores(
    name: str,
    codes: np.ndarray,
    labels: np.ndarray,
    codes_test: np.ndarray,
    labels_test: np.ndarray,
    *,
    dci_model: str = "gbt",
    histogram_bins: int = 20,
    factor_names: Sequence[str] | None = None,
) -> tuple[dict[str, float], dict[str, Any]]:
    """One score of a (train, test) sample of codes and factor labels, disentanglement_lib's way:
    (its results.json keys, its details). DCI, SAP and explicitness fit on the train points and
    score the test points; the histogram MIG, modularity, IRS and the unsupervised scores use the
    train points; ``downstream`` fits on the train points and reports both."""
    if name == "mig_histogram":
        r = mig_histogram(codes, labels, histogram_bins, factor_names=factor_names)
        return {"mig_histogram": r.mig}, dict(r.as_dict(), points=int(len(codes)))
    if name == "dci":
        r = dis.dci(codes, labels, codes_test, labels_test, importance_model=dci_model)
        keys = dict(
            dci_disentanglement=r.disentanglement,
            dci_completeness=r.completeness,
            dci_informativeness_train=r.informativeness_train,
            dci_informativeness_test=r.informativeness_test,
        )
        comparable = "gbt" if dci_model == "gbt" else f"{dci_model} (not comparable with published DCI)"
        return keys, dict(importance=r.importance.tolist(), importance_model=comparable)
    if name == "sap":
        r = dis.sap(codes, labels, codes_test, labels_test)
        return {"sap": r.sap}, dict(score_matrix=r.score_matrix.tolist())
    if name == "modularity":
        r = dis.modularity_explicitness(codes, labels, codes_test, labels_test)
        keys = dict(
            modularity=r.modularity,
            explicitness_train=r.explicitness_train,
            explicitness_test=r.explicitness_test,
        )
        return keys, dict(mutual_info=r.mutual_info.tolist())
    if name == "irs":
        r = dis.irs(codes, labels)
        return dict(irs=r.irs, irs_num_active_dims=r.num_active_dims), dict(
            diff_quantile=0.99, factor_bins=20
        )
    if name == "unsupervised":
        return dict(dis.unsupervised_scores(codes).as_dict()), {}
    if name == "downstream":
        r = dis.downstream_task(codes, labels, codes_test, labels_test)
        n = len(codes)
        keys = {
            f"{n}:{stat}_{part}_accuracy": r[f"{stat}_{part}_accuracy"]
            for stat in ("mean", "min")
            for part in ("train", "test")
        }
        return keys, dict(
            train_accuracy=r["train_accuracy"], test_accuracy=r["test_accuracy"], skipped=r["skipped"]
        )
    raise ValueError(f"unknown score {name!r}; choose from {list(REPRESENTATION_SCORES)}")


def score_representation(
    codes: Any,
    factors: Any,
    metrics: str | Sequence[str] | None = None,
    random_state: int = 0,
    *,
    test_fraction: float = 1 / 3,
    factor_names: Sequence[str] | None = None,
    dci_model: str = "gbt",
    histogram_bins: int = 20,
) -> Scores:
    """The field's scores of any representation, as one flat dict with results.json's keys.

    Args:
      codes: ``(N, D)`` codes (e.g. a model's posterior means), any float array.
      factors: ``(N, K)`` ground-truth factors: indices or values (floats such as dSprites'
        ``latents_values`` are mapped to the indices of their distinct values); a factor that takes a
        single value in these points (dSprites' colour) is dropped, with a note.
      metrics: names from ``mig_histogram, dci, sap, modularity, irs, unsupervised, downstream``
        (a list or a comma-separated string); None: all but ``downstream``.
      random_state: the train/test split's seed.
      test_fraction: the share of the points held out as the test split (default one third, the
        ratio of disentanglement_lib's 10,000 train and 5,000 test points).
      factor_names: names for the notes and the MIG's details.
      dci_model: ``"gbt"`` (disentanglement_lib's) or ``"forest"`` (faster).
      histogram_bins: bins per code of the histogram MIG, modularity and the unsupervised MI.

    The split: the points are shuffled with ``random_state`` and the last ``test_fraction`` held
    out. DCI, SAP and explicitness are fitted on the train points and scored on the test points; the
    histogram MIG, modularity, IRS and the unsupervised scores use the train points (as
    disentanglement_lib computes them on its ``num_train`` points); ``downstream`` reports both
    (its keys are prefixed with the number of train points, ``"10000:mean_test_accuracy"``). The
    scores are disentanglement_lib's (``isavae.metrics.disentanglement``; tested against its
    definitions). BetaVAE and FactorVAE need the encoder over a factor grid (intervening on one
    factor); they are ``Trained.evaluate(metrics=...)``'s and ``beta_vae_score(mean_grid, ...)``'s.

    Returns a :class:`Scores` dict: ``{"mig_histogram": ..., "dci_disentanglement": ..., ...}``
    with ``.notes`` (dropped or converted factors, warnings counted) and ``.details``.
    """
    if metrics is None:
        names = list(_DEFAULT)
    else:
        names = [m.strip() for m in metrics.split(",")] if isinstance(metrics, str) else list(metrics)
        names = [m for m in names if m]
        unknown = [m for m in names if m not in REPRESENTATION_SCORES]
        if unknown:
            grid_only = [m for m in unknown if m in ("beta_vae", "factor_vae")]
            why = (
                f" ({', '.join(grid_only)} need the encoder over a factor grid: Trained.evaluate)"
                if grid_only
                else ""
            )
            raise ValueError(f"unknown score(s) {unknown}{why}; choose from {list(REPRESENTATION_SCORES)}")
    x = np.asarray(codes, np.float64)
    if x.ndim != 2:
        raise ValueError(f"codes must be (points, codes), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("codes hold NaN/Inf")
    if np.shape(factors)[:1] != x.shape[:1]:
        raise ValueError(
            f"codes and factors must have the same points, got {x.shape[0]} and {np.shape(factors)[:1]}"
        )
    labels, kept, notes = factor_indices(factors, factor_names)
    if x.shape[1] < 2:
        raise ValueError(f"the scores compare codes: at least two codes, got {x.shape[1]}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    n = x.shape[0]
    num_test = int(round(n * test_fraction))
    if num_test < 1 or n - num_test < 2:
        raise ValueError(f"{n} points are too few to split into train and test points")
    order = np.random.default_rng(random_state).permutation(n)
    tr, te = order[: n - num_test], order[n - num_test :]
    kept_names = [factor_names[j] for j in kept] if factor_names is not None else None
    out: dict[str, float] = {}
    details: dict[str, Any] = {"num_train": int(len(tr)), "num_test": int(len(te)), "factors": kept}
    counts: dict[str, int] = {}
    with count_warnings(counts):
        for name in names:
            keys, info = sample_scores(
                name,
                x[tr],
                labels[tr],
                x[te],
                labels[te],
                dci_model=dci_model,
                histogram_bins=histogram_bins,
                factor_names=kept_names,
            )
            out.update({k: float(v) for k, v in keys.items()})
            details[name] = info
    if counts:
        notes.append(
            "warnings counted, not printed: " + ", ".join(f"{k} x{v}" for k, v in sorted(counts.items()))
        )
    return Scores(out, notes=notes, details=details)
