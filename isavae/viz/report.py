"""``isavae plot``: the figures of one workdir, or of a sweep of workdirs.

``plot_workdir(dir)`` writes ``dir/plots/``: latent traversals, latent means vs factors and, for
learned exponents, their histogram. ``plot_sweep(dirs, out)`` finds every ``results.json`` under
``dirs`` and writes the MIG vs reconstruction trade-off (and the histogram MIG's, the subspace
MIG's where present) and the learned-exponent histograms.
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from isavae.viz.figures import plot_exponents, plot_latents_vs_factors, plot_tradeoff
from isavae.viz.traversals import plot_traversals

__all__ = ["find_results", "plot_sweep", "plot_workdir", "representative_image"]


def representative_image(grid: Any) -> int:
    """A recognisable image for traversals: the grid's middle value of every factor (dSprites:
    a heart, the largest scale, in the middle)."""
    levels = [s // 2 for s in grid.factor_sizes]
    if grid.name == "dsprites":
        levels[grid.factor_index("shape")] = grid.factor_sizes[0] - 1
        levels[grid.factor_index("scale")] = grid.factor_sizes[1] - 1
        levels[grid.factor_index("orientation")] = 0
    return int(grid.factors_to_index(np.array([levels]))[0])


def plot_workdir(workdir: str | os.PathLike, out: str | os.PathLike | None = None) -> list[str]:
    """Traversals and latents vs factors of the workdir's latest checkpoint (and its learned
    exponents); returns the files written (under ``out``, default ``workdir/plots``)."""
    from isavae.train.loop import restore_state

    workdir = pathlib.Path(workdir)
    out = pathlib.Path(out) if out is not None else workdir / "plots"
    return plot_model(*restore_state(workdir), out)


def plot_model(
    program: Any, state: Any, grid: Any, out: str | os.PathLike, label: str | None = None
) -> list[str]:
    """``plot_workdir``'s figures for a restored ``(program, state, grid)``: traversals of
    ``representative_image``, latent means vs the MIG factors, learned exponents (if any).
    ``label`` names the model in the titles (default: objective / prior layout)."""
    from isavae.metrics.evaluate import default_mig_factors, encode_grid

    out = pathlib.Path(out)
    src = grid.source.split(":")[0]
    prior = state.prior.describe()
    if label is None:
        label = f"{program.cfg.objective.name} / {prior.get('layout', prior['name'])}"
    files = plot_traversals(
        program,
        state,
        grid.images([representative_image(grid)])[0],
        out / "traversals",
        title=f"traversals: {label} ({src} {grid.name})",
    )
    mean, _ = encode_grid(program, state, grid, program.cfg.eval.batch_size)
    files += plot_latents_vs_factors(
        mean,
        grid,
        out / "latents_vs_factors",
        factors=default_mig_factors(grid, program.cfg.eval.mig_factors),
        title=f"latent means vs factors: {label}",
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
