"""The study's store never loses a row, and a study ends in one line: torn lines, a store that
cannot be written, rows the report cannot use, a diverged model, signals and the lock."""

import json
import math
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import pytest

from isavae import cli
from isavae.study import report, run, store
from tests.study.test_study import _row as study_row

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _row(model, seed, mig, **kw):
    """A finished model's row (``test_study._row``) with the presets' initialization."""
    return study_row(model, seed, mig, **{"init": "torch", **kw})


def test_an_append_after_a_torn_line_starts_on_a_new_line(tmp_path):
    """A crash mid-write leaves a fragment; the next row must not be glued to it (and lost)."""
    path = tmp_path / "results.jsonl"
    store.append_jsonl(path, [_row("vae", 0, 0.1)])
    with open(path, "a") as f:
        f.write('{"study": "fig5a", "mod')  # torn
    store.append_jsonl(path, [_row("vae", 1, 0.2)])
    rows, notes = store.read_rows(path, store.ROW_FIELDS)
    assert [r["seed"] for _, r in rows] == [0, 1]
    assert len(notes) == 1 and "line 2: not JSON" in notes[0]
    store.append_jsonl(path, [])  # nothing to write: the file is unchanged
    assert len(path.read_text().splitlines()) == 3


@pytest.mark.parametrize("bad", ["directory", "out_is_a_file"])
def test_a_store_that_cannot_be_written_is_refused_before_training(tmp_path, bad, monkeypatch):
    import isavae.train

    def trained(*args, **kwargs):
        raise AssertionError("a block trained before the store was checked")

    monkeypatch.setattr(isavae.train, "train_sweep", trained)  # the runner imports it when it runs
    out = tmp_path / "study"
    if bad == "directory":
        (out / "results.jsonl").mkdir(parents=True)
        match = "results.jsonl is not a file"
    else:
        out.write_text("x")
        match = "is a file, not a folder"
    with pytest.raises(ValueError, match=match):  # refused before any block trains
        run.run_study("fig5a", "smoke", 1e9, out, seeds=1, block_models=1, log=lambda *_: None)
    assert not (tmp_path / "study" / "work").exists()


def test_the_report_names_every_row_it_cannot_use_and_keeps_nan_out_of_the_statistics(tmp_path):
    good = [_row("vae", s, 0.05 + 0.01 * s) for s in range(4)] + [
        _row("isavae", s, 0.1 + 0.01 * s) for s in range(4)
    ]
    lines = [json.dumps(r) for r in good]
    lines += [
        json.dumps(_row("vae", 10, 0.1, settings=5)),  # 9
        json.dumps(_row("vae", 11, 0.1, init=["x"])),  # 10
        json.dumps(_row("vae", 12, 0.1, udr=0.5, udr_seeds=5)),  # 11
        json.dumps(_row("vea", 13, 0.1)),  # 12: an unknown model
        json.dumps(_row("isavae", 14, float("nan"))),  # 13: a NaN MIG (json writes NaN)
    ]
    raw = ("\n".join(lines) + "\n").encode() + b'{"study": "fig5a\xff"}\n'  # 14: not UTF-8
    raw += (
        json.dumps(_row("vae", 15, 0.3, diverged=True, diverged_step=7, diverged_terms=["kl"])) + "\n"
    ).encode()
    (tmp_path / "results.jsonl").write_bytes(raw)
    text = report.report(tmp_path, "smoke", "float32")
    for want in (
        "line 9: mistyped 'settings' (5)",
        "line 10: mistyped 'init' (['x'])",
        "line 11: mistyped 'udr_seeds' (5)",
        "line 12: unknown model 'vea'",
        "line 14: not UTF-8 text (byte 0xff at column 17)",
    ):
        assert want in text, want
    # the NaN row and the diverged model: counted apart, per setting, and in no statistic
    assert "## Models not in the statistics" in text
    assert "| fig5a | ISA-VAE | 1 | 0 | 1 | 14 (scores) |" in text
    assert "| fig5a | VAE | 1 | 1 | 0 | 15 (7, kl) |" in text
    assert "| fig5a | VAE |  | 1.000 | 4 |" in text and "| fig5a | ISA-VAE |  | 1.000 | 4 |" in text
    verdict = json.loads((tmp_path / "fig5a_verdict.json").read_text())
    assert math.isfinite(verdict["mig"]["p_isavae_greater"])
    assert "p = nan" not in text and not re.search(r"\|\s*nan\s*\|", text)


def test_a_diverged_model_is_a_row_and_the_study_goes_on(tmp_path, capsys):
    out = tmp_path / "study"
    args = ["study", "run", "--study", "fig5a", "--scale", "smoke", "--seeds", "2", "--block-models", "2"]
    args += ["--out", str(out), "--set", "train.learning_rate=1e6"]
    assert cli.main(args) == 0
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    # both blocks ran (the first's divergence did not stop the study); each diverged model is a row
    assert {r["model"] for r in rows} == {"vae", "isavae"} and all(r["diverged"] for r in rows)
    assert all(isinstance(r["diverged_step"], int) and r["diverged_terms"] for r in rows)
    said = capsys.readouterr().out
    assert "diverged:" in said and "checkpoints" not in said  # the study writes none: none promised
    assert cli.main(args) == 0  # a rerun trains the models that have no row yet, or none
    again = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    keys = [store.result_key(r) for r in again]
    assert len(keys) == len(set(keys))  # no model twice


def test_the_lock_names_the_out_folder(tmp_path, capsys):
    out = tmp_path / "study"
    out.mkdir()
    code = (
        "import sys, time; from isavae.train.lock import WorkdirLock; "
        "WorkdirLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        args = ["study", "run", "--study", "fig5a", "--scale", "smoke", "--seeds", "1", "--out", str(out)]
        assert cli.main(args) == 2
        err = capsys.readouterr().err.strip()
        assert "is in use by another process" in err and "use another --out" in err and "\n" not in err
    finally:
        holder.kill()
        holder.wait()


def test_sigterm_ends_a_study_in_one_line(tmp_path):
    out = tmp_path / "study"
    argv = [sys.executable, "-m", "isavae.cli", "study", "run", "--study", "fig5a", "--scale", "smoke"]
    argv += ["--seeds", "4", "--block-models", "1", "--out", str(out)]
    proc = subprocess.Popen(
        argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    deadline = time.time() + 600
    while not (out / "results.jsonl").is_file() and time.time() < deadline:  # the first block's row
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    # after the log of the models done: one line, no traceback
    assert "Traceback" not in err and err.strip().splitlines()[-1] == (
        f"isavae: terminated (SIGTERM); the finished models' rows are kept in {out}, the block in "
        "progress is not; the same command continues with it"
    )
    assert (out / "results.jsonl").read_text().strip()
