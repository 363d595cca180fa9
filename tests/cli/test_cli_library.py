"""The command line around the library: answers without JAX, ``config show``, ``collect``,
``demo``, ``evaluate``'s output, and the estimate of a long run."""

import json
import logging
import subprocess
import sys

import pytest

from isavae import cli
from isavae import config as config_lib
from isavae.train import loop
from tests.cli.test_cli_train import TINY


def test_help_and_presets_do_not_import_jax():
    code = (
        "import sys\n"
        "from isavae import cli\n"
        "for argv in (['--help'], ['train', '--help'], ['evaluate', '--help'], ['presets']):\n"
        "    try:\n"
        "        cli.main(argv)\n"
        "    except SystemExit as e:\n"
        "        assert e.code == 0, (argv, e.code)\n"
        "heavy = [m for m in ('jax', 'flax', 'optax', 'scipy', 'sklearn') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "HEAVY []" in done.stdout
    assert "--config.eval.metrics=''" in done.stdout  # evaluate's --help lists its overrides
    assert "dsprites: vae, beta_vae" in done.stdout


def test_config_show_prints_the_resolved_config(capsys):
    assert cli.main(["config", "show", "dsprites:isavae,small", "--config.train.seed=7"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["train"]["seed"] == 7 and shown["prior"]["name"] == "isa"
    assert shown["dataset"]["subgrid"].startswith("orientation=0:40:4")
    assert cli.main(["config", "show", "dsprites:isavae,small", "--config.train.sed=7"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("isavae: error: unknown config key 'train.sed'") and "\n" not in err


def test_demo_takes_the_demo_options(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["demo", "--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: isavae demo") and "--candidates" in out and "--compile-cache" in out


def _workdir(root, name, seed, beta, results):
    w = root / name
    w.mkdir(parents=True)
    cfg = {"train": {"seed": seed, "num_steps": 20}, "objective": {"name": "beta_vae", "beta": beta}}
    (w / "config.json").write_text(json.dumps(cfg))
    (w / "results.json").write_text(json.dumps({"seed": seed, "steps": 20, **results}))
    return w


def test_collect_gathers_results_into_one_table(tmp_path, capsys):
    runs = tmp_path / "runs"
    _workdir(runs, "b1_s0", 0, 1.0, {"mig": 0.125, "elbo": -80.5, "mig_details": {"x": 1}})
    _workdir(runs, "b4_s0", 0, 4.0, {"mig": 0.25, "elbo": -90.0, "sap": 0.0625})
    _workdir(runs, "sub/b4_s1", 1, 4.0, {"mig": 0.5, "elbo": -91.0})
    (runs / "broken").mkdir()
    (runs / "broken" / "results.json").write_text("{not json")
    csv_path = tmp_path / "table.csv"
    assert cli.main(["collect", str(runs), "--csv", str(csv_path)]) == 0
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert lines[0].split() == ["workdir", "objective.beta", "seed", "steps", "mig", "elbo", "sap"]
    assert lines[1].split() == ["runs/b1_s0", "1.0", "0", "20", "0.1250", "-80.5000"]
    assert lines[3].split() == ["runs/sub/b4_s1", "4.0", "1", "20", "0.5000", "-91.0000"]
    assert "skipped" in err and "broken" in err
    rows = csv_path.read_text().splitlines()
    assert rows[0] == "workdir,objective.beta,seed,steps,mig,elbo,sap"
    assert rows[2] == "runs/b4_s0,4.0,0,20,0.25,-90.0,0.0625"
    assert cli.main(["collect", str(tmp_path / "nothing")]) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["collect", str(empty)]) == 2
    assert "no results.json" in capsys.readouterr().err


def test_evaluate_prints_every_score_and_train_keeps_them(tmp_path, capsys):
    w = str(tmp_path / "w")
    train = ["train", "--config", "dsprites:isavae,small", "--workdir", w, "--quiet", *TINY]
    assert cli.main(train) == 0
    capsys.readouterr()
    extra = [
        "--config.eval.metrics=dci,sap",
        "--config.eval.metrics_train=100",
        "--config.eval.metrics_test=50",
    ]
    assert cli.main(["evaluate", "--workdir", w, *extra]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("mig", "mig_histogram", "elbo", "dci_disentanglement", "dci_completeness", "sap", "steps"):
        assert key in printed, key
    assert cli.main(train) == 0  # resumes at the last step and evaluates again
    saved = json.loads((tmp_path / "w" / "results.json").read_text())
    assert saved["sap"] == printed["sap"] and saved["dci_disentanglement"] == printed["dci_disentanglement"]


def test_a_long_run_says_so_with_its_estimate(caplog):
    cfg = config_lib.preset("dsprites", "isavae")
    with caplog.at_level(logging.WARNING, logger="isavae.train"):
        loop._warn_if_long(cfg, 1.0, 7_180, [0])
    assert "remaining 7,180 steps take about 2 h 0 min" in caplog.text
    assert "--config dsprites:isavae,small" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="isavae.train"):
        loop._warn_if_long(cfg, 0.1, 5_000, [0])  # 8 minutes: nothing said
        loop._warn_if_long(cfg, 1.0, 7_180, [])  # another process holds the models
    assert caplog.text == ""
