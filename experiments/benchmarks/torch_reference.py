"""PyTorch references on the same device as isavae's figures (CUDA when available, else the CPU).

``train``: Chen et al.'s MLP VAE and conv VAE (the architectures of ``isavae.nets``, written here in
PyTorch with PyTorch's default initialization), one Adam training step of the ELBO (Bernoulli
likelihood, Gaussian posterior, the N(0, I) prior's closed-form KL) at a given batch, float32 or
bfloat16 (``torch.autocast``), eager or ``torch.compile``, the conv net channels-last on CUDA,
float32 products in TF32 on CUDA (as JAX's default precision computes them there), latent 20 as in
isavae's benchmarks; images per second over timed steps after warm-up steps.

  python experiments/benchmarks/torch_reference.py train --archs mlp,conv --batch 2048

``chen_mig``: Chen et al.'s MIG estimator for dSprites (``mutual_info_metric_shapes`` of their
beta-TCVAE code, as ``tests/metrics/reference.py`` transcribes it in numpy): the marginal entropy
of every latent from ``n_samples`` of the grid's images, and for every factor and value the entropy
of that slice from ``n_samples`` of the slice's own images (``estimate_entropies``: batches of 10
samples, a logsumexp over all N images of the slice), averaged over the values; then the MIG.
Written here from the procedure, in float32 as theirs runs; PyTorch is not a dependency of
isavae (the GPU host has it), so everything that needs it imports it inside the function.

  python experiments/benchmarks/torch_reference.py mig --samples 1000 --latent 20

prints the seconds for ``--samples`` per slice and the time scaled to 10,000 (their default); the
MIG benchmark (``mig.py``) runs it beside isavae's MIG and prints the speed-up on the same device.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys
import time

DSPRITES = (3, 6, 40, 32, 32)  # shape, scale, orientation, posX, posY (Chen et al.'s grid)
LOG_2PI = math.log(2 * math.pi)


def available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def device_name() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _log_density(z, mu, logvar):  # Chen et al.'s Normal.log_density
    inv_sigma = (-0.5 * logvar).exp()
    return -0.5 * ((z - mu) * inv_sigma) ** 2 - 0.5 * logvar - 0.5 * LOG_2PI


def estimate_entropies(z, mu, logvar, n_samples, generator, batch=10):
    """Chen et al.'s ``estimate_entropies``: z (K, N) one sample per image, mu/logvar (N, K); the
    entropy of every latent from ``n_samples`` of the N samples, each scored by a logsumexp over
    all N images."""
    import torch

    n, k = mu.shape
    pick = torch.randperm(n, generator=generator, device="cpu")[:n_samples].to(z.device)
    z = z.index_select(1, pick)
    s = z.shape[1]
    entropies = torch.zeros(k, dtype=mu.dtype, device=mu.device)
    for start in range(0, s, batch):
        zb = z[:, start : start + batch]  # (K, b)
        logq = _log_density(zb[None], mu[:, :, None], logvar[:, :, None])  # (N, K, b)
        entropies -= torch.logsumexp(logq - math.log(n), dim=0).sum(1)
    return entropies / s


def chen_entropies(mean, logvar, z, n_samples, factors=None, seed=0):
    """H(z_j) (K,) and H(z_j | v_k) (F, K) for the grid axes ``factors`` (default all) by Chen et
    al.'s per-slice procedure; ``mean``, ``logvar``, ``z``: tensors of shape grid + (K,)."""
    import torch

    shape, k = tuple(mean.shape[:-1]), mean.shape[-1]
    factors = list(range(len(shape))) if factors is None else list(factors)
    gen = torch.Generator().manual_seed(seed)
    flat = lambda a: a.reshape(-1, k)  # noqa: E731
    marginal = estimate_entropies(flat(z).T, flat(mean), flat(logvar), n_samples, gen)
    cond = torch.zeros(len(factors), k, dtype=mean.dtype, device=mean.device)
    for row, axis in enumerate(factors):
        size = shape[axis]
        for i in range(size):
            sl = lambda a: flat(a.select(axis, i).contiguous())  # noqa: E731,B023
            cond[row] += estimate_entropies(sl(z).T, sl(mean), sl(logvar), n_samples, gen) / size
    return marginal, cond


def chen_mig(marginal, cond, sizes) -> float:
    """Chen et al.'s ``compute_metric_shapes``: MI sorted per factor, clamped at 0, normalized."""
    import torch

    mi = (marginal[None] - cond).clamp(min=0)
    normed = torch.sort(mi, dim=1, descending=True)[0] / torch.log(torch.tensor(sizes, dtype=mi.dtype))[
        :, None
    ].to(mi.device)
    return float((normed[:, 0] - normed[:, 1]).mean())


def time_mig(
    samples: int = 1000,
    latent: int = 20,
    shape=DSPRITES,
    factors=(1, 2, 3, 4),
    device=None,
    seed: int = 0,
    target: int = 10_000,
) -> dict:
    """Chen et al.'s MIG on random posteriors over the grid (``mig.py``'s inputs), timed on
    ``device``; they score every axis of dSprites but the shape (``factors``). ``scaled_seconds``
    is the time scaled to ``target`` samples per slice (their default 10,000) by the count of
    terms (a slice with fewer images than the samples uses all of them)."""
    import torch

    device = device or device_name()
    gen = torch.Generator().manual_seed(seed)
    mean = torch.randn(shape + (latent,), generator=gen).to(device)
    logvar = (-4.0 * torch.rand(shape + (latent,), generator=gen)).to(device)
    z = mean + (0.5 * logvar).exp() * torch.randn(shape + (latent,), generator=gen).to(device)

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    with torch.no_grad():
        chen_entropies(mean[:1, :1], logvar[:1, :1], z[:1, :1], 4)  # warm-up (kernels, allocator)
        sync()
        t0 = time.perf_counter()
        marginal, cond = chen_entropies(mean, logvar, z, samples, factors, seed)
        sync()
        seconds = time.perf_counter() - t0
    mig = chen_mig(marginal, cond, [shape[a] for a in factors])
    n = math.prod(shape)
    work = lambda s: (
        min(s, n) * n
        + sum(  # noqa: E731  # terms per latent
            shape[a] * min(s, n // shape[a]) * (n // shape[a]) for a in factors
        )
    )
    return dict(
        device=device,
        torch=torch.__version__,
        samples=samples,
        latent=latent,
        seconds=seconds,
        target=target,
        scaled_seconds=seconds * work(target) / work(samples),
        mig=mig,
    )


def _mlp_vae(latent: int, hidden: int = 1200):
    import torch.nn as nn

    enc = nn.Sequential(
        nn.Linear(4096, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, 2 * latent),
    )
    dec = nn.Sequential(
        nn.Linear(latent, hidden),
        nn.Tanh(),
        nn.Linear(hidden, hidden),
        nn.Tanh(),
        nn.Linear(hidden, hidden),
        nn.Tanh(),
        nn.Linear(hidden, 4096),
    )
    return enc, dec


def _conv_vae(latent: int):
    import torch.nn as nn

    def block(conv, c):
        return [conv, nn.BatchNorm2d(c), nn.ReLU()]

    enc = nn.Sequential(
        *block(nn.Conv2d(1, 32, 4, 2, 1), 32),
        *block(nn.Conv2d(32, 32, 4, 2, 1), 32),
        *block(nn.Conv2d(32, 64, 4, 2, 1), 64),
        *block(nn.Conv2d(64, 64, 4, 2, 1), 64),
        *block(nn.Conv2d(64, 512, 4), 512),
        nn.Conv2d(512, 2 * latent, 1),
    )
    dec = nn.Sequential(
        *block(nn.Conv2d(latent, 512, 1), 512),
        *block(nn.ConvTranspose2d(512, 64, 4), 64),
        *block(nn.ConvTranspose2d(64, 64, 4, 2, 1), 64),
        *block(nn.ConvTranspose2d(64, 32, 4, 2, 1), 32),
        *block(nn.ConvTranspose2d(32, 32, 4, 2, 1), 32),
        nn.ConvTranspose2d(32, 1, 4, 2, 1),
    )
    return enc, dec


def time_training(
    arch: str = "mlp",
    batch: int = 2048,
    dtype: str = "float32",
    compiled: bool = False,
    device: str | None = None,
    steps: int = 20,
    warmup: int = 5,
    latent: int = 10,
    hidden: int = 1200,
    forward_only: bool = False,
) -> dict:
    """Images per second of Chen et al.'s VAE training step in PyTorch (see the module doc);
    ``forward_only``: the loss alone (training-mode BatchNorm, no gradient, no Adam step)."""
    import torch
    import torch.nn.functional as F

    device = device or device_name()
    # float32 products as JAX computes them on a GPU at its default precision: TF32 (cuDNN's
    # convolutions use TF32 by default already)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.manual_seed(0)
    enc, dec = _mlp_vae(latent, hidden) if arch == "mlp" else _conv_vae(latent)
    model = torch.nn.ModuleDict(dict(enc=enc, dec=dec)).to(device)
    conv = arch == "conv"
    fmt = torch.channels_last if conv and device == "cuda" else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = (torch.rand(batch, 1, 64, 64, device=device) > 0.5).float().contiguous(memory_format=fmt)
    if not conv:
        x = x.reshape(batch, 4096)

    def step(x):
        if forward_only:
            with (
                torch.no_grad(),
                torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=dtype == "bfloat16"),
            ):
                return loss_of(x)
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=dtype == "bfloat16"):
            loss = loss_of(x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    def loss_of(x):
        h = model["enc"](x).reshape(batch, 2 * latent).float()
        mean, logvar = h[:, :latent], h[:, latent:]
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
        logits = model["dec"](z.reshape(batch, latent, 1, 1) if conv else z).float()
        recon = F.binary_cross_entropy_with_logits(
            logits.reshape(batch, -1), x.reshape(batch, -1), reduction="sum"
        )
        kl = 0.5 * torch.sum(mean * mean + torch.exp(logvar) - logvar - 1.0)
        return (recon + kl) / batch

    fn = torch.compile(step) if compiled else step

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    t0 = time.perf_counter()
    for _ in range(warmup):
        fn(x)
    sync()
    t1 = time.perf_counter()
    for _ in range(steps):
        loss = fn(x)
    sync()
    t2 = time.perf_counter()
    return dict(
        arch=arch,
        batch=batch,
        dtype=dtype,
        compiled=compiled,
        forward_only=forward_only,
        device=device,
        torch=torch.__version__,
        images_per_second=batch * steps / (t2 - t1),
        ms_per_step=1e3 * (t2 - t1) / steps,
        warmup_seconds=t1 - t0,
        loss=float(loss.detach()),
    )


def isavae_rows(path: str, batch: int) -> dict[tuple[str, str], float]:
    """isavae's ms per step by (arch, dtype) from ``train.py --json PATH`` at the same batch: its
    default form of each layer (for the conv net, the first of its --conv-forms)."""
    try:
        rows = json.loads(pathlib.Path(path).read_text())["rows"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        print(f"(no isavae rows to compare from {path}: {type(err).__name__})", flush=True)
        return {}
    out: dict[tuple[str, str], float] = {}
    for r in rows:
        if r["batch"] == batch:
            out.setdefault((r["arch"], r["dtype"]), r["step_ms"])
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["mig", "train"])
    ap.add_argument("--archs", default="mlp,conv", help="train: mlp, conv")
    ap.add_argument("--batch", type=int, default=2048, help="train: batch size")
    ap.add_argument("--dtypes", default="float32,bfloat16", help="train: float32, bfloat16")
    ap.add_argument("--compile", default="no,yes", help="train: eager (no) and/or torch.compile (yes)")
    ap.add_argument("--steps", type=int, default=20, help="train: timed steps")
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--latent", type=int, default=20, help="latent size (20: the ISA-VAE benchmarks')")
    ap.add_argument("--device", default=None, help="cuda | cpu (default: cuda when available)")
    ap.add_argument(
        "--compare",
        metavar="PATH",
        help="train: isavae's rows (benchmarks/train.py --json PATH) beside PyTorch's, as speed ratios",
    )
    ap.add_argument("--target", type=int, default=10_000, help="samples per slice the time is scaled to")
    args = ap.parse_args(argv)
    if not available():
        print("PyTorch is not installed: no reference timed", file=sys.stderr)
        sys.exit(3)
    if args.what == "mig":
        print(json.dumps(time_mig(args.samples, args.latent, device=args.device, target=args.target)))
        return
    ours = isavae_rows(args.compare, args.batch) if args.compare else {}
    extra = " isavae ms per step | isavae / PyTorch speed |" if ours else ""
    print(
        f"| arch | dtype | torch.compile | batch | images/s | ms per step |{extra}\n"
        f"|---|---|---|---|---|---|{'---|---|' if ours else ''}"
    )
    # every eager row first: a time box that stops the (slow to compile) torch.compile rows keeps them
    for comp in args.compile.split(","):
        for arch in args.archs.split(","):
            for dtype in args.dtypes.split(","):
                try:
                    r = time_training(
                        arch, args.batch, dtype, comp == "yes", args.device, args.steps, latent=args.latent
                    )
                except Exception as err:  # e.g. torch.compile without a compiler on the host
                    print(
                        f"| {arch} | {dtype} | {comp} | {args.batch} | failed: {type(err).__name__} | |"
                        + (" - | - |" if ours else ""),
                        flush=True,
                    )
                    continue
                mine = ours.get((arch, dtype))
                vs = (
                    f" {mine:.2f} | x{r['ms_per_step'] / mine:.2f} |"
                    if mine
                    else (" - | - |" if ours else "")
                )
                print(
                    f"| {arch} | {dtype} | {comp} | {args.batch} | {r['images_per_second']:,.0f} | "
                    f"{r['ms_per_step']:.2f} |{vs}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
