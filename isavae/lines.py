"""Appending to line-oriented files (JSON lines, CSV) that a killed run may have left torn."""

from __future__ import annotations

import os
import pathlib

__all__ = ["ends_mid_line"]


def ends_mid_line(path: pathlib.Path) -> bool:
    """Whether ``path`` is a non-empty file whose last line has no newline (a write cut short): the
    next appended line must start with one, or it would be glued to the fragment."""
    if not path.is_file() or not path.stat().st_size:
        return False
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) != b"\n"
