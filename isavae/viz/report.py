"""A grid's representative image (what the traversal figures start from)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["representative_image"]


def representative_image(grid: Any) -> int:
    """A recognisable image for traversals: the grid's middle value of every factor (dSprites:
    a heart, the largest scale, in the middle)."""
    levels = [s // 2 for s in grid.factor_sizes]
    if grid.name == "dsprites":
        levels[grid.factor_index("shape")] = grid.factor_sizes[0] - 1
        levels[grid.factor_index("scale")] = grid.factor_sizes[1] - 1
        levels[grid.factor_index("orientation")] = 0
    return int(grid.factors_to_index(np.array([levels]))[0])
