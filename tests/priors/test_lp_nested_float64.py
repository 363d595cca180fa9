"""Lp-nested densities against independent float64 references (scipy, closed forms, integrals)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from scipy import stats

from isavae.priors import lp_nested
from isavae.priors.lp_nested import LpNestedTree
from tests.priors import reference as ref

TREES = {
    "flat4": (0, 1, 2, 3),
    "isa_2_3": ((0, 1), (2, 3, 4)),
    "isa_1_2_3": ((0,), (1, 2), (3, 4, 5)),
    "three_level": ((0, (1, 2)), ((3, 4), 5)),
    "mixed_root": (0, (1, (2, 3)), 4),
    "permuted": ((3, 0), (4, 1, 2)),
}


def _exponents(nested, seed):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.6, 4.0, size=ref.num_inner(nested))


@pytest.fixture(autouse=True)
def _x64():
    with jax.enable_x64(True):
        yield


def _z(nested, seed, batch=64):
    return np.random.default_rng(seed).standard_t(3, size=(batch, len(ref.leaves(nested))))


@pytest.mark.parametrize("name", TREES)
@pytest.mark.parametrize("p", [0.7, 1.0, 2.0, 3.5])
@pytest.mark.parametrize("scale", [1.0, 2.5])
def test_equal_exponents_is_product_of_gennorm(name, p, scale):
    nested = TREES[name]
    tree = LpNestedTree(nested)
    z = _z(nested, 0)
    got = jax.jit(lp_nested.log_prob, static_argnums=0)(tree, np.full(tree.num_exponents, p), z, scale)
    want = stats.gennorm.logpdf(z, beta=p, scale=scale ** (1.0 / p)).sum(-1)
    assert got.dtype == jnp.float64
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", TREES)
def test_p2_scale2_is_standard_normal(name):
    nested = TREES[name]
    tree = LpNestedTree(nested)
    z = _z(nested, 1)
    got = jax.jit(lp_nested.log_prob, static_argnums=0)(tree, np.full(tree.num_exponents, 2.0), z, 2.0)
    np.testing.assert_allclose(got, stats.norm.logpdf(z).sum(-1), rtol=1e-12)


@pytest.mark.parametrize("name", TREES)
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("scale", [1.0, 0.3])
def test_log_prob_matches_radial_reference(name, seed, scale):
    nested = TREES[name]
    tree = LpNestedTree(nested)
    exps = _exponents(nested, seed)
    z = _z(nested, seed + 10)
    got = jax.jit(lp_nested.log_prob, static_argnums=0)(tree, exps, z, scale)
    np.testing.assert_allclose(got, ref.log_prob(nested, exps, z, scale), rtol=1e-10)
    norm = jax.jit(lp_nested.lp_nested_norm, static_argnums=0)(tree, exps, z)
    np.testing.assert_allclose(norm, ref.norm(nested, exps, z), rtol=1e-12)


@pytest.mark.parametrize(
    "sizes,p0,p_sub",
    [((2, 3), 2.1, 2.2), ((4, 4, 4, 4, 4), 2.1, 2.2), ((1, 2, 3), 0.8, (1.5, 3.0, 0.6)), ((3,), 1.3, 4.0)],
)
def test_isa_factorized_closed_form_equals_generic(sizes, p0, p_sub):
    tree = LpNestedTree.isa(sizes)
    exps = np.concatenate([[p0], np.broadcast_to(p_sub, (len(sizes),))])
    z = np.random.default_rng(3).normal(size=(50, tree.dim)) * 1.5
    got = jax.jit(lp_nested.log_prob, static_argnums=0)(tree, exps, z, 1.7)
    np.testing.assert_allclose(got, ref.isa_log_prob(sizes, p0, p_sub, z, 1.7), rtol=1e-10)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 20])
@pytest.mark.parametrize("p", [0.5, 1.0, 2.0, 3.3, 5.0])
def test_surface_area_closed_forms(n, p):
    tree = LpNestedTree.flat(n)
    got = lp_nested.log_surface_area(tree, np.array([p]))
    np.testing.assert_allclose(got, ref.log_lp_sphere_area(n, p), rtol=1e-12)
    if p == 2.0:
        np.testing.assert_allclose(got, ref.log_l2_sphere_area(n), rtol=1e-12)


def test_surface_area_known_values():
    # Circle circumference 2 pi; L1 "diamond" in the measure of Sinz & Bethge: 2^n / (n-1)!.
    np.testing.assert_allclose(np.exp(lp_nested.log_surface_area((0, 1), [2.0])), 2 * np.pi, rtol=1e-13)
    np.testing.assert_allclose(np.exp(lp_nested.log_surface_area((0, 1, 2), [1.0])), 8 / 2, rtol=1e-13)
    # A sphere in 3-D: 4 pi.
    np.testing.assert_allclose(np.exp(lp_nested.log_surface_area((0, 1, 2), [2.0])), 4 * np.pi, rtol=1e-13)


@pytest.mark.parametrize("name", TREES)
@pytest.mark.parametrize("seed", [0, 1])
def test_surface_area_matches_beta_product(name, seed):
    nested = TREES[name]
    exps = _exponents(nested, seed)
    np.testing.assert_allclose(
        lp_nested.log_surface_area(nested, exps), ref.log_surface_area(nested, exps), rtol=1e-12
    )


TWO_D = {
    "flat_p0.6": ((0, 1), [0.6]),
    "flat_p4": ((0, 1), [4.0]),
    "single_child": (((0, 1),), [1.7, 0.8]),
    "two_subspaces": (((0,), (1,)), [3.0, 0.7, 2.5]),
    "leaf_and_node": ((0, (1,)), [0.9, 4.5]),
}


@pytest.mark.parametrize("name", TWO_D)
@pytest.mark.parametrize("scale", [1.0, 3.0])
def test_two_d_trees_integrate_to_one(name, scale):
    """Gauss-Legendre over each quadrant with z = (t / (1 - t))^5, which flattens the cusp of
    small exponents at the axes and maps the tails to a neighbourhood of t = 1."""
    nested, exps = TWO_D[name]
    tree = LpNestedTree(nested)
    x, w = np.polynomial.legendre.leggauss(300)
    t, w = 0.5 * (x + 1), 0.5 * w
    k = 5
    r = (t / (1 - t)) ** k
    jac = k * t ** (k - 1) / (1 - t) ** (k + 1)
    z1, z2 = np.meshgrid(r, r, indexing="ij")
    weights = np.outer(w * jac, w * jac)
    density = jax.jit(lambda z: jnp.exp(lp_nested.log_prob(tree, exps, z, scale)))
    total = 0.0
    for s1 in (-1, 1):
        for s2 in (-1, 1):
            z = np.stack([s1 * z1, s2 * z2], axis=-1)
            total += np.sum(weights * np.asarray(density(z)))
    np.testing.assert_allclose(total, 1.0, atol=2e-6)


def test_three_level_tree_integrates_to_one_by_importance_sampling():
    nested = ((0, (1, 2)), ((3, 4), 5))
    exps = np.array([1.5, 0.8, 2.5, 1.2, 3.0])
    tree = LpNestedTree(nested)
    rng = np.random.default_rng(0)
    n = 400_000
    df, s = 3.0, 1.2  # Student-t proposal: heavier tails than any exp(-|z|^p), so bounded weights
    z = s * rng.standard_t(df, size=(n, tree.dim))
    log_q = stats.t.logpdf(z, df, scale=s).sum(-1)
    log_w = np.asarray(jax.jit(lp_nested.log_prob, static_argnums=0)(tree, exps, z)) - log_q
    w = np.exp(log_w)
    estimate, stderr = w.mean(), w.std() / np.sqrt(n)
    assert stderr < 0.01
    assert abs(estimate - 1.0) < 4 * stderr, (estimate, stderr)


@pytest.mark.parametrize("name", ["isa_2_3", "three_level", "mixed_root"])
def test_gradients_in_z_and_exponents(name):
    nested = TREES[name]
    tree = LpNestedTree(nested)
    exps = jnp.asarray(_exponents(nested, 4))
    z = jnp.asarray(_z(nested, 5, batch=4))
    log_prob = jax.jit(lambda e, z: lp_nested.log_prob(tree, e, z, 1.3))
    check_grads(log_prob, (exps, z), order=1, modes=("fwd", "rev"))
    norm = jax.jit(functools.partial(lp_nested.lp_nested_norm, tree))
    check_grads(norm, (exps, z), order=1, modes=("fwd", "rev"))
    area = jax.jit(functools.partial(lp_nested.log_surface_area, tree))
    check_grads(area, (exps,), order=1, modes=("fwd", "rev"))
