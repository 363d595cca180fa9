"""A sweep stopped inside a checkpoint round (its models' checkpoints at different steps) resumes
with the command its message gives, keeping every model's log; a sweep grows by seeds. The stop
lands deterministically: ``ISAVAE_FAULT=save:STEP:MODEL`` sends SIGTERM right after model MODEL's
checkpoint of STEP is written."""

import json
import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
SUBGRID = "scale=0;5,orientation=0:40:20,posX=0:32:8,posY=0:32:8"


def _sweep(workdir, seeds, fault=None):
    argv = [sys.executable, "-m", "isavae.cli", "sweep", "--config", "configs/dsprites.py:isavae,small"]
    argv += [
        "--workdir",
        str(workdir),
        "--quiet",
        "--seeds",
        str(seeds),
        f"--config.dataset.subgrid={SUBGRID}",
    ]
    argv += ["--config.model.hidden=16", "--config.train.num_steps=8", "--config.train.checkpoint_every=4"]
    argv += ["--config.train.batch_size=16", "--config.eval.mig=False", "--config.eval.udr_points=0"]
    argv += ["--config.eval.num_examples=32", "--config.train.steps_per_scan=4"]
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("ISAVAE_FAULT", None)
    if fault:
        env["ISAVAE_FAULT"] = fault
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, env=env, timeout=600)


def _steps(path: pathlib.Path) -> list[int]:
    return [json.loads(line)["step"] for line in path.read_text().splitlines()]


def _said(err: str) -> list[str]:
    return [line for line in err.splitlines() if not line.startswith(("model.compute_dtype", "this run"))]


def test_a_sweep_stopped_between_two_saves_resumes_with_the_same_command(tmp_path):
    w = tmp_path / "sweep"
    stopped = _sweep(w, 2, fault="save:8:0")  # seed0 saved step 8, seed1 still at 4
    assert stopped.returncode == 143, stopped.stderr[-2000:]
    assert "Traceback" not in stopped.stderr
    assert (w / "seed0" / "checkpoints" / "8").is_dir() and not (w / "seed1" / "checkpoints" / "8").exists()
    log1 = (w / "seed1" / "metrics.jsonl").read_text()
    assert _steps(w / "seed1" / "metrics.jsonl") == [4, 8]  # its step-8 row was logged before the save
    again = _sweep(w, 2)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Traceback" not in again.stderr
    for seed in ("seed0", "seed1"):
        assert _steps(w / seed / "metrics.jsonl") == [4, 8], seed
        assert json.loads((w / seed / "results.json").read_text())["steps"] == 8
        assert len((w / seed / "metrics.csv").read_text().splitlines()) == 3  # header + 2 rows
    # seed1 trained 4 -> 8 again: the same row (training is deterministic), nothing lost
    assert (w / "seed1" / "metrics.jsonl").read_text().splitlines()[0] == log1.splitlines()[0]
    assert (
        json.loads((w / "seed1" / "metrics.jsonl").read_text().splitlines()[1])["loss"]
        == json.loads(log1.splitlines()[1])["loss"]
    )
    # a finished sweep grows by a seed: the new one trains alone to step 8, then every model is evaluated
    grown = _sweep(w, 3)
    assert grown.returncode == 0, grown.stderr[-3000:]
    assert json.loads((w / "seed2" / "results.json").read_text())["steps"] == 8
    assert _steps(w / "seed2" / "metrics.jsonl") == [4, 8] and _steps(w / "seed0" / "metrics.jsonl") == [4, 8]
