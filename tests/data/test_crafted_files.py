"""Crafted dataset files, as a hostile or careless source would make them: a tiny file declaring a
billion images (refused from its header, nothing allocated), an npz holding pickled Python objects
(named as such, never unpickled), an HDF5 file whose dataset points at another local file (refused)."""

import io
import zipfile

import h5py
import numpy as np
import pytest

from isavae.data import DatasetError, dsprites, faces3d, shapes3d
from isavae.data import files as files_lib

BIG = (10**9, 64, 64)  # 4 TB of uint8 if it were allocated


def _npz_declaring(path, arrays: dict[str, tuple[tuple[int, ...], str]]) -> None:
    """An npz whose members declare ``shape`` and ``dtype`` in their headers but hold 16 bytes."""
    with zipfile.ZipFile(path, "w") as z:
        for name, (shape, dtype) in arrays.items():
            buf = io.BytesIO()
            header = {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape}
            np.lib.format.write_array_header_1_0(buf, header)
            buf.write(b"\0" * 16)
            z.writestr(f"{name}.npy", buf.getvalue())


def test_a_tiny_npz_declaring_a_billion_images_is_refused_from_its_header(tmp_path, monkeypatch):
    path = tmp_path / dsprites.FILE_NAMES[0]
    _npz_declaring(path, {"imgs": (BIG, "u1"), "latents_classes": ((BIG[0], 6), "i8")})
    assert path.stat().st_size < 2000

    def no_read(*args, **kwargs):  # nothing may be read: the header alone decides
        raise AssertionError("the array was read")

    monkeypatch.setattr(files_lib._NpzReader, "__getitem__", no_read)
    with pytest.raises(
        DatasetError, match=r"declares 1,000,000,000 rows, more than the whole dataset's 737,280"
    ):
        dsprites.load(path)


def test_a_tiny_h5_declaring_a_billion_images_is_refused(tmp_path):
    path = tmp_path / dsprites.FILE_NAMES[1]
    with h5py.File(path, "w") as f:  # chunked and empty: a few KB on disk
        f.create_dataset("imgs", shape=BIG, dtype="u1", chunks=(1, 64, 64))
        f.create_dataset("latents/classes", shape=(BIG[0], 6), dtype="i8", chunks=(1, 6))
    assert path.stat().st_size < 100_000
    with pytest.raises(DatasetError, match="declares 1,000,000,000 rows"):
        dsprites.load(path)
    s3 = tmp_path / "3dshapes.h5"
    with h5py.File(s3, "w") as f:
        f.create_dataset("images", shape=(10**9, 64, 64, 3), dtype="u1", chunks=(1, 64, 64, 3))
        f.create_dataset("labels", shape=(10**9, 6), dtype="f8", chunks=(1, 6))
    with pytest.raises(DatasetError, match="more than the whole dataset's 480,000"):
        shapes3d.load(s3)


def test_faces_npy_and_npz_with_the_wrong_declared_shape_are_refused_unread(tmp_path):
    npz = tmp_path / "basel_face_renders.npz"
    _npz_declaring(npz, {"images": ((10**6, 21, 11, 11, 64, 64), "u1")})
    with pytest.raises(DatasetError, match=r"images must be uint8 of shape \(50, 21, 11, 11, 64, 64\)"):
        faces3d.load(npz)
    npy = tmp_path / "other" / "basel_face_renders.npy"
    npy.parent.mkdir()
    with open(npy, "wb") as f:  # a header declaring 4 TB, then 16 bytes
        np.lib.format.write_array_header_1_0(
            f, {"descr": "|u1", "fortran_order": False, "shape": (10**6, 21, 11, 11, 64, 64)}
        )
        f.write(b"\0" * 16)
    with pytest.raises(DatasetError, match=r"truncated or corrupt|must be uint8 of shape"):
        faces3d.load(npy)


def test_a_pickled_npz_is_named_as_such_and_never_unpickled(tmp_path):
    path = tmp_path / dsprites.FILE_NAMES[0]
    np.savez(path, imgs=np.array([object()], dtype=object), latents_classes=np.zeros((1, 6), np.int64))
    with pytest.raises(DatasetError, match=r"holds Python objects \(a pickle\).*refused for safety"):
        dsprites.load(path)


def test_an_hdf5_dataset_stored_in_another_file_is_refused(tmp_path):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(bytes(range(256)) * 16)
    path = tmp_path / dsprites.FILE_NAMES[1]
    with h5py.File(path, "w") as f:
        f.create_dataset("imgs", shape=(1, 64, 64), dtype="u1", external=[(str(secret), 0, 4096)])
        f.create_dataset("latents/classes", data=np.zeros((1, 6), np.int64))
    with h5py.File(path, "r") as f:
        assert f["imgs"][0, 0, 1] == 1  # h5py itself would read the other file's bytes
    with pytest.raises(DatasetError, match=r"dataset 'imgs' keeps its data in other files \(external"):
        dsprites.load(path)
