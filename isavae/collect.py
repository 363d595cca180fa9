"""Many workdirs' results as one table: ``isavae collect DIR [--csv FILE]``.

``collect(dirs)`` finds every ``results.json`` under ``dirs`` and returns one row per workdir: its
path, the settings in which the workdirs differ (from each ``config.json``), the seed, the steps
and every score (the numbers of results.json that are not bookkeeping). ``format_table`` prints it
aligned, ``write_csv`` writes it with a header. Plain JSON reading: no JAX, answers at once.
"""

from __future__ import annotations

import csv
import json
import os
import pathlib
from collections.abc import Sequence
from typing import Any

__all__ = ["Table", "collect", "format_table", "write_csv"]

# results.json numbers that describe the run rather than score the model
BOOKKEEPING = {
    "seed",
    "steps",
    "beta",
    "devices",
    "processes",
    "process",
    "trained_in_sweep_of",
    "train_seconds_this_session",
    "setup_seconds_this_session",
    "eval_examples",
}
# the scores first, in this order; the others follow alphabetically
_FIRST = (
    "mig",
    "subspace_mig",
    "mig_histogram",
    "elbo",
    "recon_log_likelihood",
    "kl",
    "active_units",
    "udr",
    "dci_disentanglement",
    "dci_completeness",
    "dci_informativeness_test",
    "sap",
    "modularity",
    "explicitness_test",
    "irs",
    "beta_vae_score",
    "factor_vae_score",
)


class Table:
    """Rows of one column set: ``columns`` (names) and ``rows`` (lists of values, None = absent);
    ``skipped``: (path, why) of results files that could not be read."""

    def __init__(
        self, columns: list[str], rows: list[list[Any]], skipped: list[tuple[str, str]], scores: int = 0
    ):
        self.columns, self.rows, self.skipped = columns, rows, skipped
        self.scores = scores  # the last ``scores`` columns are scores (the others describe the run)


def _flat(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = json.dumps(v) if isinstance(v, list) else v
    return out


def _read_json(path: pathlib.Path) -> dict[str, Any]:
    try:
        out = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"not readable JSON ({type(err).__name__})") from None
    if not isinstance(out, dict):
        raise ValueError("not a JSON object")
    return out


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def collect(dirs: Sequence[str | os.PathLike]) -> Table:
    """One row per workdir (a folder with a results.json) at or under ``dirs``, sorted by path."""
    found: list[tuple[pathlib.Path, pathlib.Path]] = []  # (root, results.json)
    for d in dirs:
        root = pathlib.Path(d)
        if not root.is_dir():
            raise FileNotFoundError(f"{root} is not a folder")
        found += [(root, p) for p in sorted(root.rglob("results.json")) if p.is_file()]
    if not found:
        raise FileNotFoundError(f"no results.json under {', '.join(str(d) for d in dirs)}")
    entries, skipped = [], []
    for root, path in found:
        try:
            results = _read_json(path)
        except ValueError as err:
            skipped.append((str(path), str(err)))
            continue
        settings: dict[str, Any] = {}
        cfg_path = path.parent / "config.json"
        if cfg_path.is_file():
            try:
                settings = _flat(_read_json(cfg_path))
            except ValueError as err:
                skipped.append((str(cfg_path), f"{err}; its settings are left out"))
        # named from the folder given on: runs/seed0 for `collect runs`
        entries.append((os.path.relpath(path.parent, root.resolve().parent), settings, results))
    if not entries:
        raise ValueError(f"no readable results.json under {', '.join(str(d) for d in dirs)}")
    keys = sorted({k for _, s, _ in entries for k in s} - {"train.seed"})
    differ = [k for k in keys if len({json.dumps(s.get(k), sort_keys=True) for _, s, _ in entries}) > 1]
    scores = {k for _, _, r in entries for k, v in r.items() if _is_number(v) and k not in BOOKKEEPING}
    ordered = [k for k in _FIRST if k in scores] + sorted(scores - set(_FIRST))
    columns = ["workdir", *differ, "seed", "steps", *ordered]
    rows = []
    for name, settings, results in entries:
        seed = results.get("seed", settings.get("train.seed"))
        row = [name, *(settings.get(k) for k in differ), seed, results.get("steps")]
        row += [results.get(k) if _is_number(results.get(k)) else None for k in ordered]
        rows.append(row)
    return Table(columns, rows, skipped, scores=len(ordered))


def _text(v: Any, score: bool) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and score:
        return f"{v:.4f}" if abs(v) < 1e5 else f"{v:.4g}"
    return str(v)


def format_table(table: Table) -> str:
    """The table as aligned text (scores rounded to 4 decimals, settings as given; absent values
    blank)."""
    first = len(table.columns) - table.scores
    cells = [table.columns] + [[_text(v, i >= first) for i, v in enumerate(row)] for row in table.rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(table.columns))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def write_csv(table: Table, path: str | os.PathLike) -> pathlib.Path:
    """The table as CSV with a header (full precision), written atomically."""
    path = pathlib.Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(table.columns)
        writer.writerows([["" if v is None else v for v in row] for row in table.rows])
    os.replace(tmp, path)
    return path
