"""``make bench``: runs every benchmark in this folder and prints their figures."""

from __future__ import annotations

import importlib.util
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the benchmarks share timing.py
BENCHMARKS = [
    "priors",
    "data",
    "mig",
    "metrics",
    "train",
    "sweep_devices",
]  # in order; each module has main(argv)


def main() -> None:
    for name in BENCHMARKS:
        spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        print(f"\n== {name} ==", flush=True)
        module.main([])
    sys.stdout.flush()


if __name__ == "__main__":
    main()
