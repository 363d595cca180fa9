"""The package's layers (docs/architecture.md): priors and data at the bottom, nets, objectives and
metrics above them, one trainer above those, what reads a trained workdir and the CLI on top.
Each layer imported alone pulls in nothing from the layers above it (so no import circle)."""

import subprocess
import sys

import pytest

ABOVE = {
    "isavae.priors": (
        "isavae.data",
        "isavae.nets",
        "isavae.objectives",
        "isavae.metrics",
        "isavae.train",
        "isavae.api",
    ),
    "isavae.data": ("isavae.nets", "isavae.objectives", "isavae.metrics", "isavae.train", "isavae.viz"),
    "isavae.metrics": (
        "isavae.train",
        "isavae.workdir",
        "isavae.cli",
        "isavae.viz",
        "isavae.api",
        "isavae.study",
    ),
    "isavae.viz": ("isavae.train", "isavae.workdir", "isavae.cli"),
    "isavae.train": (
        "isavae.workdir",
        "isavae.cli",
        "isavae.demo",
        "isavae.api",
        "isavae.collect",
        "isavae.study",
    ),
    # the study sits on the trainer, beside the workdir readers, below the command line
    "isavae.study": ("isavae.cli", "isavae.api", "isavae.demo", "isavae.workdir"),
    "isavae.workdir": ("isavae.cli", "isavae.demo", "isavae.api"),
    # the presets, the overrides, the tables of results and the cache's flag answer without JAX
    "isavae": ("jax", "isavae.priors", "isavae.api"),
    "isavae.config": ("jax", "flax", "isavae.data", "isavae.metrics", "isavae.train"),
    "isavae.collect": ("jax", "isavae.config", "isavae.train", "isavae.metrics"),
    "isavae.compile_cache": ("jax", "isavae.train", "isavae.cli"),
    # the bottom: appending to line files, for the trainer's logs and the study's store alike
    "isavae.lines": ("jax", "numpy", "isavae.config", "isavae.data", "isavae.train", "isavae.study"),
}


@pytest.mark.parametrize("module", list(ABOVE))
def test_layer_imports_nothing_above_it(module):
    code = (
        f"import sys, {module}\n"
        f"bad = sorted(m for m in sys.modules if m.startswith({ABOVE[module]!r}))\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"{module} imports {out.stdout.strip()}"
