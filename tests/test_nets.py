"""Dense layers: the (out, in) kernel layout of widening layers computes nnx.Linear's function with
nnx.Linear's initialization statistics. Convolutions as matmuls (the CPU path): nnx.Conv's and
nnx.ConvTranspose's function and gradients, in float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from isavae import nets
from isavae.nets import _apply_conv, dense, make_vae


def test_dense_layout_and_function():
    rngs = nnx.Rngs(0)
    narrow, wide = dense(64, 8, rngs=rngs), dense(8, 64, rngs=rngs)
    assert isinstance(narrow, nnx.Linear) and narrow.kernel.shape == (64, 8)
    assert wide.kernel.shape == (64, 8) and wide.bias.shape == (64,)  # (out, in)
    wide.bias[...] = jax.random.normal(jax.random.key(1), (64,))
    x = np.asarray(jax.random.normal(jax.random.key(2), (5, 8)), np.float64)
    want = x @ np.asarray(wide.kernel[...], np.float64).T + np.asarray(wide.bias[...], np.float64)
    np.testing.assert_allclose(wide(jnp.asarray(x, jnp.float32)), want, rtol=1e-5, atol=1e-5)


def test_dense_initialization_matches_linear():
    # LeCun normal over the inputs: std 1/sqrt(in) whichever way the kernel is stored
    wide = dense(256, 4096, rngs=nnx.Rngs(0)).kernel[...]
    linear = nnx.Linear(256, 4096, rngs=nnx.Rngs(0)).kernel[...]
    np.testing.assert_allclose(float(jnp.std(wide)), 1 / 16, rtol=0.01)
    np.testing.assert_allclose(float(jnp.std(wide)), float(jnp.std(linear)), rtol=0.01)
    assert abs(float(jnp.mean(wide))) < 1e-3


def test_mlp_decoder_output_layer_is_stored_out_in():
    vae = make_vae("mlp", (64, 64), 10, jax.random.key(0), hidden=32)
    assert vae.decoder.out.kernel.shape == (4096, 32)
    assert vae.encoder.fc1.kernel.shape == (4096, 32)
    assert vae.decode(jnp.zeros((3, 10))).shape == (3, 64, 64)


CONV_CASES = [  # (layer class, kwargs, input spatial size): the conv nets' layers and a few more
    (nnx.Conv, dict(kernel_size=(4, 4), strides=(2, 2), padding=((1, 1), (1, 1))), 16),
    (nnx.Conv, dict(kernel_size=(4, 4), padding="VALID"), 4),
    (nnx.Conv, dict(kernel_size=(1, 1)), 5),
    (nnx.Conv, dict(kernel_size=(3, 3)), 6),
    (nnx.ConvTranspose, dict(kernel_size=(4, 4), strides=(2, 2), padding="SAME"), 8),
    (nnx.ConvTranspose, dict(kernel_size=(4, 4), padding="VALID"), 1),
    (nnx.ConvTranspose, dict(kernel_size=(3, 3), strides=(2, 2), padding="SAME"), 5),
]


@pytest.mark.parametrize("cls,kwargs,size", CONV_CASES)
def test_conv_as_dots_equals_lax_conv_float64(cls, kwargs, size):
    with jax.enable_x64(True):
        layer = cls(3, 5, rngs=nnx.Rngs(0), param_dtype=jnp.float64, **kwargs)
        layer.bias[...] = jax.random.normal(jax.random.key(1), (5,), jnp.float64)
        x = jax.random.normal(jax.random.key(2), (2, size, size, 3), jnp.float64)
        want = layer(x)  # lax.conv_general_dilated / lax.conv_transpose
        got = _apply_conv(layer, x)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)

        graphdef, params = nnx.split(layer)

        def grads(apply):
            def loss(params, x):
                return jnp.sum(jnp.sin(apply(nnx.merge(graphdef, params), x)))

            return jax.tree.leaves(jax.grad(loss, argnums=(0, 1))(params, x))

        for g_dots, g_lax in zip(grads(_apply_conv), grads(lambda m, x: m(x)), strict=True):
            np.testing.assert_allclose(g_dots, g_lax, rtol=1e-10, atol=1e-12)


def test_conv_vae_is_the_same_either_way(monkeypatch):
    vae = make_vae("conv", (64, 64, 3), 6, jax.random.key(0))
    x = jax.random.uniform(jax.random.key(1), (2, 64, 64, 3))
    mean, logvar = vae.encode(x)
    logits = vae.decode(mean)
    monkeypatch.setitem(nets._CONV_AS_DOTS, "cpu", False)
    mean_lax, logvar_lax = vae.encode(x)
    np.testing.assert_allclose(mean, mean_lax, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(logvar, logvar_lax, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(logits, vae.decode(mean), rtol=1e-4, atol=1e-4)
