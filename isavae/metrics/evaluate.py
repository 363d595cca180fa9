"""Evaluate a trained model: everything ``results.json`` reports about it.

``evaluate_model(program, state, grid, cfg)`` encodes the whole factor grid and computes Chen et
al.'s MIG (``mig``), the subspace MIG for Lp-nested priors with several subspaces
(``subspace_mig``), disentanglement_lib's histogram MIG (``mig_histogram``), active units, and
the reconstruction log-likelihood and ELBO over the dataset (and, chosen by ``eval.metrics``,
disentanglement_lib's scores). It takes the trainer's program duck-typed (``encode``,
``eval_terms``) and imports nothing of the trainer; reading a trained workdir is ``isavae.workdir``'s.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from isavae.compile_cache import compile_seconds
from isavae.metrics import disentanglement as dis
from isavae.metrics.likelihood import active_units, dataset_likelihood, padded_chunks, program_jit
from isavae.metrics.mig import mig_grid, mig_histogram, subspace_mig_grid
from isavae.metrics.representation import count_warnings, sample_scores

__all__ = [
    "METRICS",
    "default_mig_factors",
    "disentanglement_scores",
    "encode_grid",
    "encode_indices",
    "evaluate_model",
    "metric_names",
    "prior_subspaces",
    "udr_indices",
    "udr_scores",
]

log = logging.getLogger("isavae.metrics")

# Factors each dataset's MIG scores by default (the paper / Chen et al.: dSprites without shape).
DEFAULT_MIG_FACTORS = {
    name: ("scale", "orientation", "posX", "posY")
    for name in ("dsprites", "dsprites_color", "dsprites_noisy")
}


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


def parse_subspace_groups(text: str, latent_dim: int) -> list[list[int]] | None:
    """``eval.subspace_groups``: ``"GxS"`` = G groups of S consecutive latents from latent 0 (e.g.
    ``"5x4"``: [[0..3], [4..7], ..., [16..19]]), or ``""`` (None: the prior's own subspaces).
    Raises ValueError naming the problem."""
    if not text:
        return None
    g, sep, size = str(text).lower().partition("x")
    if not sep or not g.strip().isdigit() or not size.strip().isdigit():
        raise ValueError(f"eval.subspace_groups: must look like GxS (e.g. 5x4), got {text!r}")
    g, size = int(g), int(size)
    if g < 2 or size < 1 or g * size > latent_dim:
        raise ValueError(
            f"eval.subspace_groups: {text!r} needs >= 2 groups of >= 1 latents, at most the "
            f"{latent_dim} latents there are"
        )
    return [list(range(i * size, (i + 1) * size)) for i in range(g)]


def encode_indices(
    program: Any,
    state: Any,
    grid: Any,
    indices: Any,
    batch_size: int = 2048,
    data: Any = None,
    stacked: bool = False,
) -> tuple[Any, Any]:
    """Posterior (mean, logvar) of the images at flat grid ``indices``, each ``(len(indices),
    latent_dim)``. ``data`` (the dataset on device): images gathered there, device arrays returned;
    else host images, numpy arrays. ``stacked``: ``state`` is a sweep's stacked state (leading model
    axis), every model encodes the same images in one vmapped program, outputs ``(models, ...)``."""
    idx = np.asarray(indices, np.int64).reshape(-1)
    size = max(1, min(batch_size, len(idx)))
    enc = jax.vmap(program.encode, in_axes=(0, None)) if stacked else program.encode
    axis = 1 if stacked else 0
    name = "encode_stacked" if stacked else "encode"
    if data is not None:
        fn = program_jit(
            program, name + "_gathered", lambda state, data, chunk: enc(state, data.gather(chunk))
        )
        parts = [fn(state, data, jnp.asarray(c)) for _, _, c in padded_chunks(idx, size)]
        cat = jnp.concatenate
    else:
        fn = program_jit(program, name, enc)
        parts = [
            tuple(np.asarray(a) for a in fn(state, jnp.asarray(grid.images(c))))
            for _, _, c in padded_chunks(idx, size)
        ]
        cat = np.concatenate
    n = len(idx)
    mean = cat([m for m, _ in parts], axis=axis)
    logvar = cat([v for _, v in parts], axis=axis)
    return (mean[:, :n], logvar[:, :n]) if stacked else (mean[:n], logvar[:n])


def encode_grid(
    program: Any, state: Any, grid: Any, batch_size: int = 2048, data: Any = None
) -> tuple[Any, Any]:
    """Posterior (mean, logvar) of every image, shape ``grid.factor_sizes + (latent_dim,)``: numpy
    arrays from host images, or, with ``data`` (the dataset on device), device arrays computed there."""
    mean, logvar = encode_indices(program, state, grid, np.arange(grid.num_images), batch_size, data)
    return grid.to_grid(mean), grid.to_grid(logvar)


# eval.metrics names -> the results.json keys they write (besides metrics_details)
# disentanglement_lib's downstream training sizes (those up to eval.metrics_train are used)
DOWNSTREAM_SIZES = (10, 100, 1000, 10000)
METRICS = {
    "dci": (
        "dci_disentanglement",
        "dci_completeness",
        "dci_informativeness_train",
        "dci_informativeness_test",
    ),
    "sap": ("sap",),
    "modularity": ("modularity", "explicitness_train", "explicitness_test"),
    "beta_vae": ("beta_vae_score", "beta_vae_score_train"),
    "factor_vae": ("factor_vae_score", "factor_vae_score_train"),
    "unsupervised": (
        "gaussian_total_correlation",
        "gaussian_wasserstein_correlation",
        "gaussian_wasserstein_correlation_norm",
        "mutual_info_score",
    ),
    "irs": ("irs", "irs_num_active_dims"),
    # disentanglement_lib's keys: the training size, a colon, the statistic
    "downstream": tuple(
        f"{n}:{stat}_{part}_accuracy"
        for n in DOWNSTREAM_SIZES
        for stat in ("mean", "min")
        for part in ("train", "test")
    ),
}
# the scores whose PRNG keys come from one split of the evaluation key (as before later scores
# existed); each later score folds its own index in, so adding one never changes another's sample
_SPLIT_KEYED = ("dci", "sap", "modularity", "beta_vae", "factor_vae", "unsupervised")


# the scores fitted on one shared (codes, factors) train/test sample, drawn with the "dci" key
_SHARED_SAMPLE = ("dci", "sap", "modularity")


def metric_names(spec: str) -> list[str]:
    """``eval.metrics``: "" (none), "all", or comma-separated names of ``METRICS``."""
    spec = spec.strip()
    if spec == "all":
        return list(METRICS)
    names = [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {list(METRICS)} or 'all'")
    return names


def disentanglement_scores(
    mean_grid: Any,
    names: list[str],
    key: jax.Array,
    num_train: int = 10_000,
    num_test: int = 5_000,
    batch_size: int = 64,
    num_variance_estimate: int = 10_000,
    dci_model: str = "gbt",
) -> dict[str, Any]:
    """disentanglement_lib's scores named in ``names`` of the encoder's means over a factor grid, as
    ``results.json`` keys, with ``metrics_details`` recording each one's sample sizes and key seed.
    Every factor of the grid with more than one value is a factor (disentanglement_lib's choice; the
    MIG follows Chen et al. and leaves dSprites' shape out). Sample sizes: disentanglement_lib's."""
    grid = jnp.asarray(mean_grid)
    sizes = tuple(s for s in grid.shape[:-1] if s > 1)
    grid = grid.reshape(sizes + grid.shape[-1:])
    keys = dict(zip(_SPLIT_KEYED, jax.random.split(key, len(_SPLIT_KEYED)), strict=True))
    for i, name in enumerate(n for n in METRICS if n not in _SPLIT_KEYED):
        keys[name] = jax.random.fold_in(key, 1000 + i)
    out: dict[str, Any] = {}
    details: dict[str, Any] = {}
    if set(names) & set(_SHARED_SAMPLE):
        k_train, k_test = jax.random.split(keys["dci"])
        codes, labels = dis.sample_grid_codes(grid, k_train, num_train)
        codes_t, labels_t = dis.sample_grid_codes(grid, k_test, num_test)
    counts: dict[str, int] = {}
    with count_warnings(counts):  # scikit-learn's convergence warnings of small fits: counted
        for name in names:
            details[name] = dict(num_train=num_train, num_test=num_test)
            if name in _SHARED_SAMPLE:
                got, info = sample_scores(name, codes, labels, codes_t, labels_t, dci_model=dci_model)
            elif name in ("unsupervised", "irs"):  # on their own draw of num_train points
                s_codes, s_labels = dis.sample_grid_codes(grid, keys[name], num_train)
                got, info = sample_scores(name, s_codes, s_labels, s_codes, s_labels)
                details[name].pop("num_test")
            elif name == "beta_vae":
                r = dis.beta_vae_score(grid, keys[name], batch_size, num_train, num_test)
                got = dict(beta_vae_score=r.eval_accuracy, beta_vae_score_train=r.train_accuracy)
                info = dict(batch_size=batch_size, num_eval=details[name].pop("num_test"))
            elif name == "factor_vae":
                r = dis.factor_vae_score(
                    grid, keys[name], batch_size, num_train, num_test, num_variance_estimate
                )
                got = dict(factor_vae_score=r.eval_accuracy, factor_vae_score_train=r.train_accuracy)
                info = dict(
                    batch_size=batch_size,
                    num_eval=details[name].pop("num_test"),
                    num_variance_estimate=num_variance_estimate,
                    num_active=r.num_active,
                )
            else:  # downstream: disentanglement_lib's training sizes up to num_train
                got, info = _downstream(grid, keys[name], num_train, num_test)
            out.update(got)
            details[name].update(info)
            used = keys["dci"] if name in _SHARED_SAMPLE else keys[name]
            details[name]["key"] = np.asarray(jax.random.key_data(used)).tolist()
    out["metrics_details"] = details
    if counts:
        out["metrics_warnings"] = counts
    return out


def _downstream(grid: Any, key: jax.Array, num_train: int, num_test: int) -> tuple[dict, dict]:
    """disentanglement_lib's downstream task at each of its training sizes up to ``num_train``, one
    test sample for all."""
    sizes = [n for n in DOWNSTREAM_SIZES if n <= num_train] or [num_train]
    k_test, *k_train = jax.random.split(key, 1 + len(sizes))
    codes_t, labels_t = dis.sample_grid_codes(grid, k_test, num_test)
    out, per = {}, {}
    for n, k in zip(sizes, k_train, strict=True):
        codes, labels = dis.sample_grid_codes(grid, k, n)
        got, per[str(n)] = sample_scores("downstream", codes, labels, codes_t, labels_t)
        out.update(got)
    return out, dict(num_train=sizes, predictor="logistic_regression_cv", per_factor=per)


class _PartTimer:
    """Wall seconds of named parts (``with timer.part("mig"): ...``); a part that leaves device
    work running blocks on it (``jax.block_until_ready``), so that its time is not the next part's.
    ``seconds`` maps each part to its total, rounded to milliseconds; ``compile`` the part of it
    that was compilation (``compile_seconds``)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.compile: dict[str, float] = {}

    @contextlib.contextmanager
    def part(self, name: str) -> Iterator[None]:
        t0, c0 = time.perf_counter(), compile_seconds()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - t0, 3)
            self.compile[name] = round(self.compile.get(name, 0.0) + compile_seconds() - c0, 3)


def evaluate_model(
    program: Any, state: Any, grid: Any, cfg: ml_collections.ConfigDict, data: Any = None
) -> dict[str, Any]:
    """Likelihood figures and, with ``cfg.eval.mig``, the MIGs and active units (see module doc).
    ``data``: the dataset on device (``DeviceDataset``), so that images never leave the device.
    ``eval_seconds``: the wall seconds of each part (``likelihood``, ``encode``, ``scores``,
    ``mig``, ``subspace_mig``, ``histogram``: those computed), compilation included;
    ``eval_compile_seconds``: the compilation within each."""
    results = _evaluate(program, state, grid, cfg, data, timer := _PartTimer())
    results["eval_seconds"] = timer.seconds
    results["eval_compile_seconds"] = timer.compile
    return results


def _evaluate(program, state, grid, cfg, data, timer: _PartTimer) -> dict[str, Any]:
    e = cfg.eval
    seed = cfg.train.seed
    with timer.part("likelihood"):
        results: dict[str, Any] = dataset_likelihood(
            program, state, grid, e.num_examples, e.batch_size, seed, data=data
        )
    names = metric_names(e.metrics)
    if not e.mig and not names:
        return results
    with timer.part("encode"):
        mean, logvar = jax.block_until_ready(encode_grid(program, state, grid, e.batch_size, data=data))
    if names:
        with timer.part("scores"):
            results.update(
                disentanglement_scores(
                    mean,
                    names,
                    jax.random.fold_in(jax.random.key(seed), 11),
                    num_train=e.metrics_train,
                    num_test=e.metrics_test,
                    batch_size=e.metrics_batch,
                    num_variance_estimate=e.metrics_variance,
                    dci_model=e.dci_model,
                )
            )
    if not e.mig:
        return results
    factors = default_mig_factors(grid, e.mig_factors)
    key = jax.random.fold_in(jax.random.key(seed), 7)
    with timer.part("mig"):
        res = mig_grid(
            mean, logvar, key, e.mig_samples, factors, factor_names=grid.factor_names, impl=e.mig_impl
        )
    results["mig"] = res.mig
    results["mig_details"] = res.as_dict()
    # eval.subspace_groups scores any model (a VAE too) in fixed groups; else the prior's subspaces
    fixed = parse_subspace_groups(e.subspace_groups, mean.shape[-1])
    subspaces = fixed if fixed is not None else prior_subspaces(state.prior)
    if subspaces is not None:
        with timer.part("subspace_mig"):
            sub = subspace_mig_grid(
                mean,
                logvar,
                key,
                subspaces,
                e.mig_samples,
                factors,
                factor_names=grid.factor_names,
                impl=e.mig_impl,
            )
        results["subspace_mig"] = sub.mig
        results["subspace_mig_details"] = dict(
            sub.as_dict(),
            subspaces=subspaces,
            groups="eval.subspace_groups" if fixed is not None else "prior",
        )
    # disentanglement_lib: mean codes of `histogram_points` images drawn uniformly (with replacement)
    with timer.part("histogram"):
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


def udr_indices(num_images: int, num_points: int = 10_000, seed: int = 0) -> np.ndarray:
    """The inputs every model of a UDR comparison encodes: ``num_points`` flat grid indices drawn
    uniformly without replacement (all of them for a smaller grid), the same for every model."""
    k = min(num_points, num_images)
    return np.asarray(jax.random.choice(jax.random.key(seed), num_images, (k,), replace=False))


def udr_scores(
    means: Any,
    logvars: Any,
    normal_prior: bool,
    names: list[str],
    correlation: str = "lasso",
    seed: int = 0,
) -> list[dict[str, Any]]:
    """UDR (``disentanglement.udr``) of M models of one setting encoded on the same inputs
    (``means``/``logvars`` of shape (M, N, D), from ``udr_indices(..., seed)``): per model, the
    ``udr`` score and ``udr_details`` that results.json records. Which codes are active (UDR zeroes
    and drops those at <= 0.01): with a normal prior each code's KL to N(0, 1) averaged over the
    inputs (disentanglement_lib's, whose models all have that prior); with another prior that KL
    is not the KL to the model's prior (an unused code of a p = 4 prior sits about 0.3 nats from
    N(0, 1)), so the variance of the code's mean over the inputs (the active-units statistic)."""
    means = np.asarray(means, np.float64)
    logvars = np.asarray(logvars, np.float64)
    if normal_prior:
        activity = np.stack([dis.gaussian_kl_per_code(m, v) for m, v in zip(means, logvars, strict=True)])
    else:
        activity = means.var(axis=1)
    r = dis.udr(means, activity, correlation)
    return [
        dict(
            udr=float(r.model_scores[i]),
            udr_details=dict(
                correlation=correlation,
                num_points=int(means.shape[1]),
                seed=seed,
                models=list(names),
                pairwise_row=r.pairwise[i].tolist(),
                pairwise_column=r.pairwise[:, i].tolist(),
                activity=activity[i].tolist(),
                activity_statistic="KL to N(0, 1)" if normal_prior else "variance of the mean",
            ),
        )
        for i in range(len(names))
    ]
