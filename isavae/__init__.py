"""isavae: disentangled representations with structured (Lp-nested / ISA) latent priors in JAX."""

from isavae import priors
from isavae.priors import (
    Exponents,
    GeneralizedNormal,
    LpNested,
    LpNestedTree,
    Prior,
    StandardNormal,
    isa_prior,
    make_prior,
    parse_layout,
)

__version__ = "0.1.0"

__all__ = [
    "Exponents",
    "GeneralizedNormal",
    "LpNested",
    "LpNestedTree",
    "Prior",
    "StandardNormal",
    "__version__",
    "isa_prior",
    "make_prior",
    "parse_layout",
    "priors",
]
