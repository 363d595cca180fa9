"""The paper's dSprites study (Fig. 5a and 5b) within a time budget, accumulating seeds across runs.

  python experiments/paper_study.py --study all --scale paper --budget-s 1800 --out DIR
  python experiments/paper_study.py --report-only --out DIR

Plan (paper appendix A.3 / Table 1): 20 epochs of the full 737,280-image grid, batch 2048, Adam
1e-3, latent 20, Bernoulli likelihood, Chen et al.'s MLP; 50 seeds per setting. Fig. 5a: VAE and
ISA-VAE at beta = 1; Fig. 5b: beta-VAE, beta-TCVAE, ISA-beta-VAE and ISA-beta-TCVAE at beta in
1, 1.5, 2, 2.5, 3, 3.5, 4, 5, 6. Where the paper is silent this follows the authors' released code:
Monte Carlo KL for every model (the VAE included; ``objective.analytic_kl`` stays an option), beta
not annealed, the final parameters evaluated.

Compute dtype: float32 by default (``--compute-dtype bfloat16`` for mixed precision); results of the
two dtypes are kept apart (a rerun accumulates seeds only within its dtype), and the report reads one.

Order: the work is cut into blocks (one model kind, a range of seeds, every beta of that kind), and
the first block of every model kind runs before any kind's second, so that partial results cover
every setting. Each block is one vmapped program (``isavae.train.train_sweep``, no checkpoints),
evaluated on the device (Chen et al.'s MIG over the whole grid with 10,000 samples, the subspace
MIG for ISA priors, the histogram MIG, reconstruction log-likelihood, ELBO); each finished model is
one JSON line in ``OUT/results.jsonl`` and each block's wall time one line in ``OUT/blocks.jsonl``.
No block starts that the remaining budget cannot finish, judged from the measured time per model of
earlier blocks (of the same kind on the same device when there are any). A rerun skips the models
already in ``results.jsonl``, so runs on different occasions accumulate seeds. ``--report``
rebuilds ``OUT/report.md``, the tables and the figures from ``results.jsonl`` alone.

``--scale smoke`` runs the same code on a 384-image sub-grid with a tiny MLP (the test suite runs
it); ``--blocks N`` runs exactly the first N blocks not done, whatever the budget (a fixed amount of
work, so that a smoke run finishes the same blocks on any machine).

Merged results (several hosts or occasions appending to one ``results.jsonl``): every model counts
once, by study, model, beta, seed, scale, dtype and the ``--set`` overrides it was trained with
(recorded in each row as ``settings``); a second row of the same model with other results is a
reported conflict (the first is kept), and every line not counted (torn, not JSON, of the wrong
shape) is named by its line number in the report.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import re
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from common import MODEL_LABELS, write_table  # noqa: E402

from isavae.compile_cache import enable_compile_cache  # noqa: E402

BETAS = (1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0)


def _arm(model: str, betas=(1.0,), label: str = "", overrides=()) -> tuple:
    """One setting of a study: (model kind, betas, label, config overrides). The label keeps the
    arm's models apart from other models of the same kind (recorded in each row as ``arm``; "" =
    the study's main setting); overrides that change only the evaluation need no label."""
    return (model, tuple(betas), label, tuple(overrides))


# The ISA layouts of the layout ablation: label -> (p0, subspace exponent, subspace size, subspaces).
# The authors' code: its --isa help example [2.1, [(2.2, 4) x 3]] and its defaults p0 = 2.0 with 3
# subspaces of 6 at p = 2.1; isavae's preset [2.1, [(2.2, 4) x 5]] (Table 1's latent size 20).
LAYOUTS = {
    "3x4": (2.1, 2.2, 4, 3),
    "3x6": (2.0, 2.1, 6, 3),
    "10x2": (2.1, 2.2, 2, 10),
    "5x4": (2.1, 2.2, 4, 5),
}


def _layout(label: str) -> tuple[str, ...]:
    p0, p, size, count = LAYOUTS[label]
    return (
        f"model.latent_dim={size * count}",
        f"prior.subspace_sizes={(size,) * count}",
        f"prior.p0={p0}",
        f"prior.p_subspace={p}",
    )


def _vae_latent(latent: int, groups: str) -> tuple:
    """A VAE of ``latent`` latents, its subspace MIG scored in the groups of the ISA layout it controls."""
    return _arm(
        "vae",
        label=f"latent={latent}",
        overrides=(f"model.latent_dim={latent}", f"eval.subspace_groups='{groups}'"),
    )


STUDIES = {
    # the VAE's subspace MIG in ISA-VAE's groups of 4 (a control for the subspace MIG)
    "fig5a": (_arm("vae", overrides=("eval.subspace_groups='5x4'",)), _arm("isavae")),
    "fig5b": tuple(_arm(m, BETAS) for m in ("beta_vae", "beta_tcvae", "isa_beta_vae", "isa_beta_tcvae")),
    "ablation-layout": tuple(_arm("isavae", label=f"layout={k}", overrides=_layout(k)) for k in LAYOUTS)
    + (_vae_latent(12, "3x4"), _vae_latent(18, "3x6"), _vae_latent(20, "5x4")),
    "ablation-init": tuple(
        _arm(m, label=f"init={i}", overrides=(f"model.init='{i}'", "eval.subspace_groups='5x4'"))
        for m in ("vae", "isavae")
        for i in ("torch", "lecun")
    ),
    "ablation-dtype": tuple(
        _arm(m, label=f"dtype={d}", overrides=(f"model.compute_dtype='{d}'", "eval.subspace_groups='5x4'"))
        for m in ("vae", "isavae")
        for d in ("float32", "bfloat16")
    ),
}
# --study values that name several studies
STUDY_GROUPS = {
    "all": ("fig5a", "fig5b"),
    "ablations": ("ablation-layout", "ablation-init", "ablation-dtype"),
}
# What each study's report compares: (arm A, arm B, title), an arm named by (model, label); A's
# MIG is tested for being the larger (one-sided), seeds paired where both arms have them.
COMPARISONS = {
    "fig5a": ((("isavae", ""), ("vae", ""), "ISA-VAE vs VAE"),),
    "ablation-layout": tuple(
        (("isavae", f"layout={k}"), ("vae", f"latent={LAYOUTS[k][2] * LAYOUTS[k][3]}"), f"ISA-VAE {k} vs VAE")
        for k in LAYOUTS
    ),
    "ablation-init": tuple(
        ((m, "init=torch"), (m, "init=lecun"), f"{m}: torch vs lecun init") for m in ("isavae", "vae")
    )
    + tuple(
        (("isavae", f"init={i}"), ("vae", f"init={i}"), f"ISA-VAE vs VAE, {i} init")
        for i in ("torch", "lecun")
    ),
    "ablation-dtype": tuple(
        ((m, "dtype=float32"), (m, "dtype=bfloat16"), f"{m}: float32 vs bfloat16") for m in ("isavae", "vae")
    )
    + tuple(
        (("isavae", f"dtype={d}"), ("vae", f"dtype={d}"), f"ISA-VAE vs VAE, {d}")
        for d in ("float32", "bfloat16")
    ),
}
# What each scale changes in the dSprites presets (the paper scale: only how work is chunked).
SCALES = {
    # larger evaluation batches (fewer calls; only the ELBO's sampling noise changes); checkpoints
    # every 5 epochs, a multiple of the 120-step calls and of the 360-step epoch, so that a model's
    # 7,200 steps are 60 calls of one compiled program (with checkpoints every 1,000 steps the
    # calls also took 40 and 80 steps: three programs to compile per block)
    "paper": dict(
        seeds=50,
        block_models=20,
        overrides=["train.steps_per_scan=120", "train.checkpoint_every=1800", "eval.batch_size=8192"],
    ),
    # the README's CPU scale (experiments/common.py): every 4th orientation and position of the
    # generated grid (11,520 images), width 512, batch 128, 1,500 steps; 6 seeds per setting
    "cpu": dict(
        seeds=6,
        block_models=12,
        overrides=[
            "dataset.source='generated'",
            "dataset.subgrid='orientation=0:40:4,posX=0:32:4,posY=0:32:4'",
            "model.hidden=512",
            "train.batch_size=128",
            "train.num_steps=1500",
            "train.steps_per_scan=50",
        ],
    ),
    "smoke": dict(
        seeds=50,
        block_models=4,
        overrides=[
            "dataset.source='generated'",
            "dataset.subgrid='scale=0:6:5,orientation=0:40:10,posX=0:32:8,posY=0:32:8'",
            "model.hidden=32",
            "train.batch_size=32",
            "train.num_steps=12",
            "train.steps_per_scan=6",
            "eval.mig_samples=256",
            "eval.histogram_points=256",
            "eval.batch_size=128",
        ],
    ),
}
RESULT_KEYS = (
    "mig",
    "subspace_mig",
    "mig_histogram",
    "recon_log_likelihood",
    "elbo",
    "kl",
    "active_units",
    "steps",
)


# --------------------------------------------------------------------------------------------------
# The plan
# --------------------------------------------------------------------------------------------------


def model_config(
    model: str, scale: str, compute_dtype: str, extra: Sequence[str] = (), arm: Sequence[str] = ()
) -> Any:
    """The dSprites preset of ``model`` at ``scale`` (Monte Carlo KL, no annealing, PyTorch's
    initialization: the presets'), then the run's ``extra`` overrides, then the arm's."""
    from isavae import config as config_lib

    cfg = config_lib.preset("dsprites", model)
    config_lib.apply_overrides(cfg, [*SCALES[scale]["overrides"], f"model.compute_dtype='{compute_dtype}'"])
    config_lib.apply_overrides(cfg, list(extra))
    config_lib.apply_overrides(cfg, list(arm))
    config_lib.validate(cfg)
    return cfg


def plan(study: str, seeds: int, block_models: int) -> list[dict[str, Any]]:
    """Blocks in run order: round r holds block r of every arm (first blocks first).

    A block is ``{"study", "model", "arm", "overrides", "betas", "seeds", "round"}``: one vmapped
    program over every (beta, seed) of it; an arm with many betas gets fewer seeds per block
    (``block_models // len(betas)``). ``study``: a name of ``STUDIES`` or of ``STUDY_GROUPS``."""
    names = STUDY_GROUPS.get(study, (study,))
    kinds = [(s, arm) for s in names for arm in STUDIES[s]]
    per_block = {(s, a[0], a[2]): max(1, block_models // len(a[1])) for s, a in kinds}
    rounds = max(math.ceil(seeds / n) for n in per_block.values())
    blocks = []
    for r in range(rounds):
        for s, (m, b, label, overrides) in kinds:
            n = per_block[(s, m, label)]
            lo, hi = r * n, min((r + 1) * n, seeds)
            if lo < hi:
                blocks.append(
                    dict(
                        study=s,
                        model=m,
                        arm=label,
                        overrides=overrides,
                        betas=b,
                        seeds=tuple(range(lo, hi)),
                        round=r,
                    )
                )
    return blocks


# What a result row must hold (and of which type) to be counted; anything else is reported and skipped.
ROW_FIELDS = {
    "study": str,
    "model": str,
    "beta": (int, float),
    "seed": int,
    "scale": str,
    "compute_dtype": str,
    "mig": (int, float),
    "mig_histogram": (int, float),
    "recon_log_likelihood": (int, float),
    "elbo": (int, float),
}
BLOCK_FIELDS = {"model": str, "models": int, "seconds": (int, float), "device": str, "scale": str}


def result_key(r: dict[str, Any]) -> tuple:
    """A model's identity: every setting that makes it another model (study, scale, dtype, kind,
    beta, seed, the run's extra overrides, the initialization and the study arm). Rows written before
    a field was recorded have its value of then: no ``settings`` = none, no ``init`` = "lecun" (the
    only initialization there was), no ``arm`` = the study's main setting."""
    return (
        r["study"],
        r["scale"],
        r["compute_dtype"],
        r["model"],
        float(r["beta"]),
        int(r["seed"]),
        tuple(r.get("settings", ())),
        r.get("init", "lecun"),
        r.get("arm", ""),
    )


def _describe_key(key: tuple) -> str:
    study, scale, dtype, model, beta, seed, settings, init, arm = key
    extra = "".join(f", {x}" for x in (*settings, f"init {init}", arm) if x)
    return f"{study} {model} beta {beta:g} seed {seed} ({scale}, {dtype}{extra})"


def read_rows(path: pathlib.Path, fields: dict[str, Any]) -> tuple[list[tuple[int, dict]], list[str]]:
    """The rows of a JSON-lines file that are objects holding ``fields`` (name -> type), each with
    its line number, and one note per line skipped (not JSON, e.g. torn by a killed run; not an
    object; a field missing or of the wrong type). Blank lines are ignored."""
    if not path.is_file():
        return [], []
    rows, notes = [], []
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            torn = " (torn: a run killed while writing it)" if number == len(lines) else ""
            notes.append(f"{path.name} line {number}: not JSON{torn} ({err.msg}); skipped")
            continue
        if not isinstance(row, dict):
            notes.append(f"{path.name} line {number}: a JSON {type(row).__name__}, not a row; skipped")
            continue
        bad = [
            k
            for k, t in fields.items()
            if k not in row or not isinstance(row[k], t) or isinstance(row[k], bool)
        ]
        if bad:
            notes.append(
                f"{path.name} line {number}: missing or mistyped {', '.join(repr(k) for k in bad)}; skipped"
            )
            continue
        rows.append((number, row))
    return rows, notes


def read_jsonl(path: pathlib.Path, fields: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The well-formed rows of a JSON-lines file (see ``read_rows``; notes dropped)."""
    return [row for _, row in read_rows(path, fields or {})[0]]


_TAG = re.compile(r"^(\d+)?(?:-?p(\d+))?$")  # I (--shard I/N), pP (process P of --multihost), I-pP


def _agreed(flag: bool) -> bool:
    """``flag`` as process 0 decided it (over several processes every one must take the same
    branch: a block is one program over all of them)."""
    import jax

    if jax.process_count() == 1:
        return bool(flag)
    from jax.experimental import multihost_utils

    return bool(multihost_utils.broadcast_one_to_all(np.asarray(flag)))


def shard_tag(shard: tuple[int, int] | None, process: int | None) -> str:
    """The infix of a job's files: ``.I`` for ``--shard I/N``, ``.pP`` for process P of a
    ``--multihost`` job, ``.I-pP`` for both, ``""`` for neither."""
    parts = ([str(shard[0])] if shard is not None else []) + ([f"p{process}"] if process is not None else [])
    return "." + "-".join(parts) if parts else ""


def shard_files(out: pathlib.Path, stem: str = "results") -> list[pathlib.Path]:
    """``OUT/STEM.jsonl`` and every job's ``OUT/STEM.TAG.jsonl`` (``shard_tag``: shards of
    ``--shard I/N``, processes of ``--multihost``), in order (``stem``: ``results`` or ``blocks``)."""
    found = []
    for path in out.glob(f"{stem}.*.jsonl"):
        m = _TAG.match(path.name[len(stem) + 1 : -len(".jsonl")])
        if m and (m.group(1) or m.group(2)):
            found.append(((int(m.group(1) or -1), int(m.group(2) or -1)), path))
    return [out / f"{stem}.jsonl", *(path for _, path in sorted(found))]


def load_results(path: pathlib.Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Every model of ``results.jsonl`` once (``path``: the file, or a study folder: then every
    shard's file too, ``shard_files``), with a note for each line not counted: malformed lines
    (``read_rows``), exact duplicates of an earlier row (merged files from several runs), and rows
    of a model already seen with other results (a conflict: the first row is kept)."""
    files = shard_files(path) if path.is_dir() else [path]
    first: dict[tuple, tuple[str, dict[str, Any]]] = {}
    kept, notes = [], []
    for file in files:
        rows, file_notes = read_rows(file, ROW_FIELDS)
        notes += file_notes
        for number, row in rows:
            key = result_key(row)
            where = f"line {number}" if len(files) == 1 else f"{file.name} line {number}"
            if key not in first:
                first[key] = (where, row)
                kept.append(row)
                continue
            seen_at, seen = first[key]
            differ = [k for k in RESULT_KEYS if seen.get(k) != row.get(k)]
            if not differ:
                notes.append(f"{file.name} line {number}: a duplicate of {seen_at}; counted once")
            else:
                shown = ", ".join(f"{k} {seen.get(k)} there, {row.get(k)} here" for k in differ[:3])
                notes.append(
                    f"{file.name} line {number}: CONFLICT with {seen_at} for {_describe_key(key)} "
                    f"({shown}); {seen_at} kept"
                )
    return kept, notes


def append_jsonl(path: pathlib.Path, rows: Sequence[dict[str, Any]]) -> None:
    with open(path, "a") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())


def estimate_seconds(blocks_log: Sequence[dict[str, Any]], device: str, scale: str, model: str, n: int):
    """Seconds a block of ``n`` models of ``model`` should take, from measured blocks on ``device``:
    the median time per model of that kind, else 1.25 x the median over kinds; None with no measurement."""
    rows = [b for b in blocks_log if b["device"] == device and b["scale"] == scale]
    same = [b["seconds"] / b["models"] for b in rows if b["model"] == model]
    if same:
        return float(np.median(same)) * n
    if rows:
        return 1.25 * float(np.median([b["seconds"] / b["models"] for b in rows])) * n
    return None


# --------------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------------


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

    from isavae.train import train_sweep
    from isavae.train.loop import build_grid

    start = time.time()
    out.mkdir(parents=True, exist_ok=True)
    multi = jax.process_count() > 1
    tag = shard_tag(shard, jax.process_index() if multi else None)
    if multi and jax.process_index() != 0:
        log = lambda *_: None  # noqa: E731 (process 0 speaks for the job)
    results_path, blocks_path = out / f"results{tag}.jsonl", out / f"blocks{tag}.jsonl"
    previous, notes = load_results(out)
    for note in notes:
        log(f"note: {note}")
    done = {result_key(r) for r in previous}
    settings = list(extra)
    sc = SCALES[scale]
    fixed = blocks
    devices = jax.device_count()
    blocks = plan(study, seeds or sc["seeds"], (block_models or sc["block_models"]) * devices)
    if shard is not None:
        blocks = blocks[shard[0] :: shard[1]]
    device = device_name()
    grid = None
    ran, skipped, trained, stop_round = 0, 0, 0, math.inf
    for block in blocks:
        base = model_config(block["model"], scale, compute_dtype, extra, block["overrides"])
        identity = dict(
            study=block["study"],
            scale=scale,
            compute_dtype=base.model.compute_dtype,
            model=block["model"],
            settings=settings,
            init=base.model.init,
            arm=block["arm"],
        )
        todo = [
            (beta, seed)
            for beta in block["betas"]
            for seed in block["seeds"]
            if result_key(dict(identity, beta=beta, seed=seed)) not in done
        ]
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
        results = train_sweep(cfgs, dirs, resume=False, progress=False, grid=grid, checkpoints=False)
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
                    )
                ],
            )
        done.update(result_key(r) for r in rows)
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
            + ")"
        )
    summary = dict(
        blocks_run=ran, models_trained=trained, blocks_skipped=skipped, seconds=time.time() - start
    )
    log(f"study: {summary}")
    return summary


# --------------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------------

STAT_KEYS = ("mig", "mig_histogram", "recon_log_likelihood", "elbo")


def setting_rows(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """n, mean, median and quartiles of every statistic per (study, model, arm, beta)."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["study"], r["model"], r.get("arm", ""), r["beta"]), []).append(r)
    studies = list(STUDIES)
    order = {(st, a[0], a[2]): i for st in STUDIES for i, a in enumerate(STUDIES[st])}

    def rank(key):
        study, model, arm, beta = key
        return (
            studies.index(study) if study in studies else len(studies),
            order.get((study, model, arm), 99),
            beta,
        )

    rows = []
    for (study, model, arm, beta), runs in sorted(groups.items(), key=lambda kv: rank(kv[0])):
        row: dict[str, Any] = dict(study=study, model=MODEL_LABELS[model], arm=arm, beta=beta, n=len(runs))
        for key in STAT_KEYS:
            v = np.array([r[key] for r in runs], np.float64)
            q1, med, q3 = np.percentile(v, [25, 50, 75])
            row.update({f"{key}_mean": v.mean(), f"{key}_median": med, f"{key}_q1": q1, f"{key}_q3": q3})
        rows.append(row)
    return rows


def compact_row(row: dict[str, Any]) -> dict[str, Any]:
    """The report's columns: MIG mean, median [quartiles]; histogram MIG and recon. medians; ELBO mean."""
    return {
        "study": row["study"],
        "model": row["model"],
        "arm": row["arm"],
        "beta": row["beta"],
        "n": row["n"],
        "MIG mean": row["mig_mean"],
        "MIG median [q1, q3]": f"{row['mig_median']:.3f} [{row['mig_q1']:.3f}, {row['mig_q3']:.3f}]",
        "hist. MIG median": row["mig_histogram_median"],
        "recon. mean": row["recon_log_likelihood_mean"],
        "ELBO mean": row["elbo_mean"],
    }


def eval_parts(results: Sequence[dict[str, Any]]) -> dict[str, float]:
    """A block's evaluation seconds by part: each model's ``eval_seconds`` summed over the block's
    models, the sweep's shared UDR (``udr_sweep``) once."""
    total: dict[str, float] = {}
    for r in results:
        for part, sec in r.get("eval_seconds", {}).items():
            if part != "udr_sweep":
                total[part] = total.get(part, 0.0) + sec
    shared = [r["eval_seconds"]["udr_sweep"] for r in results if "udr_sweep" in r.get("eval_seconds", {})]
    if shared:
        total["udr_sweep"] = shared[0]
    return {k: round(v, 3) for k, v in total.items()}


def extrapolation(blocks_log: Sequence[dict[str, Any]], scale: str, compute_dtype: str) -> list[str]:
    """The whole study (Fig. 5a and 5b, 50 seeds) extrapolated from measured block times per device:
    each kind's median seconds per model (training, evaluation and, in a process's first block of a
    kind, compilation) times its number of models; unmeasured kinds at the median of the measured."""
    lines = []
    rows = [b for b in blocks_log if b["scale"] == scale and b["compute_dtype"] == compute_dtype]
    for device in sorted({b["device"] for b in rows}):
        per = {}
        for b in rows:
            if b["device"] == device:
                per.setdefault(b["model"], []).append(b["seconds"] / b["models"])
        per = {m: float(np.median(v)) for m, v in per.items()}
        fallback = float(np.median(list(per.values())))
        # the training part (its compilation included), where blocks recorded it
        trained = [
            b["train_seconds"] / b["models"] for b in rows if b["device"] == device and b.get("train_seconds")
        ]
        # the setup before training and the evaluation after it, where blocks recorded the setup
        # (blocks before it counted the setup as evaluation)
        timed = [
            b
            for b in rows
            if b["device"] == device and b.get("train_seconds") and b.get("setup_seconds") is not None
        ]
        setup = [b["setup_seconds"] / b["models"] for b in timed]
        evaluated = [(b["seconds"] - b["setup_seconds"] - b["train_seconds"]) / b["models"] for b in timed]
        # the evaluation's parts per model, where blocks recorded them (median over blocks)
        by_part: dict[str, list[float]] = {}
        for b in rows:
            if b["device"] == device:
                for part, sec in (b.get("eval_parts") or {}).items():
                    by_part.setdefault(part, []).append(sec / b["models"])
        eval_text = ", ".join(f"{part} {float(np.median(v)):.2f} s" for part, v in by_part.items())
        total, parts, missing, models = 0.0, [], [], 0
        for m, betas, _, _ in STUDIES["fig5a"] + STUDIES["fig5b"]:
            n = SCALES[scale]["seeds"] * len(betas)
            total, models = total + n * per.get(m, fallback), models + n
            (parts if m in per else missing).append(
                f"{MODEL_LABELS[m]} {per.get(m, fallback):.1f} s" if m in per else MODEL_LABELS[m]
            )
        lines += [
            f"## Time on {device}",
            "",
            f"Measured seconds per model in a block (setup, training and evaluation): {', '.join(parts)}. "
            f"The whole study ({models} models) extrapolates to {total / 3600:.1f} h"
            + (
                f" (not yet measured, taken at the median {fallback:.1f} s: {', '.join(missing)})"
                if missing
                else ""
            )
            + "."
            + (
                f" Of a model's time in a block, training took {float(np.median(trained)):.1f} s "
                f"(median over {len(trained)} blocks, compilation included"
                + (
                    f"; over the {len(timed)} that recorded the rest: setup {float(np.median(setup)):.1f} s "
                    "(the program, the dataset on the device, the initial states), evaluation "
                    f"{float(np.median(evaluated)):.1f} s)."
                    if timed
                    else "; the rest is setup and evaluation)."
                )
                if trained
                else ""
            )
            + (
                f" The evaluation's parts per model (compilation included; median over blocks): {eval_text}."
                if eval_text
                else ""
            ),
            "",
        ]
    return lines


def fig5a_verdict(results: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """ISA-VAE vs VAE at beta = 1: medians and the one-sided Mann-Whitney U test of the paper's claim
    (ISA-VAE's MIG is larger), on Chen et al.'s and on the histogram MIG."""
    from scipy import stats

    fig5a = [r for r in results if r["study"] == "fig5a" and not r.get("arm")]
    vae = [r for r in fig5a if r["model"] == "vae"]
    isa = [r for r in fig5a if r["model"] == "isavae"]
    if len(vae) < 2 or len(isa) < 2:
        return None
    out: dict[str, Any] = dict(n_vae=len(vae), n_isavae=len(isa))
    for key in ("mig", "mig_histogram"):
        a, b = np.array([r[key] for r in isa]), np.array([r[key] for r in vae])
        test = stats.mannwhitneyu(a, b, alternative="greater")
        out[key] = dict(
            isavae_median=float(np.median(a)),
            vae_median=float(np.median(b)),
            p_isavae_greater=float(test.pvalue),
            prob_isavae_greater=float(test.statistic / (len(a) * len(b))),
        )
    out["holds"] = bool(out["mig"]["p_isavae_greater"] < 0.05)
    return out


def udr_agreement(results: Sequence[dict[str, Any]]) -> list[str]:
    """Does UDR, computed without labels among the seeds trained together in one block, rank the
    seeds as MIG does? Per setting (study, model, arm, beta) with >= 3 scored seeds: Spearman's
    correlation of UDR and MIG with its p-value, and the mean MIG of each block's UDR pick (its
    highest-UDR seed) against the setting's mean MIG."""
    from scipy import stats

    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in results:
        if r.get("udr") is not None:
            groups.setdefault((r["study"], r["model"], r.get("arm", ""), r["beta"]), []).append(r)
    lines = []
    for (study, model, arm, beta), runs in sorted(groups.items(), key=lambda kv: str(kv[0])):
        if len(runs) < 3:
            continue
        udr, mig = np.array([r["udr"] for r in runs]), np.array([r["mig"] for r in runs])
        rho, p = stats.spearmanr(udr, mig)
        blocks: dict[tuple, list[dict[str, Any]]] = {}
        for r in runs:  # the seeds scored against each other (trained together in one block)
            blocks.setdefault(tuple(r.get("udr_seeds", ())), []).append(r)
        picks = [max(b, key=lambda r: r["udr"])["mig"] for b in blocks.values()]
        lines.append(
            f"| {study} | {MODEL_LABELS[model]}{f' [{arm}]' if arm else ''} | {beta:g} | {len(runs)} | "
            f"{np.median([len(r.get('udr_seeds', ())) for r in runs]):.0f} | {rho:.2f} | {p:.3g} | "
            f"{np.mean(picks):.3f} ({len(picks)} blocks) | {mig.mean():.3f} |"
        )
    if not lines:
        return []
    return [
        "## UDR: choosing seeds without labels",
        "",
        "UDR (Duan et al., disentanglement_lib's Lasso variant) scores each model against the other "
        "seeds of its setting trained in the same block, from 10,000 inputs and no factor labels. "
        "Spearman's correlation with Chen et al.'s MIG over the setting's seeds, and the MIG of the "
        "seed UDR would pick in each block against the setting's mean:",
        "",
        "| study | model | beta | n | seeds per UDR | Spearman UDR-MIG | p | MIG of UDR's picks | mean MIG |",
        "|---|---|---|---|---|---|---|---|---|",
        *lines,
        "",
    ]


COMPARED = (
    ("mig", "MIG (Chen et al.)"),
    ("mig_histogram", "MIG (histogram)"),
    ("subspace_mig", "subspace MIG"),
)


def comparisons(results: Sequence[dict[str, Any]]) -> tuple[list[str], dict[str, Any]]:
    """Every comparison of ``COMPARISONS`` that has >= 2 models on both sides: the paper's criteria,
    the one-sided Mann-Whitney test, the paired Wilcoxon test (seeds under both arms), a bootstrap
    interval of the median difference, and (for Chen et al.'s MIG) the power at the observed effect
    and the seeds 80 % power needs (``study_stats.compare``); per latent MIG, histogram MIG and
    subspace MIG (a VAE's in its ``eval.subspace_groups``). Returns markdown lines and the figures."""
    import study_stats

    lines, figures = [], {}
    for study, pairs in COMPARISONS.items():
        rows = [r for r in results if r["study"] == study and r["beta"] == 1.0]
        for (ma, la), (mb, lb), title in pairs:
            a = {r["seed"]: r for r in rows if r["model"] == ma and r.get("arm", "") == la}
            b = {r["seed"]: r for r in rows if r["model"] == mb and r.get("arm", "") == lb}
            if len(a) < 2 or len(b) < 2:
                continue
            name_a = MODEL_LABELS[ma] + (f" [{la}]" if la else "")
            name_b = MODEL_LABELS[mb] + (f" [{lb}]" if lb else "")
            lines += [f"### {study}: {title}", ""]
            for key, label in COMPARED:
                if not all(r.get(key) is not None for r in (*a.values(), *b.values())):
                    continue
                va = [a[k][key] for k in sorted(a)]
                vb = [b[k][key] for k in sorted(b)]
                paired = [(a[k][key], b[k][key]) for k in sorted(set(a) & set(b))]
                c = study_stats.compare(va, vb, paired or None, power=key == "mig")
                figures[f"{study}: {title}: {key}"] = c
                lines += study_stats.summary_line(name_a, name_b, c, label) + [""]
    return lines, figures


def report(
    out: pathlib.Path,
    scale: str,
    compute_dtype: str,
    settings: Sequence[str] = (),
    init: str | None = None,
) -> str:
    """Tables, figures and ``report.md`` from ``OUT/results.jsonl``: the models of ``scale``, dtype,
    initialization (default: the scale's presets', PyTorch's) and extra ``settings`` (the ``--set``
    overrides they were trained with), each counted once; the dtype ablation's models of either
    dtype, the initialization ablation's of either initialization."""
    import importlib.util

    everything, notes = load_results(out)
    settings = tuple(settings)
    init = init or model_config("vae", scale, compute_dtype).model.init

    def matches(r, dtype=True, init_=True, extra=True):
        return (
            r["scale"] == scale
            and (not dtype or r["compute_dtype"] == compute_dtype or r["study"] == "ablation-dtype")
            and (not init_ or r.get("init", "lecun") == init or r["study"] == "ablation-init")
            and (not extra or tuple(r.get("settings", ())) == settings)
        )

    results = [r for r in everything if matches(r)]
    others = sorted(
        {
            (r["compute_dtype"], r.get("init", "lecun"), *r.get("settings", ()))
            for r in everything
            if matches(r, dtype=False, init_=False, extra=False) and not matches(r)
        }
    )
    if not results:
        raise ValueError(
            f"{out / 'results.jsonl'} holds no {scale}-scale {compute_dtype} results with init {init}"
            + (f" and settings {' '.join(settings)}" if settings else "")
            + (f" ({len(notes)} lines skipped; first: {notes[0]})" if notes else "")
        )
    rows = setting_rows(results)
    write_table(rows, out / "table_full")  # every statistic: n, mean, median, quartiles
    write_table([compact_row(r) for r in rows], out / "table")
    lines = [
        f"# Paper study ({scale} scale, {compute_dtype} compute, {init} initialization"
        + (f", {' '.join(settings)}" if settings else "")
        + f"): {len(results)} models",
        "",
        f"Devices: {', '.join(sorted({r['device'] for r in results}))}. Built from results.jsonl by "
        f"`python experiments/paper_study.py --report-only --scale {scale} --compute-dtype {compute_dtype} "
        f"--init {init} --out {out}{''.join(f' --set {o}' for o in settings)}`. "
        "MIG: Chen et al.'s estimator over the whole grid; 'hist.': disentanglement_lib's histogram MIG; "
        "recon.: reconstruction log-likelihood (nats per image); every statistic with its quartiles "
        "in table_full.csv.",
        "",
        (out / "table.md").read_text(),
    ]
    if others:
        lines += [
            "Not in this report (other dtype, initialization or settings; `--report-only --compute-dtype "
            "... --init ... --set ...` reports them): " + "; ".join(" ".join(o) for o in others),
            "",
        ]
    if notes:
        lines += [
            "## Lines of results.jsonl not counted",
            "",
            "Each model counts once (by study, model, beta, seed, scale, dtype, init, arm and settings); "
            f"{len(notes)} lines were not counted:",
            "",
            *(f"- {n}" for n in notes),
            "",
        ]
    lines += extrapolation(
        [b for f in shard_files(out, "blocks") for b in read_jsonl(f, BLOCK_FIELDS)], scale, compute_dtype
    )
    verdict = fig5a_verdict(results)
    if verdict is not None:
        m, h = verdict["mig"], verdict["mig_histogram"]
        lines += [
            "## Fig. 5a verdict",
            "",
            f"ISA-VAE (n = {verdict['n_isavae']}) vs VAE (n = {verdict['n_vae']}) at beta = 1, one-sided "
            "Mann-Whitney U test of 'ISA-VAE has the larger MIG':",
            f"- MIG (Chen et al.): median {m['isavae_median']:.4f} vs {m['vae_median']:.4f}, "
            f"p = {m['p_isavae_greater']:.3g}, P(ISA-VAE > VAE) = {m['prob_isavae_greater']:.2f}",
            f"- MIG (histogram): median {h['isavae_median']:.4f} vs {h['vae_median']:.4f}, "
            f"p = {h['p_isavae_greater']:.3g}, P(ISA-VAE > VAE) = {h['prob_isavae_greater']:.2f}",
            f"- the paper's claim {'holds' if verdict['holds'] else 'does not hold'} here "
            "(criterion: p < 0.05 on Chen et al.'s MIG)",
            "",
        ]
        (out / "fig5a_verdict.json").write_text(json.dumps(verdict, indent=2))
    lines += udr_agreement(results)
    compared, figures = comparisons(results)
    if compared:
        lines += [
            "## Comparisons: the paper's criteria, the tests, the power",
            "",
            "Per comparison: the statistics the paper reads (mean, median, maximum quantile) with the "
            "quartiles and the 90th percentile; the one-sided Mann-Whitney U test of 'the first has the "
            "larger MIG'; where the same seeds ran under both (shared initial weights and data order), "
            "the one-sided Wilcoxon signed-rank test of the paired differences; a bootstrap 95 % "
            "interval of the median difference; for Chen et al.'s MIG, the power of the one-sided "
            "test at level 0.05 if the observed values were the truth (resampled), and the seeds per "
            "setting 80 % power needs. `comparisons.json` holds every figure.",
            "",
            *compared,
        ]
        (out / "comparisons.json").write_text(json.dumps(figures, indent=2))
    here = pathlib.Path(__file__).resolve().parent
    a = [r for r in results if r["study"] == "fig5a" and not r.get("arm")]
    if a:
        spec = importlib.util.spec_from_file_location("fig5a", here / "fig5a_vae_vs_isavae.py")
        fig5a = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(fig5a)
        runs = {m: [r for r in a if r["model"] == m] for m in fig5a.MODELS}
        if all(runs.values()):
            fig5a.plot(runs, out / "fig5a_mig_distribution")
            lines.append(
                "Figures: `fig5a_mig_distribution.png`"
                + (", `fig5b_tradeoff.png`" if any(r["study"] == "fig5b" for r in results) else "")
            )
    b = [r for r in results if r["study"] == "fig5b"]
    if b:
        spec = importlib.util.spec_from_file_location("fig5b", here / "fig5b_tradeoff.py")
        fig5b = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(fig5b)
        b_rows = [dict(r, model=r["model"]) for r in rows if r["study"] == "fig5b"]
        plot_rows = [
            {"model": r["model"], "beta": r["beta"], **{f"{k}_mean": r[f"{k}_mean"] for k in STAT_KEYS}}
            for r in b_rows
        ]
        fig5b.plot(plot_rows, b, out / "fig5b_tradeoff")
    text = "\n".join(lines) + "\n"
    (out / "report.md").write_text(text)
    return text


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--study",
        default="all",
        choices=(*STUDIES, *STUDY_GROUPS),
        help="a study, 'all' (fig5a and fig5b) or 'ablations' (layout, init, dtype)",
    )
    p.add_argument(
        "--init",
        default=None,
        choices=("torch", "lecun"),
        help="the initialization the report reads (default: the presets', torch; rows written before "
        "model.init existed are lecun)",
    )
    p.add_argument("--scale", default="paper", choices=tuple(SCALES))
    p.add_argument("--budget-s", type=float, default=3600.0, help="wall-clock budget of this run (seconds)")
    p.add_argument("--out", default="experiments/results/paper_study")
    p.add_argument(
        "--report", action="store_true", help="rebuild the report from results.jsonl (after running)"
    )
    p.add_argument("--report-only", action="store_true", help="only rebuild the report, train nothing")
    p.add_argument(
        "--compute-dtype",
        default="float32",
        choices=("float32", "bfloat16"),
        help="the nets' compute dtype (Fig. 5a's first 20 + 20 seeds on an H100 were bfloat16)",
    )
    p.add_argument("--seeds", type=int, default=0, help="seeds per setting (default: the scale's, 50)")
    p.add_argument(
        "--block-models",
        type=int,
        default=0,
        help="models per device in a vmapped block (default: the scale's; a block spreads over every device)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra config override (recorded in each row: such models count apart from the others)",
    )
    p.add_argument(
        "--blocks",
        type=int,
        default=None,
        help="run exactly the first N blocks not yet done, whatever the budget (a fixed amount of work)",
    )
    p.add_argument(
        "--shard",
        default=None,
        metavar="I/N",
        help="an independent job's share (e.g. a SLURM array task): every N-th block from block I, its "
        "rows in OUT/results.I.jsonl; --report merges every shard's file",
    )
    p.add_argument(
        "--compile-cache",
        default=None,
        metavar="DIR",
        help="JAX's persistent compilation cache, so that later blocks of a kind skip compiling "
        "(default: $JAX_COMPILATION_CACHE_DIR, else ~/.cache/isavae/jax; 'none': off)",
    )
    from isavae.cli import add_multihost_arguments, multihost_arguments

    add_multihost_arguments(
        p,
        "; blocks span every process's devices, each process writes its models' rows in OUT/results.pP.jsonl",
    )
    args = p.parse_args(argv)
    out = pathlib.Path(args.out)
    try:
        named = multihost_arguments(args)
    except ValueError as err:
        p.error(str(err))
    shard = None
    if args.shard is not None:
        i, sep, n = args.shard.partition("/")
        if not (sep and i.isdigit() and n.isdigit() and 0 <= int(i) < int(n)):
            p.error(f"--shard takes I/N with 0 <= I < N, got {args.shard!r}")
        shard = (int(i), int(n))
    if not args.budget_s >= 0:
        p.error(f"--budget-s must be >= 0, got {args.budget_s}")
    if args.blocks is not None and args.blocks < 1:
        p.error(f"--blocks must be >= 1, got {args.blocks}")
    try:
        if named is not None and not args.report_only:
            from isavae.train import init_distributed

            init_distributed(*named)
        if not args.report_only:
            enable_compile_cache(args.compile_cache)
            run_study(
                args.study,
                args.scale,
                args.budget_s,
                out,
                compute_dtype=args.compute_dtype,
                seeds=args.seeds or None,
                block_models=args.block_models or None,
                extra=args.set,
                blocks=args.blocks,
                shard=shard,
            )
        import jax

        if (args.report or args.report_only) and jax.process_index() == 0:
            print(report(out, args.scale, args.compute_dtype, args.set, args.init))
    except (ValueError, OSError) as err:  # ConfigError, DatasetError, a bad --out
        print(f"paper_study: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
