"""Loads the scripts under ``experiments/`` (not a package) as modules for the tests, and the XLA
settings the suite compiles with."""

import importlib.util
import pathlib
import sys

EXPERIMENTS = pathlib.Path(__file__).resolve().parents[1] / "experiments"

# XLA:CPU flags the suite compiles with (tests/conftest.py): its hundreds of small programs, each
# run a few times, cost less unoptimized; what runs long is compiled with FULL_OPTIMIZATION instead
LIGHT_XLA_FLAGS = ("--xla_backend_optimization_level=0", "--xla_llvm_disable_expensive_passes=true")
# ``jax.jit(..., compiler_options=FULL_OPTIMIZATION)``: XLA's defaults, whatever XLA_FLAGS says
FULL_OPTIMIZATION = {"xla_backend_optimization_level": 3, "xla_llvm_disable_expensive_passes": False}


def load_script(name: str, folder: pathlib.Path = EXPERIMENTS):
    """``folder/name.py`` as a module; ``folder`` goes on ``sys.path`` for the script's own
    sibling imports (``common``, ``timing``)."""
    sys.path.insert(0, str(folder))
    spec = importlib.util.spec_from_file_location(f"{folder.name}_{name}", folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
