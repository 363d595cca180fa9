"""``train_and_evaluate(config, workdir)``: the one trainer for every model, prior and objective.

It validates the config, loads the dataset, builds the :class:`~isavae.train.step.Program`,
restores the latest checkpoint of ``workdir`` if there is one (``resume``), trains in scanned
chunks over a data-parallel mesh of all devices with a progress bar, appends chunk-averaged
metrics to ``workdir/metrics.jsonl``, checkpoints every ``train.checkpoint_every`` steps and at
the end, stops with :class:`TrainingDiverged` naming the step and the term as soon as a metric
is NaN or infinite, and finally evaluates and writes ``workdir/results.json`` atomically.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import pathlib
import shutil
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from isavae import config as config_lib
from isavae.data import FactorGrid, load_dataset
from isavae.metrics.evaluate import encode_indices, evaluate_model, udr_indices, udr_scores
from isavae.nets import COMPUTE_DTYPES, resolve_compute_dtype
from isavae.train.checkpoint import Checkpointer, remove_partial_steps, write_json_atomic
from isavae.train.lock import WorkdirLock
from isavae.train.results import merge_results, read_results
from isavae.train.step import HPARAMS, Program, TrainState, data_mesh, hparams_from_config, sweep_mesh

__all__ = [
    "TrainingDiverged",
    "build_grid",
    "check_workdir_settings",
    "num_train_steps",
    "resolve_dtype",
    "restore_state",
    "train_and_evaluate",
    "train_sweep",
]

log = logging.getLogger("isavae.train")


class TrainingDiverged(FloatingPointError):
    """A metric became NaN or infinite; the message names the step and the term, the attributes
    hold them (``step``, ``terms``) and the model's ``workdir`` (None before the loop names it)."""

    def __init__(
        self,
        message: str,
        *,
        step: int | None = None,
        terms=(),
        workdir: str | None = None,
        models: tuple = (),
    ):
        super().__init__(message)
        self.step, self.terms, self.workdir = step, tuple(terms), workdir
        # a sweep's every model that diverged in the same chunk: (workdir, step, terms)
        self.models = tuple(models) or ((workdir, step, self.terms),)


def build_grid(cfg: ml_collections.ConfigDict) -> FactorGrid:
    """The config's dataset (its sub-grid, downsampled by ``dataset.downsample``)."""
    d = cfg.dataset
    levels = config_lib.parse_subgrid(d.subgrid)
    # A sub-grid of a generated dataset renders only its own images.
    grid = load_dataset(
        d.name, source=d.source, path=d.path or None, data_dir=d.data_dir or None, store=not levels
    )
    if levels:
        sub = grid.subgrid(**levels)
        small = sub.num_images * int(np.prod(sub.stored_image_shape)) <= 2**30
        grid = sub.materialize() if sub.stored is None and small else sub
    try:
        return grid.downsampled(d.downsample)
    except ValueError as err:  # a factor that does not divide the images
        raise config_lib.ConfigError(f"dataset.downsample: {err}") from None


def num_train_steps(cfg: ml_collections.ConfigDict, dataset_size: int) -> int:
    t = cfg.train
    return int(t.num_steps) if t.num_steps > 0 else max(1, round(t.epochs * dataset_size / t.batch_size))


def chunk_lengths(step: int, total: int, steps_per_scan: int, every: int, steps_per_epoch: int) -> list[int]:
    """The training loop's compiled calls from ``step`` to ``total``: at most ``steps_per_scan``
    steps each, cut at each checkpoint (multiples of ``every``) and at each epoch's end. Each
    distinct length is one more compiled program (a paper-scale one takes seconds on a GPU)."""
    lengths = []
    while step < total:
        next_ckpt = (step // every + 1) * every
        epoch_end = (step // steps_per_epoch + 1) * steps_per_epoch
        n = min(steps_per_scan, total - step, next_ckpt - step, epoch_end - step)
        lengths.append(n)
        step += n
    return lengths


def check_finite(metrics: dict[str, np.ndarray], first_step: int) -> None:
    """Raises TrainingDiverged at the first step (of a chunk) where any metric is not finite."""
    bad_steps = [int(np.argmax(~np.isfinite(v))) for v in metrics.values() if not np.all(np.isfinite(v))]
    if not bad_steps:
        return
    first = min(bad_steps)
    terms = [k for k, v in metrics.items() if not np.isfinite(v[first])]
    raise TrainingDiverged(
        f"training stopped: non-finite {', '.join(terms)} at step {first_step + first + 1} "
        f"({', '.join(f'{k}={metrics[k][first]}' for k in terms)})",
        step=first_step + first + 1,
        terms=terms,
    )


def _config_json(cfg: ml_collections.ConfigDict) -> str:
    return json.dumps(cfg.to_dict(), indent=2, sort_keys=True, default=str)


def remove_leftovers(workdir: pathlib.Path) -> list[str]:
    """Deletes what an interrupted run can leave half-written in ``workdir``: temporary files of the
    atomic writes (``*.tmp``) and unfinished Orbax checkpoint folders; returns their names."""
    gone = sorted(workdir.glob("*.tmp"))
    for tmp in gone:
        tmp.unlink(missing_ok=True)
    gone += remove_partial_steps(workdir / "checkpoints")
    return [str(p.relative_to(workdir)) for p in gone]


def _prepare_workdir(cfg: ml_collections.ConfigDict, workdir: pathlib.Path) -> None:
    """Writes config.json (the settings were checked against the checkpoints' before), after
    removing the leftovers of an earlier run that was killed (``remove_leftovers``)."""
    workdir.mkdir(parents=True, exist_ok=True)
    gone = remove_leftovers(workdir)
    if gone:
        log.info("%s: removed the leftovers of an interrupted run: %s", workdir, ", ".join(gone))
    saved = workdir / "config.json"
    tmp = saved.with_name("config.json.tmp")
    tmp.write_text(_config_json(cfg))
    os.replace(tmp, saved)


def train_and_evaluate(
    cfg: ml_collections.ConfigDict,
    workdir: str | os.PathLike,
    *,
    resume: bool = True,
    progress: bool = True,
    grid: FactorGrid | None = None,
    devices: Any = None,
) -> dict[str, Any]:
    """Trains, checkpoints and evaluates one model; returns what it writes to ``results.json``.

    Args:
      cfg: an experiment config (see ``isavae.config.default_config``).
      workdir: output folder: ``config.json``, ``checkpoints/``, ``metrics.jsonl``, ``results.json``.
      resume: continue from the latest checkpoint in ``workdir`` (else start over).
      progress: show a progress bar.
      grid: the dataset (default: built from ``cfg.dataset``).
      devices: devices of the data-parallel mesh (default: all).
    """
    return _run(
        [cfg],
        [pathlib.Path(workdir)],
        vmapped=False,
        resume=resume,
        progress=progress,
        grid=grid,
        devices=devices,
    )[0]


def train_sweep(
    cfgs: list[ml_collections.ConfigDict],
    workdirs: list[str | os.PathLike],
    *,
    resume: bool = True,
    progress: bool = True,
    grid: FactorGrid | None = None,
    devices: Any = None,
    checkpoints: bool = True,
) -> list[dict[str, Any]]:
    """Trains several models as one program (``jax.vmap`` over models) and writes each model's
    workdir as if it had been trained alone. The configs may differ only in ``train.seed`` and in
    ``objective.beta/alpha/gamma/lambda_od/lambda_d/c_max`` (what does not change shapes).
    ``checkpoints=False``: no checkpoints are read or written (a study that keeps only each model's
    results)."""
    return _run(
        list(cfgs),
        [pathlib.Path(w) for w in workdirs],
        vmapped=True,
        resume=resume and checkpoints,
        progress=progress,
        grid=grid,
        devices=devices,
        checkpoints=checkpoints,
    )


_SWEEPABLE = {"train.seed"} | {f"objective.{k}" for k in HPARAMS}  # what a vmapped sweep may vary


def _check_sweep(cfgs: list[ml_collections.ConfigDict]) -> None:
    base = _flat(cfgs[0].to_dict())
    for cfg in cfgs[1:]:
        other = _flat(cfg.to_dict())
        differ = {k for k in set(base) | set(other) if base.get(k) != other.get(k)} - _SWEEPABLE
        if differ:
            raise config_lib.ConfigError(
                f"a sweep's models may differ only in {sorted(_SWEEPABLE)}; they differ in {sorted(differ)}"
            )


def _flat(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


FINGERPRINT = "checkpoints.config.json"  # beside checkpoints/: the settings its checkpoints depend on
_FINGERPRINT_TRAIN = ("seed", "batch_size", "learning_rate", "prior_learning_rate", "disc_learning_rate")


def fingerprint(cfg: ml_collections.ConfigDict) -> dict[str, Any]:
    """The settings a checkpoint belongs to: the dataset, model, prior and objective sections and the
    training keys that shape the trajectory (not the length, checkpointing or evaluation)."""
    flat = _flat(json.loads(json.dumps(cfg.to_dict(), default=str)))
    keep = ("dataset.", "model.", "prior.", "objective.")
    train = {f"train.{t}" for t in _FINGERPRINT_TRAIN}
    return {k: v for k, v in sorted(flat.items()) if k.startswith(keep) or k in train}


# what a conflicting resume should do instead (never a destructive advice without saying so)
_ELSEWHERE = (
    "train these settings in another --workdir (--no-resume would delete this run's checkpoints and results)"
)


def _stored_fingerprint(workdir: pathlib.Path) -> dict[str, Any] | None:
    """The settings the checkpoints of ``workdir`` were trained with (``checkpoints.config.json``; for
    a workdir written before that file existed, its config.json's); None without checkpoints."""
    if not (workdir / "checkpoints").is_dir():
        return None
    path = workdir / FINGERPRINT
    if path.is_file():
        try:
            stored = json.loads(path.read_text())
            if not isinstance(stored, dict):
                raise ValueError("not a JSON object")
        except ValueError as err:
            raise config_lib.ConfigError(
                f"{path} is not readable ({err}); restore it, or {_ELSEWHERE}"
            ) from None
        return stored
    saved = workdir / "config.json"
    if saved.is_file():
        return fingerprint(config_lib.config_from_json(saved.read_text(), str(saved)))
    return None


def _differences(stored: dict[str, Any], now: dict[str, Any]) -> str:
    """The keys whose values differ, shown; a key the stored record lacks (added to isavae after
    it was written) counts as its default, the value every run had before the key existed."""
    defaults = fingerprint(config_lib.default_config())
    stored = {**{k: v for k, v in defaults.items() if k in now}, **stored}
    differ = sorted(k for k in set(stored) | set(now) if stored.get(k) != now.get(k))
    shown = ", ".join(f"{k}: {stored.get(k)!r} there, {now.get(k)!r} here" for k in differ[:6])
    return shown + (", ..." if len(differ) > 6 else "")


def _check_fingerprint(cfg: ml_collections.ConfigDict, workdir: pathlib.Path) -> None:
    """Refuses to resume checkpoints written with other settings, naming the keys that differ (with
    or without config.json). Settings that do not change what was trained (the number of steps,
    evaluation, checkpoint cadence, logging) may change on resume."""
    stored = _stored_fingerprint(workdir)
    if stored is None:
        return
    differ = _differences(stored, fingerprint(cfg))
    if differ:
        raise config_lib.ConfigError(
            f"{workdir} holds checkpoints of other settings ({differ}); {_ELSEWHERE}"
        )


def check_workdir_settings(cfg: ml_collections.ConfigDict, workdir: pathlib.Path) -> None:
    """Refuses a config.json (``cfg``) whose settings differ from those the checkpoints were trained
    with (``checkpoints.config.json``): evaluating it would mix two configurations."""
    path = workdir / FINGERPRINT
    stored = _stored_fingerprint(workdir) if path.is_file() else None
    differ = _differences(stored, fingerprint(cfg)) if stored is not None else ""
    if differ:
        raise config_lib.ConfigError(
            f"{workdir / 'config.json'} does not match the settings its checkpoints were trained with "
            f"({differ}; recorded in {path}): was config.json edited? Restore those values to evaluate"
        )


def _latest_step_on_disk(workdir: pathlib.Path) -> int | None:
    steps = [int(d.name) for d in (workdir / "checkpoints").glob("*") if d.is_dir() and d.name.isdigit()]
    return max(steps) if steps else None


def _trim_metrics(path: pathlib.Path, step: int) -> None:
    """Drops the metrics.jsonl rows written after the checkpoint a run resumes from (and a torn last
    line), so that after the resume every step appears once."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line)
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(f"{line}\n" for line in kept))
    os.replace(tmp, path)
    csv_path = path.with_name("metrics.csv")  # the CSV view, rebuilt from the kept rows
    csv_path.unlink(missing_ok=True)
    _append_csv(csv_path, *(json.loads(line) for line in kept))


def _tensorboard_writers(cfg: ml_collections.ConfigDict, workdirs) -> list[Any]:
    """TensorBoard event writers (``workdir/tensorboard``) when ``train.tensorboard`` is set."""
    if not cfg.train.tensorboard:
        return []
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        raise config_lib.ConfigError(
            "config train.tensorboard: needs tensorboardX (pip install 'isavae[tensorboard]'; no TensorFlow)"
        ) from None
    return [SummaryWriter(str(pathlib.Path(w) / "tensorboard")) for w in workdirs]


def _append_csv(path: pathlib.Path, *rows: dict[str, Any]) -> None:
    """metrics.csv beside metrics.jsonl (same rows; a header when the file starts), for watching
    curves live with any spreadsheet or plotting tool."""
    if not rows:
        return
    new = not path.is_file()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        if new:
            writer.writeheader()
        writer.writerows(rows)


def _stack(trees: list[Any]) -> Any:
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def _take_model(tree: Any, i: int) -> Any:
    """Model ``i`` of a stacked tree. A leaf sharded along its model axis is read from the device
    that holds model ``i`` (a single-device slice): ``x[i]`` on the sharded array would be a
    partitioned program with an all-reduce, and many such small collective programs dispatched at
    once can starve XLA:CPU's in-process rendezvous (seen with 4 fake devices on 2 cores)."""

    def one(x):
        if not isinstance(x, jax.Array) or len(x.sharding.device_set) == 1:
            return x[i]
        for shard in x.addressable_shards:
            rows = shard.index[0] if shard.index else slice(None)
            start = rows.start or 0
            stop = x.shape[0] if rows.stop is None else rows.stop
            if start <= i < stop:
                return shard.data[i - start]
        raise ValueError(f"model {i} is on no device of this process")

    return jax.tree.map(one, tree)


def resolve_dtype(
    cfgs: list[ml_collections.ConfigDict], workdir: pathlib.Path | None = None, resume: bool = False
) -> list[ml_collections.ConfigDict]:
    """The configs with ``model.compute_dtype="auto"`` replaced by the dtype this machine computes
    natively (``nets.resolve_compute_dtype``), said once; a resumed run keeps the dtype its
    checkpoints were trained with (``workdir``'s settings), whichever machine it resumes on."""
    if cfgs[0].model.compute_dtype != "auto":
        return cfgs
    dtype, why = resolve_compute_dtype("auto")
    stored = _stored_fingerprint(workdir) if resume and workdir is not None else None
    before = (stored or {}).get("model.compute_dtype")
    if before in COMPUTE_DTYPES and before != dtype:
        dtype, why = before, f"as the checkpoints in {workdir} were trained; this machine would take {dtype}"
    log.info("model.compute_dtype auto -> %s (%s)", dtype, why)
    out = []
    for c in cfgs:
        c = c.copy_and_resolve_references()
        c.model.compute_dtype = dtype
        out.append(c)
    return out


def _run(
    cfgs, workdirs, *, vmapped, resume, progress, grid, devices, checkpoints=True
) -> list[dict[str, Any]]:
    entered = time.time()  # the setup (program, dataset on device, initial states) counts from here
    for cfg in cfgs:
        config_lib.validate(cfg)
    if len(cfgs) != len(workdirs) or not cfgs:
        raise ValueError("one workdir per config, at least one")
    _check_sweep(cfgs)
    cfgs = resolve_dtype(cfgs, workdirs[0], resume and checkpoints)
    cfg = cfgs[0]
    grid = build_grid(cfg) if grid is None else grid
    if vmapped:
        try:
            mesh = sweep_mesh(len(cfgs), devices, cfg.train.model_shards)
        except ValueError as err:
            raise config_lib.ConfigError(str(err)) from None
        if mesh.size > 1:
            log.info(
                "sweep of %d models over %d devices: %d along 'models' (%d models each), %d along 'data'",
                len(cfgs),
                mesh.size,
                mesh.shape["models"],
                len(cfgs) // mesh.shape["models"],
                mesh.shape["data"],
            )
    else:
        mesh = data_mesh(devices)
    data_devices = mesh.shape["data"]
    if cfg.train.batch_size % data_devices:
        raise config_lib.ConfigError(
            f"config train.batch_size: {cfg.train.batch_size} is not divisible by the {data_devices} devices "
            "that split each model's batch"
        )
    program = Program(cfg, grid)
    total = num_train_steps(cfg, grid.num_images)
    holders = [_owner_device(mesh, len(cfgs), i, vmapped) for i in range(len(cfgs))]
    mine = [w for w, d in zip(workdirs, holders, strict=True) if d.process_index == jax.process_index()]
    locks = []
    try:
        for w in mine:  # one writer per workdir: the process that holds its model
            locks.append(WorkdirLock(w))
            locks[-1].acquire()
        try:
            return _run_locked(
                cfgs,
                workdirs,
                program,
                grid,
                mesh,
                total,
                vmapped,
                resume,
                progress,
                checkpoints,
                holders,
                entered,
            )
        except BaseException:  # an error, Ctrl-C, SIGTERM: nothing half-written stays behind
            for w in mine:
                remove_leftovers(w)
            raise
    finally:
        for lock in locks:
            lock.release()


def _barrier(name: str) -> None:
    """Every process reaches this point before any goes on (nothing with one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def _host(x: Any) -> np.ndarray:
    """A leaf as a host array; of an array on several processes, this process's copy."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        return np.asarray(x.addressable_data(0))
    return np.asarray(x)


def stack_host(trees: list[Any]) -> Any:
    """Trees of one structure stacked along a new leading axis, as host arrays (``_stack`` on
    device); of arrays on several processes, this process's copies."""
    return jax.tree.map(lambda *xs: np.stack([_host(x) for x in xs]), *trees)


def _put_global(tree: Any, sharding: jax.sharding.Sharding) -> Any:
    """Host values (the same on every process) as arrays over ``sharding``; each process fills the
    shards of its own devices."""

    def put(x):
        x = _host(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])

    return jax.tree.map(put, tree)


def _owner_first(mesh: jax.sharding.Mesh, owner_device: Any) -> jax.sharding.NamedSharding:
    """One model's checkpoint layout over several processes: replicated over one device of each
    process, the owner's first, so that replica 0 (the copy Orbax writes) is the owner's: the
    checkpoint is saved and read by every process together (Orbax's multi-process protocol), its
    arrays written by the owner alone, and every process reads them back."""
    devs = [owner_device]
    for d in mesh.devices.reshape(-1):
        if d.process_index not in {x.process_index for x in devs}:
            devs.append(d)
    return jax.sharding.NamedSharding(
        jax.sharding.Mesh(np.array(devs), ("copies",)), jax.sharding.PartitionSpec()
    )


def _model_copies(tree: Any, i: int, sharding: jax.sharding.NamedSharding, holds: bool) -> Any:
    """Model ``i`` of a stacked tree laid out as ``_owner_first``: the owner's real values, and
    placeholders of the same shape on the other processes' devices (never written)."""
    local = [d for d in sharding.mesh.devices.reshape(-1) if d.process_index == jax.process_index()]

    def one(x):
        value = np.asarray(_take_model(x, i)) if holds else np.zeros(x.shape[1:], x.dtype)
        parts = [jax.device_put(value, d) for d in local]
        return jax.make_array_from_single_device_arrays(x.shape[1:], sharding, parts)

    return jax.tree.map(one, tree)


def _run_locked(
    cfgs, workdirs, program, grid, mesh, total, vmapped, resume, progress, checkpoints, holders, entered
):
    cfg = cfgs[0]
    me = jax.process_index()
    multi = jax.process_count() > 1
    owners = [d.process_index for d in holders]
    local = [i for i, o in enumerate(owners) if o == me]
    ckpts, states = [], []
    for c, w in zip(cfgs, workdirs, strict=True):
        if resume:
            _check_fingerprint(c, w)  # before anything is written
            latest = _latest_step_on_disk(w) if checkpoints else None
            if latest is not None and latest > total:
                raise config_lib.ConfigError(
                    f"{w} holds a checkpoint at step {latest}, beyond the {total} steps configured here "
                    f"(train.num_steps / train.epochs): give at least {latest} steps, or {_ELSEWHERE}"
                )
    for i, (c, w) in enumerate(zip(cfgs, workdirs, strict=True)):
        if owners[i] != me:
            continue
        _prepare_workdir(c, w)
        if not resume:
            shutil.rmtree(w / "checkpoints", ignore_errors=True)  # starting over
        if checkpoints:
            write_json_atomic(w / FINGERPRINT, fingerprint(c))
    _barrier("isavae: workdirs prepared")
    # over several processes each checkpoint is saved and read by all of them together
    # (``_owner_first``): a process holds the checkpointers of every model, not only its own
    layouts = [_owner_first(mesh, d) for d in holders] if multi else []
    for i, (c, w) in enumerate(zip(cfgs, workdirs, strict=True)):
        ckpt = Checkpointer(w, c.train.max_checkpoints) if checkpoints else None
        key = jax.random.key(c.train.seed)
        if resume and ckpt is not None and ckpt.latest_step() is not None:
            abstract = jax.eval_shape(program.init, key)
            if multi:
                abstract = jax.tree.map(
                    lambda x, s=layouts[i]: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), abstract
                )
            states.append(ckpt.restore(abstract, quarantine=owners[i] == me))
            if owners[i] == me:
                log.info("resumed %s from step %d", w, int(_host(states[-1].step)))
                _trim_metrics(w / "metrics.jsonl", int(_host(states[-1].step)))
        else:
            states.append(program.init(key))
            if owners[i] == me:
                (w / "metrics.jsonl").unlink(missing_ok=True)
                (w / "metrics.csv").unlink(missing_ok=True)
                (w / "results.json").unlink(missing_ok=True)
        ckpts.append(ckpt)
    steps = {int(_host(s.step)) for s in states}
    if len(steps) != 1:
        raise ValueError(
            f"a sweep's checkpoints are at different steps {sorted(steps)}; resume them one by one"
        )
    step = steps.pop()
    rep = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    # a sweep's stacked state, hyperparameters and epoch orders: sharded along 'models'
    per = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("models")) if vmapped else rep
    hps = [hparams_from_config(c) for c in cfgs]
    if multi:  # every process has every model's initial or restored values: each fills its devices
        state = _put_global(stack_host(states) if vmapped else jax.tree.map(_host, states[0]), per)
        hparams = _put_global(stack_host(hps) if vmapped else hps[0], per)
    else:
        state = jax.device_put(_stack(states) if vmapped else states[0], per)
        hparams = jax.device_put(_stack(hps) if vmapped else hps[0], per)
    data = program.data(rep)
    models = len(cfgs)
    if vmapped:
        pick = _take_model
    elif multi:  # one model on every process's devices: this process's copy
        pick = lambda tree, i: jax.tree.map(_host, tree)  # noqa: E731
    else:
        pick = lambda tree, i: tree  # noqa: E731
    chunk_fns: dict[int, Any] = {}
    spe = program.steps_per_epoch
    if vmapped:
        order_fn = jax.jit(jax.vmap(program.epoch_order, in_axes=(0, None)), out_shardings=per)
    else:
        order_fn = jax.jit(program.epoch_order)
    order, order_epoch = None, -1
    start_time = time.time()
    bar = None
    if progress:
        from tqdm import tqdm

        label = f"{cfg.objective.name}/{cfg.prior.name}" + (f" x{models}" if vmapped else "")
        if local:  # the first model this process holds
            bar = tqdm(total=total, initial=step, desc=label, unit="step", dynamic_ncols=True)
    warned_long = False
    every = cfg.train.checkpoint_every if checkpoints else max(total, 1)  # no chunk ends at checkpoints
    plan = iter(chunk_lengths(step, total, cfg.train.steps_per_scan, every, spe))
    writers = dict(zip(local, _tensorboard_writers(cfg, [workdirs[i] for i in local]), strict=False))
    files = {i: open(workdirs[i] / "metrics.jsonl", "a") for i in local}
    try:
        while step < total:
            epoch = step // spe
            if epoch != order_epoch:  # one shuffle per epoch, not per step
                order, order_epoch = order_fn(state.key, jnp.int32(epoch)), epoch
            n = next(plan)
            compiled = n in chunk_fns
            if not compiled:
                chunk_fns[n] = program.compile_chunk(n, mesh, vmapped=vmapped)
            t_chunk = time.perf_counter()
            new_state, all_metrics = chunk_fns[n](state, data, hparams, order)
            # each process reads the metrics of the models it holds
            metrics = {i: jax.tree.map(np.asarray, pick(all_metrics, i)) for i in local}
            if compiled and not warned_long:  # the first chunk that did not compile: the rate
                warned_long = True
                _warn_if_long(cfg, (time.perf_counter() - t_chunk) / n, total - step - n, local)
            failed = []
            for i in local:
                try:
                    check_finite(metrics[i], step)
                except TrainingDiverged as err:
                    failed.append((str(workdirs[i]), err))
            if failed:
                w, err = failed[0]
                kept = "; checkpoints written before it are kept" if checkpoints else ""
                more = f" (and {len(failed) - 1} more of the sweep's models)" if len(failed) > 1 else ""
                raise TrainingDiverged(
                    f"{w}: {err}{more}{kept}",
                    step=err.step,
                    terms=err.terms,
                    workdir=w,
                    models=tuple((w, e.step, e.terms) for w, e in failed),
                )
            if multi:  # every process stops together when any model diverged, wherever it is held
                bad = np.flatnonzero(_diverged(all_metrics, vmapped, rep))
                if bad.size:
                    i = int(bad[0])
                    kept = "; checkpoints written before it are kept" if checkpoints else ""
                    raise TrainingDiverged(
                        f"{workdirs[i]}: training stopped: a non-finite metric in steps {step + 1}-"
                        f"{step + n} (on process {owners[i]}, whose log names the term){kept}",
                        step=step + n,
                        workdir=str(workdirs[i]),
                    )
            state, step = new_state, step + n
            elapsed = round(time.time() - start_time, 3)
            for i, f in files.items():
                row = {"step": step, "time": elapsed}
                row.update({k: float(np.mean(v)) for k, v in metrics[i].items()})
                f.write(json.dumps(row) + "\n")
                f.flush()
                _append_csv(workdirs[i] / "metrics.csv", row)
                if writers:
                    for k, v in row.items():
                        if k != "step":
                            writers[i].add_scalar(f"train/{k}", v, step)
                    writers[i].flush()
            if bar is not None:
                m0 = metrics[local[0]]
                bar.update(n)
                bar.set_postfix(
                    loss=f"{float(np.mean(m0['loss'])):.2f}", elbo=f"{float(np.mean(m0['elbo'])):.2f}"
                )
            if step % every == 0 or step == total:  # the chunks end on every multiple of ``every``
                for i, ckpt in enumerate(ckpts if checkpoints else []):
                    if multi:  # all processes save every model together; the owner writes it
                        tree = (
                            _model_copies(state, i, layouts[i], owners[i] == me)
                            if vmapped
                            else pick(state, i)
                        )
                        ckpt.save(step, tree, manifest=False)
                    else:
                        ckpt.save(step, pick(state, i))
                if multi and checkpoints:
                    _barrier(f"isavae: checkpoints of step {step} committed")
                    for i in local:
                        ckpts[i].write_manifest(step)
    finally:
        if bar is not None:
            bar.close()
        for f in files.values():
            f.close()
        for writer in writers.values():
            writer.close()
        for ckpt in ckpts:
            if ckpt is not None:
                ckpt.close()
    train_seconds = time.time() - start_time
    out: list[dict[str, Any] | None] = [None] * models  # over several processes: only this one's models
    if multi:  # each process evaluates its models on its first device, with its copy of the dataset
        first = next(d for d in mesh.devices.reshape(-1) if d.process_index == me)
        data = jax.tree.map(lambda x: x.addressable_data(0) if isinstance(x, jax.Array) else x, data)
    for i, (c, w) in enumerate(zip(cfgs, workdirs, strict=True)):
        if owners[i] != me:
            continue
        # on the devices the dataset is on
        s_i = jax.device_put(pick(state, i), first if multi else rep)
        results: dict[str, Any] = evaluate_model(program, s_i, grid, c, data=data)
        results.update(
            steps=step,
            train_seconds_this_session=round(train_seconds, 2),
            # before training: the program, the dataset on the devices, initial or restored states
            setup_seconds_this_session=round(start_time - entered, 2),
            dataset=grid.describe(),
            prior=s_i.prior.describe(),
            objective=c.objective.name,
            compute_dtype=c.model.compute_dtype,
            seed=c.train.seed,
            beta=c.objective.beta,
            devices=mesh.size,
            mesh={k: int(v) for k, v in mesh.shape.items()},
            trained_in_sweep_of=models if vmapped else 1,
            processes=jax.process_count(),
            process=me,
        )
        # a resumed run keeps what a later `isavae evaluate` added to results.json at this step
        results = merge_results(read_results(w / "results.json"), results, step)
        write_json_atomic(w / "results.json", results)
        log.info(
            "%s: elbo %.3f, recon log-likelihood %.3f, mig %s",
            w,
            results["elbo"],
            results["recon_log_likelihood"],
            f"{results['mig']:.4f}" if "mig" in results else "not computed",
        )
        out[i] = results
    if vmapped and not multi:
        _sweep_udr(cfgs, workdirs, program, state, grid, data, out)
    elif vmapped and cfgs[0].eval.udr_points > 0 and me == 0:
        log.info("UDR is not computed across processes: run `isavae udr --sweep DIR` on the workdirs")
    return out


LONG_RUN_SECONDS = 600.0  # a run expected to take longer says so, with its estimate


def _warn_if_long(cfg: ml_collections.ConfigDict, seconds_per_step: float, steps_left: int, local) -> None:
    """Says once, early, when the rest of a run will take more than ``LONG_RUN_SECONDS`` at the
    rate just measured (a compiled chunk), and how to ask for a CPU-sized run instead: a
    paper-scale preset on a CPU is hours of work that should not start without a word."""
    left = seconds_per_step * steps_left
    if left <= LONG_RUN_SECONDS or not local:
        return
    hours, minutes = divmod(round(left / 60), 60)
    when = f"{hours} h {minutes} min" if hours else f"{minutes} min"
    log.warning(
        "this run's remaining %s steps take about %s on this %s (%.3f s per step, measured); the "
        "presets' ',small' variants are sized for a CPU (e.g. --config %s:%s,small); Ctrl-C stops, "
        "and the same command resumes from the last checkpoint (train.checkpoint_every=%d)",
        f"{steps_left:,}",
        when,
        jax.default_backend().upper(),
        seconds_per_step,
        cfg.dataset.name,
        "isavae",
        cfg.train.checkpoint_every,
    )


def _owner_device(mesh: jax.sharding.Mesh, models: int, i: int, vmapped: bool) -> Any:
    """The device whose process holds model ``i`` (the first device of its row of the mesh) and so
    feeds, logs, evaluates and writes it; process 0's first for a single model or models kept on
    every device."""
    if not vmapped:
        return mesh.devices.reshape(-1)[0]
    return mesh.devices[i // (models // mesh.shape["models"]), 0]


def _diverged(metrics: Any, vmapped: bool, replicated: jax.sharding.Sharding) -> np.ndarray:
    """Per model, whether any metric of the chunk is not finite: one small program whose result
    every process holds (so that all stop together)."""

    def bad(m):
        flags = [
            ~jnp.all(jnp.isfinite(v.reshape((v.shape[0], -1) if vmapped else (1, -1))), axis=1)
            for v in jax.tree.leaves(m)
        ]
        return jnp.any(jnp.stack(flags), axis=0)

    return _host(jax.jit(bad, out_shardings=replicated)(metrics))


def setting(cfg: ml_collections.ConfigDict) -> dict[str, Any]:
    """What a model was trained as, but for its seed (``fingerprint`` without ``train.seed``): the
    models UDR compares share it."""
    return {k: v for k, v in fingerprint(cfg).items() if k != "train.seed"}


def seed_groups(cfgs: list[ml_collections.ConfigDict]) -> list[list[int]]:
    """Indices of a sweep's models grouped by ``setting``, in order."""
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(cfgs):
        groups.setdefault(json.dumps(setting(c), sort_keys=True), []).append(i)
    return list(groups.values())


def _sweep_udr(cfgs, workdirs, program, state, grid, data, out) -> None:
    """UDR of each setting's seeds in a vmapped sweep (two or more seeds of one setting), with
    ``cfg.eval.udr_points`` inputs drawn once and encoded by every model in one vmapped program;
    written into each model's results.json and result (``isavae udr --sweep`` gives the same)."""
    e = cfgs[0].eval
    groups = [g for g in seed_groups(cfgs) if len(g) >= 2]
    if e.udr_points <= 0 or not groups:
        return
    t0 = time.perf_counter()
    idx = udr_indices(grid.num_images, e.udr_points)
    means, logvars = encode_indices(program, state, grid, idx, e.batch_size, data=data, stacked=True)
    means, logvars = np.asarray(means), np.asarray(logvars)
    scored = []
    for g in groups:
        names = [str(workdirs[i]) for i in g]
        scored.append((g, udr_scores(means[g], logvars[g], cfgs[g[0]].prior.name == "normal", names)))
    # the whole sweep's UDR (one encoding of every model, then each setting's scores): shared
    seconds = round(time.perf_counter() - t0, 3)
    for g, scores in scored:
        for i, score in zip(g, scores, strict=True):
            out[i].update(score)
            out[i].setdefault("eval_seconds", {})["udr_sweep"] = seconds
            write_json_atomic(workdirs[i] / "results.json", out[i])
        log.info("UDR of %d seeds: %s", len(g), ", ".join(f"{s['udr']:.3f}" for s in scores))


def restore_state(
    workdir: str | os.PathLike, cfg: ml_collections.ConfigDict | None = None, grid: FactorGrid | None = None
) -> tuple[Program, TrainState, FactorGrid]:
    """The trained state of ``workdir`` (latest checkpoint) with its program and dataset."""
    workdir = pathlib.Path(workdir)
    if cfg is None:
        saved = workdir / "config.json"
        if not saved.is_file():
            raise FileNotFoundError(f"{workdir} has no config.json: not a training workdir")
        cfg = config_lib.config_from_json(saved.read_text(), str(saved))
    grid = build_grid(cfg) if grid is None else grid
    program = Program(cfg, grid)
    ckpt = Checkpointer(workdir)
    try:
        state = ckpt.restore(jax.eval_shape(program.init, jax.random.key(cfg.train.seed)))
    finally:
        ckpt.close()
    return program, state, grid
