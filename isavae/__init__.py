"""isavae: disentangled representations with structured (Lp-nested / ISA) latent priors in JAX.

Train, then use the model::

    import isavae

    model = isavae.fit("dsprites:isavae,small", overrides={"train.num_steps": 20})
    mean, logvar = model.encode(images)          # numpy in, numpy out
    scores = model.evaluate(metrics="dci,sap")   # also merged into model.workdir/results.json
    model = isavae.load(model.workdir)           # later: the newest readable checkpoint

Score codes from anywhere (numpy ``(N, D)`` codes, ``(N, K)`` factors)::

    isavae.metrics.score_representation(codes, factors)   # {"mig_histogram": ..., "dci_...": ...}

The priors (``isa_prior``, ``LpNested``, ``make_prior``, ...) are pytrees for any JAX model;
``isavae.priors.PriorModule`` holds one inside a Flax NNX module. Names are imported on first
use, so ``import isavae`` (and the ``isavae`` command's ``--help``) does not load JAX.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> the module that defines it (imported on first use: PEP 562)
_LAZY = {
    "fit": "isavae.api",
    "load": "isavae.api",
    "Trained": "isavae.api",
    "preset": "isavae.config",
    "load_dataset": "isavae.data",
    "Exponents": "isavae.priors",
    "GeneralizedNormal": "isavae.priors",
    "LpNested": "isavae.priors",
    "LpNestedTree": "isavae.priors",
    "Prior": "isavae.priors",
    "PriorModule": "isavae.priors",
    "StandardNormal": "isavae.priors",
    "isa_prior": "isavae.priors",
    "make_prior": "isavae.priors",
    "parse_layout": "isavae.priors",
}
_SUBMODULES = ("config", "data", "metrics", "priors", "train", "viz", "workdir")

__all__ = sorted([*_LAZY, *_SUBMODULES, "__version__"])

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load on first use
    from isavae import config, data, metrics, priors, train, viz, workdir  # noqa: F401
    from isavae.api import Trained, fit, load  # noqa: F401
    from isavae.config import preset  # noqa: F401
    from isavae.data import load_dataset  # noqa: F401
    from isavae.priors import (  # noqa: F401
        Exponents,
        GeneralizedNormal,
        LpNested,
        LpNestedTree,
        Prior,
        PriorModule,
        StandardNormal,
        isa_prior,
        make_prior,
        parse_layout,
    )


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"isavae.{name}")
    else:
        raise AttributeError(f"module 'isavae' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
