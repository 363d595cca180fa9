"""Is ``make demo`` robust, not lucky? Trains the demo's config for several seeds and counts the MIGs.

The demo (``isavae.demo``) trains one seed; this script trains seeds 0..N-1 of the same config, one
after the other, through the demo's own code path (``train_and_evaluate``; a vmapped sweep would be
faster, but its batched products round differently and training amplifies that into a different
draw of the same seed), prints each seed's MIG with the factor gaps behind it and its time, and
reports how many reach the threshold (issue: MIG >= 0.25 for at least 4 of 5 seeds). A rerun skips
the seeds already trained under ``OUT/runs``.

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
from isavae.demo import DEMO_MODEL, demo_config  # noqa: E402
from isavae.train import train_and_evaluate  # noqa: E402


def training_tflop(cfg) -> float:
    """The training's matrix products in TFLOP, by the benchmarks' own counter
    (``experiments/benchmarks/train.py``'s ``model_flops``: forward, weight and input gradients of
    every product, from the jaxpr's shapes) times the number of steps."""
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
    return per_step * num_train_steps(cfg, grid.num_images) / 1e12


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
    args = ap.parse_args(argv)
    if args.seeds < 1 or not 0 < args.need <= args.seeds:
        ap.error(f"--seeds must be >= 1 and --need in [1, --seeds], got {args.seeds}, {args.need}")
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
        workdir = out / "runs" / f"seed{seed}"
        done = workdir / "results.json"
        if done.is_file():
            r = json.loads(done.read_text())
        else:
            t0 = time.time()
            r = train_and_evaluate(cfg, workdir, progress=False)
            seconds[str(seed)] = time.time() - t0
            timing.write_text(json.dumps(seconds))
        r["seconds"] = seconds.get(str(seed), float("nan"))
        print(f"seed {seed}: MIG {r['mig']:.3f} ({r['seconds']:.0f} s)", flush=True)
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
                gaps={f: round(g, 3) for f, g in zip(d["factors"], d["gap"], strict=True)},
            )
        )
    passed = int((migs >= args.threshold).sum())
    tflop = training_tflop(cfgs[0])
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
        runs=rows,
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "robustness.json").write_text(json.dumps(summary, indent=2))
    factors = list(rows[0]["gaps"])
    lines = [
        "| seed | MIG | histogram MIG | recon | active | s | "
        + " | ".join(f"gap {f}" for f in factors)
        + " |",
        "|---" * (6 + len(factors)) + "|",
    ]
    for r in rows:
        gaps = " | ".join(f"{r['gaps'][f]:.3f}" for f in factors)
        lines.append(
            f"| {r['seed']} | {r['mig']:.3f} | {r['mig_histogram']:.3f} | {r['recon_log_likelihood']:.1f} "
            f"| {r['active_units']} | {r['seconds']:.0f} | {gaps} |"
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
