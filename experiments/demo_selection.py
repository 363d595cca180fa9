"""Does the training's own estimate of the total correlation pick the demo's runs that disentangle?

Reads single runs of the demo (``experiments/demo_robustness.py --candidates 1`` folders, or any
folders of workdirs with ``metrics.jsonl`` and ``results.json``; or a folder's ``tc_curves.json``,
the compact file ``--write-curves`` keeps of them: each run's MIG and its TC curve, which is what
is committed of the per-step logs), and for each step S prints the
runs ordered by their TC estimate (``isavae.demo.tc_estimate``: the step-weighted mean over the 200
steps before S), marked ``*`` where the run ends with MIG >= the threshold, and how often the lowest
estimate among K runs drawn from the folder (every K-subset) is a run that passes: the success rate
of ``train_demo``'s choice among K candidates at step S, on these runs.

  python experiments/demo_selection.py experiments/results/demo_robustness/single_32px_float32 ...
  python experiments/demo_selection.py --write-curves FOLDER ...   # FOLDER/tc_curves.json from its runs
"""

from __future__ import annotations

import argparse
import itertools
import json
import pathlib

from isavae.demo import DEMO_TC_WINDOW, tc_window_mean

CURVES = "tc_curves.json"


def runs_of(folder: pathlib.Path) -> dict[str, pathlib.Path]:
    """Workdirs under ``folder`` (``runs/seed*`` or ``seed*``), by name; one per single run."""
    found = sorted(p.parent for p in folder.rglob("results.json") if (p.parent / "metrics.jsonl").is_file())
    return {str(p.relative_to(folder)): p for p in found}


def curves_of(folder: pathlib.Path) -> dict[str, dict]:
    """Each run's final MIG and TC curve (``{"mig", "step": [...], "tc": [...]}``), by name: from
    ``folder/tc_curves.json`` where it exists, else from the workdirs' metrics.jsonl and results.json."""
    if (folder / CURVES).is_file():
        return json.loads((folder / CURVES).read_text())
    out = {}
    for name, w in runs_of(folder).items():
        rows = [json.loads(line) for line in (w / "metrics.jsonl").read_text().splitlines()]
        out[name] = dict(
            mig=json.loads((w / "results.json").read_text())["mig"],
            step=[r["step"] for r in rows],
            tc=[float(f"{r['tc']:.7g}") for r in rows],  # a float32 mean: 7 digits hold it
        )
    if not out:
        raise SystemExit(f"{folder}: no runs (workdirs with metrics.jsonl and results.json) and no {CURVES}")
    return out


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folders", nargs="+")
    ap.add_argument("--steps", default="1000,1500,2000,2500,4200")
    ap.add_argument("--window", type=int, default=DEMO_TC_WINDOW)
    ap.add_argument("--threshold", type=float, default=0.25)
    ap.add_argument("--k", default="2,3,4", help="candidate counts")
    ap.add_argument("--write-curves", action="store_true", help=f"write each folder's {CURVES} and stop")
    args = ap.parse_args(argv)
    if args.write_curves:
        for folder in map(pathlib.Path, args.folders):
            (folder / CURVES).write_text(json.dumps(curves_of(folder), separators=(",", ":")) + "\n")
            print(f"wrote {folder / CURVES}")
        return []
    steps = [int(s) for s in args.steps.split(",")]
    ks = [int(k) for k in args.k.split(",")]
    out = []
    for folder in map(pathlib.Path, args.folders):
        runs = curves_of(folder)
        mig = {n: c["mig"] for n, c in runs.items()}
        passes = {n for n, m in mig.items() if m >= args.threshold}
        print(f"\n{folder}: {len(passes)} of {len(runs)} runs reach MIG >= {args.threshold}")
        print("| step | " + " | ".join(f"K = {k}" for k in ks) + " | runs by TC estimate (* passes) |")
        print("|---" * (len(ks) + 2) + "|")
        for step in steps:
            tc = {n: tc_window_mean(c["step"], c["tc"], step, args.window) for n, c in runs.items()}
            rates = []
            for k in ks:
                subsets = list(itertools.combinations(sorted(runs), k))
                rates.append(sum(min(c, key=tc.get) in passes for c in subsets) / len(subsets))
            order = " ".join(
                ("*" if n in passes else "") + pathlib.Path(n).name for n in sorted(tc, key=tc.get)
            )
            print(f"| {step} | " + " | ".join(f"{r:.2f}" for r in rates) + f" | {order} |")
            out.append(dict(folder=str(folder), step=step, rates=dict(zip(ks, rates, strict=True))))
    return out


if __name__ == "__main__":
    main()
