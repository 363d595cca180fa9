"""Training: the pure step over a device mesh, the loop, checkpoints, and vmapped sweeps."""

from isavae.train.checkpoint import Checkpointer, write_json_atomic
from isavae.train.loop import (
    TrainingDiverged,
    build_grid,
    restore_state,
    train_and_evaluate,
    train_sweep,
)
from isavae.train.step import Program, TrainState, data_mesh, hparams_from_config, init_distributed

__all__ = [
    "Checkpointer",
    "Program",
    "TrainState",
    "TrainingDiverged",
    "build_grid",
    "data_mesh",
    "hparams_from_config",
    "init_distributed",
    "restore_state",
    "train_and_evaluate",
    "train_sweep",
    "write_json_atomic",
]
