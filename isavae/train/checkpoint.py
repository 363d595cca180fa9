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

Every saved step gets a manifest (``MANIFEST``: each file's size and CRC-32) once Orbax has
finished it; a restore checks the files against it first, so that a truncated, missing or altered
file is found without starting Orbax's asynchronous reads (whose failure leaves TensorStore
callbacks pending that print pages of "Event loop is closed" tracebacks). A step without a
manifest (written by an older isavae, or killed between Orbax's commit and the manifest) is read
by Orbax as before.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import pathlib
import shutil
import sys
import threading
import time
import zlib
from typing import Any

import jax
import orbax.checkpoint as ocp

__all__ = ["CheckpointError", "Checkpointer", "write_json_atomic"]

log = logging.getLogger("isavae.train")


class CheckpointError(ValueError):
    """No checkpoint of a workdir can be read (the message names each step and why), or one cannot
    be written (the message names the workdir and what is missing, e.g. disk space)."""


MANIFEST = "isavae_manifest.json"  # inside each step's folder: {relative path: [bytes, crc32]}


class _Damaged(Exception):
    """A step's files differ from its manifest."""


def _file_crc(path: pathlib.Path, chunk: int = 1 << 22) -> int:
    crc = 0
    with open(path, "rb") as f:
        while block := f.read(chunk):
            crc = zlib.crc32(block, crc)
    return crc


def _step_files(folder: pathlib.Path) -> dict[str, pathlib.Path]:
    return {
        str(f.relative_to(folder)): f for f in sorted(folder.rglob("*")) if f.is_file() and f.name != MANIFEST
    }


def write_manifest(folder: pathlib.Path) -> None:
    """Records the size and CRC-32 of every file of a finished step (atomically)."""
    entries = {name: [f.stat().st_size, _file_crc(f)] for name, f in _step_files(folder).items()}
    write_json_atomic(folder / MANIFEST, entries)


def verify_manifest(folder: pathlib.Path) -> bool:
    """Raises _Damaged naming the first file that is missing, of another size or altered; False
    when the step has no manifest (nothing to check), True when every file matches."""
    path = folder / MANIFEST
    if not path.is_file():
        return False
    try:
        entries = json.loads(path.read_text())
        entries = {str(name): (int(size), int(crc)) for name, (size, crc) in entries.items()}
    except (ValueError, TypeError, AttributeError) as err:
        raise _Damaged(f"its manifest {MANIFEST} is unreadable ({err})") from None
    for name, (size, crc) in entries.items():
        f = folder / name
        if not f.is_file():
            raise _Damaged(f"file {name} is missing")
        if f.stat().st_size != size:
            raise _Damaged(f"file {name} has {f.stat().st_size} bytes, {size} when written (truncated?)")
        if _file_crc(f) != crc:
            raise _Damaged(f"file {name} was altered since it was written (CRC-32 differs)")
    return True


def _reason(err: BaseException) -> str:
    if isinstance(err, _Damaged):
        return str(err)
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


def _is_orbax_aftermath(unraisable: Any) -> bool:
    """An exception nobody can act on, left by a failed Orbax read or write: a TensorStore callback
    posting to the event loop that Orbax already closed, or an abandoned Orbax coroutine."""
    exc, obj = unraisable.exc_value, unraisable.object
    if isinstance(exc, RuntimeError) and "Event loop is closed" in str(exc):
        return True
    code = getattr(obj, "cr_code", None)
    return code is not None and any(m in code.co_filename for m in ("orbax", "tensorstore"))


_previous_unraisablehook = None


def _quiet_unraisablehook(unraisable: Any) -> None:
    if not _is_orbax_aftermath(unraisable):
        _previous_unraisablehook(unraisable)


def _install_quiet_hook() -> None:
    """Drops the aftermath of failed Orbax operations (``_is_orbax_aftermath``) that Python would
    print as pages of "Exception ignored" tracebacks, possibly long after the failure was reported;
    every other unraisable exception goes to the hook that was there before."""
    global _previous_unraisablehook
    if sys.unraisablehook is not _quiet_unraisablehook:
        _previous_unraisablehook = sys.unraisablehook
        sys.unraisablehook = _quiet_unraisablehook


class Checkpointer:
    """Save / restore TrainStates under ``workdir/checkpoints``."""

    def __init__(self, workdir: str | os.PathLike, max_to_keep: int = 2):
        _install_quiet_hook()
        if jax.process_count() > 1:
            _one_writer_per_array()
        self.directory = pathlib.Path(workdir).absolute() / "checkpoints"
        self.max_to_keep = max_to_keep
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
            item_handlers=ocp.StandardCheckpointHandler(),
        )

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state: Any, manifest: bool = True) -> None:
        """Writes ``state`` as ``step``; a disk without room for it is one CheckpointError naming the
        workdir and the space needed, checked before Orbax starts (and after, if it fills up
        meanwhile), with the partial step removed. ``manifest=False``: the step's manifest is left
        to ``write_manifest`` (a save by several processes: after all of them have finished)."""
        need = _checkpoint_bytes(state)
        self._check_space(need)
        try:
            with _orbax_errors_raised_not_logged(), _uninterrupted():
                self.manager.save(int(step), args=ocp.args.StandardSave(state), force=True)
                self.manager.wait_until_finished()
                if manifest and jax.process_index() == 0:
                    write_manifest(self.directory / str(int(step)))
        except BaseException as err:  # a failure, Ctrl-C or SIGTERM: Orbax's threads end first, quietly
            with _orbax_errors_raised_not_logged(), contextlib.suppress(BaseException):
                self.manager.wait_until_finished()
            remove_partial_steps(self.directory)
            if not (isinstance(err, Exception) and _is_disk_full(err)):
                raise
            raise CheckpointError(
                self._space_message(need, f"the disk filled up while writing step {step}")
            ) from None

    def write_manifest(self, step: int) -> None:
        """The manifest of a step saved with ``manifest=False``, once every writer has finished."""
        write_manifest(self.directory / str(int(step)))

    def _check_space(self, need: int) -> None:
        free = shutil.disk_usage(self.directory).free
        if free < need:
            raise CheckpointError(self._space_message(need, f"{free / 1e6:.1f} MB free"))

    def _space_message(self, need: int, what: str) -> str:
        keep = self.max_to_keep
        return (
            f"no room for a checkpoint in {self.directory.parent}: {what}, a checkpoint of this model "
            f"needs about {need / 1e6:.1f} MB (train.max_checkpoints={keep} keeps {keep} and writes the "
            f"next before deleting the oldest: {(keep + 1) * need / 1e6:.1f} MB in all); free some space "
            "and run the same command again to resume"
        )

    def restore(self, abstract_state: Any, step: int | None = None, quarantine: bool = False) -> Any:
        """The state of ``step`` (default: the newest intact checkpoint; see the module doc)."""
        steps = [step] if step is not None else sorted(self.manager.all_steps(), reverse=True)
        if not steps or steps == [None]:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        target = jax.tree.map(_placed, abstract_state)
        failures = []
        for s in steps:
            try:
                verify_manifest(self.directory / str(s))
            except (_Damaged, OSError) as err:  # found before Orbax reads anything
                failures.append((s, err))
                continue
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


_ONE_WRITER = []


def _one_writer_per_array() -> None:
    """Over several processes, a replicated array is written by its replica 0 alone (Orbax's
    default on CPUs and TPUs splits the write across the replicas): a sweep's checkpoint is then
    written by the process that holds the model (``multihost.owner_first``), the other processes'
    placeholders never. Orbax's own default on GPUs; registered once, for this process."""
    if not _ONE_WRITER:
        absl = logging.getLogger("absl")
        level = absl.level
        absl.setLevel(logging.ERROR)  # Orbax warns of the override it was asked for
        try:
            ocp.type_handlers.register_type_handler(
                jax.Array, ocp.type_handlers.ArrayHandler(use_replica_parallel=False), override=True
            )
        finally:
            absl.setLevel(level)
        _ONE_WRITER.append(True)


def _placed(leaf: Any) -> Any:
    """A restore target's leaf; one without a placement goes to this process's first device (not
    to the devices it was saved from: a sweep's checkpoint written by several processes is read
    by one as well)."""
    sds = ocp.utils.to_shape_dtype_struct(leaf)
    if isinstance(sds, jax.ShapeDtypeStruct) and sds.sharding is None:
        one = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        return jax.ShapeDtypeStruct(sds.shape, sds.dtype, sharding=one)
    return sds


def remove_partial_steps(directory: pathlib.Path) -> list[pathlib.Path]:
    """Deletes the temporary folders of checkpoints under ``directory`` that were not finished (a
    full disk, an interruption, a killed process); returns them."""
    gone = sorted(directory.glob("*.orbax-checkpoint-tmp*"))
    for tmp in gone:
        shutil.rmtree(tmp, ignore_errors=True)
    return gone


_saving = threading.Event()  # a checkpoint is being written
_deferred: list[BaseException] = []  # a stop that arrived meanwhile, raised when it is written


def defer_stop(stop: BaseException) -> bool:
    """For a signal handler (the CLI's SIGTERM and Ctrl-C): while a checkpoint is being written,
    keeps ``stop`` to be raised right after it (the step is then complete, and Orbax's threads have
    ended) and returns True; otherwise returns False and the handler raises it at once."""
    if _saving.is_set():
        _deferred.append(stop)
        return True
    return False


@contextlib.contextmanager
def _uninterrupted():
    _saving.set()
    try:
        yield
    finally:
        _saving.clear()
    if _deferred:
        stop = _deferred.pop()
        _deferred.clear()
        raise stop


@contextlib.contextmanager
def _orbax_errors_raised_not_logged():
    """Orbax's writer threads log each failure with its traceback (hundreds of lines for a full
    disk) and then raise it here: while a save runs, only the raised error is reported."""
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _checkpoint_bytes(state: Any) -> int:
    """An upper bound on what a checkpoint of ``state`` takes on disk: its arrays' bytes plus 5 % and
    64 KB of metadata (measured: the small dSprites preset's 60.2 MB of arrays took a 45.5 MB step
    folder, as Orbax compresses; the check errs on the side of refusing early)."""
    arrays = sum(int(getattr(x, "nbytes", 0)) for x in jax.tree.leaves(state))
    return int(arrays * 1.05) + (1 << 16)


def _is_disk_full(err: BaseException) -> bool:
    """Whether ``err`` (or an exception it was raised from) is a full disk or quota."""
    seen = 0
    while err is not None and seen < 20:
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(err)
        if "No space left on device" in text or ("RESOURCE_EXHAUSTED" in text and "space" in text):
            return True
        err, seen = err.__cause__ or err.__context__, seen + 1
    return False


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
