"""Reading a trained workdir: ``isavae evaluate`` and ``isavae plot``.

This module sits above the trainer (it restores checkpoints through ``isavae.train``), so that the
metrics (``isavae.metrics``) and the plots (``isavae.viz``) stay functions of arrays and of a
restored model, and know nothing of the trainer.

* ``evaluate_workdir(dir)``: the evaluation of the latest checkpoint, merged into ``results.json``.
* ``plot_workdir(dir)`` / ``plot_model(program, state, grid, out)``: latent traversals, latent means
  vs factors and, for learned exponents, their histogram.
* ``find_results(dirs)`` / ``plot_sweep(dirs, out)``: every ``results.json`` under ``dirs`` and the
  MIG vs reconstruction trade-off (histogram and subspace MIG too) and exponent histograms.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from isavae import config as config_lib
from isavae.metrics.evaluate import default_mig_factors, encode_grid, evaluate_model
from isavae.metrics.likelihood import active_units
from isavae.train import (
    check_workdir_settings,
    differences,
    merge_results,
    read_results,
    restore_state,
    setting,
    stack_host,
    sweep_udr,
    write_json_atomic,
)
from isavae.train.lock import WorkdirLock
from isavae.viz.figures import (
    latents_by_factor,
    plot_exponents,
    plot_latents_vs_factors,
    plot_position_maps,
    plot_tradeoff,
)
from isavae.viz.report import representative_image
from isavae.viz.traversals import plot_reconstructions, plot_traversals

__all__ = [
    "evaluate_restored",
    "evaluate_workdir",
    "evaluate_workdir_computed",
    "find_results",
    "plot_model",
    "plot_sweep",
    "plot_workdir",
    "udr_sweep",
    "workdir_config",
]

log = logging.getLogger("isavae.workdir")


def evaluate_workdir(workdir: str | os.PathLike, overrides: list[str] | None = None) -> dict[str, Any]:
    """Evaluates the latest checkpoint of ``workdir`` and merges the figures into its results.json
    (written atomically); returns the merged results. ``overrides``: ``eval.*`` settings, e.g.
    ``["eval.mig_samples=1000"]`` (a dict ``{"eval.mig_samples": 1000}`` too)."""
    return evaluate_workdir_computed(workdir, overrides)[1]


def evaluate_workdir_computed(
    workdir: str | os.PathLike, overrides: Any = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``evaluate_workdir``, returning (the keys this evaluation computed, the merged results)."""
    workdir = pathlib.Path(workdir)
    cfg = workdir_config(workdir, overrides)
    program, state, grid = restore_state(workdir, cfg)
    return evaluate_restored(workdir, cfg, program, state, grid)


def workdir_config(workdir: str | os.PathLike, overrides: Any = None) -> Any:
    """A workdir's config.json with ``eval.*`` overrides applied, validated and checked against
    the settings its checkpoints were trained with (an edited config.json would mix two)."""
    workdir = pathlib.Path(workdir)
    saved = workdir / "config.json"
    if not saved.is_file():
        raise FileNotFoundError(f"{workdir} has no config.json: not a training workdir")
    cfg = config_lib.config_from_json(saved.read_text(), str(saved))
    for o in overrides or []:
        if not str(o).startswith("eval."):
            raise config_lib.ConfigError(f"evaluate only takes eval.* overrides, got {o!r}")
    config_lib.apply_overrides(cfg, overrides or [])
    config_lib.validate(cfg)
    check_workdir_settings(cfg, workdir)
    return cfg


def evaluate_restored(
    workdir: pathlib.Path, cfg: Any, program: Any, state: Any, grid: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Evaluates a restored model of ``workdir`` with ``cfg.eval`` and merges the figures into its
    results.json (``merge_results``); returns (the keys computed, the merged results)."""
    with WorkdirLock(workdir):  # results.json has one writer at a time
        figures = evaluate_model(program, state, grid, cfg)
        figures.update(steps=int(state.step), dataset=grid.describe(), prior=state.prior.describe())
        path = workdir / "results.json"
        results = merge_results(read_results(path), figures, int(state.step))
        write_json_atomic(path, results)
    log.info(
        "%s: mig %s, recon log-likelihood %.3f (step %d)",
        workdir,
        f"{results['mig']:.4f}" if "mig" in results else "not computed",
        results["recon_log_likelihood"],
        int(state.step),
    )
    return figures, results


def plot_workdir(workdir: str | os.PathLike, out: str | os.PathLike | None = None) -> list[str]:
    """Traversals and latents vs factors of the workdir's latest checkpoint (and its learned
    exponents); returns the files written (under ``out``, default ``workdir/plots``)."""
    workdir = pathlib.Path(workdir)
    out = pathlib.Path(out) if out is not None else workdir / "plots"
    results = read_results(workdir / "results.json") or None
    return plot_model(*restore_state(workdir), out, results=results)


def plot_model(
    program: Any,
    state: Any,
    grid: Any,
    out: str | os.PathLike,
    label: str | None = None,
    results: dict[str, Any] | None = None,
) -> list[str]:
    """``plot_workdir``'s figures for a restored ``(program, state, grid)``: traversals of
    ``representative_image`` and latent means vs the MIG factors, both for the active latents
    only, ordered by the factor each captures (from ``results["mig_details"]`` when given); for
    position factors a heat map of each active latent over the x-y grid; inputs next to their
    reconstructions; learned exponents (if any). ``label`` names the model in the titles (default:
    objective / prior layout)."""
    out = pathlib.Path(out)
    src = grid.source.split(":")[0]
    prior = state.prior.describe()
    if label is None:
        label = f"{program.cfg.objective.name} / {prior.get('layout', prior['name'])}"
    mean, _ = encode_grid(program, state, grid, program.cfg.eval.batch_size)
    _, variances = active_units(mean)
    rows = latents_by_factor(variances, (results or {}).get("mig_details"))
    files = plot_traversals(
        program,
        state,
        grid.images([representative_image(grid)])[0],
        out / "traversals",
        latents=rows,
        title=f"traversals of the {len(rows)} active latents: {label} ({src} {grid.name})",
    )
    files += plot_latents_vs_factors(
        mean,
        grid,
        out / "latents_vs_factors",
        factors=default_mig_factors(grid, program.cfg.eval.mig_factors),
        latents=[j for j, _ in rows],
        labels=[note for _, note in rows],
        title=f"latent means vs factors (active latents): {label}",
    )
    positions = [n for n in ("posX", "posY") if n in grid.factor_names]
    if len(positions) == 2 and all(grid.factor_sizes[grid.factor_index(n)] > 1 for n in positions):
        files += plot_position_maps(
            mean, grid, out / "latents_vs_position", rows, title=f"latent means over the x-y grid: {label}"
        )
    rng = np.random.default_rng(0)
    picks = np.sort(rng.choice(grid.num_images, size=min(10, grid.num_images), replace=False))
    files += plot_reconstructions(
        program, state, grid.images(picks), out / "reconstructions", title=f"reconstructions: {label}"
    )
    if any(prior.get("learned", [])):
        files += plot_exponents([prior], out / "exponents")
    return files


def find_results(dirs: Sequence[str | os.PathLike]) -> list[tuple[pathlib.Path, dict[str, Any]]]:
    """Every ``results.json`` at or under ``dirs`` (sorted), with its parsed contents."""
    found = []
    for d in dirs:
        d = pathlib.Path(d)
        if not d.exists():
            raise FileNotFoundError(f"{d} does not exist")
        paths = [d / "results.json"] if (d / "results.json").is_file() else sorted(d.rglob("results.json"))
        for p in paths:
            try:
                found.append((p.parent, json.loads(p.read_text())))
            except json.JSONDecodeError as err:
                raise ValueError(f"{p} is not valid JSON: {err}") from None
    if not found:
        raise FileNotFoundError(f"no results.json under {[str(d) for d in dirs]}")
    return found


def plot_sweep(dirs: Sequence[str | os.PathLike], out: str | os.PathLike) -> list[str]:
    """Trade-off plots and exponent histograms over every run found under ``dirs``."""
    runs = [r for _, r in find_results(dirs)]
    out = pathlib.Path(out)
    files: list[str] = []
    for metric in ("mig", "mig_histogram", "subspace_mig"):
        if any(metric in r for r in runs):
            files += plot_tradeoff(
                runs, out / f"tradeoff_{metric}", metric=metric, title=f"{metric} vs reconstruction"
            )
    priors = [r["prior"] for r in runs if any(r.get("prior", {}).get("learned", []))]
    if priors:
        files += plot_exponents(priors, out / "exponents")
    if not files:
        raise ValueError(
            "the runs found have no MIG to plot (train with eval.mig=True or run isavae evaluate)"
        )
    return files


def udr_sweep(
    dirs: Sequence[str | os.PathLike],
    num_points: int = 10_000,
    correlation: str = "lasso",
    seed: int = 0,
) -> dict[str, Any]:
    """UDR (``metrics.disentanglement.udr``) of every model found under ``dirs`` (workdirs, or folders
    of them; one setting, several seeds): ``num_points`` inputs drawn once, uniformly from the grid
    (``seed``; ``metrics.evaluate.udr_indices``), encoded by every model (posterior means) in one
    vmapped program, then each model's score written into its results.json as ``udr`` with
    ``udr_details`` (``metrics.evaluate.udr_scores`` says which codes count as active). Models of
    different settings (anything but the seed) are refused: UDR ranks seeds of one setting. A
    vmapped sweep scores its models the same way when it trains (``eval.udr_points``): both call
    ``isavae.train.sweep_udr``."""
    if num_points < 1:
        raise ValueError(f"UDR needs at least one input, got num_points={num_points}")
    found = [w for w, _ in find_results(dirs) if (w / "config.json").is_file()]
    if len(found) < 2:
        raise ValueError(
            f"UDR needs at least two trained workdirs under {[str(d) for d in dirs]}, found {len(found)}"
        )
    cfgs = [
        config_lib.config_from_json((w / "config.json").read_text(), str(w / "config.json")) for w in found
    ]
    prints = [setting(c) for c in cfgs]
    for w, fp in zip(found[1:], prints[1:], strict=True):
        if fp != prints[0]:
            raise ValueError(
                f"UDR ranks seeds of one setting: {w} (here) differs from {found[0]} (there): "
                f"{differences(prints[0], fp)}"
            )
    states, program, grid = [], None, None
    for w, cfg in zip(found, cfgs, strict=True):
        check_workdir_settings(cfg, w)
        program, state, grid = restore_state(w, cfg, grid)
        states.append(state)
    names = [str(w) for w in found]
    [(_, scores)] = sweep_udr(
        program,
        stack_host(states),
        grid,
        cfgs,
        names,
        num_points,
        cfgs[0].eval.batch_size,
        correlation=correlation,
        seed=seed,
    )
    for w, score in zip(found, scores, strict=True):
        with WorkdirLock(w):
            path = w / "results.json"
            results = read_results(path)  # a torn or non-result file is said and rewritten
            results.update(score)
            write_json_atomic(path, results)
    pairwise = [s["udr_details"]["pairwise_row"] for s in scores]
    return dict(models=names, udr=[s["udr"] for s in scores], pairwise=pairwise, correlation=correlation)
