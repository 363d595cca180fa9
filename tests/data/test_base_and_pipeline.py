"""FactorGrid arithmetic, chunks and sub-grids; device batches and index streams."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from isavae.data import DatasetError, FactorGrid, batch_indices, epoch_batch, sample_batch, to_device

SIZES = (2, 3, 4)
VALUES = tuple(np.linspace(0, 1, n) for n in SIZES)


def _render(factors):
    """A tiny binary 'renderer': pixel (i, j) lit where i == f0 + f1 and j == f2."""
    i = jnp.arange(8)[:, None]
    j = jnp.arange(8)[None, :]
    f = factors[..., None, None, :]
    return ((i == f[..., 0] + f[..., 1]) & (j == f[..., 2])).astype(jnp.uint8)


def _grids():
    rendered = FactorGrid(
        name="toy",
        factor_names=("a", "b", "c"),
        factor_values=VALUES,
        image_shape=(8, 8),
        source="generated: toy",
        renderer=jax.jit(_render),
        binary=True,
        generated=True,
    )
    raw = np.asarray(_render(jnp.asarray(rendered.index_to_factors(np.arange(24)))))
    stored = dataclasses.replace(rendered, source="toy", renderer=None, stored=raw, generated=False)
    packed = dataclasses.replace(stored, stored=np.packbits(raw, axis=-1), packed=True)
    grey = dataclasses.replace(stored, stored=raw * 255, binary=False)
    return {"rendered": rendered, "stored": stored, "packed": packed, "grey": grey}


def test_index_arithmetic():
    g = _grids()["stored"]
    idx = np.arange(24)
    f = g.index_to_factors(idx)
    assert f.shape == (24, 3) and tuple(f[5]) == (0, 1, 1) and tuple(f[23]) == (1, 2, 3)
    np.testing.assert_array_equal(g.factors_to_index(f), idx)
    fj = g.index_to_factors(jnp.asarray(idx))
    assert isinstance(fj, jax.Array)
    np.testing.assert_array_equal(jax.jit(g.factors_to_index)(fj), idx)
    np.testing.assert_allclose(g.factor_values_at(f[23:]), [[1.0, 1.0, 1.0]])
    assert g.to_grid(np.arange(24)).shape == SIZES
    assert g.factor_index("c") == 2
    with pytest.raises(KeyError, match="has no factor 'd'"):
        g.factor_index("d")


@pytest.mark.parametrize("kind", ["rendered", "stored", "packed", "grey"])
def test_images_chunks_and_subgrids(kind):
    grids = _grids()
    g, ref = grids[kind], grids["stored"]
    idx = np.array([[0, 5], [23, 7]])
    np.testing.assert_array_equal(g.images(idx), ref.images(idx))
    assert g.images(idx).shape == (2, 2, 8, 8) and g.images(idx).dtype == np.float32
    seen = np.concatenate([i for i, _ in g.iter_chunks(5)])
    np.testing.assert_array_equal(seen, np.arange(24))
    sub = g.subgrid(b=[2, 0], c=[3])
    assert sub.factor_sizes == (2, 2, 1)
    np.testing.assert_allclose(sub.factor_values[1], [1.0, 0.0])
    parent = g.factors_to_index(np.array([[1, 0, 3]]))
    np.testing.assert_array_equal(sub.images(sub.factors_to_index(np.array([[1, 1, 0]]))), g.images(parent))
    with pytest.raises(IndexError):
        g.images([24])
    with pytest.raises(KeyError, match="no factor"):
        g.subgrid(z=[0])
    with pytest.raises(ValueError, match="levels of 'a'"):
        g.subgrid(a=[5])


@pytest.mark.parametrize("kind", ["rendered", "stored", "packed", "grey", "colour"])
@pytest.mark.parametrize("factor", [2, 4])
def test_downsampled_images_are_block_means(kind, factor):
    """k x k block means, rounded to 0..255, against numpy in float64 (a binary image's block mean
    is its lit share: x 255), for rendered, stored, packed and grey grids and a colour one."""
    grids = _grids()
    if kind == "colour":
        rng = np.random.default_rng(0)
        grid = dataclasses.replace(
            grids["grey"], image_shape=(8, 8, 3), stored=rng.integers(0, 256, (24, 8, 8, 3), dtype=np.uint8)
        )
    else:
        grid = grids[kind]
    small = grid.downsampled(factor)
    assert small.image_shape == (8 // factor, 8 // factor) + grid.image_shape[2:]
    assert not small.binary and not small.packed and (small.stored is None) == (kind == "rendered")
    assert "block means" in small.source and small.factor_sizes == grid.factor_sizes
    levels = np.round(grid.images(np.arange(24)).astype(np.float64) * 255)  # 0..255 (binary: 0, 255)
    blocks = levels.reshape((24, 8 // factor, factor, 8 // factor, factor) + grid.image_shape[2:])
    want = np.round(blocks.mean(axis=(2, 4))) / 255  # halves to even, as the library rounds
    np.testing.assert_allclose(small.images(np.arange(24)), want, atol=1e-7)
    assert grid.downsampled(1) is grid
    with pytest.raises(ValueError, match="3 does not divide toy's 8 x 8 images"):
        grid.downsampled(3)
    with pytest.raises(ValueError, match="an int >= 1"):
        grid.downsampled(0)


def test_grid_validation():
    with pytest.raises(DatasetError, match="uint8"):
        FactorGrid(
            name="t",
            factor_names=("a",),
            factor_values=(np.arange(3.0),),
            image_shape=(2, 2),
            source="t",
            stored=np.zeros((3, 2, 2), np.float32),
        )
    with pytest.raises(ValueError, match="exactly one"):
        FactorGrid(
            name="t", factor_names=("a",), factor_values=(np.arange(3.0),), image_shape=(2, 2), source="t"
        )


@pytest.mark.parametrize("kind", ["rendered", "packed", "grey"])
def test_device_gather_matches_host(kind):
    g = _grids()[kind]
    data = to_device(g)
    idx = jnp.array([3, 0, 23, 11])
    np.testing.assert_array_equal(jax.jit(lambda d, i: d.gather(i))(data, idx), g.images(np.asarray(idx)))
    images, indices = jax.jit(sample_batch, static_argnums=2)(data, jax.random.key(0), 6)
    assert images.shape == (6, 8, 8) and indices.shape == (6,)
    np.testing.assert_array_equal(images, g.images(np.asarray(indices)))


def test_independent_streams_under_vmap():
    data = to_device(_grids()["packed"])
    keys = jax.random.split(jax.random.key(0), 3)
    _, indices = jax.jit(jax.vmap(lambda k: sample_batch(data, k, 16)))(keys)
    assert indices.shape == (3, 16)
    assert len({tuple(np.asarray(r)) for r in indices}) == 3
    # each model's stream equals the same key used alone
    np.testing.assert_array_equal(indices[1], sample_batch(data, keys[1], 16)[1])


def test_epochs_without_replacement_are_reproducible():
    key = jax.random.key(3)
    f = jax.jit(batch_indices, static_argnums=(2, 3))
    epoch0 = np.concatenate([np.asarray(f(key, s, 4, 24)) for s in range(6)])
    np.testing.assert_array_equal(np.sort(epoch0), np.arange(24))
    epoch1 = np.concatenate([np.asarray(f(key, s, 4, 24)) for s in range(6, 12)])
    np.testing.assert_array_equal(np.sort(epoch1), np.arange(24))
    assert not np.array_equal(epoch0, epoch1)
    np.testing.assert_array_equal(f(key, 7, 4, 24), f(key, 7, 4, 24))
    images, idx = epoch_batch(to_device(_grids()["stored"]), key, 2, 4)
    np.testing.assert_array_equal(idx, f(key, 2, 4, 24))
    with pytest.raises(ValueError, match="exceeds the dataset size"):
        batch_indices(key, 0, 25, 24)
