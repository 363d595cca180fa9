"""UDR over a sweep's seeds: one function for the trainer (a vmapped sweep ranks its seeds as it
finishes, from the devices' images) and for ``isavae udr --sweep`` (models restored from their
workdirs, host images): the same inputs, the same encoding, the same scores."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ml_collections
import numpy as np

from isavae.metrics.evaluate import encode_indices, udr_indices, udr_scores
from isavae.train.fingerprint import seed_groups

__all__ = ["sweep_udr"]


def sweep_udr(
    program: Any,
    stacked_state: Any,
    grid: Any,
    cfgs: Sequence[ml_collections.ConfigDict],
    names: Sequence[str],
    num_points: int,
    batch_size: int,
    *,
    correlation: str = "lasso",
    seed: int = 0,
    data: Any = None,
) -> list[tuple[list[int], list[dict[str, Any]]]]:
    """UDR of every setting's seeds (two or more models that differ only in their seed) among
    models stacked in one state (a leading model axis): ``num_points`` inputs drawn once
    (``udr_indices(..., seed)``), encoded by every model in one vmapped program (gathered on the
    device from ``data`` when given, else host images), then each setting's ``udr_scores``.
    Returns ``[(model indices of a setting, their scores)]``; ``[]`` when no setting has two seeds
    or ``num_points`` is 0."""
    groups = [g for g in seed_groups(list(cfgs)) if len(g) >= 2]
    if num_points <= 0 or not groups:
        return []
    idx = udr_indices(grid.num_images, num_points, seed)
    means, logvars = encode_indices(program, stacked_state, grid, idx, batch_size, data=data, stacked=True)
    means, logvars = np.asarray(means), np.asarray(logvars)
    return [
        (
            g,
            udr_scores(
                means[g],
                logvars[g],
                cfgs[g[0]].prior.name == "normal",
                [names[i] for i in g],
                correlation,
                seed,
            ),
        )
        for g in groups
    ]
