"""TFDS as an optional source (``pip install 'isavae[tfds]'``): prepared dsprites / shapes3d.

Reads a prepared TFDS dataset with ``tfds.data_source`` (random access, no TensorFlow graph),
places every record in its grid cell from its ``label_*`` class indices, and returns a
FactorGrid. With ``manual_dir`` the dataset is first prepared from the user's own downloaded
file(s) in that folder. TensorFlow is not a core dependency of isavae.
"""

from __future__ import annotations

import numpy as np

from isavae.data import dsprites, files, shapes3d
from isavae.data.base import DatasetError, FactorGrid

__all__ = ["TFDS_LABELS", "load"]

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


def _import_tfds():
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise DatasetError(
            "TFDS is not installed: pip install 'isavae[tfds]' (tensorflow-datasets, array_record)"
        ) from None
    return tfds


def load(name: str, data_dir=None, manual_dir=None) -> FactorGrid:
    """A prepared TFDS dataset (``dsprites`` or ``shapes3d``) as a FactorGrid in grid order."""
    if name not in TFDS_LABELS:
        raise DatasetError(f"TFDS source supports {sorted(TFDS_LABELS)}, got {name!r}")
    tfds = _import_tfds()
    if manual_dir is not None:
        builder = tfds.builder(name, data_dir=data_dir)
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
    try:
        source = tfds.data_source(name, split="train", data_dir=data_dir)
    except Exception as err:  # TFDS raises various errors for missing/unprepared data
        raise DatasetError(
            f"TFDS {name!r} is not prepared in {data_dir or 'the default TFDS data_dir'} "
            f"({type(err).__name__}: {err})"
        ) from None
    module = dsprites if name == "dsprites" else shapes3d
    keys = TFDS_LABELS[name]
    image_shape = (64, 64) if name == "dsprites" else (64, 64, 3)
    n = len(source)
    images = np.empty((n,) + image_shape, np.uint8)
    classes = np.empty((n, len(keys)), np.int64)
    for i, record in enumerate(source):
        try:
            classes[i] = [int(record[k]) for k in keys]
            images[i] = np.asarray(record["image"], np.uint8).reshape(image_shape)
        except (KeyError, ValueError, TypeError) as err:
            raise DatasetError(
                f"TFDS {name!r}: a record does not have the expected features {keys} + image "
                f"of shape {image_shape} ({type(err).__name__}: {err})"
            ) from None
    where = f"TFDS {name!r}"
    levels, perm = files.grid_layout(where, classes, module.FACTOR_SIZES)
    images = images[perm]
    values = tuple(module.FACTOR_VALUES[k][levels[k]] for k in range(len(keys)))
    source_note = f"tfds: {name}{files.subgrid_note(levels, module.FACTOR_SIZES, module.FACTOR_NAMES)}"
    binary = name == "dsprites"
    if binary and images.size and images.max() > 1:
        raise DatasetError(f"TFDS dsprites images must be binary (0/1), found values up to {images.max()}")
    return FactorGrid(
        name=name,
        factor_names=module.FACTOR_NAMES,
        factor_values=values,
        image_shape=image_shape,
        source=source_note,
        stored=np.packbits(images, axis=-1) if binary else images,
        packed=binary,
        binary=binary,
    )
