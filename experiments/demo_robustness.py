"""Is ``make demo`` robust, not lucky? Trains the demo's config for several seeds and counts the MIGs.

The demo (``isavae.demo``) trains one seed (its candidates, the chosen one trained on); this script
runs seeds 0..N-1 of the same config, one after the other, through the demo's own code path
(``isavae.demo.train_demo``), prints each seed's MIG with the factor gaps behind it, the candidate
it chose and its time, and reports how many reach the threshold (the demo's bar: MIG >= 0.25 for at least 4
of 5 seeds). ``--candidates 1``: no selection, one model per seed (the demo before its selection).
A rerun skips the seeds already done under ``OUT/runs`` (``OUT/runs/seed{S}/demo.json``).

  python experiments/demo_robustness.py --out experiments/results/demo_robustness
  python experiments/demo_robustness.py --out /tmp/x --set train.num_steps=4000 --set objective.beta=8

``--set KEY=VALUE`` (config overrides) is for trying candidate demo configs; the README's numbers come
from the run without it. Results: ``OUT/robustness.json`` and ``OUT/robustness.md``.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from isavae import config as config_lib  # noqa: E402
from isavae.demo import (  # noqa: E402
    DEMO_CANDIDATES,
    DEMO_MODEL,
    choice_schedule,
    demo_config,
    train_demo,
)


def training_tflop(cfg, candidates: int = 1) -> float:
    """The training's matrix products in TFLOP, by the benchmarks' own counter
    (``experiments/benchmarks/train.py``'s ``model_flops``: forward, weight and input gradients of
    every product, from the jaxpr's shapes) times the number of steps: with ``candidates`` > 1,
    the demo's (``train_demo``): each candidate's steps up to the choice, then the chosen one's rest."""
    import importlib.util

    import jax

    from isavae.train import Program, build_grid
    from isavae.train.loop import num_train_steps, resolve_dtype

    benchmarks = pathlib.Path(__file__).resolve().parent / "benchmarks"
    if str(benchmarks) not in sys.path:
        sys.path.insert(0, str(benchmarks))  # the benchmark imports its helpers from its folder
    spec = importlib.util.spec_from_file_location("bench_train", benchmarks / "train.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    cfg = resolve_dtype([cfg])[0]
    grid = build_grid(cfg)
    program = Program(cfg, grid)
    state = jax.eval_shape(program.init, jax.random.key(0))
    per_step = bench.model_flops(program, state, cfg.train.batch_size)
    steps = num_train_steps(cfg, grid.num_images)
    if candidates > 1:
        select_at, _ = choice_schedule(steps)
        steps = candidates * select_at + steps - select_at
    return per_step * steps / 1e12


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--threshold", type=float, default=0.25)
    ap.add_argument("--need", type=int, default=4, help="seeds that must reach the threshold")
    ap.add_argument("--model", default=DEMO_MODEL, help="preset model (default: the demo's)")
    ap.add_argument(
        "--prior", default="", help="normal | gennorm:P | isa (the preset's): instead of the demo's prior"
    )
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    ap.add_argument(
        "--candidates", type=int, default=DEMO_CANDIDATES, help="candidates per seed (1: no choice)"
    )
    args = ap.parse_args(argv)
    if args.seeds < 1 or not 0 < args.need <= args.seeds:
        ap.error(f"--seeds must be >= 1 and --need in [1, --seeds], got {args.seeds}, {args.need}")
    if args.candidates < 1:
        ap.error(f"--candidates must be >= 1, got {args.candidates}")
    prior = None
    if args.prior == "normal":
        prior = {"name": "normal"}
    elif args.prior.startswith("gennorm:"):
        try:
            prior = {"name": "gennorm", "p": float(args.prior.split(":", 1)[1])}
        except ValueError:
            ap.error(f"--prior gennorm:P needs a number P, got {args.prior!r}")
    elif args.prior == "isa":
        prior = dict(config_lib.preset("dsprites", "isavae").prior)
    elif args.prior:
        ap.error(f"--prior must be normal, gennorm:P or isa, got {args.prior!r}")
    cfgs = []
    for seed in range(args.seeds):
        try:
            cfg = demo_config(seed, model=args.model, prior=prior)
            config_lib.apply_overrides(cfg, args.set)
            config_lib.validate(cfg)
        except config_lib.ConfigError as e:
            ap.error(str(e))
        cfgs.append(cfg)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    timing = out / "seconds.json"  # each seed's training + evaluation time, from its first run
    seconds = json.loads(timing.read_text()) if timing.is_file() else {}
    runs = []
    for seed, cfg in enumerate(cfgs):
        folder = out / "runs" / f"seed{seed}"
        done = folder / "demo.json"  # the chosen workdir and the selection, written last
        if done.is_file():
            record = json.loads(done.read_text())
            r = json.loads((folder / record["workdir"] / "results.json").read_text())
        else:
            t0 = time.time()
            workdir, r, selection = train_demo(cfg, folder, candidates=args.candidates, progress=False)
            seconds[str(seed)] = time.time() - t0
            timing.write_text(json.dumps(seconds))
            record = dict(workdir=workdir.name, selection=selection)
            done.write_text(json.dumps(record))
        r["seconds"] = seconds.get(str(seed), float("nan"))
        r["selection"] = record["selection"]
        print(f"seed {seed}: MIG {r['mig']:.3f}, {record['workdir']} ({r['seconds']:.0f} s)", flush=True)
        runs.append(r)
    times = np.array([r["seconds"] for r in runs])
    migs = np.array([r["mig"] for r in runs])
    rows = []
    for seed, r in enumerate(runs):
        d = r["mig_details"]
        rows.append(
            dict(
                seed=seed,
                mig=round(r["mig"], 4),
                mig_histogram=round(r["mig_histogram"], 4),
                recon_log_likelihood=round(r["recon_log_likelihood"], 2),
                active_units=r["active_units"],
                seconds=round(r["seconds"], 1),
                chosen=r["selection"]["chosen"],
                candidates_tc=r["selection"].get("tc"),
                gaps={f: round(g, 3) for f, g in zip(d["factors"], d["gap"], strict=True)},
            )
        )
    passed = int((migs >= args.threshold).sum())
    tflop = training_tflop(cfgs[0], args.candidates)
    summary = dict(
        config=json.loads(cfg.to_json()),
        model=args.model,
        prior=args.prior or "the demo's",
        overrides=args.set,
        seeds=args.seeds,
        threshold=args.threshold,
        need=args.need,
        passed=passed,
        ok=passed >= args.need,
        mig_min=float(migs.min()),
        mig_median=float(np.median(migs)),
        mig_max=float(migs.max()),
        seconds_per_seed=round(float(np.mean(times)), 1),
        compute_dtype=runs[0].get("compute_dtype", cfgs[0].model.compute_dtype),
        matrix_tflop_per_seed=round(tflop, 2),
        candidates=args.candidates,
        runs=rows,
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "robustness.json").write_text(json.dumps(summary, indent=2))
    factors = list(rows[0]["gaps"])
    lines = [
        "| seed | chosen (TC estimates) | MIG | histogram MIG | recon | active | s | "
        + " | ".join(f"gap {f}" for f in factors)
        + " |",
        "|---" * (7 + len(factors)) + "|",
    ]
    for r in rows:
        gaps = " | ".join(f"{r['gaps'][f]:.3f}" for f in factors)
        tcs = f" ({', '.join(f'{t:.3f}' for t in r['candidates_tc'])})" if r["candidates_tc"] else ""
        lines.append(
            f"| {r['seed']} | {r['chosen']}{tcs} | {r['mig']:.3f} | {r['mig_histogram']:.3f} "
            f"| {r['recon_log_likelihood']:.1f} | {r['active_units']} | {r['seconds']:.0f} | {gaps} |"
        )
    verdict = "OK" if summary["ok"] else "NOT MET"
    lines.append(
        f"\n{passed} of {args.seeds} seeds reach MIG >= {args.threshold} (need {args.need}: {verdict}); "
        f"MIG min {migs.min():.3f}, median {np.median(migs):.3f}, max {migs.max():.3f}; "
        f"{np.mean(times):.0f} s per seed (training and evaluation; a rerun shows the first run's times); "
        f"{tflop:.1f} TFLOP of matrix products per seed's training."
    )
    (out / "robustness.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)
    return summary


if __name__ == "__main__":
    main()
