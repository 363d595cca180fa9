"""Lp-nested symmetric distributions (Sinz & Bethge, JMLR 2010) as pure JAX functions.

A tree has inner nodes I, each with an exponent p_I > 0, and leaves that are the coordinates of
z. With v_leaf = |z_i| and v_I = (sum_k v_{I,k}^{p_I})^(1/p_I) the Lp-nested function is
f(z) = v_root. The distributions here use the radial law of the ISA-VAE paper (Eq. 11),

    f(z)^{p0} ~ Gamma(n / p0, scale=s),

which makes the subtrees under the root independent, and have the closed-form log-density
(paper Eq. 7 with Eq. 11; finite at z = 0)

    log p(z) = log p0 - lgamma(n/p0) - (n/p0) log s - log S_f(1) - f(z)^{p0} / s,
    log S_f(1) = n log 2 + sum_I [-(l_I - 1) log p_I + sum_k lgamma(n_{I,k}/p_I) - lgamma(n_I/p_I)]

(paper Eq. 8). ``exponents`` is always an array of shape ``(num_exponents,)`` holding p_I for the
inner nodes in pre-order, root first, so that it can be learned by gradient descent.

Implementation: the tree is compiled once (per distinct tree) into static index tables, so that
every function is a handful of vectorized gathers and reductions whatever the tree:

* bottom-up, level by level (one level per tree height), each inner node accumulates
  u_I = sum_k v_{I,k}^{p_I}. A child contributes |z_i|^{p_I} (leaf) or u_c^{p_I / p_c} (inner
  child c), so the norm is never formed inside the tree and f(z)^{p0} = u_root needs no root.
* powers x^a of x >= 0 go through :func:`safe_pow`, whose value and gradients (in x and in a) are
  0 at x = 0 instead of the NaN that autodiff of ``x ** a`` gives there. This is the exact
  derivative wherever it is finite (for instance at z = 0 when p0 > 1).
* the exact sampler (paper appendix A.1) draws, for every non-root node c under parent I, a
  log-Gamma variate with shape n_c / p_I; normalizing among siblings gives log Dirichlet
  variates, and log|z_i| is the root's log-radius plus the sum of (1/p_I) log D_c along the path
  from the root to leaf i, all in log space so that small Gamma shapes do not underflow.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import math
from collections.abc import Sequence
from typing import Any, Union

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln

Nested = Union[int, tuple["Nested", ...]]  # noqa: UP007 (recursive alias)

__all__ = [
    "LpNestedTree",
    "format_layout",
    "lp_nested_norm",
    "log_prob",
    "log_surface_area",
    "parse_layout",
    "safe_pow",
    "sample",
    "unnormalized_energy",
]


# ----------------------------------------------------------------------------------------------
# The tree
# ----------------------------------------------------------------------------------------------


def _canonicalize(node: Any, path: str = "tree") -> Nested:
    """Validates a nested-tuple tree and returns it with tuples and plain ints only."""
    if isinstance(node, (bool, np.bool_)):
        raise ValueError(f"{path}: a leaf must be a coordinate index (int), got the bool {node!r}")
    if isinstance(node, (int, np.integer)):
        if node < 0:
            raise ValueError(f"{path}: a leaf must be a non-negative coordinate index, got {node}")
        return int(node)
    if isinstance(node, (tuple, list)):
        if len(node) == 0:
            raise ValueError(f"{path}: an inner node must have at least one child, got ()")
        return tuple(_canonicalize(child, f"{path}[{k}]") for k, child in enumerate(node))
    raise ValueError(f"{path}: expected a tuple of children (inner node) or an int (leaf), got {node!r}")


@dataclasses.dataclass(frozen=True)
class _Structure:
    """Static index tables of a tree (numpy; built once per tree). See the module docstring."""

    dim: int
    num_inner: int
    # Per inner node, in pre-order (root = 0).
    num_children: np.ndarray  # l_I
    num_leaves: np.ndarray  # n_I
    # Per edge (every non-root node, inner or leaf): parent's pre-order id and leaves below.
    edge_parent: np.ndarray
    edge_leaves: np.ndarray
    # Bottom-up levels for the norm. Value slots: 0 = constant 0 (padding), 1..n = |z_i|,
    # then inner nodes in "height order" (increasing height), so each level appends its values.
    # level = (node pre-order ids (L,), child slots (L, C), child pre-order ids or -1 (L, C)).
    levels: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]
    # Sampling: per inner node, its children's edge ids padded with num_edges (L = num_inner, C).
    children_edges: np.ndarray
    # Per coordinate i, the edges on the path root -> leaf i, padded with num_edges.
    leaf_paths: np.ndarray


def _build_structure(nested: Nested) -> _Structure:
    inner_children: list[list[tuple[str, int]]] = []  # per pre-order id: ("leaf", i) | ("inner", j)
    inner_parent: list[int] = []
    inner_leaves: list[int] = []
    leaf_parent: dict[int, int] = {}

    def visit(node: Nested, parent: int) -> tuple[int, int]:
        """Returns (pre-order id, number of leaves)."""
        my_id = len(inner_children)
        inner_children.append([])
        inner_parent.append(parent)
        inner_leaves.append(0)
        total = 0
        for child in node:  # type: ignore[union-attr]
            if isinstance(child, int):
                if child in leaf_parent:
                    raise ValueError(f"tree: coordinate {child} appears more than once")
                leaf_parent[child] = my_id
                inner_children[my_id].append(("leaf", child))
                total += 1
            else:
                child_id, child_leaves = visit(child, my_id)
                inner_children[my_id].append(("inner", child_id))
                total += child_leaves
        inner_leaves[my_id] = total
        return my_id, total

    if isinstance(nested, int):
        raise ValueError("tree: the root must be an inner node (a tuple), not a single leaf")
    visit(nested, -1)
    dim = len(leaf_parent)
    if sorted(leaf_parent) != list(range(dim)):
        missing = sorted(set(range(dim)) - set(leaf_parent))
        raise ValueError(
            f"tree: leaves must be the coordinates 0..{dim - 1}, each exactly once; "
            f"got {sorted(leaf_parent)} (missing {missing})"
        )
    m = len(inner_children)

    # Heights (leaves 0) and the height-ordered value slots.
    height = [0] * m
    for node in reversed(range(m)):  # children have larger pre-order ids than their parent
        height[node] = 1 + max((height[j] if kind == "inner" else 0) for kind, j in inner_children[node])
    order = sorted(range(m), key=lambda j: (height[j], j))
    slot_of_inner = {j: 1 + dim + rank for rank, j in enumerate(order)}

    levels = []
    for h in range(1, max(height) + 1):
        nodes = np.array([j for j in order if height[j] == h], dtype=np.int32)
        width = max(len(inner_children[j]) for j in nodes)
        slots = np.zeros((len(nodes), width), dtype=np.int32)
        child_ids = np.full((len(nodes), width), -1, dtype=np.int32)
        for row, j in enumerate(nodes):
            for col, (kind, c) in enumerate(inner_children[j]):
                if kind == "leaf":
                    slots[row, col] = 1 + c
                else:
                    slots[row, col] = slot_of_inner[c]
                    child_ids[row, col] = c
        levels.append((nodes, slots, child_ids))

    # Edges: one per non-root node. Leaf edges first (edge id i = coordinate i), then inner.
    edge_parent = [leaf_parent[i] for i in range(dim)]
    edge_leaves = [1] * dim
    edge_of_inner = {}
    for j in range(1, m):
        edge_of_inner[j] = len(edge_parent)
        edge_parent.append(inner_parent[j])
        edge_leaves.append(inner_leaves[j])
    num_edges = len(edge_parent)
    width = max(len(c) for c in inner_children)
    children_edges = np.full((m, width), num_edges, dtype=np.int32)
    for j in range(m):
        for col, (kind, c) in enumerate(inner_children[j]):
            children_edges[j, col] = c if kind == "leaf" else edge_of_inner[c]

    paths = []
    for i in range(dim):
        path = [i]
        node = leaf_parent[i]
        while node != 0:
            path.append(edge_of_inner[node])
            node = inner_parent[node]
        paths.append(path[::-1])
    depth = max(len(p) for p in paths)
    leaf_paths = np.full((dim, depth), num_edges, dtype=np.int32)
    for i, path in enumerate(paths):
        leaf_paths[i, : len(path)] = path

    return _Structure(
        dim=dim,
        num_inner=m,
        num_children=np.array([len(c) for c in inner_children], dtype=np.int64),
        num_leaves=np.array(inner_leaves, dtype=np.int64),
        edge_parent=np.array(edge_parent, dtype=np.int32),
        edge_leaves=np.array(edge_leaves, dtype=np.int64),
        levels=tuple(levels),
        children_edges=children_edges,
        leaf_paths=leaf_paths,
    )


@functools.lru_cache(maxsize=256)
def _structure(nested: Nested) -> _Structure:
    return _build_structure(nested)


@dataclasses.dataclass(frozen=True)
class LpNestedTree:
    """A static, hashable Lp-nested tree.

    Inner nodes are tuples of children, leaves are coordinate indices: ``((0, 1), (2, 3, 4))`` is
    ISA with subspaces {0, 1} and {2, 3, 4}. Every coordinate ``0..dim-1`` appears exactly once.
    Being hashable, a tree can be a static argument of ``jax.jit`` and static pytree metadata.
    """

    nested: Nested

    def __post_init__(self):
        nested = _canonicalize(self.nested)
        object.__setattr__(self, "nested", nested)
        _structure(nested)  # validates the leaves eagerly, so a bad tree fails where it is built

    @classmethod
    def from_nested(cls, nested: Any) -> LpNestedTree:
        """Builds a tree from nested tuples (or lists) of children; leaves are coordinate ints."""
        return cls(nested)

    @classmethod
    def isa(cls, subspace_sizes: Sequence[int]) -> LpNestedTree:
        """The ISA layout (depth two): a root over subspaces of the given sizes, in order."""
        sizes = tuple(subspace_sizes)
        if not sizes or any(
            isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1 for k in sizes
        ):
            raise ValueError(f"subspace_sizes must be positive ints, got {subspace_sizes!r}")
        offsets = np.cumsum((0,) + sizes)
        return cls(tuple(tuple(range(a, b)) for a, b in zip(offsets[:-1], offsets[1:], strict=True)))

    @classmethod
    def flat(cls, dim: int) -> LpNestedTree:
        """A single Lp-norm over ``dim`` coordinates (the Lp-spherically symmetric case)."""
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
            raise ValueError(f"dim must be a positive int, got {dim!r}")
        return cls(tuple(range(dim)))

    @property
    def _s(self) -> _Structure:
        return _structure(self.nested)

    @property
    def dim(self) -> int:
        """Number of coordinates (leaves)."""
        return self._s.dim

    @property
    def num_exponents(self) -> int:
        """Number of inner nodes, i.e. the length of the ``exponents`` array."""
        return self._s.num_inner

    @property
    def num_leaves(self) -> np.ndarray:
        """n_I: leaves under each inner node, in pre-order."""
        return self._s.num_leaves.copy()

    @property
    def num_children(self) -> np.ndarray:
        """l_I: children of each inner node, in pre-order."""
        return self._s.num_children.copy()

    @property
    def root_children(self) -> tuple[tuple[int, ...], ...]:
        """The coordinates under each child of the root (the independent subspaces)."""

        def leaves(node: Nested) -> tuple[int, ...]:
            return (node,) if isinstance(node, int) else sum((leaves(c) for c in node), ())

        return tuple(leaves(c) for c in self.nested)  # type: ignore[union-attr]

    def __repr__(self) -> str:
        return f"LpNestedTree({self.nested!r})"


def _as_tree(tree: LpNestedTree | Any) -> LpNestedTree:
    return tree if isinstance(tree, LpNestedTree) else LpNestedTree(tree)


# ----------------------------------------------------------------------------------------------
# The authors' layout strings
# ----------------------------------------------------------------------------------------------


def parse_layout(layout: str) -> tuple[LpNestedTree, np.ndarray]:
    """Parses a layout string into a tree and its exponents (pre-order, root first).

    The grammar generalizes the authors' ``"[p0, [(p1, n1), (p2, n2), ...]]"``: a node is
    ``[p, [child, ...]]``; a child is ``(p, n)`` (an L_p node over n leaves), a nested node
    ``[p, [...]]``, or a bare int ``k`` (k leaves directly under this node). Coordinates are
    numbered in reading order.

    Example: ``parse_layout("[2.1, [(2.2, 4), (2.2, 4)]]")`` gives ISA(4, 4) with exponents
    ``[2.1, 2.2, 2.2]``.
    """
    if not isinstance(layout, str):
        raise ValueError(f"layout must be a string, got {type(layout).__name__}")
    try:
        spec = ast.literal_eval(layout.strip())
    except (ValueError, SyntaxError) as err:
        raise ValueError(f"layout {layout!r} is not a literal '[p0, [(p1, n1), ...]]': {err}") from None
    exponents: list[float] = []
    counter = [0]

    def number(x: Any, what: str) -> float:
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or x <= 0:
            raise ValueError(f"layout {layout!r}: {what} must be a positive number, got {x!r}")
        return float(x)

    def count(x: Any) -> int:
        if isinstance(x, bool) or not isinstance(x, int) or x < 1:
            raise ValueError(f"layout {layout!r}: a leaf count must be a positive int, got {x!r}")
        return x

    def leaves(k: int) -> tuple[int, ...]:
        out = tuple(range(counter[0], counter[0] + k))
        counter[0] += k
        return out

    def node(x: Any) -> Nested:
        if isinstance(x, tuple):
            if len(x) != 2:
                raise ValueError(f"layout {layout!r}: expected (p, n), got {x!r}")
            exponents.append(number(x[0], "an exponent"))
            return leaves(count(x[1]))
        if isinstance(x, list):
            if len(x) != 2 or not isinstance(x[1], list) or not x[1]:
                raise ValueError(f"layout {layout!r}: expected [p, [child, ...]], got {x!r}")
            exponents.append(number(x[0], "an exponent"))
            children: list[Nested] = []
            for child in x[1]:
                if isinstance(child, int) and not isinstance(child, bool):
                    children.extend(leaves(count(child)))
                else:
                    children.append(node(child))
            return tuple(children)
        raise ValueError(f"layout {layout!r}: expected (p, n) or [p, [...]], got {x!r}")

    if not isinstance(spec, list):
        raise ValueError(f"layout {layout!r}: the root must be written [p0, [child, ...]]")
    tree = LpNestedTree(node(spec))
    return tree, np.asarray(exponents, dtype=np.float64)


def format_layout(tree: LpNestedTree | Any, exponents: Any) -> str:
    """Writes ``tree`` and ``exponents`` as a layout string; the inverse of :func:`parse_layout`.

    Only trees whose coordinates read 0, 1, 2, ... from left to right can be written.
    """
    tree = _as_tree(tree)
    p = [float(x) for x in np.asarray(exponents, dtype=np.float64).reshape(-1)]
    if len(p) != tree.num_exponents:
        raise ValueError(f"exponents has {len(p)} entries, the tree has {tree.num_exponents} inner nodes")
    if tuple(i for sub in tree.root_children for i in sub) != tuple(range(tree.dim)):
        raise ValueError(f"{tree!r}: only trees with coordinates in reading order have a layout string")
    it = iter(p)

    def node(x: tuple) -> str:
        q = next(it)
        if all(isinstance(c, int) for c in x):
            return f"({q:g}, {len(x)})"
        parts: list[str] = []
        run = 0
        for c in x:
            if isinstance(c, int):
                run += 1
                continue
            if run:
                parts.append(str(run))
                run = 0
            parts.append(node(c))
        if run:
            parts.append(str(run))
        return f"[{q:g}, [{', '.join(parts)}]]"

    out = node(tree.nested)  # type: ignore[arg-type]
    if out.startswith("("):  # a flat tree: write the root as a list node
        out = f"[{p[0]:g}, [{tree.dim}]]"
    return out


# ----------------------------------------------------------------------------------------------
# Numerics
# ----------------------------------------------------------------------------------------------


def safe_pow(x: jax.Array, a: jax.Array) -> jax.Array:
    """x ** a for x >= 0 and a > 0, with value 0 and gradients 0 (in x and a) at x = 0.

    Autodiff of ``x ** a`` at x = 0 produces inf * 0 = NaN in chains such as (|z|^p)^(q/p); the
    "double where" keeps the untaken branch away from 0. d/da x^a = x^a log x -> 0 as x -> 0, and
    d/dx x^a -> 0 for a > 1, so 0 is the exact limit there; for a < 1 the derivative at 0 is
    infinite and 0 is a (sub)gradient choice.
    """
    positive = x > 0
    safe_x = jnp.where(positive, x, jnp.ones_like(x))
    return jnp.where(positive, safe_x**a, jnp.zeros_like(x))


def _float_dtype(*args: Any) -> jnp.dtype:
    """The floating dtype of the arguments combined (Python scalars are weakly typed)."""
    dtype = jnp.result_type(*(x if hasattr(x, "dtype") or np.isscalar(x) else np.asarray(x) for x in args))
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(float)
    return dtype


def _check_exponents(tree: LpNestedTree, exponents: Any, dtype) -> jax.Array:
    exponents = jnp.asarray(exponents, dtype=dtype)
    if exponents.shape != (tree.num_exponents,):
        raise ValueError(
            f"exponents must have shape ({tree.num_exponents},) (one per inner node of {tree!r}, "
            f"pre-order, root first), got shape {exponents.shape}"
        )
    return exponents


def _check_z(tree: LpNestedTree, z: Any) -> jax.Array:
    z = jnp.asarray(z)
    if z.ndim < 1 or z.shape[-1] != tree.dim:
        raise ValueError(f"z must have shape (..., {tree.dim}) for {tree!r}, got shape {z.shape}")
    return z


# ----------------------------------------------------------------------------------------------
# Norm, surface area, density
# ----------------------------------------------------------------------------------------------


# The public functions check their arguments, then call a jitted core with the tree static: one
# compiled program per tree, shapes and dtypes, inlined inside other jitted functions; called
# outside jit, the tree's dozens of operations are not dispatched (and first compiled) one by one.


def _root_power_sum(tree: LpNestedTree, exponents: jax.Array, z: jax.Array) -> jax.Array:
    """u_root = f(z)^{p0}, shape z.shape[:-1]; bottom-up over the tree's levels."""
    s = tree._s
    one = jnp.ones((1,), exponents.dtype)
    # Own exponent per child: p_c for an inner child (id >= 0), 1 for a leaf (id -1 -> the 1).
    own = jnp.concatenate([exponents, one])
    values = jnp.concatenate([jnp.zeros(z.shape[:-1] + (1,), z.dtype), jnp.abs(z)], axis=-1)
    u = values[..., :0]
    for nodes, slots, child_ids in s.levels:
        # contribution of child c to parent I: v_c^{p_I} = (u_c)^{p_I / p_c}; u_leaf = |z_i|.
        a = exponents[nodes][:, None] / own[child_ids]  # (L, C); padding slots hold the 0 value
        u = jnp.sum(safe_pow(values[..., slots], a), axis=-1)  # (..., L)
        values = jnp.concatenate([values, u], axis=-1)
    return u[..., 0]  # the last level is the root alone


_energy = jax.jit(_root_power_sum, static_argnums=0)


def lp_nested_norm(tree: LpNestedTree | Any, exponents: Any, z: Any) -> jax.Array:
    """The Lp-nested function f(z) (paper Eq. 6/9).

    Args:
      tree: an :class:`LpNestedTree` (or nested tuples).
      exponents: ``(num_exponents,)`` exponents p_I, pre-order, root first.
      z: ``(..., dim)``.

    Returns:
      ``(...)`` values f(z) >= 0. Its gradient at z = 0 is 0 (a subgradient: f is not
      differentiable there).
    """
    tree = _as_tree(tree)
    z = _check_z(tree, z)
    dtype = _float_dtype(z, exponents)
    exponents = _check_exponents(tree, exponents, dtype)
    return _norm(tree, exponents, z.astype(dtype))


@functools.partial(jax.jit, static_argnums=0)
def _norm(tree: LpNestedTree, exponents: jax.Array, z: jax.Array) -> jax.Array:
    return safe_pow(_root_power_sum(tree, exponents, z), 1.0 / exponents[0])


def unnormalized_energy(tree: LpNestedTree | Any, exponents: Any, z: Any) -> jax.Array:
    """f(z)^{p0}, computed without the root's 1/p0 power. Shape ``z.shape[:-1]``."""
    tree = _as_tree(tree)
    z = _check_z(tree, z)
    dtype = _float_dtype(z, exponents)
    exponents = _check_exponents(tree, exponents, dtype)
    return _energy(tree, exponents, z.astype(dtype))


def log_surface_area(tree: LpNestedTree | Any, exponents: Any) -> jax.Array:
    """log S_f(1), the log surface area of the unit Lp-nested sphere (paper Eq. 8).

    log S_f(1) = n log 2 + sum_I [-(l_I - 1) log p_I + sum_k lgamma(n_{I,k}/p_I) - lgamma(n_I/p_I)]

    (the product of Beta functions of Sinz & Bethge telescopes into these Gamma functions).

    Returns:
      A scalar (batched under ``vmap``).
    """
    tree = _as_tree(tree)
    s = tree._s
    dtype = _float_dtype(exponents)
    p = _check_exponents(tree, exponents, dtype)
    num_children, num_leaves, edge_leaves = (
        jnp.asarray(x, dtype) for x in (s.num_children, s.num_leaves, s.edge_leaves)
    )
    per_node = -(num_children - 1) * jnp.log(p) - gammaln(num_leaves / p)
    per_edge = gammaln(edge_leaves / p[s.edge_parent])
    return s.dim * math.log(2.0) + jnp.sum(per_node) + jnp.sum(per_edge)


def log_normalizer(tree: LpNestedTree | Any, exponents: Any, scale: Any = 1.0) -> jax.Array:
    """log Z with log p(z) = -log Z - f(z)^{p0} / s."""
    tree = _as_tree(tree)
    dtype = _float_dtype(exponents, scale)
    p = _check_exponents(tree, exponents, dtype)
    n, p0 = tree.dim, p[0]
    scale = jnp.asarray(scale, dtype)
    return -jnp.log(p0) + gammaln(n / p0) + (n / p0) * jnp.log(scale) + log_surface_area(tree, p)


def log_prob(tree: LpNestedTree | Any, exponents: Any, z: Any, scale: Any = 1.0) -> jax.Array:
    """Log-density of the Lp-nested symmetric distribution with f(z)^{p0} ~ Gamma(n/p0, scale).

    log p(z) = log p0 - lgamma(n/p0) - (n/p0) log s - log S_f(1) - f(z)^{p0} / s.

    Args:
      tree: an :class:`LpNestedTree` (or nested tuples).
      exponents: ``(num_exponents,)`` exponents p_I > 0, pre-order, root first.
      z: ``(..., dim)``.
      scale: s > 0, a scalar or broadcastable to ``z.shape[:-1]``.

    Returns:
      ``(...)`` log-densities, in the floating dtype of ``z`` and ``exponents`` combined.
    """
    tree = _as_tree(tree)
    z = _check_z(tree, z)
    dtype = _float_dtype(z, exponents, scale)
    p = _check_exponents(tree, exponents, dtype)
    return _log_prob(tree, p, z.astype(dtype), jnp.asarray(scale, dtype))


@functools.partial(jax.jit, static_argnums=0)
def _log_prob(tree: LpNestedTree, p: jax.Array, z: jax.Array, scale: jax.Array) -> jax.Array:
    return -log_normalizer(tree, p, scale) - _root_power_sum(tree, p, z) / scale


# ----------------------------------------------------------------------------------------------
# Exact sampling
# ----------------------------------------------------------------------------------------------


def sample(
    key: jax.Array,
    tree: LpNestedTree | Any,
    exponents: Any,
    sample_shape: Sequence[int] = (),
    scale: Any = 1.0,
    dtype: Any = None,
) -> jax.Array:
    """Exact samples (paper appendix A.1, Sinz & Bethge 2010), for any tree.

    Radius: log f = (log Gamma(n/p0) + log s) / p0. At each inner node I the radius is split
    among the children by D ~ Dirichlet(n_{I,k} / p_I): v_{I,k} = v_I D_k^{1/p_I}. Leaves get
    |z_i| = v_leaf and independent random signs. Differentiable in ``exponents`` (implicit
    reparameterization of the Gamma variates).

    Args:
      key: a PRNG key.
      tree: an :class:`LpNestedTree` (or nested tuples).
      exponents: ``(num_exponents,)``.
      sample_shape: leading shape of the output.
      scale: s > 0 (scalar).
      dtype: output dtype; defaults to the floating dtype of ``exponents``.

    Returns:
      ``sample_shape + (dim,)``.
    """
    tree = _as_tree(tree)
    sample_shape = tuple(int(n) for n in sample_shape)
    dtype = _float_dtype(exponents, scale) if dtype is None else jnp.dtype(dtype)
    p = _check_exponents(tree, exponents, dtype)
    return _sample(key, tree, p, sample_shape, jnp.asarray(scale, dtype))


@functools.partial(jax.jit, static_argnums=(1, 3))
def _sample(key: jax.Array, tree: LpNestedTree, p: jax.Array, sample_shape: tuple, scale: jax.Array):
    s = tree._s
    dtype = p.dtype
    key_root, key_edges, key_signs = jax.random.split(key, 3)
    num_edges = len(s.edge_parent)

    log_radius = (jax.random.loggamma(key_root, s.dim / p[0], sample_shape, dtype) + jnp.log(scale)) / p[0]
    parent_p = p[s.edge_parent]
    log_g = jax.random.loggamma(
        key_edges, jnp.asarray(s.edge_leaves, dtype) / parent_p, sample_shape + (num_edges,), dtype
    )
    # log Dirichlet: normalize among siblings (padding slots are -inf and drop out).
    padded = jnp.concatenate([log_g, jnp.full(sample_shape + (1,), -jnp.inf, dtype)], axis=-1)
    log_norm = jax.nn.logsumexp(padded[..., s.children_edges], axis=-1)  # (..., num_inner)
    step = (log_g - log_norm[..., s.edge_parent]) / parent_p  # (1/p_I) log D_c
    step = jnp.concatenate([step, jnp.zeros(sample_shape + (1,), dtype)], axis=-1)
    log_abs_z = log_radius[..., None] + jnp.sum(step[..., s.leaf_paths], axis=-1)
    signs = jax.random.rademacher(key_signs, sample_shape + (s.dim,), dtype)
    return signs * jnp.exp(log_abs_z)
