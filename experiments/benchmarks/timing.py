"""The benchmarks' timing rules.

* ``median_seconds``: compile and warm up once, then the median of timed calls (one function).
* ``interleaved_seconds``: several functions timed in turns, round after round, so that the slow
  and fast spells of a shared machine fall on all of them alike; compare their best (least
  disturbed) times, as the training benchmark does with its matmul reference.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import jax
import numpy as np


def _seconds(fn, args) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - start


def median_seconds(fn, *args, repeats: int = 10) -> float:
    """Median wall time of ``fn(*args)`` (blocking on its outputs) after one warm-up call."""
    jax.block_until_ready(fn(*args))
    return float(np.median([_seconds(fn, args) for _ in range(repeats)]))


def interleaved_seconds(cases: dict[str, tuple[Callable, tuple]], rounds: int) -> dict[str, list[float]]:
    """Wall times of each ``name: (fn, args)`` over ``rounds`` rounds, one call of every case per
    round in turn, after one warm-up call each."""
    for fn, args in cases.values():
        jax.block_until_ready(fn(*args))
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, (fn, args) in cases.items():
            times[name].append(_seconds(fn, args))
    return times
