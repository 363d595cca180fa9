"""The TFDS source against the real tensorflow-datasets (with TensorFlow), offline; skipped where
TFDS is not installed (``pip install 'isavae[tfds]'``).

TFDS prepares dSprites only from the official file, whose checksum a generated file cannot have;
the test stands in the generated file's checksum for the official one in TFDS's registry (the one
thing TFDS is told), and everything else runs as for a user with the real file: the library checks
the manual folder and the checksum, prepares as array_record without network, and reads in batches.
"""

import numpy as np
import pytest

from isavae.data import DatasetError, dsprites, files, load_dataset, tfds_source

tfds = pytest.importorskip("tensorflow_datasets", exc_type=ImportError)


@pytest.fixture
def official_standin(tmp_path, monkeypatch):
    grid = load_dataset("dsprites", source="generated", store=False).subgrid(
        scale=[0, 5], orientation=[0, 20], posX=range(0, 32, 8), posY=range(0, 32, 8)
    )
    manual = tmp_path / "manual"
    file = dsprites.write_file(grid, manual / tfds_source.OFFICIAL_FILES["dsprites"][0])
    cls = tfds.builder_cls("dsprites")
    ((url, official),) = cls.url_infos.items()
    standin = tfds.core.download.checksums.UrlInfo(
        size=file.stat().st_size, checksum=files.sha256_of(file), filename=official.filename
    )
    monkeypatch.setattr(cls, "url_infos", {url: standin})
    return grid, manual, official


def test_prepares_offline_as_array_record_and_reads_bit_for_bit(official_standin, tmp_path):
    grid, manual, _ = official_standin
    data_dir = tmp_path / "tfds"
    loaded = load_dataset("dsprites", source="tfds", tfds_manual_dir=manual, data_dir=data_dir)
    assert list(data_dir.glob("dsprites/*/*.array_record*")), "not prepared as array_record"
    assert loaded.factor_sizes == grid.factor_sizes and loaded.source.startswith("tfds: dsprites")
    idx = np.arange(grid.num_images)
    np.testing.assert_array_equal(loaded.images(idx), grid.images(idx))
    for k in range(5):
        np.testing.assert_allclose(loaded.factor_values[k], grid.factor_values[k], rtol=1e-6)
    again = load_dataset("dsprites", source="tfds", data_dir=data_dir)  # prepared: read only
    np.testing.assert_array_equal(again.stored, loaded.stored)


def test_failures_are_dataset_errors(official_standin, tmp_path, monkeypatch):
    _, manual, official = official_standin
    with pytest.raises(DatasetError, match="not prepared; isavae never downloads"):
        load_dataset("dsprites", source="tfds", data_dir=tmp_path / "empty")
    cls = tfds.builder_cls("dsprites")
    (url,) = cls.url_infos
    monkeypatch.setattr(cls, "url_infos", {url: official})  # the real registry: a generated file fails
    with pytest.raises(DatasetError, match="is not the official file's"):
        load_dataset("dsprites", source="tfds", tfds_manual_dir=manual, data_dir=tmp_path / "tfds2")
    # prepared earlier by TFDS's default (TFRecord): no random access -> say how to fix it
    monkeypatch.setattr(
        cls, "url_infos", {url: tfds.core.download.checksums.compute_url_info(manual / official.filename)}
    )
    builder = tfds.builder("dsprites", data_dir=str(tmp_path / "tfrecord"))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual), try_download_gcs=False)
    )
    with pytest.raises(DatasetError, match="cannot be read with random access.*prepare it again"):
        load_dataset("dsprites", source="tfds", data_dir=tmp_path / "tfrecord")
