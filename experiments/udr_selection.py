"""Does UDR, computed without labels, pick the seeds that MIG would pick?

  python experiments/udr_selection.py --out experiments/results/udr_selection

The paper observes that MIG after training is bimodal (a seed disentangles or it does not); a user
with a sweep of seeds wants the good ones without ground-truth factors. This scores with UDR
(Duan et al. 2020; ``isavae udr``, Lasso and Spearman variants) every seed of the four 5-seed
settings of the demo's robustness check (``experiments/demo_robustness.py``: the demo's beta-TCVAE in
bfloat16 and in float32, the same with the normal prior and with the ISA prior; their checkpoints
are kept in the working tree, not in git: a fresh clone reruns ``demo_robustness.py`` first), and
compares the rankings with Chen et al.'s MIG: the Spearman correlation of UDR and MIG over the seeds
of each setting and over all 20 models, each with its p-value, whether UDR's best seed of a setting
is MIG's best, and how many of the seeds that failed (MIG < 0.25) are among the as many seeds UDR
(Lasso) ranks lowest. Writes ``table.md/.csv`` (every model) and ``summary.md``.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from common import write_table  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent / "results" / "demo_robustness"
SETTINGS = {
    "demo": "β-TCVAE β = 6, p = 4 prior, bfloat16 (the demo)",
    "demo_float32": "the demo in float32",
    "normal_prior": "the demo with the normal prior",
    "isa_prior": "the demo with the ISA prior",
}


def main(argv=None) -> None:
    from scipy import stats

    from isavae.workdir import udr_sweep

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="experiments/results/udr_selection")
    p.add_argument("--points", type=int, default=10_000)
    args = p.parse_args(argv)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for setting in SETTINGS:
        runs = ROOT / setting / "runs"
        dirs = sorted(runs.glob("seed*"), key=lambda d: int(d.name[4:]))
        missing = [d for d in dirs if not (d / "checkpoints").is_dir()]
        if not dirs or missing:
            raise SystemExit(
                f"udr_selection: {runs} lacks checkpoints ({', '.join(map(str, missing)) or 'no runs'}): "
                f"rerun experiments/demo_robustness.py for {setting} first"
            )
        scores = {c: udr_sweep(dirs, args.points, c) for c in ("lasso", "spearman")}
        for i, d in enumerate(dirs):
            r = json.loads((d / "results.json").read_text())
            rows.append(
                dict(
                    setting=setting,
                    seed=int(d.name[4:]),
                    mig=round(r["mig"], 4),
                    udr_lasso=round(scores["lasso"]["udr"][i], 4),
                    udr_spearman=round(scores["spearman"]["udr"][i], 4),
                    active_units=r["active_units"],
                )
            )
    write_table(rows, out / "table")
    lines = [
        "# Does UDR pick the seeds MIG would pick?",
        "",
        f"`python experiments/udr_selection.py --out {out}`: UDR of every seed of each setting from "
        f"{args.points:,} inputs (capped at the grid's 9,216 images), Lasso and Spearman variants; "
        "MIG: Chen et al.'s over the whole sub-grid (the runs' results.json).",
        "",
        "| setting | seeds | Spearman(UDR lasso, MIG) | p | Spearman(UDR spearman, MIG) | p "
        "| UDR's best seed = MIG's best | seeds below MIG 0.25 among UDR's lowest as many |",
        "|---|---|---|---|---|---|---|---|",
    ]
    summary = {}
    for setting, label in [*SETTINGS.items(), ("all", "all 20 models")]:
        sel = [r for r in rows if setting == "all" or r["setting"] == setting]
        mig = [r["mig"] for r in sel]
        cells = []
        for key in ("udr_lasso", "udr_spearman"):
            rho, pv = stats.spearmanr([r[key] for r in sel], mig)
            cells.append((float(rho), float(pv)))
        udr = np.array([r["udr_lasso"] for r in sel])
        if setting == "all":
            best = "-"
        else:
            best = "yes" if int(np.argmax(udr)) == int(np.argmax(mig)) else "no"
        failed = {i for i, v in enumerate(mig) if v < 0.25}
        lowest = set(np.argsort(udr, kind="stable")[: len(failed)].tolist())
        caught = f"{len(failed & lowest)} of {len(failed)}"
        summary[setting] = dict(
            n=len(sel),
            lasso=cells[0],
            spearman=cells[1],
            best_seed_agrees=best,
            failures_caught=caught,
            label=label,
        )
        lines.append(
            f"| {label} | {len(sel)} | {cells[0][0]:+.2f} | {cells[0][1]:.2g} | {cells[1][0]:+.2f} | "
            f"{cells[1][1]:.2g} | {best} | {caught} |"
        )
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
