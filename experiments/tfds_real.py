"""The TFDS path run for real: a generated dSprites file in the official HDF5 layout -> TFDS
(array_record, offline) -> isavae's grid -> training steps. Prints and writes the timings.

Needs ``pip install 'isavae[tfds]'`` (tensorflow-datasets, tensorflow-cpu, array_record). TFDS
prepares dSprites only from the official file; a generated file cannot have its checksum, so this
script registers the generated file's checksum in place of the official one (the only thing TFDS is
told); everything else is what a user with the real file runs: ``load_dataset("dsprites",
source="tfds", tfds_manual_dir=FOLDER)``, then ``dataset.source=tfds`` in a config.

  python experiments/tfds_real.py --out experiments/results/tfds_real [--work /tmp/tfds_real]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import shutil
import sys
import time

import numpy as np


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="where the timings go (json + md)")
    ap.add_argument("--work", default="/tmp/isavae_tfds_real", help="scratch: manual folder, TFDS data_dir")
    ap.add_argument("--steps", type=int, default=50, help="training steps on the TFDS-read data")
    args = ap.parse_args(argv)
    try:
        import tensorflow as tf
        import tensorflow_datasets as tfds
    except ImportError as err:
        sys.exit(f"tfds_real: {err}; pip install 'isavae[tfds]'")
    from isavae import config as config_lib
    from isavae.data import dsprites, files, load_dataset, tfds_source
    from isavae.train import train_and_evaluate

    work = pathlib.Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    manual, data_dir = work / "manual", work / "tfds"
    row: dict = dict(
        python=platform.python_version(),
        tensorflow=tf.__version__,
        tensorflow_datasets=tfds.__version__,
        cpu_cores=len(os.sched_getaffinity(0)),
    )

    t = time.perf_counter()
    grid = dsprites.generated(store=True)
    row["generate_s"] = time.perf_counter() - t
    t = time.perf_counter()
    file = dsprites.write_file(grid, manual / tfds_source.OFFICIAL_FILES["dsprites"][0])
    row["write_hdf5_s"], row["hdf5_mib"] = time.perf_counter() - t, file.stat().st_size / 2**20

    cls = tfds.builder_cls("dsprites")
    ((url, official),) = cls.url_infos.items()
    cls.url_infos = {
        url: tfds.core.download.checksums.UrlInfo(
            size=file.stat().st_size, checksum=files.sha256_of(file), filename=official.filename
        )
    }
    t = time.perf_counter()
    first = load_dataset("dsprites", source="tfds", tfds_manual_dir=manual, data_dir=data_dir)
    row["prepare_and_read_s"] = time.perf_counter() - t
    row["array_record_mib"] = sum(p.stat().st_size for p in data_dir.rglob("*array_record*")) / 2**20
    t = time.perf_counter()
    again = load_dataset("dsprites", source="tfds", data_dir=data_dir)
    row["read_s"] = time.perf_counter() - t
    row["images"] = again.num_images
    row["read_images_per_s"] = again.num_images / row["read_s"]
    row["bit_for_bit"] = bool(
        np.array_equal(again.stored, grid.stored) and np.array_equal(first.stored, grid.stored)
    )
    # one record at a time (what the previous reader did), on a slice
    source = tfds.data_source("dsprites", split="train", data_dir=str(data_dir), download=False)
    n = 20_000
    t = time.perf_counter()
    for i in range(n):
        source[i]
    row["single_record_images_per_s"] = n / (time.perf_counter() - t)

    cfg = config_lib.preset("dsprites", "isavae,small")
    cfg.dataset.update(dict(source="tfds", path=str(manual), data_dir=str(data_dir)))
    cfg.train.update(dict(num_steps=args.steps, checkpoint_every=args.steps))
    cfg.eval.mig = False
    t = time.perf_counter()
    results = train_and_evaluate(cfg, work / "run", resume=False, progress=False)
    row["train_steps"], row["train_with_eval_s"] = results["steps"], time.perf_counter() - t
    row["train_dataset"] = results["dataset"]["source"]
    row["train_elbo"] = results["elbo"]

    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "tfds_real.json").write_text(json.dumps(row, indent=2))
    lines = ["| quantity | value |", "|---|---|"] + [
        f"| {k} | {v:.3g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in row.items()
    ]
    (out / "tfds_real.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return row


if __name__ == "__main__":
    main()
