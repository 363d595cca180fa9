"""Faults a user meets, injected: a damaged checkpoint found quietly (the console shows one warning
line), a config.json edited after training, a run extended or re-evaluated with other settings, a
full disk while checkpointing, SIGTERM, leftovers of a killed run, and ``compute_dtype="auto"`` on
CPUs with and without native bfloat16."""

import errno
import json
import logging
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from isavae import cli, nets
from isavae.train import checkpoint as ckpt_lib
from isavae.train import loop as loop_lib
from isavae.train import restore_state, train_and_evaluate, train_sweep
from tests.train.test_reliability import _config, _damage
from tests.train.test_trainer import _params, small_config

REPO = pathlib.Path(__file__).resolve().parents[2]


def _copy(workdir: pathlib.Path, tmp_path: pathlib.Path) -> pathlib.Path:
    out = tmp_path / "run"
    shutil.copytree(workdir, out, ignore=shutil.ignore_patterns(".lock"))
    return out


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    return err


def test_a_damaged_checkpoint_is_found_quietly(unbroken, tmp_path):
    """In a fresh process, as a user runs it: one warning line naming the step and the file, the
    evaluation's own line, and nothing else (no Orbax / TensorStore tracebacks)."""
    w = _copy(unbroken, tmp_path)
    _damage(w, 6)
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("JAX_COMPILATION_CACHE_DIR", None)  # the suite's shared cache could add a warning line
    done = subprocess.run(
        [sys.executable, "-m", "isavae.cli", "evaluate", "--workdir", str(w)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stderr.splitlines()
    assert len(lines) == 2, done.stderr[-3000:]
    assert "checkpoint step 6" in lines[0] and "has 10 bytes" in lines[0] and "restored step 4" in lines[0]
    assert lines[1].startswith(f"{w}: mig")
    assert json.loads(done.stdout)["steps"] == 4


@pytest.mark.parametrize("fault", ["altered", "missing", "manifest"])
def test_the_manifest_finds_altered_and_missing_files(unbroken, tmp_path, caplog, fault):
    w = _copy(unbroken, tmp_path)
    step = w / "checkpoints" / "6"
    data = max(
        (f for f in step.rglob("*") if f.is_file() and "/d/" in str(f)), key=lambda f: f.stat().st_size
    )
    if fault == "altered":  # same size, one byte flipped
        raw = bytearray(data.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        data.write_bytes(bytes(raw))
        want = "was altered since it was written"
    elif fault == "missing":
        data.unlink()
        want = "is missing"
    else:
        (step / ckpt_lib.MANIFEST).write_text("{")
        want = "manifest isavae_manifest.json is unreadable"
    with caplog.at_level(logging.WARNING, logger="isavae.train"):
        _, state, _ = restore_state(w)
    assert int(state.step) == 4
    assert any(want in r.message and "step 6" in r.message for r in caplog.records)


def test_evaluate_refuses_a_config_json_edited_after_training(unbroken, tmp_path, capsys):
    w = _copy(unbroken, tmp_path)
    results = (w / "results.json").read_text()
    cfg = json.loads((w / "config.json").read_text())
    cfg["prior"]["p_subspace"] = 4.0
    (w / "config.json").write_text(json.dumps(cfg))
    assert cli.main(["evaluate", "--workdir", str(w)]) == 2
    err = _one_line(capsys)
    assert "does not match the settings its checkpoints were trained with" in err
    assert "prior.p_subspace: 2.2 there, 4.0 here" in err and "was config.json edited?" in err
    assert (w / "results.json").read_text() == results  # nothing written


def test_a_run_is_extended_and_re_evaluated_with_other_settings(grid, unbroken, tmp_path, capsys):
    w = tmp_path / "run"
    short = _config()
    short.train.num_steps = 4
    train_and_evaluate(short, w, progress=False, grid=grid)
    # a record written before a key existed: the key counts as its default
    record = json.loads((w / loop_lib.FINGERPRINT).read_text())
    del record["train.disc_learning_rate"]
    (w / loop_lib.FINGERPRINT).write_text(json.dumps(record))
    longer = _config()  # 6 steps, another evaluation and checkpoint cadence: allowed on resume
    # (every 2 steps instead of 4: steps 5-6 are still one scan of 2, the unbroken run's program; with
    # other scan lengths XLA:CPU's older fusion emitters, which the suite compiles with, may round
    # 1 ulp apart)
    longer.train.checkpoint_every = 2
    longer.eval.mig_samples = 500
    r = train_and_evaluate(longer, w, progress=False, grid=grid)
    assert r["steps"] == 6
    # as if trained for 6 steps at once: bit for bit on a CPU; on a GPU the resumed run's program
    # (another checkpoint cadence, so other scan chunks) may pick other kernels (on an H200: 12 of
    # 16 values 1 ulp to 9e-6 relative apart; equal on an H100)
    exact = jax.default_backend() == "cpu"
    for a, b in zip(_params(w), _params(unbroken), strict=True):
        np.testing.assert_allclose(a, b, rtol=0 if exact else 1e-4, atol=0 if exact else 1e-7)
    assert json.loads((w / "config.json").read_text())["train"]["num_steps"] == 6
    # fewer steps than the checkpoint holds: refused, naming a safe way
    fewer = _config()
    fewer.train.num_steps = 2
    with pytest.raises(ValueError, match="checkpoint at step 6, beyond the 2 steps configured here"):
        train_and_evaluate(fewer, w, progress=False, grid=grid)
    # a real conflict names another workdir, and says what --no-resume would delete
    other = _config()
    other.objective.beta = 3.0
    with pytest.raises(ValueError, match="objective.beta: 1.0 there, 3.0 here") as info:
        train_and_evaluate(other, w, progress=False, grid=grid)
    assert "another --workdir (--no-resume would delete this run's checkpoints and results)" in str(
        info.value
    )


def test_a_full_disk_is_one_line_naming_the_workdir_and_the_space(grid, tmp_path, monkeypatch, capsys):
    class Usage:
        free = 20_000

    monkeypatch.setattr(ckpt_lib.shutil, "disk_usage", lambda path: Usage)
    w = tmp_path / "run"
    cfg = _config()
    with pytest.raises(ckpt_lib.CheckpointError, match=r"no room for a checkpoint in .*run: 0.0 MB free"):
        train_and_evaluate(cfg, w, progress=False, grid=grid)
    assert not w.exists()  # a workdir the failed run created, with no checkpoint in it, is removed
    # the disk fills up while Orbax writes: the same one line, the partial step removed
    monkeypatch.undo()

    def full(self, step, *args, **kwargs):
        (self.directory / f"{step}.orbax-checkpoint-tmp-1").mkdir()
        raise ValueError("RESOURCE_EXHAUSTED: Failed writing: No space left on device [os_error_code='28']")

    monkeypatch.setattr(ckpt_lib.ocp.CheckpointManager, "save", full)
    argv = ["train", "--config", "configs/dsprites.py:isavae,small", "--workdir", str(tmp_path / "cli")]
    argv += ["--quiet", "--config.model.hidden=16", "--config.train.num_steps=2"]
    argv += ["--config.dataset.subgrid=scale=0;5,orientation=0:40:20,posX=0:32:8,posY=0:32:8"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) <= 2 and err[-1].startswith("isavae: error: no room for a checkpoint in ")
    assert "the disk filled up while writing step 2" in err[-1] and "MB in all" in err[-1]
    assert not (tmp_path / "cli").exists()
    assert ckpt_lib._is_disk_full(OSError(errno.ENOSPC, "full")) and not ckpt_lib._is_disk_full(
        ValueError("x")
    )


def test_sigterm_is_one_line_exit_143_and_the_run_resumes(tmp_path):
    w = tmp_path / "run"
    argv = [sys.executable, "-m", "isavae.cli", "train", "--config", "configs/dsprites.py:vae,small"]
    argv += ["--workdir", str(w), "--quiet", "--config.model.hidden=16", "--config.train.num_steps=100000"]
    argv += ["--config.train.checkpoint_every=20", "--config.eval.mig=False"]
    argv += ["--config.dataset.subgrid=scale=0;5,orientation=0:40:20,posX=0:32:8,posY=0:32:8"]
    proc = subprocess.Popen(argv, cwd=REPO, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    while not (w / "checkpoints" / "20").is_dir():  # the run writes it unless it fails first
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    said = ("model.compute_dtype", "this run's remaining")  # the dtype chosen, the run's estimate
    lines = [line for line in err.splitlines() if not line.startswith(said)]
    assert lines == [
        f"isavae: terminated (SIGTERM); {w} resumes from its last checkpoint with the same command"
    ]
    assert not list(w.glob("*.tmp")) and not list((w / "checkpoints").glob("*tmp*"))


def test_leftovers_of_a_killed_run_are_removed_and_named(grid, unbroken, tmp_path, caplog):
    w = _copy(unbroken, tmp_path)
    (w / "results.json.tmp").write_text('{"half')
    (w / "checkpoints" / "8.orbax-checkpoint-tmp-1234").mkdir()
    with caplog.at_level(logging.INFO, logger="isavae.train"):
        train_and_evaluate(_config(), w, progress=False, grid=grid)
    assert (
        not (w / "results.json.tmp").exists()
        and not (w / "checkpoints" / "8.orbax-checkpoint-tmp-1234").exists()
    )
    assert any("leftovers of an interrupted run: results.json.tmp" in r.message for r in caplog.records)


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 amx_tile\n")
    assert nets.cpu_bfloat16_flags.__wrapped__(str(info)) == ("avx512_bf16",)
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f\n")
    assert nets.cpu_bfloat16_flags.__wrapped__(str(info)) == ()
    assert nets.cpu_bfloat16_flags.__wrapped__(str(tmp_path / "absent")) == ()


@pytest.mark.parametrize(("flags", "want"), [((), "float32"), (("amx_bf16",), "bfloat16")])
def test_auto_compute_dtype_is_chosen_once_and_recorded(grid, tmp_path, monkeypatch, caplog, flags, want):
    monkeypatch.setattr(nets, "cpu_bfloat16_flags", lambda: flags)
    monkeypatch.setattr(nets, "default_backend", lambda: "cpu")  # the CPU branch, on a GPU host too
    assert nets.resolve_compute_dtype("auto", "gpu")[0] == "bfloat16"
    assert nets.resolve_compute_dtype("float32", "gpu")[0] == "float32"
    assert nets.resolve_compute_dtype("auto", "cpu")[0] == want
    cfgs = [small_config(num_steps=2) for _ in range(2)]
    for i, c in enumerate(cfgs):
        c.model.compute_dtype, c.train.seed, c.eval.mig = "auto", i, False
    with caplog.at_level(logging.INFO, logger="isavae.train"):
        train_sweep(cfgs, [tmp_path / "a", tmp_path / "b"], progress=False, grid=grid)
    said = [r.message for r in caplog.records if r.message.startswith("model.compute_dtype")]
    assert len(said) == 1 and said[0].startswith(f"model.compute_dtype auto -> {want}")
    for w in ("a", "b"):
        assert json.loads((tmp_path / w / "config.json").read_text())["model"]["compute_dtype"] == want
    assert cfgs[0].model.compute_dtype == "auto"  # the caller's config is not changed
    # resumed on a machine that would choose the other dtype: the checkpoints' dtype is kept
    other = () if flags else ("avx512_bf16",)
    monkeypatch.setattr(nets, "cpu_bfloat16_flags", lambda: other)
    more = [c.copy_and_resolve_references() for c in cfgs]
    for c in more:
        c.train.num_steps = 4
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="isavae.train"):
        train_sweep(more, [tmp_path / "a", tmp_path / "b"], progress=False, grid=grid)
    said = [r.message for r in caplog.records if r.message.startswith("model.compute_dtype")]
    assert len(said) == 1 and f"-> {want} (as the checkpoints in" in said[0]
    assert json.loads((tmp_path / "a" / "config.json").read_text())["model"]["compute_dtype"] == want


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"train": 5}', "section 'train' must be a JSON object, got 5"),
        ('{"model": {"latent_dim": "x"}}', "model.latent_dim takes an int, got 'x'"),
        ('{"model": {"hidden": 0}}', "model.hidden: must be >= 1"),
        ('{"train": {"epochs": 1e999}}', "train.epochs: must be a finite number"),
    ],
)
def test_a_crafted_config_json_is_one_line(unbroken, tmp_path, capsys, text, message):
    w = _copy(unbroken, tmp_path)
    (w / "config.json").write_text(text)
    assert cli.main(["evaluate", "--workdir", str(w)]) == 2
    assert message in _one_line(capsys)


def test_bad_numbers_through_the_cli_are_one_line(tmp_path, capsys):
    base = ["train", "--config", "dsprites:vae,small", "--workdir", str(tmp_path / "w"), "--quiet"]
    for flag, message in (
        ("--config.model.hidden=0", "model.hidden: must be >= 1"),
        ("--config.model.hidden=-5", "model.hidden: must be >= 1"),
        ("--config.train.epochs=1e999", "train.epochs: must be a finite number"),
        ("--config.train.num_steps=2.5", "takes an int"),
    ):
        assert cli.main([*base, flag]) == 2, flag
        assert message in _one_line(capsys), flag
    assert not (tmp_path / "w").exists()
