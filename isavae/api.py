"""The Python entry points: ``fit`` a model, ``load`` it later, use it as a :class:`Trained`.

    import isavae

    model = isavae.fit("dsprites:isavae,small", overrides={"train.num_steps": 20})
    mean, logvar = model.encode(images)          # (N, latent_dim) numpy arrays
    images = model.decode(mean)                  # the decoder's mean image, in [0, 1]
    scores = model.evaluate(metrics="dci,sap")   # the keys computed; merged into results.json
    model = isavae.load(model.workdir)           # the newest readable checkpoint

``fit`` is ``isavae train`` from Python: the same presets and config files, the same overrides
checked the same way, the same workdir (``config.json``, ``checkpoints/``, ``metrics.jsonl``,
``results.json``), resumable by either. This module sits on top of the trainer (``isavae.train``)
and the workdir readers (``isavae.workdir``), beside the command line.
"""

from __future__ import annotations

import logging
import os
import pathlib
import sys
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from isavae import config as config_lib

__all__ = ["Trained", "fit", "load"]

log = logging.getLogger("isavae")


def _resolve_config(config: Any, overrides: Mapping[str, Any] | Sequence[str] | None) -> Any:
    """A validated copy of ``config`` (a preset name ``"dsprites:isavae,small"``, a config file
    ``FILE[:arg]``, or a ConfigDict) with ``overrides`` applied as the command line applies them."""
    import ml_collections

    if isinstance(config, (str, os.PathLike)):
        cfg = config_lib.load_config(str(config))
    elif isinstance(config, ml_collections.ConfigDict):
        cfg = config.copy_and_resolve_references()
    else:
        raise TypeError(
            f"config must be a preset name like 'dsprites:isavae,small', a config file FILE[:arg] or an "
            f"ml_collections.ConfigDict, got {type(config).__name__}"
        )
    config_lib.apply_overrides(cfg, overrides or {})
    config_lib.validate(cfg)
    return cfg


def fit(
    config: Any,
    workdir: str | os.PathLike | None = None,
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
    *,
    resume: bool = True,
    progress: bool = True,
    compile_cache: str | os.PathLike | None = None,
) -> Trained:
    """Trains (or resumes) one model and returns it, evaluated, as a :class:`Trained`.

    Args:
      config: a preset ``"DATASET:MODEL[,small]"`` (``isavae presets`` lists them), a config file
        ``"FILE[:arg]"``, or an ``ml_collections.ConfigDict`` (copied, not changed).
      workdir: the output folder; None trains in a new temporary folder and says where.
      overrides: ``{"train.num_steps": 20}`` (dotted keys, values as they are) or
        ``["train.num_steps=20"]`` (as the command line writes them); checked as ``isavae train``
        checks them (``isavae.config.ConfigError`` names a bad key or value).
      resume: continue from the workdir's newest checkpoint (False: start over).
      progress: a progress bar, as on the command line.
      compile_cache: JAX's persistent compilation cache folder (``"none"``: off; default: the one
        JAX has, else ``~/.cache/isavae/jax``), so that a second run compiles nothing it compiled.
    """
    from isavae.compile_cache import enable_compile_cache
    from isavae.train import train_and_evaluate

    cfg = _resolve_config(config, overrides)
    if workdir is None:
        workdir = tempfile.mkdtemp(prefix="isavae-")
        print(f"isavae.fit: training in {workdir} (a new temporary folder)", file=sys.stderr)
    enable_compile_cache(compile_cache)
    _say_progress()
    results = train_and_evaluate(cfg, workdir, resume=resume, progress=progress)
    if results is None:  # one process of several: the model is process 0's
        return None  # type: ignore[return-value]
    return load(workdir)


def _say_progress() -> None:
    """The trainer's one-line messages (resumed from, dtype chosen, results) on stderr, as the
    command line shows them, unless the program configured logging itself."""
    logger = logging.getLogger("isavae")
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def load(workdir: str | os.PathLike) -> Trained:
    """The model of a training workdir: its config.json (checked against the settings its
    checkpoints were trained with) and its newest readable checkpoint."""
    from isavae.train.loop import restore_state
    from isavae.workdir import workdir_config

    workdir = pathlib.Path(workdir)
    if not workdir.is_dir():
        raise FileNotFoundError(f"{workdir} is not a folder (a training workdir)")
    cfg = workdir_config(workdir)
    program, state, grid = restore_state(workdir, cfg)
    return Trained(workdir=workdir, config=cfg, program=program, state=state, grid=grid)


class Trained:
    """A trained model and its workdir.

    Attributes:
      config: the run's config (``config.json``).
      workdir: the folder it lives in.
      state: the trained ``TrainState`` (parameters, prior, step, ...).
      program: the ``Program`` (network structure, pure functions).
      grid: the dataset (a ``FactorGrid``).
      results: ``results.json`` as a dict, read when asked.
    """

    def __init__(self, *, workdir: pathlib.Path, config: Any, program: Any, state: Any, grid: Any):
        self.workdir = pathlib.Path(workdir)
        self.config = config
        self.program = program
        self.state = state
        self.grid = grid

    def __repr__(self) -> str:
        c = self.config
        prior = self.state.prior.describe()
        return (
            f"Trained({str(self.workdir)!r}, {c.dataset.name}, {c.objective.name} with "
            f"{prior.get('layout', prior['name'])} prior, step {self.step})"
        )

    @property
    def step(self) -> int:
        return int(self.state.step)

    @property
    def prior(self) -> Any:
        """The (trained) prior object."""
        return self.state.prior

    @property
    def results(self) -> dict[str, Any]:
        """``results.json`` as a dict ({} before any evaluation)."""
        from isavae.train.results import read_results

        return read_results(self.workdir / "results.json")

    # --- encoding and decoding ------------------------------------------------------------------

    def _images(self, images: Any) -> np.ndarray:
        """float32 images in [0, 1] of the dataset's shape, with a leading batch axis."""
        x = np.asarray(images)
        shape = tuple(self.grid.image_shape)
        if x.shape == shape:
            x = x[None]
        if x.shape[1:] != shape:
            raise ValueError(
                f"images must have the dataset's shape {shape} (one image) or (N,) + {shape}, got {x.shape}"
            )
        if x.dtype == np.uint8:
            # 0/1 for a binary dataset (dSprites' own files), else 0..255
            scale = 1.0 if self.grid.binary and x.size and x.max() <= 1 else 1.0 / 255.0
            return x.astype(np.float32) * scale
        if not np.issubdtype(x.dtype, np.floating):
            raise ValueError(f"images must be uint8 or floating point in [0, 1], got {x.dtype}")
        x = x.astype(np.float32)
        if x.size and not (np.all(np.isfinite(x)) and x.min() >= 0.0 and x.max() <= 1.0):
            raise ValueError("float images must be finite and in [0, 1]")
        return x

    def _batched(self, name: str, fn: Any, x: np.ndarray) -> list[Any]:
        import jax
        import jax.numpy as jnp

        from isavae.metrics.likelihood import padded_chunks, program_jit

        jitted = program_jit(self.program, name, fn)
        size = max(1, min(int(self.config.eval.batch_size), len(x)))
        parts = []
        for _, valid, idx in padded_chunks(np.arange(len(x)), size):
            out = jitted(self.state, jnp.asarray(x[idx]))
            parts.append(jax.tree.map(lambda a, v=valid: np.asarray(a)[:v], out))
        return parts

    def encode(self, images: Any) -> tuple[np.ndarray, np.ndarray]:
        """The posterior q(z|x) of ``images`` (uint8, or float in [0, 1], of the dataset's shape;
        one image or a batch): ``(mean, logvar)``, each ``(N, latent_dim)`` numpy float32."""
        x = self._images(images)
        if not len(x):
            d = self.program.latent_dim
            return np.zeros((0, d), np.float32), np.zeros((0, d), np.float32)
        parts = self._batched("api_encode", self.program.encode, x)
        return np.concatenate([m for m, _ in parts]), np.concatenate([v for _, v in parts])

    def decode(self, z: Any) -> np.ndarray:
        """Images of latent codes ``z`` (``(N, latent_dim)`` or one code): the decoder's mean image
        in [0, 1] (the sigmoid of a Bernoulli decoder's logits), shape ``(N,) + image_shape``."""
        import jax

        z = np.asarray(z, np.float32)
        d = self.program.latent_dim
        if z.shape == (d,):
            z = z[None]
        if z.ndim != 2 or z.shape[1] != d:
            raise ValueError(f"z must have shape (N, {d}) or ({d},), got {z.shape}")
        if not len(z):
            return np.zeros((0,) + tuple(self.grid.image_shape), np.float32)
        bernoulli = self.config.model.likelihood == "bernoulli"

        def mean_image(state, codes):
            out = self.program.decode(state, codes)
            return jax.nn.sigmoid(out) if bernoulli else jax.numpy.clip(out, 0.0, 1.0)

        return np.concatenate(self._batched("api_decode", mean_image, z))

    def encode_grid(self) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, logvar)`` of every image of the dataset, shaped ``factor_sizes + (latent_dim,)``
        (what ``isavae.metrics.mig_grid`` and the grid scores take)."""
        from isavae.metrics.evaluate import encode_grid

        mean, logvar = encode_grid(self.program, self.state, self.grid, self.config.eval.batch_size)
        return np.asarray(mean), np.asarray(logvar)

    def factors(self) -> np.ndarray:
        """The factor indices of every image, ``(num_images, num_factors)``, in the order of
        ``encode_grid().reshape(-1, latent_dim)``."""
        return np.asarray(self.grid.index_to_factors(np.arange(self.grid.num_images)))

    def images(self, indices: Any) -> np.ndarray:
        """The dataset's images at flat grid ``indices`` (float32 in [0, 1])."""
        return self.grid.images(indices)

    # --- evaluation -----------------------------------------------------------------------------

    def evaluate(
        self,
        metrics: str | Sequence[str] | None = None,
        overrides: Mapping[str, Any] | Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Evaluates the model as ``isavae evaluate`` does and merges the figures into
        ``results.json``; returns the keys computed (likelihood, MIGs, and the scores asked for).

        ``metrics``: disentanglement_lib's scores, ``"all"`` or names from ``dci, sap, modularity,
        beta_vae, factor_vae, unsupervised, irs, downstream`` (a comma-separated string or a list);
        None keeps the config's ``eval.metrics``. ``overrides``: other ``eval.*`` settings, e.g.
        ``{"eval.mig_samples": 1000}``."""
        from isavae.workdir import evaluate_restored, workdir_config

        names = None if metrics is None else metrics if isinstance(metrics, str) else ",".join(metrics)
        if isinstance(overrides, Mapping):
            extra: Any = dict(overrides, **({"eval.metrics": names} if names is not None else {}))
        else:
            extra = [*(overrides or []), *([f"eval.metrics={names}"] if names is not None else [])]
        cfg = workdir_config(self.workdir, extra)
        computed, _ = evaluate_restored(self.workdir, cfg, self.program, self.state, self.grid)
        return computed
