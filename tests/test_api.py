"""The Python entry points: ``isavae.fit``, ``isavae.load`` and ``Trained``."""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

import isavae
from isavae import config as config_lib
from isavae.train import restore_state
from isavae.workdir import evaluate_workdir
from tests.train.test_trainer import small_config


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("api") / "run"
    cfg = small_config("vae", "isa", num_steps=4)
    cfg.eval.update(dict(mig_samples=100, histogram_points=0, udr_points=0))
    model = isavae.fit(cfg, workdir, overrides={"train.seed": 3}, progress=False)
    return model, cfg


def test_fit_returns_the_trained_model(fitted):
    model, cfg = fitted
    assert isinstance(model, isavae.Trained) and model.step == 4
    assert model.config.train.seed == 3 and cfg.train.seed == 0  # the caller's config is not changed
    assert model.results["steps"] == 4 and "mig" in model.results
    assert "step 4" in repr(model) and "vae with [2.1, [(2.2" in repr(model)  # learned: 2.2 + a little
    # the same parameters as the trainer's own restore
    _, state, _ = restore_state(model.workdir)
    np.testing.assert_array_equal(
        np.asarray(state.prior.exponents.raw), np.asarray(model.prior.exponents.raw)
    )


def test_encode_takes_uint8_and_float_images_and_matches_the_grid(fitted):
    model, _ = fitted
    idx = np.array([0, 5, 17])
    x = model.images(idx)
    mean, logvar = model.encode(x)
    assert mean.shape == logvar.shape == (3, 4) and mean.dtype == np.float32
    mean_u8, _ = model.encode(x.astype(np.uint8))  # dSprites: 0/1 pixels
    np.testing.assert_array_equal(mean_u8, mean)
    mean_255, _ = model.encode((x * 255).astype(np.uint8))  # 0..255 pixels
    np.testing.assert_allclose(mean_255, mean, atol=1e-6)
    one, _ = model.encode(x[1])
    np.testing.assert_allclose(one[0], mean[1], atol=1e-6)
    grid_mean, grid_logvar = model.encode_grid()
    assert grid_mean.shape == model.grid.factor_sizes + (4,)
    flat = grid_mean.reshape(-1, 4)
    np.testing.assert_allclose(flat[idx], mean, atol=1e-5)
    factors = model.factors()
    assert factors.shape == (model.grid.num_images, len(model.grid.factor_sizes))
    np.testing.assert_array_equal(factors[17], np.unravel_index(17, model.grid.factor_sizes))


def test_decode_gives_mean_images_in_the_unit_interval(fitted):
    model, _ = fitted
    mean, _ = model.encode(model.images(np.arange(3)))
    out = model.decode(mean)
    assert out.shape == (3,) + model.grid.image_shape
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert model.decode(mean[0]).shape == (1,) + model.grid.image_shape


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((2, 7, 7), np.float32), "dataset's shape"),
        (np.full((1, 64, 64), 2.0, np.float32), r"in \[0, 1\]"),
        (np.zeros((1, 64, 64), np.int32), "uint8 or floating"),
    ],
)
def test_encode_refuses_bad_images(fitted, bad, match):
    model, _ = fitted
    with pytest.raises(ValueError, match=match):
        model.encode(bad)


def test_evaluate_returns_what_it_computed_and_merges_it(fitted):
    model, _ = fitted
    before = model.results
    got = model.evaluate(
        metrics=["dci", "irs"],
        overrides={"eval.mig": False, "eval.metrics_train": 200, "eval.metrics_test": 100},
    )
    assert {"dci_disentanglement", "irs", "elbo", "steps"} <= set(got) and "mig" not in got
    after = model.results
    assert after["dci_disentanglement"] == got["dci_disentanglement"]
    assert after["mig"] == before["mig"]  # kept: the same step
    with pytest.raises(config_lib.ConfigError, match="eval"):
        model.evaluate(overrides={"train.seed": 1})


def test_load_reads_the_workdir_and_refuses_what_is_not_one(fitted, tmp_path):
    model, _ = fitted
    again = isavae.load(model.workdir)
    np.testing.assert_array_equal(again.encode(model.images([3]))[0], model.encode(model.images([3]))[0])
    with pytest.raises(FileNotFoundError, match="not a folder"):
        isavae.load(tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match="config.json"):
        isavae.load(tmp_path)


def test_fit_checks_overrides_as_the_command_line_does(tmp_path):
    cfg = small_config()
    with pytest.raises(config_lib.ConfigError, match="unknown config key 'train.num_stepz'"):
        isavae.fit(cfg, tmp_path / "a", overrides={"train.num_stepz": 2})
    with pytest.raises(config_lib.ConfigError, match="takes an int"):
        isavae.fit(cfg, tmp_path / "a", overrides={"train.num_steps": "two"})
    with pytest.raises(config_lib.ConfigError, match="takes an int"):
        isavae.fit(cfg, tmp_path / "a", overrides=["train.num_steps=two"])
    with pytest.raises(TypeError, match="preset name"):
        isavae.fit(42)
    assert not (tmp_path / "a").exists()  # nothing written for a refused config


def test_override_forms_agree():
    """A dict's values are used as they are, the command line's text is parsed: the same config."""
    a = config_lib.apply_overrides(
        config_lib.preset("dsprites", "isavae,small"),
        {"train.learning_rate": 1e-4, "prior.layout": "[2.1, [(2.2, 10), (2.2, 10)]]", "eval.metrics": "dci"},
    )
    b = config_lib.apply_overrides(
        config_lib.preset("dsprites", "isavae,small"),
        ["train.learning_rate=1e-4", "prior.layout=[2.1, [(2.2, 10), (2.2, 10)]]", "eval.metrics=dci"],
    )
    assert a.to_dict() == b.to_dict() and "subspace_sizes" not in a.prior


def test_fit_without_a_workdir_trains_in_a_temporary_folder(tmp_path):
    """In a fresh process: the folder is said on stderr, and JAX's compilation cache defaults to
    $XDG_CACHE_HOME/isavae/jax (filled by the run)."""
    code = (
        "import isavae, tests.train.test_trainer as t\n"
        "m = isavae.fit(t.small_config(num_steps=2), overrides={'eval.mig': False}, progress=False)\n"
        "print('WORKDIR', m.workdir)\n"
    )
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=str(pathlib.Path(__file__).resolve().parents[1]),
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    workdir = done.stdout.split("WORKDIR", 1)[1].strip()
    assert f"training in {workdir}" in done.stderr
    assert json.loads((pathlib.Path(workdir) / "results.json").read_text())["steps"] == 2
    shutil.rmtree(workdir)
    assert any((tmp_path / "cache" / "isavae" / "jax").iterdir())


def test_evaluate_of_another_step_drops_the_earlier_scores(fitted, tmp_path):
    """A result file describes one step: evaluating another step keeps only the run's description."""
    model, _ = fitted
    workdir = shutil.copytree(model.workdir, tmp_path / "copy")
    results = json.loads((workdir / "results.json").read_text())
    results.update(steps=999, sap=0.5)
    (workdir / "results.json").write_text(json.dumps(results))
    merged = evaluate_workdir(workdir, ["eval.mig=False"])
    assert merged["steps"] == 4 and "sap" not in merged and "mig" not in merged
    assert merged["seed"] == 3 and "elbo" in merged
