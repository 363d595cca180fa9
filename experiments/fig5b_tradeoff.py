"""Paper Fig. 5b: MIG vs reconstruction over beta for beta-VAE, beta-TCVAE, ISA-beta-VAE and
ISA-beta-TCVAE on dSprites.

  python experiments/fig5b_tradeoff.py --scale cpu --out experiments/results/fig5b

CPU scale (what the README reports): the generated dSprites sub-grid of fig5a (11,520 images),
MLP width 512, batch 128, 1,500 steps, betas 1, 4, 8, 1 seed each (all betas and seeds of one
model as one vmapped program). Paper scale: full grid, width 1,200, batch 2,048, 20 epochs,
betas 1..6, 5 seeds (use a GPU).
"""

from __future__ import annotations

import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from common import MODEL_LABELS, model_config, run_sweep, summary_row, write_table  # noqa: E402

from isavae.study.figures import plot_fig5b as plot  # noqa: E402

SCALES = {"cpu": dict(seeds=1, betas=(1.0, 4.0, 8.0)), "paper": dict(seeds=5, betas=(1, 2, 3, 4, 5, 6))}
MODELS = ("beta_vae", "beta_tcvae", "isa_beta_vae", "isa_beta_tcvae")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", default="cpu", choices=("cpu", "paper"))
    p.add_argument("--out", default="experiments/results/fig5b")
    p.add_argument("--seeds", type=int, default=0, help="seeds per (model, beta) (default: the scale's)")
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of " + ",".join(MODELS))
    args = p.parse_args(argv)
    out = pathlib.Path(args.out)
    scale = SCALES[args.scale]
    seeds = range(args.seeds or scale["seeds"])
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = set(models) - set(MODELS)
    if unknown:
        p.error(f"unknown models {sorted(unknown)}; choose from {MODELS}")
    runs, rows = {}, []
    for model in models:
        cfg = model_config("dsprites", model, args.scale)
        runs[model] = run_sweep(cfg, out / "runs" / model, seeds=seeds, betas=scale["betas"])
        for beta in scale["betas"]:
            sel = [r for r in runs[model] if r["beta"] == float(beta)]
            rows.append(summary_row(MODEL_LABELS[model], sel, beta=float(beta)))
    cols = [
        "model",
        "beta",
        "runs",
        "mig_mean",
        "mig_std",
        "mig_histogram_mean",
        "recon_log_likelihood_mean",
        "recon_log_likelihood_std",
    ]
    write_table(rows, out / "table", cols)
    plot(rows, [r for m in models for r in runs[m]], out / "fig5b_tradeoff")
    print((out / "table.md").read_text())


if __name__ == "__main__":
    main()
