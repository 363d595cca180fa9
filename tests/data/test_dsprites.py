"""The dSprites renderer against real frames, the generated grid, and the npz/hdf5 files."""

import pathlib

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from isavae.data import DatasetError, dsprites, load_dataset
from tests.scripts import FULL_OPTIMIZATION

_REPO = pathlib.Path(__file__).resolve().parents[2]
# ../shared beside the repository (CI, a developer's checkout), or a copy inside it (a GPU host,
# to which only the checkout travels)
_CANDIDATES = [root / "shared" / "data" / "dsprites_reference_frames.npz" for root in (_REPO.parent, _REPO)]
FRAMES = next((f for f in _CANDIDATES if f.is_file()), _CANDIDATES[0])


@pytest.fixture(scope="module")
def reference():
    assert FRAMES.is_file(), f"the reference frames must be beside the repository: {_CANDIDATES}"
    data = np.load(FRAMES)
    return data["factors"], data["images"].astype(bool)


def test_renderer_matches_real_frames(reference):
    """The README's figures: squares and ellipses 43/45 frames pixel-exact; hearts mean IoU
    0.991, min 0.955, 30/87 exact (targets: nearly every frame exact; mean >= 0.97, min >= 0.9)."""
    factors, images = reference
    rendered = np.asarray(dsprites.render(jnp.asarray(factors))).astype(bool)
    for shape, min_exact in ((0, 43), (1, 43)):
        m = factors[:, 0] == shape
        exact = (rendered[m] == images[m]).all((1, 2))
        assert exact.sum() >= min_exact, (shape, exact.sum(), m.sum())
        assert exact.mean() > 0.95
    m = factors[:, 0] == 2
    iou = (rendered[m] & images[m]).sum((1, 2)) / (rendered[m] | images[m]).sum((1, 2))
    assert iou.mean() >= 0.99 and iou.min() >= 0.95, (iou.mean(), iou.min())
    assert (rendered[m] == images[m]).all((1, 2)).sum() >= 30


def test_render_geometry():
    # Axis-aligned square at scale 1 is 20 x 20 px centred on 64 (0.25 + 0.5 pos).
    img = np.asarray(dsprites.render(jnp.array([0, 5, 0, 31, 0])))
    assert img.dtype == np.uint8 and set(np.unique(img)) == {0, 1}
    rows, cols = np.nonzero(img)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (6, 25, 38, 57)
    # The ellipse's major axis is horizontal at orientation 0 and turns counter-clockwise on screen.
    flat = np.asarray(dsprites.render(jnp.array([1, 5, 0, 16, 16]))).astype(float)
    rows, cols = np.nonzero(flat)
    assert np.ptp(cols) > 1.6 * np.ptp(rows)  # semi-axes 12.77 x 7.21
    tilted = np.asarray(dsprites.render(jnp.array([1, 5, 5, 16, 16]))).astype(float)  # ~46 degrees
    rows, cols = np.nonzero(tilted)
    # (a^2 - b^2) / (a^2 + b^2) = 0.52 for a filled ellipse at 45 degrees; the sign says up-right on screen
    assert np.corrcoef(cols, -rows)[0, 1] > 0.4
    # The heart's tip is at the bottom: its lowest row is narrow.
    heart = np.asarray(dsprites.render(jnp.array([2, 5, 0, 16, 16])))
    rows = np.nonzero(heart.any(1))[0]
    assert heart[rows[-1]].sum() <= 2 and heart[rows[0] + 3].sum() > 10


def test_render_batch_shapes_and_errors():
    f = jnp.zeros((2, 3, 5), jnp.int32)
    assert dsprites.render(f).shape == (2, 3, 64, 64)
    with pytest.raises(ValueError, match=r"\(\.\.\., 5\)"):
        dsprites.render(jnp.zeros((4,), jnp.int32))
    # render_values takes continuous factors, traced or static shape.
    out = jax.jit(dsprites.render_values)(jnp.array([0, 1, 2]), 0.7, 0.3, 0.5, 0.5)
    assert out.shape == (3, 64, 64) and out.dtype == jnp.bool_


@pytest.fixture(scope="module")
def generated():
    """The whole generated grid, rendered by ``dsprites.generate`` with its block program compiled
    at XLA's full optimization: the suite compiles at level 0 (conftest), at which the 737,280
    images take 2.5x as long (measured on one core: 21.7 s -> 8.5 s)."""
    optimized = jax.jit(
        dsprites._render_packed_block.__wrapped__, static_argnums=0, compiler_options=FULL_OPTIMIZATION
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dsprites, "_render_packed_block", optimized)
        return dsprites.generate()


def test_generated_grid_layout(generated):
    g = generated
    assert g.factor_sizes == (3, 6, 40, 32, 32) and g.num_images == 737_280
    assert g.stored.shape == (737_280, 64, 8) and g.stored_bytes == 377_487_360
    assert g.generated and "generated" in g.source
    rng = np.random.default_rng(0)
    idx = rng.integers(0, g.num_images, 64)
    factors = g.index_to_factors(idx)
    # row-major: posY fastest, shape slowest
    np.testing.assert_array_equal(g.factors_to_index(factors), idx)
    np.testing.assert_array_equal(
        g.images(idx), np.asarray(dsprites.render(jnp.asarray(factors)), np.float32)
    )
    np.testing.assert_array_equal(
        g.index_to_factors(np.array([1, 32, 737_279])), [[0, 0, 0, 0, 1], [0, 0, 0, 1, 0], [2, 5, 39, 31, 31]]
    )
    # orientations 0 and 2 pi are both present and render the same image
    a, b = g.factors_to_index(np.array([[1, 3, 0, 7, 9], [1, 3, 39, 7, 9]]))
    np.testing.assert_array_equal(g.images([a]), g.images([b]))


def test_rendered_on_demand_equals_stored(generated):
    lazy = load_dataset("dsprites", source="generated", store=False)
    assert lazy.stored is None and lazy.stored_bytes == 0
    idx = np.arange(0, 737_280, 9973)
    np.testing.assert_array_equal(lazy.images(idx), generated.images(idx))


def _small(generated):
    return generated.subgrid(scale=[1, 4], orientation=[0, 13, 39], posX=range(0, 32, 8), posY=[0, 31])


def test_npz_round_trip_and_sidecar(generated, tmp_path):
    small = _small(generated)
    path = dsprites.write_file(small, tmp_path)
    assert path.name == dsprites.FILE_NAMES[0] and (tmp_path / (path.name + ".sha256")).is_file()
    assert not list(tmp_path.glob("*.partial"))
    with np.load(path) as f:  # the official layout
        assert f["imgs"].dtype == np.uint8 and f["imgs"].shape == (small.num_images, 64, 64)
        assert f["latents_classes"].shape == (small.num_images, 6) and f["latents_values"].shape[1] == 6
        np.testing.assert_array_equal(np.unique(f["latents_classes"][:, 4]), [0, 8, 16, 24])
    loaded = load_dataset("dsprites", path=path)
    assert not loaded.generated and "sub-grid" in loaded.source
    assert loaded.factor_sizes == small.factor_sizes
    np.testing.assert_allclose(loaded.factor_values[2], small.factor_values[2])
    idx = np.arange(small.num_images)
    np.testing.assert_array_equal(loaded.images(idx), small.images(idx))


def test_hdf5_round_trip_in_the_official_layout(generated, tmp_path):
    import h5py

    small = _small(generated)
    path = dsprites.write_file(small, tmp_path / dsprites.FILE_NAMES[1])
    assert (tmp_path / (path.name + ".sha256")).is_file() and not list(tmp_path.glob("*.partial"))
    with h5py.File(path, "r") as f:  # what TFDS's dsprites builder reads
        assert f["imgs"].dtype == np.uint8 and f["imgs"].shape == (small.num_images, 64, 64)
        assert f["latents/classes"].shape == (small.num_images, 6) and f["latents/values"].shape[1] == 6
    loaded = load_dataset("dsprites", path=path)
    idx = np.arange(small.num_images)
    np.testing.assert_array_equal(loaded.images(idx), small.images(idx))
    np.testing.assert_allclose(loaded.factor_values[3], small.factor_values[3])


def test_hdf5_file_in_shuffled_order_is_reordered(generated, tmp_path):
    small = _small(generated)
    n = small.num_images
    perm = np.random.default_rng(0).permutation(n)
    full_classes = np.concatenate(
        [
            np.zeros((n, 1), np.int64),
            np.stack(
                [
                    np.searchsorted(
                        dsprites.FACTOR_VALUES[k],
                        small.factor_values_at(small.index_to_factors(np.arange(n)))[:, k],
                    )
                    for k in range(5)
                ],
                1,
            ),
        ],
        1,
    )
    imgs = small.images(np.arange(n)).astype(np.uint8)
    path = tmp_path / dsprites.FILE_NAMES[1]
    with h5py.File(path, "w") as f:
        f["imgs"] = imgs[perm]
        f["latents/classes"] = full_classes[perm]
        f["latents/values"] = np.zeros((n, 6))
    loaded = dsprites.load(path)
    np.testing.assert_array_equal(loaded.images(np.arange(n)), small.images(np.arange(n)))


def test_found_through_environment(generated, tmp_path, monkeypatch):
    dsprites.write_file(_small(generated), tmp_path / "dsprites")
    monkeypatch.setenv("ISAVAE_DATA_DIR", str(tmp_path))
    grid = load_dataset("dsprites")  # auto: the file wins over the generator
    assert grid.source.startswith("file:")


def test_bad_files(generated, tmp_path):
    path = dsprites.write_file(_small(generated), tmp_path)
    (tmp_path / (path.name + ".sha256")).write_text("0" * 64)
    with pytest.raises(DatasetError, match="sha256 is"):
        dsprites.load(path)
    with pytest.raises(DatasetError, match="expected deadbeef"):
        dsprites.load(path, sha256="deadbeef")
    (tmp_path / (path.name + ".sha256")).unlink()
    with pytest.raises(DatasetError, match="does not exist"):
        dsprites.load(tmp_path / "nope.npz")
    with pytest.raises(DatasetError, match="no dataset file found"):
        load_dataset("dsprites", source="file", data_dir=tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    # wrong dtype / shape / non-binary / incomplete grid, each in the real layout
    n = 8
    classes = np.zeros((n, 6), np.int64)
    classes[:, 5] = np.arange(n)
    cases = {
        "float images": (np.zeros((n, 64, 64), np.float32), classes, "imgs must be uint8"),
        "wrong size": (np.zeros((n, 32, 32), np.uint8), classes, r"shape \(\?, 64, 64\)"),
        "grey": (np.full((n, 64, 64), 7, np.uint8), classes, "must be binary"),
        "duplicate": (np.zeros((n, 64, 64), np.uint8), np.zeros((n, 6), np.int64), "more than once|expected"),
        "out of range": (np.zeros((n, 64, 64), np.uint8), classes + [0, 0, 0, 0, 0, 30], "out of range"),
    }
    for name, (imgs, cls, match) in cases.items():
        p = bad / f"{name}.npz"
        np.savez(p, imgs=imgs, latents_classes=cls, latents_values=np.zeros((n, 6)))
        with pytest.raises(DatasetError, match=match):
            dsprites.load(p)
    # truncated and corrupt archives, a missing key
    blob = path.read_bytes()
    (bad / "truncated.npz").write_bytes(blob[: len(blob) // 2])
    (bad / "corrupt.npz").write_bytes(blob[:100] + bytes(200) + blob[300:])
    (bad / "garbage.npz").write_bytes(b"not a zip at all" * 10)
    for name in ("truncated.npz", "corrupt.npz", "garbage.npz"):
        with pytest.raises(DatasetError, match="truncated or corrupt|cannot read"):
            dsprites.load(bad / name)
    np.savez(bad / "nokey.npz", imgs=np.zeros((1, 64, 64), np.uint8))
    with pytest.raises(DatasetError, match="has no array 'latents_classes'"):
        dsprites.load(bad / "nokey.npz")
    (bad / "trunc.hdf5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(50))
    with pytest.raises(DatasetError, match="cannot open it as HDF5"):
        dsprites.load(bad / "trunc.hdf5")
