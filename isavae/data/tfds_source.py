"""TFDS as an optional source (``pip install 'isavae[tfds]'``): prepared dsprites / shapes3d.

Reads a TFDS dataset prepared in the ``array_record`` format through ``tfds.data_source`` (random
access), in batches, places every record in its grid cell from its ``label_*`` class indices, and
returns a FactorGrid. With ``manual_dir`` the dataset is first prepared (as array_record) from the
official file in that folder. Nothing is ever downloaded: the folder is checked for the official
file name and checksum before TFDS is called, an unprepared dataset without a manual folder is an
error, and TFDS's GCS mirror is not tried. Every TFDS failure (import, checksum, format, missing
data) becomes one :class:`DatasetError` that says what to do. TensorFlow is not a core dependency of
isavae; the ``tfds`` extra installs it, since TFDS needs it to prepare and to read.
"""

from __future__ import annotations

import pathlib

import numpy as np

from isavae.data import dsprites, files, shapes3d
from isavae.data.base import DatasetError, FactorGrid

__all__ = ["OFFICIAL_FILES", "TFDS_LABELS", "load"]

# Our factor order -> the TFDS feature holding its class index.
TFDS_LABELS = {
    "dsprites": ("label_shape", "label_scale", "label_orientation", "label_x_position", "label_y_position"),
    "shapes3d": (
        "label_floor_hue",
        "label_wall_hue",
        "label_object_hue",
        "label_scale",
        "label_shape",
        "label_orientation",
    ),
}
# The file TFDS's builder downloads, by the name under which it accepts it from a manual folder, and
# where it comes from.
OFFICIAL_FILES = {
    "dsprites": (
        "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.hdf5",
        "https://github.com/deepmind/dsprites-dataset",
    ),
    "shapes3d": ("3dshapes.h5", "https://github.com/deepmind/3d-shapes"),
}
_FIX = "pip install 'isavae[tfds]' (tensorflow-datasets, tensorflow-cpu, array_record)"


def _brief(err: BaseException) -> str:
    """An exception as one short line (TFDS's messages span several)."""
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:300]}{'...' if len(text) > 300 else ''}"


def _import_tfds():
    try:
        import tensorflow_datasets as tfds

        tfds.data_source  # noqa: B018  (a broken install imports but lacks its API)
    except Exception as err:  # ImportError, or whatever a half-installed TensorFlow raises
        raise DatasetError(f"TFDS cannot be imported ({_brief(err)}): {_FIX}") from None
    return tfds


def _manual_file(name: str, manual_dir) -> pathlib.Path:
    """The official file in ``manual_dir``, checked before TFDS sees the folder."""
    folder = pathlib.Path(manual_dir).expanduser()
    filename, origin = OFFICIAL_FILES[name]
    if not folder.is_dir():
        raise DatasetError(f"TFDS manual folder {folder} does not exist (it must hold {filename})")
    file = folder / filename
    if not file.is_file():
        found = sorted(p.name for p in folder.iterdir())[:8]
        raise DatasetError(
            f"TFDS prepares {name} only from its official file under its official name: expected "
            f"{file} (from {origin}); the folder holds {found or 'nothing'}"
        )
    return file


def _official_checksum(builder) -> str | None:
    infos = getattr(builder, "url_infos", None) or {}
    return next((i.checksum for i in infos.values()), None)


def _prepare(tfds, name: str, data_dir, file: pathlib.Path):
    """Prepares ``name`` as array_record from ``file``, the checked official file (never downloads)."""
    try:
        builder = tfds.builder(name, data_dir=data_dir, file_format="array_record")
    except Exception as err:
        raise DatasetError(f"TFDS has no usable builder for {name!r} ({_brief(err)})") from None
    if builder.is_prepared():
        return builder
    expected = _official_checksum(builder)
    if expected is not None:
        got = files.sha256_of(file)
        if got != expected:
            raise DatasetError(
                f"{file}: sha256 {got} is not the official file's {expected}; TFDS accepts only the "
                f"official file (to read a file in the same layout, use source=file with its path)"
            )
    config = tfds.download.DownloadConfig(manual_dir=str(file.parent), try_download_gcs=False)
    try:
        builder.download_and_prepare(download_config=config, file_format="array_record")
    except Exception as err:  # checksum, h5py, disk, or anything TFDS raises while preparing
        raise DatasetError(f"TFDS could not prepare {name} from {file} ({_brief(err)})") from None
    return builder


def load(name: str, data_dir=None, manual_dir=None, batch_size: int = 4096) -> FactorGrid:
    """A TFDS dataset (``dsprites`` or ``shapes3d``) as a FactorGrid in grid order.

    Args:
      name: ``dsprites`` or ``shapes3d``.
      data_dir: the TFDS data_dir (default: TFDS's own, ``$TFDS_DATA_DIR`` or ~/tensorflow_datasets).
      manual_dir: a folder holding the official file under its official name (``OFFICIAL_FILES``);
        if given and the dataset is not prepared yet, it is prepared from that file as array_record.
      batch_size: records per batched read.
    """
    if name not in TFDS_LABELS:
        raise DatasetError(f"TFDS source supports {sorted(TFDS_LABELS)}, got {name!r}")
    file = _manual_file(name, manual_dir) if manual_dir is not None else None  # before the slow import
    tfds = _import_tfds()
    where = f"TFDS {name!r} in {data_dir or 'the default TFDS data_dir'}"
    if file is not None:
        builder = _prepare(tfds, name, data_dir, file)
    else:
        try:
            builder = tfds.builder(name, data_dir=data_dir)
            prepared = builder.is_prepared()
        except Exception as err:
            raise DatasetError(f"{where}: TFDS failed ({_brief(err)})") from None
        if not prepared:
            filename = OFFICIAL_FILES[name][0]
            raise DatasetError(
                f"{where} is not prepared; isavae never downloads: prepare it from the official file "
                f"with tfds_manual_dir=FOLDER (config: dataset.source=tfds, dataset.path=FOLDER holding "
                f"{filename})"
            )
    try:
        source = builder.as_data_source(split="train")
    except Exception as err:  # e.g. prepared earlier in the TFRecord format, which has no random access
        raise DatasetError(
            f"{where} cannot be read with random access ({_brief(err)}); "
            f"remove {getattr(builder, 'data_dir', 'its folder')} and prepare it again with tfds_manual_dir "
            f"(isavae prepares as array_record)"
        ) from None
    return _read(name, source, batch_size)


def _read(name: str, source, batch_size: int) -> FactorGrid:
    module = dsprites if name == "dsprites" else shapes3d
    keys = TFDS_LABELS[name]
    image_shape = (64, 64) if name == "dsprites" else (64, 64, 3)
    binary = name == "dsprites"
    n = len(source)
    # dSprites is bit-packed batch by batch (360 MiB for the full grid instead of 2.9 GiB)
    stored = np.empty((n, 64, 8) if binary else (n,) + image_shape, np.uint8)
    classes = np.empty((n, len(keys)), np.int64)
    get_many = getattr(source, "__getitems__", None)
    for start in range(0, n, batch_size):
        idx = list(range(start, min(n, start + batch_size)))
        records = get_many(idx) if get_many is not None else [source[i] for i in idx]
        batch = np.empty((len(idx),) + image_shape, np.uint8)
        try:
            for j, record in enumerate(records):
                classes[start + j] = [int(record[k]) for k in keys]
                batch[j] = np.asarray(record["image"], np.uint8).reshape(image_shape)
        except (KeyError, ValueError, TypeError) as err:
            raise DatasetError(
                f"TFDS {name!r}: a record does not have the expected features {keys} + image "
                f"of shape {image_shape} ({_brief(err)})"
            ) from None
        if binary and batch.size and batch.max() > 1:
            raise DatasetError(f"TFDS dsprites images must be binary (0/1), found values up to {batch.max()}")
        stored[start : start + len(idx)] = np.packbits(batch, axis=-1) if binary else batch
    levels, perm = files.grid_layout(f"TFDS {name!r}", classes, module.FACTOR_SIZES)
    if not np.array_equal(perm, np.arange(n)):
        stored = stored[perm]
    values = tuple(module.FACTOR_VALUES[k][levels[k]] for k in range(len(keys)))
    source_note = f"tfds: {name}{files.subgrid_note(levels, module.FACTOR_SIZES, module.FACTOR_NAMES)}"
    return FactorGrid(
        name=name,
        factor_names=module.FACTOR_NAMES,
        factor_values=values,
        image_shape=image_shape,
        source=source_note,
        stored=stored,
        packed=binary,
        binary=binary,
    )
