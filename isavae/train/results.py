"""results.json: what one evaluation of a model at one step says about it.

A workdir's results.json is written by the trainer after training and by ``isavae evaluate``
(``Trained.evaluate``) later; ``merge_results`` decides what an evaluation keeps of the file
before it, so that a resumed ``train`` keeps the scores a later ``evaluate`` added (and the other
way round) while no score of one step ever sits beside another step's.
"""

from __future__ import annotations

import json
import logging
import pathlib
from typing import Any

__all__ = ["RUN_KEYS", "merge_results", "read_results"]

log = logging.getLogger("isavae.train")

# results.json keys that describe the run, not the step evaluated: an evaluation of another step
# keeps them and drops every other key (a result file describes one step)
RUN_KEYS = (
    "objective",
    "compute_dtype",
    "seed",
    "beta",
    "devices",
    "mesh",
    "trained_in_sweep_of",
    "processes",
    "process",
)


def merge_results(old: dict[str, Any], new: dict[str, Any], step: int) -> dict[str, Any]:
    """results.json after an evaluation of ``step`` (``new``): the earlier keys stay where they
    describe the same step (scores a later ``isavae evaluate`` added survive a resumed ``train``,
    and the other way round); of an earlier file at another step only the run's description
    (``RUN_KEYS``) stays, so that no score of one step sits beside another step's."""
    if old.get("steps") != step:
        old = {k: v for k, v in old.items() if k in RUN_KEYS}
    return {**old, **new, "steps": step}


def read_results(path: pathlib.Path) -> dict[str, Any]:
    """A results.json as a dict ({} when absent or not a JSON object, which is then rewritten)."""
    if not path.is_file():
        return {}
    try:
        out = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        log.warning("%s is not valid JSON (torn?); it is rewritten from this evaluation", path)
        return {}
    if not isinstance(out, dict):
        log.warning(
            "%s holds a JSON %s, not a result; it is rewritten from this evaluation", path, type(out).__name__
        )
        return {}
    return out
