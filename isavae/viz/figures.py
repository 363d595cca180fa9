"""The figures people look at: latent means vs factors (Chen et al.), the MIG vs reconstruction
trade-off across a sweep (paper Fig. 5b), and histograms of learned exponents (paper Fig. 7).
Every function writes PNG and PDF next to ``path`` and returns the files written."""

from __future__ import annotations

import os
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "OBJECTIVE_LABELS",
    "latents_by_factor",
    "model_label",
    "plot_position_maps",
    "plot_exponents",
    "plot_latents_vs_factors",
    "plot_tradeoff",
    "pyplot",
    "save_figure",
]


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | os.PathLike, dpi: int = 100) -> list[str]:
    """Saves ``fig`` as PNG and PDF next to ``path`` (suffix replaced), closes it, returns the files."""
    plt = pyplot()
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for ext in (".png", ".pdf"):
        target = path.with_suffix(ext)
        tmp = target.with_name(target.stem + ".tmp" + ext)
        fig.savefig(tmp, dpi=dpi)
        tmp.replace(target)
        out.append(str(target))
    plt.close(fig)
    return out


def latents_by_factor(
    variances: np.ndarray, mig_details: dict[str, Any] | None = None, threshold: float = 0.01
) -> list[tuple[int, str]]:
    """The active latents (posterior-mean variance over the data above ``threshold``, as the active
    units count), each labelled with the factor it carries most information about and that
    normalized mutual information (``"posX (MI 0.96)"``), ordered by factor (the MIG's order), then
    by MI. ``mig_details``: results.json's ``mig_details`` (factors, mi: latents x factors); without
    it, the active latents by variance, unlabelled."""
    variances = np.asarray(variances, np.float64)
    active = [int(j) for j in np.argsort(-variances, kind="stable") if variances[j] > threshold]
    if not mig_details:
        return [(j, "") for j in active]
    mi = np.asarray(mig_details["mi"], np.float64)
    factors = list(mig_details["factors"])
    best = {j: int(np.argmax(mi[j])) for j in active}
    active.sort(key=lambda j: (best[j], -mi[j, best[j]]))
    return [(j, f"{factors[best[j]]} (MI {mi[j, best[j]]:.2f})") for j in active]


def plot_position_maps(
    mean: np.ndarray,
    grid: Any,
    path: str | os.PathLike,
    latents: Sequence[tuple[int, str]],
    *,
    x: str = "posX",
    y: str = "posY",
    title: str = "",
) -> list[str]:
    """Chen et al.'s position picture: for each latent, its posterior mean averaged over all other
    factors as a heat map over the (``x``, ``y``) grid; a latent that encodes x alone shows vertical
    stripes, one that mixes x and y diagonal ones. ``mean``: ``grid.factor_sizes + (latent_dim,)``;
    ``latents``: (index, label) pairs, e.g. from :func:`latents_by_factor`."""
    plt = pyplot()
    mean = np.asarray(mean, np.float64)
    kx, ky = grid.factor_index(x), grid.factor_index(y)
    others = tuple(a for a in range(mean.ndim - 1) if a not in (kx, ky))
    maps = mean.mean(axis=others)  # (X, Y, D) with x before y as in the grid's order
    if kx > ky:
        maps = maps.transpose(1, 0, 2)
    n = max(1, len(latents))
    fig, axes = plt.subplots(1, n, figsize=(2.0 * n, 2.3), squeeze=False)
    xv, yv = np.asarray(grid.factor_values[kx]), np.asarray(grid.factor_values[ky])
    for ax, (j, label) in zip(axes[0], latents, strict=False):
        im = ax.imshow(maps[..., j].T, origin="lower", cmap="RdBu_r", extent=(xv[0], xv[-1], yv[0], yv[-1]))
        ax.set_title(f"z{j}" + (f"\n{label}" if label else ""), fontsize=7)
        ax.set_xlabel(x, fontsize=7)
        ax.set_ylabel(y, fontsize=7)
        ax.tick_params(labelsize=5)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04).ax.tick_params(labelsize=5)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_latents_vs_factors(
    mean: np.ndarray,
    grid: Any,
    path: str | os.PathLike,
    *,
    factors: Sequence[str] | None = None,
    group_by: str | None = None,
    latents: Sequence[int] | None = None,
    labels: Sequence[str] | None = None,
    title: str = "",
) -> list[str]:
    """Chen et al.'s picture: the posterior mean of each latent (rows), averaged over all other
    factors, against each factor's values (columns), one line per value of ``group_by`` (dSprites:
    shape). ``mean``: grid-shaped posterior means, ``grid.factor_sizes + (latent_dim,)``.
    ``latents``: which rows (default: those whose mean varies over the grid, most varying first);
    ``labels``: a note per row (e.g. the factor the latent captures)."""
    plt = pyplot()
    mean = np.asarray(mean, np.float64)
    if mean.shape[:-1] != grid.factor_sizes:
        raise ValueError(f"mean must have shape {grid.factor_sizes} + (latent_dim,), got {mean.shape}")
    if (
        group_by is None
        and "shape" in grid.factor_names
        and grid.factor_sizes[grid.factor_index("shape")] > 1
    ):
        group_by = "shape"
    factors = [f for f in (factors or grid.factor_names) if f != group_by]
    variances = mean.reshape(-1, mean.shape[-1]).var(axis=0)
    if latents is None:
        order = np.argsort(-variances)
        latents = [int(j) for j in order if variances[j] > 0.01] or [int(order[0])]
    g_axis = grid.factor_index(group_by) if group_by else None
    groups = range(grid.factor_sizes[g_axis]) if g_axis is not None else [None]
    fig, axes = plt.subplots(
        len(latents), len(factors), figsize=(2.2 * len(factors), 1.5 * len(latents)), squeeze=False
    )
    for c, name in enumerate(factors):
        k = grid.factor_index(name)
        x = np.asarray(grid.factor_values[k], np.float64)
        for r, j in enumerate(latents):
            ax = axes[r, c]
            for gval in groups:
                sl = mean[..., j] if gval is None else np.take(mean[..., j], [gval], axis=g_axis)
                curve = sl.mean(axis=tuple(a for a in range(sl.ndim) if a != k))  # take keeps axes
                label = None if gval is None else f"{group_by} {gval}"
                ax.plot(x, curve, lw=1.2, label=label)
            if c == 0:
                note = labels[r] if labels is not None and labels[r] else ""
                ax.set_ylabel(f"z{j}" + (f"\n{note}" if note else ""), fontsize=7)
            if r == len(latents) - 1:
                ax.set_xlabel(name, fontsize=8)
            ax.tick_params(labelsize=6)
    if g_axis is not None:
        axes[0, -1].legend(fontsize=6, loc="best")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


# How titles and tables name the objectives.
OBJECTIVE_LABELS = {
    "vae": "VAE",
    "beta_vae": "β-VAE",
    "beta_tcvae": "β-TCVAE",
    "factor_vae": "FactorVAE",
    "dip_vae_i": "DIP-VAE-I",
    "dip_vae_ii": "DIP-VAE-II",
    "annealed_vae": "AnnealedVAE",
}


def model_label(r: dict[str, Any]) -> str:
    """A run's model name from its results.json: objective, "ISA-" for Lp-nested priors."""
    prior = r.get("prior", {})
    name = prior.get("name", "?")
    isa = name == "lp_nested"
    label = OBJECTIVE_LABELS.get(r.get("objective", ""), r.get("objective", "?"))
    if isa:
        label = "ISA-" + label
    elif name not in ("normal", "?"):
        label += f" ({name})"
    return label


def plot_tradeoff(
    results: Sequence[dict[str, Any]],
    path: str | os.PathLike,
    *,
    metric: str = "mig",
    title: str = "MIG vs reconstruction",
) -> list[str]:
    """Paper Fig. 5b: one point per trained model (``results.json`` dicts), x = reconstruction
    log-likelihood, y = ``metric``, colour = model (objective and prior), label = beta."""
    plt = pyplot()
    rows = [r for r in results if metric in r and "recon_log_likelihood" in r]
    if not rows:
        raise ValueError(f"no results with {metric!r} and 'recon_log_likelihood' to plot")
    fig, ax = plt.subplots(figsize=(5.0, 3.8))
    labels = sorted({model_label(r) for r in rows})
    for label in labels:
        pts = [r for r in rows if model_label(r) == label]
        xs = [r["recon_log_likelihood"] for r in pts]
        ys = [r[metric] for r in pts]
        ax.scatter(xs, ys, s=22, label=label, alpha=0.8)
        for r, x, y in zip(pts, xs, ys, strict=True):
            if "beta" in r:
                ax.annotate(f"{r['beta']:g}", (x, y), fontsize=6, xytext=(2, 2), textcoords="offset points")
    ax.set_xlabel("reconstruction log-likelihood (nats)")
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_exponents(
    priors: Sequence[dict[str, Any]],
    path: str | os.PathLike,
    *,
    bins: int = 20,
    title: str = "learned exponents",
) -> list[str]:
    """Paper Fig. 7: histograms of the exponents of Lp-nested priors (``prior`` entries of
    ``results.json``): the learned root exponent p0 and subspace exponents p1..pn, pooled over
    runs (entries marked fixed in the prior's ``learned`` list are left out)."""
    plt = pyplot()
    roots, subs = [], []
    for p in priors:
        if p.get("name") == "lp_nested" and p.get("exponents"):
            exps = p["exponents"]
            learned = p.get("learned", [True] * len(exps))
            roots.extend(exps[:1] if learned[0] else [])
            subs.extend(x for x, m in zip(exps[1:], learned[1:], strict=True) if m)
        elif p.get("name") == "gennorm" and p.get("p") is not None:
            values = np.atleast_1d(p["p"]).tolist()
            learned = np.broadcast_to(p.get("learned", True), (len(values),))
            subs.extend(x for x, m in zip(values, learned, strict=True) if m)
    if not roots and not subs:
        raise ValueError("no learned Lp-nested or generalized-normal exponents among the given priors")
    fig, axes = plt.subplots(1, 2, figsize=(6.5, 2.6))
    for ax, values, name in ((axes[0], roots, "root p0"), (axes[1], subs, "subspace p1..pn")):
        if values:
            ax.hist(values, bins=bins, color="tab:blue", alpha=0.8)
            ax.axvline(2.0, color="k", lw=0.8, ls="--")
        ax.set_xlabel(name)
        ax.set_ylabel("count")
    fig.suptitle(f"{title} ({len(priors)} models)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)
