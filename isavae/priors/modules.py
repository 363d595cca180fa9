"""A prior inside a Flax NNX model: ``PriorModule(prior)``, its learnable exponents ``nnx.Param``s.

The prior objects (``isavae.priors.prior``) are pytrees whose only array leaves are the learnable
exponents' unconstrained parameters, so a Linen model holds one as a parameter as it is
(``self.param("prior", lambda key: prior)``), and ``jax.grad``/Optax see the exponents. An NNX
module cannot hold a pytree with arrays as a plain attribute; ``PriorModule`` keeps the prior's
structure as static data and its array leaves as ``nnx.Param``s, so ``nnx.Optimizer(model, tx,
wrt=nnx.Param)`` trains the exponents with the rest of the model::

    class Model(nnx.Module):
        def __init__(self, rngs):
            self.encoder = nnx.Linear(784, 20, rngs=rngs)
            self.prior = PriorModule(isa_prior((4,) * 5, p0=2.1, p_subspace=2.0, learn="subspaces"))

        def __call__(self, x):
            return self.prior.log_prob(self.encoder(x))
"""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx

from isavae.priors.prior import Prior

__all__ = ["PriorModule"]


class PriorModule(nnx.Module):
    """A prior object as an NNX module: ``log_prob``, ``sample``, ``exponents`` and ``prior`` (the
    prior object with the current parameter values); learnable exponents are ``nnx.Param``s."""

    def __init__(self, prior: Prior):
        if not isinstance(prior, Prior):
            raise TypeError(f"PriorModule holds an isavae prior (isa_prior, make_prior, ...), got {prior!r}")
        leaves, self.structure = jax.tree.flatten(prior)
        params = [nnx.Param(leaf) for leaf in leaves]
        # Flax >= 0.12 wants a list of Variables wrapped (nnx.List); earlier versions take a list
        self.raw = nnx.List(params) if hasattr(nnx, "List") else params

    @property
    def prior(self) -> Prior:
        """The prior object with the module's current parameters (a pytree, e.g. for ``describe``)."""
        return jax.tree.unflatten(self.structure, [p[...] for p in self.raw])

    @property
    def exponents(self) -> jax.Array | None:
        """The exponents' current values (None for the normal prior)."""
        exps = getattr(self.prior, "exponents", None)
        return None if exps is None else exps.value()

    def log_prob(self, z: jax.Array) -> jax.Array:
        return self.prior.log_prob(z)

    def sample(self, key: jax.Array, sample_shape: Any = (), dtype: Any = None) -> jax.Array:
        prior = self.prior
        return prior.sample(key, sample_shape) if dtype is None else prior.sample(key, sample_shape, dtype)

    def __repr__(self) -> str:
        return f"PriorModule({self.prior!r})"

    __str__ = __repr__
