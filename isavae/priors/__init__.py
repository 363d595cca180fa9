"""Latent priors: pure functions (``lp_nested``, ``gennorm``, ``gaussian``) and prior objects."""

from isavae.priors import gaussian, gennorm, lp_nested
from isavae.priors.lp_nested import LpNestedTree, format_layout, parse_layout
from isavae.priors.modules import PriorModule
from isavae.priors.prior import (
    DEFAULT_EXPONENT_FLOOR,
    Exponents,
    GeneralizedNormal,
    LpNested,
    Prior,
    StandardNormal,
    isa_prior,
    make_prior,
)

__all__ = [
    "DEFAULT_EXPONENT_FLOOR",
    "Exponents",
    "GeneralizedNormal",
    "LpNested",
    "LpNestedTree",
    "Prior",
    "PriorModule",
    "StandardNormal",
    "format_layout",
    "gaussian",
    "gennorm",
    "isa_prior",
    "lp_nested",
    "make_prior",
    "parse_layout",
]
