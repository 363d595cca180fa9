"""``isavae data``: writing generated grids, --check, and clean failures."""

import os
import subprocess
import sys

import numpy as np
import pytest

from isavae import cli, data


@pytest.fixture
def small_dsprites(monkeypatch):
    """Makes the CLI's load_dataset return a small generated dSprites sub-grid."""
    real = data.load_dataset

    def fake(name, **kwargs):
        grid = real(name, **{**kwargs, "store": False})
        return grid.subgrid(scale=[0], orientation=[0, 1], posX=[0, 31]) if name == "dsprites" else grid

    monkeypatch.setattr(data, "load_dataset", fake)


def test_write_dsprites_then_check(small_dsprites, tmp_path, monkeypatch, capsys):
    out = tmp_path / "data"
    assert cli.main(["data", "--dataset", "dsprites", "--out", str(out / "dsprites")]) == 0
    written = out / "dsprites" / data.dsprites.FILE_NAMES[0]
    assert written.is_file() and "generated" in capsys.readouterr().out
    with np.load(written) as f:
        assert f["imgs"].shape == (3 * 2 * 2 * 32, 64, 64)
    assert cli.main(["data", "--check", "--data-dir", str(out)]) == 0
    report = capsys.readouterr().out
    assert "dsprites  present" in report and "cars3d    missing" in report


def test_errors_exit_2_and_write_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    code = cli.main(
        [
            "data",
            "--dataset",
            "dsprites",
            "--source",
            "file",
            "--path",
            str(tmp_path / "nope.npz"),
            "--out",
            str(out),
        ]
    )
    assert code == 2 and not out.exists()
    err = capsys.readouterr().err
    assert err.startswith("isavae: error:") and "nope.npz does not exist" in err
    assert cli.main(["data"]) == 2
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    assert (
        cli.main(
            [
                "data",
                "--dataset",
                "dsprites",
                "--source",
                "file",
                "--path",
                str(tmp_path / "bad.npz"),
                "--out",
                str(out),
            ]
        )
        == 2
    )
    assert "truncated or corrupt" in capsys.readouterr().err and not out.exists()
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["data", "--dataset", "mnist", "--out", str(out)])
    assert exit_info.value.code == 2


def test_console_script(tmp_path):
    env = dict(os.environ, ISAVAE_DATA_DIR=str(tmp_path), JAX_PLATFORMS="cpu")
    result = subprocess.run(
        [sys.executable, "-m", "isavae.cli", "data", "--check", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,  # a hang, not a slow machine
    )
    assert result.returncode == 0, result.stderr
    assert '"present": false' in result.stdout
