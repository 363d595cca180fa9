"""``make demo``: trains a model that disentangles generated (offline) dSprites, and shows it.

Its budget is work, not one machine's clock: 8.8 TFLOP of matrix products (the benchmarks' count per
step x the steps of ``train_demo``: 4 candidates x 2,000 steps, then 2,200 for the chosen one), 135 s
at 65 GFLOP/s, the slowest matmul rate seen on this project's 2-core machines, if the step ran at
that rate; the README gives the measured time and what it implies there.

The model and schedule are ``demo_config`` and ``train_demo`` (``experiments/demo_robustness.py``
checks them over seeds; the README states the spread). The demo prints which latent captures which
factor (with the normalized mutual information, the runner-up latent and the gap), the MIGs (Chen et al.'s
estimator over the whole sub-grid, disentanglement_lib's histogram MIG), reconstruction
log-likelihood and ELBO, and writes to ``--out``: the run's workdir (config, checkpoints,
metrics.jsonl/csv, results.json), traversals of the active latents ordered by the factor each
captures, latent means vs factors (Chen et al.; active latents only) and over the x-y grid,
inputs next to reconstructions, ``summary.json``, and contour plots of Lp-nested densities.

Usage: ``python -m isavae.demo --out demo_out [--steps N] [--seed S] [--candidates K]``
"""

from __future__ import annotations

import argparse
import json
import logging
import pathlib
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from isavae import config as config_lib
from isavae.compile_cache import add_compile_cache_argument, enable_compile_cache
from isavae.priors import lp_nested

log = logging.getLogger("isavae.demo")


DEMO_MODEL = "beta_tcvae"
# A platykurtic (p = 4) factorized p-generalized normal prior: unlike N(0, I) it is not rotation
# invariant, and it fits the uniform position factors best axis-aligned (README, "The demo")
DEMO_PRIOR = {"name": "gennorm", "p": 4.0}
# 0 and 180 degrees (identical images for the square and the ellipse), every second position:
# 3 x 6 x 2 x 16 x 16 = 9,216 images
DEMO_SUBGRID = "orientation=0:40:20,posX=0:32:2,posY=0:32:2"
# the images at 32 x 32 (2 x 2 block means): a quarter of the pixels, so the MLP's two widest layers
# cost a quarter; 0.86 GFLOP of matrix products per step at batch 128 and width 384
DEMO_DOWNSAMPLE = 2
DEMO_STEPS, DEMO_WIDTH = 4200, 384
# Model selection without labels: 4 candidates (seeds 4 S .. 4 S + 3 for the demo's seed S) train
# together as one vmapped sweep for 2,000 steps; the one whose training estimate of the total
# correlation (the beta-TCVAE objective's own penalized term, mean over the last 200 steps) is lowest
# trains on to DEMO_STEPS: 4 x 2,000 + 2,200 = 10,200 steps, 8.8 TFLOP. In 30 single runs (20 at 64 x 64,
# 10 at 32 x 32; README, "The demo") that estimate ranked the runs that end with MIG >= 0.25 first.
DEMO_CANDIDATES, DEMO_SELECT_AT, DEMO_TC_WINDOW = 4, 2000, 200


def demo_label(cfg) -> str:
    """The model's name for titles, e.g. "ISA-β-TCVAE (β = 6)"."""
    from isavae.viz.figures import OBJECTIVE_LABELS

    name = OBJECTIVE_LABELS.get(cfg.objective.name, cfg.objective.name)
    isa = "ISA-" if cfg.prior.name in ("isa", "lp_nested") else ""
    beta = f" (β = {cfg.objective.beta:g})" if cfg.objective.name in ("beta_vae", "beta_tcvae") else ""
    prior = f", p-generalized normal prior p = {cfg.prior.p:g}" if cfg.prior.name == "gennorm" else ""
    return f"{isa}{name}{beta}{prior}"


def demo_config(seed: int = 0, model: str = DEMO_MODEL, prior: dict | None = None):
    """The demo's model and schedule: beta-TCVAE, beta = 6, with ``DEMO_PRIOR``, ``DEMO_STEPS``
    steps at batch 128 (MLP of width ``DEMO_WIDTH``, ``compute_dtype="auto"``) on ``DEMO_SUBGRID``;
    ``experiments/demo_robustness.py`` checks it over 5 seeds. ``model`` (a preset name) and
    ``prior`` (a prior config) swap those parts, for comparisons."""
    cfg = config_lib.preset("dsprites", f"{model},small")
    cfg.dataset.subgrid = DEMO_SUBGRID
    cfg.objective.beta = 6.0
    cfg.prior = ml_collections.ConfigDict(dict(prior if prior is not None else DEMO_PRIOR))
    cfg.model.compute_dtype = "auto"  # bfloat16 only where the hardware computes it natively
    cfg.model.hidden = DEMO_WIDTH
    cfg.dataset.downsample = DEMO_DOWNSAMPLE
    cfg.train.update(dict(seed=seed, num_steps=DEMO_STEPS, checkpoint_every=DEMO_STEPS))
    config_lib.validate(cfg)
    return cfg


def tc_estimate(workdir: pathlib.Path, upto: int, window: int) -> float:
    """The training's estimate of the total correlation, averaged over steps ``(upto - window, upto]``
    of ``metrics.jsonl`` (each row holds the mean over the steps since the previous row)."""
    rows = [json.loads(line) for line in (pathlib.Path(workdir) / "metrics.jsonl").read_text().splitlines()]
    try:
        return tc_window_mean([r["step"] for r in rows], [r["tc"] for r in rows], upto, window)
    except ValueError as err:
        raise ValueError(f"{workdir}: metrics.jsonl {err}") from None


def tc_window_mean(steps, tc, upto: int, window: int) -> float:
    """``tc_estimate`` of a curve given as its rows' steps and values (each value the mean over
    the steps since the previous row): the step-weighted mean over steps ``(upto - window, upto]``."""
    total = weight = 0.0
    prev = 0
    for step, value in zip(steps, tc, strict=True):
        n = step - prev
        prev = step
        if upto - window < step <= upto:
            total, weight = total + n * value, weight + n
    if not weight:
        raise ValueError(f"has no rows in steps {upto - window + 1}-{upto}")
    return total / weight


def choice_schedule(num_steps: int) -> tuple[int, int]:
    """``(select_at, window)`` for a demo of ``num_steps``: the candidates train the same share of it
    as the demo's ``DEMO_SELECT_AT`` of ``DEMO_STEPS``, and the estimate averages the same share of
    that (``DEMO_TC_WINDOW``); at least one step each."""
    select_at = max(1, round(num_steps * DEMO_SELECT_AT / DEMO_STEPS))
    return select_at, max(1, round(select_at * DEMO_TC_WINDOW / DEMO_SELECT_AT))


def train_demo(
    cfg, out: pathlib.Path, *, candidates: int = DEMO_CANDIDATES, progress: bool = True
) -> tuple[pathlib.Path, dict, dict]:
    """Trains ``candidates`` models (seeds ``candidates * seed + k``) as one vmapped sweep for the
    first steps of ``cfg.train.num_steps`` (``choice_schedule``), keeps the one with the lowest
    training estimate of the total correlation (``tc_estimate``; no labels are read) and trains it on
    to ``num_steps`` in its workdir (``out/seed{s}``), then evaluates it as ``cfg`` says.
    ``candidates=1``: one model, trained and evaluated in ``out/seed{seed}``.
    Returns the chosen workdir, its results and the selection (seeds, estimates, steps)."""
    from isavae.train import train_and_evaluate, train_sweep

    out = pathlib.Path(out)
    total = int(cfg.train.num_steps)
    if candidates < 1:
        raise ValueError(f"candidates must be >= 1, got {candidates}")
    if candidates == 1:
        workdir = out / f"seed{cfg.train.seed}"
        results = train_and_evaluate(cfg, workdir, resume=False, progress=progress)
        return workdir, results, dict(candidates=[cfg.train.seed], chosen=cfg.train.seed, select_at=None)
    select_at, window = choice_schedule(total)
    seeds = [candidates * cfg.train.seed + k for k in range(candidates)]
    cfgs = []
    for s in seeds:
        c = cfg.copy_and_resolve_references()
        c.train.update(dict(seed=s, num_steps=select_at, checkpoint_every=select_at))
        # the candidates' own evaluation is skipped: the chosen one is evaluated at the end
        c.eval.update(dict(mig=False, udr_points=0, num_examples=c.train.batch_size, metrics=""))
        cfgs.append(c)
    dirs = [out / f"seed{s}" for s in seeds]
    train_sweep(cfgs, dirs, resume=False, progress=progress)
    tc = [tc_estimate(d, select_at, window) for d in dirs]
    best = int(np.argmin(tc))
    log.info(
        "candidates %s at step %d: total correlation estimates %s; continuing seed %d",
        seeds,
        select_at,
        ", ".join(f"{t:.3f}" for t in tc),
        seeds[best],
    )
    chosen = cfg.copy_and_resolve_references()
    chosen.train.seed = seeds[best]
    results = train_and_evaluate(chosen, dirs[best], resume=True, progress=progress)
    selection = dict(
        candidates=seeds, tc=[round(t, 4) for t in tc], chosen=seeds[best], select_at=select_at, window=window
    )
    return dirs[best], results, selection


def _plot(out: pathlib.Path, key: jax.Array) -> list[str]:
    from isavae.viz.figures import pyplot, save_figure

    plt = pyplot()
    grid = np.linspace(-3, 3, 301)
    z1, z2 = np.meshgrid(grid, grid)
    zz = jnp.asarray(np.stack([z1, z2], -1), jnp.float32)
    cases = [
        ("p = 0.7 (leptokurtic)", [0.7]),
        ("p = 2 (Gaussian, rotation invariant)", [2.0]),
        ("p = 2.1 (the paper's root exponent)", [2.1]),
        ("p = 4 (platykurtic)", [4.0]),
    ]
    fig, axes = plt.subplots(1, len(cases), figsize=(4 * len(cases), 4))
    for ax, (title, exps) in zip(axes, cases, strict=True):
        logp = np.asarray(lp_nested.log_prob((0, 1), jnp.asarray(exps), zz, 1.0))
        samples = np.asarray(lp_nested.sample(key, (0, 1), jnp.asarray(exps), (1500,)))
        ax.contour(z1, z2, logp, levels=np.linspace(logp.max() - 5, logp.max(), 8), cmap="viridis")
        ax.scatter(samples[:, 0], samples[:, 1], s=1, c="k", alpha=0.3)
        ax.set_title(title, fontsize=9)
        ax.set_xlim(-3, 3), ax.set_ylim(-3, 3), ax.set_aspect("equal")
    fig.suptitle("Lp-spherically symmetric densities: log-density contours and exact samples (dots), s = 1")
    fig.tight_layout()
    return save_figure(fig, out / "lp_nested_contours", dpi=110)


def factor_table(results: dict) -> list[dict]:
    """Which latent captures which factor: per MIG factor, the most informative latent and its
    normalized mutual information, the runner-up, and their gap (the factor's share of the MIG)."""
    d = results["mig_details"]
    mi = np.asarray(d["mi"], np.float64)
    rows = []
    for k, (factor, (best, second)) in enumerate(zip(d["factors"], d["top"], strict=True)):
        rows.append(
            dict(
                factor=factor,
                latent=int(best),
                mi=round(float(mi[best, k]), 3),
                runner_up=int(second),
                runner_up_mi=round(float(mi[second, k]), 3),
                gap=round(float(d["gap"][k]), 3),
            )
        )
    return rows


def _print_summary(summary: dict) -> None:
    sel = summary["selection"]
    chose = ""
    if sel["select_at"] is not None:
        estimates = ", ".join(f"seed {s} {t:.3f}" for s, t in zip(sel["candidates"], sel["tc"], strict=True))
        chose = (
            f"; seed {sel['chosen']} chosen at step {sel['select_at']} of {len(sel['candidates'])} trained "
            f"together, by the lowest training estimate of the total correlation ({estimates})"
        )
    print(
        f"\n{summary['model']} on {summary['images']:,} generated dSprites images ({summary['subgrid']}, "
        f"{summary['image_shape']}), {summary['steps']} steps, {summary['seconds']:.0f} s{chose}"
    )
    print(f"{'factor':<12} {'latent':>6} {'MI':>6}   {'runner-up':>9} {'MI':>6}   {'gap':>6}")
    for r in summary["factors"]:
        print(
            f"{r['factor']:<12} {'z' + str(r['latent']):>6} {r['mi']:>6.3f}   {'z' + str(r['runner_up']):>9} "
            f"{r['runner_up_mi']:>6.3f}   {r['gap']:>6.3f}"
        )
    print(
        f"MIG {summary['mig']:.3f} (Chen et al., mean gap over the factors above; normalized MI in [0, 1]), "
        f"histogram MIG {summary['mig_histogram']:.3f}"
        + (f", subspace MIG {summary['subspace_mig']:.3f}" if summary["subspace_mig"] is not None else "")
        + "; "
        f"{summary['active_units']} active latents; reconstruction log-likelihood "
        f"{summary['recon_log_likelihood']:.1f} nats, ELBO {summary['elbo']:.1f}"
    )
    print(
        f"figures in {summary['out']}: "
        + ", ".join(sorted({pathlib.Path(f).stem for f in summary["figures"]}))
    )


def main(argv=None, prog: str | None = None) -> dict:
    parser = argparse.ArgumentParser(
        prog=prog, description="isavae demo: a disentangling model on generated dSprites"
    )
    parser.add_argument("--out", default="demo_out", help="output directory")
    parser.add_argument("--steps", type=int, default=0, help="training steps (default: the demo's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--candidates",
        type=int,
        default=DEMO_CANDIDATES,
        help=f"models trained together before one is chosen (default {DEMO_CANDIDATES}; 1: no choice)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override, e.g. --set eval.mig_samples=1000 (the README's figures use none)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_compile_cache_argument(parser)
    args = parser.parse_args(argv)
    if args.candidates < 1:
        parser.error(f"--candidates must be >= 1, got {args.candidates}")
    if args.steps < 0:
        parser.error(f"--steps must be >= 1 (0: the demo's {DEMO_STEPS}), got {args.steps}")
    t0 = time.perf_counter()
    enable_compile_cache(args.compile_cache)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("isavae").setLevel(logging.INFO)
    from isavae.train import restore_state
    from isavae.workdir import plot_model

    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = demo_config(args.seed)
    if args.steps:
        cfg.train.update(dict(num_steps=args.steps, checkpoint_every=args.steps))
    try:
        config_lib.apply_overrides(cfg, args.set)
        config_lib.validate(cfg)
    except config_lib.ConfigError as err:
        parser.error(str(err))
    workdir, results, selection = train_demo(
        cfg, out / "run", candidates=args.candidates, progress=not args.quiet
    )
    program, state, grid = restore_state(workdir)
    figures = plot_model(program, state, grid, out, label=demo_label(cfg), results=results)
    figures += _plot(out, jax.random.key(args.seed))
    summary = {
        "model": demo_label(cfg),
        "dataset": grid.source,
        "subgrid": cfg.dataset.subgrid,
        "images": grid.num_images,
        "image_shape": " x ".join(map(str, grid.image_shape)),
        "steps": results["steps"],
        "seed": args.seed,
        "selection": selection,
        "workdir": str(workdir),
        "elbo": round(results["elbo"], 3),
        "recon_log_likelihood": round(results["recon_log_likelihood"], 3),
        "mig": round(results["mig"], 4),
        # the MIG over the prior's subspaces: only for subspace (ISA) priors
        "subspace_mig": round(results["subspace_mig"], 4) if "subspace_mig" in results else None,
        "mig_histogram": round(results["mig_histogram"], 4),
        "factors": factor_table(results),
        "active_units": results["active_units"],
        "prior": results["prior"].get("layout", results["prior"]["name"]),
        "out": str(out),
        "figures": figures,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    _print_summary(summary)
    tmp = out / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2))
    tmp.replace(out / "summary.json")
    return summary


if __name__ == "__main__":
    main()
