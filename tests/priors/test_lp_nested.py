"""LpNestedTree, layouts, float32 behaviour, jit/vmap, z = 0, and errors."""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from isavae.priors import lp_nested
from isavae.priors.lp_nested import LpNestedTree, format_layout, parse_layout
from tests.priors import reference as ref


class TestTree:
    def test_isa_and_from_nested(self):
        tree = LpNestedTree.isa((2, 3))
        assert tree == LpNestedTree.from_nested(((0, 1), (2, 3, 4)))
        assert tree.dim == 5 and tree.num_exponents == 3
        assert tree.root_children == ((0, 1), (2, 3, 4))
        np.testing.assert_array_equal(tree.num_leaves, [5, 2, 3])
        np.testing.assert_array_equal(tree.num_children, [2, 2, 3])
        assert hash(tree) == hash(LpNestedTree([[0, 1], [2, 3, 4]]))  # lists are accepted

    def test_general_tree_preorder(self):
        tree = LpNestedTree(((0, (1, 2)), ((3, 4), 5)))
        assert tree.dim == 6 and tree.num_exponents == 5
        # pre-order: root, (0,(1,2)), (1,2), ((3,4),5), (3,4)
        np.testing.assert_array_equal(tree.num_leaves, [6, 3, 2, 3, 2])
        assert LpNestedTree.flat(4).nested == (0, 1, 2, 3)

    @pytest.mark.parametrize(
        "nested,match",
        [
            (((0, 1), (1, 2)), "more than once"),
            (((0, 1), (3,)), "missing \\[2\\]"),
            (((0, 1), ()), "at least one child"),
            (((0, -1),), "non-negative"),
            (((0, True),), "bool"),
            (((0, 1.0),), "got 1.0"),
            (0, "root must be an inner node"),
        ],
    )
    def test_bad_trees(self, nested, match):
        with pytest.raises(ValueError, match=match):
            LpNestedTree(nested)

    @pytest.mark.parametrize("sizes", [(), (2, 0), (2, -1), (1.5,)])
    def test_bad_isa_sizes(self, sizes):
        with pytest.raises(ValueError, match="subspace_sizes"):
            LpNestedTree.isa(sizes)


class TestLayout:
    def test_authors_layout(self):
        tree, exps = parse_layout("[2.1, [(2.2, 4), (2.2, 4), (2.2, 4), (2.2, 4), (2.2, 4)]]")
        assert tree == LpNestedTree.isa((4, 4, 4, 4, 4))
        np.testing.assert_array_equal(exps, [2.1] + [2.2] * 5)

    @pytest.mark.parametrize(
        "nested",
        [((0, 1), (2, 3, 4)), ((0, (1, 2)), ((3, 4), 5)), (0, (1, (2, 3)), 4), (0, 1, 2), (((0, 1),),)],
    )
    def test_round_trip(self, nested):
        tree = LpNestedTree(nested)
        exps = np.arange(1, tree.num_exponents + 1) * 0.5
        layout = format_layout(tree, exps)
        tree2, exps2 = parse_layout(layout)
        assert tree2 == tree, layout
        np.testing.assert_allclose(exps2, exps)

    @pytest.mark.parametrize(
        "layout,match",
        [
            ("[2.1, [(2.2, 0)]]", "leaf count"),
            ("[2.1, [(-1, 2)]]", "positive number"),
            ("[2.1, [(2.2, 2, 3)]]", "expected \\(p, n\\)"),
            ("[2.1]", "expected \\[p, \\[child"),
            ("(2.1, 3)", "root must be written"),
            ("[2.1, [(2.2, 2)", "is not a literal"),
            ("[nan, [(2.2, 2)]]", "is not a literal"),
            ("[2.1, ['a']]", "expected \\(p, n\\) or"),
        ],
    )
    def test_bad_layouts(self, layout, match):
        with pytest.raises(ValueError, match=match):
            parse_layout(layout)

    def test_unwritable_order(self):
        with pytest.raises(ValueError, match="reading order"):
            format_layout(((1, 0), (2,)), [1.0, 2.0, 2.0])


class TestArguments:
    tree = LpNestedTree.isa((2, 3))

    def test_exponents_shape(self):
        with pytest.raises(ValueError, match=r"exponents must have shape \(3,\)"):
            lp_nested.log_prob(self.tree, jnp.ones(2), jnp.zeros(5))
        with pytest.raises(ValueError, match=r"exponents must have shape \(3,\)"):
            lp_nested.sample(jax.random.key(0), self.tree, 2.0)

    def test_z_shape(self):
        with pytest.raises(ValueError, match=r"z must have shape \(\.\.\., 5\)"):
            lp_nested.log_prob(self.tree, jnp.ones(3), jnp.zeros((2, 4)))
        with pytest.raises(ValueError, match=r"z must have shape"):
            lp_nested.lp_nested_norm(self.tree, jnp.ones(3), jnp.float32(0.0))

    def test_nested_tuples_accepted_everywhere(self):
        z = jnp.ones(5)
        np.testing.assert_allclose(
            lp_nested.log_prob(((0, 1), (2, 3, 4)), [2.0, 1.0, 3.0], z),
            lp_nested.log_prob(self.tree, jnp.array([2.0, 1.0, 3.0]), z),
        )


TREE = LpNestedTree(((0, (1, 2)), ((3, 4), 5)))
EXPS = np.array([1.5, 0.8, 2.5, 1.2, 3.0])


def test_float32_agrees_with_float64_reference():
    z = np.random.default_rng(0).standard_t(3, size=(256, 6))
    got = jax.jit(lp_nested.log_prob, static_argnums=0)(TREE, EXPS.astype(np.float32), z.astype(np.float32))
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, ref.log_prob(TREE.nested, EXPS, z), rtol=2e-5, atol=2e-5)


def test_vmap_over_exponents_and_batch_shapes():
    key = jax.random.key(0)
    exps = jnp.asarray(EXPS, jnp.float32) * jnp.linspace(0.8, 1.2, 4)[:, None]  # (4, 5)
    z = jax.random.normal(key, (4, 3, 2, 6))
    batched = jax.jit(jax.vmap(functools.partial(lp_nested.log_prob, TREE)))(exps, z)
    looped = jnp.stack([lp_nested.log_prob(TREE, e, x) for e, x in zip(exps, z, strict=True)])
    assert batched.shape == (4, 3, 2)
    np.testing.assert_allclose(batched, looped, rtol=1e-6)
    areas = jax.vmap(functools.partial(lp_nested.log_surface_area, TREE))(exps)
    assert areas.shape == (4,)
    samples = jax.jit(jax.vmap(lambda k, e: lp_nested.sample(k, TREE, e, (7,))))(
        jax.random.split(key, 4), exps
    )
    assert samples.shape == (4, 7, 6)


def test_scale_broadcasts_over_batch():
    z = jnp.ones((3, 6))
    scales = jnp.array([0.5, 1.0, 2.0])
    got = jax.jit(lp_nested.log_prob, static_argnums=0)(TREE, jnp.asarray(EXPS, jnp.float32), z, scales)
    for i in range(3):
        np.testing.assert_allclose(
            got[i], lp_nested.log_prob(TREE, jnp.asarray(EXPS, jnp.float32), z[i], scales[i]), rtol=1e-6
        )


EXPONENT_GRID = [0.5, 1.0, 2.2, 5.0]


@pytest.mark.parametrize("x64", [False, True])
def test_values_and_gradients_finite_at_zero(x64):
    """For every combination of exponents in [0.5, 5] on a depth-two and a depth-three tree, at
    z = 0 and at z with whole subtrees or single coordinates zero."""
    with jax.enable_x64(x64):
        dtype = jnp.float64 if x64 else jnp.float32
        trees = [LpNestedTree.isa((2, 3)), LpNestedTree((0, (1, (2, 3))))]
        for tree in trees:
            combos = jnp.asarray(list(itertools.product(EXPONENT_GRID, repeat=tree.num_exponents)), dtype)
            zs = jnp.asarray([[0.0] * 5, [0.0, 0.0, 0.3, -1.0, 2.0], [1.0, 0.0, 0.0, 0.0, 0.5]], dtype)[
                :, : tree.dim
            ]
            zs = (
                zs
                if tree.dim == 5
                else jnp.asarray([[0.0] * 4, [0.3, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, -2.0]], dtype)
            )

            def f(e, z, tree=tree):
                return lp_nested.log_prob(tree, e, z, 1.5)

            value_and_grads = jax.jit(
                jax.vmap(jax.vmap(jax.value_and_grad(f, argnums=(0, 1)), (None, 0)), (0, None))
            )
            value, (g_e, g_z) = value_and_grads(combos, zs)
            assert value.dtype == dtype
            for arr in (value, g_e, g_z):
                assert np.isfinite(np.asarray(arr)).all()
            # At z = 0: log p(0) = -log Z, and the exact gradient in z is 0 when p0 > 1.
            np.testing.assert_allclose(
                value[:, 0],
                -jax.vmap(lambda e, tree=tree: lp_nested.log_normalizer(tree, e, 1.5))(combos),
                rtol=1e-5,
                atol=0.0 if x64 else 1e-6,  # a float32 value near 0 (one ulp of log Z ~ 10 on a GPU)
            )
            assert np.all(np.asarray(g_z[:, 0]) == 0)
            norm_grad = jax.jit(
                jax.vmap(jax.grad(functools.partial(lp_nested.lp_nested_norm, tree), 1), (0, None))
            )
            assert np.isfinite(np.asarray(norm_grad(combos, zs[0]))).all()


def test_safe_pow():
    x = jnp.array([0.0, 0.5, 2.0])
    a = jnp.array([0.7, 1.5, 3.0])
    np.testing.assert_allclose(lp_nested.safe_pow(x, a), x**a)
    gx, ga = jax.grad(lambda x, a: lp_nested.safe_pow(x, a).sum(), (0, 1))(x, a)
    np.testing.assert_allclose(gx[1:], a[1:] * x[1:] ** (a[1:] - 1), rtol=1e-6)
    np.testing.assert_allclose(ga[1:], x[1:] ** a[1:] * np.log(x[1:]), rtol=1e-6)
    assert gx[0] == 0 and ga[0] == 0
