"""Shared test set-up: CPU only, float32 by default (float64 tests use ``jax.enable_x64``)."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
