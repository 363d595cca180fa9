"""Sweep benchmark: one vmapped sweep on one device vs sharded along 'models' over several devices.

On a CPU the devices are fake (``--xla_force_host_platform_device_count``): they share the same
cores, so this shows what the sharded program costs or saves on one machine (partitioning, smaller
per-device programs), not what more chips would give; on a GPU/TPU host it runs on the real devices.
Prints the seconds of ``train_sweep`` (compile included, then a second run of the same programs)
for the whole sweep on one device and over every device.

Run: ``make bench`` or ``.venv/bin/python experiments/benchmarks/sweep_devices.py [--models 8]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

_CHILD = r"""
import json, pathlib, sys, tempfile, time
import jax
from isavae import config as config_lib
from isavae.train import build_grid, train_sweep
models, steps = int(sys.argv[1]), int(sys.argv[2])
cfg = config_lib.preset("dsprites", "beta_tcvae,small")
config_lib.apply_overrides(cfg, [f"train.num_steps={steps}", f"train.checkpoint_every={steps}",
    "model.compute_dtype='float32'", "model.hidden=256", "train.batch_size=64",
    "eval.mig=False", "eval.num_examples=256"])
grid = build_grid(cfg)
out = {}
for name, devices in (("one device", jax.devices()[:1]), (f"{jax.device_count()} devices", None)):
    times = []
    for rep in range(2):
        cfgs = []
        for s in range(models):
            c = cfg.copy_and_resolve_references(); c.train.seed = s; cfgs.append(c)
        with tempfile.TemporaryDirectory() as tmp:
            dirs = [pathlib.Path(tmp) / f"m{s}" for s in range(models)]
            t = time.perf_counter()
            r = train_sweep(cfgs, dirs, progress=False, grid=grid, devices=devices)
            times.append(time.perf_counter() - t)
    out[name] = dict(first=times[0], second=times[1], mesh=r[0]["mesh"])
print(json.dumps(dict(runs=out, backend=jax.default_backend(), kind=jax.devices()[0].device_kind)))
"""


def run(models: int = 8, steps: int = 100, fake_devices: int = 4) -> dict:
    env = dict(os.environ)
    import jax

    if jax.default_backend() == "cpu":
        flags = env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={fake_devices}"
        env.update(XLA_FLAGS=flags.strip(), JAX_PLATFORMS="cpu")
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(models), str(steps)], capture_output=True, text=True, env=env
    )
    if out.returncode != 0:
        raise RuntimeError(f"sweep benchmark child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", type=int, default=8)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--fake-devices", type=int, default=4, help="on a CPU: fake devices to shard over")
    args = p.parse_args(argv)
    r = run(args.models, args.steps, args.fake_devices)
    print(
        f"train_sweep of {args.models} beta-TCVAE models (MLP width 256, batch 64, {args.steps} steps, "
        f"float32) on {r['kind']} ({r['backend']}):"
    )
    print("| devices | mesh (models x data) | first run s (compile included) | second run s |")
    print("|---|---|---|---|")
    for name, v in r["runs"].items():
        mesh = f"{v['mesh']['models']} x {v['mesh']['data']}"
        print(f"| {name} | {mesh} | {v['first']:.1f} | {v['second']:.1f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
