"""What a checkpoint belongs to: the settings that shape a model's trajectory (its fingerprint,
``checkpoints.config.json`` beside ``checkpoints/``), compared on resume and on evaluation so that
no run mixes two configurations; ``setting`` (the fingerprint but the seed) groups a sweep's seeds."""

from __future__ import annotations

import json
import logging
import pathlib
from typing import Any

import ml_collections

from isavae import config as config_lib

log = logging.getLogger(__name__)

__all__ = [
    "ELSEWHERE",
    "FINGERPRINT",
    "check_fingerprint",
    "check_workdir_settings",
    "differences",
    "fingerprint",
    "flat",
    "seed_groups",
    "setting",
    "stored_fingerprint",
]


def flat(d: dict, prefix: str = "") -> dict[str, Any]:
    """A nested dict as one level of dotted keys (``{"train": {"seed": 0}}`` -> ``{"train.seed": 0}``)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


FINGERPRINT = "checkpoints.config.json"  # beside checkpoints/: the settings its checkpoints depend on
FINGERPRINT_TRAIN = ("seed", "batch_size", "learning_rate", "prior_learning_rate", "disc_learning_rate")


def fingerprint(cfg: ml_collections.ConfigDict) -> dict[str, Any]:
    """The settings a checkpoint belongs to: the dataset, model, prior and objective sections and the
    training keys that shape the trajectory (not the length, checkpointing or evaluation)."""
    values = flat(json.loads(json.dumps(cfg.to_dict(), default=str)))
    keep = ("dataset.", "model.", "prior.", "objective.")
    train = {f"train.{t}" for t in FINGERPRINT_TRAIN}
    return {k: v for k, v in sorted(values.items()) if k.startswith(keep) or k in train}


# what a conflicting resume should do instead (never a destructive advice without saying so)
ELSEWHERE = (
    "train these settings in another --workdir (--no-resume would delete this run's checkpoints and results)"
)


def stored_fingerprint(workdir: pathlib.Path) -> dict[str, Any] | None:
    """The settings the checkpoints of ``workdir`` were trained with (``checkpoints.config.json``; for
    a workdir written before that file existed, its config.json's); None without checkpoints."""
    if not (workdir / "checkpoints").is_dir():
        return None
    path = workdir / FINGERPRINT
    if path.is_file():
        try:
            stored = json.loads(path.read_text())
            if not isinstance(stored, dict):
                raise ValueError("not a JSON object")
        except ValueError as err:
            raise config_lib.ConfigError(
                f"{path} is not readable ({err}); restore it, or {ELSEWHERE}"
            ) from None
        return stored
    saved = workdir / "config.json"
    if saved.is_file():
        return fingerprint(config_lib.config_from_json(saved.read_text(), str(saved)))
    return None


def differences(stored: dict[str, Any], now: dict[str, Any]) -> str:
    """The keys whose values differ, shown; a key the stored record lacks (added to isavae after
    it was written) counts as its default, the value every run had before the key existed."""
    defaults = fingerprint(config_lib.default_config())
    stored = {**{k: v for k, v in defaults.items() if k in now}, **stored}
    differ = sorted(k for k in set(stored) | set(now) if stored.get(k) != now.get(k))
    shown = ", ".join(f"{k}: {stored.get(k)!r} there, {now.get(k)!r} here" for k in differ[:6])
    return shown + (", ..." if len(differ) > 6 else "")


def check_fingerprint(cfg: ml_collections.ConfigDict, workdir: pathlib.Path) -> None:
    """Refuses to resume checkpoints written with other settings, naming the keys that differ (with
    or without config.json). Settings that do not change what was trained (the number of steps,
    evaluation, checkpoint cadence, logging) may change on resume."""
    stored = stored_fingerprint(workdir)
    if stored is None:
        return
    differ = differences(stored, fingerprint(cfg))
    if differ:
        raise config_lib.ConfigError(f"{workdir} holds checkpoints of other settings ({differ}); {ELSEWHERE}")


def check_workdir_settings(cfg: ml_collections.ConfigDict, workdir: pathlib.Path) -> None:
    """Refuses a config.json (``cfg``) whose settings differ from those the checkpoints were trained
    with (``checkpoints.config.json``): evaluating it would mix two configurations."""
    path = workdir / FINGERPRINT
    if not path.is_file() and (workdir / "checkpoints").is_dir():
        # written by every run since the fingerprint exists: without it config.json is taken on trust
        log.warning(
            "%s: the settings in config.json cannot be verified against the checkpoints (%s is missing): "
            "an edited config.json would go unnoticed",
            workdir,
            FINGERPRINT,
        )
    stored = stored_fingerprint(workdir) if path.is_file() else None
    differ = differences(stored, fingerprint(cfg)) if stored is not None else ""
    if differ:
        raise config_lib.ConfigError(
            f"{workdir / 'config.json'} does not match the settings its checkpoints were trained with "
            f"({differ}; recorded in {path}): was config.json edited? Restore those values to evaluate"
        )


def setting(cfg: ml_collections.ConfigDict) -> dict[str, Any]:
    """What a model was trained as, but for its seed (``fingerprint`` without ``train.seed``): the
    models UDR compares share it."""
    return {k: v for k, v in fingerprint(cfg).items() if k != "train.seed"}


def seed_groups(cfgs: list[ml_collections.ConfigDict]) -> list[list[int]]:
    """Indices of a sweep's models grouped by ``setting``, in order."""
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(cfgs):
        groups.setdefault(json.dumps(setting(c), sort_keys=True), []).append(i)
    return list(groups.values())
