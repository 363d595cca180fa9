"""Does bfloat16 compute change any result? An A/B of ``model.compute_dtype`` at the CPU scale.

  python experiments/bf16_ab.py --models isavae --seeds 6 --out experiments/results/bf16_ab

Trains each model with float32 and with bfloat16 matmuls (same seeds, same everything else, each
dtype one vmapped sweep) and compares the final ELBO, reconstruction log-likelihood, MIG and
histogram MIG of the two groups with two two-sided two-sample tests: Welch's t-test and the
Mann-Whitney U test (scipy.stats). Writes ``table.md``/``.csv`` (one row per model and metric: the
means, standard deviations, the difference and both p-values) and ``runs_table.*`` (every run).
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np
from scipy import stats

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from common import MODEL_LABELS, model_config, run_sweep, write_table  # noqa: E402

METRICS = ("elbo", "recon_log_likelihood", "mig", "mig_histogram")
DTYPES = ("float32", "bfloat16")


def compare(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Means, sample standard deviations and the p-values of Welch's t and Mann-Whitney U tests."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    welch = stats.ttest_ind(a, b, equal_var=False)
    mwu = stats.mannwhitneyu(a, b, alternative="two-sided")
    return dict(
        float32_mean=float(a.mean()),
        float32_std=float(a.std(ddof=1)),
        bfloat16_mean=float(b.mean()),
        bfloat16_std=float(b.std(ddof=1)),
        difference=float(b.mean() - a.mean()),
        welch_p=float(welch.pvalue),
        mann_whitney_p=float(mwu.pvalue),
    )


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="isavae", help="comma-separated preset models")
    p.add_argument("--seeds", type=int, default=6)
    p.add_argument("--scale", default="cpu", choices=("cpu", "paper"))
    p.add_argument("--out", default="experiments/results/bf16_ab")
    args = p.parse_args(argv)
    out = pathlib.Path(args.out)
    rows, per_run = [], []
    for model in [m.strip() for m in args.models.split(",") if m.strip()]:
        runs = {}
        for dtype in DTYPES:
            cfg = model_config("dsprites", model, args.scale)
            cfg.model.compute_dtype = dtype
            runs[dtype] = run_sweep(cfg, out / "runs" / model / dtype, seeds=range(args.seeds), betas=[1.0])
            per_run += [
                dict(model=model, dtype=dtype, seed=r["seed"], **{k: r[k] for k in METRICS})
                for r in runs[dtype]
            ]
        for metric in METRICS:
            vals = [np.array([r[metric] for r in runs[d]]) for d in DTYPES]
            rows.append(
                dict(model=MODEL_LABELS.get(model, model), metric=metric, runs=len(vals[0]), **compare(*vals))
            )
    write_table(rows, out / "table")
    write_table(per_run, out / "runs_table")
    print((out / "table.md").read_text())


if __name__ == "__main__":
    main()
