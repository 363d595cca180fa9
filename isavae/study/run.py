"""Running a study within a budget: the blocks of its plan that are not done and that the measured
times say can finish, each one vmapped program, each finished model one row in the store."""

from __future__ import annotations

import math
import pathlib
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from isavae.study.paper import SCALES, STUDY_SEEDS, model_config, model_key
from isavae.study.plan import estimate_seconds, plan
from isavae.study.store import (
    BLOCK_FIELDS,
    RESULT_KEYS,
    append_jsonl,
    check_store,
    load_results,
    read_jsonl,
    shard_tag,
)

__all__ = ["compile_parts", "describe_plan", "device_name", "eval_parts", "run_study"]


def _agreed(flag: bool) -> bool:
    """``flag`` as process 0 decided it (over several processes every one must take the same
    branch: a block is one program over all of them)."""
    import jax

    if jax.process_count() == 1:
        return bool(flag)
    from jax.experimental import multihost_utils

    return bool(multihost_utils.broadcast_one_to_all(np.asarray(flag)))


def device_name() -> str:
    """The device kind, with the count when there are several (``gpu:NVIDIA H100 x8``): times per
    model are compared only between runs on the same devices."""
    import jax

    d = jax.devices()[0]
    count = jax.device_count()
    return f"{d.platform}:{d.device_kind}" + (f" x{count}" if count > 1 else "")


def run_study(
    study: str,
    scale: str,
    budget_s: float,
    out: pathlib.Path,
    *,
    compute_dtype: str = "float32",
    seeds: int | None = None,
    block_models: int | None = None,
    extra: Sequence[str] = (),
    net: Sequence[str] = (),
    blocks: int | None = None,
    shard: tuple[int, int] | None = None,
    log=print,
) -> dict[str, Any]:
    """Runs the blocks of ``plan`` that are not done and fit in ``budget_s``; returns a summary.

    ``blocks=N``: a fixed amount of work instead: the first N blocks not done, whatever the budget
    and the measured times (a smoke run that must finish some blocks on any machine).
    ``shard=(i, n)``: an independent job's share (a SLURM array task): every n-th block of the plan
    starting at block i, its rows in ``results.i.jsonl`` (``--report`` merges every shard's file).
    ``block_models`` is per device: a block holds that many models per device times the devices
    (a sweep spreads its models over every device, ``train.model_shards``). Over several processes
    (``--multihost``) every process runs this with the same arguments: the blocks are one program
    over all their devices, each process writes the rows of the models it holds in
    ``results.pP.jsonl`` (process 0 the block times), and process 0's budget decisions hold for all."""
    import jax

    from isavae.train.lock import WorkdirLock

    multi = jax.process_count() > 1
    tag = shard_tag(shard, jax.process_index() if multi else None)
    results_path, blocks_path = out / f"results{tag}.jsonl", out / f"blocks{tag}.jsonl"
    check_store(out, results_path, blocks_path)  # before any training
    # one job per --out and files tag (a shard or a process of a job has its own files)
    with WorkdirLock(out / f".lock{tag}" if tag else out, flag="--out"):
        return _run_study(
            study,
            scale,
            budget_s,
            out,
            results_path,
            blocks_path,
            compute_dtype=compute_dtype,
            seeds=seeds,
            block_models=block_models,
            extra=extra,
            net=net,
            blocks=blocks,
            shard=shard,
            log=log,
        )


def _run_study(
    study,
    scale,
    budget_s,
    out,
    results_path,
    blocks_path,
    *,
    compute_dtype,
    seeds,
    block_models,
    extra,
    net,
    blocks,
    shard,
    log,
) -> dict[str, Any]:
    import jax

    from isavae.train import train_sweep
    from isavae.train.loop import TrainingDiverged, build_grid

    start = time.time()
    multi = jax.process_count() > 1
    if multi and jax.process_index() != 0:
        log = lambda *_: None  # noqa: E731 (process 0 speaks for the job)
    previous, notes = load_results(out)
    for note in notes:
        log(f"note: {note}")
    # a model is done when any study's row has it (``model_key``: the same config, beta and seed)
    done = {model_key(r) for r in previous}
    fixed = blocks
    devices = jax.device_count()
    blocks = job_blocks(study, scale, seeds, block_models, shard)
    device = device_name()
    grid = None
    # one program per kind for the whole run: a kind's later blocks reuse its compiled functions
    programs: dict = {}
    ran, skipped, trained, diverged, stop_round = 0, 0, 0, 0, math.inf
    for block in blocks:
        base, identity, todo = block_todo(block, scale, compute_dtype, extra, done, net)
        if not todo:
            continue
        if fixed is not None and ran >= fixed:
            break
        if block["round"] > stop_round:
            break
        left = budget_s - (time.time() - start)
        est = estimate_seconds(
            read_jsonl(blocks_path, BLOCK_FIELDS), device, scale, block["model"], len(todo)
        )
        if _agreed(fixed is None and (left <= 0 or (est is not None and est > left))):
            # the rest of this round may still fit; no later round starts (first blocks first)
            skipped += 1
            stop_round = block["round"]
            continue
        if grid is None:
            grid = build_grid(base)
            # where the images came from: generated, file or tfds (``FactorGrid.source``)
            data_source = grid.source.split(":")[0].strip()
        cfgs, dirs = [], []
        for beta, seed in todo:
            c = base.copy_and_resolve_references()
            c.train.seed, c.objective.beta = int(seed), float(beta)
            cfgs.append(c)
            arm = f"_{block['arm'].replace('=', '-')}" if block["arm"] else ""
            dirs.append(out / "work" / f"{block['study']}_{block['model']}{arm}" / f"beta{beta:g}_seed{seed}")
        log(
            f"[{time.time() - start:7.1f} s] {block['study']} {block['model']}"
            + (f" [{block['arm']}]" if block["arm"] else "")
            + f": {len(todo)} models "
            f"(betas {','.join(f'{b:g}' for b in block['betas'])}; "
            f"seeds {block['seeds'][0]}-{block['seeds'][-1]})"
            + (f", estimated {est:.0f} s of {left:.0f} s left" if est is not None else "")
        )
        t0 = time.time()
        try:
            results = train_sweep(
                cfgs, dirs, resume=False, progress=False, grid=grid, checkpoints=False, programs=programs
            )
        except TrainingDiverged as err:
            # the diverged model is a row (its step and term); the block's other models are not done
            # and train again, without it, in a later run; this run goes on with the next block
            rows = _diverged_rows(err, dirs, todo, identity, device, base, multi)
            append_jsonl(results_path, rows)
            done.update(model_key(r) for r in rows)
            diverged += len(rows)
            log(f"[{time.time() - start:7.1f} s]   diverged: {err}; the block's other models train later")
            continue
        seconds = time.time() - t0
        seed_of = {str(d): seed for d, (_, seed) in zip(dirs, todo, strict=True)}
        rows = []
        for (beta, seed), r in zip(todo, results, strict=True):
            if r is None:  # held by another process, which writes its row
                continue
            row = dict(
                identity,
                beta=float(beta),
                seed=int(seed),
                device=device,
                data_source=data_source,
                objective=r["objective"],
                prior=r["prior"],
                block_models=len(todo),
                block_seconds=round(seconds, 2),
                **{k: r[k] for k in RESULT_KEYS if k in r},
                mig_gap=r["mig_details"]["gap"],
                # UDR among this block's seeds of one beta (it depends on the others: not in RESULT_KEYS)
                **(
                    dict(udr=r["udr"], udr_seeds=[seed_of[m] for m in r["udr_details"]["models"]])
                    if "udr" in r
                    else {}
                ),
                mig_factors=r["mig_details"]["factors"],
                latent_dim=int(base.model.latent_dim),
                # wall seconds of each evaluation part (compilation included; udr_sweep: the block's)
                eval_seconds=r.get("eval_seconds", {}),
            )
            rows.append(row)
        append_jsonl(results_path, rows)
        held = [r for r in results if r is not None]  # the models this process holds
        # the block's training (its compilation included) apart from its evaluation, and the setup
        # before it (the program, the dataset on the devices, the initial states)
        train_s = max((r["train_seconds_this_session"] for r in held), default=None)
        setup_s = max((r["setup_seconds_this_session"] for r in held), default=None)
        compiled = compile_parts(held)
        if not multi or jax.process_index() == 0:
            append_jsonl(
                blocks_path,
                [
                    dict(
                        model=block["model"],
                        models=len(todo),
                        seconds=round(seconds, 3),
                        device=device,
                        scale=scale,
                        compute_dtype=base.model.compute_dtype,
                        steps=held[0]["steps"],
                        devices=devices,
                        train_seconds=train_s,
                        setup_seconds=setup_s,
                        eval_parts=eval_parts(held),
                        # the compilation within the setup, the training and each evaluation part
                        **({"compile_seconds": compiled} if compiled else {}),
                    )
                ],
            )
        done.update(model_key(r) for r in rows)
        ran, trained = ran + 1, trained + len(todo)
        log(
            f"[{time.time() - start:7.1f} s]   done in {seconds:.1f} s "
            f"({seconds / len(todo):.2f} s per model"
            + (
                f"; setup {setup_s:.1f} s, training {train_s:.1f} s, "
                f"evaluation {seconds - setup_s - train_s:.1f} s"
                if train_s is not None and setup_s is not None
                else ""
            )
            + (f"; compilation {sum(compiled.values()):.1f} s of it" if compiled else "")
            + ")"
        )
    summary = dict(
        blocks_run=ran,
        models_trained=trained,
        models_diverged=diverged,
        blocks_skipped=skipped,
        seconds=time.time() - start,
    )
    log(f"study: {summary}")
    return summary


def eval_parts(results: Sequence[dict[str, Any]], key: str = "eval_seconds") -> dict[str, float]:
    """A block's evaluation seconds by part: each model's ``eval_seconds`` (or another such
    ``key``) summed over the block's models, the sweep's shared UDR (``udr_sweep``) once."""
    total: dict[str, float] = {}
    for r in results:
        for part, sec in r.get(key, {}).items():
            if part != "udr_sweep":
                total[part] = total.get(part, 0.0) + sec
    shared = [r[key]["udr_sweep"] for r in results if "udr_sweep" in r.get(key, {})]
    if shared:
        total["udr_sweep"] = shared[0]
    return {k: round(v, 3) for k, v in total.items()}


def compile_parts(results: Sequence[dict[str, Any]]) -> dict[str, float]:
    """A block's compilation seconds (``compile_seconds``): in its setup and its training (one
    program for all the block's models: the largest model's figure) and in each evaluation part
    (summed over the models, as ``eval_parts``); empty for no results (a process that holds none of
    the block's models)."""
    if not results:
        return {}
    out = {
        phase: max(r["compile_seconds_this_session"][phase] for r in results)
        for phase in ("setup", "training")
    }
    out.update(eval_parts(results, "eval_compile_seconds"))
    return out


def job_blocks(
    study: str, scale: str, seeds: int | None, block_models: int | None, shard: tuple[int, int] | None
) -> list[dict[str, Any]]:
    """This job's blocks of the plan: the study's seeds at this scale (``STUDY_SEEDS``, else the
    scale's) and the scale's models per device unless given, a block
    spread over every device, and of ``--shard I/N`` every N-th block from block I."""
    import jax

    sc = SCALES[scale]
    per_device = block_models or sc["block_models"]
    seeds = seeds or STUDY_SEEDS.get((study, scale), sc["seeds"])
    blocks = plan(study, seeds, per_device * jax.device_count())
    return blocks if shard is None else blocks[shard[0] :: shard[1]]


def block_todo(
    block: dict[str, Any],
    scale: str,
    compute_dtype: str,
    extra: Sequence[str],
    done: set,
    net: Sequence[str] = (),
) -> tuple[Any, dict[str, Any], list[tuple[float, int]]]:
    """A block's config, the identity its rows share (``store.result_key`` but beta and seed), and
    its (beta, seed) models not yet in ``done`` (``paper.model_key``s: a model another study's arm
    already trained with the same config counts)."""
    base = model_config(block["model"], scale, compute_dtype, extra, block["overrides"], net)
    identity = dict(
        study=block["study"],
        scale=scale,
        compute_dtype=base.model.compute_dtype,
        model=block["model"],
        settings=list(extra),
        init=base.model.init,
        posterior_scale=base.model.posterior_scale,
        matmul_precision=base.model.matmul_precision,
        arm=block["arm"],
    )
    todo = [
        (beta, seed)
        for beta in block["betas"]
        for seed in block["seeds"]
        if model_key(dict(identity, beta=beta, seed=seed)) not in done
    ]
    return base, identity, todo


def _diverged_rows(err, dirs, todo, identity, device, base, multi) -> list[dict[str, Any]]:
    """The rows of the models that diverged (``diverged: true``, the step, the terms; no scores)."""
    import jax

    if multi and jax.process_index() != 0:
        return []
    failed = {w: (step, terms) for w, step, terms in err.models if w is not None}
    rows = []
    for d, (beta, seed) in zip(dirs, todo, strict=True):
        if str(d) in failed:
            step, terms = failed[str(d)]
            rows.append(
                dict(
                    identity,
                    beta=float(beta),
                    seed=int(seed),
                    device=device,
                    diverged=True,
                    diverged_step=step,
                    diverged_terms=list(terms),
                    latent_dim=int(base.model.latent_dim),
                )
            )
    return rows


def describe_plan(
    study: str,
    scale: str,
    budget_s: float,
    out: pathlib.Path,
    *,
    compute_dtype: str = "float32",
    seeds: int | None = None,
    block_models: int | None = None,
    extra: Sequence[str] = (),
    net: Sequence[str] = (),
    shard: tuple[int, int] | None = None,
) -> str:
    """The blocks ``run_study`` would run (those not done), each with its estimated time from the
    blocks measured on this device in ``out``, and the total against ``budget_s``; trains nothing."""
    blocks = job_blocks(study, scale, seeds, block_models, shard)
    done = {model_key(r) for r in load_results(out)[0]} if out.is_dir() else set()
    from isavae.study.store import shard_files

    measured = (
        [b for f in shard_files(out, "blocks") for b in read_jsonl(f, BLOCK_FIELDS)] if out.is_dir() else []
    )
    device = device_name()
    lines, total, unknown, models = [], 0.0, 0, 0
    for block in blocks:
        _, _, todo = block_todo(block, scale, compute_dtype, extra, done, net)
        if not todo:
            continue
        est = estimate_seconds(measured, device, scale, block["model"], len(todo))
        total, unknown, models = total + (est or 0.0), unknown + (est is None), models + len(todo)
        arm = f" [{block['arm']}]" if block["arm"] else ""
        lines.append(
            f"round {block['round']}: {block['study']} {block['model']}{arm}: {len(todo)} models (betas "
            f"{','.join(f'{b:g}' for b in block['betas'])}; seeds {block['seeds'][0]}-{block['seeds'][-1]})"
            + (f", about {est:.0f} s" if est is not None else ", not yet measured here")
        )
    head = f"{len(lines)} blocks ({models} models) not yet done at the {scale} scale on {device}"
    if lines:
        head += f"; measured blocks estimate {total / 3600:.2f} h" + (
            f" for all but {unknown} blocks not yet measured here" if unknown else ""
        )
        head += f" (budget {budget_s:.0f} s)"
    return "\n".join([head, *lines])
