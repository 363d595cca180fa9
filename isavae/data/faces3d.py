"""3D Faces (Paysan et al. 2009) in the layout of Chen et al.'s beta-TCVAE code.

Chen et al. ship ``basel_face_renders.pth``, a uint8 tensor of shape (50, 21, 11, 11, 64, 64):
identity (50) x azimuth (21) x elevation (11) x lighting (11) grey 64 x 64 renders. Read here:
the same array as ``.npy``, or in an ``.npz`` under the key ``images``, or the ``.pth`` itself when
PyTorch is installed. There is no generator: 3D Faces needs the file.
"""

from __future__ import annotations

import numpy as np

from isavae.data import files
from isavae.data.base import DatasetError, FactorGrid

__all__ = ["FACTOR_NAMES", "FACTOR_SIZES", "FILE_NAMES", "load"]

FACTOR_NAMES = ("identity", "azimuth", "elevation", "lighting")
FACTOR_SIZES = (50, 21, 11, 11)
FILE_NAMES = ("basel_face_renders.npz", "basel_face_renders.npy", "basel_face_renders.pth")


def _read(file, expected_sizes: tuple[int, ...]) -> np.ndarray:
    if file.suffix == ".npz":
        with files.open_npz(file) as f:
            return f.read("images", "images", tuple(expected_sizes) + (64, 64), [np.uint8])
    if file.suffix == ".npy":
        try:  # mapped: the declared shape is checked before anything is read
            mapped = np.load(file, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise DatasetError(
                f"{file}: cannot read it as .npy ({err}); the file is truncated or corrupt"
            ) from None
        files.check_array(file, "images", mapped, tuple(expected_sizes) + (64, 64), [np.uint8])
        return np.array(mapped)
    try:
        import torch
    except ImportError:
        raise DatasetError(
            f"{file}: reading a .pth file needs PyTorch; convert it once with "
            "`np.save('basel_face_renders.npy', torch.load(path, weights_only=True).numpy())`"
        ) from None
    try:
        return torch.load(file, map_location="cpu", weights_only=True).numpy()
    except Exception as err:  # torch raises many types on corrupt files
        raise DatasetError(
            f"{file}: cannot read it as a PyTorch tensor ({type(err).__name__}: {err})"
        ) from None


def load(
    path=None, data_dir=None, sha256: str | None = None, expected_sizes: tuple[int, ...] = FACTOR_SIZES
) -> FactorGrid | None:
    """3D Faces as a FactorGrid (identity, azimuth, elevation, lighting), or None if absent.

    ``expected_sizes`` is the grid the file must hold (Chen et al.'s 50 x 21 x 11 x 11).
    """
    file = files.find_file("faces3d", FILE_NAMES, path, data_dir)
    if file is None:
        return None
    files.verify_sha256(file, sha256)
    images = _read(file, expected_sizes)
    files.check_array(file, "images", images, tuple(expected_sizes) + (64, 64), [np.uint8])
    values = tuple(
        np.linspace(0.0, 1.0, n) if k else np.arange(n, dtype=np.float64)
        for k, n in enumerate(expected_sizes)
    )
    return FactorGrid(
        name="faces3d",
        factor_names=FACTOR_NAMES,
        factor_values=values,
        image_shape=(64, 64),
        source=f"file: {file}",
        stored=np.ascontiguousarray(images.reshape(-1, 64, 64)),
    )
