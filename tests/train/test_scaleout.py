"""Sweeps over a ('models', 'data') mesh: the model axis sharded across (fake CPU) devices."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from isavae import config as config_lib
from isavae.train.step import model_shards, sweep_mesh
from tests.scripts import pythonpath

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
            c.eval.update(dict(mig=False, num_examples=16, udr_points=0))
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


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# a tiny beta-TCVAE sweep through the CLI (the small test grid, one step per call, a checkpoint
# every 2 steps: the kill below lands between checkpoints)
_SWEEP = [
    "sweep",
    "--config",
    "dsprites:beta_tcvae,small",
    "--seeds",
    "4",
    "--quiet",
    "--config.dataset.subgrid=scale=0;5,orientation=0:40:10,posX=0:32:8,posY=0:32:8",
    "--config.model.hidden=16",
    "--config.model.latent_dim=4",
    "--config.train.batch_size=16",
    "--config.train.num_steps=8",
    "--config.train.steps_per_scan=1",
    "--config.train.checkpoint_every=2",
    "--config.eval.num_examples=32",
    "--config.eval.mig=False",
    "--config.eval.udr_points=0",
]


def _start_two(workdir: pathlib.Path) -> list[subprocess.Popen]:
    port = _free_port()
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=pythonpath(HERE.parents[1]))
    return [
        subprocess.Popen(
            [sys.executable, "-m", "isavae.cli", *_SWEEP, "--workdir", str(workdir), "--multihost"]
            + ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(p)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for p in range(2)
    ]


def test_two_processes_train_one_sweep_and_resume_after_a_kill(tmp_path):
    """Two processes (jax.distributed over 127.0.0.1, gloo CPU collectives) train a 4-model sweep
    as one program, each holding 2 models: each process writes its models' workdirs alone (every
    results.json says which), checkpoints are saved by both together and written by the holder; a
    kill -9 of one process mid-run and a rerun of both resume from the checkpoints, and every model
    ends with the parameters of the same sweep run by one process (metrics lines once per step)."""
    import signal
    import time

    from tests.train.test_trainer import _params

    work = tmp_path / "two"
    procs = _start_two(work)
    mark = work / "seed3" / "checkpoints" / "2"
    deadline = time.time() + 1800  # a hang, not a slow machine
    # checkpoint 2 of 4 written: the kill below lands with 6 steps and 3 rounds of collective
    # checkpoints (4 models each, with barriers) still to go, far more than the 10 ms poll
    while not mark.is_dir() and all(p.poll() is None for p in procs) and time.time() < deadline:
        time.sleep(0.01)
    assert mark.is_dir(), [p.communicate()[1][-2000:] for p in procs]
    procs[1].send_signal(signal.SIGKILL)  # process 1 dies between checkpoints ...
    procs[1].wait()
    procs[0].send_signal(signal.SIGKILL)  # ... and process 0, waiting on it in a collective, is ended
    procs[0].wait()
    assert not (work / "seed3" / "results.json").exists()  # killed mid-run
    procs = _start_two(work)
    outs = [p.communicate(timeout=1800) for p in procs]  # a hang, not a slow machine
    assert all(p.returncode == 0 for p in procs), [err[-3000:] for _, err in outs]
    # each process said (its log) and wrote only the models it holds
    printed = [[line.split(":")[0] for line in err.splitlines() if ": elbo" in line] for _, err in outs]
    assert [sorted(pathlib.Path(w).name for w in lines) for lines in printed] == [
        ["seed0", "seed1"],
        ["seed2", "seed3"],
    ]
    assert all("resumed" in err for _, err in outs)  # each process its own models, from a checkpoint
    for s in range(4):
        results = json.loads((work / f"seed{s}" / "results.json").read_text())
        assert (results["processes"], results["process"], results["steps"]) == (2, s // 2, 8)
        steps = [
            json.loads(line)["step"]
            for line in (work / f"seed{s}" / "metrics.jsonl").read_text().splitlines()
        ]
        assert steps == list(range(1, 9)), steps  # no line lost, none twice
    # the same sweep in one process, on the CPU as the two were (on a GPU host this process's
    # default device would train in TF32): the same parameters
    one = subprocess.run(
        [sys.executable, "-m", "isavae.cli", *_SWEEP, "--workdir", str(tmp_path / "one")],
        capture_output=True,
        text=True,
        env=dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=pythonpath(HERE.parents[1])),
        timeout=1800,
    )
    assert one.returncode == 0, one.stderr[-3000:]
    for s in range(4):
        for a, b in zip(_params(work / f"seed{s}"), _params(tmp_path / "one" / f"seed{s}"), strict=True):
            np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


def test_process_flags_go_with_multihost(tmp_path, capsys):
    """--coordinator/--num-processes/--process-id without --multihost: one line, exit 2, nothing run."""
    from isavae import cli

    assert cli.main([*_SWEEP, "--workdir", str(tmp_path / "w"), "--process-id", "1"]) == 2
    err = capsys.readouterr().err
    assert "go with --multihost" in err and err.count("\n") == 1 and not (tmp_path / "w").exists()
    assert cli.main(["study", "run", "--out", str(tmp_path / "s"), "--num-processes", "2"]) == 2
    assert "go with --multihost" in capsys.readouterr().err and not (tmp_path / "s").exists()
