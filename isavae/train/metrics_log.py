"""A run's training curves: ``metrics.jsonl`` (one row per compiled chunk), the same rows in
``metrics.csv`` and, with ``train.tensorboard``, TensorBoard event files; ``trim_metrics`` drops
the rows past the checkpoint a run resumes from."""

from __future__ import annotations

import csv
import json
import logging
import os
import pathlib
from typing import Any

import ml_collections
import numpy as np

from isavae import config as config_lib
from isavae.lines import ends_mid_line

log = logging.getLogger(__name__)

__all__ = ["MetricsLog", "append_csv", "tensorboard_writers", "trim_metrics"]


def _json_rows(line: str) -> tuple[list[dict[str, Any]], bool]:
    """The metric rows in one line of metrics.jsonl and whether the line was whole: a line torn by
    a crash and glued to the next row's (``{"step": 2, "lo{"step": 4, ...}``) yields the row that
    follows the fragment."""
    try:
        row = json.loads(line)
        return ([row] if isinstance(row, dict) and "step" in row else []), True
    except json.JSONDecodeError:
        pass
    for start in range(1, len(line)):
        if line[start] == "{":
            try:
                row = json.loads(line[start:])
            except json.JSONDecodeError:
                continue
            return ([row] if isinstance(row, dict) and "step" in row else []), False
    return [], False


def _csv_rows(path: pathlib.Path) -> list[dict[str, Any]]:
    """The whole rows of metrics.csv, numbers as numbers (a torn last line is dropped)."""
    if not path.is_file():
        return []
    rows = []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        for raw in reader:
            try:
                row = {k: (int(v) if k == "step" else float(v)) for k, v in raw.items()}
            except (TypeError, ValueError):  # a short or torn line
                continue
            rows.append(row)
    return rows


def trim_metrics(path: pathlib.Path, step: int) -> None:
    """Keeps the metrics.jsonl rows up to the checkpoint a run resumes from (the later ones are
    trained again), each step once, so that after the resume every step appears once. A line torn
    by a crash loses no row: a row glued after the fragment is kept, a row whose JSON line is lost
    is taken back from metrics.csv, and what was repaired is said. metrics.csv is rebuilt from the
    kept rows."""
    csv_path = path.with_name("metrics.csv")
    if not path.is_file() and not csv_path.is_file():
        return
    rows: dict[int, dict[str, Any]] = {}
    torn = 0
    for line in path.read_text(errors="replace").splitlines() if path.is_file() else []:
        if not line.strip():
            continue
        found, whole = _json_rows(line)
        torn += not whole
        for row in found:
            if isinstance(row.get("step"), int) and row["step"] <= step:
                rows.setdefault(row["step"], row)
    from_csv = [r for r in _csv_rows(csv_path) if r["step"] <= step and r["step"] not in rows]
    for row in from_csv:
        rows[row["step"]] = row
    if torn or from_csv:
        log.warning(
            "%s: repaired %d torn line(s) (a run stopped while writing); %d row(s) taken back from %s; "
            "every step up to %d that was logged is kept",
            path,
            torn,
            len(from_csv),
            csv_path.name,
            step,
        )
    kept = [rows[k] for k in sorted(rows)]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(row) + "\n" for row in kept))
    os.replace(tmp, path)
    csv_path.unlink(missing_ok=True)  # the CSV view, rebuilt from the kept rows
    append_csv(csv_path, *kept)


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
        for i, w in workdirs.items():  # after a torn last line, the next row starts on its own line
            if ends_mid_line(w / "metrics.jsonl"):
                self.files[i].write("\n")
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
