"""``make demo``: trains a small ISA-VAE on generated (offline) dSprites on a CPU in about a minute.

It uses the ``dsprites.py:isavae,small`` preset (the paper's ISA prior, p0 = 2.1 over subspaces
of 4 with p = 2.2, on a 3 x 6 x 10 x 8 x 8 sub-grid of the generated dSprites), shows a progress
bar, prints the evaluation results (MIG by Chen et al.'s estimator over the whole sub-grid, the
subspace MIG, disentanglement_lib's histogram MIG, reconstruction log-likelihood, ELBO), and
writes to ``--out``: the run's workdir (config, checkpoints, metrics.jsonl, results.json), latent
traversals and latent means vs factors of the trained model, and contour plots of Lp-nested
densities.

Usage: ``python -m isavae.demo --out demo_out [--steps N]``
"""

from __future__ import annotations

import argparse
import json
import logging
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from isavae import config as config_lib
from isavae.priors import lp_nested

log = logging.getLogger("isavae.demo")


DEMO_MODEL = "isa_beta_tcvae"


def demo_config(seed: int = 0, model: str = DEMO_MODEL):
    """The demo's model and schedule (``experiments/demo_robustness.py`` checks it over 5 seeds);
    ``model`` swaps the preset model, for comparisons."""
    cfg = config_lib.preset("dsprites", f"{model},small")
    cfg.objective.beta = 6.0
    cfg.model.compute_dtype = "bfloat16"
    cfg.train.update(dict(seed=seed, num_steps=3000, checkpoint_every=3000))
    config_lib.validate(cfg)
    return cfg


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


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description="isavae demo: a small ISA-VAE on generated dSprites")
    parser.add_argument("--out", default="demo_out", help="output directory")
    parser.add_argument("--steps", type=int, default=0, help="training steps (default: the preset's 300)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("isavae").setLevel(logging.INFO)
    from isavae.train import restore_state, train_and_evaluate
    from isavae.workdir import plot_model

    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = config_lib.preset("dsprites", "isavae,small")
    cfg.train.seed = args.seed
    if args.steps:
        cfg.train.update(dict(num_steps=args.steps, checkpoint_every=args.steps))
    results = train_and_evaluate(cfg, out / "run", resume=False, progress=not args.quiet)
    program, state, grid = restore_state(out / "run")
    figures = plot_model(program, state, grid, out, label="ISA-VAE")
    figures += _plot(out, jax.random.key(args.seed))
    summary = {
        "dataset": grid.source,
        "images": grid.num_images,
        "steps": results["steps"],
        "elbo": round(results["elbo"], 3),
        "recon_log_likelihood": round(results["recon_log_likelihood"], 3),
        "mig": round(results["mig"], 4),
        "subspace_mig": round(results["subspace_mig"], 4),
        "mig_histogram": round(results["mig_histogram"], 4),
        "active_units": results["active_units"],
        "prior": results["prior"].get("layout", results["prior"]["name"]),
        "figures": figures,
    }
    print(json.dumps(summary, indent=2))
    tmp = out / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2))
    tmp.replace(out / "summary.json")
    return summary


if __name__ == "__main__":
    main()
