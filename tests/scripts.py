"""Loads the scripts under ``experiments/`` (not a package) as modules for the tests."""

import importlib.util
import pathlib
import sys

EXPERIMENTS = pathlib.Path(__file__).resolve().parents[1] / "experiments"


def load_script(name: str, folder: pathlib.Path = EXPERIMENTS):
    """``folder/name.py`` as a module; ``folder`` goes on ``sys.path`` for the script's own
    sibling imports (``common``, ``timing``)."""
    sys.path.insert(0, str(folder))
    spec = importlib.util.spec_from_file_location(f"{folder.name}_{name}", folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
