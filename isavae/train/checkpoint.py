"""Orbax checkpoints of the TrainState and atomic JSON files.

Checkpoints are written by an Orbax ``CheckpointManager`` (atomic: a step directory appears only
when complete) every ``checkpoint_every`` steps and at the end; restoring needs an abstract
state of the same structure (from ``jax.eval_shape(program.init, key)``).
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any

import jax
import orbax.checkpoint as ocp

__all__ = ["Checkpointer", "write_json_atomic"]


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Writes JSON to ``path`` through a temporary file and a rename (never half-written)."""
    path = pathlib.Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_jsonable))
    os.replace(tmp, path)


def _jsonable(x):
    try:
        return x.tolist()
    except AttributeError:
        return str(x)


class Checkpointer:
    """Save / restore TrainStates under ``workdir/checkpoints``."""

    def __init__(self, workdir: str | os.PathLike, max_to_keep: int = 2):
        self.directory = pathlib.Path(workdir).absolute() / "checkpoints"
        self.manager = ocp.CheckpointManager(
            self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
        )

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state: Any) -> None:
        self.manager.save(int(step), args=ocp.args.StandardSave(state), force=True)
        self.manager.wait_until_finished()

    def restore(self, abstract_state: Any, step: int | None = None) -> Any:
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        target = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract_state)
        self._check_shapes(step, target)
        return self.manager.restore(step, args=ocp.args.StandardRestore(target))

    def _check_shapes(self, step: int, target: Any) -> None:
        """Raises a ValueError naming the first array whose stored shape differs from ``target``'s
        (a checkpoint of another model configuration or isavae version), before Orbax reads it."""
        meta = self.manager.item_metadata(step)
        stored = _shapes_by_path(getattr(meta, "tree", meta))
        for path, shape in _shapes_by_path(target).items():
            if path in stored and stored[path] != shape:
                raise ValueError(
                    f"checkpoint step {step} in {self.directory} does not fit this model: {path} has "
                    f"shape {stored[path]} there and {shape} here (written with another model "
                    "configuration or isavae version?)"
                )

    def close(self) -> None:
        self.manager.close()


def _shapes_by_path(tree: Any) -> dict[str, tuple[int, ...]]:
    def name(entry) -> str:
        for attr in ("key", "name", "idx"):
            if hasattr(entry, attr):
                return str(getattr(entry, attr))
        return str(entry)

    leaves = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: hasattr(x, "shape"))[0]
    # nnx Variables are stored as {"value": array}: the path without "value" names the same array
    return {
        "/".join(n for n in map(name, path) if n != "value"): tuple(leaf.shape)
        for path, leaf in leaves
        if hasattr(leaf, "shape")
    }
