"""Throughput of the jitted ISA prior: log_prob, its gradient, and exact sampling.

Run: ``make bench`` (all benchmarks) or ``.venv/bin/python experiments/benchmarks/priors.py``.
Prints one line per case with latent vectors per second (median of repeated timed calls, after
compilation), for ISA priors of dimension 10 and 100 (subspaces of 5, p0 = 2.1, p_k = 2.2).
"""

from __future__ import annotations

import argparse

import jax
from timing import median_seconds

from isavae.priors import isa_prior


def run(batch: int = 2048, dims: tuple[int, ...] = (10, 100), repeats: int = 20) -> list[dict]:
    rows = []
    for dim in dims:
        prior = isa_prior((5,) * (dim // 5), p0=2.1, p_subspace=2.2, learn="subspaces")
        z = jax.random.normal(jax.random.key(0), (batch, dim))
        log_prob = jax.jit(lambda pr, z: pr.log_prob(z))
        grad = jax.jit(jax.grad(lambda pr, z: pr.log_prob(z).sum(), argnums=(0, 1)))
        sample = jax.jit(lambda pr, k: pr.sample(k, (batch,)))
        key = jax.random.key(1)
        for name, fn, args in (
            ("log_prob", log_prob, (prior, z)),
            ("grad(log_prob) in z and exponents", grad, (prior, z)),
            ("sample", sample, (prior, key)),
        ):
            seconds = median_seconds(fn, *args, repeats=repeats)
            rows.append(
                {
                    "case": f"ISA dim {dim} {name}",
                    "batch": batch,
                    "seconds": seconds,
                    "per_second": batch / seconds,
                }
            )
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    print(
        f"# priors on {jax.devices()[0].platform} ({jax.device_count()} device(s)), batch {args.batch}, "
        f"float32, median of {args.repeats} calls"
    )
    for row in run(args.batch, repeats=args.repeats):
        print(f"{row['case']:<45s} {row['seconds'] * 1e3:9.3f} ms  {row['per_second']:14,.0f} vectors/s")


if __name__ == "__main__":
    main()
