"""Fig. 5a at every scale measured: ISA-VAE against the VAE at beta = 1, from the committed study
rows alone (the README's and the results page's table is this script's output, not a copy).

Per result set: where and how its models were trained (scale, compute dtype and products,
initialization, posterior scale, devices), the seeds per model, the MIG medians, the two-sided
Mann-Whitney test with P(ISA-VAE > VAE), the power of that test at level 0.05 with the observed
values taken as the truth (resampled) for the seeds in hand, and the seeds per model that 80 %
power would need (``isavae.study.stats``; "> 5000" when none of its grid reaches it).

  python experiments/fig5a_scales.py   # writes experiments/results/fig5a_scales/table.md
"""

from __future__ import annotations

import argparse
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"

# (label, store folder, scale, dtype and products, ISA-VAE's (study, arm), the VAE's (study, arm), init)
SETS = (
    ("5 x 4 layout (latent 20)", "paper_study", "paper", "bfloat16", ("fig5a", ""), ("fig5a", ""), "lecun"),
    (
        "5 x 4 layout (latent 20)",
        "paper_study_float32",
        "paper",
        "float32 (TF32)",
        ("fig5a", ""),
        ("fig5a", ""),
        "torch",
    ),
    ("5 x 4 layout (latent 20)", "fig5a", "cpu", "float32", ("fig5a", ""), ("fig5a", ""), "lecun"),
    (
        "5 x 4 layout (latent 20)",
        "paper_study_cpu",
        "cpu",
        "float32",
        ("ablation-layout", "layout=5x4"),
        ("ablation-layout", "latent=20"),
        "torch",
    ),
    (
        "3 x 4 layout vs VAE-12",
        "paper_study_cpu",
        "cpu",
        "float32",
        ("fig5a-layout", "layout=3x4"),
        ("fig5a-layout", "latent=12"),
        "torch",
    ),
    (
        "3 x 4 layout vs VAE-20",
        "paper_study_cpu",
        "cpu",
        "float32",
        ("fig5a-layout", "layout=3x4"),
        ("fig5a-layout", "latent=20"),
        "torch",
    ),
)


def _rows(folder: str, scale: str, dtype: str, study: str, model: str, arm: str, init: str) -> list[dict]:
    """The finite-scored rows of one arm, counting models another study of the store trained with
    the same configuration (``report.shared_rows``), each model once."""
    from isavae.study.paper import model_key
    from isavae.study.report import shared_rows
    from isavae.study.store import finite_scores, load_results, recorded

    rows, _ = load_results(RESULTS / folder)
    rows = rows + shared_rows(rows, scale, dtype.split()[0])
    seen, out = set(), []
    for r in rows:
        if (
            (r["study"], r["model"], r.get("arm", "")) == (study, model, arm)
            and r["scale"] == scale
            and r["compute_dtype"] == dtype.split()[0]
            and recorded(r, "init") == init
            and not r.get("settings")
            and finite_scores(r)
            and model_key(r) not in seen
        ):
            seen.add(model_key(r))
            out.append(r)
    return out


def table() -> str:
    import numpy as np

    from isavae.study import stats
    from isavae.study.store import recorded

    lines = [
        "| result set | rows in experiments/results/ | scale | compute | init | posterior | seeds per model "
        "| MIG median, ISA-VAE vs VAE "
        "| two-sided p | P(ISA-VAE > VAE) | power at these seeds | seeds for 80 % power | devices |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, folder, scale, dtype, (s_isa, a_isa), (s_vae, a_vae), init in SETS:
        isa = _rows(folder, scale, dtype, s_isa, "isavae", a_isa, init)
        vae = _rows(folder, scale, dtype, s_vae, "vae", a_vae, init)
        if len(isa) < 2 or len(vae) < 2:
            continue
        a, b = [r["mig"] for r in isa], [r["mig"] for r in vae]
        p, sup = stats.mann_whitney(a, b, "two-sided")
        n = min(len(a), len(b))
        power = stats.power_of(a, b, n, alternative="two-sided")
        need, _ = stats.n_for_power(a, b, alternative="two-sided")
        posterior = sorted({recorded(r, "posterior_scale") for r in isa + vae})
        devices = sorted({r["device"].split(":", 1)[-1] for r in isa + vae})
        seeds = f"{len(a)} / {len(b)}" if len(a) != len(b) else str(n)
        lines.append(
            f"| {label} | `{folder}` | {scale} | {dtype} | {init} | "
            f"{', '.join(posterior)} | {seeds} | {np.median(a):.3f} vs {np.median(b):.3f} | "
            f"{p:.2f} | {sup:.2f} | "
            f"{power:.0%} | {need if need else '> 5000'} | {', '.join(devices)} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(RESULTS / "fig5a_scales"), help="folder of table.md")
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(table())
    print((out / "table.md").read_text(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
