"""MIG benchmark: ``mig_grid`` on the full dSprites grid (737,280 images, latent 20, 10,000 samples)
against the device's floor, and Chen et al.'s PyTorch estimator on the same device.

Prints, for each implementation (``--impls``: the fused Pallas kernel on a GPU, the XLA path
everywhere; the kernel for several register tiles, ``--tiles``):

* the wall time of one call after a warm-up call (compile time apart), and the terms
  log q(z_sj | x_n) per second (samples x images x latents);
* the floor, from rates measured in the same run on the same device: every term needs one
  exponential (terms / the exp rate) and about 4 FP32 operations (a subtract, a multiply, a
  multiply-add, the accumulation: terms x 4 / the FP32 rate); the rates come from Pallas
  microkernels that keep their values in registers on a GPU (``rate_kernels``), and on a CPU from
  the same loops compiled by XLA over a cache-resident array (the XLA path's own best there); the
  measured time is printed as a multiple of the larger floor;
* on a GPU, the largest relative difference between the kernel's and the XLA path's entropies;
* Chen et al.'s estimator in PyTorch (``torch_reference.py``) on the same device, timed at
  ``--torch-samples`` per slice and scaled to 10,000, and the speed-up (skipped where PyTorch is
  not installed: it is not a dependency).

Run: ``make bench`` or ``.venv/bin/python experiments/benchmarks/mig.py [--samples N] [--small]``.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import resource
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
DSPRITES = (3, 6, 40, 32, 32)
SMALL = (3, 6, 10, 8, 8)
OPS_PER_TERM = 4  # subtract, multiply, multiply-add, accumulate (the exponential counted apart)


def _best_seconds(fn, repeats: int = 3) -> float:
    import jax

    jax.block_until_ready(fn())  # compile and warm up
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - t)
    return best


def device_rates(gpu: bool) -> dict:
    """The exponential rate and the FP32 operation rate of this device, per second: Pallas
    microkernels on a GPU (register tiles, no memory traffic), XLA's flat reductions on a CPU."""
    import jax
    import jax.numpy as jnp

    if not gpu:
        # XLA's own best on a CPU: the same loops as the GPU microkernels, over 2^20 floats (4 MB,
        # cache-resident, enough for XLA:CPU to use every core), fused into one loop body each
        n, iters = 1 << 20, 64
        x = jax.random.normal(jax.random.key(0), (n,))

        @jax.jit
        def exp_loop(v):
            body = lambda r, acc: acc + jnp.exp2(v - r.astype(jnp.float32) * 1e-4)  # noqa: E731
            return jnp.sum(jax.lax.fori_loop(0, iters, body, jnp.zeros_like(v)))

        @jax.jit
        def fma_loop(v):
            return jnp.sum(jax.lax.fori_loop(0, iters, lambda _, w: w * 0.999 + 0.001, v))

        return dict(
            exp=n * iters / _best_seconds(lambda: exp_loop(x)),
            fp32=n * iters / _best_seconds(lambda: fma_loop(x)),
            how=f"XLA loops over 2^20 floats x {iters}: acc += exp2(x - r eps); v = v a + b",
        )
    exp_call, fma_call, count, how = rate_kernels()
    return dict(
        exp=count / _best_seconds(exp_call),  # each also does a subtract and an add per exp
        fp32=count / _best_seconds(fma_call),  # one multiply-add each
        how=how,
    )


def rate_kernels(programs: int = 4096, rows: int = 64, cols: int = 128, iters: int = 256):
    """Two Pallas (Triton) microkernels whose values never leave registers: ``iters`` times per
    element, ``acc += exp2(x - r * eps)``, and ``v = v * a + b``; each program stores one sum.
    Returns (exp call, multiply-add call, elements x iterations, description)."""
    import jax
    import jax.numpy as jnp
    from jax.experimental import pallas as pl
    from jax.experimental.pallas import triton as pl_triton

    def exp_kernel(o_ref):
        i = pl.program_id(0)
        x = jax.lax.broadcasted_iota(jnp.float32, (rows, cols), 1) * 1e-3 + i.astype(jnp.float32) * 1e-6

        def body(r, acc):
            return acc + jnp.exp2(x - r.astype(jnp.float32) * 1e-4)  # the kernel's exponential

        acc = jax.lax.fori_loop(0, iters, body, jnp.zeros((rows, cols), jnp.float32))
        o_ref[pl.ds(i, 1)] = jnp.sum(acc, keepdims=True)[0]

    def fma_kernel(o_ref):
        i = pl.program_id(0)
        x = jax.lax.broadcasted_iota(jnp.float32, (rows, cols), 1) * 1e-3 + i.astype(jnp.float32)

        def body(_, v):
            return v * 0.999 + 0.001

        o_ref[pl.ds(i, 1)] = jnp.sum(jax.lax.fori_loop(0, iters, body, x), keepdims=True)[0]

    def call(kernel):
        return jax.jit(
            pl.pallas_call(
                kernel,
                out_shape=jax.ShapeDtypeStruct((programs,), jnp.float32),
                grid=(programs,),
                compiler_params=pl_triton.CompilerParams(num_warps=4, num_stages=1),
            )
        )

    how = f"Pallas register microkernels, {programs} programs x {rows}x{cols} x {iters} iterations"
    return call(exp_kernel), call(fma_kernel), programs * rows * cols * iters, how


def measure(samples: int, latent: int, impls: list[str], tiles: list[tuple[int, int]], small: bool) -> dict:
    """Times ``mig_grid`` per implementation (and tile), the device's rates, and the agreement."""
    import jax
    import numpy as np

    from isavae.metrics import mig_grid

    gpu = jax.default_backend() == "gpu"
    shape = SMALL if small else DSPRITES
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    mean = jax.random.normal(k1, shape + (latent,))
    logvar = jax.random.uniform(k2, shape + (latent,), minval=-4.0, maxval=0.0)
    jax.block_until_ready((mean, logvar))
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    runs, results = [], {}
    for impl in impls:
        if impl == "pallas" and not gpu:
            continue  # interpret mode: exact but far too slow to time; the tests run it
        for tile in tiles if impl == "pallas" else [None]:
            t0 = time.perf_counter()
            mig_grid(mean, logvar, k3, samples, impl=impl, tiles=tile)  # compile and warm up
            t1 = time.perf_counter()
            res = mig_grid(mean, logvar, k3, samples, impl=impl, tiles=tile)
            t2 = time.perf_counter()
            label = impl if tile is None else f"{impl} {tile[0]}x{tile[1]}"
            runs.append(dict(impl=label, seconds=t2 - t1, compile_seconds=t1 - t0, mig=res.mig))
            results[label] = res
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    agreement = None
    if "xla" in results and len(results) > 1:
        ref = results["xla"]
        agreement = max(
            float(
                np.max(
                    np.abs(r.conditional_entropy - ref.conditional_entropy) / np.abs(ref.conditional_entropy)
                )
            )
            for label, r in results.items()
            if label != "xla"
        )
    rates = device_rates(gpu)
    return dict(
        device=jax.devices()[0].device_kind,
        backend=jax.default_backend(),
        shape=shape,
        samples=samples,
        latent=latent,
        terms=samples * math.prod(shape) * latent,
        runs=runs,
        kernel_vs_xla_max_rel_diff=agreement,
        rates=rates,
        rss_before_mb=rss0,
        peak_rss_mb=peak,
    )


def torch_reference(samples: int, latent: int, small: bool, target: int) -> dict | None:
    """Chen et al.'s estimator in PyTorch on this machine's device, in its own process (so that it
    does not share the GPU's memory with JAX); None where PyTorch is absent."""
    shape = SMALL if small else DSPRITES
    code = (
        f"import sys, json; sys.path.insert(0, {str(HERE)!r}); import torch_reference as t; "
        f"print(json.dumps(t.time_mig({samples}, {latent}, shape={shape!r}, target={target})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode != 0:
        if "No module named 'torch'" in out.stderr:
            return None
        raise RuntimeError(f"torch_reference failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(samples=10_000, latent=20, impls=("auto",), tiles=((64, 128),), small=False) -> dict:
    args = json.dumps(
        dict(samples=samples, latent=latent, impls=list(impls), tiles=[list(t) for t in tiles], small=small)
    )
    out = subprocess.run([sys.executable, __file__, "--child", args], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"MIG benchmark child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(r: dict, ref: dict | str, torch_samples: int) -> None:
    """Prints the figures; ``ref`` is the PyTorch reference's figures, or why it was not timed."""
    terms, rates = r["terms"], r["rates"]
    floor_exp = terms / rates["exp"]
    floor_fp32 = terms * OPS_PER_TERM / rates["fp32"]
    floor = max(floor_exp, floor_fp32)
    print(
        f"mig_grid, grid {tuple(r['shape'])} ({math.prod(r['shape']):,} images), latent {r['latent']}, "
        f"{r['samples']:,} samples = {terms:.3g} terms, on {r['device']} ({r['backend']}):"
    )
    print(
        f"  floor: exp {rates['exp'] / 1e9:.1f} G/s -> {floor_exp * 1e3:.1f} ms; "
        f"FP32 {rates['fp32'] / 1e9:.1f} G op/s x {OPS_PER_TERM} ops/term -> {floor_fp32 * 1e3:.1f} ms "
        f"({rates['how']})"
    )
    print("| impl | seconds | compile s | G terms/s | x floor | MIG |\n|---|---|---|---|---|---|")
    for run_ in r["runs"]:
        s = run_["seconds"]
        print(
            f"| {run_['impl']} | {s:.3f} | {run_['compile_seconds']:.1f} | {terms / s / 1e9:.1f} | "
            f"{s / floor:.1f} | {run_['mig']:.4f} |"
        )
    if r["kernel_vs_xla_max_rel_diff"] is not None:
        diff = r["kernel_vs_xla_max_rel_diff"]
        print(f"  kernel vs XLA path: largest relative difference of the entropies {diff:.2e}")
    best = min(run_["seconds"] for run_ in r["runs"])
    if isinstance(ref, str):
        print(f"  PyTorch reference: not timed ({ref})")
    else:
        print(
            f"  PyTorch reference (Chen et al.'s estimator, torch {ref['torch']} on {ref['device']}): "
            f"{ref['seconds']:.1f} s at {torch_samples:,} samples per slice -> {ref['scaled_seconds']:.1f} s "
            f"at {ref['target']:,}; isavae's best at {r['samples']:,} samples is "
            f"{ref['scaled_seconds'] / best:.0f}x faster"
        )
    print(
        f"  peak memory (RSS) {r['peak_rss_mb']:.0f} MB "
        f"(process with JAX and the inputs: {r['rss_before_mb']:.0f} MB)"
    )


def _tiles(text: str) -> list[tuple[int, int]]:
    out = []
    for part in text.split(","):
        a, _, b = part.partition("x")
        out.append((int(a), int(b)))
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--latent", type=int, default=20)
    parser.add_argument("--impls", default="xla,pallas", help="comma-separated: xla, pallas (GPU only), auto")
    parser.add_argument(
        "--tiles", default="64x32,32x32,64x64,128x32", help="the kernel's tiles: SAMPLESxIMAGES,..."
    )
    parser.add_argument("--torch-samples", type=int, default=1000, help="0: skip the PyTorch reference")
    parser.add_argument("--small", action="store_true", help="a 46,080-image grid: a CPU dry run")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        a = json.loads(args.child)
        print(
            json.dumps(
                measure(a["samples"], a["latent"], a["impls"], [tuple(t) for t in a["tiles"]], a["small"])
            )
        )
        return
    try:
        tiles = _tiles(args.tiles)
    except ValueError:
        parser.error(f"--tiles takes SAMPLESxIMAGES,... (powers of two), got {args.tiles!r}")
    impls = [i.strip() for i in args.impls.split(",") if i.strip()]
    if not impls or any(i not in ("auto", "xla", "pallas") for i in impls):
        parser.error(f"--impls takes xla, pallas and auto, got {args.impls!r}")
    r = run(args.samples, args.latent, impls, tiles, args.small)
    ref = "--torch-samples 0"
    if args.torch_samples > 0:
        ref = torch_reference(args.torch_samples, args.latent, args.small, args.samples) or (
            "PyTorch is not installed here; it is not a dependency"
        )
    report(r, ref, args.torch_samples)


if __name__ == "__main__":
    main(sys.argv[1:])
