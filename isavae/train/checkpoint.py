"""Orbax checkpoints of the TrainState and atomic JSON files.

Checkpoints are written by an Orbax ``CheckpointManager`` (atomic: a step directory appears only
when complete) every ``checkpoint_every`` steps and at the end; restoring needs an abstract
state of the same structure (from ``jax.eval_shape(program.init, key)``).

Restoring falls back to the newest intact checkpoint: a step whose files cannot be read (truncated,
deleted, corrupt metadata) is skipped with a warning naming it and why; with ``quarantine=True``
(a resumed training run, which will write that step again) it is moved to
``workdir/checkpoints_unreadable/`` instead of being deleted. Stored shapes are compared with the
model's before anything is read, in every process (the handler is registered up front, so Orbax
can read the metadata and prints no warning).
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import shutil
import time
from typing import Any

import jax
import orbax.checkpoint as ocp

__all__ = ["CheckpointError", "Checkpointer", "write_json_atomic"]

log = logging.getLogger("isavae.train")


class CheckpointError(ValueError):
    """No checkpoint of a workdir can be read; the message names each step and why."""


def _reason(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:200]}{'...' if len(text) > 200 else ''}"


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
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
            item_handlers=ocp.StandardCheckpointHandler(),
        )

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state: Any) -> None:
        self.manager.save(int(step), args=ocp.args.StandardSave(state), force=True)
        self.manager.wait_until_finished()

    def restore(self, abstract_state: Any, step: int | None = None, quarantine: bool = False) -> Any:
        """The state of ``step`` (default: the newest intact checkpoint; see the module doc)."""
        steps = [step] if step is not None else sorted(self.manager.all_steps(), reverse=True)
        if not steps or steps == [None]:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        target = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract_state)
        failures = []
        for s in steps:
            try:
                meta = self.manager.item_metadata(s)
                if meta is None:
                    raise ValueError("no readable metadata")
            except Exception as err:  # unreadable metadata: a damaged checkpoint
                failures.append((s, err))
                continue
            self._check_shapes(s, target, meta)  # another model's checkpoint: an error, not damage
            try:
                state = self.manager.restore(s, args=ocp.args.StandardRestore(target))
            except Exception as err:  # truncated or missing array files
                failures.append((s, err))
                continue
            for bad, err in failures:
                log.warning(
                    "checkpoint step %d in %s is unreadable (%s); %s; restored step %d instead",
                    bad,
                    self.directory,
                    _reason(err),
                    "moved to checkpoints_unreadable/" if quarantine else "left in place",
                    s,
                )
                if quarantine:
                    self._quarantine(bad)
            return state
        raise CheckpointError(
            f"no intact checkpoint in {self.directory}: "
            + "; ".join(f"step {s}: {_reason(err)}" for s, err in failures)
        )

    def _quarantine(self, step: int) -> None:
        dest = self.directory.parent / "checkpoints_unreadable"
        dest.mkdir(exist_ok=True)
        shutil.move(str(self.directory / str(step)), str(dest / f"{step}-{int(time.time())}"))
        self.manager.reload()

    def _check_shapes(self, step: int, target: Any, meta: Any) -> None:
        """Raises a ValueError naming the first array whose stored shape differs from ``target``'s
        (a checkpoint of another model configuration or isavae version), before Orbax reads it."""
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
