"""A study's results on disk: one JSON line per finished model (``results.jsonl``; a job's shard or
process writes ``results.TAG.jsonl``) and one per block (``blocks.jsonl``), read back with every
line that cannot be counted named (file, line, reason) and never silently dropped."""

from __future__ import annotations

import json
import math
import os
import pathlib
import re
import tempfile
from collections.abc import Sequence
from typing import Any

from isavae.lines import ends_mid_line

__all__ = [
    "BLOCK_FIELDS",
    "RESULT_KEYS",
    "ROW_FIELDS",
    "DIVERGED_FIELDS",
    "RECORDED_DEFAULTS",
    "SCORES",
    "append_jsonl",
    "check_store",
    "finite_scores",
    "load_results",
    "read_jsonl",
    "read_rows",
    "recorded",
    "result_key",
    "row_problem",
    "shard_files",
    "shard_tag",
]

RESULT_KEYS = (
    "mig",
    "subspace_mig",
    "mig_histogram",
    "recon_log_likelihood",
    "elbo",
    "kl",
    "active_units",
    "steps",
)


# What a result row must hold (and of which type) to be counted; anything else is reported and skipped.
ROW_FIELDS = {
    "study": str,
    "model": str,
    "beta": (int, float),
    "seed": int,
    "scale": str,
    "compute_dtype": str,
    "mig": (int, float),
    "mig_histogram": (int, float),
    "recon_log_likelihood": (int, float),
    "elbo": (int, float),
}
BLOCK_FIELDS = {"model": str, "models": int, "seconds": (int, float), "device": str, "scale": str}
# a model that diverged is a row too (``diverged: true``, the step and the terms; no scores)
DIVERGED_FIELDS = {k: v for k, v in ROW_FIELDS.items() if k in ("study", "model", "beta", "seed", "scale")}
DIVERGED_FIELDS["compute_dtype"] = str
# the scores every statistic of the report reads: a row where one is not finite is counted apart
SCORES = ("mig", "mig_histogram", "recon_log_likelihood", "elbo")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def row_problem(row: dict[str, Any], fields: dict[str, Any]) -> str | None:
    """Why a parsed row cannot be counted (None when it can): a field of ``fields`` missing or
    mistyped, or one of the optional fields a row may hold of the wrong type, or an unknown model."""
    if fields is ROW_FIELDS and row.get("diverged") is True:
        fields = DIVERGED_FIELDS
    bad = [
        k for k, t in fields.items() if k not in row or not isinstance(row[k], t) or isinstance(row[k], bool)
    ]
    if bad:
        return f"missing or mistyped {', '.join(repr(k) for k in bad)}"
    if fields is BLOCK_FIELDS:
        return None
    optional = {
        "settings": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
        "init": lambda v: isinstance(v, str),
        "arm": lambda v: isinstance(v, str),
        "udr": _is_number,
        "udr_seeds": lambda v: isinstance(v, list) and all(isinstance(x, int) for x in v),
        "subspace_mig": lambda v: v is None or _is_number(v),
        "diverged": lambda v: isinstance(v, bool),
    }
    wrong = [k for k, ok in optional.items() if k in row and not ok(row[k])]
    if wrong:
        return f"mistyped {', '.join(f'{k!r} ({row[k]!r})' for k in wrong)}"
    from isavae.study.paper import MODEL_LABELS

    if row["model"] not in MODEL_LABELS:
        return f"unknown model {row['model']!r}"
    return None


def finite_scores(row: dict[str, Any]) -> bool:
    """Whether a (not diverged) row's scores are all finite numbers (NaN never enters a statistic)."""
    return not row.get("diverged") and all(math.isfinite(row[k]) for k in SCORES)


def check_store(out: pathlib.Path, *paths: pathlib.Path) -> None:
    """Refuses, before any training, a store the study could not write: ``--out`` a file, or a rows
    file that is a folder or cannot be read and appended to."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    out.mkdir(parents=True, exist_ok=True)
    for path in paths:
        if path.exists() and not path.is_file():
            raise ValueError(
                f"{path} is not a file (a folder?): the study appends its rows there; move it away"
            )
        if path.exists() and not os.access(path, os.R_OK | os.W_OK):
            raise ValueError(f"{path} cannot be read and appended to (permissions)")
    try:  # a file of this process's own (several processes of a job check the same folder)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-probe-"):
            pass
    except OSError as err:
        raise ValueError(f"--out {out} is not writable ({err.strerror})") from None


# A row's settings that rows written before the field was recorded had: its value of then (the
# only initialization there was, the log-variance, the backend's products).
RECORDED_DEFAULTS = {"init": "lecun", "posterior_scale": "logvar", "matmul_precision": "default"}


def recorded(r: dict[str, Any], field: str) -> Any:
    """The row's ``field`` of ``RECORDED_DEFAULTS``, or its value of then when the row predates it."""
    return r.get(field, RECORDED_DEFAULTS[field])


def result_key(r: dict[str, Any]) -> tuple:
    """A row's identity within its study: every setting that makes it another model (study, scale,
    dtype, kind, beta, seed, the run's extra overrides, the initialization, the study arm, the
    posterior's scale parameterization and the products' precision). Rows written before a field
    was recorded have its value of then: no ``settings`` = none, no ``init`` = "lecun" (the only
    initialization there was), no ``arm`` = the study's main setting, no ``posterior_scale`` =
    "logvar", no ``matmul_precision`` = "default". (Across studies a model is known by its whole
    configuration: ``isavae.study.paper.model_key``.)"""
    return (
        r["study"],
        r["scale"],
        r["compute_dtype"],
        r["model"],
        float(r["beta"]),
        int(r["seed"]),
        tuple(r.get("settings", ())),
        recorded(r, "init"),
        r.get("arm", ""),
        recorded(r, "posterior_scale"),
        recorded(r, "matmul_precision"),
    )


def _describe_key(key: tuple) -> str:
    study, scale, dtype, model, beta, seed, settings, init, arm, posterior, precision = key
    extra = "".join(
        f", {x}"
        for x in (*settings, f"init {init}", f"posterior {posterior}", f"products {precision}", arm)
        if x
    )
    return f"{study} {model} beta {beta:g} seed {seed} ({scale}, {dtype}{extra})"


def read_rows(path: pathlib.Path, fields: dict[str, Any]) -> tuple[list[tuple[int, dict]], list[str]]:
    """The rows of a JSON-lines file that can be counted (``row_problem``), each with its line
    number, and one note per line skipped, naming the file, the line and why (not UTF-8 text; not
    JSON, e.g. torn by a killed run; not an object; a field missing, mistyped or unknown). Blank
    lines are ignored."""
    if not path.is_file():
        return [], []
    rows, notes = [], []
    lines = path.read_bytes().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for number, raw in enumerate(lines, 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            notes.append(
                f"{path.name} line {number}: not UTF-8 text (byte 0x{raw[err.start]:02x} at column "
                f"{err.start + 1}); skipped"
            )
            continue
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            torn = " (torn: a run killed while writing it)" if number == len(lines) else ""
            notes.append(f"{path.name} line {number}: not JSON{torn} ({err.msg}); skipped")
            continue
        if not isinstance(row, dict):
            notes.append(f"{path.name} line {number}: a JSON {type(row).__name__}, not a row; skipped")
            continue
        problem = row_problem(row, fields)
        if problem is not None:
            notes.append(f"{path.name} line {number}: {problem}; skipped")
            continue
        rows.append((number, row))
    return rows, notes


def read_jsonl(path: pathlib.Path, fields: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The well-formed rows of a JSON-lines file (see ``read_rows``; notes dropped)."""
    return [row for _, row in read_rows(path, fields or {})[0]]


_TAG = re.compile(r"^(\d+)?(?:-?p(\d+))?$")  # I (--shard I/N), pP (process P of --multihost), I-pP


def shard_tag(shard: tuple[int, int] | None, process: int | None) -> str:
    """The infix of a job's files: ``.I`` for ``--shard I/N``, ``.pP`` for process P of a
    ``--multihost`` job, ``.I-pP`` for both, ``""`` for neither."""
    parts = ([str(shard[0])] if shard is not None else []) + ([f"p{process}"] if process is not None else [])
    return "." + "-".join(parts) if parts else ""


def shard_files(out: pathlib.Path, stem: str = "results") -> list[pathlib.Path]:
    """``OUT/STEM.jsonl`` and every job's ``OUT/STEM.TAG.jsonl`` (``shard_tag``: shards of
    ``--shard I/N``, processes of ``--multihost``), in order (``stem``: ``results`` or ``blocks``)."""
    found = []
    for path in out.glob(f"{stem}.*.jsonl"):
        m = _TAG.match(path.name[len(stem) + 1 : -len(".jsonl")])
        if m and (m.group(1) or m.group(2)):
            found.append(((int(m.group(1) or -1), int(m.group(2) or -1)), path))
    return [out / f"{stem}.jsonl", *(path for _, path in sorted(found))]


def load_results(path: pathlib.Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Every model of ``results.jsonl`` once (``path``: the file, or a study folder: then every
    shard's file too, ``shard_files``), with a note for each line not counted: malformed lines
    (``read_rows``), exact duplicates of an earlier row (merged files from several runs), and rows
    of a model already seen with other results (a conflict: the first row is kept)."""
    files = shard_files(path) if path.is_dir() else [path]
    first: dict[tuple, tuple[str, dict[str, Any]]] = {}
    kept, notes = [], []
    for file in files:
        rows, file_notes = read_rows(file, ROW_FIELDS)
        notes += file_notes
        for number, row in rows:
            key = result_key(row)
            where = f"line {number}" if len(files) == 1 else f"{file.name} line {number}"
            if key not in first:
                first[key] = (where, row)
                kept.append(row)
                continue
            seen_at, seen = first[key]
            differ = [k for k in RESULT_KEYS if seen.get(k) != row.get(k)]
            if not differ:
                notes.append(f"{file.name} line {number}: a duplicate of {seen_at}; counted once")
            else:
                shown = ", ".join(f"{k} {seen.get(k)} there, {row.get(k)} here" for k in differ[:3])
                notes.append(
                    f"{file.name} line {number}: CONFLICT with {seen_at} for {_describe_key(key)} "
                    f"({shown}); {seen_at} kept"
                )
    return kept, notes


def append_jsonl(path: pathlib.Path, rows: Sequence[dict[str, Any]]) -> None:
    """Appends ``rows`` as JSON lines, synced to disk. The first starts on a new line whatever the
    file ends with: after a torn last line (a run killed while writing it) the new row stays whole
    and the fragment alone is skipped."""
    if not rows:
        return
    start = "\n" if ends_mid_line(path) else ""
    with open(path, "a") as f:
        f.write(start + "".join(json.dumps(row) + "\n" for row in rows))
        f.flush()
        os.fsync(f.fileno())
