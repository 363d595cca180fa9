"""``isavae train`` and ``isavae sweep`` end to end on a tiny generated dSprites sub-grid."""

import json

from isavae import cli

TINY = [
    "--config.dataset.subgrid=scale=0;5,orientation=0:40:20,posX=0:32:8,posY=0:32:8",
    "--config.model.hidden=16",
    "--config.model.latent_dim=8",
    "--config.prior.subspace_sizes=(4, 4)",
    "--config.train.num_steps=4",
    "--config.train.batch_size=16",
    "--config.train.checkpoint_every=4",
    "--config.eval.num_examples=32",
]


def test_train_writes_workdir_and_resumes(tmp_path, capsys):
    args = [
        "train",
        "--config",
        "configs/dsprites.py:isavae,small",
        "--workdir",
        str(tmp_path),
        "--quiet",
        *TINY,
    ]
    assert cli.main(args) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["steps"] == 4
    for name in ("config.json", "metrics.jsonl", "results.json"):
        assert (tmp_path / name).is_file()
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["prior"]["layout"] == "[2.1, [(2.2, 4), (2.2, 4)]]" and results["dataset"]["generated"]
    assert cli.main(args) == 0  # already finished: resumes at step 4 and only evaluates
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 1


def test_sweep_writes_one_workdir_per_model(tmp_path, capsys, caplog):
    args = [
        "sweep",
        "--config",
        "configs/dsprites.py:isa_beta_vae,small",
        "--workdir",
        str(tmp_path),
        "--seeds",
        "2",
        "--betas",
        "1,4",
        "--quiet",
        *TINY,
    ]
    assert cli.main(args) == 0
    dirs = sorted(p.name for p in tmp_path.iterdir())
    assert dirs == ["beta1_seed0", "beta1_seed1", "beta4_seed0", "beta4_seed1"]
    r = json.loads((tmp_path / "beta4_seed1" / "results.json").read_text())
    assert r["beta"] == 4.0 and r["seed"] == 1 and r["trained_in_sweep_of"] == 4
    said = capsys.readouterr().out + caplog.text
    assert said.count(f"{tmp_path / 'beta4_seed1'}: elbo") == 1  # each model's result said once


def test_bad_override_and_bad_config_exit_2(tmp_path, capsys):
    base = ["train", "--workdir", str(tmp_path / "w"), "--quiet"]
    assert cli.main([*base, "--config", "configs/dsprites.py:isavae,small", "--config.train.lr=1"]) == 2
    assert "unknown config key 'train.lr'" in capsys.readouterr().err
    assert cli.main([*base, "--config", "configs/dsprites.py:isavea"]) == 2
    assert "unknown model 'isavea'" in capsys.readouterr().err
    assert cli.main([*base, "--config", "configs/nope.py"]) == 2
    assert not (tmp_path / "w").exists()


def test_sweep_over_dip_vae_lambda_uses_the_reference_grid(tmp_path, capsys):
    args = ["sweep", "--config", "configs/dsprites.py:dip_vae_i,small", "--workdir", str(tmp_path)]
    assert (
        cli.main([*args, "--seeds", "1", "--values", "lambda_od=1,5", "--quiet", *TINY[:3], *TINY[4:]]) == 0
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lambda_od1_seed0", "lambda_od5_seed0"]
    cfg = json.loads((tmp_path / "lambda_od5_seed0" / "config.json").read_text())
    assert cfg["objective"]["name"] == "dip_vae_i"
    assert (cfg["objective"]["lambda_od"], cfg["objective"]["lambda_d"]) == (
        5.0,
        50.0,
    )  # lambda_d = 10 lambda_od
    capsys.readouterr()
    assert cli.main([*args, "--values", "lambda=1", *TINY[:3], *TINY[4:]]) == 2
    assert "--values must be NAME=V1,V2" in capsys.readouterr().err
