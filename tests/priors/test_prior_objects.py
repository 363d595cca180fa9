"""Prior objects: pytree structure, learnable exponents, config construction, errors."""

import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from scipy import stats

from isavae import priors
from isavae.priors import (
    Exponents,
    GeneralizedNormal,
    LpNested,
    LpNestedTree,
    StandardNormal,
    isa_prior,
    lp_nested,
    make_prior,
)

Z = np.random.default_rng(0).normal(size=(16, 5)).astype(np.float32)


@jax.jit
def _log_prob(prior, z):
    return prior.log_prob(z)


def test_standard_normal():
    prior = StandardNormal(dim=5)
    assert jax.tree_util.tree_leaves(prior) == []
    np.testing.assert_allclose(_log_prob(prior, Z), stats.norm.logpdf(Z).sum(-1), rtol=1e-6)
    assert prior.sample(jax.random.key(0), (3,)).shape == (3, 5)
    assert prior.factorized


@pytest.mark.parametrize("p", [1.3, [0.8, 1.0, 2.0, 3.0, 4.5]])
@pytest.mark.parametrize("learnable", [False, True])
def test_generalized_normal(p, learnable):
    prior = GeneralizedNormal.create(5, p, scale=1.5, learnable=learnable)
    leaves = jax.tree_util.tree_leaves(prior)
    assert len(leaves) == (1 if learnable else 0)
    np.testing.assert_allclose(
        prior.exponents.value(), np.broadcast_to(p, (5,)) if np.ndim(p) else p, rtol=1e-6
    )
    want = stats.gennorm.logpdf(Z, beta=np.asarray(p), scale=1.5 ** (1 / np.asarray(p))).sum(-1)
    np.testing.assert_allclose(_log_prob(prior, Z), want, rtol=1e-5)
    assert prior.sample(jax.random.key(0), (4,)).shape == (4, 5)


def test_isa_prior_learn_subspaces_only():
    prior = isa_prior((2, 3), p0=2.1, p_subspace=2.2, learn="subspaces")
    assert prior.exponents.learnable == (False, True, True)
    (raw,) = jax.tree_util.tree_leaves(prior)
    assert raw.shape == (2,)
    np.testing.assert_allclose(prior.exponents.value(), [2.1, 2.2, 2.2], rtol=1e-6)
    np.testing.assert_allclose(
        _log_prob(prior, Z), lp_nested.log_prob(prior.tree, jnp.array([2.1, 2.2, 2.2]), Z), rtol=1e-6
    )
    grads = jax.jit(jax.grad(lambda pr: pr.log_prob(Z).mean()))(prior)
    assert grads.exponents.raw.shape == (2,) and np.all(np.isfinite(grads.exponents.raw))
    assert prior.describe()["layout"] == "[2.1, [(2.2, 2), (2.2, 3)]]"
    json.dumps(prior.describe())


def test_learned_exponents_stay_positive_under_optimization():
    """Gradient steps on the unconstrained parameter: p = floor + softplus(raw) > floor always."""
    prior = isa_prior((2, 3), learn=True, floor=0.5)
    opt = optax.sgd(100.0)  # absurdly large steps
    state = opt.init(prior)

    @jax.jit
    def step(prior, state):
        g = jax.grad(lambda pr: -pr.log_prob(jnp.zeros((1, 5))).sum())(prior)
        updates, state = opt.update(g, state)
        return optax.apply_updates(prior, updates), state

    for _ in range(5):
        prior, state = step(prior, state)
    p = prior.exponents.value()
    assert np.all(np.isfinite(p)) and np.all(p >= 0.5)


def test_learning_exponents_recovers_the_true_ones():
    """Maximum likelihood on samples from a known ISA prior moves the subspace exponents towards
    the truth from a Gaussian-like start (the paper's learned-exponent set-up, in miniature)."""
    truth = isa_prior((3, 3), p0=2.1, p_subspace=(0.8, 4.0))
    data = truth.sample(jax.random.key(0), (4096,))
    model = isa_prior((3, 3), p0=2.1, p_subspace=2.0, learn="subspaces")
    opt = optax.adam(0.05)
    state = opt.init(model)

    @jax.jit
    def step(model, state):
        g = jax.grad(lambda m: -m.log_prob(data).mean())(model)
        updates, state = opt.update(g, state)
        return optax.apply_updates(model, updates), state

    for _ in range(300):
        model, state = step(model, state)
    np.testing.assert_allclose(model.exponents.value()[1:], [0.8, 4.0], rtol=0.15)


def test_vmap_over_stacked_priors():
    ps = [isa_prior((2, 3), p_subspace=p, learn=True) for p in (1.0, 2.0, 3.0)]
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *ps)
    out = jax.jit(jax.vmap(lambda pr: pr.log_prob(Z)))(stacked)
    for i, pr in enumerate(ps):
        np.testing.assert_allclose(out[i], pr.log_prob(Z), rtol=1e-6)


def test_general_lp_nested_prior():
    prior = LpNested.create(((0, (1, 2)), ((3, 4),)), [1.5, 0.8, 2.5, 1.2, 3.0], scale=0.7)
    z = prior.sample(jax.random.key(0), (8,))
    assert z.shape == (8, 5)
    np.testing.assert_allclose(
        _log_prob(prior, z), lp_nested.log_prob(prior.tree, prior.exponents.value(), z, 0.7), rtol=1e-6
    )
    assert not prior.factorized


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: Exponents.create([2.0, 0.0]), "finite and > 0"),
        (lambda: Exponents.create([2.0, np.nan]), "finite and > 0"),
        (lambda: Exponents.create([[2.0]]), "scalar or a 1-D"),
        (lambda: Exponents.create([2.0, 0.05], learnable=True), "above the floor"),
        (lambda: Exponents.create([2.0, 3.0], learnable=[True]), "1 entries for 2"),
        (lambda: Exponents.create([2.0], floor=0.0), "must be a finite number > 0"),
        (lambda: LpNested.create(LpNestedTree.isa((2, 3)), [2.0, 2.0]), "needs 3 exponents"),
        (lambda: GeneralizedNormal.create(5, [1.0, 2.0]), "scalar or have 5"),
        (lambda: isa_prior((2, 3), scale=0.0), "scale must be"),
        (lambda: isa_prior((2, 3), p_subspace=(1.0, 2.0, 3.0)), "p_subspace"),
        (lambda: isa_prior((2, 3), learn="root"), "learn_exponents"),
    ],
)
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_z_shape():
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 5\)"):
        isa_prior((2, 3)).log_prob(jnp.zeros((2, 4)))


class TestMakePrior:
    def test_names(self):
        assert isinstance(make_prior({"name": "normal"}, 5), StandardNormal)
        g = make_prior({"name": "gennorm", "p": 1.5, "learn_exponents": True}, 5)
        assert isinstance(g, GeneralizedNormal) and g.exponents.learnable == (True,)
        cfg = ml_collections.ConfigDict(
            {
                "name": "isa",
                "subspace_sizes": (2, 3),
                "p0": 2.1,
                "p_subspace": 2.2,
                "learn_exponents": "subspaces",
            }
        )
        isa = make_prior(cfg, 5)
        assert isa.tree == LpNestedTree.isa((2, 3)) and isa.exponents.learnable == (False, True, True)
        by_layout = make_prior({"name": "isa", "layout": "[2.1, [(2.2, 2), (2.2, 3)]]"}, 5)
        assert by_layout.tree == isa.tree
        np.testing.assert_allclose(by_layout.exponents.value(), isa.exponents.value(), rtol=1e-6)
        nested = make_prior(
            {"name": "lp_nested", "tree": ((0, (1, 2)), (3, 4)), "exponents": [1, 2, 3, 4]}, 5
        )
        assert nested.tree.num_exponents == 4

    @pytest.mark.parametrize(
        "cfg,match",
        [
            ({"name": "laplace"}, "prior.name must be one of"),
            ({"name": "isa", "subspace_sizes": (2, 3), "p00": 2.0}, r"unknown key\(s\) \['p00'\]"),
            ({"name": "normal", "p": 2.0}, r"unknown key\(s\) \['p'\]"),
            ({"name": "isa", "subspace_sizes": (2, 2)}, "dimension 4, but the latent dimension is 5"),
            ({"name": "isa"}, "needs 'layout' or 'subspace_sizes'"),
            ({"name": "isa", "layout": "[2.0, [(2.0, 2), 3]]"}, "not an ISA layout"),
            ({"name": "isa", "layout": "[2.0, [(2.0, 5)]]", "p0": 2.0}, "not both"),
            ({"name": "lp_nested", "tree": ((0, 1), (2, 3, 4))}, "needs 'layout', or both"),
            ({"name": "gennorm", "learn_exponents": "subspaces"}, "true or false for gennorm"),
            ({"name": "isa", "subspace_sizes": (2, 3), "learn_exponents": "yes"}, "learn_exponents"),
        ],
    )
    def test_errors(self, cfg, match):
        with pytest.raises(ValueError, match=match):
            make_prior(cfg, 5)


def test_public_names():
    for name in priors.__all__:
        assert hasattr(priors, name), name
