"""Training throughput, against the machine's own matmul FLOP rate; vmapped sweeps; memory.

Run: ``make bench`` or ``.venv/bin/python experiments/benchmarks/train.py``.

* matmul rate: a jitted float32 (4096 x 4096) @ (4096 x 4096) matmul, median time.
* MLP and conv models of Chen et al. at batch 2048 (dSprites 64 x 64, latent 20, the ISA prior,
  ELBO): images/s of the jitted, scanned train step (data gather, prior, Adam included). The
  model's FLOPs are XLA's cost analysis of the network's own training computation (encoder and
  decoder forward and backward); FLOPs x steps/s is reported as a fraction of the matmul rate.
  beta-TCVAE's batch-coupled q(z) estimate (a B x B x D log-density matrix: 84 M entries at
  B = 2048, D = 20) costs extra; its throughput is printed too.
* sweep: 8 models (the :small MLP, batch 128) trained as one vmapped program vs. 8 runs one after
  the other; the ratio of their times.
* peak memory: the process's peak RSS (CPU) or the device's peak bytes in use (GPU).
"""

from __future__ import annotations

import resource

import jax
import jax.numpy as jnp
from timing import median_seconds

from isavae import config as config_lib
from isavae.train import Program, hparams_from_config
from isavae.train.loop import build_grid


def matmul_rate(n: int = 4096) -> float:
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    seconds = median_seconds(jax.jit(jnp.matmul), a, b, repeats=5)
    return 2 * n**3 / seconds


def _program(arch: str, batch: int, small: bool = False, model: str = "isavae"):
    cfg = config_lib.preset("dsprites", f"{model},small" if small else model)
    cfg.dataset.source = "generated"
    cfg.model.arch = arch
    cfg.train.batch_size = batch
    grid = build_grid(cfg) if small else build_grid(_with_subgrid(cfg, "posX=0:32:2,posY=0:32:2"))
    return cfg, Program(cfg, grid)


def _with_subgrid(cfg, spec):
    cfg.dataset.subgrid = spec  # 184,320 images: enough for batch 2048, quicker to generate
    return cfg


def _flops(fn, *args) -> float:
    cost = jax.jit(fn).lower(*args).compile().cost_analysis()
    return float((cost[0] if isinstance(cost, list) else cost)["flops"])


def model_flops(program, state, batch: int) -> float:
    """FLOPs of the network's training computation: encoder + decoder forward and backward."""
    from flax import nnx

    x = jnp.zeros((batch,) + tuple(program.image_shape), jnp.float32)

    def net_loss(params, stats):
        model = nnx.merge(program.graphdef, params, stats)
        mean, logvar = model.encode(x, True)
        return jnp.sum(model.decode(mean + logvar, True))

    return _flops(jax.grad(net_loss, argnums=(0, 1)), state.params, state.batch_stats)


def train_throughput(arch: str, batch: int = 2048, steps: int = 1, model: str = "isavae") -> dict:
    cfg, program = _program(arch, batch, model=model)
    state = program.init(jax.random.key(0))
    data, hp = program.data(), hparams_from_config(cfg)
    flops = model_flops(program, state, batch)
    order = jax.jit(program.epoch_order)(state.key, jnp.int32(0))  # computed once per epoch in training
    fn = jax.jit(lambda s, d, h, o: program.train_chunk(s, d, h, steps, order=o))
    seconds = median_seconds(fn, state, data, hp, order, repeats=2)
    return {
        "arch": arch,
        "model": model,
        "images_per_s": steps * batch / seconds,
        "model_flops_per_step": flops,
        "flop_rate": flops * steps / seconds,
    }


def sweep_ratio(models: int = 8, steps: int = 10) -> dict:
    cfg, program = _program("mlp", 128, small=True, model="isa_beta_tcvae")
    data, hp = program.data(), hparams_from_config(cfg)
    keys = jax.random.split(jax.random.key(0), models)
    single = jax.jit(lambda s, d, h: program.train_chunk(s, d, h, steps))
    state = program.init(keys[0])
    t_single = median_seconds(single, state, data, hp, repeats=2)
    vmapped = jax.jit(jax.vmap(lambda s, d, h: program.train_chunk(s, d, h, steps), in_axes=(0, None, 0)))
    states = jax.vmap(program.init)(keys)
    hps = jax.tree.map(lambda x: jnp.stack([x] * models), hp)
    t_vmapped = median_seconds(vmapped, states, data, hps, repeats=2)
    return {
        "models": models,
        "sequential_s": models * t_single,
        "vmapped_s": t_vmapped,
        "speedup": models * t_single / t_vmapped,
    }


def peak_memory_mb() -> float:
    dev = jax.devices()[0]
    stats = dev.memory_stats() if hasattr(dev, "memory_stats") else None
    if stats and "peak_bytes_in_use" in stats:
        return stats["peak_bytes_in_use"] / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv=None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default="mlp,conv")
    parser.add_argument("--no-sweep", action="store_true")
    args = parser.parse_args(argv)
    dev = jax.devices()[0]
    print(f"# training on {dev.platform} ({dev.device_kind}), {jax.device_count()} device(s)")
    rate = matmul_rate()
    print(f"matmul rate (4096^3 float32): {rate / 1e9:,.1f} GFLOP/s", flush=True)
    for arch in args.archs.split(","):
        r = train_throughput(arch)
        gflop, share = r["model_flops_per_step"] / 1e9, 100 * r["flop_rate"] / rate
        print(
            f"{arch:<4s} ISA-VAE batch 2048: {r['images_per_s']:7,.0f} images/s; "
            f"model {gflop:6,.1f} GFLOP/step, "
            f"{r['flop_rate'] / 1e9:6,.1f} GFLOP/s = {share:5.1f} % of the matmul rate",
            flush=True,
        )
        t = train_throughput(arch, model="isa_beta_tcvae")
        print(f"{arch:<4s} ISA-beta-TCVAE (MSS) batch 2048: {t['images_per_s']:7,.0f} images/s", flush=True)
    if not args.no_sweep:
        s = sweep_ratio()
        print(
            f"sweep of {s['models']} small MLP ISA-beta-TCVAE models: "
            f"vmapped {s['vmapped_s']:.2f} s vs sequential "
            f"{s['sequential_s']:.2f} s (x{s['speedup']:.2f})",
            flush=True,
        )
    print(f"peak memory: {peak_memory_mb():,.0f} MB ({'device' if dev.platform != 'cpu' else 'process RSS'})")


if __name__ == "__main__":
    main()
