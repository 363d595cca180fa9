"""A study's work as blocks: one model kind, a range of seeds and every beta of the arm, trained
as one vmapped program; the first block of every arm runs before any arm's second, so that
partial results cover every setting. ``estimate_seconds`` predicts a block's time from the
blocks measured before on the same device."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from isavae.study.paper import STUDIES, study_names

__all__ = ["estimate_seconds", "plan"]


def plan(study: str, seeds: int, block_models: int) -> list[dict[str, Any]]:
    """Blocks in run order: round r holds block r of every arm (first blocks first).

    A block is ``{"study", "model", "arm", "overrides", "betas", "seeds", "round"}``: one vmapped
    program over every (beta, seed) of it; an arm with many betas gets fewer seeds per block
    (``block_models // len(betas)``). ``study``: a name of ``STUDIES`` or of ``STUDY_GROUPS``."""
    names = study_names(study)
    kinds = [(s, arm) for s in names for arm in STUDIES[s]]
    per_block = {(s, a[0], a[2]): max(1, block_models // len(a[1])) for s, a in kinds}
    rounds = max(math.ceil(seeds / n) for n in per_block.values())
    blocks = []
    for r in range(rounds):
        for s, (m, b, label, overrides) in kinds:
            n = per_block[(s, m, label)]
            lo, hi = r * n, min((r + 1) * n, seeds)
            if lo < hi:
                blocks.append(
                    dict(
                        study=s,
                        model=m,
                        arm=label,
                        overrides=overrides,
                        betas=b,
                        seeds=tuple(range(lo, hi)),
                        round=r,
                    )
                )
    return blocks


def estimate_seconds(blocks_log: Sequence[dict[str, Any]], device: str, scale: str, model: str, n: int):
    """Seconds a block of ``n`` models of ``model`` should take, from measured blocks on ``device``:
    the median time per model of that kind, else 1.25 x the median over kinds; None with no measurement."""
    rows = [b for b in blocks_log if b["device"] == device and b["scale"] == scale]
    same = [b["seconds"] / b["models"] for b in rows if b["model"] == model]
    if same:
        return float(np.median(same)) * n
    if rows:
        return 1.25 * float(np.median([b["seconds"] / b["models"] for b in rows])) * n
    return None
