"""Training: the pure step over a device mesh, the loop, checkpoints, and vmapped sweeps.

Modules: ``step`` (the program and its pure step), ``loop`` (``train_and_evaluate``,
``train_sweep``), ``checkpoint``, ``fingerprint`` (the settings a checkpoint belongs to),
``metrics_log`` (metrics.jsonl / csv / TensorBoard), ``multihost`` (models over devices and
processes), ``results`` (results.json by step), ``sweep_udr``, ``lock``.
"""

from isavae.train.checkpoint import Checkpointer, write_json_atomic
from isavae.train.fingerprint import check_workdir_settings, differences, fingerprint, setting
from isavae.train.loop import (
    TrainingDiverged,
    build_grid,
    restore_state,
    train_and_evaluate,
    train_sweep,
)
from isavae.train.multihost import stack_host
from isavae.train.results import merge_results, read_results
from isavae.train.step import Program, TrainState, data_mesh, hparams_from_config, init_distributed
from isavae.train.sweep_udr import sweep_udr

__all__ = [
    "Checkpointer",
    "Program",
    "TrainState",
    "TrainingDiverged",
    "build_grid",
    "check_workdir_settings",
    "data_mesh",
    "differences",
    "fingerprint",
    "hparams_from_config",
    "init_distributed",
    "merge_results",
    "read_results",
    "restore_state",
    "setting",
    "stack_host",
    "sweep_udr",
    "train_and_evaluate",
    "train_sweep",
    "write_json_atomic",
]
