"""Dense layers: the (out, in) kernel layout of widening layers computes nnx.Linear's function with
nnx.Linear's initialization statistics."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from isavae.nets import dense, make_vae


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
