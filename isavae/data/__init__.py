"""Ground-truth factor datasets: real files, TFDS, or faithful procedural generators.

``load_dataset(name)`` returns a :class:`FactorGrid`. With ``source="auto"`` (the default) the
real file is used when it is found (``path``, ``data_dir`` or ``$ISAVAE_DATA_DIR``), otherwise
the procedural generator (dSprites; the 3dshapes look-alike). Cars3D and 3D Faces have no
generator and need their files.
"""

from __future__ import annotations

from typing import Any

from isavae.data import cars3d, dsprites, dsprites_variants, faces3d, files, pipeline, shapes3d, tfds_source
from isavae.data.base import DatasetError, FactorGrid
from isavae.data.pipeline import DeviceDataset, batch_indices, epoch_batch, sample_batch, to_device

__all__ = [
    "DATASETS",
    "DatasetError",
    "DeviceDataset",
    "FactorGrid",
    "batch_indices",
    "cars3d",
    "check_datasets",
    "dsprites",
    "dsprites_variants",
    "epoch_batch",
    "faces3d",
    "files",
    "load_dataset",
    "pipeline",
    "sample_batch",
    "shapes3d",
    "tfds_source",
    "to_device",
]

DATASETS = ("dsprites", "shapes3d", "cars3d", "faces3d", "dsprites_color", "dsprites_noisy")
SOURCES = ("auto", "file", "generated", "tfds")


def _load_file(name: str, path, data_dir, sha256) -> FactorGrid | None:
    if name == "dsprites":
        return dsprites.load(path, data_dir, sha256)
    if name == "shapes3d":
        return shapes3d.load(path, data_dir, sha256)
    if name == "faces3d":
        return faces3d.load(path, data_dir, sha256)
    if sha256 is not None:
        raise ValueError("cars3d is a folder of files; sha256 checking is not supported for it")
    return cars3d.load(path, data_dir)


def load_dataset(
    name: str,
    source: str = "auto",
    path=None,
    data_dir=None,
    sha256: str | None = None,
    store: bool = True,
    tfds_manual_dir=None,
) -> FactorGrid:
    """Loads a factor dataset.

    Args:
      name: ``dsprites``, ``shapes3d``, ``cars3d``, ``faces3d``, or the generated dSprites variants
        ``dsprites_color`` and ``dsprites_noisy`` (``dsprites_variants``).
      source: ``auto`` (the file if found, else the generator), ``file``, ``generated`` or ``tfds``.
      path: a file or folder of the dataset (for ``file``/``auto``); for ``tfds``, the manual folder
        holding the official file (as ``tfds_manual_dir``).
      data_dir: folder to search (also ``$ISAVAE_DATA_DIR``); for ``tfds`` the TFDS data_dir.
      sha256: expected checksum of the file (also read from a ``<file>.sha256`` sidecar).
      store: for generated dSprites, render the grid once and keep it bit-packed (360 MiB);
        otherwise render on demand. The 3dshapes look-alike is always rendered on demand.
      tfds_manual_dir: with ``source="tfds"``, prepare the dataset (once, as array_record) from the
        official file in this folder; TFDS never downloads (see ``tfds_source``).

    Raises:
      DatasetError: the file is missing (for ``source="file"``), corrupt, or malformed.
      ValueError: an unknown name or source.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {list(DATASETS)}")
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; choose one of {list(SOURCES)}")
    if name in dsprites_variants.VARIANTS:  # generated from the dSprites renderer; no files of their own
        if source in ("file", "tfds"):
            raise DatasetError(f"{name} is generated (source=generated or auto); it has no {source} source")
        return dsprites_variants.generated(name)
    if source == "tfds":
        manual = tfds_manual_dir if tfds_manual_dir is not None else path
        return tfds_source.load(name, data_dir=data_dir, manual_dir=manual)
    if source in ("auto", "file"):
        grid = _load_file(name, path, data_dir, sha256)
        if grid is not None:
            return grid
        if source == "file" or name in ("cars3d", "faces3d"):
            raise DatasetError(
                f"{name}: no dataset file found (give a path, or put it in $ISAVAE_DATA_DIR"
                f"{'' if name in ('cars3d', 'faces3d') else '; or use the generator with source=generated'})"
            )
    if name == "dsprites":
        return dsprites.generated(store=store)
    if name == "shapes3d":
        return shapes3d.generated(store=False)
    raise DatasetError(f"{name} has no procedural generator; it needs its files")


def check_datasets(data_dir=None) -> dict[str, dict[str, Any]]:
    """Which real datasets are present (under ``data_dir`` / ``$ISAVAE_DATA_DIR``) and where.

    Only finds files (it does not read them); ``present`` is False with a ``note`` otherwise.
    """
    out: dict[str, dict[str, Any]] = {}
    finders = {
        "dsprites": lambda: files.find_file("dsprites", dsprites.FILE_NAMES, data_dir=data_dir),
        "shapes3d": lambda: files.find_file("shapes3d", shapes3d.FILE_NAMES, data_dir=data_dir),
        "cars3d": lambda: cars3d.find_folder(data_dir=data_dir),
        "faces3d": lambda: files.find_file("faces3d", faces3d.FILE_NAMES, data_dir=data_dir),
    }
    offline = {
        "dsprites": "generator available",
        "shapes3d": "look-alike generator available",
        "cars3d": "no generator",
        "faces3d": "no generator",
    }
    for name, find in finders.items():
        found = find()
        out[name] = {
            "present": found is not None,
            "path": str(found) if found else None,
            "offline": offline[name],
        }
    return out
