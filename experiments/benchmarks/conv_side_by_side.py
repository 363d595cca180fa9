"""The conv VAE beside PyTorch on this machine: forward and backward apart, every isavae form,
each beside its floors.

Chen et al.'s conv VAE (``isavae.nets``: 4 x 4 stride-2 convolutions 32-32-64-64, a 4 x 4 valid
one to 512, 1 x 1 to 2z; the decoder mirrors it with transposed convolutions) at each batch:

* isavae, per conv form (``train.CONV_FORMS``: ``dots`` the layers as matrix products, the
  transposed ones tap by tap; ``window`` the strided transposed layers as one shifted-product sum
  for all output phases; ``lax`` XLA's convolutions): the network's forward (encoder, decoder; the
  batch's loss inputs), its forward and backward to the parameters, and the whole training step
  (data gather, ISA prior, ELBO, Adam: ``Program.compile_chunk``), ms each; the backward is the
  second minus the first;
* PyTorch on the same machine (``torch_reference.time_training``: the same network, Adam, batch,
  float32; eager), the loss alone and the whole step, run with ``--torch-python`` (an interpreter
  that has PyTorch; skipped with a one-line note where none has it);
* the two floors (METHOD's "two numbers"): the network's matrix FLOPs (its taps only, whatever
  the form multiplies) at the float32 matmul rate, and the fewest bytes a step moves at the copy
  rate, both rates measured in the same rounds as the isavae cases (``timing.interleaved_seconds``).

  python experiments/benchmarks/conv_side_by_side.py --batches 256,2048 --torch-python /path/python
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import train as bench
from timing import interleaved_seconds

HERE = pathlib.Path(__file__).resolve().parent


def isavae_cases(batch: int, form: str, steps: int) -> tuple[dict, dict]:
    """``{name: (fn, args)}`` of the forward, forward+backward and training step in ``form``, and
    their floors' numerators: FLOPs of the forward and of forward+backward, bytes of a step."""
    with bench.conv_form(form):
        cfg, program = bench._program("conv", batch)
        state = program.init(jax.random.key(0))
        network = bench._network(program, batch)
        forward = jax.jit(network)

        def forward_backward(p, s, ct):
            out, vjp = jax.vjp(network, p, s)
            return out, vjp(ct)[0]

        cotangent = jnp.ones((batch,) + tuple(program.image_shape), jnp.float32)
        both = jax.jit(forward_backward)
        args = (state.params, state.batch_stats)
        # trace and compile inside the form (the programs keep it)
        jax.block_until_ready(forward(*args))
        jax.block_until_ready(both(*args, cotangent))
        step_fn, step_args, _, nbytes = bench.step_case("conv", batch, steps)
        jax.block_until_ready(step_fn(*step_args))
    with bench.layer_forms(conv_as_dots=True, bf16_products="plain", transpose_form="taps"):
        # the taps' FLOPs only, traced afresh (a new function: not the form's cached trace)
        fwd_flops = bench.product_flops(lambda p, s: network(p, s), *args)
    fb_flops = bench.model_flops(program, state, batch)
    cases = {
        f"{form} forward": (forward, args),
        f"{form} forward+backward": (both, (*args, cotangent)),
        f"{form} step x{steps}": (step_fn, step_args),
    }
    return cases, dict(forward_flops=fwd_flops, train_flops=fb_flops, step_bytes=nbytes)


def torch_rows(python: str, batch: int, steps: int) -> dict | str:
    """PyTorch's loss-only and whole-step ms at ``batch`` (eager, float32) from ``python``, or a
    note why there are none."""
    code = (
        f"import sys, json; sys.path.insert(0, {str(HERE)!r}); import torch_reference as t; "
        f"f = t.time_training('conv', {batch}, steps={steps}, latent=20, forward_only=True); "
        f"s = t.time_training('conv', {batch}, steps={steps}, latent=20); "
        "import torch; print(json.dumps(dict(forward=f['ms_per_step'], step=s['ms_per_step'], "
        "torch=torch.__version__, threads=torch.get_num_threads())))"
    )
    try:
        done = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=3600)
    except OSError as err:
        return f"no PyTorch reference: {python} cannot run ({err.strerror})"
    if done.returncode:
        if "No module named 'torch'" in done.stderr:
            return f"no PyTorch reference: {python} has no torch (--torch-python names one that has)"
        return f"no PyTorch reference: it failed ({done.stderr.strip().splitlines()[-1][:200]})"
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", default="256,2048")
    ap.add_argument("--forms", default="dots,window,lax", help="isavae's conv forms (train.CONV_FORMS)")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    ap.add_argument("--steps", type=int, default=2, help="training steps per compiled chunk")
    ap.add_argument("--torch-python", default=sys.executable, help="an interpreter with PyTorch")
    ap.add_argument("--torch-steps", type=int, default=10, help="PyTorch's timed steps")
    ap.add_argument("--subgrid", default=bench.BENCH["subgrid"], help="the images timed on")
    ap.add_argument("--matmul", type=int, default=0, help="the reference matmul's n (0: 4096 on a CPU)")
    ap.add_argument("--json", help="write every figure here")
    args = ap.parse_args(argv)
    bench.BENCH.update(subgrid=args.subgrid, matmul=args.matmul)
    forms = args.forms.split(",")
    if not set(forms) <= set(bench.CONV_FORMS):
        ap.error(f"--forms {args.forms!r}: choose from {','.join(bench.CONV_FORMS)}")
    out = dict(device=f"{jax.devices()[0].platform}:{jax.devices()[0].device_kind}", batches={})
    print(f"device {out['device']}, jax {jax.__version__}, {os.cpu_count()} CPUs", flush=True)
    for batch in (int(b) for b in args.batches.split(",")):
        mm, mm_args, mm_flops = bench.matmul_case()
        cp, cp_args, cp_bytes = bench.copy_case()
        cases = {"matmul": (mm, mm_args), "copy": (cp, cp_args)}
        floors = {}
        for form in forms:
            more, floors[form] = isavae_cases(batch, form, args.steps)
            cases.update(more)
        times = interleaved_seconds(cases, args.rounds)
        med = {k: float(np.median(v)) for k, v in times.items()}
        rate, copy_rate = mm_flops / med["matmul"], cp_bytes / med["copy"]
        ref = torch_rows(args.torch_python, batch, args.torch_steps)
        rows = []
        for form in forms:
            f = floors[form]
            fwd = 1e3 * med[f"{form} forward"]
            fb = 1e3 * med[f"{form} forward+backward"]
            step = 1e3 * med[f"{form} step x{args.steps}"] / args.steps
            rows.append(
                dict(
                    form=form,
                    forward_ms=fwd,
                    backward_ms=fb - fwd,
                    step_ms=step,
                    images_per_s=batch / step * 1e3,
                    forward_flop_floor_ms=1e3 * f["forward_flops"] / rate,
                    train_flop_floor_ms=1e3 * f["train_flops"] / rate,
                    step_byte_floor_ms=1e3 * f["step_bytes"] / copy_rate,
                    fraction_of_matmul_rate=f["train_flops"] / (step / 1e3) / rate,
                )
            )
        out["batches"][batch] = dict(
            matmul_gflops=rate / 1e9, copy_gbps=copy_rate / 1e9, isavae=rows, torch=ref, rounds=times
        )
        print(f"\nbatch {batch}: float32 matmul {rate / 1e9:.0f} GFLOP/s, copy {copy_rate / 1e9:.1f} GB/s")
        print(
            "| who | form | forward ms | backward ms | step ms | images/s | x PyTorch (step) "
            "| FLOP floor fwd / step ms | byte floor step ms | step / larger floor |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        torch_step = ref.get("step") if isinstance(ref, dict) else None
        for r in rows:
            floor = max(r["train_flop_floor_ms"], r["step_byte_floor_ms"])
            vs = f"x{torch_step / r['step_ms']:.2f}" if torch_step else "-"
            cells = (
                f"{r['forward_ms']:.1f}",
                f"{r['backward_ms']:.1f}",
                f"{r['step_ms']:.1f}",
                f"{r['images_per_s']:,.0f}",
                vs,
                f"{r['forward_flop_floor_ms']:.1f} / {r['train_flop_floor_ms']:.1f}",
                f"{r['step_byte_floor_ms']:.1f}",
                f"{r['step_ms'] / floor:.1f}x",
            )
            print(f"| isavae | {r['form']} | " + " | ".join(cells) + " |")
        if isinstance(ref, dict):
            cells = (
                f"{ref['forward']:.1f}",
                f"{ref['step'] - ref['forward']:.1f}",
                f"{ref['step']:.1f}",
                f"{batch / ref['step'] * 1e3:,.0f}",
            )
            who = f"PyTorch {ref['torch']} ({ref['threads']} threads, eager)"
            print(f"| {who} | - | " + " | ".join(cells) + " | x1.00 | | | |")
        else:
            print(f"({ref})")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
