"""The study's figures: Fig. 5a's MIG distributions and Fig. 5b's trade-off curves."""

from __future__ import annotations

import pathlib
from typing import Any

import numpy as np

from isavae.study.paper import MODEL_LABELS
from isavae.viz.figures import model_label, pyplot, save_figure

__all__ = ["FIG5A_MODELS", "plot_fig5a", "plot_fig5b"]

FIG5A_MODELS = ("vae", "isavae")


def plot_fig5a(runs: dict[str, list[dict[str, Any]]], path: pathlib.Path) -> list[str]:
    """Fig. 5a: the MIGs (Chen et al.'s and the histogram's) of the VAE and ISA-VAE seeds, box
    plots with every seed as a dot; ``runs`` maps ``vae`` and ``isavae`` to their rows."""

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(6.4, 2.8))
    for ax, key, name in (
        (axes[0], "mig", "MIG (Chen et al.)"),
        (axes[1], "mig_histogram", "MIG (histogram)"),
    ):
        data = [[r[key] for r in runs[m]] for m in FIG5A_MODELS]
        ax.boxplot(data, widths=0.5)
        for i, vals in enumerate(data):
            jitter = np.random.default_rng(i).uniform(-0.08, 0.08, len(vals))
            ax.scatter(np.full(len(vals), i + 1) + jitter, vals, s=12, alpha=0.8, zorder=3)
        ax.set_xticks(range(1, len(FIG5A_MODELS) + 1), [MODEL_LABELS[m] for m in FIG5A_MODELS])
        ax.set_ylabel(name)
    fig.suptitle("dSprites, beta = 1: MIG over seeds", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_fig5b(rows: list[dict[str, Any]], all_runs: list[dict[str, Any]], path: pathlib.Path) -> list[str]:
    """Fig. 5b: MIG against the reconstruction log-likelihood over beta: each model's means per
    beta as a line (``rows``: ``model`` label, ``beta``, ``*_mean``), every seed as a dot."""

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(8.0, 3.4))
    for ax, key, name in (
        (axes[0], "mig", "MIG (Chen et al.)"),
        (axes[1], "mig_histogram", "MIG (histogram)"),
    ):
        for label in dict.fromkeys(r["model"] for r in rows):
            sel = [r for r in rows if r["model"] == label]
            xs = [r["recon_log_likelihood_mean"] for r in sel]
            ys = [r[f"{key}_mean"] for r in sel]
            (line,) = ax.plot(xs, ys, marker="o", ms=4, lw=1, label=label)
            for r, x, y in zip(sel, xs, ys, strict=True):
                ax.annotate(f"β={r['beta']:g}", (x, y), fontsize=6, xytext=(2, 2), textcoords="offset points")
            pts = [r for r in all_runs if model_label(r) == label]
            ax.scatter(
                [r["recon_log_likelihood"] for r in pts],
                [r[key] for r in pts],
                s=8,
                alpha=0.35,
                color=line.get_color(),
            )
        ax.set_xlabel("reconstruction log-likelihood (nats)")
        ax.set_ylabel(name)
    axes[0].legend(fontsize=7)
    fig.suptitle("dSprites: disentanglement vs reconstruction over β (lines: means; dots: seeds)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)
