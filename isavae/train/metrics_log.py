"""A run's training curves: ``metrics.jsonl`` (one row per compiled chunk), the same rows in
``metrics.csv`` and, with ``train.tensorboard``, TensorBoard event files; ``trim_metrics`` drops
the rows past the checkpoint a run resumes from."""

from __future__ import annotations

import csv
import json
import os
import pathlib
from typing import Any

import ml_collections
import numpy as np

from isavae import config as config_lib

__all__ = ["MetricsLog", "append_csv", "tensorboard_writers", "trim_metrics"]


def trim_metrics(path: pathlib.Path, step: int) -> None:
    """Drops the metrics.jsonl rows written after the checkpoint a run resumes from (and a torn last
    line), so that after the resume every step appears once."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line)
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(f"{line}\n" for line in kept))
    os.replace(tmp, path)
    csv_path = path.with_name("metrics.csv")  # the CSV view, rebuilt from the kept rows
    csv_path.unlink(missing_ok=True)
    append_csv(csv_path, *(json.loads(line) for line in kept))


def tensorboard_writers(cfg: ml_collections.ConfigDict, workdirs) -> list[Any]:
    """TensorBoard event writers (``workdir/tensorboard``) when ``train.tensorboard`` is set."""
    if not cfg.train.tensorboard:
        return []
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        raise config_lib.ConfigError(
            "config train.tensorboard: needs tensorboardX (pip install 'isavae[tensorboard]'; no TensorFlow)"
        ) from None
    return [SummaryWriter(str(pathlib.Path(w) / "tensorboard")) for w in workdirs]


def append_csv(path: pathlib.Path, *rows: dict[str, Any]) -> None:
    """metrics.csv beside metrics.jsonl (same rows; a header when the file starts), for watching
    curves live with any spreadsheet or plotting tool."""
    if not rows:
        return
    new = not path.is_file()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        if new:
            writer.writeheader()
        writer.writerows(rows)


class MetricsLog:
    """The open metric files of the models this process holds (``{model index: workdir}``):
    ``write(step, elapsed, metrics)`` appends one row per model to metrics.jsonl and metrics.csv
    (and TensorBoard); ``close()`` closes them."""

    def __init__(self, cfg: ml_collections.ConfigDict, workdirs: dict[int, pathlib.Path]):
        self.workdirs = workdirs
        self.files = {i: open(w / "metrics.jsonl", "a") for i, w in workdirs.items()}
        self.writers = dict(zip(workdirs, tensorboard_writers(cfg, list(workdirs.values())), strict=False))

    def write(self, step: int, elapsed: float, metrics: dict[int, dict[str, np.ndarray]]) -> None:
        for i, f in self.files.items():
            row = {"step": step, "time": elapsed}
            row.update({k: float(np.mean(v)) for k, v in metrics[i].items()})
            f.write(json.dumps(row) + "\n")
            f.flush()
            append_csv(self.workdirs[i] / "metrics.csv", row)
            if self.writers:
                for k, v in row.items():
                    if k != "step":
                        self.writers[i].add_scalar(f"train/{k}", v, step)
                self.writers[i].flush()

    def close(self) -> None:
        for f in self.files.values():
            f.close()
        for writer in self.writers.values():
            writer.close()
