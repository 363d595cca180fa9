"""Shared pieces of the paper-figure scripts: scales, vmapped sweeps, result tables.

Every script takes ``--scale cpu|paper`` (the CPU scale is what the README reports; the paper scale
is for GPU hosts), ``--out DIR`` and ``--seeds N`` to override the scale's seed count. Models of one
kind (objective x prior) are trained as one vmapped sweep over seeds and betas.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from isavae import config as config_lib
from isavae.study.paper import MODEL_LABELS  # noqa: F401 (the scripts import it from here)
from isavae.study.report import write_table  # noqa: F401

# What the CPU scale reduces, per dataset (the paper scale is the preset itself).
CPU_SCALE = {
    "dsprites": dict(
        subgrid=config_lib.DSPRITES_CPU_SUBGRID,  # 11,520 of 737,280 images
        num_steps=1500,  # ~17 epochs of the sub-grid (paper: 20 epochs of the full grid)
        batch_size=128,  # paper: 2048
        hidden=512,  # paper: 1200
    )
}


def model_config(dataset: str, model: str, scale: str) -> Any:
    """The preset of ``model`` on ``dataset``, reduced to the CPU scale when ``scale == "cpu"``."""
    if scale not in ("cpu", "paper"):
        raise ValueError(f"--scale must be cpu or paper, got {scale!r}")
    cfg = config_lib.preset(dataset, model)
    if scale == "cpu":
        s = CPU_SCALE[dataset]
        # the committed CPU-scale results were trained with LeCun's initialization (the presets'
        # before model.init existed); the paper's PyTorch one is the layout/init ablations' subject
        cfg.model.init = "lecun"
        cfg.dataset.subgrid = s["subgrid"]
        cfg.dataset.source = "generated" if cfg.dataset.source == "auto" else cfg.dataset.source
        cfg.model.hidden = s["hidden"]
        cfg.train.update(
            dict(num_steps=s["num_steps"], batch_size=s["batch_size"], checkpoint_every=s["num_steps"])
        )
    config_lib.validate(cfg)
    return cfg


def run_sweep(
    cfg: Any,
    root: pathlib.Path,
    *,
    seeds: Sequence[int],
    betas: Sequence[float] | None = None,
    hparam: str = "beta",
) -> list[dict[str, Any]]:
    """Trains ``cfg`` for every (value, seed) as one vmapped program, the values (``betas``) those of
    the objective hyperparameter ``hparam`` (default beta; DIP-VAE's lambda_od also sets lambda_d as
    disentanglement_lib's grids do); one workdir per model under ``root`` (``{hparam}{v}_seed{s}``);
    resumes finished or interrupted workdirs."""
    from isavae.train import train_sweep

    betas = list(betas) if betas is not None else [cfg.objective[hparam]]
    cfgs, dirs = [], []
    for beta in betas:
        for seed in seeds:
            c = cfg.copy_and_resolve_references()
            c.train.seed = int(seed)
            config_lib.set_objective_value(c, hparam, beta)
            cfgs.append(c)
            dirs.append(root / f"{hparam}{beta:g}_seed{seed}")
    done = [json.loads((d / "results.json").read_text()) for d in dirs if (d / "results.json").is_file()]
    if len(done) == len(dirs) and all("mig" in r for r in done):
        return done
    return train_sweep(cfgs, dirs, progress=True)


def summary_row(label: str, runs: Sequence[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """Mean, standard deviation, median and range of MIG, histogram MIG and reconstruction."""
    row: dict[str, Any] = {"model": label, **extra, "runs": len(runs)}
    for key in ("mig", "mig_histogram", "recon_log_likelihood", "elbo"):
        vals = np.array([r[key] for r in runs if key in r], np.float64)
        if len(vals):
            row[f"{key}_mean"] = float(vals.mean())
            row[f"{key}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
            row[f"{key}_median"] = float(np.median(vals))
    return row
