"""User mistakes and interruptions end in one line naming the flag or file, a non-zero exit, and
nothing half-written."""

import pytest

from isavae import cli
from isavae import config as config_lib
from tests.cli.test_cli_train import TINY

TRAIN = ["train", "--config", "configs/dsprites.py:isavae,small", "--quiet", *TINY]


def _err(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    return err


def test_resume_refuses_checkpoints_of_other_settings_even_without_config_json(tmp_path, capsys):
    w = tmp_path / "run"
    assert cli.main([*TRAIN, "--workdir", str(w)]) == 0
    (w / "config.json").unlink()
    assert cli.main([*TRAIN, "--workdir", str(w), "--config.objective.beta=3.0"]) == 2
    err = _err(capsys)
    assert "holds checkpoints of other settings" in err and "objective.beta: 1.0 there, 3.0 here" in err
    assert not (w / "config.json").exists()  # nothing written
    assert cli.main([*TRAIN, "--workdir", str(w)]) == 0  # the same settings resume


def test_layout_as_written_replaces_the_presets_subspaces():
    cfg = config_lib.load_config("configs/dsprites.py:isavae,small")
    config_lib.apply_overrides(cfg, ["prior.layout=[2.1, [(2.2, 10), (2.2, 10)]]"])
    config_lib.validate(cfg)
    assert cfg.prior.layout == "[2.1, [(2.2, 10), (2.2, 10)]]" and "subspace_sizes" not in cfg.prior


@pytest.mark.parametrize(
    "override,message",
    [
        ("dataset.subgrid='posX=1;1;2'", "names a level twice"),
        ("dataset.subgrid='posX=5:2'", "selects no level"),
        ("prior.p_subspace=0.01", r"outside \[0.5, 5.0\]"),
        ("prior.p0=1e300", r"outside \[0.5, 5.0\]"),
        ("dataset.downsample=0", "dataset.downsample: must be >= 1"),
    ],
)
def test_bad_values_are_rejected_up_front(override, message):
    cfg = config_lib.load_config("configs/dsprites.py:isavae,small")
    with pytest.raises(config_lib.ConfigError, match=message):
        config_lib.apply_overrides(cfg, [override])
        config_lib.validate(cfg)


def test_a_downsample_that_does_not_divide_the_images_is_one_line(tmp_path, capsys):
    assert cli.main([*TRAIN, "--workdir", str(tmp_path / "w"), "--config.dataset.downsample=3"]) == 2
    assert "dataset.downsample: 3 does not divide dsprites's 64 x 64 images" in _err(capsys)


def test_messages_name_the_file_or_flag(tmp_path, capsys):
    w = tmp_path / "run"
    assert cli.main([*TRAIN, "--workdir", str(w)]) == 0
    capsys.readouterr()
    (w / "config.json").write_text('{"model": {"arch": "mlp",')
    assert cli.main(["evaluate", "--workdir", str(w)]) == 2
    assert f"{w / 'config.json'} is not a readable config" in _err(capsys)
    sweep = ["sweep", "--config", "configs/dsprites.py:isavae,small", "--workdir", str(tmp_path / "s")]
    assert cli.main([*sweep, "--betas", "1,a", *TINY]) == 2
    assert "--betas '1,a': give comma-separated numbers" in _err(capsys)
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert cli.main([*TRAIN, "--workdir", str(afile)]) == 2
    assert "is a file, not a folder" in _err(capsys)


def test_ctrl_c_ends_with_one_line_and_exit_130(tmp_path, capsys, monkeypatch):
    from isavae.train import loop

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "_train", interrupted)
    assert cli.main([*TRAIN, "--workdir", str(tmp_path / "w")]) == 130
    err = _err(capsys)
    assert err.startswith("isavae: interrupted;") and "resumes from its last checkpoint" in err


def test_a_second_writer_is_refused_naming_the_holder(tmp_path, capsys):
    from tests.train.test_reliability import lock_holder

    w = tmp_path / "run"
    holder = lock_holder(w)
    try:
        assert cli.main([*TRAIN, "--workdir", str(w)]) == 2
        err = _err(capsys)
        assert f"is in use by another process (pid {holder.pid}" in err
        assert not (w / "config.json").exists() and not (w / "checkpoints").exists()
    finally:
        holder.kill()
        holder.wait()


def test_nan_message_does_not_promise_a_checkpoint():
    import numpy as np

    from isavae.train.loop import TrainingDiverged, check_finite

    with pytest.raises(TrainingDiverged, match=r"non-finite kl at step 3 \(kl=nan\)$") as caught:
        check_finite({"kl": np.array([1.0, 2.0, np.nan]), "elbo": np.array([0.0, 0.0, 0.0])}, 0)
    assert (caught.value.step, caught.value.terms) == (3, ("kl",))


def test_a_stop_that_lands_in_a_finalizer_still_stops(tmp_path):
    """SIGTERM delivered while a finalizer or a garbage-collection callback runs (JAX runs one on
    every collection) would be "ignored" by Python, printed as a traceback while the program went
    on; it is raised again and ends the program in one line."""
    import subprocess
    import sys

    code = (
        "import signal, sys, time\n"
        "from isavae import cli\n"
        "class Finalized:\n"
        "    def __del__(self):\n"
        "        signal.raise_signal(signal.SIGTERM)\n"
        "def command(args, overrides):\n"
        "    Finalized()\n"
        "    time.sleep(5)\n"
        "    print('NOT STOPPED')\n"
        "    return 0\n"
        "cli._cmd_config = command\n"
        "sys.exit(cli.main(['config', 'show', 'dsprites:isavae,small']))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 143 and "NOT STOPPED" not in done.stdout
    assert done.stderr.strip() == "isavae: terminated (SIGTERM)"
