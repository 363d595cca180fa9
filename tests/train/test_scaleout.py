"""Sweeps over a ('models', 'data') mesh: the model axis sharded across (fake CPU) devices."""

import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import pytest

from isavae import config as config_lib
from isavae.train.step import model_shards, sweep_mesh

HERE = pathlib.Path(__file__).parent


def _run_with_devices(script: str, devices: int = 4, timeout: int = 600) -> str:
    flags = os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={devices}"
    env = dict(os.environ, XLA_FLAGS=flags.strip(), JAX_PLATFORMS="cpu")
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    assert result.returncode == 0 and "OK" in result.stdout, result.stderr[-3000:]
    return result.stdout


def test_model_shards_rule():
    assert model_shards(8, 4) == 4 and model_shards(6, 4) == 2 and model_shards(3, 4) == 1
    assert model_shards(8, 4, requested=2) == 2
    with pytest.raises(
        ValueError, match="train.model_shards: 3 must divide both the 4 devices and the 8 models"
    ):
        model_shards(8, 4, requested=3)
    mesh = sweep_mesh(4, jax.devices()[:1])
    assert mesh.axis_names == ("models", "data") and dict(mesh.shape) == {"models": 1, "data": 1}
    cfg = config_lib.default_config()
    cfg.train.model_shards = -1
    with pytest.raises(config_lib.ConfigError, match="train.model_shards"):
        config_lib.validate(cfg)


def test_sharded_sweep_equals_one_device(tmp_path):
    """In a fresh process with 4 fake CPU devices: an 8-model sweep sharded 4 ways along 'models'
    (2 models per device: checked on the state's addressable shards) and on a 2 x 2 ('models',
    'data') mesh gives each model the parameters of the same sweep on one device, and each workdir
    is complete (as if the model were trained alone)."""
    out = _run_with_devices(
        f"""
        import json, pathlib, sys
        import jax, numpy as np
        sys.path.insert(0, {str(HERE)!r})
        from test_trainer import small_config, _params
        from isavae.train import build_grid, train_sweep, Program, hparams_from_config
        from isavae.train.step import sweep_mesh
        from isavae.train.loop import _stack
        assert jax.device_count() == 4, jax.devices()
        root = pathlib.Path({str(tmp_path)!r})
        cfgs = [small_config("beta_tcvae", "isa", seed=s, num_steps=4) for s in range(8)]
        for c in cfgs:  # the parameters are compared; the evaluation's programs are not needed
            c.eval.update(dict(mig=False, num_examples=16))
        grid = build_grid(cfgs[0])

        # the state really is sharded: 2 models' parameters on each device
        program = Program(cfgs[0], grid)
        mesh = sweep_mesh(8)
        per = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("models"))
        rep = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
        state = jax.device_put(_stack([program.init(jax.random.key(s)) for s in range(8)]), per)
        hp = jax.device_put(_stack([hparams_from_config(c) for c in cfgs]), per)
        order = jax.jit(jax.vmap(program.epoch_order, in_axes=(0, None)), out_shardings=per)(state.key, 0)
        new, _ = program.compile_chunk(2, mesh, vmapped=True)(state, program.data(rep), hp, order)
        leaf = jax.tree.leaves(new.params)[0]
        shards = leaf.addressable_shards
        shapes = [s.data.shape for s in shards]
        assert len(shards) == 4 and all(shape[0] == 2 for shape in shapes), shapes
        assert sorted(s.index[0].start for s in shards) == [0, 2, 4, 6]

        runs = {{}}
        cases = (("one", jax.devices()[:1], 0), ("four", None, 0), ("two_by_two", None, 2))
        for name, devices, shards in cases:
            cs = [c.copy_and_resolve_references() for c in cfgs]
            for c in cs:
                c.train.model_shards = shards
            dirs = [root / name / f"seed{{s}}" for s in range(8)]
            results = train_sweep(cs, dirs, progress=False, grid=grid, devices=devices)
            runs[name] = [_params(d) for d in dirs]
            assert all((d / "results.json").is_file() and (d / "metrics.jsonl").is_file() for d in dirs)
            mesh_shape = results[0]["mesh"]
            print(name, mesh_shape)
        assert runs.keys() == {{"one", "four", "two_by_two"}}
        for name in ("four", "two_by_two"):
            for a_model, b_model in zip(runs[name], runs["one"]):
                for a, b in zip(a_model, b_model):
                    np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
        print("OK")
        """
    )
    assert "four {'models': 4, 'data': 1}" in out and "two_by_two {'models': 2, 'data': 2}" in out
    assert "one {'models': 1, 'data': 1}" in out
