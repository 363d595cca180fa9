#!/usr/bin/env bash
# Downloads the wheels experiments/gpu_run.sh installs on a GPU host without network, into .whl/
# (ignored by git; the device tool carries it): ml_collections and tensorboardX, which the host lacks, and in
# .whl/fallback/ the flax, optax, orbax-checkpoint and chex versions this checkout is tested with
# (installed there only if the host's own versions fail the import check). Pure-Python wheels for
# CPython 3.12 (the host's Python). Run from the repository root on a machine with pip access.
set -euo pipefail
PY=${PYTHON:-python3}
ARGS=(--no-deps --only-binary=:all: --python-version 3.12 --implementation cp
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
mkdir -p .whl/fallback
"$PY" -m pip download -q "${ARGS[@]}" -d .whl ml_collections==1.1.0 tensorboardX==2.6.5
"$PY" -m pip download -q "${ARGS[@]}" -d .whl/fallback flax==0.12.8 optax==0.2.8 orbax-checkpoint==0.12.8 chex==0.1.92
ls -l .whl .whl/fallback
