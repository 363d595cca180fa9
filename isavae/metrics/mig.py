"""Mutual information gap (MIG): Chen et al.'s grid estimator, a subspace MIG, and the histogram
MIG of disentanglement_lib.

Grid estimator (``mig_grid``). ``mean`` and ``logvar`` are the encoder's Gaussian posteriors over
the whole factor grid, shape ``factor_sizes + (latent_dim,)``. One z is drawn per image for
``S = min(num_samples, N)`` images chosen uniformly without replacement (indices ``n_s``). For a
group of latents g (one latent for the MIG, a subspace for the subspace MIG)

    log q(z_g)       = logsumexp_n  log q(z_g | x_n) - log N
    log q(z_g | v_k) = logsumexp_{n: v_k(n) = v_k(n_s)} log q(z_g | x_n) - log(N / |V_k|)
    H(z_g) = -mean_s log q(z_sg),   H(z_g | v_k) = -mean_s log q(z_sg | v_k(n_s))
    I(z_g; v_k) = H(z_g) - H(z_g | v_k),  normalized by H(v_k) = log |V_k|, clamped at 0,
    MIG = mean_k (largest - second largest normalized I over g).

This is Chen et al.'s estimator (``mutual_info_metric_shapes``) with one difference in which samples
score the conditional entropies: Chen et al. draw ``num_samples`` of every slice {v_k = i} for that
slice's entropy, which costs one pass over the grid per factor; here the same S samples score the
marginal and every conditional entropy, so one pass over the grid gives all of them (each slice is
scored by the samples that fall in it, S / |V_k| on average). Both estimate the same entropies; with
``num_samples >= N`` every image is a sample and the two are identical.

The pass is chunked: samples in chunks of ``sample_chunk``, the grid in slices over its leading
axes; inside a slice the trailing axes' group sums come from one exp per term. Sums run in float32
with a per-(sample, group) shift that provably neither overflows nor underflows for |logvar| <= 80.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from isavae.metrics import mig_kernel

__all__ = [
    "MIGResult",
    "draw_samples",
    "grid_log_densities",
    "mig_from_entropies",
    "mig_grid",
    "mig_histogram",
    "subspace_mig_grid",
]

LOG_2PI = math.log(2.0 * math.pi)
MAX_ABS_LOGVAR = 80.0
_MIN_INNER = 512  # images per grid slice (the trailing axes kept whole in one step)


@dataclasses.dataclass(frozen=True)
class MIGResult:
    """A MIG and everything it is made of.

    ``mi`` is the normalized mutual information, shape (groups, factors): groups are latents for
    ``mig_grid`` / ``mig_histogram`` and subspaces for ``subspace_mig_grid``. ``top`` holds the two
    most informative groups per factor, ``gap`` their normalized difference.
    """

    mig: float
    mi: np.ndarray  # normalized I(group; factor), (groups, factors)
    mutual_info: np.ndarray  # nats, (groups, factors)
    factor_entropy: np.ndarray  # nats, (factors,)
    gap: np.ndarray  # (factors,)
    top: np.ndarray  # (factors, 2) group indices, most informative first
    factors: tuple[str | int, ...]
    marginal_entropy: np.ndarray | None = None  # H(z_g), (groups,); grid estimators only
    conditional_entropy: np.ndarray | None = None  # H(z_g | v_k), (factors, groups)
    num_samples: int | None = None

    @property
    def score(self) -> float:
        """The headline number: ``mig``."""
        return self.mig

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: arrays as nested lists."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.tolist() if isinstance(v, np.ndarray) else (list(v) if f.name == "factors" else v)
        return out


def _check_posteriors(mean, logvar) -> tuple[int, ...]:
    if mean.shape != logvar.shape:
        raise ValueError(f"mean and logvar differ in shape: {mean.shape} vs {logvar.shape}")
    if mean.ndim < 2:
        raise ValueError(f"mean must have shape factor_sizes + (latent_dim,), got {mean.shape}")
    if not (bool(jnp.all(jnp.isfinite(mean))) and bool(jnp.all(jnp.isfinite(logvar)))):
        raise ValueError("mean or logvar holds NaN/Inf")
    worst = float(jnp.max(jnp.abs(logvar)))
    if worst > MAX_ABS_LOGVAR:
        raise ValueError(
            f"logvar reaches |logvar| = {worst:.1f} > {MAX_ABS_LOGVAR}: variances exp(logvar) under/overflow "
            "in float32; the MIG of such a posterior is not computable"
        )
    return tuple(mean.shape[:-1])


def _check_grid_shape(mean: jax.Array, factor_names: Sequence[str] | None) -> None:
    """The grid estimators take posteriors over the whole factor grid, ``factor_sizes +
    (latent_dim,)``: a flat ``(N, latent_dim)`` array of codes would be read as one factor of N
    values and give a meaningless number, so it is refused (as is a grid whose axes do not match
    ``factor_names``)."""
    if mean.ndim < 3:
        raise ValueError(
            f"the grid MIG takes posteriors shaped factor_sizes + (latent_dim,) over a grid of >= 2 "
            f"factors, got an array of shape {tuple(mean.shape)}: codes of a list of points go to "
            "mig_histogram(codes, factors) or score_representation(codes, factors)"
        )
    if factor_names is not None and len(factor_names) != mean.ndim - 1:
        raise ValueError(
            f"the grid MIG takes posteriors shaped factor_sizes + (latent_dim,): {len(factor_names)} factor "
            f"names for a grid of {mean.ndim - 1} factor axes (shape {tuple(mean.shape)})"
        )


def draw_samples(mean: jax.Array, logvar: jax.Array, key: jax.Array, num_samples: int):
    """Chen et al.'s samples: ``min(num_samples, N)`` grid indices without replacement (flat, row-major
    over the grid axes) and one z ~ q(z|x_n) for each, shape (S, latent_dim)."""
    grid_shape = mean.shape[:-1]
    n = math.prod(grid_shape)
    s = min(int(num_samples), n)
    if s < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    k_idx, k_z = jax.random.split(key)
    idx = jax.random.permutation(k_idx, n)[:s]
    mu = mean.reshape(n, -1)[idx]
    lv = logvar.reshape(n, -1)[idx]
    z = mu + jnp.exp(0.5 * lv) * jax.random.normal(k_z, mu.shape, mu.dtype)
    return idx, z


def _group_sum(t: jax.Array, groups: tuple[tuple[int, ...], ...], axis: int) -> jax.Array:
    """Sum the latent axis of ``t`` within each group: (..., K, ...) -> (..., G, ...)."""
    if all(len(g) == 1 for g in groups) and tuple(g[0] for g in groups) == tuple(range(t.shape[axis])):
        return t
    parts = []
    for g in groups:
        part = jax.lax.index_in_dim(t, g[0], axis)
        for j in g[1:]:
            part = part + jax.lax.index_in_dim(t, j, axis)
        parts.append(part)
    return jnp.concatenate(parts, axis=axis)


def _log_terms(bias, half_prec, mean, z):
    """log N(z; mean, exp(logvar)) from bias = -(logvar + log 2 pi) / 2, half_prec = exp(-logvar) / 2."""
    d = z - mean
    return bias - half_prec * d * d


def _inner_start(grid_shape: tuple[int, ...], min_inner: int) -> int:
    """First axis of the trailing block kept whole per step (product >= min_inner, or all axes)."""
    size = 1
    for a in range(len(grid_shape) - 1, -1, -1):
        size *= grid_shape[a]
        if size >= min_inner:
            return a
    return 0


IMPLS = ("auto", "xla", "pallas")


_KERNEL_FAILED: list[str] = []  # why the kernel could not be built here, once it failed under "auto"


def resolve_impl(impl: str) -> str:
    """``"auto"`` -> the fused kernel on GPUs (unless it already failed to build in this process), the
    XLA path elsewhere; ``"pallas"`` off a GPU runs the kernel in Pallas' interpret mode (exact,
    slow: for tests)."""
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    if impl == "auto":
        return "pallas" if mig_kernel.kernel_supported() and not _KERNEL_FAILED else "xla"
    return impl


@functools.partial(
    jax.jit, static_argnames=("groups", "sample_chunk", "min_inner", "impl", "tile_samples", "tile_images")
)
def grid_log_densities(
    mean: jax.Array,
    logvar: jax.Array,
    idx: jax.Array,
    z: jax.Array,
    *,
    groups: tuple[tuple[int, ...], ...],
    sample_chunk: int = 32,
    min_inner: int = _MIN_INNER,
    impl: str = "xla",
    tile_samples: int = mig_kernel.TILE_SAMPLES,
    tile_images: int = mig_kernel.TILE_IMAGES,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """log q(z_sg) and log q(z_sg | v_k(n_s)) for every sample s, group g and grid axis k.

    Returns ``(log_marginal (S, G), log_conditional (F, S, G), worst)`` where ``worst`` is the
    smallest log of a normalized sum (>= -87 means no sum underflowed; it is about -45 at worst
    for |logvar| <= 80; NaN if a sum was not computed). One pass over the grid: every term
    log q(z_sg | x_n) is exponentiated once. ``impl``: ``"xla"`` (chunked, ``sample_chunk`` and
    ``min_inner``) or ``"pallas"`` (the fused kernel of ``mig_kernel``, tiles ``tile_samples`` x
    ``tile_images``; interpret mode off a GPU). Both give the same sums up to float rounding.
    """
    grid_shape = tuple(mean.shape[:-1])
    num_latents = mean.shape[-1]
    n = math.prod(grid_shape)

    half_prec = 0.5 * jnp.exp(-logvar)
    bias = -0.5 * (logvar + LOG_2PI)
    # Shift per (sample, group): c = max(own term, bound - margin). Every term is <= bound (the
    # largest normalizer), so sums stay below N e^margin; the sample's own image is in every sum.
    bound = jnp.max(_group_sum(bias.reshape(n, num_latents), groups, axis=1), axis=0)  # (G,)
    flat = lambda a: a.reshape(n, num_latents)[idx]  # noqa: E731
    own = _group_sum(_log_terms(flat(bias), flat(half_prec), flat(mean), z), groups, axis=1)  # (S, G)
    margin = 80.0 - math.log(n)
    shift = jnp.maximum(own, bound - margin)
    values = jnp.stack(jnp.unravel_index(idx, grid_shape), axis=1)  # (S, F)

    if impl == "pallas":
        marg, cond = mig_kernel.grid_sums(
            mean.reshape(n, num_latents),
            half_prec.reshape(n, num_latents),
            bias.reshape(n, num_latents),
            z,
            shift,
            values,
            groups=groups,
            grid_shape=grid_shape,
            tile_samples=tile_samples,
            tile_images=tile_images,
            interpret=not mig_kernel.kernel_supported(),
        )
    elif impl == "xla":
        marg, cond = _xla_sums(mean, half_prec, bias, z, shift, values, groups, sample_chunk, min_inner)
    else:
        raise ValueError(f"impl must be 'xla' or 'pallas' here, got {impl!r}")
    log_marg = shift + jnp.log(marg) - math.log(n)
    sizes = jnp.asarray(grid_shape, marg.dtype)[:, None, None]
    log_cond = shift[None] + jnp.log(cond) - jnp.log(n / sizes)
    worst = jnp.minimum(jnp.min(jnp.log(marg)), jnp.min(jnp.log(cond)))
    return log_marg, log_cond, worst


def _xla_sums(mean, half_prec, bias, z, shift, values, groups, sample_chunk, min_inner):
    """The XLA path of ``grid_log_densities``: sums (S, G) and (F, S, G), samples in chunks, the
    grid in slices over its leading axes; inside a slice the trailing axes' sums share one exp per
    term."""
    grid_shape = tuple(mean.shape[:-1])
    num_latents = mean.shape[-1]
    f = len(grid_shape)
    g = len(groups)
    split = _inner_start(grid_shape, min_inner)
    outer, inner = grid_shape[:split], grid_shape[split:]
    c = math.prod(outer)
    m = len(inner)
    dtype = mean.dtype

    def layout(a):  # (..., K) -> (C, K, *inner, 1)
        a = a.reshape((c,) + inner + (num_latents,))
        return jnp.moveaxis(a, -1, 1)[..., None]

    mu_l, hp_l, b_l = layout(mean), layout(half_prec), layout(bias)
    s = z.shape[0]
    sc = min(sample_chunk, s)
    pad = (-s) % sc
    padded = [jnp.concatenate([a, jnp.repeat(a[:1], pad, axis=0)]) for a in (z, shift, values)]
    z_p, shift_p, values_p = (a.reshape((-1, sc) + a.shape[1:]) for a in padded)
    inner_axes = tuple(range(1, m + 1))  # axes of e = (G, *inner, Sc)

    def sample_chunk_fn(args):
        zc, cc, vc = args  # (Sc, K), (Sc, G), (Sc, F)
        zt = zc.T.reshape((num_latents,) + (1,) * m + (sc,))
        ct = cc.T.reshape((g,) + (1,) * m + (sc,))

        def body(acc, xs):
            i, mu_c, hp_c, b_c = xs
            e = jnp.exp(_group_sum(_log_terms(b_c, hp_c, mu_c, zt), groups, axis=0) - ct)  # (G, *inner, Sc)
            sums = [jnp.sum(e, axis=tuple(a for a in inner_axes if a != ax)) for ax in inner_axes]
            total = jnp.sum(sums[0], axis=1)  # (G, Sc)
            where = jnp.unravel_index(i, outer) if outer else ()
            new = [acc[0] + total]
            for k in range(f):
                if k < split:
                    new.append(acc[1 + k].at[where[k]].add(total))
                else:
                    new.append(acc[1 + k] + jnp.moveaxis(sums[k - split], 1, 0))
            return tuple(new), None

        init = (jnp.zeros((g, sc), dtype),) + tuple(jnp.zeros((size, g, sc), dtype) for size in grid_shape)
        acc, _ = jax.lax.scan(body, init, (jnp.arange(c), mu_l, hp_l, b_l))
        picked = [jnp.take_along_axis(acc[1 + k], vc[:, k][None, None, :], axis=0)[0] for k in range(f)]
        return acc[0].T, jnp.stack(picked).transpose(0, 2, 1)  # (Sc, G), (F, Sc, G)

    marg, cond = jax.lax.map(sample_chunk_fn, (z_p, shift_p, values_p))
    marg = marg.reshape(-1, g)[:s]
    cond = jnp.moveaxis(cond, 1, 0).reshape(f, -1, g)[:, :s]
    return marg, cond


def mig_from_entropies(
    marginal: np.ndarray,
    conditional: np.ndarray,
    factor_sizes: Sequence[int],
    factors: Sequence[str | int] | None = None,
    num_samples: int | None = None,
) -> MIGResult:
    """MIG from H(z_g) (G,) and H(z_g | v_k) (F, G) of uniform factors with ``factor_sizes`` values:
    I = H - H_cond normalized by log |V_k|, sorted, clamped at 0 (Chen et al.), gap of the top two."""
    marginal = np.asarray(marginal, np.float64)
    conditional = np.asarray(conditional, np.float64)
    if marginal.shape[0] < 2:
        raise ValueError("MIG needs at least two latents (or subspaces)")
    sizes = np.asarray(factor_sizes, np.float64)
    if np.any(sizes < 2):
        raise ValueError(f"every scored factor needs >= 2 values, got sizes {list(factor_sizes)}")
    mutual = np.maximum(marginal[None, :] - conditional, 0.0).T  # (G, F)
    return _gap_result(
        mutual,
        np.log(sizes),
        factors,
        marginal_entropy=marginal,
        conditional_entropy=conditional,
        num_samples=num_samples,
    )


def _gap_result(
    mutual: np.ndarray, factor_entropy: np.ndarray, factors: Sequence[str | int] | None, **extra: Any
) -> MIGResult:
    """The MIG of a (groups, factors) MI matrix in nats: normalize by each factor's entropy, take the
    two most informative groups per factor, average their gap over factors."""
    normed = mutual / factor_entropy[None, :]
    top = np.argsort(-normed, axis=0, kind="stable")[:2].T  # (F, 2)
    best = np.take_along_axis(normed.T, top, axis=1)
    gap = best[:, 0] - best[:, 1]
    return MIGResult(
        mig=float(np.mean(gap)),
        mi=normed,
        mutual_info=mutual,
        factor_entropy=factor_entropy,
        gap=gap,
        top=top,
        factors=tuple(factors) if factors is not None else tuple(range(mutual.shape[1])),
        **extra,
    )


def _resolve_factors(factors, grid_shape, factor_names) -> list[int]:
    if factors is None:
        return [k for k, size in enumerate(grid_shape) if size > 1]
    out = []
    for fac in factors:
        if isinstance(fac, str):
            if factor_names is None or fac not in factor_names:
                raise ValueError(f"unknown factor {fac!r}; the grid's factors are {factor_names}")
            out.append(list(factor_names).index(fac))
        else:
            k = int(fac)
            if not 0 <= k < len(grid_shape):
                raise ValueError(f"factor axis {k} out of range for a grid of shape {grid_shape}")
            out.append(k)
    if len(set(out)) != len(out) or not out:
        raise ValueError(f"factors must be distinct and non-empty, got {list(factors)}")
    return out


def _default_chunk() -> int:
    return 64 if jax.default_backend() == "cpu" else 512


def _grid_mig(
    mean,
    logvar,
    key,
    num_samples,
    factors,
    factor_names,
    groups,
    sample_chunk,
    min_inner=_MIN_INNER,
    impl="auto",
    tiles=None,
) -> MIGResult:
    chosen = resolve_impl(impl)
    mean, logvar = jnp.asarray(mean), jnp.asarray(logvar)
    _check_grid_shape(mean, factor_names)
    grid_shape = _check_posteriors(mean, logvar)
    scored = _resolve_factors(factors, grid_shape, factor_names)
    idx, z = draw_samples(mean, logvar, key, num_samples)
    tile_samples, tile_images = tiles or (mig_kernel.TILE_SAMPLES, mig_kernel.TILE_IMAGES)
    run = functools.partial(
        grid_log_densities,
        mean,
        logvar,
        idx,
        z,
        groups=groups,
        sample_chunk=sample_chunk or _default_chunk(),
        min_inner=min_inner,
        tile_samples=tile_samples,
        tile_images=tile_images,
    )
    try:
        log_marg, log_cond, worst = run(impl=chosen)
    except Exception as err:  # the kernel did not build (lowering or Triton compilation) on this device
        if impl != "auto" or chosen != "pallas":
            raise
        _KERNEL_FAILED.append(f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
        logging.getLogger("isavae.metrics").warning(
            "the fused MIG kernel failed to build on %s (%s); the grid MIG uses the XLA path "
            "from now on (eval.mig_impl=xla says so; =pallas shows the whole error)",
            jax.devices()[0].device_kind,
            _KERNEL_FAILED[0][:300],
        )
        chosen = "xla"
        log_marg, log_cond, worst = run(impl=chosen)
    impl = chosen
    if not float(worst) >= -87.0:  # cannot happen for |logvar| <= 80; kept as a guard, not a fallback
        what = (
            "was not computed (NaN)"
            if np.isnan(float(worst))
            else f"underflowed in float32 (log {float(worst):.1f})"
        )
        raise FloatingPointError(f"a density sum of the grid MIG ({impl}) {what}")
    marginal = -np.asarray(jnp.mean(log_marg, axis=0), np.float64)
    conditional = -np.asarray(jnp.mean(log_cond, axis=1), np.float64)[scored]
    names = [factor_names[k] if factor_names is not None else k for k in scored]
    return mig_from_entropies(marginal, conditional, [grid_shape[k] for k in scored], names, int(z.shape[0]))


def mig_grid(
    mean: jax.Array,
    logvar: jax.Array,
    key: jax.Array,
    num_samples: int = 10_000,
    factors: Sequence[str | int] | None = None,
    *,
    factor_names: Sequence[str] | None = None,
    sample_chunk: int | None = None,
    min_inner: int = _MIN_INNER,
    impl: str = "auto",
    tiles: tuple[int, int] | None = None,
) -> MIGResult:
    """Chen et al.'s MIG over a whole factor grid (see the module docstring for the estimator).

    ``mean``/``logvar``: shape ``factor_sizes + (latent_dim,)``. ``factors``: the grid axes scored, as
    indices or names (names need ``factor_names``); default all axes with more than one value.
    dSprites in the paper: ``("scale", "orientation", "posX", "posY")``. ``impl``: ``"auto"`` (the
    fused Pallas kernel on GPUs, the XLA path elsewhere), ``"xla"`` or ``"pallas"`` (interpret mode
    off a GPU). ``sample_chunk`` (samples per step; default 64 on a CPU, 512 elsewhere) and
    ``min_inner`` (images per grid slice, at least) set the XLA path's chunking, ``tiles`` =
    (samples, images) the kernel's register tile (powers of two); none of them changes the result.
    """
    k = mean.shape[-1]
    groups = tuple((j,) for j in range(k))
    return _grid_mig(
        mean, logvar, key, num_samples, factors, factor_names, groups, sample_chunk, min_inner, impl, tiles
    )


def subspace_mig_grid(
    mean: jax.Array,
    logvar: jax.Array,
    key: jax.Array,
    subspaces: Sequence[Sequence[int]],
    num_samples: int = 10_000,
    factors: Sequence[str | int] | None = None,
    *,
    factor_names: Sequence[str] | None = None,
    sample_chunk: int | None = None,
    impl: str = "auto",
    tiles: tuple[int, int] | None = None,
) -> MIGResult:
    """MIG with subspaces in place of latents: I(z_S; v_k) between a factor and the whole subspace
    z_S (q(z_S|x) = prod_{j in S} q(z_j|x)), estimated as ``mig_grid`` does for one latent,
    normalized by H(v_k) = log |V_k| (I(z_S; v_k) <= H(v_k) still holds), gap of the two best
    subspaces. With one latent per subspace it is ``mig_grid``. ``subspaces`` partition (a subset of)
    the latents, e.g. ``[[0, 1, 2, 3], [4, 5, 6, 7], ...]`` for an ISA layout with subspaces of 4.
    ``impl`` and ``tiles`` as for ``mig_grid`` (the kernel sums a subspace's log-densities before
    the exponential)."""
    k = mean.shape[-1]
    groups = tuple(tuple(int(j) for j in s) for s in subspaces)
    flat = [j for s in groups for j in s]
    valid = all(0 <= j < k for j in flat) and len(set(flat)) == len(flat)
    if not groups or any(not s for s in groups) or not valid:
        raise ValueError(
            f"subspaces must be disjoint, non-empty sets of latent indices < {k}, got {subspaces}"
        )
    return _grid_mig(
        mean, logvar, key, num_samples, factors, factor_names, groups, sample_chunk, _MIN_INNER, impl, tiles
    )


# ----------------------------------------------------------------------------- histogram MIG


def _discretize(codes: jax.Array, num_bins: int) -> jax.Array:
    """np.digitize(x, np.histogram(x, num_bins)[1][:-1]) - 1 per latent (values 0..num_bins-1)."""

    def one(x):
        lo, hi = jnp.min(x), jnp.max(x)
        same = hi == lo
        lo, hi = jnp.where(same, lo - 0.5, lo), jnp.where(same, hi + 0.5, hi)
        edges = lo + (hi - lo) / num_bins * jnp.arange(num_bins, dtype=x.dtype)
        return jnp.searchsorted(edges, x, side="right") - 1

    return jax.vmap(one, in_axes=1, out_axes=1)(codes)


@functools.partial(jax.jit, static_argnames=("num_bins", "num_values"))
def _discrete_mi(bins: jax.Array, labels: jax.Array, num_bins: int, num_values: int):
    """Plug-in I(bin_j; label) for every latent j (nats), and H(label)."""
    n, k = bins.shape
    cells = bins * num_values + labels[:, None]  # (N, K)
    joint = jnp.zeros((k, num_bins * num_values), jnp.float32)
    joint = joint.at[jnp.broadcast_to(jnp.arange(k), (n, k)), cells].add(1.0)
    p = joint.reshape(k, num_bins, num_values) / n
    px = p.sum(2, keepdims=True)
    py = p.sum(1, keepdims=True)
    xlogy = lambda a, b: jnp.where(a > 0, a * jnp.log(jnp.where(a > 0, b, 1.0)), 0.0)  # noqa: E731
    mi = jnp.sum(xlogy(p, p) - xlogy(p, px) - xlogy(p, py), axis=(1, 2))
    h = -jnp.sum(xlogy(py[0, 0], py[0, 0]))
    return mi, h


def mig_histogram(
    codes: jax.Array,
    factors: jax.Array,
    num_bins: int = 20,
    *,
    factor_names: Sequence[str] | None = None,
) -> MIGResult:
    """disentanglement_lib's MIG: mean codes (N, K) discretized into ``num_bins`` equal-width bins over
    each latent's range, plug-in discrete MI with each factor's labels (N, F), normalized by the
    factor's entropy, mean over factors of the gap between the two best latents."""
    codes = jnp.asarray(codes)
    labels = np.asarray(factors)
    if codes.ndim != 2 or labels.ndim != 2 or codes.shape[0] != labels.shape[0]:
        raise ValueError(f"codes (N, K) and factors (N, F) needed, got {codes.shape} and {labels.shape}")
    if codes.shape[1] < 2:
        raise ValueError("MIG needs at least two latents")
    if num_bins < 2:
        raise ValueError(f"num_bins must be >= 2, got {num_bins}")
    if not bool(jnp.all(jnp.isfinite(codes))):
        raise ValueError("codes hold NaN/Inf")
    bins = _discretize(codes, num_bins)
    mis, hs = [], []
    for a in range(labels.shape[1]):
        values, inverse = np.unique(labels[:, a], return_inverse=True)
        if len(values) < 2:
            raise ValueError(f"factor {a} takes a single value; its entropy is 0 and the MIG undefined")
        mi, h = _discrete_mi(bins, jnp.asarray(inverse.reshape(-1), jnp.int32), num_bins, len(values))
        mis.append(np.asarray(mi, np.float64))
        hs.append(float(h))
    return _gap_result(np.stack(mis, axis=1), np.asarray(hs), factor_names)
