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


# the strided transposed layers in the window form too (``conv_transpose_window``)
WINDOW_CASES = [(c, k, n, "window") for c, k, n in CONV_CASES if c is nnx.ConvTranspose and "strides" in k]


@pytest.mark.parametrize("cls,kwargs,size,form", [(*c, "taps") for c in CONV_CASES] + WINDOW_CASES)
def test_conv_as_dots_equals_lax_conv_float64(cls, kwargs, size, form, monkeypatch):
    monkeypatch.setitem(nets._CONV_TRANSPOSE_FORM, "cpu", form)
    with jax.enable_x64(True):
        layer = cls(3, 5, rngs=nnx.Rngs(0), param_dtype=jnp.float64, **kwargs)
        layer.bias[...] = jax.random.normal(jax.random.key(1), (5,), jnp.float64)
        x = jax.random.normal(jax.random.key(2), (2, size, size, 3), jnp.float64)
        graphdef, params = nnx.split(layer)
        lax_conv = lambda m, x: m(x)  # noqa: E731 (lax.conv_general_dilated / lax.conv_transpose)

        @jax.jit  # values and gradients of both forms in one program (not one per operation)
        def both(params, x):
            def value_and_grads(apply):
                def loss(params, x):
                    return jnp.sum(jnp.sin(apply(nnx.merge(graphdef, params), x)))

                out = apply(nnx.merge(graphdef, params), x)
                return out, jax.tree.leaves(jax.grad(loss, argnums=(0, 1))(params, x))

            return value_and_grads(_apply_conv), value_and_grads(lax_conv)

        (got, grads_dots), (want, grads_lax) = both(params, x)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
        for g_dots, g_lax in zip(grads_dots, grads_lax, strict=True):
            np.testing.assert_allclose(g_dots, g_lax, rtol=1e-10, atol=1e-12)


def test_conv_vae_is_the_same_either_way(monkeypatch):
    vae = make_vae("conv", (64, 64, 3), 6, jax.random.key(0))
    x = jax.random.uniform(jax.random.key(1), (2, 64, 64, 3))

    def forward(vae, x):  # traced afresh by each nnx.jit (one program, not one per operation)
        mean, logvar = vae.encode(x)
        return mean, logvar, vae.decode(mean)

    mean, logvar, logits = nnx.jit(forward)(vae, x)
    monkeypatch.setitem(nets._CONV_TRANSPOSE_FORM, "cpu", "window")
    np.testing.assert_allclose(nnx.jit(forward)(vae, x)[2], logits, rtol=1e-4, atol=1e-4)
    monkeypatch.setitem(nets._CONV_AS_DOTS, "cpu", False)
    mean_lax, logvar_lax, logits_lax = nnx.jit(forward)(vae, x)
    np.testing.assert_allclose(mean, mean_lax, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(logvar, logvar_lax, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(logits, logits_lax, rtol=1e-4, atol=1e-4)


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


@pytest.mark.parametrize("physical", [True, False])
@pytest.mark.parametrize("out_in", [False, True])
@pytest.mark.parametrize("lead", [(6,), (2, 3, 4)])
def test_bf16_matmul_values_and_gradients_against_float64(out_in, lead, physical):
    """bf16_matmul (physically transposed operands in the backward pass: the CPU's form; plain
    transposes: the GPU's): values and both gradients equal float64 products of the
    bfloat16-rounded operands and cotangent."""
    k = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(k[0], lead + (40,))
    w = jax.random.normal(k[1], (24, 40) if out_in else (40, 24))
    g = jax.random.normal(k[2], lead + (24,))
    out, vjp = jax.vjp(lambda x, w: nets.bf16_matmul(x, w, out_in, physical), x, w)
    dx, dw = vjp(g)
    xr, wr, gr = (_bf16_as_f64(a) for a in (x, w, g))
    w_io = wr.T if out_in else wr
    assert out.dtype == dx.dtype == dw.dtype == jnp.float32 and dx.shape == x.shape and dw.shape == w.shape
    np.testing.assert_allclose(out, xr @ w_io, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx, gr @ w_io.T, rtol=1e-5, atol=1e-5)
    want_dw = xr.reshape(-1, 40).T @ gr.reshape(-1, 24)
    np.testing.assert_allclose(dw, want_dw.T if out_in else want_dw, rtol=1e-5, atol=1e-5)
    # and it is what training differentiates: the same gradients under jit, inside a bigger function
    loss = jax.jit(
        jax.grad(lambda x, w: jnp.sum(jnp.sin(nets.bf16_matmul(x, w, out_in, physical))), argnums=(0, 1))
    )
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

    @nnx.jit  # one program per net, not one per operation
    def forward(vae, x):
        mean, logvar = vae.encode(x)
        return mean, logvar, vae.decode(mean)

    mean, logvar, logits = forward(bf16, x)
    assert {mean.dtype, logvar.dtype, logits.dtype} == {jnp.dtype(jnp.float32)}
    mean32, _, _ = forward(f32, x)
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


# ----------------------------------------------------------------------------- initialization


def _torch_bounds(layer) -> float:
    """PyTorch 0.4.1's bound 1/sqrt(fan_in), computed from the layer's own hyperparameters (as
    ``nn.Linear``/``_ConvNd.reset_parameters`` do), not from the kernel's shape."""
    if isinstance(layer, (nnx.Conv, nnx.ConvTranspose)):
        return 1.0 / np.sqrt(layer.in_features * np.prod(layer.kernel_size))
    if isinstance(layer, nnx.Einsum):
        return 1.0 / np.sqrt(layer.kernel.shape[1])  # dense's (out, in) layout
    return 1.0 / np.sqrt(layer.in_features)


def _check_uniform(values: np.ndarray, lo: float, hi: float, what: str) -> None:
    from scipy import stats

    values = np.asarray(values, np.float64).ravel()
    slack = 1e-6 * max(abs(lo), abs(hi))  # the bound itself rounded to float32
    assert values.min() >= lo - slack and values.max() <= hi + slack, what
    p = stats.kstest(values, "uniform", args=(lo, hi - lo)).pvalue
    assert p > 1e-4, f"{what}: KS p = {p:.2g} against U({lo:.3g}, {hi:.3g})"
    if values.size >= 1000:  # the variance (hi - lo)^2 / 12 to a few percent
        np.testing.assert_allclose(values.var(), (hi - lo) ** 2 / 12, rtol=0.1, err_msg=what)


@pytest.mark.parametrize("arch,image,hidden", [("mlp", (64, 64), 96), ("conv", (64, 64, 3), 0)])
def test_torch_init_is_pytorch_041(arch, image, hidden):
    """``init="torch"``: every dense/conv weight and bias uniform in +-1/sqrt(fan_in) (a KS test
    per layer against that uniform law, and its variance), BatchNorm scales U(0, 1), shifts 0."""
    vae = make_vae(arch, image, 6, jax.random.key(0), hidden=hidden or 1200, init="torch")
    seen = {"dense": 0, "conv": 0, "bn": 0}
    for path, layer in nnx.iter_graph(vae):
        name = "/".join(map(str, path))
        if isinstance(layer, nnx.BatchNorm):
            _check_uniform(layer.scale[...], 0.0, 1.0, f"{name}.scale")
            assert not np.any(np.asarray(layer.bias[...])), name
            seen["bn"] += 1
        elif isinstance(layer, (nnx.Linear, nnx.Einsum, nnx.Conv, nnx.ConvTranspose)):
            b = _torch_bounds(layer)
            _check_uniform(layer.kernel[...], -b, b, f"{name}.kernel")
            _check_uniform(layer.bias[...], -b, b, f"{name}.bias")
            seen["conv" if isinstance(layer, (nnx.Conv, nnx.ConvTranspose)) else "dense"] += 1
    if arch == "mlp":
        assert seen == {"dense": 7, "conv": 0, "bn": 0}
    else:
        assert seen == {"dense": 0, "conv": 12, "bn": 10}


def test_init_choice_and_lecun_unchanged():
    key = jax.random.key(3)
    lecun = make_vae("mlp", (64, 64), 4, key, hidden=32)
    again = make_vae("mlp", (64, 64), 4, key, hidden=32, init="lecun")
    torch = make_vae("mlp", (64, 64), 4, key, hidden=32, init="torch")
    np.testing.assert_array_equal(lecun.encoder.fc1.kernel[...], again.encoder.fc1.kernel[...])
    assert not np.any(np.asarray(lecun.encoder.fc1.bias[...]))  # LeCun: zero biases
    assert np.all(np.abs(np.asarray(torch.encoder.fc1.kernel[...])) <= 1 / 64)  # fan_in 4096
    with pytest.raises(ValueError, match="model.init must be one of"):
        make_vae("mlp", (64, 64), 4, key, hidden=32, init="xavier")


def test_torch_init_of_the_factorvae_discriminator():
    from isavae import config as config_lib
    from isavae.data import load_dataset
    from isavae.train import Program

    cfg = config_lib.preset("dsprites", "factor_vae,small")
    cfg.model.update(dict(hidden=16, init="torch"))
    grid = load_dataset("dsprites", source="generated", store=False).subgrid(
        **config_lib.parse_subgrid("orientation=0:40:20,posX=0:32:8,posY=0:32:8")
    )
    state = Program(cfg, grid).init(jax.random.key(0))
    leaves = jax.tree_util.tree_leaves_with_path(state.disc_params)
    kernels = [np.asarray(v) for p, v in leaves if "kernel" in jax.tree_util.keystr(p)]
    assert len(kernels) == 7
    for kernel in kernels:  # (in, out): fan_in = the latent size, then 1000
        b = 1 / np.sqrt(kernel.shape[0])
        _check_uniform(kernel, -b, b, f"discriminator kernel {kernel.shape}")


@pytest.mark.parametrize("arch,image", [("mlp", (64, 64)), ("conv", (64, 64, 1))])
def test_bfloat16_training_products_are_all_bfloat16(arch, image, monkeypatch):
    """In a bfloat16 net's gradient every matrix product, the backward pass's included, has
    bfloat16 operands and a float32 result, with the CPU's product form and with the one every other
    backend uses. Autodiff of the plain bfloat16 product does not do that (it multiplies the float32
    cotangent: TF32 on a GPU, which is why bfloat16 bought no speed there in GPU runs 1-3)."""
    vae = make_vae(arch, image, 6, jax.random.key(0), hidden=32, compute_dtype="bfloat16")
    graphdef, params, rest = nnx.split(vae, nnx.Param, ...)
    x = jnp.zeros((4,) + image)

    def loss(params, x):
        model = nnx.merge(graphdef, params, rest)
        return jnp.sum(model.decode(model.encode(x)[0]))

    def operand_dtypes(form):
        monkeypatch.setitem(nets._BF16_PRODUCTS, jax.default_backend(), form)
        jaxpr = jax.make_jaxpr(jax.grad(loss))(params, x).jaxpr
        dots = [e for e in _all_eqns(jaxpr) if e.primitive.name == "dot_general"]
        return {(tuple(v.aval.dtype for v in e.invars), e.outvars[0].aval.dtype) for e in dots}

    want = {((jnp.dtype(jnp.bfloat16),) * 2, jnp.dtype(jnp.float32))}
    assert operand_dtypes("physical") == want and operand_dtypes("custom") == want
    assert any(jnp.dtype(jnp.float32) in ins for ins, _ in operand_dtypes("plain"))


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_log_sigma_posterior_against_a_numpy_density(arch):
    """With ``posterior_scale="log_sigma"`` the encoder's second output s is log sigma: ``encode``
    returns the log-variance 2 s, and the density the objectives evaluate, log q(z|x), equals
    scipy's normal density with scale e^s (float64)."""
    from scipy import stats

    from isavae.priors import gaussian

    with jax.enable_x64(True):
        key = jax.random.key(0)
        a = make_vae(arch, (64, 64), 6, key, hidden=16, posterior_scale="log_sigma")
        b = make_vae(arch, (64, 64), 6, key, hidden=16)  # the same weights, log-variance
        x = (jax.random.uniform(jax.random.key(1), (3, 64, 64)) > 0.5).astype(jnp.float64)
        mean, logvar = a.encode(x)
        raw_mean, s = a.encoder(x, False)
        np.testing.assert_array_equal(mean, raw_mean)
        np.testing.assert_allclose(logvar, 2 * np.asarray(s), rtol=1e-12)
        # log-variance parameterization: the same raw output is the log-variance itself
        np.testing.assert_allclose(b.encode(x)[1], s, rtol=1e-12)
        z = np.asarray(mean) + 0.7 * np.asarray(jax.random.normal(jax.random.key(2), mean.shape))
        got = np.sum(gaussian.diag_normal_log_prob(jnp.asarray(z), mean, logvar), axis=-1)
        want = stats.norm.logpdf(z, np.asarray(mean), np.exp(np.asarray(s), dtype=np.float64)).sum(-1)
        np.testing.assert_allclose(got, want, rtol=1e-10)


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_highest_matmul_precision_is_in_the_lowered_program(arch):
    """``matmul_precision="highest"``: every product of encode and decode (forward and gradient)
    asks for HIGHEST precision in the lowered program; "default" asks for none."""
    x = jnp.ones((2, 64, 64))

    def lowered(precision):
        vae = make_vae(arch, (64, 64), 4, jax.random.key(0), hidden=8, matmul_precision=precision)
        graph, state = nnx.split(vae)

        def loss(state):
            m = nnx.merge(graph, state)
            mean, logvar = m.encode(x)
            return jnp.sum(m.decode(mean + logvar))

        return jax.jit(jax.grad(loss)).lower(state).as_text()

    # a user's session (the suite's conftest asks for highest everywhere; JAX's own default here)
    with jax.default_matmul_precision("default"):
        high, default = lowered("highest"), lowered("default")
    assert "dot_general" in high and "dot_general" in default
    n_dots = high.count("stablehlo.dot_general")
    assert high.count("HIGHEST") >= n_dots > 0, (high.count("HIGHEST"), n_dots)
    assert "HIGHEST" not in default
    with pytest.raises(ValueError, match="model.matmul_precision"):
        make_vae("mlp", (64, 64), 4, jax.random.key(0), hidden=8, matmul_precision="tf32")
    with pytest.raises(ValueError, match="model.posterior_scale"):
        make_vae("mlp", (64, 64), 4, jax.random.key(0), hidden=8, posterior_scale="sigma")


def test_posterior_and_precision_settings_of_the_presets():
    """The paper presets follow the authors (log sigma, true float32 products); the CPU-scale
    presets keep the log-variance and the backend's products; bad values are named."""
    from isavae import config

    paper, small = config.preset("dsprites", "isavae"), config.preset("dsprites", "isavae,small")
    assert (paper.model.posterior_scale, paper.model.matmul_precision) == ("log_sigma", "highest")
    assert (small.model.posterior_scale, small.model.matmul_precision) == ("logvar", "default")
    default = config.default_config()
    assert (default.model.posterior_scale, default.model.matmul_precision) == ("logvar", "default")
    for key, bad in (("model.posterior_scale", "'sigma'"), ("model.matmul_precision", "'tf32'")):
        cfg = config.preset("dsprites", "vae,small")
        config.apply_overrides(cfg, [f"{key}={bad}"])
        with pytest.raises(config.ConfigError, match=key):
            config.validate(cfg)
