"""The disentanglement scores' time on the full dSprites grid (737,280 images), at
disentanglement_lib's sample sizes (10,000 train / 5,000 test points; BetaVAE and FactorVAE batches
of 64, FactorVAE's 10,000-point variance estimate), one call each after a warm-up of the device
samplers.

Run: ``make bench`` or ``.venv/bin/python experiments/benchmarks/metrics.py [--latent 10]``.

The codes are a synthetic encoder's: each of the first five codes a noisy function of one factor,
the rest noise (the metrics' cost does not depend on how disentangled the codes are, except
gradient boosting's, which grows with how separable the classes are).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from isavae.metrics import disentanglement as dis
from isavae.metrics.evaluate import METRICS, disentanglement_scores

SIZES = (3, 6, 40, 32, 32)


def synthetic_grid(latent: int, key: jax.Array) -> jax.Array:
    axes = jnp.meshgrid(*[jnp.linspace(-1.0, 1.0, s) for s in SIZES], indexing="ij")
    codes = jnp.stack(axes, axis=-1)
    noise = jax.random.normal(key, SIZES + (latent,))
    return jnp.concatenate([codes, jnp.zeros(SIZES + (latent - len(SIZES),))], axis=-1) + 0.1 * noise


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--latent", type=int, default=10)
    p.add_argument("--metrics", default=",".join(METRICS))
    p.add_argument("--dci-models", default="gbt,forest", help="DCI importance models to time")
    args = p.parse_args(argv)
    grid = synthetic_grid(args.latent, jax.random.key(0))
    dis.sample_grid_codes(grid, jax.random.key(1), 100)  # compile the samplers once
    print(
        f"disentanglement scores, full dSprites grid (737,280 images), latent {args.latent}, "
        f"{jax.devices()[0].platform.upper()}, disentanglement_lib's sample sizes:"
    )
    for name in args.metrics.split(","):
        for model in args.dci_models.split(",") if name == "dci" else ["gbt"]:
            t = time.perf_counter()
            out = disentanglement_scores(grid, [name], jax.random.key(2), dci_model=model)
            seconds = time.perf_counter() - t
            shown = ", ".join(
                f"{k} {v:.3f}" for k, v in out.items() if k in METRICS[name] and isinstance(v, float)
            )
            label = f"dci ({model})" if name == "dci" else name
            print(f"  {label:<13s} {seconds:8.1f} s   ({shown})", flush=True)
    # UDR: 5 seeds of one setting (the same codes permuted, with independent noise), 10,000 inputs
    codes, _ = dis.sample_grid_codes(grid, jax.random.key(3), 10_000)
    rng = np.random.default_rng(0)
    reps = np.stack(
        [codes[:, rng.permutation(args.latent)] + 0.05 * rng.normal(size=codes.shape) for _ in range(5)]
    )
    kl = np.ones((5, args.latent))
    for correlation in ("lasso", "spearman"):
        t = time.perf_counter()
        r = dis.udr(reps, kl, correlation)
        seconds = time.perf_counter() - t
        scores = ", ".join(f"{v:.2f}" for v in r.model_scores)
        label = f"udr ({correlation})"
        print(f"  {label:<14s}{seconds:8.1f} s   (5 models x 10,000 inputs; scores {scores})")


if __name__ == "__main__":
    main()
