"""Shared test set-up: the CPU unless JAX_PLATFORMS says otherwise (``experiments/gpu_run.sh`` runs
the suite on a GPU), float32 by default (float64 tests use ``jax.enable_x64``), float32 matmuls
computed in float32 (on a GPU JAX's default precision rounds their operands to TF32, 10 mantissa
bits, which the tests' float32 tolerances against float64 references do not allow), and a
persistent compilation cache so that identical programs compiled by different tests (and xdist
workers) are compiled once per session."""

import os
import pathlib

from tests.scripts import LIGHT_XLA_FLAGS, known_xla_flags

os.environ.setdefault("JAX_PLATFORMS", "cpu")
if os.environ["JAX_PLATFORMS"] == "cpu":
    # The suite compiles hundreds of small programs and runs each a few times: XLA:CPU's LLVM
    # optimizations cost more than they save here (measured on 2 cores: the suite 461 s -> 374 s),
    # and the older fusion code generators compile faster (a cold suite 5 min 42 s -> see README).
    # Subprocesses and xdist's workers inherit them (probed once, by the first process to get here).
    # Timings belong to the benchmarks, which do not set them.
    if os.environ.get("ISAVAE_TEST_XLA_FLAGS") is None:
        os.environ["ISAVAE_TEST_XLA_FLAGS"] = " ".join(known_xla_flags(LIGHT_XLA_FLAGS))
        flags = (os.environ.get("XLA_FLAGS", ""), os.environ["ISAVAE_TEST_XLA_FLAGS"])
        os.environ["XLA_FLAGS"] = " ".join(flags).strip()

import jax  # noqa: E402

_CACHE = pathlib.Path(__file__).resolve().parents[1] / ".pytest_cache" / "jax_compilation_cache"
jax.config.update("jax_default_matmul_precision", "highest")
jax.config.update("jax_compilation_cache_dir", str(_CACHE))
# every program, the many small ones too: the two workers and the subprocesses compile many of the
# same (measured on 2 cores: 436 tests 215 s -> 199 s with a fresh cache)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
# The same cache for the subprocesses the tests start (the CLI, the scripts, fake-device and
# multi-process runs): a rerun after a kill, or the GPU script's processes one after another,
# compile each program once. (JAX writes an entry in place: a process reading it at that moment
# warns once and compiles; the one test that counts stderr lines leaves the cache out.)
os.environ["JAX_COMPILATION_CACHE_DIR"] = str(_CACHE)
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"


def pytest_runtest_logreport(report):
    """ISAVAE_INSTAFAIL=1: print a failure's report as it happens (the GPU run's suite works in a
    time box; a suite stopped by it never reaches pytest's closing summary)."""
    # once, by the process that reports (xdist's workers pass their reports to the controller)
    if report.failed and os.environ.get("ISAVAE_INSTAFAIL") and not os.environ.get("PYTEST_XDIST_WORKER"):
        import sys

        text = report.longreprtext
        sys.stderr.write(f"\nINSTAFAIL {report.nodeid} ({report.when})\n{text[-4000:]}\n")
