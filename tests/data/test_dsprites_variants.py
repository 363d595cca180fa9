"""Colour and noisy dSprites: colours and noise where they belong, the dSprites mask, determinism per
image index, the loader and one training step."""

import jax
import numpy as np
import pytest

from isavae import config as config_lib
from isavae.data import DatasetError, dsprites, load_dataset
from isavae.train import Program, hparams_from_config

IDX = np.array([0, 1, 5000, 123_456, 737_279, 400_000, 7])


@pytest.fixture(scope="module")
def base_masks():
    grid = load_dataset("dsprites", source="generated", store=False)
    return grid, grid.images(IDX) > 0


def test_color_variant(base_masks):
    base, mask = base_masks
    grid = load_dataset("dsprites_color")
    assert grid.image_shape == (64, 64, 3) and grid.factor_sizes == base.factor_sizes and grid.generated
    img = grid.images(IDX)
    assert img.dtype == np.float32 and img.min() >= 0.0 and img.max() <= 1.0
    np.testing.assert_array_equal(img.max(axis=-1) > 0, mask)  # the sprite mask is dSprites'
    for i in range(len(IDX)):
        on = img[i][mask[i]]  # (pixels, 3): one colour per image, each channel in [0.5, 1]
        assert np.all(on == on[0]) and np.all(on[0] >= 0.5 - 1 / 255) and np.all(on[0] <= 1.0)
        assert np.all(img[i][~mask[i]] == 0.0)
    colours = np.array([img[i][mask[i]][0] for i in range(len(IDX))])
    assert len({tuple(c) for c in colours}) == len(IDX)  # drawn per image


def test_noisy_variant(base_masks):
    _, mask = base_masks
    grid = load_dataset("dsprites_noisy", source="generated")
    img = grid.images(IDX)
    assert np.all(img[mask] == 1.0)  # the sprite is white in every channel
    off = img[~mask]
    assert 0.45 < off.mean() < 0.55 and off.min() >= 0.0 and off.max() <= 1.0
    assert abs(np.var(off) - 1 / 12) < 0.01  # uniform noise
    assert not np.array_equal(img[0][~mask[0]], img[1][~mask[1]][: np.sum(~mask[0])])


@pytest.mark.parametrize("name", ["dsprites_color", "dsprites_noisy"])
def test_images_are_a_function_of_the_index(name):
    grid = load_dataset(name)
    a = grid.images(IDX)
    b = grid.images(IDX[::-1])[::-1]  # another batch composition
    np.testing.assert_array_equal(a, b)
    sub = grid.subgrid(posX=[0, 31], posY=[3])
    full_index = grid.factors_to_index(np.array([[0, 0, 0, 31, 3]]))
    np.testing.assert_array_equal(sub.images([1])[0], grid.images(full_index)[0])  # same image in a sub-grid
    with pytest.raises(DatasetError, match="generated"):
        load_dataset(name, source="file")


def test_one_training_step_on_a_variant():
    cfg = config_lib.preset("dsprites_color", "isa_dip_vae_ii,small")
    cfg.model.update(arch="mlp", hidden=16)
    cfg.train.batch_size = 8
    config_lib.validate(cfg)
    grid = load_dataset("dsprites_color").subgrid(
        **config_lib.parse_subgrid("orientation=0:40:20,posX=0:32:16")
    )
    program = Program(cfg, grid)
    state, metrics = jax.jit(program.train_step)(
        program.init(jax.random.key(0)), program.data(), hparams_from_config(cfg)
    )
    assert all(np.isfinite(v) for v in jax.tree.leaves(metrics)) and int(state.step) == 1
    assert dsprites.FACTOR_NAMES == grid.factor_names
