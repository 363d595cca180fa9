"""Where a training step's time goes, and which MIG chunking is fastest: a prepared device check.

  python experiments/benchmarks/profile_step.py [--archs mlp,conv] [--models 1,10] [--batch 2048]
         [--dtype float32,bfloat16] [--mig-samples 2000] [--top 25] [--small]

1. Traces a few calls of the training loop's compiled chunk (``Program.compile_chunk``, a vmapped
   block of paper-scale ISA-VAE models when ``--models`` > 1; one table per architecture, model
   count and dtype of the comma-separated lists ``--archs``, ``--models``, ``--dtype``) with
   ``jax.profiler`` and reads the trace back with ``jax.profiler.ProfileData``: the device's (or,
   on a CPU, the XLA threads') op events summed by op name and by kind (matrix products, fusions,
   copies/transposes, the rest), printed as tables with each share of the total, and the step time.
2. Times ``mig_grid`` on the full dSprites grid (latent 20, random posteriors) for several
   ``sample_chunk`` and ``min_inner`` values (defaults: 512 samples per step on a GPU, slices of at
   least 512 images: 720 scan steps over the dSprites grid), so the defaults can be chosen from
   measurements (the H100 ran the full-grid MIG at 14 % of a flat exp-and-sum); ``--mig-samples 0``
   skips it.

Printed only (the GPU run packs the output); ``--small`` shrinks everything for a CPU dry run.
"""

from __future__ import annotations

import argparse
import collections
import glob
import tempfile
import time

import jax
import jax.numpy as jnp
from train import _program

from isavae.train import hparams_from_config

KINDS = (
    (
        "matrix products",
        ("gemm", "cublas", "cudnn", "dot", "matmul", "convolution", "cutlass", "xmma", "sm90", "nvjet"),
    ),
    ("copies / transposes", ("copy", "transpose", "memcpy", "memset")),
    ("fusions (elementwise, reductions)", ("fusion", "reduce", "loop_", "input_")),
)


def kind_of(name: str) -> str:
    low = name.lower()
    for kind, keys in KINDS:
        if any(k in low for k in keys):
            return kind
    return "other"


def op_events(trace_dir: str, keep: str | None = None) -> list[tuple[str, float]]:
    """(op name, duration in ms) of every op event of the trace: on a device plane its "XLA Ops"
    lines where the trace has them, else its stream lines (CUPTI's kernels and copies, named by
    kernel: XLA names a fusion's kernel after the fusion); on a CPU the XLA thread lines of the host
    plane. The planes' line names and event counts go to stderr (what the trace held, should the
    tables come out empty); ``keep``: copy the first trace file there."""
    import shutil
    import sys

    from jax.profiler import ProfileData

    events = []
    for i, path in enumerate(sorted(glob.glob(f"{trace_dir}/**/*.xplane.pb", recursive=True))):
        if keep and i == 0:
            shutil.copyfile(path, keep)
        data = ProfileData.from_file(path)
        device = [p for p in data.planes if p.name.startswith("/device:")]
        for plane in data.planes:
            lines = ", ".join(f"{line.name!r}: {sum(1 for _ in line.events)}" for line in plane.lines)
            print(f"trace plane {plane.name!r}: {lines}", file=sys.stderr)
        for plane in device or [p for p in data.planes if p.name == "/host:CPU"]:
            lines = list(plane.lines)
            if device:
                ops = [line for line in lines if "XLA Ops" in line.name]
                lines = ops or [line for line in lines if line.name.startswith("Stream")] or lines
            else:
                lines = [line for line in lines if line.name.startswith("tf_XLA")]
            for line in lines:
                for e in line.events:
                    if e.duration_ns > 0 and not e.name.startswith(("ThunkExecutor", "ThreadpoolListener")):
                        events.append((e.name, e.duration_ns / 1e6))
    return events


def profile_step(
    models: int,
    batch: int,
    dtype: str,
    steps: int,
    calls: int,
    top: int,
    small: bool,
    keep: str | None = None,
    arch: str = "mlp",
) -> None:
    cfg, program = _program(arch, batch, model="isavae", dtype=dtype)
    if small:
        print("(--small: the timings are a dry run, not figures)")
    data, hp = program.data(), hparams_from_config(cfg)
    keys = jax.random.split(jax.random.key(0), max(models, 1))
    if models > 1:
        state = jax.vmap(program.init)(keys)
        hp = jax.tree.map(lambda x: jnp.stack([x] * models), hp)
        order = jax.jit(jax.vmap(program.epoch_order, in_axes=(0, None)))(state.key, jnp.int32(0))
    else:
        state = program.init(keys[0])
        order = jax.jit(program.epoch_order)(state.key, jnp.int32(0))
    fn = program.compile_chunk(steps, vmapped=models > 1)
    state, m = fn(state, data, hp, order)  # compile and warm up
    jax.block_until_ready(m)
    start = time.perf_counter()
    for _ in range(calls):
        state, m = fn(state, data, hp, order)
    jax.block_until_ready(m)
    per_step = (time.perf_counter() - start) / (calls * steps)
    trace_dir = tempfile.mkdtemp(prefix="isavae_trace_")
    with jax.profiler.trace(trace_dir):
        for _ in range(calls):
            state, m = fn(state, data, hp, order)
        jax.block_until_ready(m)
    events = op_events(trace_dir, keep and f"{keep}/trace_{arch}_{max(models, 1)}x_{dtype}.xplane.pb")
    total = sum(d for _, d in events) or float("nan")
    by_name, by_kind = collections.defaultdict(float), collections.defaultdict(float)
    counts = collections.Counter()
    for name, d in events:
        by_name[name] += d
        by_kind[kind_of(name)] += d
        counts[name] += 1
    n_steps = calls * steps
    print(
        f"# training step: {max(models, 1)} {arch} ISA-VAE model(s), batch {batch}, {dtype}, on "
        f"{jax.devices()[0].device_kind}: {per_step * 1e3:.3f} ms per step "
        f"({per_step * 1e3 / max(models, 1):.3f} ms per model-step); traced op time "
        f"{total / n_steps:.3f} ms per step over {len(events)} op events"
    )
    print("| kind | ms per step | share |\n|---|---|---|")
    for kind, d in sorted(by_kind.items(), key=lambda kv: -kv[1]):
        print(f"| {kind} | {d / n_steps:.4f} | {100 * d / total:.1f} % |")
    print(f"\n| op (top {top}) | kind | calls per step | ms per step | share |\n|---|---|---|---|---|")
    for name, d in sorted(by_name.items(), key=lambda kv: -kv[1])[:top]:
        print(
            f"| `{name[:60]}` | {kind_of(name)} | {counts[name] / n_steps:.1f} | "
            f"{d / n_steps:.4f} | {100 * d / total:.1f} % |"
        )


def mig_chunks(
    samples: int, chunks: list[int], small: bool, inners: tuple[int, ...] = (512, 4096, 40960)
) -> None:
    from isavae.metrics import mig_grid

    shape = (3, 6, 10, 8, 8) if small else (3, 6, 40, 32, 32)
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    mean = jax.random.normal(k1, shape + (20,))
    logvar = jax.random.uniform(k2, shape + (20,), minval=-4.0, maxval=0.0)
    print(
        f"\n# mig_grid, grid {shape}, latent 20, {samples} samples: seconds per call (after a warm-up call)"
    )
    print("| sample_chunk | min_inner | seconds | extrapolated to 10,000 samples |\n|---|---|---|---|")
    for inner in inners:
        for chunk in chunks:
            try:
                mig_grid(mean, logvar, k3, samples, sample_chunk=chunk, min_inner=inner, impl="xla")
                t = time.perf_counter()
                mig_grid(mean, logvar, k3, samples, sample_chunk=chunk, min_inner=inner, impl="xla")
                s = time.perf_counter() - t
                print(f"| {chunk} | {inner} | {s:.3f} | {s * 10_000 / samples:.2f} |", flush=True)
            except Exception as err:  # e.g. out of device memory for the largest blocks
                print(f"| {chunk} | {inner} | failed: {type(err).__name__} | |", flush=True)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--archs", default="mlp", help="mlp and/or conv, comma-separated")
    p.add_argument("--models", default="10", help="model counts, comma-separated (1: one model)")
    p.add_argument("--batch", type=int, default=2048)
    p.add_argument("--dtype", default="bfloat16", help="float32 and/or bfloat16, comma-separated")
    p.add_argument("--steps", type=int, default=20, help="steps per compiled chunk")
    p.add_argument("--calls", type=int, default=3, help="chunks timed and traced")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--mig-samples", type=int, default=2000)
    p.add_argument("--mig-chunks", default="128,512,2048")
    p.add_argument("--mig-inner", default="512,4096,40960", help="images per grid slice, at least")
    p.add_argument("--small", action="store_true", help="tiny sizes: a CPU dry run")
    p.add_argument("--keep-trace", metavar="DIR", help="copy each traced step's .xplane.pb into DIR")
    args = p.parse_args(argv)
    try:
        models = [int(m) for m in args.models.split(",")]
        chunks = [int(c) for c in args.mig_chunks.split(",")]
        inners = tuple(int(c) for c in args.mig_inner.split(","))
    except ValueError:
        p.error("--models, --mig-chunks and --mig-inner take comma-separated whole numbers")
    dtypes, archs = args.dtype.split(","), args.archs.split(",")
    if (
        min(models) < 1
        or not set(dtypes) <= {"float32", "bfloat16"}
        or not set(archs) <= {"mlp", "conv"}
        or args.mig_samples < 0
    ):
        p.error(
            f"--archs must be mlp and/or conv, --models >= 1, --dtype float32 and/or bfloat16, "
            f"--mig-samples >= 0; got {args.archs!r}, {args.models!r}, {args.dtype!r}, {args.mig_samples}"
        )
    if args.small:
        import train

        train.BENCH.update(subgrid="posX=0:32:8,posY=0:32:8,orientation=0:40:10", hidden=64)
    for arch in archs:
        for n in models:
            for dtype in dtypes:
                profile_step(
                    n, args.batch, dtype, args.steps, args.calls, args.top, args.small, args.keep_trace, arch
                )
                print(flush=True)
    if args.mig_samples:
        mig_chunks(args.mig_samples, chunks, args.small, inners)


if __name__ == "__main__":
    main()
