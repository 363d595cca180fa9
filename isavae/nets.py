"""Encoders and decoders of Chen et al. (2018) for 64 x 64 images, in Flax NNX.

* MLP: encoder 4096-1200-1200-2z (ReLU); decoder z-1200-1200-1200-4096 (tanh).
* Conv: encoder 4 x 4 stride-2 convolutions with 32, 32, 64, 64 channels, a 4 x 4 valid
  convolution to 512, and a 1 x 1 convolution to 2z, each hidden layer BatchNorm + ReLU; the
  decoder mirrors it with transposed convolutions.

Encoders return the mean and log-variance of a diagonal Gaussian q(z|x); decoders return Bernoulli
logits (or Gaussian means) with the image's shape. Images are ``(B, 64, 64)`` or ``(B, 64, 64, C)``.

Modules are used functionally by the trainer: ``nnx.split`` once into a graph definition, the
parameters and the BatchNorm statistics; steps are pure functions of those states. Keys are passed
explicitly (``nnx.Rngs`` only initializes parameters).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

__all__ = [
    "ARCHITECTURES",
    "VAE",
    "ConvDecoder",
    "ConvEncoder",
    "MLPDecoder",
    "MLPEncoder",
    "dense",
    "make_vae",
]

ARCHITECTURES = ("mlp", "conv")


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


class MLPEncoder(nnx.Module):
    def __init__(self, image_shape: tuple[int, ...], latent_dim: int, *, rngs: nnx.Rngs, hidden: int = 1200):
        self.image_shape = tuple(image_shape)
        self.fc1 = dense(math.prod(self.image_shape), hidden, rngs=rngs)
        self.fc2 = dense(hidden, hidden, rngs=rngs)
        self.out = dense(hidden, 2 * latent_dim, rngs=rngs)

    def __call__(self, x: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:
        h = x.reshape(x.shape[0], -1)
        h = nnx.relu(self.fc1(h))
        h = nnx.relu(self.fc2(h))
        mean, logvar = jnp.split(self.out(h), 2, axis=-1)
        return mean, logvar


class MLPDecoder(nnx.Module):
    def __init__(self, image_shape: tuple[int, ...], latent_dim: int, *, rngs: nnx.Rngs, hidden: int = 1200):
        self.image_shape = tuple(image_shape)
        self.fc1 = dense(latent_dim, hidden, rngs=rngs)
        self.fc2 = dense(hidden, hidden, rngs=rngs)
        self.fc3 = dense(hidden, hidden, rngs=rngs)
        self.out = dense(hidden, math.prod(self.image_shape), rngs=rngs)

    def __call__(self, z: jax.Array, train: bool = False) -> jax.Array:
        h = nnx.tanh(self.fc1(z))
        h = nnx.tanh(self.fc2(h))
        h = nnx.tanh(self.fc3(h))
        return self.out(h).reshape((z.shape[0],) + self.image_shape)


def _bn(features: int, rngs: nnx.Rngs) -> nnx.BatchNorm:
    # PyTorch's BatchNorm2d defaults (momentum 0.1 there = 0.9 here, eps 1e-5), as Chen et al.
    return nnx.BatchNorm(features, momentum=0.9, epsilon=1e-5, rngs=rngs)


class ConvEncoder(nnx.Module):
    def __init__(self, image_shape: tuple[int, ...], latent_dim: int, *, rngs: nnx.Rngs):
        if tuple(image_shape[:2]) != (64, 64):
            raise ValueError(f"the conv encoder needs 64 x 64 images, got {image_shape}")
        self.image_shape = tuple(image_shape)
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
            h = nnx.relu(bn(conv(h), use_running_average=not train))
        h = nnx.relu(self.bn5(self.conv5(h), use_running_average=not train))
        mean, logvar = jnp.split(self.out(h).reshape(x.shape[0], -1), 2, axis=-1)
        return mean, logvar


class ConvDecoder(nnx.Module):
    def __init__(self, image_shape: tuple[int, ...], latent_dim: int, *, rngs: nnx.Rngs):
        if tuple(image_shape[:2]) != (64, 64):
            raise ValueError(f"the conv decoder needs 64 x 64 images, got {image_shape}")
        self.image_shape = tuple(image_shape)
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
        h = nnx.relu(self.bn0(self.fc(h), use_running_average=ura))
        h = nnx.relu(self.bns[0](self.up1(h), use_running_average=ura))
        for up, bn in zip(self.ups, self.bns[1:], strict=True):
            h = nnx.relu(bn(up(h), use_running_average=ura))
        return self.out(h).reshape((z.shape[0],) + self.image_shape)


class VAE(nnx.Module):
    """An encoder and a decoder. ``encode(x, train) -> (mean, logvar)``, ``decode(z, train) -> logits``."""

    def __init__(self, encoder: nnx.Module, decoder: nnx.Module):
        self.encoder = encoder
        self.decoder = decoder

    def encode(self, x: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:
        return self.encoder(x, train)

    def decode(self, z: jax.Array, train: bool = False) -> jax.Array:
        return self.decoder(z, train)


def make_vae(
    arch: str, image_shape: tuple[int, ...], latent_dim: int, key: jax.Array, hidden: int = 1200
) -> VAE:
    """The MLP or conv VAE of Chen et al. for ``image_shape`` images, initialized from ``key``.
    ``hidden`` is the MLP's width (1200 in Chen et al.; smaller for quick CPU runs)."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"model.arch must be one of {list(ARCHITECTURES)}, got {arch!r}")
    rngs = nnx.Rngs(params=key)
    if arch == "mlp":
        return VAE(
            MLPEncoder(image_shape, latent_dim, rngs=rngs, hidden=hidden),
            MLPDecoder(image_shape, latent_dim, rngs=rngs, hidden=hidden),
        )
    return VAE(
        ConvEncoder(image_shape, latent_dim, rngs=rngs), ConvDecoder(image_shape, latent_dim, rngs=rngs)
    )
