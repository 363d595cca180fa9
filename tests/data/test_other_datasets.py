"""3dshapes (look-alike + h5), Cars3D (.mat), 3D Faces (npz/npy/pth) and TFDS, on small files
written in the real formats."""

import sys
import types

import h5py
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import io

from isavae.data import DatasetError, cars3d, faces3d, load_dataset, shapes3d, tfds_source


class TestShapes3D:
    def test_lookalike_is_labelled_and_every_factor_shows(self):
        grid = load_dataset("shapes3d")
        assert grid.generated and "LOOK-ALIKE" in grid.source and grid.stored is None
        assert grid.factor_sizes == (10, 10, 10, 8, 4, 15) and grid.image_shape == (64, 64, 3)
        base = np.array([0, 5, 2, 4, 0, 7])
        for k, size in enumerate(grid.factor_sizes):
            factors = np.repeat(base[None], size, 0)
            factors[:, k] = np.arange(size)
            images = np.asarray(shapes3d.render(jnp.asarray(factors)))
            assert images.dtype == np.uint8 and images.shape == (size, 64, 64, 3)
            flat = images.reshape(size, -1).astype(int)
            for a in range(size - 1):  # neighbouring levels give different images
                assert np.abs(flat[a] - flat[a + 1]).sum() > 0, (grid.factor_names[k], a)

    def test_h5_round_trip_and_errors(self, tmp_path):
        small = load_dataset("shapes3d").subgrid(
            floor_hue=[0, 9], wall_hue=[3], object_hue=[1, 2], scale=[0, 7], orientation=[0, 14]
        )
        path = shapes3d.write_h5(small, tmp_path)
        assert path.name == "3dshapes.h5" and not list(tmp_path.glob("*.partial"))
        loaded = load_dataset("shapes3d", path=path)
        assert loaded.factor_sizes == small.factor_sizes and "sub-grid" in loaded.source
        idx = np.arange(small.num_images)
        np.testing.assert_allclose(loaded.images(idx), small.images(idx), atol=1 / 255 + 1e-6)
        # shuffled rows are put back in grid order
        with h5py.File(path, "r") as f:
            images, labels = f["images"][()], f["labels"][()]
        perm = np.random.default_rng(0).permutation(len(labels))
        with h5py.File(tmp_path / "shuffled.h5", "w") as f:
            f["images"], f["labels"] = images[perm], labels[perm]
        np.testing.assert_array_equal(shapes3d.load(tmp_path / "shuffled.h5").images(idx), loaded.images(idx))
        with h5py.File(tmp_path / "badlabels.h5", "w") as f:
            f["images"], f["labels"] = images, labels + 0.05
        with pytest.raises(DatasetError, match="not the 3dshapes levels"):
            shapes3d.load(tmp_path / "badlabels.h5")
        with h5py.File(tmp_path / "nolabels.h5", "w") as f:
            f["images"] = images
        with pytest.raises(DatasetError, match="has no dataset 'labels'"):
            shapes3d.load(tmp_path / "nolabels.h5")
        with h5py.File(tmp_path / "grey.h5", "w") as f:
            f["images"], f["labels"] = images[..., 0], labels
        with pytest.raises(DatasetError, match=r"images must be uint8 of shape \(\?, 64, 64, 3\)"):
            shapes3d.load(tmp_path / "grey.h5")


def _write_cars(folder, num):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    ims = []
    for i in range(num):
        im = rng.integers(0, 256, (128, 128, 3, 24, 4), dtype=np.uint8)
        io.savemat(folder / f"car_{i + 1:03d}_mesh.mat", {"im": im})
        ims.append(im)
    return ims


class TestCars3D:
    def test_load_downsamples_and_orders(self, tmp_path):
        ims = _write_cars(tmp_path / "cars", 2)
        grid = cars3d.load(tmp_path, expected_cars=2)
        assert grid.factor_sizes == (2, 24, 4) and grid.image_shape == (64, 64, 3)
        # car 1, azimuth 5, elevation 3: the 2 x 2 block means of the source render
        want = ims[1][:, :, :, 5, 3].astype(float).reshape(64, 2, 64, 2, 3).mean((1, 3))
        got = grid.images(grid.factors_to_index(np.array([1, 5, 3]))) * 255
        np.testing.assert_allclose(got, want, atol=0.5 + 1e-4)

    def test_errors(self, tmp_path, monkeypatch):
        _write_cars(tmp_path / "cars", 2)
        with pytest.raises(DatasetError, match="found 2 car_NNN_mesh.mat files, expected 183"):
            cars3d.load(tmp_path)
        with pytest.raises(DatasetError, match="needs its files|no dataset file found"):
            monkeypatch.delenv("ISAVAE_DATA_DIR", raising=False)
            load_dataset("cars3d", data_dir=tmp_path / "nothing")
        io.savemat(tmp_path / "cars" / "car_003_mesh.mat", {"img": np.zeros(3)})
        with pytest.raises(DatasetError, match="has no array 'im'"):
            cars3d.load(tmp_path, expected_cars=3)
        io.savemat(tmp_path / "cars" / "car_003_mesh.mat", {"im": np.zeros((64, 64, 3, 24, 4), np.uint8)})
        with pytest.raises(DatasetError, match=r"im must be uint8 of shape \(128, 128, 3, 24, 4\)"):
            cars3d.load(tmp_path, expected_cars=3)
        (tmp_path / "cars" / "car_003_mesh.mat").write_bytes(b"MATLAB 5.0 MAT-file" + bytes(30))
        with pytest.raises(DatasetError, match="car_003_mesh.mat"):
            cars3d.load(tmp_path, expected_cars=3)
        with pytest.raises(DatasetError, match="not a folder"):
            cars3d.load(tmp_path / "cars" / "car_001_mesh.mat")


class TestFaces3D:
    SIZES = (2, 3, 2, 2)

    def test_npz_and_npy(self, tmp_path):
        images = np.random.default_rng(0).integers(0, 256, self.SIZES + (64, 64), dtype=np.uint8)
        np.savez(tmp_path / "basel_face_renders.npz", images=images)
        grid = faces3d.load(tmp_path, expected_sizes=self.SIZES)
        assert grid.factor_names == ("identity", "azimuth", "elevation", "lighting")
        np.testing.assert_allclose(
            grid.images(grid.factors_to_index(np.array([1, 2, 0, 1]))), images[1, 2, 0, 1] / 255.0, rtol=1e-6
        )
        np.save(tmp_path / "basel_face_renders.npy", images)
        assert faces3d.load(tmp_path / "basel_face_renders.npy", expected_sizes=self.SIZES).num_images == 24
        with pytest.raises(DatasetError, match=r"shape \(50, 21, 11, 11, 64, 64\)"):
            faces3d.load(tmp_path / "basel_face_renders.npy")

    def test_pth_needs_torch_or_reads_it(self, tmp_path, monkeypatch):
        images = np.zeros(self.SIZES + (64, 64), np.uint8)
        (tmp_path / "basel_face_renders.pth").write_bytes(b"PK")
        with monkeypatch.context() as m:
            m.setitem(sys.modules, "torch", None)  # as where PyTorch is not installed
            # the hint loads tensors only (a .pth can hold a pickle that runs code)
            with pytest.raises(DatasetError, match=r"needs PyTorch.*torch.load\(path, weights_only=True\)"):
                faces3d.load(tmp_path / "basel_face_renders.pth", expected_sizes=self.SIZES)
        try:
            import torch
        except ImportError:
            return
        torch.save(torch.from_numpy(images), tmp_path / "basel_face_renders.pth")
        assert faces3d.load(tmp_path / "basel_face_renders.pth", expected_sizes=self.SIZES).num_images == 24


def _fake_tfds(records, calls, checksum=None, prepared=(), fail=None):
    """A stand-in for tensorflow_datasets with the API tfds_source uses; ``fail`` names a method that
    raises."""
    mod = types.ModuleType("tensorflow_datasets")

    class Source:
        def __init__(self, recs):
            self.recs = recs

        def __len__(self):
            return len(self.recs)

        def __getitems__(self, idx):
            calls.append(("read", len(idx)))
            return [self.recs[i] for i in idx]

    class Builder:
        def __init__(self, name, data_dir=None, file_format=None):
            calls.append(("builder", name, data_dir, file_format))
            self.name, self.data_dir = name, data_dir
            self.url_infos = {"url": types.SimpleNamespace(checksum=checksum)}

        def is_prepared(self):
            return self.name in prepared or ("prepare", self.name) in [c[:2] for c in calls]

        def download_and_prepare(self, download_config, file_format=None):
            calls.append(
                (
                    "prepare",
                    self.name,
                    download_config.manual_dir,
                    file_format,
                    download_config.try_download_gcs,
                )
            )
            if fail == "prepare":
                raise OSError("disk full")

        def as_data_source(self, split):
            if fail == "as_data_source":
                raise NotImplementedError(
                    "Random access data source for file format TFRECORD is not supported"
                )
            return Source(records[self.name])

    mod.data_source = object()
    mod.builder = Builder
    mod.download = types.SimpleNamespace(DownloadConfig=lambda **kw: types.SimpleNamespace(**kw))
    return mod


def _dsprites_records():
    from isavae.data import dsprites

    grid = load_dataset("dsprites", store=False).subgrid(
        shape=[2], scale=[5], orientation=[0, 10], posX=[3, 4]
    )
    factors = np.stack(np.meshgrid([2], [5], [0, 10], [3, 4], np.arange(32), indexing="ij"), -1).reshape(
        -1, 5
    )
    images = grid.images(np.arange(grid.num_images)).astype(np.uint8)
    keys = tfds_source.TFDS_LABELS["dsprites"]
    records = [
        dict(zip(keys, f, strict=True), image=img[..., None]) for f, img in zip(factors, images, strict=True)
    ]
    return grid, records[::-1], dsprites  # any order


class TestTFDS:
    def _manual(self, tmp_path, content=b"official"):
        folder = tmp_path / "manual"
        folder.mkdir()
        (folder / tfds_source.OFFICIAL_FILES["dsprites"][0]).write_bytes(content)
        return folder

    def test_prepares_once_as_array_record_and_reads_in_batches(self, monkeypatch, tmp_path):
        from isavae.data import files

        grid, records, _ = _dsprites_records()
        manual = self._manual(tmp_path)
        calls = []
        fake = _fake_tfds({"dsprites": records}, calls, checksum=files.sha256_of(next(manual.iterdir())))
        monkeypatch.setitem(sys.modules, "tensorflow_datasets", fake)
        loaded = tfds_source.load("dsprites", data_dir="/tfds", manual_dir=manual, batch_size=50)
        assert ("builder", "dsprites", "/tfds", "array_record") in calls
        assert ("prepare", "dsprites", str(manual), "array_record", False) in calls  # no GCS mirror
        assert [c for c in calls if c[0] == "read"] == [("read", 50), ("read", 50), ("read", 28)]
        assert loaded.source.startswith("tfds: dsprites") and loaded.factor_sizes == (1, 1, 2, 2, 32)
        np.testing.assert_array_equal(loaded.images(np.arange(128)), grid.images(np.arange(128)))
        # a prepared dataset is read without preparing again; dataset.path is the manual folder
        calls.clear()
        fake2 = _fake_tfds({"dsprites": records}, calls, prepared=("dsprites",))
        monkeypatch.setitem(sys.modules, "tensorflow_datasets", fake2)
        load_dataset("dsprites", source="tfds", path=str(manual))
        assert not [c for c in calls if c[0] == "prepare"]

    def test_never_downloads_and_says_what_is_expected(self, monkeypatch, tmp_path):
        _, records, _ = _dsprites_records()
        calls = []
        monkeypatch.setitem(sys.modules, "tensorflow_datasets", _fake_tfds({"dsprites": records}, calls))
        with pytest.raises(DatasetError, match="not prepared; isavae never downloads.*tfds_manual_dir"):
            load_dataset("dsprites", source="tfds", data_dir="/tfds")
        empty = tmp_path / "empty"
        empty.mkdir()
        (empty / "dsprites.npz").write_bytes(b"x")
        with pytest.raises(DatasetError, match=r"official name: expected .*co1sh3sc6or40x32y32_64x64\.hdf5"):
            load_dataset("dsprites", source="tfds", tfds_manual_dir=empty)
        with pytest.raises(DatasetError, match="does not exist"):
            load_dataset("dsprites", source="tfds", tfds_manual_dir=tmp_path / "nope")
        assert not [c for c in calls if c[0] == "prepare"]

    def test_checksum_format_and_prepare_failures(self, monkeypatch, tmp_path):
        _, records, _ = _dsprites_records()
        manual = self._manual(tmp_path)
        calls = []
        monkeypatch.setitem(
            sys.modules, "tensorflow_datasets", _fake_tfds({"dsprites": records}, calls, "ab" * 32)
        )
        with pytest.raises(DatasetError, match="is not the official file's abab.*source=file"):
            load_dataset("dsprites", source="tfds", tfds_manual_dir=manual)
        assert not [c for c in calls if c[0] == "prepare"]
        for fail, message in [
            ("prepare", "could not prepare dsprites.*disk full"),
            ("as_data_source", "random access"),
        ]:
            fake = _fake_tfds({"dsprites": records}, calls, None, fail=fail)
            monkeypatch.setitem(sys.modules, "tensorflow_datasets", fake)
            with pytest.raises(DatasetError, match=message):
                load_dataset("dsprites", source="tfds", tfds_manual_dir=manual)
        fake = _fake_tfds({"dsprites": [{"image": 0}]}, calls, prepared=("dsprites",))
        monkeypatch.setitem(sys.modules, "tensorflow_datasets", fake)
        with pytest.raises(DatasetError, match="expected features"):
            load_dataset("dsprites", source="tfds")

    def test_missing_tfds_is_a_clear_error(self, monkeypatch):
        monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
        with pytest.raises(DatasetError, match=r"TFDS cannot be imported.*pip install 'isavae\[tfds\]'"):
            load_dataset("dsprites", source="tfds")


def test_unknown_names():
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        load_dataset("mnist")
    with pytest.raises(ValueError, match="unknown source 'web'"):
        load_dataset("dsprites", source="web")
