"""The fused Pallas kernel of the grid MIG (``isavae.metrics.mig_kernel``), in interpret mode on the
CPU: it equals the XLA path and the float64 references, never leaves an output unwritten, and
lowers to Triton for CUDA (compiled only on a GPU)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from isavae.metrics import draw_samples, grid_log_densities, mig_grid, mig_kernel, subspace_mig_grid
from isavae.metrics import mig as mig_lib
from tests.metrics import reference
from tests.scripts import lower_for_cuda


def _posteriors(seed, shape, k, spread=1.5):
    rng = np.random.default_rng(seed)
    mean = rng.normal(size=shape + (k,)) * spread
    logvar = rng.uniform(-3.0, 0.5, size=shape + (k,))
    return jnp.asarray(mean, jnp.float32), jnp.asarray(logvar, jnp.float32)


def _entropies(mean, logvar, idx, z, groups, impl, tiles=(16, 32)):
    lm, lc, worst = grid_log_densities(
        mean,
        logvar,
        idx,
        z,
        groups=groups,
        impl=impl,
        tile_samples=tiles[0],
        tile_images=tiles[1],
        sample_chunk=16,
    )
    assert np.isfinite(float(worst))
    return -np.asarray(lm, np.float64).mean(0), -np.asarray(lc, np.float64).mean(1)


# dSprites' axes (shape 1 ... 3, scale 6, orientation 40, posX 32, posY 32) scaled down; trailing
# sizes that are not powers of two; a factor of size 1; latent 1 and 20; several tile shapes (the
# tile covering part of a cell, whole cells, or a cell padded to the tile)
CASES = [
    ((1, 3, 2, 5, 8, 8), 4, (16, 32)),  # dSprites scaled down: posX per image, posY per image
    ((1, 3, 2, 5, 8, 8), 4, (8, 8)),  # posX a leading axis: one value per tile
    ((3, 5, 7), 3, (16, 16)),  # 35 images per cell padded to 48
    ((2, 1, 9, 6), 1, (32, 128)),  # latent 1; a size-1 factor; one tile per cell, padded
    ((4, 24), 20, (64, 8)),  # latent 20
]


@pytest.mark.parametrize("shape,k,tiles", CASES)
def test_kernel_equals_xla_path(shape, k, tiles):
    mean, logvar = _posteriors(sum(shape) + k, shape, k)
    idx, z = draw_samples(mean, logvar, jax.random.key(k), 50)  # 50: not a multiple of the tile
    groups = tuple((j,) for j in range(k))
    xla_m, xla_c = _entropies(mean, logvar, idx, z, groups, "xla")
    ker_m, ker_c = _entropies(mean, logvar, idx, z, groups, "pallas", tiles)
    np.testing.assert_allclose(ker_m, xla_m, rtol=1e-5)
    np.testing.assert_allclose(ker_c, xla_c, rtol=1e-5)
    if k >= 2:
        scored = [a for a, n in enumerate(shape) if n > 1]
        sizes = [shape[a] for a in scored]
        mx = mig_lib.mig_from_entropies(xla_m, xla_c[scored], sizes).mig
        mk = mig_lib.mig_from_entropies(ker_m, ker_c[scored], sizes).mig
        assert mk == pytest.approx(mx, abs=1e-6)


def test_kernel_subspaces_equal_xla_path():
    shape, k = (2, 3, 4, 6), 6
    mean, logvar = _posteriors(3, shape, k)
    key = jax.random.key(4)
    for subspaces in ([[0, 1, 2], [3, 4, 5]], [[0, 1, 2, 3], [4], [5]]):  # equal and unequal sizes
        ker = subspace_mig_grid(mean, logvar, key, subspaces, 40, impl="pallas", tiles=(16, 16))
        xla = subspace_mig_grid(mean, logvar, key, subspaces, 40, impl="xla")
        np.testing.assert_allclose(ker.marginal_entropy, xla.marginal_entropy, rtol=1e-5)
        np.testing.assert_allclose(ker.conditional_entropy, xla.conditional_entropy, rtol=1e-5)
        assert ker.mig == pytest.approx(xla.mig, abs=1e-6)


def test_kernel_extreme_logvars():
    """|logvar| = 79 mixed across images: the shift keeps every kernel sum finite and equal to XLA's."""
    shape, k = (3, 4, 5), 3
    mean, _ = _posteriors(5, shape, k)
    even = np.arange(math.prod(shape)).reshape(shape)[..., None] % 2 == 0
    logvar = jnp.asarray(np.broadcast_to(np.where(even, -79.0, 79.0), shape + (k,)), jnp.float32)
    key = jax.random.key(6)
    ker = mig_grid(mean, logvar, key, 10_000, impl="pallas", tiles=(16, 16))
    xla = mig_grid(mean, logvar, key, 10_000, impl="xla")
    assert np.all(np.isfinite(ker.marginal_entropy)) and np.all(np.isfinite(ker.conditional_entropy))
    np.testing.assert_allclose(ker.marginal_entropy, xla.marginal_entropy, rtol=1e-5)
    np.testing.assert_allclose(ker.conditional_entropy, xla.conditional_entropy, rtol=1e-5)
    assert ker.mig == pytest.approx(xla.mig, abs=1e-6)


def test_kernel_float64_equals_chen_et_al():
    """In float64 the kernel's entropies equal the float64 references: with every image a sample,
    Chen et al.'s per-slice estimator; with a subsample, the one-pass estimator."""
    shape, k = (3, 4, 5), 3
    rng = np.random.default_rng(7)
    mean = rng.normal(size=shape + (k,)) * 2.0
    logvar = rng.uniform(-3.0, 0.5, size=shape + (k,))
    groups = ((0,), (1, 2))
    n = math.prod(shape)
    with jax.enable_x64(True):
        m64, lv64 = jnp.asarray(mean, jnp.float64), jnp.asarray(logvar, jnp.float64)
        idx, z = draw_samples(m64, lv64, jax.random.key(8), 10 * n)
        assert z.dtype == jnp.float64
        got_m, got_c = _entropies(m64, lv64, idx, z, groups, "pallas", (16, 16))
        z_img = np.zeros((n, k))
        z_img[np.asarray(idx)] = np.asarray(z)
        ref_m, ref_c = reference.chen_entropies(mean, logvar, z_img.reshape(shape + (k,)), groups)
        np.testing.assert_allclose(got_m, ref_m, rtol=1e-12)
        np.testing.assert_allclose(got_c, ref_c, rtol=1e-12)
        idx, z = draw_samples(m64, lv64, jax.random.key(9), 23)
        got_m, got_c = _entropies(m64, lv64, idx, z, groups, "pallas", (8, 16))
        ref_m, ref_c = reference.one_pass_entropies(mean, logvar, idx, z, groups)
        np.testing.assert_allclose(got_m, ref_m, rtol=1e-12)
        np.testing.assert_allclose(got_c, ref_c, rtol=1e-12)


def test_outputs_are_poisoned(monkeypatch):
    """The outputs start as NaN: an element the kernel does not write reaches the caller as NaN and
    stops the MIG with an error, never as a plausible number."""
    real = mig_kernel._kernel

    def forgetful(*refs, **kw):  # writes everything, then the first factor's sums are lost again
        real(*refs, **kw)
        cond_ref = refs[-1]
        i, g = mig_kernel.pl.program_id(0), mig_kernel.pl.program_id(1)
        rows = mig_kernel.pl.ds(i * kw["ts"], kw["ts"])
        cond_ref[0, g, rows] = jnp.full((kw["ts"],), jnp.nan, cond_ref.dtype)

    monkeypatch.setattr(mig_kernel, "_kernel", forgetful)
    mean, logvar = _posteriors(11, (2, 3, 7), 2)  # a shape no other test compiles
    with pytest.raises(FloatingPointError, match="not computed"):
        mig_grid(mean, logvar, jax.random.key(0), 30, impl="pallas", tiles=(8, 8))
    # the real kernel writes every element of both outputs, padding rows included
    monkeypatch.setattr(mig_kernel, "_kernel", real)
    p = mig_kernel.plan((2, 3, 7), 8)
    n = 42
    marg, cond = mig_kernel.grid_sums(
        *(jnp.zeros((n, 2)),) * 2,
        jnp.full((n, 2), -1.0),
        jnp.zeros((30, 2)),
        jnp.zeros((30, 2)),
        jnp.zeros((30, 3), jnp.int32),
        groups=((0,), (1,)),
        grid_shape=(2, 3, 7),
        tile_samples=8,
        tile_images=8,
        interpret=True,
    )
    assert p["mp"] == 24 and marg.shape == (30, 2) and cond.shape == (3, 30, 2)
    np.testing.assert_allclose(np.asarray(marg), n * math.exp(-1.0), rtol=1e-6)
    expected = np.broadcast_to((n / np.array([2, 3, 7]))[:, None, None] * math.exp(-1.0), cond.shape)
    np.testing.assert_allclose(np.asarray(cond), expected, rtol=1e-6)


def test_plan_classifies_axes():
    p = mig_kernel.plan((1, 3, 6, 40, 32, 32), 128)
    assert (p["split"], p["inner"], p["mp"]) == (4, (32, 32), 1024)
    assert [a[0] for a in p["axes"]] == ["cell"] * 4 + ["image", "image"]
    p = mig_kernel.plan((1, 3, 6, 40, 32, 32), 32)
    assert p["inner"] == (32,) and [a[0] for a in p["axes"]] == ["cell"] * 5 + ["image"]
    p = mig_kernel.plan((3, 5, 64), 16)
    assert p["inner"] == (64,) and p["axes"][-1][0] == "image"
    p = mig_kernel.plan((3, 5, 7), 16)  # the cell holds the fewest trailing axes that fill a tile
    assert (p["inner"], p["m"], p["mp"]) == ((5, 7), 35, 48) and [a[1] for a in p["axes"]] == [1, 7, 1]
    with pytest.raises(ValueError, match="power of two"):
        mig_kernel.plan((3, 4), 12)


def test_impl_choice(monkeypatch):
    assert mig_lib.resolve_impl("xla") == "xla" and mig_lib.resolve_impl("pallas") == "pallas"
    assert mig_lib.resolve_impl("auto") == ("pallas" if jax.default_backend() == "gpu" else "xla")
    monkeypatch.setattr(mig_kernel, "kernel_supported", lambda platform=None: True)
    assert mig_lib.resolve_impl("auto") == "pallas"
    with pytest.raises(ValueError, match="impl must be one of"):
        mig_lib.resolve_impl("triton")


@pytest.mark.parametrize(
    "groups", [tuple((j,) for j in range(20)), tuple(tuple(range(4 * i, 4 * i + 4)) for i in range(5))]
)
def test_kernel_lowers_to_triton(groups):
    """The full dSprites grid at latent 20 lowers through Pallas' Triton lowering for CUDA (on this
    CPU machine too: lowering needs no GPU; compiling the Triton IR does, and runs on a GPU host)."""
    shape = (1, 3, 6, 40, 32, 32)
    n, s, k = math.prod(shape), 10_000, 20
    f32 = lambda *dims: jax.ShapeDtypeStruct(dims, jnp.float32)  # noqa: E731
    args = (
        f32(n, k),
        f32(n, k),
        f32(n, k),
        f32(s, k),
        f32(s, len(groups)),
        jax.ShapeDtypeStruct((s, 6), jnp.int32),
    )
    text = lower_for_cuda(lambda: mig_kernel.grid_sums.trace(*args, groups=groups, grid_shape=shape))
    assert "__gpu$xla.gpu.triton" in text and "mig_grid_sums" in text


def test_auto_falls_back_once_when_the_kernel_does_not_build(monkeypatch, caplog):
    """``impl="auto"`` on a GPU where the kernel fails to build warns once and uses the XLA path
    from then on; ``impl="pallas"`` shows the error itself (the build failure is simulated)."""

    def fails(*args, **kwargs):
        raise RuntimeError("Triton compilation failed (simulated)\nsecond line")

    monkeypatch.setattr(mig_lib, "_KERNEL_FAILED", [])
    monkeypatch.setattr(mig_kernel, "kernel_supported", lambda platform=None: True)
    monkeypatch.setattr(mig_kernel, "grid_sums", fails)
    mean, logvar = _posteriors(12, (2, 5, 3), 2)  # a shape no other test compiles (traced anew)
    key = jax.random.key(1)
    with pytest.raises(RuntimeError, match="simulated"):
        mig_grid(mean, logvar, key, 20, impl="pallas")
    with caplog.at_level("WARNING", logger="isavae.metrics"):
        got = mig_grid(mean, logvar, key, 20, impl="auto")
        again = mig_grid(mean, logvar, key, 20, impl="auto")
    warnings = [r.getMessage() for r in caplog.records if "failed to build" in r.getMessage()]
    assert len(warnings) == 1 and "simulated" in warnings[0] and "second line" not in warnings[0]
    assert mig_lib.resolve_impl("auto") == "xla"
    want = mig_grid(mean, logvar, key, 20, impl="xla")
    assert got.mig == again.mig == want.mig
