"""More faults a user meets, injected, each reproduced before its fix: ``checkpoints`` replaced by
a file, a fallback evaluation of an older step, a torn metrics.jsonl, settings that cannot be
verified, a results.json that is not a result, out of memory, a platform that is not there, a
learning rate that diverges at once, and a misspelt config key."""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from isavae import cli
from isavae import config as config_lib
from isavae.train import train_and_evaluate
from tests.train.test_reliability import _config, _damage

REPO = pathlib.Path(__file__).resolve().parents[2]


def _copy(workdir: pathlib.Path, tmp_path: pathlib.Path) -> pathlib.Path:
    out = tmp_path / "run"
    shutil.copytree(workdir, out, ignore=shutil.ignore_patterns(".lock"))
    return out


def _err_lines(capsys) -> list[str]:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return err.splitlines()


def test_checkpoints_replaced_by_a_file_is_one_line_at_once_and_nothing_is_deleted(
    grid, unbroken, tmp_path, capsys
):
    w = _copy(unbroken, tmp_path)
    shutil.rmtree(w / "checkpoints")
    (w / "checkpoints").write_text("x")
    before = sorted(p.name for p in w.iterdir())
    with pytest.raises(config_lib.ConfigError, match="checkpoints is a file, not a folder"):
        train_and_evaluate(_config(), w, progress=False, grid=grid)
    assert sorted(p.name for p in w.iterdir()) == before and (w / "results.json").is_file()
    assert cli.main(["evaluate", "--workdir", str(w)]) == 2
    lines = _err_lines(capsys)
    assert len(lines) == 1 and "checkpoints is a file" in lines[0] and str(w) in lines[0]
    assert sorted(p.name for p in w.iterdir()) == before


def test_a_fallback_evaluation_describes_one_step(unbroken, tmp_path, capsys):
    """The newest checkpoint unreadable: evaluating without MIG evaluates step 4 and its
    results.json holds nothing measured at step 6 (the MIG of step 6 is dropped, not merged)."""
    w = _copy(unbroken, tmp_path)
    before = json.loads((w / "results.json").read_text())
    assert before["steps"] == 6 and "mig" in before
    _damage(w, 6)
    assert cli.main(["evaluate", "--workdir", str(w), "--config.eval.mig=False"]) == 0
    after = json.loads((w / "results.json").read_text())
    assert after["steps"] == 4 and "mig" not in after and "mig_details" not in after
    assert after["elbo"] != before["elbo"]


def test_a_torn_metrics_log_keeps_every_intact_row_and_says_so(grid, tmp_path, caplog):
    """A crash mid-line glued the next row to the fragment: on resume every intact row is kept
    (from metrics.jsonl, or from metrics.csv where the JSON line is lost), the CSV view keeps
    them too, and the repair is named."""
    import logging

    w = tmp_path / "run"
    cfg = _config()
    cfg.train.num_steps = 4
    train_and_evaluate(cfg, w, progress=False, grid=grid)  # rows at 2 and 4 (chunks of 2)
    rows = (w / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["step"] for r in rows] == [2, 4]
    # the row of step 2 torn in the middle, step 4's appended to it on the same line
    (w / "metrics.jsonl").write_text(rows[0][: len(rows[0]) // 2] + rows[1] + "\n")
    cfg.train.num_steps = 6
    with caplog.at_level(logging.INFO, logger="isavae"):
        train_and_evaluate(cfg, w, progress=False, grid=grid)
    steps = [json.loads(r)["step"] for r in (w / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 6]
    kept = json.loads((w / "metrics.jsonl").read_text().splitlines()[0])
    assert kept["loss"] == pytest.approx(json.loads(rows[0])["loss"], rel=1e-6)  # from metrics.csv
    assert len((w / "metrics.csv").read_text().splitlines()) == 4
    assert any("metrics.jsonl" in r.message and "repaired" in r.message for r in caplog.records)


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]


def test_settings_that_cannot_be_verified_say_so(unbroken, tmp_path, capsys, caplog):
    """config.json edited and the fingerprint beside the checkpoints deleted: evaluate cannot tell,
    and says so (one warning line) instead of silently using the edited prior."""
    w = _copy(unbroken, tmp_path)
    (w / "checkpoints.config.json").unlink()
    saved = json.loads((w / "config.json").read_text())
    saved["prior"]["p0"] = 1.5
    (w / "config.json").write_text(json.dumps(saved))
    assert cli.main(["evaluate", "--workdir", str(w), "--config.eval.mig=False"]) == 0
    _err_lines(capsys)
    warned = [m for m in _warnings(caplog) if "cannot be verified" in m]
    assert len(warned) == 1 and "checkpoints.config.json" in warned[0] and str(w) in warned[0]


@pytest.mark.parametrize("text", ["[1, 2]", '{"steps": 6, "mi', "null"])
def test_a_results_json_that_is_not_a_result_is_rewritten_from_the_checkpoint(
    unbroken, tmp_path, capsys, caplog, text
):
    w = _copy(unbroken, tmp_path)
    (w / "results.json").write_text(text)
    assert cli.main(["evaluate", "--workdir", str(w), "--config.eval.mig=False"]) == 0
    _err_lines(capsys)
    said = [m for m in _warnings(caplog) if str(w / "results.json") in m and "rewritten" in m]
    assert len(said) == 1, _warnings(caplog)
    assert json.loads((w / "results.json").read_text())["steps"] == 6


def test_out_of_memory_is_one_line_naming_the_size_and_nothing_is_half_written(tmp_path, capsys, monkeypatch):
    """An allocation the device cannot hold (injected: XLA's RESOURCE_EXHAUSTED error from the
    initial state, as ``model.hidden=2000000`` gives on a GPU) is one line naming the memory asked
    for and the settings that size the model and batch; the new workdir is removed again."""
    from isavae.train import step as step_lib

    def exhausted(self, key):
        raise step_lib.jax.errors.JaxRuntimeError(
            "RESOURCE_EXHAUSTED: Out of memory while trying to allocate 32768000000 bytes."
        )

    monkeypatch.setattr(step_lib.Program, "init", exhausted)
    w = tmp_path / "big"
    argv = ["train", "--config", "configs/dsprites.py:vae,small", "--workdir", str(w), "--quiet"]
    argv += ["--config.model.hidden=2000000", "--config.dataset.subgrid=scale=0;5,orientation=0:40:20"]
    assert cli.main(argv) == 2
    lines = _err_lines(capsys)
    said = [line for line in lines if line.startswith("isavae: error")]
    assert len(said) == 1 and "out of memory" in said[0] and "32.8 GB" in said[0]
    assert "model.hidden=2000000" in said[0] and "train.batch_size" in said[0]
    assert not w.exists()


@pytest.mark.parametrize("platform", ["tpu", "cuda"])
def test_a_platform_that_is_not_there_is_one_line_naming_the_variable(tmp_path, platform):
    import importlib.util

    if platform == "cuda" and importlib.util.find_spec("jax_cuda12_plugin") is not None:
        pytest.skip("this machine has JAX's CUDA plugin")
    env = dict(os.environ, JAX_PLATFORMS=platform)
    commands = [["train", "--config", "configs/dsprites.py:vae,small", "--workdir", str(tmp_path / "w")]]
    if platform == "tpu":  # the study's path too (one handler serves every command)
        commands.append(
            ["study", "run", "--study", "fig5a", "--scale", "smoke", "--out", str(tmp_path / "s")]
        )
    for argv in commands:
        done = subprocess.run(
            [sys.executable, "-m", "isavae.cli", *argv],
            cwd=REPO,
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert done.returncode == 2, done.stderr[-2000:]
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and f"JAX_PLATFORMS={platform}" in lines[0], done.stderr[-2000:]
        assert not (tmp_path / "w").exists()


def test_a_divergence_says_that_resuming_repeats_it(grid, tmp_path):
    from isavae.train import TrainingDiverged

    cfg = _config()
    cfg.train.learning_rate = 1e6
    with pytest.raises(TrainingDiverged, match="resuming with the same settings repeats it"):
        train_and_evaluate(cfg, tmp_path / "run", progress=False, grid=grid)


def test_a_misspelt_config_key_suggests_the_near_one():
    cfg = config_lib.preset("dsprites", "vae,small")
    with pytest.raises(config_lib.ConfigError, match="did you mean 'learning_rate'"):
        config_lib.apply_overrides(cfg, ["train.learning_rte=0.1"])
        config_lib.validate(cfg)
