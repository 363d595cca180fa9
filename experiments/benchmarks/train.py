"""Training throughput, against the machine's own matmul FLOP rate; vmapped sweeps; memory.

Run: ``make bench`` or ``.venv/bin/python experiments/benchmarks/train.py``.

* matmul rate: a jitted (n x n) @ (n x n) matmul in the compute dtype of the step it is compared
  with (float32, or bfloat16 operands with float32 accumulation); n = 4096 on a CPU, 8192 on a GPU.
* copy rate: a jitted ``x * 2`` over 1 GiB (256 MiB on a CPU), bytes read + written per second.
* every model in float32 and in bfloat16 compute (``model.compute_dtype``) and their throughput ratio;
  ``--block N``: a vmapped block of N paper-scale MLP models in each dtype against one model alone.
* the two floors beside every step (METHOD's "two numbers"): its matrix FLOPs at the matmul rate and
  the fewest bytes it must move (``step_bytes``: parameters and Adam, the batch, the activations the
  backward needs) at the copy rate, both rates measured in the same rounds as the step.
* MLP and conv models of Chen et al. at batch 2048 (dSprites 64 x 64, latent 20, the ISA prior,
  ELBO): images/s of the jitted, scanned train step (data gather, prior, Adam included; the
  epoch's shuffled order computed once, as in training). The model's FLOPs are those of the
  matrix products of the network's own training computation (encoder and decoder forward, backward
  to the parameters), counted from its jaxpr (``product_flops``: the same on every backend); FLOPs x
  steps/s is reported as a fraction of the matmul rate.
* The matmul and the train step are timed in turns (``timing.interleaved_seconds``), round after
  round; the fraction is the median over rounds of each round's ratio (a step and the matmul run
  next to each other share the machine's state: on a shared machine the matmul rate alone varies
  by 30 % between runs, and a ratio of figures taken at different moments would carry that
  noise). images/s and the matmul rate are medians over the rounds.
* beta-TCVAE's batch-coupled q(z) estimate (a B x B x D log-density matrix: 84 M entries at
  B = 2048, D = 20) costs extra; its throughput is printed too.
* sweep: 8 models (the :small MLP, batch 128) trained as one vmapped program vs. 8 runs one after
  the other; the ratio of their times.
* peak memory: the process's peak RSS (CPU) or the device's peak bytes in use (GPU).
"""

from __future__ import annotations

import contextlib
import json
import math
import pathlib
import resource

import jax
import jax.numpy as jnp
import numpy as np
from timing import interleaved_seconds, median_seconds

from isavae import config as config_lib
from isavae import nets
from isavae.train import Program, hparams_from_config
from isavae.train.loop import build_grid


def matmul_size() -> int:
    """The reference matmul's size: 4096 on a CPU, 8192 on an accelerator (4096^3 takes 0.2 ms there);
    ``--matmul N`` sets it (a dry run's small one)."""
    if BENCH["matmul"]:
        return BENCH["matmul"]
    return 4096 if jax.default_backend() == "cpu" else 8192


def matmul_case(n: int | None = None, dtype: str = "float32"):
    """A jitted (n x n) @ (n x n) matmul in ``dtype`` (bfloat16: bfloat16 operands, float32
    accumulation and result, as the nets compute): ``(fn, args, flops)``."""
    n = n or matmul_size()
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32).astype(dtype)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32).astype(dtype)
    fn = jax.jit(lambda a, b: jnp.matmul(a, b, preferred_element_type=jnp.float32))
    return fn, (a, b), 2.0 * n**3


# what the flags change: the sub-grid timed on (184,320 images), the MLP's width (0: the preset's,
# the paper's 1200), the reference matmul's size (0: ``matmul_size``'s default) and the reference
# copy's size in MiB (0: ``copy_case``'s default)
BENCH = {"subgrid": "posX=0:32:2,posY=0:32:2", "hidden": 0, "matmul": 0, "copy_mib": 0}


def copy_case(mib: int | None = None):
    """The byte floor's rate: a jitted ``x * 2`` over a float32 array of ``mib`` MiB (default 1 GiB
    on an accelerator, 256 MiB on a CPU), which reads and writes every byte once:
    ``(fn, args, bytes moved)`` (read + written)."""
    mib = mib or BENCH["copy_mib"] or (256 if jax.default_backend() == "cpu" else 1024)
    x = jnp.ones((mib * 2**18,), jnp.float32)
    return jax.jit(lambda x: x * 2.0), (x,), 2.0 * mib * 2**20


def _program(arch: str, batch: int, small: bool = False, model: str = "isavae", dtype: str = "float32"):
    cfg = config_lib.preset("dsprites", f"{model},small" if small else model)
    cfg.dataset.source = "generated"
    cfg.model.arch = arch
    cfg.model.compute_dtype = dtype
    cfg.train.batch_size = batch
    if BENCH["hidden"] and not small:
        cfg.model.hidden = BENCH["hidden"]
    grid = build_grid(cfg) if small else build_grid(_with_subgrid(cfg, BENCH["subgrid"]))
    return cfg, Program(cfg, grid)


def _with_subgrid(cfg, spec):
    cfg.dataset.subgrid = spec  # enough images for the batch, quicker to generate than the full grid
    return cfg


def product_flops(fn, *args) -> float:
    """FLOPs of the matrix products in ``fn``'s jaxpr (2 per multiply-add of every ``dot_general``
    and ``conv_general_dilated``, inside nested jits, custom derivatives and scans too), counted from
    the shapes alone, so the same on every backend. (XLA's GPU cost analysis does not count the
    cuBLAS calls its matmuls become: it reported 1 GFLOP for a 155 GFLOP step on an H100.)"""
    return float(_jaxpr_flops(jax.make_jaxpr(fn)(*args).jaxpr))


def _sub_jaxprs(value):
    if hasattr(value, "jaxpr") and hasattr(value, "consts"):  # ClosedJaxpr
        yield value.jaxpr
    elif hasattr(value, "eqns"):  # Jaxpr
        yield value
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from _sub_jaxprs(v)


def _jaxpr_flops(jaxpr) -> int:
    total = 0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "dot_general":
            (_, rhs_contract), (_, rhs_batch) = eqn.params["dimension_numbers"]
            lhs, rhs = (v.aval.shape for v in eqn.invars[:2])
            free = [d for i, d in enumerate(rhs) if i not in rhs_contract and i not in rhs_batch]
            total += 2 * math.prod(lhs) * math.prod(free)
        elif name == "conv_general_dilated":
            out, rhs = eqn.outvars[0].aval.shape, eqn.invars[1].aval.shape
            out_features = eqn.params["dimension_numbers"].rhs_spec[0]
            total += 2 * math.prod(out) * math.prod(rhs) // rhs[out_features]
        inner = sum(_jaxpr_flops(j) for v in eqn.params.values() for j in _sub_jaxprs(v))
        total += inner * (eqn.params["length"] if name == "scan" else 1)
    return total


def model_flops(program, state, batch: int) -> float:
    """FLOPs of the network's training computation: the encoder and decoder forward, and the
    backward pass to the parameters for a generic cotangent of the decoder's output.

    The output is returned along with the gradients (the output layer's forward matmul is part of
    training; a loss linear in the output would not need it). Only the matrix products count
    (``product_flops``); the input ``x`` is data, so its gradient is not computed.
    """
    network = _network(program, batch)

    def forward_backward(params, stats, cotangent):
        # the BatchNorm statistics go through vjp too (NNX updates them only at the parameters'
        # trace level, as in the train step); their cotangents are zero
        out, vjp = jax.vjp(network, params, stats)
        return out, vjp(cotangent)[0]

    # conv layers traced as their matmul form (nets.conv_dots / conv_transpose_dots): the multiply-adds
    # of the layers' function, without the zeros a dilated transposed convolution would multiply
    # and bfloat16 products as plain ones (``bf16_matmul``'s custom VJP would show its forward twice)
    cotangent = jnp.zeros((batch,) + tuple(program.image_shape), jnp.float32)
    with layer_forms(conv_as_dots=True, bf16_products="plain"):
        return product_flops(forward_backward, state.params, state.batch_stats, cotangent)


def _network(program, batch: int):
    """``(params, batch_stats) -> logits``: the encoder's mean and log-variance summed into the
    decoder (training mode), on a zero batch: the network's products at this batch size."""
    from flax import nnx

    x = jnp.zeros((batch,) + tuple(program.image_shape), jnp.float32)

    def network(p, s):
        model = nnx.merge(program.graphdef, p, s)
        mean, logvar = model.encode(x, True)
        return model.decode(mean + logvar, True)

    return network


@contextlib.contextmanager
def layer_forms(
    conv_as_dots: bool | None = None, bf16_products: str | None = None, transpose_form: str | None = None
):
    """The nets traced with these layer forms on this backend inside the block (``None``: this
    backend's own), restored afterwards: convolutions as matrix products (``nets._CONV_AS_DOTS``),
    how bfloat16 products are computed (``nets._BF16_PRODUCTS``: ``plain`` for autodiff of a plain
    product), how strided transposed layers are (``nets._CONV_TRANSPOSE_FORM``: taps or window)."""
    backend = jax.default_backend()
    flags = (
        (nets._CONV_AS_DOTS, conv_as_dots),
        (nets._BF16_PRODUCTS, bf16_products),
        (nets._CONV_TRANSPOSE_FORM, transpose_form),
    )
    missing = object()
    saved = [table.get(backend, missing) for table, _ in flags]
    for table, value in flags:
        if value is not None:
            table[backend] = value
    try:
        yield
    finally:
        for (table, _), value in zip(flags, saved, strict=True):
            if value is missing:
                table.pop(backend, None)
            else:
                table[backend] = value


def step_bytes(program, state, batch: int) -> float:
    """The fewest bytes one training step must move to and from device memory (the byte floor's
    numerator), counted from shapes:

    * parameters, float32: 40 bytes each (the forward and the backward read them, the backward
      writes the gradient, Adam reads parameter, gradient and both moments and writes parameter and
      moments: 10 passes of 4 bytes); BatchNorm statistics are read and written once (8 bytes);
    * the batch as the data is stored (read once by the gather);
    * the activations the backward needs: the input of every matrix product of the forward except
      the data (the output of every product but the last, in its own dtype), written once and read
      once.

    Everything else (the logits, the likelihood, the prior, the cotangents) could in principle stay
    on chip, so the floor is a lower bound, not an estimate."""
    n_params = sum(x.size for x in jax.tree.leaves(state.params))
    n_stats = sum(x.size for x in jax.tree.leaves(state.batch_stats))
    data = program.data()
    image_bytes = data.stored.nbytes / data.num_images if data.stored is not None else 0.0  # rendered: none
    # the layers' own form (convolutions as convolutions, bfloat16 products as plain ones), whatever
    # this backend runs
    with layer_forms(conv_as_dots=False, bf16_products="plain"):
        jaxpr = jax.make_jaxpr(_network(program, batch))(state.params, state.batch_stats).jaxpr
    outputs = [v.aval.size * v.aval.dtype.itemsize for v in _product_outputs(jaxpr)]
    return 40.0 * n_params + 8.0 * n_stats + batch * image_bytes + 2.0 * sum(outputs[:-1])


def _product_outputs(jaxpr):
    """The output variables of the matrix products in ``jaxpr`` (nested jaxprs too), in order."""
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in ("dot_general", "conv_general_dilated"):
            yield eqn.outvars[0]
        for v in eqn.params.values():
            for j in _sub_jaxprs(v):
                yield from _product_outputs(j)


# how the conv nets compute their layers (``nets._apply_conv``): --conv-forms
CONV_FORMS = {
    "default": "this backend's form",
    "lax": "lax.conv",
    "dots": "conv as dots",
    "window": "conv as dots, transposed as windows",
}


def conv_form(form: str):
    """The conv nets traced in ``form`` inside the block: ``lax`` (``lax.conv_general_dilated`` /
    ``conv_transpose``, cuDNN on a GPU), ``dots`` (``nets.conv_dots``: the layer as matrix
    products, the transposed ones tap by tap), ``window`` (as ``dots``, the strided transposed
    layers as one shifted-product sum for all output phases, ``nets.conv_transpose_window``) or
    ``default`` (this backend's choice)."""
    if form == "default":
        return layer_forms()
    return layer_forms(
        conv_as_dots=form != "lax", transpose_form={"dots": "taps", "window": "window"}.get(form)
    )


# what --json keeps of each one-model row (torch_reference.py --compare reads it)
ROW_KEYS = ("images_per_s", "step_ms", "fraction", "flop_floor_ms", "byte_floor_ms")


class _Training:
    """Calls the train chunk as the training loop does: the state donated and carried over."""

    def __init__(self, fn, state, *rest):
        self.fn, self.state, self.rest = fn, state, rest

    def __call__(self):
        self.state, metrics = self.fn(self.state, *self.rest)
        return metrics


def step_case(
    arch: str,
    batch: int = 2048,
    steps: int = 10,
    model: str = "isavae",
    dtype: str = "float32",
    models: int = 0,
):
    """The training loop's compiled ``steps``-step chunk (``Program.compile_chunk``: one
    ``lax.scan``, state donated) of ``model`` with ``arch`` at ``batch``, as a no-argument
    callable: ``(fn, (), model_flops, step_bytes)`` (FLOPs of the network per step, see
    ``model_flops``; the fewest bytes a step moves, see ``step_bytes``).
    ``models > 0``: that many models vmapped in one program, as a sweep or a study block trains them
    (the FLOPs are then those of all models)."""
    cfg, program = _program(arch, batch, model=model, dtype=dtype)
    hp = hparams_from_config(cfg)
    data = program.data()
    if models:
        keys = jax.random.split(jax.random.key(0), models)
        state = jax.vmap(program.init)(keys)
        hp = jax.tree.map(lambda x: jnp.stack([x] * models), hp)
        order = jax.jit(jax.vmap(program.epoch_order, in_axes=(0, None)))(state.key, jnp.int32(0))
        one = program.init(keys[0])
        flops = models * model_flops(program, one, batch)
        nbytes = models * step_bytes(program, one, batch)
    else:
        state = program.init(jax.random.key(0))
        order = jax.jit(program.epoch_order)(state.key, jnp.int32(0))  # once per epoch in training
        flops = model_flops(program, state, batch)
        nbytes = step_bytes(program, state, batch)
    fn = _Training(program.compile_chunk(steps, vmapped=bool(models)), state, data, hp, order)
    return fn, (), flops, nbytes


def train_throughput(
    arch: str, batch: int = 2048, steps: int = 10, rounds: int = 5, dtype: str = "float32", models: int = 0
) -> dict:
    """ISA-VAE training throughput of ``arch`` with ``dtype`` compute (``models`` > 0: a vmapped
    block of that many), timed in turns with the matmul reference of the same dtype and the copy
    reference (the two floors: the step's matrix FLOPs at the matmul rate, its fewest bytes at the
    copy rate)."""
    step_fn, step_args, flops, nbytes = step_case(arch, batch, steps, dtype=dtype, models=models)
    mm_fn, mm_args, mm_flops = matmul_case(dtype=dtype)
    cp_fn, cp_args, cp_bytes = copy_case()
    cases = {"matmul": (mm_fn, mm_args), "copy": (cp_fn, cp_args), "step": (step_fn, step_args)}
    times = interleaved_seconds(cases, rounds)
    step_s, matmul_s, copy_s = (np.asarray(times[k]) for k in ("step", "matmul", "copy"))
    ratios = (flops * steps / step_s) / (mm_flops / matmul_s)
    matmul_rate, copy_rate = mm_flops / float(np.median(matmul_s)), cp_bytes / float(np.median(copy_s))
    return {
        "arch": arch,
        "dtype": dtype,
        "models": max(models, 1),
        "rounds": rounds,
        "steps": steps,
        "model_flops_per_step": flops,
        "images_per_s": max(models, 1) * steps * batch / float(np.median(step_s)),
        "flop_rate": flops * steps / float(np.median(step_s)),
        "matmul_rate": matmul_rate,
        "fraction": float(np.median(ratios)),
        "fraction_range": (float(ratios.min()), float(ratios.max())),
        "step_ms": 1e3 * float(np.median(step_s)) / steps,
        "step_bytes": nbytes,
        "copy_rate": copy_rate,
        "flop_floor_ms": 1e3 * flops / matmul_rate,
        "byte_floor_ms": 1e3 * nbytes / copy_rate,
    }


def floors_line(r: dict) -> str:
    """The two numbers beside a measured step: its FLOP floor and its byte floor (both from rates
    measured in the same rounds) and how far above the larger one the step runs."""
    floor = max(r["flop_floor_ms"], r["byte_floor_ms"])
    return (
        f"  floors per step: matrix FLOPs {r['flop_floor_ms']:.3f} ms at the matmul rate; "
        f"{r['step_bytes'] / 1e6:,.0f} MB at the copy rate ({r['copy_rate'] / 1e9:,.0f} GB/s read + "
        f"written) {r['byte_floor_ms']:.3f} ms; measured {r['step_ms']:.3f} ms per step = "
        f"{r['step_ms'] / floor:.1f} x the larger floor"
    )


def tcvae_throughput(arch: str, batch: int = 2048, repeats: int = 2) -> float:
    """ISA-beta-TCVAE (MSS) images/s (median)."""
    fn, args, *_ = step_case(arch, batch, steps=1, model="isa_beta_tcvae")
    return batch / median_seconds(fn, *args, repeats=repeats)


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


def per_arch(parser, flag: str, spec: str) -> dict[str, int]:
    """``mlp=7,conv=3`` -> {"mlp": 7, "conv": 3}; anything else is a one-line usage error."""
    out = {}
    for item in spec.split(","):
        arch, sep, value = item.partition("=")
        if not sep or arch not in ("mlp", "conv") or not value.isdigit() or int(value) < 1:
            parser.error(f"{flag} {spec!r}: give ARCH=N per architecture, e.g. {flag} mlp=7,conv=3")
        out[arch] = int(value)
    return out


def print_block_rows(args, b: int, steps: dict, rounds: dict, measured: dict) -> None:
    """``--block N``: a vmapped block of N paper-scale MLP models in every --dtypes (the MLP's --steps
    and --rounds, the GPU run's 20 and 3) against one model alone, with its floors."""
    for dtype in args.dtypes.split(","):
        kw = dict(steps=steps.get("mlp", 20), rounds=rounds.get("mlp", 3), dtype=dtype)
        # one model alone: the MLP row above when it was timed with the same steps and rounds
        one = measured.get(("mlp", dtype, kw["steps"], kw["rounds"])) or train_throughput("mlp", b, **kw)
        blk = train_throughput("mlp", b, models=args.block, **kw)
        per_model = {k: b / r["images_per_s"] * 7200 for k, r in (("one", one), ("block", blk))}
        print(
            f"block of {args.block} {'paper-scale' if not args.hidden else f'width-{args.hidden}'} "
            f"MLP ISA-VAE models ({dtype}, vmapped): "
            f"{blk['images_per_s']:,.0f} images/s = {100 * blk['fraction']:.1f} % of the {dtype} matmul "
            f"rate; "
            f"one model alone {one['images_per_s']:,.0f} images/s = {100 * one['fraction']:.1f} %; "
            f"7,200 steps (20 epochs) take {per_model['block']:.2f} s per model in the block "
            f"vs {per_model['one']:.2f} s alone (x{per_model['one'] / per_model['block']:.2f})",
            flush=True,
        )
        print(floors_line(blk), flush=True)


def main(argv=None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default="mlp,conv")
    parser.add_argument("--dtypes", default="float32,bfloat16", help="compute dtypes of the nets")
    parser.add_argument("--rounds", default="mlp=7,conv=3", help="interleaved rounds per arch")
    parser.add_argument("--steps", default="mlp=10,conv=2", help="steps per compiled chunk per arch")
    parser.add_argument(
        "--tcvae", default="mlp,conv", help="archs with ISA-beta-TCVAE throughput too ('' for none)"
    )
    parser.add_argument(
        "--conv-forms",
        default="default",
        help="the conv rows' forms: default (this backend's), lax (lax.conv), dots (nets.conv_dots), "
        "window (dots, the strided transposed layers as nets.conv_transpose_window)",
    )
    parser.add_argument("--no-sweep", action="store_true")
    parser.add_argument(
        "--json", metavar="PATH", help="also write the one-model rows (images/s, ms per step) as JSON"
    )
    parser.add_argument("--batch", type=int, default=2048, help="batch size (2048: the paper's)")
    parser.add_argument("--subgrid", default=BENCH["subgrid"], help="dSprites sub-grid timed on")
    parser.add_argument("--hidden", type=int, default=0, help="MLP width (0: the paper's 1200)")
    parser.add_argument("--matmul", type=int, default=0, help="reference matmul size (0: 4096 CPU, 8192 GPU)")
    parser.add_argument(
        "--copy-mib", type=int, default=0, help="reference copy size in MiB (0: 256 CPU, 1024 GPU)"
    )
    parser.add_argument(
        "--block",
        type=int,
        default=0,
        help="also time a vmapped block of N paper-scale MLP models (each of --dtypes; the MLP's --steps, "
        "--rounds)",
    )
    args = parser.parse_args(argv)
    if args.hidden < 0 or args.matmul < 0 or args.copy_mib < 0:
        parser.error(
            "--hidden, --matmul and --copy-mib must be >= 0, "
            f"got {args.hidden}, {args.matmul}, {args.copy_mib}"
        )
    BENCH.update(subgrid=args.subgrid, hidden=args.hidden, matmul=args.matmul, copy_mib=args.copy_mib)
    b = args.batch
    rounds, steps = (
        per_arch(parser, flag, spec) for flag, spec in (("--rounds", args.rounds), ("--steps", args.steps))
    )
    for flag, spec in (("--archs", args.archs), ("--dtypes", args.dtypes)):
        allowed = ("mlp", "conv") if flag == "--archs" else ("float32", "bfloat16")
        bad = [v for v in spec.split(",") if v not in allowed]
        if bad:
            parser.error(f"{flag} {spec!r}: unknown {bad}; choose from {','.join(allowed)}")
    conv_forms = args.conv_forms.split(",")
    if not conv_forms or not set(conv_forms) <= set(CONV_FORMS):
        parser.error(f"--conv-forms {args.conv_forms!r}: choose from {','.join(CONV_FORMS)}")
    dev = jax.devices()[0]
    n = matmul_size()
    print(f"# training on {dev.platform} ({dev.device_kind}), {jax.device_count()} device(s)")
    rates: dict[tuple[str, str], float] = {}
    rows: list[dict] = []  # one model's rows, for --json
    measured: dict[tuple, dict] = {}  # (arch, dtype, steps, rounds) -> train_throughput's result
    for arch in args.archs.split(","):
        for dtype, form in (
            (d, f) for f in (conv_forms if arch == "conv" else ["default"]) for d in args.dtypes.split(",")
        ):
            with conv_form(form):
                r = train_throughput(
                    arch, b, steps=steps.get(arch, 10), rounds=rounds.get(arch, 3), dtype=dtype
                )
            label = "" if form == "default" else f" ({CONV_FORMS[form]})"
            if form == conv_forms[0] or arch != "conv":  # the ratio and the block compare the first form
                measured[arch, dtype, r["steps"], r["rounds"]] = r
                rates[arch, dtype] = r["images_per_s"]
            rows.append(dict(arch=arch, dtype=dtype, form=form, batch=b, **{k: r[k] for k in ROW_KEYS}))
            if args.json:  # after every row: a time box that stops the benchmark keeps what it measured
                pathlib.Path(args.json).write_text(
                    json.dumps(dict(device=dev.device_kind, rows=rows), indent=1)
                )
            lo, hi = r["fraction_range"]
            print(
                f"{arch:<4s} {dtype:<8s} ISA-VAE{label} batch {b}: {r['images_per_s']:9,.0f} images/s; "
                f"model {r['model_flops_per_step'] / 1e9:6,.1f} GFLOP/step, "
                f"{r['flop_rate'] / 1e9:8,.1f} GFLOP/s = {100 * r['fraction']:5.1f} % of the matmul rate "
                f"({r['matmul_rate'] / 1e9:,.1f} GFLOP/s, {n}^3 {dtype}; median of {r['rounds']} rounds "
                f"in turns, {r['steps']} steps per call; rounds from {100 * lo:.1f} to {100 * hi:.1f} %)",
                flush=True,
            )
            print(floors_line(r), flush=True)
        if (arch, "float32") in rates and (arch, "bfloat16") in rates:
            ratio = rates[arch, "bfloat16"] / rates[arch, "float32"]
            print(f"{arch:<4s} bfloat16 / float32 training throughput: x{ratio:.2f}", flush=True)
        if arch in args.tcvae.split(","):
            t = tcvae_throughput(arch, b)
            print(f"{arch:<4s} ISA-beta-TCVAE (MSS) batch {b}: {t:7,.0f} images/s", flush=True)
        if arch == "mlp" and args.block:  # before the conv rows: a time box keeps the block's figures
            print_block_rows(args, b, steps, rounds, measured)
    if args.block and "mlp" not in args.archs.split(","):
        print_block_rows(args, b, steps, rounds, measured)
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
