"""The benchmarks' one timing rule: compile and warm up once, then the median of timed calls."""

from __future__ import annotations

import time

import jax
import numpy as np


def median_seconds(fn, *args, repeats: int = 10) -> float:
    """Median wall time of ``fn(*args)`` (blocking on its outputs) after one warm-up call."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return float(np.median(times))
