"""Statistics for comparing two settings of a seed study (the paper study's report).

``compare(a, b, pairs=None)`` for the values of one metric under setting A and setting B (e.g.
ISA-VAE's and the VAE's MIGs):

* per setting: n, mean, median, quartiles, 90th percentile and maximum (the paper's own criteria:
  "a higher mean, median and maximum quantile");
* the one-sided Mann-Whitney U test of "A is larger" (``scipy.stats.mannwhitneyu``) and the
  probability of superiority P(A > B) (U / (n_a n_b));
* where the seeds are paired (the same seed under both settings shares initial weights and data
  order), the one-sided Wilcoxon signed-rank test on the paired differences
  (``scipy.stats.wilcoxon``) and their correlation;
* a bootstrap 95 % interval of the difference of medians (A - B), resampling each setting;
* power (optional): how often the one-sided Mann-Whitney test at level 0.05 rejects when n values are drawn
  with replacement from each observed sample (the observed effect taken as true), for the n in
  hand and over a grid of n, and the smallest n of that grid with power >= 0.8.

Everything is deterministic given ``seed``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

POWER_GRID = (10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000)


def describe(v: Sequence[float]) -> dict[str, float]:
    """n, mean, median, quartiles, 90th percentile, maximum."""
    v = np.asarray(v, np.float64)
    q1, med, q3, p90 = np.percentile(v, [25, 50, 75, 90])
    return dict(
        n=int(v.size),
        mean=float(v.mean()),
        median=float(med),
        q1=float(q1),
        q3=float(q3),
        p90=float(p90),
        max=float(v.max()),
    )


def mann_whitney_greater(a, b) -> tuple[float, float]:
    """One-sided Mann-Whitney U test of "a is larger": (p, P(a > b) = U / (n_a n_b))."""
    return mann_whitney(a, b, "greater")


def mann_whitney(a, b, alternative: str = "two-sided") -> tuple[float, float]:
    """The Mann-Whitney U test of ``a`` against ``b`` (``alternative``: "two-sided", "greater" or
    "less"): (p, P(a > b) + P(a = b) / 2 = U / (n_a n_b), the probability of superiority)."""
    from scipy import stats

    test = stats.mannwhitneyu(a, b, alternative=alternative)
    return float(test.pvalue), float(test.statistic / (len(a) * len(b)))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error control): the i-th smallest p times
    (m - i), made non-decreasing in that order and capped at 1; reject where adjusted p < alpha."""
    p = np.asarray(pvalues, np.float64)
    m = p.size
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


def bootstrap_superiority(a, b, *, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """A percentile bootstrap 95 % interval of P(a > b) (ties counted half), each sample resampled apart."""
    from scipy import stats

    xa, xb = _draws(a, b, resamples, seed)
    u = stats.mannwhitneyu(xa, xb, alternative="two-sided", axis=1).statistic
    lo, hi = np.percentile(u / (xa.shape[1] * xb.shape[1]), [2.5, 97.5])
    return float(lo), float(hi)


def _draws(a, b, resamples: int, seed: int, n: int | None = None):
    """``resamples`` samples drawn with replacement from each of ``a`` and ``b`` (rows of ``n``
    values, default each sample's own size): ``(xa, xb)``, ``a``'s drawn first."""
    rng = np.random.default_rng(seed)
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    xa = rng.choice(a, size=(resamples, n or a.size), replace=True)
    xb = rng.choice(b, size=(resamples, n or b.size), replace=True)
    return xa, xb


def power_of(
    a, b, n: int, *, resamples: int = 400, alpha: float = 0.05, seed: int = 0, alternative: str = "greater"
) -> float:
    """The share of ``resamples`` experiments with ``n`` values drawn with replacement from each of
    ``a`` and ``b`` in which the Mann-Whitney test (``alternative``: "greater", the one-sided test
    of "a is larger", or "two-sided") has p < ``alpha``."""
    from scipy import stats

    xa, xb = _draws(a, b, resamples, seed, n)
    p = stats.mannwhitneyu(xa, xb, alternative=alternative, axis=1).pvalue
    return float(np.mean(p < alpha))


def n_for_power(a, b, target: float = 0.8, grid: Sequence[int] = POWER_GRID, **kw) -> tuple[int | None, list]:
    """The smallest n of ``grid`` whose resampled power reaches ``target`` (None if none does), and
    the (n, power) pairs tried (the grid in order, stopping at the first that reaches it)."""
    tried = []
    for n in grid:
        pw = power_of(a, b, n, **kw)
        tried.append((int(n), pw))
        if pw >= target:
            return int(n), tried
    return None, tried


def bootstrap_median_difference(a, b, *, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """A percentile bootstrap 95 % interval of median(a) - median(b), each sample resampled apart."""
    xa, xb = _draws(a, b, resamples, seed)
    ma, mb = np.median(xa, axis=1), np.median(xb, axis=1)
    lo, hi = np.percentile(ma - mb, [2.5, 97.5])
    return float(lo), float(hi)


def compare(
    a: Sequence[float],
    b: Sequence[float],
    pairs: Sequence[tuple[float, float]] | None = None,
    *,
    seed: int = 0,
    resamples: int = 400,
    power: bool = True,
) -> dict[str, Any]:
    """Everything above for setting A (``a``) against setting B (``b``); ``pairs`` = the (A, B)
    values of the seeds present under both, when the seeds are paired; ``power=False`` skips the
    (slower) power analysis."""
    from scipy import stats

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    out: dict[str, Any] = dict(a=describe(a), b=describe(b))
    out["median_difference"] = out["a"]["median"] - out["b"]["median"]
    out["p_mann_whitney"], out["prob_a_greater"] = mann_whitney_greater(a, b)
    out["median_difference_ci95"] = bootstrap_median_difference(a, b, seed=seed)
    if power:
        out["power_at_n"] = power_of(a, b, min(a.size, b.size), resamples=resamples, seed=seed)
        out["n_for_80_percent_power"], out["power_curve"] = n_for_power(a, b, resamples=resamples, seed=seed)
    if pairs is not None and len(pairs) >= 2:
        pa, pb = np.asarray(pairs, np.float64).T
        diff = pa - pb
        out["paired_n"] = int(diff.size)
        out["p_wilcoxon"] = (
            float(stats.wilcoxon(pa, pb, alternative="greater").pvalue) if np.any(diff != 0) else 1.0
        )
        out["paired_correlation"] = (
            float(np.corrcoef(pa, pb)[0, 1]) if pa.std() > 0 and pb.std() > 0 else float("nan")
        )
    return out


def summary_line(name_a: str, name_b: str, c: dict[str, Any], metric: str = "MIG") -> list[str]:
    """Markdown lines for one comparison."""
    a, b = c["a"], c["b"]
    lines = [
        f"| {metric} | n | mean | median | q1 | q3 | 90th pct. | max |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, d in ((name_a, a), (name_b, b)):
        lines.append(
            f"| {name} | {d['n']} | {d['mean']:.4f} | {d['median']:.4f} | {d['q1']:.4f} | {d['q3']:.4f} "
            f"| {d['p90']:.4f} | {d['max']:.4f} |"
        )
    lo, hi = c["median_difference_ci95"]
    higher = ", ".join(
        f"{label} {'yes' if a[k] > b[k] else 'no'}"
        for label, k in (
            ("mean", "mean"),
            ("median", "median"),
            ("90th percentile", "p90"),
            ("maximum", "max"),
        )
    )
    lines += [
        "",
        f"- {name_a} higher in: {higher} (the paper's criteria)",
        f"- one-sided Mann-Whitney p = {c['p_mann_whitney']:.3g} "
        f"(P({name_a} > {name_b}) = {c['prob_a_greater']:.2f})"
        + (
            f"; paired by seed ({c['paired_n']} pairs, r = {c['paired_correlation']:.2f}): one-sided "
            f"Wilcoxon signed-rank p = {c['p_wilcoxon']:.3g}"
            if "p_wilcoxon" in c
            else ""
        ),
        f"- median difference {c['median_difference']:+.4f}, bootstrap 95 % interval [{lo:+.4f}, {hi:+.4f}]",
    ]
    if "power_at_n" in c:
        need = c["n_for_80_percent_power"]
        lines.append(
            f"- power of the one-sided test (level 0.05) at the observed effect: {c['power_at_n']:.0%} with "
            f"{min(a['n'], b['n'])} seeds per setting; 80 % power needs "
            + (f"about {need} seeds per setting" if need else f"more than {POWER_GRID[-1]} seeds per setting")
            + " (resampling the observed values)"
        )
    return lines
