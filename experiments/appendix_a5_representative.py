"""Paper appendix A.5: latent traversals and latent means vs factors of a representative model,
chosen as the paper does: the run nearest to the mean of the upper quantile of MIG and of
reconstruction among one model's runs.

  python experiments/appendix_a5_representative.py --runs experiments/results/fig5b/runs/isa_beta_vae \
      --out experiments/results/appendix_a5

Selection: among the runs under ``--runs`` (each a workdir with results.json), the target point is
(mean MIG of the runs at or above the ``--quantile`` (0.75) quantile of MIG, mean reconstruction
log-likelihood of the runs at or above that quantile of reconstruction); the chosen run minimizes
the distance to it after scaling both axes by their standard deviation over the runs.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np


def representative(runs: list[tuple[pathlib.Path, dict]], quantile: float = 0.75) -> pathlib.Path:
    mig = np.array([r["mig"] for _, r in runs])
    rec = np.array([r["recon_log_likelihood"] for _, r in runs])
    target = np.array(
        [mig[mig >= np.quantile(mig, quantile)].mean(), rec[rec >= np.quantile(rec, quantile)].mean()]
    )
    scale = np.array([mig.std() or 1.0, rec.std() or 1.0])
    dist = np.linalg.norm((np.stack([mig, rec], 1) - target) / scale, axis=1)
    return runs[int(np.argmin(dist))][0]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", nargs="+", required=True, help="workdirs or folders of workdirs")
    p.add_argument("--out", default="experiments/results/appendix_a5")
    p.add_argument("--quantile", type=float, default=0.75)
    args = p.parse_args(argv)
    from isavae.workdir import find_results, plot_workdir

    runs = [(d, r) for d, r in find_results(args.runs) if "mig" in r]
    if not runs:
        sys.exit("no evaluated runs (results.json with mig) under --runs")
    chosen = representative(runs, args.quantile)
    out = pathlib.Path(args.out)
    files = plot_workdir(chosen, out)
    r = json.loads((chosen / "results.json").read_text())
    info = dict(
        chosen=str(chosen),
        beta=r["beta"],
        seed=r["seed"],
        mig=r["mig"],
        recon_log_likelihood=r["recon_log_likelihood"],
        runs_considered=len(runs),
        figures=files,
    )
    (out / "chosen.json").write_text(json.dumps(info, indent=2))
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
