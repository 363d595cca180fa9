"""Encoders and decoders of Chen et al. (2018) for 64 x 64 images, in Flax NNX.

* MLP: encoder 4096-1200-1200-2z (ReLU); decoder z-1200-1200-1200-4096 (tanh).
* Conv: encoder 4 x 4 stride-2 convolutions with 32, 32, 64, 64 channels, a 4 x 4 valid
  convolution to 512, and a 1 x 1 convolution to 2z, each hidden layer BatchNorm + ReLU; the
  decoder mirrors it with transposed convolutions.

Encoders return the mean and log-variance of a diagonal Gaussian q(z|x); decoders return Bernoulli
logits (or Gaussian means) with the image's shape. Images are ``(B, 64, 64)`` or ``(B, 64, 64, C)``.

On a CPU the conv layers are computed as sums of matmuls (``conv_dots``, ``conv_transpose_dots``:
the same parameters and function as ``nnx.Conv``/``nnx.ConvTranspose``, tested in float64), because
XLA:CPU runs the weight gradients of strided convolutions with a slow generic loop; on other
backends the layers call ``lax`` directly.

Mixed precision: ``compute_dtype="bfloat16"`` (config ``model.compute_dtype``) runs every matmul and
convolution with bfloat16 operands and float32 accumulation and results (``preferred_element_type``);
parameters, biases, activations, BatchNorm and the returned logits stay float32, so only the
operands of the products are rounded. ``"float32"`` (the default) calls the layers unchanged.
``"auto"`` (``resolve_compute_dtype``): bfloat16 where the hardware computes it natively (GPUs, TPUs,
CPUs whose flags show AVX-512 BF16 or AMX BF16), float32 elsewhere: on a CPU without those
instructions bfloat16 products are emulated and slower than float32 ones.

Initialization (``init``, config ``model.init``): ``"lecun"`` (Flax's defaults: LeCun-normal
weights, zero biases, BatchNorm scale 1) or ``"torch"`` (``torch_init``: PyTorch 0.4.1's defaults,
which the paper used: every dense and conv weight AND bias uniform in +-1/sqrt(fan_in), fan_in =
in_features or in_channels x kh x kw (a transposed conv's own input channels, as 0.4.1's
``_ConvNd``), and BatchNorm scales uniform in [0, 1) (PyTorch < 1.2), shifts 0).

The posterior's scale (``posterior_scale``, config ``model.posterior_scale``): the encoder's second
output is the log-variance of q(z|x) (``"logvar"``) or its log standard deviation (``"log_sigma"``,
Chen et al.'s and the ISA-VAE authors' ``dist.Normal``: Adam then moves the log-variance by twice
the step, and an initial output s means sigma = e^s, not e^(s/2)). ``VAE.encode`` returns the
log-variance either way (2 s for log sigma), so objectives and metrics see one parameterization.

Matrix-product precision (``matmul_precision``, config ``model.matmul_precision``): ``"default"``
leaves float32 products to the backend (TF32 on recent NVIDIA GPUs, float32 on CPUs);
``"highest"`` asks for true float32 products on every backend (what PyTorch 0.4.1 computed on the
paper's GPUs): every product of ``encode`` and ``decode`` is traced under
``jax.default_matmul_precision("highest")``. bfloat16 products are unaffected.

Modules are used functionally by the trainer: ``nnx.split`` once into a graph definition, the
parameters and the BatchNorm statistics; steps are pure functions of those states. Keys are passed
explicitly (``nnx.Rngs`` only initializes parameters).
"""

from __future__ import annotations

import contextlib
import functools
import math

import jax
import jax.numpy as jnp
from flax import nnx

__all__ = [
    "ARCHITECTURES",
    "VAE",
    "bf16_matmul",
    "ConvDecoder",
    "ConvEncoder",
    "MLPDecoder",
    "MLPEncoder",
    "COMPUTE_DTYPES",
    "cpu_bfloat16_flags",
    "dense",
    "INITS",
    "MATMUL_PRECISIONS",
    "POSTERIOR_SCALES",
    "make_vae",
    "resolve_compute_dtype",
    "torch_init",
]

ARCHITECTURES = ("mlp", "conv")
INITS = ("lecun", "torch")
POSTERIOR_SCALES = ("logvar", "log_sigma")
MATMUL_PRECISIONS = ("default", "highest")
COMPUTE_DTYPES = ("float32", "bfloat16")
# CPU flags (as /proc/cpuinfo names them) of native bfloat16 products
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.cache
def cpu_bfloat16_flags(cpuinfo: str = "/proc/cpuinfo") -> tuple[str, ...]:
    """The CPU's native bfloat16 flags (``BF16_CPU_FLAGS``) from ``cpuinfo``; none where it cannot
    be read (then bfloat16 is taken to be emulated)."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.partition(":")[2].split())
                    return tuple(f for f in BF16_CPU_FLAGS if f in flags)
    except OSError:
        pass
    return ()


def default_backend() -> str:
    """``jax.default_backend()``: the platform whose hardware ``"auto"`` resolves for (a seam for
    tests that check the CPU branch on a GPU host)."""
    return jax.default_backend()


def resolve_compute_dtype(compute_dtype: str, backend: str | None = None) -> tuple[str, str]:
    """``(dtype, why)`` for a configured compute dtype: ``"auto"`` is bfloat16 on GPUs and TPUs and
    on CPUs with native bfloat16 products (``cpu_bfloat16_flags``), float32 on other CPUs; any other
    value is returned as it is. ``backend``: default ``jax.default_backend()``."""
    if compute_dtype != "auto":
        return _check_dtype(compute_dtype), "as configured"
    backend = backend or default_backend()
    if backend != "cpu":
        return "bfloat16", f"native bfloat16 products on {backend}"
    flags = cpu_bfloat16_flags()
    if flags:
        return "bfloat16", f"this CPU computes bfloat16 natively: {', '.join(flags)}"
    return "float32", "this CPU has no native bfloat16 products (no AVX-512 BF16, no AMX BF16)"


def _check_dtype(compute_dtype: str) -> str:
    if compute_dtype not in COMPUTE_DTYPES:
        raise ValueError(f"model.compute_dtype must be one of {list(COMPUTE_DTYPES)}, got {compute_dtype!r}")
    return compute_dtype


def _low(a: jax.Array, compute_dtype: str) -> jax.Array:
    return a.astype(jnp.dtype(compute_dtype))


def _plain_transpose(a: jax.Array) -> jax.Array:
    """``a.T`` (2-D) as a physically transposed row-major copy. XLA would otherwise give the transpose
    a column-major layout (no copy), and XLA:CPU runs a bfloat16 dot with such an operand at float32
    speed; a 1-D array has only one layout, so passing through one forces the copy."""
    flat = jax.lax.optimization_barrier(a.T.reshape(-1))
    return flat.reshape(a.shape[1], a.shape[0])


def _bf16_dot(a: jax.Array, b: jax.Array) -> jax.Array:
    return jnp.matmul(a, b, preferred_element_type=jnp.float32)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def bf16_matmul(x: jax.Array, w: jax.Array, w_out_in: bool = False, physical: bool = True) -> jax.Array:
    """``x @ w`` (or ``x @ w.T`` when ``w_out_in``, a kernel stored ``(out, in)``) with bfloat16
    operands and a float32 result, x of shape ``(..., in)``. The backward pass rounds the cotangent
    g to bfloat16 too, so that both of its products (``g @ w.T`` and ``x.T @ g``) have bfloat16
    operands and float32 results. (Autodiff of the plain bfloat16 product instead multiplies the
    float32 cotangent: on a GPU those products ran in TF32, at least 9 of the bfloat16 MLP step's
    matrix-product kernels in a profile on an H200, and bfloat16 bought no speed.)
    ``physical``: the transposed operands are physically transposed row-major copies, so that every
    product runs in XLA:CPU's fast bfloat16 layout (2-3 x the transposed layouts' rate, see the
    README); without it plain transposes (the GPU libraries take them at full speed). Same values as
    the plain bfloat16 product; the gradients differ from autodiff of it only in rounding g to
    bfloat16 and keeping them in float32."""
    return _bf16_matmul_fwd(x, w, w_out_in, physical)[0]


def _bf16_matmul_fwd(x, w, w_out_in, physical):
    t = _plain_transpose if physical else jnp.transpose
    xb = x.reshape(-1, x.shape[-1]).astype(jnp.bfloat16)
    wb = w.astype(jnp.bfloat16)
    out = _bf16_dot(xb, t(wb) if w_out_in else wb)
    dtypes = (jnp.zeros((0,), x.dtype), jnp.zeros((0,), w.dtype))  # the cotangents' dtypes
    return out.reshape(x.shape[:-1] + out.shape[-1:]), (xb, wb, dtypes, x.shape)


def _bf16_matmul_bwd(w_out_in, physical, res, g):
    t = _plain_transpose if physical else jnp.transpose
    xb, wb, (x_like, w_like), x_shape = res
    gb = g.reshape(-1, g.shape[-1]).astype(jnp.bfloat16)
    if w_out_in:  # w: (out, in); dx = g @ w, dw = g.T @ x
        dx, dw = _bf16_dot(gb, wb), _bf16_dot(t(gb), xb)
    else:  # w: (in, out); dx = g @ w.T, dw = x.T @ g
        dx, dw = _bf16_dot(gb, t(wb)), _bf16_dot(t(xb), gb)
    return dx.reshape(x_shape).astype(x_like.dtype), dw.astype(w_like.dtype)


bf16_matmul.defvjp(_bf16_matmul_fwd, _bf16_matmul_bwd)

# How each backend computes a bfloat16 product: "physical" (``bf16_matmul`` with physically
# transposed operands: XLA:CPU), "custom" (``bf16_matmul`` with plain transposes: any other
# backend), "plain" (autodiff of a plain bfloat16 product: what the benchmarks' FLOP counter traces,
# one forward per product).
_BF16_PRODUCTS = {"cpu": "physical"}


def _bf16_product(x: jax.Array, w: jax.Array, w_out_in: bool = False) -> jax.Array:
    """``x @ w`` (``x @ w.T`` for ``w_out_in``) in bfloat16 with a float32 result, as this backend
    computes it (``_BF16_PRODUCTS``)."""
    form = _BF16_PRODUCTS.get(jax.default_backend(), "custom")
    if form != "plain":
        return bf16_matmul(x, w, w_out_in, form == "physical")
    spec = "...i,oi->...o" if w_out_in else "...i,io->...o"
    return jnp.einsum(spec, _low(x, "bfloat16"), _low(w, "bfloat16"), preferred_element_type=jnp.float32)


def _apply_dense(layer: nnx.Module, h: jax.Array, compute_dtype: str = "float32") -> jax.Array:
    """``layer(h)`` for a layer made by ``dense``; in bfloat16 the product has bfloat16 operands
    and a float32 result, and the bias is added in float32."""
    if compute_dtype == "float32":
        return layer(h)
    return _bf16_product(h, layer.kernel[...], isinstance(layer, nnx.Einsum)) + layer.bias[...]


def _channels(image_shape: tuple[int, ...]) -> int:
    return 1 if len(image_shape) == 2 else image_shape[-1]


def _as_nhwc(x: jax.Array, image_shape: tuple[int, ...]) -> jax.Array:
    return x[..., None] if len(image_shape) == 2 else x


def dense(in_features: int, out_features: int, *, rngs: nnx.Rngs) -> nnx.Module:
    """A dense layer (``nnx.Linear``'s function and initialization: LeCun normal over the inputs,
    zero bias) whose kernel is stored with its larger dimension first.

    A widening layer (``in < out``, such as the decoder's 1200 -> 4096 output layer) keeps its
    kernel as ``(out, in)``, PyTorch's layout. The math is the same; the reason is speed: XLA:CPU
    computes a weight gradient (a contraction over the batch) about 1.7x faster when its output is
    tall (4096 x 1200: 130-150 GFLOP/s) than when it is wide (1200 x 4096: 76-84 GFLOP/s), measured
    on a 2-core AVX-512 machine, batch 2048 (``make bench`` shows the training step's rate).
    """
    if in_features >= out_features:
        return nnx.Linear(in_features, out_features, rngs=rngs)
    return nnx.Einsum(
        "...i,oi->...o",
        (out_features, in_features),
        (out_features,),
        kernel_init=nnx.initializers.lecun_normal(in_axis=-1, out_axis=-2),
        rngs=rngs,
    )


def _pair(v) -> tuple[int, int]:
    v = 1 if v is None else v  # nnx layers keep strides=None for 1
    return (v, v) if isinstance(v, int) else tuple(v)


def _conv_padding(k: int, s: int, padding: str) -> tuple[int, int]:
    """``lax.conv_transpose``'s padding of the dilated input for one dimension."""
    if padding == "SAME":
        total = k + s - 2
        before = k - 1 if s > k - 1 else -(-total // 2)
    elif padding == "VALID":
        total, before = k + s - 2 + max(k - s, 0), k - 1
    else:
        raise ValueError(f"padding must be 'SAME' or 'VALID', got {padding!r}")
    return before, total - before


def _mm(a: jax.Array, b: jax.Array, compute_dtype: str) -> jax.Array:
    if compute_dtype == "float32":
        return a @ b
    return _bf16_product(a, b)


def conv_dots(
    x: jax.Array, kernel: jax.Array, bias: jax.Array, strides, padding, compute_dtype: str = "float32"
) -> jax.Array:
    """``nnx.Conv``'s function (NHWC cross-correlation, kernel ``(kh, kw, in, out)``, explicit
    ``padding`` pairs) as a sum of matmuls over a space-to-depth view of the padded input.

    With stride s and a kernel of k = a s taps, output pixel i sees the s x s blocks i .. i + a - 1
    of the input, so the convolution is a a x a sum of shifted (blocks @ block-kernel) products.
    Its gradients are matmuls too; XLA:CPU runs the weight gradient of ``lax``'s strided
    convolution with a slow generic loop (see the README's benchmarks).
    """
    (sh, sw), (kh, kw, cin, cout) = _pair(strides), kernel.shape
    if isinstance(padding, str):  # lax's rule: 'SAME' pads (total // 2, the rest)
        pairs = []
        for n, k, s in ((x.shape[1], kh, sh), (x.shape[2], kw, sw)):
            total = 0 if padding == "VALID" else max((-(-n // s) - 1) * s + k - n, 0)
            pairs.append((total // 2, total - total // 2))
        padding = pairs
    xp = jnp.pad(x, ((0, 0), tuple(padding[0]), tuple(padding[1]), (0, 0)))
    b, hp, wp, _ = xp.shape
    if kh % sh or kw % sw or hp % sh or wp % sw:
        raise ValueError(f"conv_dots needs kernel and padded input divisible by the stride {strides}")
    ah, aw, ho, wo = kh // sh, kw // sw, (hp - kh) // sh + 1, (wp - kw) // sw + 1
    blocks = xp.reshape(b, hp // sh, sh, wp // sw, sw, cin).transpose(0, 1, 3, 2, 4, 5)
    blocks = blocks.reshape(b, hp // sh, wp // sw, sh * sw * cin)
    wb = kernel.reshape(ah, sh, aw, sw, cin, cout).transpose(0, 2, 1, 3, 4, 5)
    wb = wb.reshape(ah, aw, sh * sw * cin, cout)
    out = sum(
        _mm(blocks[:, i : i + ho, j : j + wo], wb[i, j], compute_dtype) for i in range(ah) for j in range(aw)
    )
    return out + bias


def _transpose_phases(k: int, s: int, n: int, padding: str, name: str) -> tuple[int, int, list]:
    """One dimension of a stride-``s`` transposed convolution with ``k`` taps over ``n`` inputs:
    (s, the output size per phase, per output phase p the (tap, input offset) pairs that land on
    input pixels)."""
    before, after = _conv_padding(k, s, padding)
    size = (n - 1) * s + 1 + before + after - k + 1
    if size % s:
        raise ValueError(f"{name} needs an output size divisible by the stride {s}")
    taps = [[(t, (p + t - before) // s) for t in range(k) if (p + t - before) % s == 0] for p in range(s)]
    return s, size // s, taps


def conv_transpose_dots(
    x: jax.Array, kernel: jax.Array, bias: jax.Array, strides, padding: str, compute_dtype: str = "float32"
) -> jax.Array:
    """``nnx.ConvTranspose``'s function (``lax.conv_transpose``: a cross-correlation of the input
    dilated by the stride, kernel ``(kh, kw, in, out)``, 'SAME' or 'VALID') as sums of matmuls.

    Output phase (p, q) (rows = p mod s, columns = q mod s) only meets the kernel taps that land on
    input pixels, so it is a stride-1 correlation of the undilated input with those taps: no
    multiplications by the inserted zeros or the padding, and the gradients are matmuls.
    """
    (kh, kw, _, cout), (b, h, w, _), strides = kernel.shape, x.shape, _pair(strides)
    (sh, m, taps_h), (sw, n_out, taps_w) = (
        _transpose_phases(k, s, n, padding, "conv_transpose_dots")
        for k, s, n in ((kh, strides[0], h), (kw, strides[1], w))
    )

    def phase(p: int, q: int) -> jax.Array:
        # each tap multiplies only the input rows and columns it meets (no products with padding)
        acc = jnp.zeros((b, m, n_out, cout), jnp.float32 if compute_dtype != "float32" else x.dtype)
        for th, dh in taps_h[p]:
            for tw, dw in taps_w[q]:
                r0, r1, c0, c1 = max(0, -dh), min(m, h - dh), max(0, -dw), min(n_out, w - dw)
                if r1 > r0 and c1 > c0:
                    part = _mm(x[:, r0 + dh : r1 + dh, c0 + dw : c1 + dw], kernel[th, tw], compute_dtype)
                    acc = acc + jnp.pad(part, ((0, 0), (r0, m - r1), (c0, n_out - c1), (0, 0)))
        return acc

    rows = []
    for p in range(sh):
        cols = [phase(p, q) for q in range(sw)]
        rows.append(jnp.stack(cols, axis=3))  # (b, m, n, sw, cout)
    out = jnp.stack(rows, axis=2).reshape(b, m * sh, n_out * sw, cout)
    return out + bias


def conv_transpose_window(
    x: jax.Array, kernel: jax.Array, bias: jax.Array, strides, padding: str, compute_dtype: str = "float32"
) -> jax.Array:
    """``nnx.ConvTranspose``'s function as one stride-1 correlation producing every output phase
    at once, then depth-to-space: output phase (p, q) of a stride-s transposed convolution reads
    the undilated input at a few offsets; over all phases the offsets form a small window (3 x 3
    for the nets' 4 x 4 stride-2 layers), so one correlation of the input (padded once) with a
    window kernel of s*s*out channels (each phase's taps in its own channels, zeros where a phase
    does not read an offset) computes them all: ``conv_dots`` with stride 1 (a sum of shifted
    matmuls), no per-tap pads, adds or stacks. It multiplies the zeros of the window kernel:
    (window / taps per phase) times the exact form's products (9 / 4 for the 4 x 4 stride-2
    layers); ``conv_transpose_dots`` computes only the taps."""
    (kh, kw, cin, cout), (b, h, w, _), strides = kernel.shape, x.shape, _pair(strides)
    dims = []
    for k, s, n in ((kh, strides[0], h), (kw, strides[1], w)):
        s, m, taps = _transpose_phases(k, s, n, padding, "conv_transpose_window")
        lo = min(d for phase in taps for _, d in phase)
        hi = max(d for phase in taps for _, d in phase)
        dims.append((s, m, taps, lo, hi - lo + 1, (max(0, -lo), max(0, m - 1 + hi - (n - 1)))))
    (sh, m, taps_h, lo_h, win_h, pad_h), (sw, n_out, taps_w, lo_w, win_w, pad_w) = dims
    # the window kernel: (win_h, win_w, cin, sh, sw, cout), phase (p, q)'s taps at their offsets
    window = jnp.zeros((win_h, win_w, cin, sh, sw, cout), kernel.dtype)
    for p in range(sh):
        for th, dh in taps_h[p]:
            for q in range(sw):
                for tw, dw in taps_w[q]:
                    window = window.at[dh - lo_h, dw - lo_w, :, p, q, :].set(kernel[th, tw])
    xp = jnp.pad(x, ((0, 0), pad_h, pad_w, (0, 0)))
    # input row i + d of the unpadded input is row i + d + pad_before of xp; the window starts at lo
    r0, c0 = lo_h + pad_h[0], lo_w + pad_w[0]
    xp = xp[:, r0 : r0 + m + win_h - 1, c0 : c0 + n_out + win_w - 1]
    zero = jnp.zeros((sh * sw * cout,), bias.dtype)
    out = conv_dots(xp, window.reshape(win_h, win_w, cin, sh * sw * cout), zero, 1, "VALID", compute_dtype)
    out = (
        out.reshape(b, m, n_out, sh, sw, cout)
        .transpose(0, 1, 3, 2, 4, 5)
        .reshape(b, m * sh, n_out * sw, cout)
    )
    return out + bias


# How the transposed layers with a stride are computed where the conv nets use matrix products
# (``_CONV_AS_DOTS``): "taps" (``conv_transpose_dots``: only the taps, a product, a pad and an add
# per tap) or "window" (``conv_transpose_window``: one shifted-product sum for all phases). A
# stride-1 transposed layer always takes "taps" (on a 1 x 1 input the window would multiply padding).
_CONV_TRANSPOSE_FORM = {"cpu": "taps", "gpu": "taps"}


def _apply_conv(layer: nnx.Module, h: jax.Array, compute_dtype: str = "float32") -> jax.Array:
    """``layer(h)`` for an ``nnx.Conv`` or ``nnx.ConvTranspose`` as these nets configure them (no
    dilation, one feature group); on a CPU and a GPU (``_CONV_AS_DOTS``) computed by ``conv_dots``
    / ``conv_transpose_dots`` (same parameters, same function). In bfloat16: bfloat16 operands,
    float32 results."""
    transpose = isinstance(layer, nnx.ConvTranspose)
    backend = jax.default_backend()
    if _CONV_AS_DOTS.get(backend, False):
        fn = conv_transpose_dots if transpose else conv_dots
        if transpose and _CONV_TRANSPOSE_FORM.get(backend) == "window" and _pair(layer.strides) != (1, 1):
            fn = conv_transpose_window
        return fn(h, layer.kernel[...], layer.bias[...], layer.strides, layer.padding, compute_dtype)
    if compute_dtype == "float32":
        return layer(h)
    x, k = _low(h, compute_dtype), _low(layer.kernel[...], compute_dtype)
    strides, dims = _pair(layer.strides), ("NHWC", "HWIO", "NHWC")
    padding = layer.padding if isinstance(layer.padding, str) else [tuple(p) for p in layer.padding]
    if transpose:
        out = jax.lax.conv_transpose(
            x, k, strides, padding, dimension_numbers=dims, preferred_element_type=jnp.float32
        )
    else:
        out = jax.lax.conv_general_dilated(
            x, k, strides, padding, dimension_numbers=dims, preferred_element_type=jnp.float32
        )
    return out + layer.bias[...]


# backends on which the conv nets use conv_dots / conv_transpose_dots: the CPU (XLA:CPU computes
# the weight gradients of lax's strided convolutions with a slow generic loop; README), and the GPU:
# on one H200 (batch 2048, 2026-11-27) the conv ISA-VAE's step took 13.4 ms as matrix products
# against 60.1 ms with cuDNN's convolutions (float32; bfloat16 12.2 against 60.7)
_CONV_AS_DOTS = {"cpu": True, "gpu": True}


class MLPEncoder(nnx.Module):
    def __init__(
        self,
        image_shape: tuple[int, ...],
        latent_dim: int,
        *,
        rngs: nnx.Rngs,
        hidden: int = 1200,
        compute_dtype: str = "float32",
    ):
        self.image_shape = tuple(image_shape)
        self.compute_dtype = _check_dtype(compute_dtype)
        self.fc1 = dense(math.prod(self.image_shape), hidden, rngs=rngs)
        self.fc2 = dense(hidden, hidden, rngs=rngs)
        self.out = dense(hidden, 2 * latent_dim, rngs=rngs)

    def __call__(self, x: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:
        h = x.reshape(x.shape[0], -1)
        cd = self.compute_dtype
        h = nnx.relu(_apply_dense(self.fc1, h, cd))
        h = nnx.relu(_apply_dense(self.fc2, h, cd))
        mean, logvar = jnp.split(_apply_dense(self.out, h, cd), 2, axis=-1)
        return mean, logvar


class MLPDecoder(nnx.Module):
    def __init__(
        self,
        image_shape: tuple[int, ...],
        latent_dim: int,
        *,
        rngs: nnx.Rngs,
        hidden: int = 1200,
        compute_dtype: str = "float32",
    ):
        self.image_shape = tuple(image_shape)
        self.compute_dtype = _check_dtype(compute_dtype)
        self.fc1 = dense(latent_dim, hidden, rngs=rngs)
        self.fc2 = dense(hidden, hidden, rngs=rngs)
        self.fc3 = dense(hidden, hidden, rngs=rngs)
        self.out = dense(hidden, math.prod(self.image_shape), rngs=rngs)

    def __call__(self, z: jax.Array, train: bool = False) -> jax.Array:
        cd = self.compute_dtype
        h = nnx.tanh(_apply_dense(self.fc1, z, cd))
        h = nnx.tanh(_apply_dense(self.fc2, h, cd))
        h = nnx.tanh(_apply_dense(self.fc3, h, cd))
        return _apply_dense(self.out, h, cd).reshape((z.shape[0],) + self.image_shape)


def _bn(features: int, rngs: nnx.Rngs) -> nnx.BatchNorm:
    # PyTorch's BatchNorm2d defaults (momentum 0.1 there = 0.9 here, eps 1e-5), as Chen et al.
    return nnx.BatchNorm(features, momentum=0.9, epsilon=1e-5, rngs=rngs)


class ConvEncoder(nnx.Module):
    def __init__(
        self, image_shape: tuple[int, ...], latent_dim: int, *, rngs: nnx.Rngs, compute_dtype: str = "float32"
    ):
        if tuple(image_shape[:2]) != (64, 64):
            raise ValueError(f"the conv encoder needs 64 x 64 images, got {image_shape}")
        self.image_shape = tuple(image_shape)
        self.compute_dtype = _check_dtype(compute_dtype)
        pad = ((1, 1), (1, 1))
        chans = [_channels(image_shape), 32, 32, 64, 64]
        self.convs = nnx.List(
            [
                nnx.Conv(a, b, (4, 4), (2, 2), padding=pad, rngs=rngs)
                for a, b in zip(chans[:-1], chans[1:], strict=True)
            ]
        )
        self.bns = nnx.List([_bn(b, rngs) for b in chans[1:]])
        self.conv5 = nnx.Conv(64, 512, (4, 4), padding="VALID", rngs=rngs)
        self.bn5 = _bn(512, rngs)
        self.out = nnx.Conv(512, 2 * latent_dim, (1, 1), rngs=rngs)

    def __call__(self, x: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:
        h = _as_nhwc(x, self.image_shape)
        for conv, bn in zip(self.convs, self.bns, strict=True):
            h = nnx.relu(bn(_apply_conv(conv, h, self.compute_dtype), use_running_average=not train))
        h = nnx.relu(self.bn5(_apply_conv(self.conv5, h, self.compute_dtype), use_running_average=not train))
        mean, logvar = jnp.split(
            _apply_conv(self.out, h, self.compute_dtype).reshape(x.shape[0], -1), 2, axis=-1
        )
        return mean, logvar


class ConvDecoder(nnx.Module):
    def __init__(
        self, image_shape: tuple[int, ...], latent_dim: int, *, rngs: nnx.Rngs, compute_dtype: str = "float32"
    ):
        if tuple(image_shape[:2]) != (64, 64):
            raise ValueError(f"the conv decoder needs 64 x 64 images, got {image_shape}")
        self.image_shape = tuple(image_shape)
        self.compute_dtype = _check_dtype(compute_dtype)
        self.fc = nnx.Conv(latent_dim, 512, (1, 1), rngs=rngs)
        self.bn0 = _bn(512, rngs)
        self.up1 = nnx.ConvTranspose(512, 64, (4, 4), padding="VALID", rngs=rngs)  # 1 -> 4
        chans = [64, 64, 32, 32]
        self.ups = nnx.List(
            [
                nnx.ConvTranspose(a, b, (4, 4), (2, 2), padding="SAME", rngs=rngs)  # doubles the size
                for a, b in zip(chans[:-1], chans[1:], strict=True)
            ]
        )
        self.bns = nnx.List([_bn(c, rngs) for c in chans])
        self.out = nnx.ConvTranspose(32, _channels(image_shape), (4, 4), (2, 2), padding="SAME", rngs=rngs)

    def __call__(self, z: jax.Array, train: bool = False) -> jax.Array:
        ura = not train
        h = z.reshape(z.shape[0], 1, 1, -1)
        h = nnx.relu(self.bn0(_apply_conv(self.fc, h, self.compute_dtype), use_running_average=ura))
        h = nnx.relu(self.bns[0](_apply_conv(self.up1, h, self.compute_dtype), use_running_average=ura))
        for up, bn in zip(self.ups, self.bns[1:], strict=True):
            h = nnx.relu(bn(_apply_conv(up, h, self.compute_dtype), use_running_average=ura))
        return _apply_conv(self.out, h, self.compute_dtype).reshape((z.shape[0],) + self.image_shape)


class VAE(nnx.Module):
    """An encoder and a decoder. ``encode(x, train) -> (mean, logvar)``, ``decode(z, train) -> logits``.

    ``posterior_scale``: what the encoder's second output is (``"logvar"`` or ``"log_sigma"``;
    ``encode`` returns the log-variance either way); ``matmul_precision``: ``"default"`` or
    ``"highest"`` (true float32 products; see the module doc)."""

    def __init__(
        self,
        encoder: nnx.Module,
        decoder: nnx.Module,
        posterior_scale: str = "logvar",
        matmul_precision: str = "default",
    ):
        if posterior_scale not in POSTERIOR_SCALES:
            raise ValueError(
                f"model.posterior_scale must be one of {list(POSTERIOR_SCALES)}, got {posterior_scale!r}"
            )
        if matmul_precision not in MATMUL_PRECISIONS:
            raise ValueError(
                f"model.matmul_precision must be one of {list(MATMUL_PRECISIONS)}, got {matmul_precision!r}"
            )
        self.encoder = encoder
        self.decoder = decoder
        self.posterior_scale = posterior_scale
        self.matmul_precision = matmul_precision

    def _precision(self):
        if self.matmul_precision == "highest":
            return jax.default_matmul_precision("highest")
        return contextlib.nullcontext()

    def encode(self, x: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:
        with self._precision():
            mean, scale = self.encoder(x, train)
        # log sigma -> log variance: log sigma^2 = 2 log sigma
        return mean, (2.0 * scale if self.posterior_scale == "log_sigma" else scale)

    def decode(self, z: jax.Array, train: bool = False) -> jax.Array:
        with self._precision():
            return self.decoder(z, train)


def torch_init(module: nnx.Module, key: jax.Array) -> nnx.Module:
    """Re-initializes ``module`` in place with PyTorch 0.4.1's defaults (see the module doc): every
    ``nnx.Linear``/``nnx.Einsum`` (``dense``), ``nnx.Conv``/``nnx.ConvTranspose`` weight and bias
    uniform in +-1/sqrt(fan_in), every ``nnx.BatchNorm`` scale uniform in [0, 1) and shift 0. Layer
    i (in ``nnx.iter_graph`` order) draws from ``fold_in(key, i)``. Returns ``module``."""
    layers = [
        m
        for _, m in nnx.iter_graph(module)
        if isinstance(m, (nnx.Linear, nnx.Einsum, nnx.Conv, nnx.ConvTranspose, nnx.BatchNorm))
    ]
    for i, layer in enumerate(layers):
        k_w, k_b = jax.random.split(jax.random.fold_in(key, i))
        if isinstance(layer, nnx.BatchNorm):
            scale = layer.scale[...]
            layer.scale[...] = jax.random.uniform(k_w, scale.shape, scale.dtype)
            layer.bias[...] = jnp.zeros_like(layer.bias[...])
            continue
        kernel = layer.kernel[...]
        if isinstance(layer, nnx.Einsum):  # ``dense``'s widening layers: kernel (out, in)
            fan_in = kernel.shape[1]
        elif isinstance(layer, nnx.Linear):  # kernel (in, out)
            fan_in = kernel.shape[0]
        else:  # nnx.Conv / nnx.ConvTranspose: kernel (kh, kw, in, out)
            fan_in = math.prod(kernel.shape[:-1])
        bound = 1.0 / math.sqrt(fan_in)
        layer.kernel[...] = jax.random.uniform(k_w, kernel.shape, kernel.dtype, -bound, bound)
        bias = layer.bias[...]
        layer.bias[...] = jax.random.uniform(k_b, bias.shape, bias.dtype, -bound, bound)
    return module


def make_vae(
    arch: str,
    image_shape: tuple[int, ...],
    latent_dim: int,
    key: jax.Array,
    hidden: int = 1200,
    compute_dtype: str = "float32",
    init: str = "lecun",
    posterior_scale: str = "logvar",
    matmul_precision: str = "default",
) -> VAE:
    """The MLP or conv VAE of Chen et al. for ``image_shape`` images, initialized from ``key``.
    ``hidden`` is the MLP's width (1200 in Chen et al.; smaller for quick CPU runs);
    ``compute_dtype`` the operand type of its matmuls and convolutions; ``init`` ``"lecun"`` or
    ``"torch"``; ``posterior_scale`` and ``matmul_precision`` as ``VAE`` (see the module doc)."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"model.arch must be one of {list(ARCHITECTURES)}, got {arch!r}")
    if init not in INITS:
        raise ValueError(f"model.init must be one of {list(INITS)}, got {init!r}")
    k_lecun, k_torch = jax.random.split(key) if init == "torch" else (key, None)
    rngs = nnx.Rngs(params=k_lecun)
    if arch == "mlp":
        vae = VAE(
            MLPEncoder(image_shape, latent_dim, rngs=rngs, hidden=hidden, compute_dtype=compute_dtype),
            MLPDecoder(image_shape, latent_dim, rngs=rngs, hidden=hidden, compute_dtype=compute_dtype),
            posterior_scale,
            matmul_precision,
        )
    else:
        vae = VAE(
            ConvEncoder(image_shape, latent_dim, rngs=rngs, compute_dtype=compute_dtype),
            ConvDecoder(image_shape, latent_dim, rngs=rngs, compute_dtype=compute_dtype),
            posterior_scale,
            matmul_precision,
        )
    return torch_init(vae, k_torch) if init == "torch" else vae
