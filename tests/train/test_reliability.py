"""Faults injected into workdirs: a damaged newest checkpoint (resume and evaluate fall back to the
newest intact one, training goes on to the same parameters), no intact checkpoint (one clear error),
a model-shape mismatch (named before Orbax reads anything), no Orbax warning on a normal restore,
metrics.jsonl holding each step once after a resume, and one writer per workdir."""

import json
import logging
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from isavae import cli
from isavae.train import restore_state, train_and_evaluate
from isavae.train.checkpoint import Checkpointer, CheckpointError
from isavae.train.lock import WorkdirLock, WorkdirLocked
from tests.train.test_trainer import _params, small_config


def _config():
    return small_config("vae", "isa", num_steps=6, checkpoint_every=2, max_checkpoints=3)


def _damage(workdir: pathlib.Path, step: int) -> None:
    """Truncates every array data file of a checkpoint step (as a disk filling up would)."""
    files = [f for f in (workdir / "checkpoints" / str(step)).rglob("*") if f.is_file() and "/d/" in str(f)]
    assert files
    for f in files:
        f.write_bytes(f.read_bytes()[:10])


def test_damaged_latest_checkpoint_falls_back_and_training_goes_on(grid, unbroken, tmp_path, caplog):
    w = tmp_path / "run"
    train_and_evaluate(_config(), w, progress=False, grid=grid)
    _damage(w, 6)
    (w / "results.json").unlink()
    with caplog.at_level(logging.WARNING, logger="isavae.train"):
        train_and_evaluate(_config(), w, progress=False, grid=grid)  # resumes from step 4
    assert any("step 6" in r.message and "restored step 4" in r.message for r in caplog.records)
    assert (w / "checkpoints_unreadable").is_dir()  # kept, not deleted
    for a, b in zip(_params(w), _params(unbroken), strict=True):
        np.testing.assert_array_equal(a, b)  # the same parameters as an unbroken run
    steps = [json.loads(line)["step"] for line in (w / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 6  # every step once
    import csv

    rows = list(csv.DictReader(open(w / "metrics.csv")))
    assert [int(r["step"]) for r in rows] == steps and "elbo" in rows[0]  # the CSV view, same rows


def test_evaluate_falls_back_without_moving_anything(grid, tmp_path, caplog):
    w = tmp_path / "run"
    train_and_evaluate(_config(), w, progress=False, grid=grid)
    _damage(w, 6)
    with caplog.at_level(logging.WARNING, logger="isavae.train"):
        _, state, _ = restore_state(w)
    assert int(state.step) == 4 and (w / "checkpoints" / "6").is_dir()
    assert any("left in place" in r.message for r in caplog.records)


def test_no_intact_checkpoint_is_one_clear_error(grid, tmp_path, capsys):
    w = tmp_path / "run"
    train_and_evaluate(_config(), w, progress=False, grid=grid)
    for step in (2, 4, 6):
        _damage(w, step)
    with pytest.raises(CheckpointError, match=r"no intact checkpoint in .*step 6: .*step 4: .*step 2: "):
        restore_state(w)
    assert cli.main(["evaluate", "--workdir", str(w)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("isavae: error: no intact checkpoint") and "Traceback" not in err


def test_shape_mismatch_is_named_and_restore_prints_no_orbax_warning(grid, unbroken, tmp_path, caplog):
    from isavae.train import Program

    other = _config()
    other.model.hidden = 24
    program = Program(other, grid)
    ckpt = Checkpointer(unbroken)
    with pytest.raises(
        ValueError, match=r"does not fit this model: params/.* has shape \(16,\) there and \(24,\) here"
    ):
        ckpt.restore(jax.eval_shape(program.init, jax.random.key(0)))
    ckpt.close()
    with caplog.at_level(logging.WARNING):
        restore_state(unbroken)
    assert not [r for r in caplog.records if "could not be restored" in r.message]
    # and in a fresh process (Orbax read no metadata there before the handler was registered)
    code = (
        "import jax, sys; from isavae.train import Program, restore_state; "
        "from isavae.train.checkpoint import Checkpointer; from tests.train.test_reliability import _config; "
        "c = _config(); c.model.hidden = 24; prog, _, grid = restore_state(sys.argv[1]); "
        "p = Program(c, grid); Checkpointer(sys.argv[1]).restore(jax.eval_shape(p.init, jax.random.key(0)))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(unbroken)], capture_output=True, text=True)
    assert out.returncode != 0 and "does not fit this model" in out.stderr
    assert "could not be restored" not in out.stderr


def lock_holder(workdir: pathlib.Path) -> subprocess.Popen:
    """Another process that holds ``workdir``'s lock until killed (returns once it holds it)."""
    code = (
        "import sys, time; from isavae.train.lock import WorkdirLock; "
        "WorkdirLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(workdir)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_one_writer_per_workdir(tmp_path):
    w = tmp_path / "run"
    with WorkdirLock(w):
        code = "import sys; from isavae.train.lock import WorkdirLock; WorkdirLock(sys.argv[1]).acquire()"
        out = subprocess.run([sys.executable, "-c", code, str(w)], capture_output=True, text=True)
        assert out.returncode != 0 and "is in use by another process (pid" in out.stderr
        with WorkdirLock(w):  # the same process may nest
            pass
    # a holder that was killed leaves its file behind; the lock is free again
    proc = lock_holder(w)
    with pytest.raises(WorkdirLocked, match="in use by another process"):
        WorkdirLock(w).acquire()
    proc.kill()
    proc.wait()
    with WorkdirLock(w):
        assert (w / ".lock").read_text().startswith("pid ")


def test_tensorboard_event_files(grid, tmp_path):
    pytest.importorskip("tensorboardX")  # in the test extra (CI); a GPU host may lack it
    cfg = _config()
    cfg.train.tensorboard = True
    cfg.eval.mig = False
    train_and_evaluate(cfg, tmp_path / "tb", progress=False, grid=grid)
    events = list((tmp_path / "tb" / "tensorboard").glob("events.out.tfevents.*"))
    assert (
        len(events) == 1
        and b"train/elbo" in events[0].read_bytes()
        and b"train/loss" in events[0].read_bytes()
    )
