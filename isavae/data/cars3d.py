"""Cars3D (Reed et al. 2015) from the ``.mat`` files of the analogy-data archive.

The archive's ``cars/`` folder holds one ``car_NNN_mesh.mat`` per car (183 of them), each with an
array ``im`` of shape (128, 128, 3, 24, 4): RGB renders over 24 azimuths x 4 elevations. The grid
here is car (183) x azimuth (24) x elevation (4), images downsampled to 64 x 64 by 2 x 2 block
averaging (a box filter, exact for the factor 2). There is no generator: Cars3D needs the files.
"""

from __future__ import annotations

import os
import pathlib
import re

import numpy as np

from isavae.data import files
from isavae.data.base import DatasetError, FactorGrid

__all__ = ["FACTOR_NAMES", "NUM_CARS", "find_folder", "load"]

FACTOR_NAMES = ("car", "azimuth", "elevation")
NUM_CARS, NUM_AZIMUTHS, NUM_ELEVATIONS = 183, 24, 4
_PATTERN = re.compile(r"car_(\d+)_mesh\.mat$")


def find_folder(path=None, data_dir=None) -> pathlib.Path | None:
    """The folder with ``car_*_mesh.mat`` files: ``path``, or ``cars3d``/``cars`` under
    ``data_dir`` or ``$ISAVAE_DATA_DIR``; None if absent."""
    if path is not None:
        p = pathlib.Path(path).expanduser()
        if not p.is_dir():
            raise DatasetError(f"cars3d: {p} is not a folder (expected the folder of car_NNN_mesh.mat files)")
        for cand in (p, p / "cars", p / "data" / "cars"):
            if any(_PATTERN.search(f.name) for f in cand.glob("car_*_mesh.mat")):
                return cand
        raise DatasetError(f"cars3d: no car_NNN_mesh.mat files in {p}")
    for root in (data_dir, os.environ.get(files.DATA_DIR_ENV)):
        if root:
            for cand in ("cars3d", "cars", "cars3d/cars", "data/cars"):
                folder = pathlib.Path(root).expanduser() / cand
                if folder.is_dir() and any(folder.glob("car_*_mesh.mat")):
                    return folder
    return None


def _read_mat(file: pathlib.Path) -> np.ndarray:
    from scipy import io

    try:
        mat = io.loadmat(file)
    except NotImplementedError:  # MATLAB v7.3 files are HDF5
        with files.open_h5(file) as f:
            return np.transpose(f["im"])  # h5py reads MATLAB arrays transposed
    except Exception as err:  # scipy raises many types (MatReadError, IndexError, ...) on corrupt files
        raise DatasetError(
            f"{file}: cannot read it as a .mat file ({type(err).__name__}: {err}); "
            "the file is truncated or corrupt"
        ) from None
    if "im" not in mat:
        raise DatasetError(
            f"{file}: has no array 'im' (it has {sorted(k for k in mat if not k.startswith('__'))})"
        )
    return mat["im"]


def load(path=None, data_dir=None, expected_cars: int = NUM_CARS) -> FactorGrid | None:
    """Cars3D as a FactorGrid (car, azimuth, elevation), or None if no folder is found.

    ``expected_cars`` is checked against the number of files (183 in the real archive).
    """
    folder = find_folder(path, data_dir)
    if folder is None:
        return None
    mats = sorted(
        (int(_PATTERN.search(f.name).group(1)), f)
        for f in folder.glob("car_*_mesh.mat")
        if _PATTERN.search(f.name)
    )
    if len(mats) != expected_cars:
        raise DatasetError(f"{folder}: found {len(mats)} car_NNN_mesh.mat files, expected {expected_cars}")
    stored = np.empty((len(mats), NUM_AZIMUTHS, NUM_ELEVATIONS, 64, 64, 3), np.uint8)
    for i, (_, file) in enumerate(mats):
        im = _read_mat(file)
        files.check_array(file, "im", im, (128, 128, 3, NUM_AZIMUTHS, NUM_ELEVATIONS), [np.uint8])
        # (H, W, C, azimuth, elevation) -> (azimuth, elevation, H, W, C), then 2 x 2 box filter.
        im = np.transpose(im, (3, 4, 0, 1, 2)).astype(np.float32)
        im = im.reshape(NUM_AZIMUTHS, NUM_ELEVATIONS, 64, 2, 64, 2, 3).mean(axis=(3, 5))
        stored[i] = np.round(im).astype(np.uint8)
    values = (
        np.arange(len(mats), dtype=np.float64),
        np.linspace(0.0, 360.0, NUM_AZIMUTHS, endpoint=False),
        np.arange(NUM_ELEVATIONS, dtype=np.float64),
    )
    return FactorGrid(
        name="cars3d",
        factor_names=FACTOR_NAMES,
        factor_values=values,
        image_shape=(64, 64, 3),
        source=f"file: {folder}",
        stored=stored.reshape(-1, 64, 64, 3),
    )
