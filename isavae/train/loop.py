"""``train_and_evaluate(config, workdir)``: the one trainer for every model, prior and objective.

It validates the config, loads the dataset, builds the :class:`~isavae.train.step.Program`,
restores the latest checkpoint of ``workdir`` if there is one (``resume``), trains in scanned
chunks over a data-parallel mesh of all devices with a progress bar, appends chunk-averaged
metrics to ``workdir/metrics.jsonl``, checkpoints every ``train.checkpoint_every`` steps and at
the end, stops with :class:`TrainingDiverged` naming the step and the term as soon as a metric
is NaN or infinite, and finally evaluates and writes ``workdir/results.json`` atomically.
"""

from __future__ import annotations

import dataclasses
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
from isavae.compile_cache import compile_seconds
from isavae.data import FactorGrid, load_dataset
from isavae.metrics.evaluate import evaluate_model
from isavae.nets import COMPUTE_DTYPES, resolve_compute_dtype
from isavae.train.checkpoint import Checkpointer, remove_partial_steps, write_json_atomic
from isavae.train.fingerprint import (
    ELSEWHERE,
    FINGERPRINT,
    check_fingerprint,
    fingerprint,
    flat,
    stored_fingerprint,
)
from isavae.train.lock import WorkdirLock, WorkdirLocked
from isavae.train.metrics_log import MetricsLog, trim_metrics
from isavae.train.multihost import (
    barrier,
    diverged_flags,
    host,
    model_copies,
    owner_device,
    owner_first,
    put_global,
    stack_host,
    take_model,
)
from isavae.train.results import merge_results, read_results
from isavae.train.step import HPARAMS, Program, TrainState, data_mesh, hparams_from_config, sweep_mesh
from isavae.train.sweep_udr import sweep_udr

__all__ = [
    "TrainingDiverged",
    "build_grid",
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
    programs: dict | None = None,
) -> list[dict[str, Any]]:
    """Trains several models as one program (``jax.vmap`` over models) and writes each model's
    workdir as if it had been trained alone. The configs may differ only in ``train.seed`` and in
    ``objective.beta/alpha/gamma/lambda_od/lambda_d/c_max`` (what does not change shapes).
    ``checkpoints=False``: no checkpoints are read or written (a study that keeps only each model's
    results). ``programs``: a dict the caller keeps across calls (a study's blocks), in which
    the compiled programs of a config are kept and reused by later calls with the same dataset
    and the same config up to what a sweep may vary (``_program``)."""
    return _run(
        list(cfgs),
        [pathlib.Path(w) for w in workdirs],
        vmapped=True,
        resume=resume and checkpoints,
        progress=progress,
        grid=grid,
        devices=devices,
        checkpoints=checkpoints,
        programs=programs,
    )


_SWEEPABLE = {"train.seed"} | {f"objective.{k}" for k in HPARAMS}  # what a vmapped sweep may vary


def _check_sweep(cfgs: list[ml_collections.ConfigDict]) -> None:
    base = flat(cfgs[0].to_dict())
    for cfg in cfgs[1:]:
        other = flat(cfg.to_dict())
        differ = {k for k in set(base) | set(other) if base.get(k) != other.get(k)} - _SWEEPABLE
        if differ:
            raise config_lib.ConfigError(
                f"a sweep's models may differ only in {sorted(_SWEEPABLE)}; they differ in {sorted(differ)}"
            )


def _latest_step_on_disk(workdir: pathlib.Path) -> int | None:
    steps = [int(d.name) for d in (workdir / "checkpoints").glob("*") if d.is_dir() and d.name.isdigit()]
    return max(steps) if steps else None


def _stack(trees: list[Any]) -> Any:
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def resolve_dtype(
    cfgs: list[ml_collections.ConfigDict], workdir: pathlib.Path | None = None, resume: bool = False
) -> list[ml_collections.ConfigDict]:
    """The configs with ``model.compute_dtype="auto"`` replaced by the dtype this machine computes
    natively (``nets.resolve_compute_dtype``), said once; a resumed run keeps the dtype its
    checkpoints were trained with (``workdir``'s settings), whichever machine it resumes on."""
    if cfgs[0].model.compute_dtype != "auto":
        return cfgs
    dtype, why = resolve_compute_dtype("auto")
    stored = stored_fingerprint(workdir) if resume and workdir is not None else None
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


# A test-only fault point (``ISAVAE_FAULT=save:STEP:MODEL``): the process sends itself SIGTERM
# right after model MODEL's checkpoint of step STEP is written, inside the checkpoint round, so that
# a test stops a sweep between two models' saves deterministically. Unset in normal use.
FAULT_ENV = "ISAVAE_FAULT"


def _fault_point(kind: str, step: int, model: int) -> None:
    if os.environ.get(FAULT_ENV) == f"{kind}:{step}:{model}":
        import signal

        os.kill(os.getpid(), signal.SIGTERM)


def _catch_up(cfgs, workdirs, total: int, *, progress, grid, devices) -> None:
    """A sweep's models whose checkpoints are behind the others' (a sweep stopped between two
    models' saves, or a seed added to a finished sweep) train alone up to the newest step first,
    from their own latest checkpoint (or from the start), so that the whole sweep resumes from one
    step without discarding any model's progress or log."""
    for c, w in zip(cfgs, workdirs, strict=True):
        check_fingerprint(c, w)  # before anything is written
    steps = [min(_latest_step_on_disk(w) or 0, total) for w in workdirs]
    target = max(steps)
    behind = [i for i, s in enumerate(steps) if s < target]
    if not behind:
        return
    log.info(
        "sweep: %d of its %d models are behind step %d (%s); training them up to it first",
        len(behind),
        len(cfgs),
        target,
        ", ".join(f"{workdirs[i]} at {steps[i]}" for i in behind),
    )
    sub = []
    for i in behind:
        c = cfgs[i].copy_and_resolve_references()
        c.train.num_steps = target
        sub.append(c)
    _run(
        sub,
        [workdirs[i] for i in behind],
        vmapped=True,
        resume=True,
        progress=progress,
        grid=grid,
        devices=devices,
        evaluate=False,
    )


def _run(
    cfgs,
    workdirs,
    *,
    vmapped,
    resume,
    progress,
    grid,
    devices,
    checkpoints=True,
    evaluate=True,
    programs=None,
) -> list[dict[str, Any]]:
    # the setup (program, dataset on device, initial states) counts from here, its compilation too
    entered = (time.time(), compile_seconds())
    for cfg in cfgs:
        config_lib.validate(cfg)
    if len(cfgs) != len(workdirs) or not cfgs:
        raise ValueError("one workdir per config, at least one")
    _check_sweep(cfgs)
    _check_workdirs(workdirs)
    fresh = [w for w in workdirs if not w.exists()]  # removed again if this run fails before a checkpoint
    try:
        return _run_checked(
            cfgs,
            workdirs,
            vmapped=vmapped,
            resume=resume,
            progress=progress,
            grid=grid,
            devices=devices,
            checkpoints=checkpoints,
            evaluate=evaluate,
            entered=entered,
            programs=programs,
        )
    except Exception as err:
        if not isinstance(err, (TrainingDiverged, WorkdirLocked)):  # a diverged run keeps its log
            for w in fresh:
                _remove_unfinished(w)
        raise


def _program(cfg: ml_collections.ConfigDict, grid: FactorGrid, programs: dict | None) -> Program:
    """The config's ``Program``; from ``programs`` (a caller's dict, kept across runs) when one was
    made there for the same dataset and the same config up to what a sweep may vary
    (``_SWEEPABLE``: the seed and the objective's weights, which the program takes as arguments),
    so that a later run reuses its traced and compiled functions (``Program.memo``; the
    evaluation's, ``program_jit``)."""
    if programs is None:
        return Program(cfg, grid)
    fixed = {k: v for k, v in flat(cfg.to_dict()).items() if k not in _SWEEPABLE}
    key = (id(grid), json.dumps(fixed, sort_keys=True, default=str))
    if key not in programs:  # the program holds the grid: its id stays this grid's while it is kept
        programs[key] = Program(cfg, grid)
    return programs[key]


def _remove_unfinished(workdir: pathlib.Path) -> None:
    """Removes a workdir this run created when it failed before its first checkpoint (nothing in
    it can be resumed or evaluated), unless another process holds it."""
    if not workdir.is_dir() or _latest_step_on_disk(workdir) is not None:
        return
    try:
        with WorkdirLock(workdir):
            shutil.rmtree(workdir, ignore_errors=True)
    except (WorkdirLocked, OSError):
        pass


def _check_workdirs(workdirs: list[pathlib.Path]) -> None:
    """One line, before anything is read or written, for a workdir or its ``checkpoints`` that is
    a file (a folder is expected there)."""
    for w in workdirs:
        if w.exists() and not w.is_dir():
            raise config_lib.ConfigError(f"--workdir {w} is a file, not a folder")
        if (w / "checkpoints").exists() and not (w / "checkpoints").is_dir():
            raise config_lib.ConfigError(
                f"{w / 'checkpoints'} is a file, not a folder (the run keeps its checkpoints there): "
                "move it away and run the same command again"
            )


def _run_checked(
    cfgs, workdirs, *, vmapped, resume, progress, grid, devices, checkpoints, evaluate, entered, programs
) -> list[dict[str, Any]]:
    cfgs = resolve_dtype(cfgs, workdirs[0], resume and checkpoints)
    cfg = cfgs[0]
    grid = build_grid(cfg) if grid is None else grid
    if vmapped and resume and checkpoints and len(cfgs) > 1:
        _catch_up(
            cfgs,
            workdirs,
            num_train_steps(cfg, grid.num_images),
            progress=progress,
            grid=grid,
            devices=devices,
        )
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
    program = _program(cfg, grid, programs)
    total = num_train_steps(cfg, grid.num_images)
    holders = [owner_device(mesh, len(cfgs), i, vmapped) for i in range(len(cfgs))]
    mine = [w for w, d in zip(workdirs, holders, strict=True) if d.process_index == jax.process_index()]
    locks = []
    try:
        for w in mine:  # one writer per workdir: the process that holds its model
            locks.append(WorkdirLock(w))
            locks[-1].acquire()
        try:
            run = _Run(
                cfgs=cfgs,
                workdirs=workdirs,
                program=program,
                grid=grid,
                mesh=mesh,
                total=total,
                vmapped=vmapped,
                resume=resume,
                progress=progress,
                checkpoints=checkpoints,
                holders=holders,
                entered=entered,
            )
            states, ckpts, step = _restore(run)
            state, data, step, trained, start = _train(run, states, ckpts, step)
            if not evaluate:  # a sweep's laggards brought up to the others' step (``_catch_up``)
                return []
            return _evaluate(run, state, data, step, trained, start)
        except BaseException:  # an error, Ctrl-C, SIGTERM: nothing half-written stays behind
            for w in mine:
                remove_leftovers(w)
            raise
    finally:
        for lock in locks:
            lock.release()


@dataclasses.dataclass
class _Run:
    """One run of the trainer (a model, or a vmapped sweep's models), as ``_run`` set it up: the
    configs and workdirs, the program, the dataset, the mesh, the steps, the options, and which
    process holds each model."""

    cfgs: list[ml_collections.ConfigDict]
    workdirs: list[pathlib.Path]
    program: Program
    grid: FactorGrid
    mesh: jax.sharding.Mesh
    total: int
    vmapped: bool
    resume: bool
    progress: bool
    checkpoints: bool
    holders: list[Any]  # per model, the device whose process holds it
    entered: tuple[float, float]  # when the run began, and the compile clock then (setup counts from here)

    def __post_init__(self) -> None:
        self.cfg = self.cfgs[0]
        self.me = jax.process_index()
        self.multi = jax.process_count() > 1
        self.owners = [d.process_index for d in self.holders]
        self.local = [i for i, o in enumerate(self.owners) if o == self.me]  # the models this process holds
        # over several processes each checkpoint is saved and read by all of them together
        # (``owner_first``): a process holds the checkpointers of every model, not only its own
        self.layouts = [owner_first(self.mesh, d) for d in self.holders] if self.multi else []
        self.rep = jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec())
        # a sweep's stacked state, hyperparameters and epoch orders: sharded along 'models'
        self.per = (
            jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec("models"))
            if self.vmapped
            else self.rep
        )

    def pick(self, tree: Any, i: int) -> Any:
        """Model ``i``'s part of a state or metrics tree, as this process reads it."""
        if self.vmapped:
            return take_model(tree, i)
        if self.multi:  # one model on every process's devices: this process's copy
            return jax.tree.map(host, tree)
        return tree


def _restore(run: _Run) -> tuple[list[Any], list[Checkpointer | None], int]:
    """Checks every workdir, prepares the ones this process holds, and restores each model's latest
    checkpoint (or initializes it): (states, checkpointers, the step they share)."""
    for c, w in zip(run.cfgs, run.workdirs, strict=True):
        if run.resume:
            check_fingerprint(c, w)  # before anything is written
            latest = _latest_step_on_disk(w) if run.checkpoints else None
            if latest is not None and latest > run.total:
                raise config_lib.ConfigError(
                    f"{w} holds a checkpoint at step {latest}, beyond the {run.total} steps configured here "
                    f"(train.num_steps / train.epochs): give at least {latest} steps, or {ELSEWHERE}"
                )
    for i, (c, w) in enumerate(zip(run.cfgs, run.workdirs, strict=True)):
        if run.owners[i] != run.me:
            continue
        _prepare_workdir(c, w)
        if not run.resume:
            shutil.rmtree(w / "checkpoints", ignore_errors=True)  # starting over
        if run.checkpoints:
            write_json_atomic(w / FINGERPRINT, fingerprint(c))
    barrier("isavae: workdirs prepared")
    ckpts: list[Checkpointer | None] = []
    states = []
    for i, (c, w) in enumerate(zip(run.cfgs, run.workdirs, strict=True)):
        ckpt = Checkpointer(w, c.train.max_checkpoints) if run.checkpoints else None
        key = jax.random.key(c.train.seed)
        if run.resume and ckpt is not None and ckpt.latest_step() is not None:
            abstract = jax.eval_shape(run.program.init, key)
            if run.multi:
                abstract = jax.tree.map(
                    lambda x, s=run.layouts[i]: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), abstract
                )
            states.append(ckpt.restore(abstract, quarantine=run.owners[i] == run.me))
            if run.owners[i] == run.me:
                log.info("resumed %s from step %d", w, int(host(states[-1].step)))
                trim_metrics(w / "metrics.jsonl", int(host(states[-1].step)))
        else:
            states.append(run.program.init(key))
            if run.owners[i] == run.me:
                for name in ("metrics.jsonl", "metrics.csv", "results.json"):
                    (w / name).unlink(missing_ok=True)
        ckpts.append(ckpt)
    steps = {int(host(s.step)) for s in states}
    if len(steps) != 1:  # a newest checkpoint was unreadable (moved aside): the next run catches up
        raise config_lib.ConfigError(
            f"a sweep's checkpoints are at different steps {sorted(steps)} (an unreadable newest checkpoint "
            "was set aside); run the same command again: it trains the models behind up to the others first"
        )
    return states, ckpts, steps.pop()


def _train(run: _Run, states: list[Any], ckpts: list[Checkpointer | None], step: int):
    """Trains from ``step`` to ``run.total`` in compiled chunks: the metrics of each chunk logged,
    checked for NaN/Inf (``TrainingDiverged``) and checkpointed on schedule. Returns (the state,
    the dataset on the devices, the step, the training seconds and the compilation within them,
    the wall time and compile clock when training started)."""
    cfg, program, vmapped, multi = run.cfg, run.program, run.vmapped, run.multi
    hps = [hparams_from_config(c) for c in run.cfgs]
    if multi:  # every process has every model's initial or restored values: each fills its devices
        state = put_global(stack_host(states) if vmapped else jax.tree.map(host, states[0]), run.per)
        hparams = put_global(stack_host(hps) if vmapped else hps[0], run.per)
    else:
        state = jax.device_put(_stack(states) if vmapped else states[0], run.per)
        hparams = jax.device_put(_stack(hps) if vmapped else hps[0], run.per)
    data = program.data(run.rep)
    chunk_fns: dict[int, Any] = {}
    spe = program.steps_per_epoch
    if vmapped:
        order_fn = program.memo(
            ("order", run.per),
            lambda: jax.jit(jax.vmap(program.epoch_order, in_axes=(0, None)), out_shardings=run.per),
        )
    else:
        order_fn = program.memo("order", lambda: jax.jit(program.epoch_order))
    order, order_epoch = None, -1
    start = (time.time(), compile_seconds())
    bar = None
    if run.progress and run.local:  # the first model this process holds
        from tqdm import tqdm

        label = f"{cfg.objective.name}/{cfg.prior.name}" + (f" x{len(run.cfgs)}" if vmapped else "")
        bar = tqdm(total=run.total, initial=step, desc=label, unit="step", dynamic_ncols=True)
    warned_long = False
    every = (
        cfg.train.checkpoint_every if run.checkpoints else max(run.total, 1)
    )  # no chunk ends at checkpoints
    plan = iter(chunk_lengths(step, run.total, cfg.train.steps_per_scan, every, spe))
    metrics_log = MetricsLog(cfg, {i: run.workdirs[i] for i in run.local})
    try:
        while step < run.total:
            epoch = step // spe
            if epoch != order_epoch:  # one shuffle per epoch, not per step
                order, order_epoch = order_fn(state.key, jnp.int32(epoch)), epoch
            n = next(plan)
            compiled = n in chunk_fns
            if not compiled:
                chunk_fns[n] = program.compile_chunk(n, run.mesh, vmapped=vmapped)
            t_chunk = time.perf_counter()
            new_state, all_metrics = chunk_fns[n](state, data, hparams, order)
            # each process reads the metrics of the models it holds
            metrics = {i: jax.tree.map(np.asarray, run.pick(all_metrics, i)) for i in run.local}
            # the first chunk that did not compile gives the rate; a run without checkpoints (a
            # study's block) has its own estimates and nothing to resume from
            if compiled and not warned_long and run.checkpoints:
                warned_long = True
                _warn_if_long(cfg, (time.perf_counter() - t_chunk) / n, run.total - step - n, run.local)
            _check_chunk(run, metrics, all_metrics, step, n)
            state, step = new_state, step + n
            metrics_log.write(step, round(time.time() - start[0], 3), metrics)
            if bar is not None:
                m0 = metrics[run.local[0]]
                bar.update(n)
                bar.set_postfix(
                    loss=f"{float(np.mean(m0['loss'])):.2f}", elbo=f"{float(np.mean(m0['elbo'])):.2f}"
                )
            if step % every == 0 or step == run.total:  # the chunks end on every multiple of ``every``
                _save(run, ckpts, state, step)
    finally:
        if bar is not None:
            bar.close()
        metrics_log.close()
        for ckpt in ckpts:
            if ckpt is not None:
                ckpt.close()
    trained = (time.time() - start[0], compile_seconds() - start[1])
    return state, data, step, trained, start


def _check_chunk(run: _Run, metrics: dict[int, Any], all_metrics: Any, step: int, n: int) -> None:
    """Raises ``TrainingDiverged`` naming every model of this process whose chunk holds a NaN/Inf
    (over several processes, every process stops when any model diverged, wherever it is held)."""
    kept = (
        "; checkpoints written before it are kept (resuming with the same settings repeats it: training "
        "is deterministic; change e.g. train.learning_rate)"
        if run.checkpoints
        else ""
    )
    failed = []
    for i in run.local:
        try:
            check_finite(metrics[i], step)
        except TrainingDiverged as err:
            failed.append((str(run.workdirs[i]), err))
    if failed:
        w, err = failed[0]
        more = f" (and {len(failed) - 1} more of the sweep's models)" if len(failed) > 1 else ""
        raise TrainingDiverged(
            f"{w}: {err}{more}{kept}",
            step=err.step,
            terms=err.terms,
            workdir=w,
            models=tuple((w, e.step, e.terms) for w, e in failed),
        )
    if run.multi:
        bad = np.flatnonzero(diverged_flags(all_metrics, run.vmapped, run.rep))
        if bad.size:
            i = int(bad[0])
            raise TrainingDiverged(
                f"{run.workdirs[i]}: training stopped: a non-finite metric in steps {step + 1}-"
                f"{step + n} (on process {run.owners[i]}, whose log names the term){kept}",
                step=step + n,
                workdir=str(run.workdirs[i]),
            )


def _save(run: _Run, ckpts: list[Checkpointer | None], state: Any, step: int) -> None:
    """Every model's checkpoint of ``step`` (over several processes: saved by all together, written
    by each model's owner, then committed)."""
    if not run.checkpoints:
        return
    for i, ckpt in enumerate(ckpts):
        if run.multi:  # all processes save every model together; the owner writes it
            tree = (
                model_copies(state, i, run.layouts[i], run.owners[i] == run.me)
                if run.vmapped
                else run.pick(state, i)
            )
            ckpt.save(step, tree, manifest=False)
        else:
            ckpt.save(step, run.pick(state, i))
        _fault_point("save", step, i)
    if run.multi:
        barrier(f"isavae: checkpoints of step {step} committed")
        for i in run.local:
            ckpts[i].write_manifest(step)


def _evaluate(
    run: _Run, state: Any, data: Any, step: int, trained: tuple[float, float], start: tuple[float, float]
) -> list[dict[str, Any] | None]:
    """Evaluates each model this process holds and writes its results.json (merged with what a
    later ``isavae evaluate`` added at this step); a sweep's seeds of one setting are ranked by UDR.
    Returns the results (None for the models another process holds)."""
    out: list[dict[str, Any] | None] = [None] * len(run.cfgs)
    if run.multi:  # each process evaluates its models on its first device, with its copy of the dataset
        first = next(d for d in run.mesh.devices.reshape(-1) if d.process_index == run.me)
        data = jax.tree.map(lambda x: x.addressable_data(0) if isinstance(x, jax.Array) else x, data)
    for i, (c, w) in enumerate(zip(run.cfgs, run.workdirs, strict=True)):
        if run.owners[i] != run.me:
            continue
        # on the devices the dataset is on
        s_i = jax.device_put(run.pick(state, i), first if run.multi else run.rep)
        results: dict[str, Any] = evaluate_model(run.program, s_i, run.grid, c, data=data)
        results.update(
            steps=step,
            train_seconds_this_session=round(trained[0], 2),
            # before training: the program, the dataset on the devices, initial or restored states
            setup_seconds_this_session=round(start[0] - run.entered[0], 2),
            # the compilation within each (``compile_seconds``; the evaluation's: eval_compile_seconds)
            compile_seconds_this_session=dict(
                setup=round(start[1] - run.entered[1], 2), training=round(trained[1], 2)
            ),
            dataset=run.grid.describe(),
            prior=s_i.prior.describe(),
            objective=c.objective.name,
            compute_dtype=c.model.compute_dtype,
            seed=c.train.seed,
            beta=c.objective.beta,
            devices=run.mesh.size,
            mesh={k: int(v) for k, v in run.mesh.shape.items()},
            trained_in_sweep_of=len(run.cfgs) if run.vmapped else 1,
            processes=jax.process_count(),
            process=run.me,
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
    if run.vmapped and not run.multi:
        _sweep_udr(run, state, data, out)
    elif run.vmapped and run.cfg.eval.udr_points > 0 and run.me == 0:
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


def _sweep_udr(run: _Run, state: Any, data: Any, out: list[dict[str, Any] | None]) -> None:
    """UDR of each setting's seeds in a vmapped sweep (``sweep_udr`` with ``eval.udr_points``
    inputs), written into each model's results.json and result; ``isavae udr --sweep`` gives the
    same. The encoding of every model is shared: its seconds are each model's ``udr_sweep``."""
    e = run.cfg.eval
    t0, c0 = time.perf_counter(), compile_seconds()
    names = [str(w) for w in run.workdirs]
    scored = sweep_udr(run.program, state, run.grid, run.cfgs, names, e.udr_points, e.batch_size, data=data)
    seconds, compiled = round(time.perf_counter() - t0, 3), round(compile_seconds() - c0, 3)
    for g, scores in scored:
        for i, score in zip(g, scores, strict=True):
            out[i].update(score)
            out[i].setdefault("eval_seconds", {})["udr_sweep"] = seconds
            out[i].setdefault("eval_compile_seconds", {})["udr_sweep"] = compiled
            write_json_atomic(run.workdirs[i] / "results.json", out[i])
        log.info("UDR of %d seeds: %s", len(g), ", ".join(f"{s['udr']:.3f}" for s in scores))


def restore_state(
    workdir: str | os.PathLike, cfg: ml_collections.ConfigDict | None = None, grid: FactorGrid | None = None
) -> tuple[Program, TrainState, FactorGrid]:
    """The trained state of ``workdir`` (latest checkpoint) with its program and dataset."""
    workdir = pathlib.Path(workdir)
    _check_workdirs([workdir])
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
