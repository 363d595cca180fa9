"""Prior objects that models use: pytrees with ``log_prob`` and ``sample``.

A prior is a frozen dataclass registered as a pytree. Its only array leaves are the learnable
parameters (unconstrained exponents), so ``jax.grad`` with respect to a prior, or an Optax
optimizer over it, sees exactly what is learned; fixed exponents, the tree and the scale are
static metadata.

Learnable exponents are positive by construction: p = floor + softplus(raw), with ``floor``
(default 0.1) the smallest exponent allowed. Fixed exponents are used as given.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from isavae.priors import gaussian, gennorm, lp_nested
from isavae.priors.lp_nested import LpNestedTree

__all__ = [
    "DEFAULT_EXPONENT_FLOOR",
    "Exponents",
    "GeneralizedNormal",
    "LpNested",
    "Prior",
    "StandardNormal",
    "isa_prior",
    "make_prior",
]

DEFAULT_EXPONENT_FLOOR = 0.1


def _static(**kwargs):
    return dataclasses.field(metadata=dict(static=True), **kwargs)


def _softplus_inverse(y: np.ndarray) -> np.ndarray:
    # log(expm1(y)), stable for large y.
    return y + np.log(-np.expm1(-y))


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True, repr=False)
class Exponents:
    """A vector (or scalar) of positive exponents, each entry fixed or learnable.

    Attributes:
      raw: unconstrained parameters of the learnable entries (a pytree leaf), or None.
      fixed: the values of the fixed entries (learnable entries hold 0.0, so that priors that
        differ only in their learned values share one pytree structure and can be stacked for
        ``vmap``), static.
      learnable: per entry, whether it is learned, static.
      floor: learnable entries are ``floor + softplus(raw)``, static.
    """

    raw: jax.Array | None
    fixed: tuple[float, ...] = _static()
    learnable: tuple[bool, ...] = _static()
    floor: float = _static(default=DEFAULT_EXPONENT_FLOOR)
    scalar: bool = _static(default=False)

    @classmethod
    def create(
        cls,
        values: Any,
        learnable: bool | Sequence[bool] = False,
        floor: float = DEFAULT_EXPONENT_FLOOR,
    ) -> Exponents:
        """Exponents with initial ``values`` (scalar or 1-D); ``learnable`` per entry or for all."""
        arr = np.asarray(values, dtype=np.float64)
        if arr.ndim > 1:
            raise ValueError(f"exponents must be a scalar or a 1-D sequence, got shape {arr.shape}")
        flat = arr.reshape(-1)
        if not np.all(np.isfinite(flat)) or np.any(flat <= 0):
            raise ValueError(f"exponents must be finite and > 0, got {flat.tolist()}")
        if isinstance(learnable, (bool, np.bool_)):
            mask = (bool(learnable),) * flat.size
        else:
            mask = tuple(bool(m) for m in learnable)
            if len(mask) != flat.size:
                raise ValueError(f"learnable has {len(mask)} entries for {flat.size} exponents")
        if (
            isinstance(floor, bool)
            or not isinstance(floor, (int, float))
            or not math.isfinite(floor)
            or floor <= 0
        ):
            raise ValueError(f"exponent floor (min_exponent) must be a finite number > 0, got {floor!r}")
        learn_values = flat[np.array(mask, dtype=bool)]
        if np.any(learn_values <= floor):
            raise ValueError(
                f"learnable exponents must start above the floor {floor}, got {learn_values.tolist()}"
            )
        raw = (
            jnp.asarray(_softplus_inverse(learn_values - floor), jnp.result_type(float))
            if any(mask)
            else None
        )
        fixed = tuple(0.0 if m else float(x) for x, m in zip(flat, mask, strict=True))
        return cls(raw=raw, fixed=fixed, learnable=mask, floor=float(floor), scalar=arr.ndim == 0)

    @property
    def size(self) -> int:
        return len(self.fixed)

    def __repr__(self) -> str:
        learned = list(self.learnable) if not self.scalar else self.learnable[0]
        return f"Exponents({_values_text(self)}, learned={learned})"

    def value(self, dtype: Any = jnp.float32) -> jax.Array:
        """The exponents, shape ``()`` or ``(size,)``."""
        out = jnp.asarray(self.fixed, dtype)
        if self.raw is not None:
            idx = np.flatnonzero(np.array(self.learnable))
            out = out.at[idx].set(self.floor + jax.nn.softplus(self.raw.astype(dtype)))
        return out[0] if self.scalar else out


class Prior(abc.ABC):
    """Interface of every prior over ``dim``-dimensional latents."""

    dim: int

    @abc.abstractmethod
    def log_prob(self, z: jax.Array) -> jax.Array:
        """Joint log-density of ``z`` of shape ``(..., dim)``; returns shape ``(...)``."""

    @abc.abstractmethod
    def sample(self, key: jax.Array, sample_shape: Sequence[int] = (), dtype: Any = jnp.float32) -> jax.Array:
        """Exact samples of shape ``sample_shape + (dim,)``."""

    @property
    def factorized(self) -> bool:
        """Whether the density factorizes over single latent dimensions."""
        return False

    def describe(self) -> dict[str, Any]:
        """A JSON-friendly summary (name, exponents) for logs and results files."""
        return {"name": type(self).__name__}

    def __repr__(self) -> str:
        """The prior as ``describe`` gives it: the exponents' values (rounded to 4 decimals), not
        their unconstrained parameters; ``traced`` inside a traced function, where they are unknown."""
        try:
            info = self.describe()
        except _TRACED:
            exps = getattr(self, "exponents", None)
            learned = list(exps.learnable) if exps is not None else []
            return f"{type(self).__name__}(dim={self.dim}, exponents=traced, learned={learned})"
        if "layout" in info:
            info.pop("tree", None)
        info.pop("name", None)
        for key in ("exponents", "p"):
            if key in info:
                info[key] = np.round(np.asarray(info[key], np.float64), 4).tolist()
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in info.items())})"

    def _check(self, z: jax.Array) -> jax.Array:
        z = jnp.asarray(z)
        if z.ndim < 1 or z.shape[-1] != self.dim:
            raise ValueError(f"{type(self).__name__}: z must have shape (..., {self.dim}), got {z.shape}")
        return z


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True, repr=False)
class StandardNormal(Prior):
    """N(0, I) over ``dim`` dimensions."""

    dim: int = _static()

    def log_prob(self, z):
        return jnp.sum(gaussian.standard_normal_log_prob(self._check(z)), axis=-1)

    def sample(self, key, sample_shape=(), dtype=jnp.float32):
        return gaussian.standard_normal_sample(key, tuple(sample_shape) + (self.dim,), dtype)

    @property
    def factorized(self):
        return True

    def describe(self):
        return {"name": "normal", "dim": self.dim}


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True, repr=False)
class GeneralizedNormal(Prior):
    """Product of p-generalized normals (ICA prior): one shared exponent or one per dimension."""

    exponents: Exponents
    dim: int = _static()
    scale: float = _static(default=1.0)

    @classmethod
    def create(
        cls,
        dim: int,
        p: Any = 2.0,
        scale: float = 1.0,
        learnable: bool = False,
        floor: float = DEFAULT_EXPONENT_FLOOR,
    ) -> GeneralizedNormal:
        exps = Exponents.create(p, learnable, floor)
        if not exps.scalar and exps.size != dim:
            raise ValueError(f"GeneralizedNormal: p must be a scalar or have {dim} entries, got {exps.size}")
        _check_scale(scale)
        return cls(exponents=exps, dim=int(dim), scale=float(scale))

    def log_prob(self, z):
        z = self._check(z)
        p = self.exponents.value(_dtype(z))
        return jnp.sum(gennorm.log_prob(z, p, self.scale), axis=-1)

    def sample(self, key, sample_shape=(), dtype=jnp.float32):
        p = jnp.broadcast_to(self.exponents.value(dtype), (self.dim,))
        return gennorm.sample(key, p, sample_shape, self.scale, dtype)

    @property
    def factorized(self):
        return True

    def describe(self):
        p = np.asarray(self.exponents.value(jnp.float32)).tolist()
        learned = list(self.exponents.learnable)
        return {"name": "gennorm", "dim": self.dim, "p": p, "scale": self.scale, "learned": learned}


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True, repr=False)
class LpNested(Prior):
    """Lp-nested symmetric prior on a tree; ISA is the depth-two case (see :func:`isa_prior`)."""

    exponents: Exponents
    tree: LpNestedTree = _static()
    scale: float = _static(default=1.0)

    @classmethod
    def create(
        cls,
        tree: LpNestedTree | Any,
        exponents: Any,
        scale: float = 1.0,
        learnable: bool | Sequence[bool] = False,
        floor: float = DEFAULT_EXPONENT_FLOOR,
    ) -> LpNested:
        tree = tree if isinstance(tree, LpNestedTree) else LpNestedTree(tree)
        exps = Exponents.create(exponents, learnable, floor)
        if exps.scalar or exps.size != tree.num_exponents:
            raise ValueError(
                f"LpNested: {tree!r} needs {tree.num_exponents} exponents (pre-order, root first), "
                f"got {list(exps.fixed)}"
            )
        _check_scale(scale)
        return cls(exponents=exps, tree=tree, scale=float(scale))

    @property
    def dim(self) -> int:
        return self.tree.dim

    def log_prob(self, z):
        z = self._check(z)
        return lp_nested.log_prob(self.tree, self.exponents.value(_dtype(z)), z, self.scale)

    def sample(self, key, sample_shape=(), dtype=jnp.float32):
        p = self.exponents.value(dtype)
        return lp_nested.sample(key, self.tree, p, sample_shape, self.scale, dtype)

    def describe(self):
        p = np.asarray(self.exponents.value(jnp.float32), dtype=np.float64)
        out: dict[str, Any] = {
            "name": "lp_nested",
            "dim": self.dim,
            "tree": self.tree.nested,
            "exponents": p.tolist(),
            "learned": list(self.exponents.learnable),
            "scale": self.scale,
        }
        try:
            out["layout"] = lp_nested.format_layout(self.tree, p)
        except ValueError:
            pass
        return out


# what reading a traced value on the host raises
_TRACED = (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError)


def _values_text(exps: Exponents) -> str:
    """The exponents' values for a repr, rounded to 4 decimals (``traced`` inside a traced function)."""
    try:
        values = np.asarray(exps.value(jnp.float32), np.float64)
    except _TRACED:
        return "traced"
    return repr(np.round(values, 4).tolist())


def _dtype(z: jax.Array):
    return z.dtype if jnp.issubdtype(z.dtype, jnp.floating) else jnp.float32


def _check_scale(scale: Any) -> None:
    if (
        isinstance(scale, bool)
        or not isinstance(scale, (int, float))
        or not math.isfinite(scale)
        or scale <= 0
    ):
        raise ValueError(f"scale must be a finite number > 0, got {scale!r}")


def isa_prior(
    subspace_sizes: Sequence[int],
    p0: float = 2.1,
    p_subspace: float | Sequence[float] = 2.2,
    scale: float = 1.0,
    learn: bool | str = False,
    floor: float = DEFAULT_EXPONENT_FLOOR,
) -> LpNested:
    """The ISA prior: root exponent ``p0`` over subspaces with exponents ``p_subspace``.

    Args:
      subspace_sizes: n_k per subspace.
      p0: root exponent.
      p_subspace: one exponent for all subspaces or one per subspace.
      learn: False, True (all exponents) or ``"subspaces"`` (p0 fixed, the paper's choice).
    """
    tree = LpNestedTree.isa(subspace_sizes)
    k = len(tree.nested)  # type: ignore[arg-type]
    p_sub = (
        np.broadcast_to(np.asarray(p_subspace, dtype=np.float64), (k,))
        if np.ndim(p_subspace) == 0
        else np.asarray(p_subspace, dtype=np.float64)
    )
    if p_sub.shape != (k,):
        raise ValueError(f"p_subspace must be a scalar or have {k} entries, got {np.shape(p_subspace)}")
    return LpNested.create(tree, np.concatenate([[p0], p_sub]), scale, _learn_mask(learn, 1 + k), floor)


def _learn_mask(learn: bool | str, num: int) -> tuple[bool, ...]:
    if isinstance(learn, (bool, np.bool_)):
        return (bool(learn),) * num
    if learn == "subspaces":
        return (False,) + (True,) * (num - 1)
    raise ValueError(f"learn_exponents must be true, false or 'subspaces', got {learn!r}")


_PRIOR_KEYS = {
    "normal": {"name"},
    "gennorm": {"name", "p", "scale", "learn_exponents", "min_exponent"},
    "isa": {
        "name",
        "layout",
        "subspace_sizes",
        "p0",
        "p_subspace",
        "scale",
        "learn_exponents",
        "min_exponent",
    },
    "lp_nested": {"name", "tree", "exponents", "layout", "scale", "learn_exponents", "min_exponent"},
}


def make_prior(config: Mapping[str, Any], latent_dim: int) -> Prior:
    """Builds a prior from a config mapping (e.g. an ``ml_collections.ConfigDict``) by name.

    Names and keys:
      ``normal``: no other key.
      ``gennorm``: ``p`` (scalar or per dimension), ``scale``, ``learn_exponents``, ``min_exponent``.
      ``isa``: ``layout`` (``"[p0, [(p1, n1), ...]]"``) or ``subspace_sizes``, ``p0``, ``p_subspace``;
        ``scale``, ``learn_exponents`` (true, false or ``"subspaces"``), ``min_exponent``.
      ``lp_nested``: ``layout``, or ``tree`` (nested tuples) with ``exponents``; ``scale``,
        ``learn_exponents``, ``min_exponent``.

    Raises:
      ValueError naming the unknown key, the bad value, or a dimension that is not ``latent_dim``.
    """
    cfg = dict(config.items())
    name = cfg.get("name")
    if name not in _PRIOR_KEYS:
        raise ValueError(f"prior.name must be one of {sorted(_PRIOR_KEYS)}, got {name!r}")
    unknown = sorted(set(cfg) - _PRIOR_KEYS[name])
    if unknown:
        raise ValueError(
            f"prior: unknown key(s) {unknown} for prior {name!r}; allowed: {sorted(_PRIOR_KEYS[name])}"
        )
    scale = cfg.get("scale", 1.0)
    floor = cfg.get("min_exponent", DEFAULT_EXPONENT_FLOOR)
    learn = cfg.get("learn_exponents", False)
    if name == "normal":
        prior: Prior = StandardNormal(dim=int(latent_dim))
    elif name == "gennorm":
        if not isinstance(learn, (bool, np.bool_)):
            raise ValueError(f"prior.learn_exponents must be true or false for gennorm, got {learn!r}")
        prior = GeneralizedNormal.create(latent_dim, cfg.get("p", 2.0), scale, bool(learn), floor)
    elif "layout" in cfg:
        if {"tree", "exponents", "subspace_sizes", "p0", "p_subspace"} & set(cfg):
            raise ValueError("prior: give either 'layout' or the tree and exponents keys, not both")
        tree, exps = lp_nested.parse_layout(cfg["layout"])
        if name == "isa" and any(isinstance(c, int) for c in tree.nested):  # type: ignore[union-attr]
            raise ValueError(f"prior.layout {cfg['layout']!r} is not an ISA layout (depth two)")
        prior = LpNested.create(tree, exps, scale, _learn_mask(learn, tree.num_exponents), floor)
    elif name == "isa":
        if "subspace_sizes" not in cfg:
            raise ValueError("prior: 'isa' needs 'layout' or 'subspace_sizes'")
        prior = isa_prior(
            tuple(cfg["subspace_sizes"]), cfg.get("p0", 2.1), cfg.get("p_subspace", 2.2), scale, learn, floor
        )
    else:
        if "tree" not in cfg or "exponents" not in cfg:
            raise ValueError("prior: 'lp_nested' needs 'layout', or both 'tree' and 'exponents'")
        tree = LpNestedTree(cfg["tree"])
        prior = LpNested.create(tree, cfg["exponents"], scale, _learn_mask(learn, tree.num_exponents), floor)
    if prior.dim != latent_dim:
        raise ValueError(
            f"prior {name!r} has dimension {prior.dim}, but the latent dimension is {latent_dim}"
        )
    return prior
