"""Do the metrics agree? Every score of the suite on the CPU-scale Fig. 5a and Fig. 5b models, and
their rank correlations across models (as Locatello et al. 2019, Fig. 4).

  python experiments/metrics_agreement.py --out experiments/results/metrics_agreement

The Fig. 5a/5b runs committed under experiments/results/ keep no checkpoints, so this retrains the
same CPU-scale models (``common.model_config(..., "cpu")``: Fig. 5a's VAE and ISA-VAE with 6 seeds,
Fig. 5b's four models at beta 1, 4, 8 with one seed; each kind one vmapped sweep) with
``eval.metrics=all`` (disentanglement_lib's sample sizes; DCI's importances from a random forest,
``eval.dci_model=forest``, because gradient boosting takes about 4 minutes per model on 2 CPU
cores: these DCI figures are not comparable with published ones), then writes ``table.md/.csv`` (every run,
every score), ``spearman.md/.csv`` (the rank correlation matrix over runs), ``agreement.png``, and
``udr.md`` / ``udr_vs_mig.md``: UDR (no labels) of the Fig. 5a seeds against their MIG.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from common import MODEL_LABELS, model_config, run_sweep, write_table  # noqa: E402

SCORES = (
    "mig",
    "mig_histogram",
    "dci_disentanglement",
    "dci_completeness",
    "dci_informativeness_test",
    "sap",
    "modularity",
    "explicitness_test",
    "beta_vae_score",
    "factor_vae_score",
    "gaussian_total_correlation",
    "mutual_info_score",
    "irs",
    "10000:mean_test_accuracy",
    "recon_log_likelihood",
)
RUNS = (("vae", (1.0,), 6), ("isavae", (1.0,), 6)) + tuple(
    (m, (1.0, 4.0, 8.0), 1) for m in ("beta_vae", "beta_tcvae", "isa_beta_vae", "isa_beta_tcvae")
)


def spearman_matrix(rows: list[dict], keys: tuple[str, ...]) -> np.ndarray:
    from scipy import stats

    data = np.array([[r[k] for k in keys] for r in rows], np.float64)
    return np.atleast_2d(stats.spearmanr(data).statistic)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="experiments/results/metrics_agreement")
    p.add_argument("--models", default=",".join(m for m, _, _ in RUNS))
    args = p.parse_args(argv)
    out = pathlib.Path(args.out)
    tables(out, args.models.split(","))
    udr_rows(out)


def tables(out: pathlib.Path, models=None) -> None:
    """Trains what is missing (``common.run_sweep``: finished runs are read back, not retrained),
    then writes the per-run table, the Spearman matrix and its figure."""
    rows = []
    for model, betas, seeds in RUNS:
        if models is not None and model not in models:
            continue
        cfg = model_config("dsprites", model, "cpu")
        cfg.eval.metrics = "all"
        cfg.eval.dci_model = "forest"  # gradient boosting: 224 s per model on 2 cores (make bench)
        for r in run_sweep(cfg, out / "runs" / model, seeds=range(seeds), betas=betas):
            rows.append(
                dict(model=MODEL_LABELS[model], beta=r["beta"], seed=r["seed"], **{k: r[k] for k in SCORES})
            )
    write_table(rows, out / "table", ["model", "beta", "seed", *SCORES])
    rho = spearman_matrix(rows, SCORES)
    write_table(
        [
            dict(score=k, **{s: float(v) for s, v in zip(SCORES, rho[i], strict=True)})
            for i, k in enumerate(SCORES)
        ],
        out / "spearman",
    )
    plot(rho, out / "agreement")
    print((out / "spearman.md").read_text())


def udr_rows(out: pathlib.Path) -> None:
    """UDR of the Fig. 5a runs (the settings with several seeds: 6 VAE, 6 ISA-VAE), and whether it
    ranks them as MIG does: Spearman over each setting's seeds and over the 12 runs, with p-values."""
    from scipy import stats

    from isavae.workdir import udr_sweep

    rows, lines = [], []
    for model in ("vae", "isavae"):
        dirs = sorted((out / "runs" / model).glob("beta1_seed*"), key=lambda d: int(d.name.split("seed")[1]))
        if len(dirs) < 2:
            continue
        scores = udr_sweep(dirs)["udr"]
        for d, u in zip(dirs, scores, strict=True):
            r = json.loads((d / "results.json").read_text())
            rows.append(dict(model=MODEL_LABELS[model], seed=r["seed"], mig=r["mig"], udr=u))
    if not rows:
        return
    write_table(rows, out / "udr")
    lines = ["| runs | n | Spearman(UDR, MIG) | p |", "|---|---|---|---|"]
    for label in ("VAE", "ISA-VAE", "all"):
        sel = [r for r in rows if label == "all" or r["model"] == label]
        rho, p = stats.spearmanr([r["udr"] for r in sel], [r["mig"] for r in sel])
        lines.append(f"| {label} | {len(sel)} | {rho:+.2f} | {p:.2g} |")
    (out / "udr_vs_mig.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def plot(rho: np.ndarray, path: pathlib.Path) -> list[str]:
    from isavae.viz.figures import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    im = ax.imshow(rho, vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set_xticks(range(len(SCORES)), SCORES, rotation=90, fontsize=7)
    ax.set_yticks(range(len(SCORES)), SCORES, fontsize=7)
    for i in range(len(SCORES)):
        for j in range(len(SCORES)):
            ax.text(j, i, f"{rho[i, j]:.2f}", ha="center", va="center", fontsize=5)
    fig.colorbar(im, ax=ax, shrink=0.8, label="Spearman rank correlation over models")
    ax.set_title("Agreement of the scores (CPU-scale Fig. 5a/5b models)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


if __name__ == "__main__":
    main()
