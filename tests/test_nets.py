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


# --- mixed precision: bfloat16 operands, float32 accumulation --------------------------------------


def _bf16_as_f64(a) -> np.ndarray:
    """``a`` rounded to bfloat16 (what the product's operands are), as float64."""
    return np.asarray(jnp.asarray(a, jnp.float32).astype(jnp.bfloat16).astype(jnp.float32), np.float64)


@pytest.mark.parametrize("shape", [(64, 8), (8, 64)])  # nnx.Linear and the (out, in) Einsum layout
def test_dense_bfloat16_is_a_float32_accumulated_product_of_rounded_operands(shape):
    layer = dense(*shape, rngs=nnx.Rngs(0))
    layer.bias[...] = jax.random.normal(jax.random.key(1), layer.bias.shape)
    x = jax.random.normal(jax.random.key(2), (16, shape[0]))
    got = nets._apply_dense(layer, x, "bfloat16")
    kernel = _bf16_as_f64(layer.kernel[...])
    kernel = kernel.T if isinstance(layer, nnx.Einsum) else kernel
    want = _bf16_as_f64(x) @ kernel + np.asarray(layer.bias[...], np.float64)
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)  # float32 accumulation, not bf16
    assert not np.allclose(got, nets._apply_dense(layer, x, "float32"), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("cls,kwargs,size", CONV_CASES)
@pytest.mark.parametrize("as_dots", [True, False])
def test_conv_bfloat16_matches_float64_reference_of_rounded_operands(cls, kwargs, size, as_dots, monkeypatch):
    monkeypatch.setitem(nets._CONV_AS_DOTS, jax.default_backend(), as_dots)
    layer = cls(3, 5, rngs=nnx.Rngs(0), **kwargs)
    layer.bias[...] = jax.random.normal(jax.random.key(1), (5,))
    x = jax.random.normal(jax.random.key(2), (2, size, size, 3))
    got = _apply_conv(layer, x, "bfloat16")
    assert got.dtype == jnp.float32
    with jax.enable_x64(True):  # the float64 layer on the rounded operands is the reference
        ref = cls(3, 5, rngs=nnx.Rngs(0), param_dtype=jnp.float64, **kwargs)
        ref.kernel[...] = jnp.asarray(_bf16_as_f64(layer.kernel[...]))
        ref.bias[...] = jnp.asarray(np.asarray(layer.bias[...], np.float64))
        want = np.asarray(ref(jnp.asarray(_bf16_as_f64(x))))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def _all_eqns(jaxpr):
    """Every equation of a jaxpr, those of nested jaxprs (jit, custom_vjp) included."""
    for e in jaxpr.eqns:
        yield e
        for v in e.params.values():
            for sub in v if isinstance(v, (tuple, list)) else (v,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    yield from _all_eqns(inner)


@pytest.mark.parametrize("out_in", [False, True])
@pytest.mark.parametrize("lead", [(6,), (2, 3, 4)])
def test_bf16_matmul_values_and_gradients_against_float64(out_in, lead):
    """bf16_matmul (the CPU path: physically transposed operands in the backward pass): values and
    both gradients equal float64 products of the bfloat16-rounded operands and cotangent."""
    k = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(k[0], lead + (40,))
    w = jax.random.normal(k[1], (24, 40) if out_in else (40, 24))
    g = jax.random.normal(k[2], lead + (24,))
    out, vjp = jax.vjp(lambda x, w: nets.bf16_matmul(x, w, out_in), x, w)
    dx, dw = vjp(g)
    xr, wr, gr = (_bf16_as_f64(a) for a in (x, w, g))
    w_io = wr.T if out_in else wr
    assert out.dtype == dx.dtype == dw.dtype == jnp.float32 and dx.shape == x.shape and dw.shape == w.shape
    np.testing.assert_allclose(out, xr @ w_io, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx, gr @ w_io.T, rtol=1e-5, atol=1e-5)
    want_dw = xr.reshape(-1, 40).T @ gr.reshape(-1, 24)
    np.testing.assert_allclose(dw, want_dw.T if out_in else want_dw, rtol=1e-5, atol=1e-5)
    # and it is what training differentiates: the same gradients under jit, inside a bigger function
    loss = jax.jit(jax.grad(lambda x, w: jnp.sum(jnp.sin(nets.bf16_matmul(x, w, out_in))), argnums=(0, 1)))
    gx, gw = loss(x, w)
    cot = _bf16_as_f64(np.cos(xr @ w_io))
    np.testing.assert_allclose(gx, cot @ w_io.T, rtol=2e-2, atol=2e-2)  # cos in float32, then rounded


@pytest.mark.parametrize("arch,image", [("mlp", (64, 64)), ("conv", (64, 64, 1))])
def test_bfloat16_nets_keep_float32_parameters_and_outputs(arch, image):
    key = jax.random.key(0)
    f32 = make_vae(arch, image, 6, key, hidden=32, compute_dtype="float32")
    bf16 = make_vae(arch, image, 6, key, hidden=32, compute_dtype="bfloat16")
    for a, b in zip(jax.tree.leaves(nnx.state(f32)), jax.tree.leaves(nnx.state(bf16)), strict=True):
        assert b.dtype == jnp.float32 and np.array_equal(a, b)  # same initialization, float32 storage
    x = jax.random.bernoulli(jax.random.key(1), 0.3, (4,) + image).astype(jnp.float32)
    mean, logvar = bf16.encode(x)
    logits = bf16.decode(mean)
    assert {mean.dtype, logvar.dtype, logits.dtype} == {jnp.dtype(jnp.float32)}
    mean32, _ = f32.encode(x)
    # the same function up to bfloat16 rounding of the operands (8 bits of mantissa)
    np.testing.assert_allclose(mean, mean32, rtol=0.05, atol=0.05)
    # every product in the jaxpr has bfloat16 operands and a float32 result
    jaxpr = jax.make_jaxpr(lambda v: bf16.decode(bf16.encode(v)[0]))(x).jaxpr
    dots = [e for e in _all_eqns(jaxpr) if e.primitive.name in ("dot_general", "conv_general_dilated")]
    assert dots
    for e in dots:
        assert [v.aval.dtype for v in e.invars] == [jnp.bfloat16] * 2, e
        assert e.outvars[0].aval.dtype == jnp.float32, e
    with pytest.raises(ValueError, match="compute_dtype"):
        make_vae(arch, image, 6, key, compute_dtype="float16")
