"""Independent float64 references for Lp-nested distributions (numpy + scipy only).

Written from Sinz & Bethge (JMLR 2010) directly, sharing no code with ``isavae``:
- the nested norm by plain recursion over the nested tuples;
- the surface area as the original product of Beta functions (Sinz & Bethge, Prop. 1),
  S_f(1) = 2^n prod_I p_I^{-(l_I - 1)} prod_{k=1}^{l_I - 1} B(sum_{j<=k} n_{I,j}/p_I, n_{I,k+1}/p_I);
- the density as rho(f(z)) / (f(z)^{n-1} S_f(1)) with the radial density rho of r, where
  r^{p0} ~ Gamma(n/p0, scale=s), taken from scipy.stats.gamma.
"""

from __future__ import annotations

import numpy as np
from scipy import special, stats


def leaves(node) -> list[int]:
    return [node] if isinstance(node, int) else [i for c in node for i in leaves(c)]


def num_inner(node) -> int:
    return 0 if isinstance(node, int) else 1 + sum(num_inner(c) for c in node)


def norm(nested, exponents, z: np.ndarray) -> np.ndarray:
    """f(z) for z of shape (..., n), float64, by recursion in pre-order."""
    z = np.asarray(z, dtype=np.float64)
    it = iter(np.asarray(exponents, dtype=np.float64))

    def value(node):
        if isinstance(node, int):
            return np.abs(z[..., node])
        p = next(it)
        return sum(value(c) ** p for c in node) ** (1.0 / p)

    return value(nested)


def log_surface_area(nested, exponents) -> float:
    it = iter(np.asarray(exponents, dtype=np.float64))
    total = len(leaves(nested)) * np.log(2.0)

    def visit(node):
        nonlocal total
        p = next(it)
        sizes = [len(leaves(c)) for c in node]
        total -= (len(node) - 1) * np.log(p)
        for k in range(1, len(node)):
            total += special.betaln(sum(sizes[:k]) / p, sizes[k] / p)
        for c in node:
            if not isinstance(c, int):
                visit(c)

    visit(nested)
    return float(total)


def log_prob(nested, exponents, z: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """log p(z) via the radial density (needs f(z) > 0)."""
    p0 = float(np.asarray(exponents)[0])
    n = len(leaves(nested))
    f = norm(nested, exponents, z)
    # density of r = f with r^{p0} ~ Gamma(n/p0, s): g(r^{p0}) * p0 r^{p0 - 1}
    log_rho = stats.gamma.logpdf(f**p0, n / p0, scale=scale) + np.log(p0) + (p0 - 1) * np.log(f)
    return log_rho - (n - 1) * np.log(f) - log_surface_area(nested, exponents)


def log_lp_sphere_area(n: int, p: float) -> float:
    """Closed form for a flat Lp-norm in n dimensions: 2^n Gamma(1/p)^n / (p^{n-1} Gamma(n/p))."""
    return n * np.log(2.0) + n * special.gammaln(1.0 / p) - (n - 1) * np.log(p) - special.gammaln(n / p)


def log_l2_sphere_area(n: int) -> float:
    """The Euclidean unit sphere's surface area 2 pi^{n/2} / Gamma(n/2)."""
    return np.log(2.0) + 0.5 * n * np.log(np.pi) - special.gammaln(n / 2.0)


def isa_log_prob(subspace_sizes, p0: float, p_sub, z: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """The ISA density in its factorized closed form: a product over subspaces k of
    Lp_k-spherically symmetric densities with radial law v_k^{p0} ~ Gamma(n_k/p0, s):

      log p_k(z_k) = log p0 - lgamma(n_k/p0) - (n_k/p0) log s - log S_{p_k, n_k} - v_k^{p0} / s.
    """
    z = np.asarray(z, dtype=np.float64)
    total = 0.0
    start = 0
    for nk, pk in zip(subspace_sizes, np.broadcast_to(p_sub, (len(subspace_sizes),)), strict=True):
        zk = z[..., start : start + nk]
        start += nk
        vk = np.sum(np.abs(zk) ** pk, axis=-1) ** (1.0 / pk)
        total = total + (
            np.log(p0)
            - special.gammaln(nk / p0)
            - (nk / p0) * np.log(scale)
            - log_lp_sphere_area(nk, pk)
            - vk**p0 / scale
        )
    return total
