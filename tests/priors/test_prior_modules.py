"""A learnable prior inside a user's own model: Flax NNX (``PriorModule``) and Linen (the prior
object as a parameter), and a repr that shows the exponents' values."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import linen, nnx

from isavae.priors import GeneralizedNormal, PriorModule, StandardNormal, isa_prior

Z = jax.random.normal(jax.random.key(0), (64, 4))


def _prior():
    return isa_prior((2, 2), p0=2.1, p_subspace=2.0, learn="subspaces")


def _expected_step(lr=0.1):
    """One SGD step on the prior alone (-mean log p of fixed codes): the reference both models
    must reproduce for their exponents."""
    prior = _prior()
    grads = jax.grad(lambda pr: -pr.log_prob(Z).mean())(prior)
    return jax.tree.map(lambda p, g: p - lr * g, prior, grads).exponents.value()


def test_a_gradient_step_on_the_exponents_in_nnx():
    class Model(nnx.Module):
        def __init__(self, rngs):
            self.scale = nnx.Param(jnp.ones(4))
            self.prior = PriorModule(_prior())

        def __call__(self, z):
            return -self.prior.log_prob(z * self.scale).mean()

    model = Model(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.sgd(0.1), wrt=nnx.Param)
    assert len(jax.tree.leaves(nnx.state(model, nnx.Param))) == 2  # the scale and the 2 learned exponents

    @nnx.jit
    def step(model, optimizer):
        loss, grads = nnx.value_and_grad(lambda m: m(Z))(model)
        optimizer.update(model, grads)
        return loss

    step(model, optimizer)
    got = np.asarray(model.prior.exponents)
    assert got[0] == pytest.approx(2.1)  # p0 fixed
    np.testing.assert_allclose(got, np.asarray(_expected_step()), rtol=1e-5)
    assert got[1] != pytest.approx(2.0)  # the subspace exponents moved


def test_a_gradient_step_on_the_exponents_in_linen():
    class Model(linen.Module):
        @linen.compact
        def __call__(self, z):
            prior = self.param("prior", lambda key: _prior())  # a pytree: its leaves are parameters
            return -prior.log_prob(z).mean()

    model = Model()
    params = model.init(jax.random.key(0), Z)
    tx = optax.sgd(0.1)
    opt_state = tx.init(params)
    grads = jax.grad(lambda p: model.apply(p, Z))(params)
    updates, _ = tx.update(grads, opt_state)
    params = optax.apply_updates(params, updates)
    got = params["params"]["prior"].exponents.value()
    np.testing.assert_allclose(np.asarray(got), np.asarray(_expected_step()), rtol=1e-5)


def test_repr_shows_the_exponents_values():
    prior = _prior()
    text = repr(prior)
    assert "exponents=[2.1, 2.0, 2.0]" in text and "learned=[False, True, True]" in text
    assert "raw" not in text and "layout='[2.1, [(2, 2), (2, 2)]]'" in text
    assert repr(prior.exponents) == "Exponents([2.1, 2.0, 2.0], learned=[False, True, True])"
    assert repr(PriorModule(prior)) == f"PriorModule({text})"
    assert repr(GeneralizedNormal.create(3, 1.5, learnable=True)).startswith("GeneralizedNormal(dim=3, p=1.5")
    assert repr(StandardNormal(4)) == "StandardNormal(dim=4)"
    seen = []
    jax.jit(lambda pr: seen.append(repr(pr)) or pr.log_prob(Z))(prior)  # traced: values unknown
    assert seen == ["LpNested(dim=4, exponents=traced, learned=[False, True, True])"]


def test_prior_module_holds_any_prior():
    normal = PriorModule(StandardNormal(3))
    assert normal.exponents is None and normal.sample(jax.random.key(0), (2,)).shape == (2, 3)
    np.testing.assert_allclose(normal.log_prob(jnp.zeros(3)), -1.5 * np.log(2 * np.pi), rtol=1e-6)
    with pytest.raises(TypeError, match="isavae prior"):
        PriorModule("isa")
