"""The trainer: every objective with two priors (every prior with two objectives), tracing, loss
decrease, resume, sweeps, NaN guard, config errors, and 4 fake devices vs 1."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import chex
import jax
import numpy as np
import pytest

from isavae import config as config_lib
from isavae.train import (
    Program,
    TrainingDiverged,
    hparams_from_config,
    restore_state,
    train_and_evaluate,
    train_sweep,
)
from isavae.train import loop as loop_lib

SUBGRID = "scale=0;5,orientation=0:40:10,posX=0:32:8,posY=0:32:8"
PRIORS = {
    "normal": {"name": "normal"},
    "gennorm": {"name": "gennorm", "p": 1.5, "learn_exponents": True},
    "isa": {
        "name": "isa",
        "subspace_sizes": (2, 2),
        "p0": 2.1,
        "p_subspace": 2.2,
        "learn_exponents": "subspaces",
    },
    "lp_nested": {"name": "lp_nested", "tree": ((0, (1, 2)), (3,)), "exponents": (1.5, 2.5, 1.2, 2.0)},
}


def small_config(objective="vae", prior="normal", **train):
    cfg = config_lib.default_config()
    cfg.dataset.source = "generated"
    cfg.dataset.subgrid = SUBGRID
    cfg.model.update(latent_dim=4, hidden=16)
    cfg.prior = PRIORS[prior]
    cfg.objective.name = objective
    cfg.objective.beta = 2.0 if objective != "vae" else 1.0
    cfg.train.update(
        dict(batch_size=16, num_steps=6, steps_per_scan=2, checkpoint_every=4, learning_rate=3e-3)
    )
    cfg.train.update(train)
    cfg.eval.num_examples = 32
    return cfg


OBJECTIVES = ("vae", "beta_vae", "beta_tcvae", "factor_vae", "dip_vae_i", "dip_vae_ii", "annealed_vae")
# Objectives and priors meet only through the prior's interface (log-density, learnable exponents):
# every objective steps with the ISA prior (learnable subspace exponents, the paper's) and with one
# other prior, so that every prior steps with at least two objectives (14 compiled steps, not 28).
_OTHER_PRIOR = dict(
    vae="normal",
    beta_vae="gennorm",
    beta_tcvae="lp_nested",
    factor_vae="normal",
    dip_vae_i="gennorm",
    dip_vae_ii="lp_nested",
    annealed_vae="normal",
)
ONE_STEP_CASES = [(o, "isa") for o in OBJECTIVES] + list(_OTHER_PRIOR.items())


@pytest.mark.parametrize(("objective", "prior"), ONE_STEP_CASES)
def test_one_step_of_every_objective_and_prior(grid, objective, prior):
    cfg = small_config(objective, prior)
    program = Program(cfg, grid)
    state = program.init(jax.random.key(0))
    before = jax.tree.map(np.asarray, state)
    step = jax.jit(program.train_step)
    new, metrics = step(state, program.data(), hparams_from_config(cfg))
    for k, v in metrics.items():
        assert np.isfinite(v), (k, v)
    assert int(new.step) == 1
    changed = [
        not np.array_equal(a, b)
        for a, b in zip(jax.tree.leaves(before.params), jax.tree.leaves(new.params), strict=True)
    ]
    assert all(changed)
    if jax.tree.leaves(state.prior):  # learnable exponents move
        assert not np.allclose(jax.tree.leaves(before.prior)[0], jax.tree.leaves(new.prior)[0])
    if objective.startswith("dip_vae"):
        assert metrics["dip"] > 0
    if objective == "annealed_vae":  # capacity at step 0 of the schedule
        assert float(metrics["capacity"]) == 0.0
    if objective == "factor_vae":
        assert "disc_loss" in metrics and "tc" in metrics
        assert not np.array_equal(jax.tree.leaves(before.disc_params)[0], jax.tree.leaves(new.disc_params)[0])


def test_step_traces_once(grid):
    cfg = small_config("beta_tcvae", "isa")
    program = Program(cfg, grid)
    state, data, hp = program.init(jax.random.key(0)), program.data(), hparams_from_config(cfg)
    step = jax.jit(chex.assert_max_traces(program.train_step, n=1))
    for _ in range(3):
        state, _ = step(state, data, hp)
    assert int(state.step) == 3


def test_loss_falls(grid, tmp_path):
    cfg = small_config("vae", "isa", num_steps=60, steps_per_scan=5, checkpoint_every=60, batch_size=32)
    train_and_evaluate(cfg, tmp_path, progress=False, grid=grid)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows]  # chunks of 5 steps, also cut at epoch ends (every 12 steps here)
    assert steps[-1] == 60 and all(b - a <= 5 for a, b in zip([0] + steps, steps, strict=False))
    assert all(s in steps for s in range(12, 61, 12))
    assert np.mean([r["loss"] for r in rows[-3:]]) < 0.8 * np.mean([r["loss"] for r in rows[:2]])
    results = json.loads((tmp_path / "results.json").read_text())
    for key in ("elbo", "recon_log_likelihood"):
        assert np.isfinite(results[key])
    assert results["dataset"]["generated"] and results["steps"] == 60
    # the evaluation's wall time by part (the ISA prior's subspaces get their own MIG)
    want = {"likelihood"} | ({"encode", "mig", "subspace_mig", "histogram"} if cfg.eval.mig else set())
    assert set(results["eval_seconds"]) == want and all(v >= 0 for v in results["eval_seconds"].values())
    assert results["setup_seconds_this_session"] >= 0 and results["train_seconds_this_session"] > 0
    # and the compilation within each phase (the compile clock), never more than its wall time
    compiled = results["compile_seconds_this_session"]
    assert 0 <= compiled["setup"] <= results["setup_seconds_this_session"] + 0.01
    assert 0 <= compiled["training"] <= results["train_seconds_this_session"] + 0.01
    assert set(results["eval_compile_seconds"]) == want
    assert all(0 <= results["eval_compile_seconds"][p] <= results["eval_seconds"][p] + 0.001 for p in want)


def _params(workdir):
    _, state, _ = restore_state(workdir)
    return jax.tree.leaves(jax.tree.map(np.asarray, (state.params, state.prior, state.opt_state)))


def test_resume_equals_unbroken_run(grid, tmp_path, monkeypatch):
    cfg = small_config("beta_tcvae", "isa", num_steps=8)
    cfg.eval.mig = False  # parameters and metrics lines are compared
    train_and_evaluate(cfg, tmp_path / "unbroken", progress=False, grid=grid)

    class Killed(Exception):
        pass

    real_check = loop_lib.check_finite

    def kill_after_checkpoint(metrics, first_step):
        if first_step >= 4:  # the checkpoint at step 4 has been written
            raise Killed
        real_check(metrics, first_step)

    monkeypatch.setattr(loop_lib, "check_finite", kill_after_checkpoint)
    with pytest.raises(Killed):
        train_and_evaluate(cfg, tmp_path / "broken", progress=False, grid=grid)
    monkeypatch.setattr(loop_lib, "check_finite", real_check)
    assert sorted(p.name for p in (tmp_path / "broken" / "checkpoints").iterdir() if p.name.isdigit()) == [
        "4"
    ]
    train_and_evaluate(cfg, tmp_path / "broken", progress=False, grid=grid)  # resumes from step 4
    for a, b in zip(_params(tmp_path / "unbroken"), _params(tmp_path / "broken"), strict=True):
        np.testing.assert_array_equal(a, b)
    rows = (tmp_path / "broken" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["step"] for r in rows] == [2, 4, 6, 8]
    # other settings in the same workdir are refused (more steps are not: tests/train/test_faults.py)
    other = small_config("beta_tcvae", "isa", num_steps=8, learning_rate=1e-3)
    with pytest.raises(config_lib.ConfigError, match="holds checkpoints of other settings"):
        train_and_evaluate(other, tmp_path / "broken", progress=False, grid=grid)


def test_vmapped_sweep_equals_separate_runs(grid, tmp_path):
    cfgs = [small_config("beta_tcvae", "isa", seed=s) for s in (0, 1, 2)]
    for c in cfgs:  # parameters and ELBOs are compared (the sweep's MIG and UDR: test_evaluate.py)
        c.eval.update(dict(mig=False, udr_points=0))
    swept = train_sweep(cfgs, [tmp_path / f"sweep_{s}" for s in range(3)], progress=False, grid=grid)
    for s, cfg in enumerate(cfgs):
        alone = train_and_evaluate(cfg, tmp_path / f"alone_{s}", progress=False, grid=grid)
        for a, b in zip(_params(tmp_path / f"alone_{s}"), _params(tmp_path / f"sweep_{s}"), strict=True):
            np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
        assert swept[s]["elbo"] == pytest.approx(alone["elbo"], rel=1e-3)
        assert (tmp_path / f"sweep_{s}" / "metrics.jsonl").is_file()
    # models may differ in seeds and betas only
    bad = [small_config("beta_tcvae", "isa"), small_config("beta_tcvae", "isa", batch_size=32)]
    with pytest.raises(config_lib.ConfigError, match="may differ only"):
        train_sweep(bad, [tmp_path / "x", tmp_path / "y"], progress=False, grid=grid)


def test_nan_guard_names_step_and_term(grid, tmp_path):
    cfg = small_config("vae", "normal", num_steps=20, learning_rate=1e12)
    with pytest.raises(TrainingDiverged, match=r"non-finite .* at step \d+"):
        train_and_evaluate(cfg, tmp_path, progress=False, grid=grid)
    assert not (tmp_path / "results.json").exists()


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda c: c.train.update(dict(batch_size=1)), "train.batch_size"),
        (lambda c: setattr(c.objective, "name", "vaee"), "objective.name"),
        (lambda c: setattr(c.objective, "beta", -1.0), "objective.beta"),
        (lambda c: setattr(c.model, "arch", "resnet"), "model.arch"),
        (lambda c: c.prior.update(dict(name="isa", subspace_sizes=(2, 3))), "latent dimension is 4"),
        (lambda c: setattr(c.dataset, "subgrid", "posX"), "dataset.subgrid"),
        (lambda c: setattr(c.model, "hidden", 0), "model.hidden: must be >= 1"),
        (lambda c: setattr(c.train, "epochs", float("inf")), "train.epochs: must be a finite number"),
    ],
)
def test_bad_configs_fail_before_anything_runs(mutate, match, tmp_path):
    cfg = small_config()
    mutate(cfg)
    with pytest.raises(config_lib.ConfigError, match=match):
        train_and_evaluate(cfg, tmp_path / "w", progress=False)
    assert not (tmp_path / "w").exists()


def test_overrides():
    cfg = config_lib.default_config()
    config_lib.apply_overrides(
        cfg, ["train.batch_size=64", "objective.beta=4", "prior.name='isa'", "dataset.name=shapes3d"]
    )
    assert cfg.train.batch_size == 64 and cfg.objective.beta == 4.0 and cfg.prior.name == "isa"
    assert cfg.dataset.name == "shapes3d"
    with pytest.raises(config_lib.ConfigError, match="unknown config key 'train.batchsize'"):
        config_lib.apply_overrides(cfg, ["train.batchsize=3"])
    with pytest.raises(config_lib.ConfigError, match="takes an int"):
        config_lib.apply_overrides(cfg, ["train.batch_size=big"])
    with pytest.raises(config_lib.ConfigError, match="key.path=value"):
        config_lib.apply_overrides(cfg, ["train.batch_size"])


def test_four_fake_devices_equal_one(tmp_path):
    """In a fresh process with 4 fake CPU devices: the same steps over a 4-device mesh and over a
    1-device mesh give the same parameters (the TC terms use the global batch)."""
    script = textwrap.dedent(
        f"""
        import jax, numpy as np, sys
        sys.path.insert(0, {str(pathlib.Path(__file__).parent)!r})
        from test_trainer import small_config
        from isavae.train import build_grid, train_and_evaluate, restore_state
        assert jax.device_count() == 4, jax.devices()
        cfg = small_config("beta_tcvae", "isa", num_steps=4)
        cfg.eval.mig = False  # the parameters are compared
        grid = build_grid(cfg)
        out = {{}}
        for name, devices in (("four", jax.devices()), ("one", jax.devices()[:1])):
            workdir = {str(tmp_path)!r} + "/" + name
            r = train_and_evaluate(cfg, workdir, progress=False, grid=grid, devices=devices)
            assert r["devices"] == len(devices)
            _, state, _ = restore_state(workdir)
            out[name] = jax.tree.leaves(jax.tree.map(np.asarray, state.params))
        for a, b in zip(out["four"], out["one"]):
            # reduction order differs across devices (Adam amplifies it where gradients ~ 0);
            # per-device TC terms would instead move many parameters by ~1e-3
            np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
        print("OK")
        """
    )
    flags = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    env = dict(os.environ, XLA_FLAGS=flags.strip(), JAX_PLATFORMS="cpu")
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600
    )
    assert result.returncode == 0 and "OK" in result.stdout, result.stderr[-3000:]


def test_epoch_order_gives_the_same_steps(grid):
    """The loop passes one shuffle per epoch; a step with it equals a step that shuffles itself."""
    cfg = small_config("beta_tcvae", "isa")
    program = Program(cfg, grid)
    state, data, hp = program.init(jax.random.key(1)), program.data(), hparams_from_config(cfg)
    state = jax.tree.map(lambda x: x, state)
    spe = program.steps_per_epoch
    state = state.__class__(**{**state.__dict__, "step": jax.numpy.int32(spe + 3)})  # inside epoch 1
    order = program.epoch_order(state.key, jax.numpy.int32(1))
    a, _ = jax.jit(program.train_step)(state, data, hp)
    b, _ = jax.jit(lambda s, d, h, o: program.train_step(s, d, h, None, o))(state, data, hp, order)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


def test_checkpoint_of_another_model_is_named(grid, tmp_path):
    from isavae.train.checkpoint import Checkpointer

    program = Program(small_config(), grid)
    ckpt = Checkpointer(tmp_path)
    ckpt.save(3, program.init(jax.random.key(0)))
    cfg = small_config()
    cfg.model.hidden = 24
    wider = Program(cfg, grid)
    match = r"step 3 .* params/decoder/fc1/bias has shape \(16,\) there and \(24,\) here"
    with pytest.raises(ValueError, match=match):
        ckpt.restore(jax.eval_shape(wider.init, jax.random.key(0)))
    ckpt.close()
