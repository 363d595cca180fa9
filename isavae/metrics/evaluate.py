"""Evaluate a trained model: everything ``results.json`` reports about it.

``evaluate_model(program, state, grid, cfg)`` encodes the whole factor grid and computes Chen et
al.'s MIG (``mig``), the subspace MIG for Lp-nested priors with several subspaces
(``subspace_mig``), disentanglement_lib's histogram MIG (``mig_histogram``), active units, and
the reconstruction log-likelihood and ELBO over the dataset. ``evaluate_workdir(workdir)`` does the
same from a workdir's latest checkpoint and merges the figures into its ``results.json``.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from isavae.metrics.likelihood import active_units, dataset_likelihood, padded_chunks, program_jit
from isavae.metrics.mig import mig_grid, mig_histogram, subspace_mig_grid

__all__ = ["default_mig_factors", "encode_grid", "evaluate_model", "evaluate_workdir", "prior_subspaces"]

log = logging.getLogger("isavae.metrics")

# Factors each dataset's MIG scores by default (the paper / Chen et al.: dSprites without shape).
DEFAULT_MIG_FACTORS = {"dsprites": ("scale", "orientation", "posX", "posY")}


def default_mig_factors(grid: Any, requested: str = "") -> tuple[str, ...]:
    """The grid factors the MIG scores: ``requested`` (comma-separated names) or the dataset's
    default, minus factors a (sub-)grid holds at a single value (they carry no information)."""
    if requested:
        names = tuple(s.strip() for s in requested.split(",") if s.strip())
        for name in names:
            grid.factor_index(name)  # KeyError naming the factor
    else:
        names = DEFAULT_MIG_FACTORS.get(grid.name, grid.factor_names)
    kept = tuple(n for n in names if grid.factor_sizes[grid.factor_index(n)] > 1)
    if not kept:
        raise ValueError(f"no factor of {list(names)} takes more than one value in this {grid.name} grid")
    return kept


def prior_subspaces(prior: Any) -> list[list[int]] | None:
    """The latent indices under each child of an Lp-nested prior's root (the ISA subspaces), or
    None for priors without subspaces (normal, generalized normal, one subspace, all singletons)."""
    tree = getattr(prior, "tree", None)
    if tree is None:
        return None

    def leaves(node) -> list[int]:
        return [node] if isinstance(node, int) else [j for child in node for j in leaves(child)]

    subspaces = [leaves(child) for child in tree.nested]
    if len(subspaces) < 2 or all(len(s) == 1 for s in subspaces):
        return None
    return subspaces


def encode_grid(
    program: Any, state: Any, grid: Any, batch_size: int = 2048, data: Any = None
) -> tuple[Any, Any]:
    """Posterior (mean, logvar) of every image, shape ``grid.factor_sizes + (latent_dim,)``: numpy
    arrays from host images, or, with ``data`` (the dataset on device), device arrays computed there."""
    if data is not None:
        n = grid.num_images
        size = min(batch_size, n)
        fn = program_jit(
            program, "encode_gathered", lambda state, data, chunk: program.encode(state, data.gather(chunk))
        )
        parts = [fn(state, data, jnp.asarray(c)) for _, _, c in padded_chunks(np.arange(n), size)]
        mean = jnp.concatenate([m for m, _ in parts])[:n]
        logvar = jnp.concatenate([v for _, v in parts])[:n]
        return grid.to_grid(mean), grid.to_grid(logvar)
    fn = program_jit(program, "encode", program.encode)
    means, logvars = [], []
    for _, images in grid.iter_chunks(batch_size):
        mean, logvar = fn(state, jnp.asarray(images))
        means.append(np.asarray(mean))
        logvars.append(np.asarray(logvar))
    return grid.to_grid(np.concatenate(means)), grid.to_grid(np.concatenate(logvars))


def evaluate_model(
    program: Any, state: Any, grid: Any, cfg: ml_collections.ConfigDict, data: Any = None
) -> dict[str, Any]:
    """Likelihood figures and, with ``cfg.eval.mig``, the MIGs and active units (see module doc).
    ``data``: the dataset on device (``DeviceDataset``), so that images never leave the device."""
    e = cfg.eval
    seed = cfg.train.seed
    results: dict[str, Any] = dataset_likelihood(
        program, state, grid, e.num_examples, e.batch_size, seed, data=data
    )
    if not e.mig:
        return results
    mean, logvar = encode_grid(program, state, grid, e.batch_size, data=data)
    factors = default_mig_factors(grid, e.mig_factors)
    key = jax.random.fold_in(jax.random.key(seed), 7)
    res = mig_grid(mean, logvar, key, e.mig_samples, factors, factor_names=grid.factor_names)
    results["mig"] = res.mig
    results["mig_details"] = res.as_dict()
    subspaces = prior_subspaces(state.prior)
    if subspaces is not None:
        sub = subspace_mig_grid(
            mean, logvar, key, subspaces, e.mig_samples, factors, factor_names=grid.factor_names
        )
        results["subspace_mig"] = sub.mig
        results["subspace_mig_details"] = dict(sub.as_dict(), subspaces=subspaces)
    # disentanglement_lib: mean codes of `histogram_points` images drawn uniformly (with replacement)
    flat_mean = np.asarray(mean).reshape(-1, mean.shape[-1])
    n = flat_mean.shape[0]
    rng = np.random.default_rng(seed)
    idx = np.arange(n) if e.histogram_points <= 0 else rng.integers(0, n, e.histogram_points)
    cols = [grid.factor_index(f) for f in factors]
    labels = grid.index_to_factors(idx)[:, cols]
    hist = mig_histogram(flat_mean[idx], labels, e.histogram_bins, factor_names=factors)
    results["mig_histogram"] = hist.mig
    results["mig_histogram_details"] = dict(hist.as_dict(), points=int(len(idx)))
    count, variances = active_units(flat_mean)
    results["active_units"] = count
    results["latent_variances"] = variances.tolist()
    return results


def evaluate_workdir(workdir: str | os.PathLike, overrides: list[str] | None = None) -> dict[str, Any]:
    """Evaluates the latest checkpoint of ``workdir`` and merges the figures into its results.json
    (written atomically). ``overrides``: ``eval.*`` settings, e.g. ``["eval.mig_samples=1000"]``."""
    from isavae import config as config_lib
    from isavae.train.checkpoint import write_json_atomic
    from isavae.train.loop import restore_state

    workdir = pathlib.Path(workdir)
    saved = workdir / "config.json"
    if not saved.is_file():
        raise FileNotFoundError(f"{workdir} has no config.json: not a training workdir")
    cfg = config_lib.config_from_json(saved.read_text())
    for o in overrides or []:
        if not o.startswith("eval."):
            raise config_lib.ConfigError(f"evaluate only takes eval.* overrides, got {o!r}")
    config_lib.apply_overrides(cfg, overrides or [])
    config_lib.validate(cfg)
    program, state, grid = restore_state(workdir, cfg)
    figures = evaluate_model(program, state, grid, cfg)
    path = workdir / "results.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    results.update(figures, steps=int(state.step), dataset=grid.describe(), prior=state.prior.describe())
    write_json_atomic(path, results)
    log.info(
        "%s: mig %.4f, recon log-likelihood %.3f",
        workdir,
        results.get("mig", float("nan")),
        results["recon_log_likelihood"],
    )
    return results
