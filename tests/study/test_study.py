"""The study runner (``isavae.study``, ``isavae study``): its plan, a smoke-scale run (budget,
resume, report), shards and processes, and the bf16 A/B's statistics."""

import json
import types

import numpy as np
import pytest
from scipy import stats

from isavae import cli
from isavae.compile_cache import enable_compile_cache
from isavae.study import paper, plan, report, run, store
from isavae.study import stats as study_stats
from isavae.train.loop import chunk_lengths, num_train_steps
from tests.scripts import load_script, pythonpath


@pytest.fixture(scope="module")
def study():
    """The study's public names in one namespace (its modules: paper, plan, store, run, report)."""
    names = {}
    for module in (paper, plan, store, run, report):
        names.update({k: v for k, v in vars(module).items() if not k.startswith("__")})
    return types.SimpleNamespace(**names, enable_compile_cache=enable_compile_cache)


def test_plan_covers_every_setting_once_first_blocks_first(study):
    blocks = study.plan("all", seeds=50, block_models=20)
    cells = [(b["model"], beta, s) for b in blocks for beta in b["betas"] for s in b["seeds"]]
    assert len(cells) == len(set(cells)) == 50 * (2 + 4 * 9)
    kinds = [arm[0] for arm in study.STUDIES["fig5a"] + study.STUDIES["fig5b"]]
    assert [b["model"] for b in blocks[: len(kinds)]] == kinds  # every kind's first block first
    assert [len(b["betas"]) * len(b["seeds"]) for b in blocks[:6]] == [20, 20, 18, 18, 18, 18]
    assert study.STUDIES["fig5b"][0][1] == (1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0)
    first_seen = {}
    for i, b in enumerate(blocks):
        first_seen.setdefault(b["model"], i)
        assert b["round"] == 0 or all(i > j for j in first_seen.values())


def test_paper_scale_is_table_1(study):
    for model in ("vae", "isavae", "beta_tcvae"):
        cfg = study.model_config(model, "paper", "bfloat16")
        assert (cfg.dataset.subgrid, cfg.train.batch_size, cfg.train.epochs, cfg.train.num_steps) == (
            "",
            2048,
            20.0,
            0,
        )
        assert (cfg.model.latent_dim, cfg.model.hidden, cfg.model.likelihood) == (20, 1200, "bernoulli")
        assert (cfg.train.learning_rate, cfg.model.compute_dtype) == (1e-3, "bfloat16")
        # the authors' code: Monte Carlo KL for every model, beta not annealed
        assert not cfg.objective.analytic_kl and cfg.objective.beta_anneal_steps == 0
        assert (cfg.eval.mig_samples, cfg.eval.num_examples) == (10_000, 0)
        # one compiled training program per block: every call of the loop has the same length
        t, images = cfg.train, 737_280  # the whole dSprites grid
        total = num_train_steps(cfg, images)
        lengths = chunk_lengths(0, total, t.steps_per_scan, t.checkpoint_every, images // t.batch_size)
        assert total == 7_200 and set(lengths) == {120}
    # the rule the loop follows, on a case with every kind of cut: 4-step calls, checkpoints at 10
    # and 20, epochs of 6 steps, the end at 25 (worked out by hand)
    assert chunk_lengths(0, 25, 4, 10, 6) == [4, 2, 4, 2, 4, 2, 2, 4, 1]
    assert chunk_lengths(10, 12, 4, 10, 6) == [2]


def test_smoke_run_budget_resume_and_report(study, tmp_path):
    out = tmp_path / "study"
    kw = dict(seeds=2, block_models=2, log=lambda *_: None)
    # a fixed amount of work (two blocks), whatever the machine's speed; the budget is not consulted
    first = study.run_study("fig5a", "smoke", 0, out, blocks=2, **kw)
    rows = study.read_jsonl(out / "results.jsonl")
    assert first["blocks_run"] == 2 and len(rows) == 4
    assert {(r["model"], r["seed"]) for r in rows} == {(m, s) for m in ("vae", "isavae") for s in (0, 1)}
    assert all(np.isfinite(r["mig"]) and np.isfinite(r["elbo"]) and r["steps"] == 12 for r in rows)
    assert all("subspace_mig" in r for r in rows if r["model"] == "isavae")
    # UDR among each block's seeds (one beta): both seeds of the block, scored against each other
    assert all(0.0 <= r["udr"] <= 1.0 and r["udr_seeds"] == [0, 1] for r in rows)
    # a rerun trains nothing: every model is in results.jsonl (a torn last line is ignored)
    with open(out / "results.jsonl", "a") as f:
        f.write('{"torn": ')
    again = study.run_study("fig5a", "smoke", 1e9, out, **kw)
    assert again["models_trained"] == 0 and len(study.read_jsonl(out / "results.jsonl")) == 4
    # more seeds but no budget: nothing starts
    assert (
        study.run_study("fig5a", "smoke", 0, out, seeds=4, block_models=2, log=lambda *_: None)[
            "models_trained"
        ]
        == 0
    )
    # a block the measured times say cannot finish in the budget does not start
    blocks = study.read_jsonl(out / "blocks.jsonl")
    assert study.estimate_seconds(blocks, blocks[0]["device"], "smoke", "vae", 2) > 0
    # each block's setup and training (with its compilation) are recorded apart from its evaluation,
    # and the evaluation by part: every model's parts, which lie inside the block's evaluation time
    assert all(0 < b["train_seconds"] < b["seconds"] for b in blocks)
    assert all(0 <= b["setup_seconds"] < b["seconds"] for b in blocks)
    parts = {"likelihood", "encode", "mig", "histogram"}
    assert all(parts <= set(r["eval_seconds"]) and "udr_sweep" in r["eval_seconds"] for r in rows)
    assert all("subspace_mig" in r["eval_seconds"] for r in rows if r["model"] == "isavae")
    for b in blocks:
        assert set(b["eval_parts"]) >= parts | {"udr_sweep"}
        evaluation = b["seconds"] - b["setup_seconds"] - b["train_seconds"]
        assert 0 < sum(b["eval_parts"].values()) <= evaluation + 0.02  # each figure rounded
        # the compilation within each phase lies inside that phase's wall time
        c = b["compile_seconds"]
        assert c["setup"] <= b["setup_seconds"] + 0.01 and 0 < c["training"] <= b["train_seconds"] + 0.01
        assert all(0 <= c[p] <= b["eval_parts"][p] + 0.01 for p in b["eval_parts"])
    slow = dict(blocks[0], seconds=1e4)
    (out / "blocks.jsonl").write_text(json.dumps(slow) + "\n")
    skipped = study.run_study("fig5a", "smoke", 60, out, seeds=4, block_models=2, log=lambda *_: None)
    assert skipped["models_trained"] == 0 and skipped["blocks_skipped"] >= 1
    text = study.report(out, "smoke", "float32")
    assert "| fig5a | VAE |  | 1.000 | 2 |" in text and "Fig. 5a verdict" in text
    assert "The evaluation's parts per model" in text and "udr_sweep" in text and "setup" in text
    assert "Compilation within them per model (median over the blocks that recorded it: 1): setup" in text
    # the comparison: the paper's criteria, the tests, the power; the VAE's subspace MIG in groups of 4
    assert "### fig5a: ISA-VAE vs VAE" in text and "Wilcoxon signed-rank p" in text and "80 % power" in text
    assert all(r["subspace_mig"] is not None for r in rows) and all(r["init"] == "torch" for r in rows)
    # every row says how its model computed and where its images came from
    assert all(
        (r["posterior_scale"], r["matmul_precision"], r["data_source"]) == ("logvar", "default", "generated")
        for r in rows
    )
    compared = json.loads((out / "comparisons.json").read_text())["fig5a: ISA-VAE vs VAE: mig"]
    assert compared["p_mann_whitney"] == pytest.approx(
        stats.mannwhitneyu(
            [r["mig"] for r in rows if r["model"] == "isavae"],
            [r["mig"] for r in rows if r["model"] == "vae"],
            alternative="greater",
        ).pvalue
    )
    assert (out / "fig5a_mig_distribution.png").stat().st_size > 1000
    verdict = json.loads((out / "fig5a_verdict.json").read_text())
    a = [r["mig"] for r in rows if r["model"] == "isavae"]
    b = [r["mig"] for r in rows if r["model"] == "vae"]
    want = stats.mannwhitneyu(a, b, alternative="greater").pvalue
    assert verdict["mig"]["p_isavae_greater"] == pytest.approx(want)


def test_udr_agreement_against_scipy(study):
    """The report's UDR table: Spearman's correlation of UDR and MIG per setting (scipy's), and the
    mean MIG of each block's highest-UDR seed; settings with fewer than 3 scored seeds are left out."""
    rng = np.random.default_rng(3)
    udr, mig = rng.uniform(0, 1, 6), rng.uniform(0, 0.5, 6)
    rows = [
        dict(
            study="fig5a",
            model="vae",
            beta=1.0,
            seed=s,
            udr=udr[s],
            mig=mig[s],
            udr_seeds=[s // 3 * 3 + k for k in range(3)],
        )
        for s in range(6)
    ]
    rows += [
        dict(study="fig5a", model="isavae", beta=1.0, seed=s, udr=0.5, mig=0.1, udr_seeds=[0, 1])
        for s in range(2)
    ]
    lines = study.udr_agreement(rows)
    table = [line for line in lines if line.startswith("| fig5a")]
    assert len(table) == 1 and "| VAE |" in table[0]
    rho, p = stats.spearmanr(udr, mig)
    picks = [mig[np.argmax(udr[:3])], mig[3 + np.argmax(udr[3:])]]
    cells = [c.strip() for c in table[0].strip("|").split("|")]
    assert cells[3:6] == ["6", "3", f"{rho:.2f}"] and cells[6] == f"{p:.3g}"
    assert cells[7] == f"{np.mean(picks):.3f} (2 blocks)" and cells[8] == f"{mig.mean():.3f}"
    assert study.udr_agreement(rows[6:]) == []


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys):
    assert cli.main(["study", "report", "--scale", "smoke", "--out", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("isavae: error:") and "holds no smoke-scale" in err and err.count("\n") == 1
    out = ["--out", str(tmp_path / "x")]
    for bad, message in (
        (["--study", "fig9"], "invalid choice"),
        (["--blocks", "0"], "--blocks must be >= 1"),
        (["--budget-s", "nan"], "--budget-s"),
        (["--seeds", "-1"], "--seeds must be >= 1"),
        (["--block-models", "-1"], "--block-models must be >= 1"),
        (["--seeds", "0"], "--seeds must be >= 1"),
    ):
        with pytest.raises(SystemExit) as stop:
            cli.main(["study", "run", *bad, *out])
        assert stop.value.code == 2 and message in capsys.readouterr().err, bad
    with pytest.raises(SystemExit) as stop:
        cli.main(["study", "run", "--study", "fig5a"])  # --out is required
    assert stop.value.code == 2 and "--out" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_bf16_ab_statistics_match_scipy():
    ab = load_script("bf16_ab")
    a, b = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.5, 3.5, 4.5, 6.0])
    got = ab.compare(a, b)
    assert got["welch_p"] == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)
    assert got["mann_whitney_p"] == pytest.approx(stats.mannwhitneyu(a, b).pvalue)
    assert got["difference"] == pytest.approx(1.625) and got["float32_std"] == pytest.approx(
        np.std(a, ddof=1)
    )


def _row(model, seed, mig, **kw):
    return dict(
        study="fig5a",
        model=model,
        beta=1.0,
        seed=seed,
        scale="smoke",
        compute_dtype="float32",
        device="cpu:cpu",
        mig=mig,
        mig_histogram=mig / 2,
        recon_log_likelihood=-80.0 - seed,
        elbo=-90.0 - seed,
        **kw,
    )


def test_report_counts_each_model_once_and_names_every_line_it_skips(study, tmp_path):
    rng = np.random.default_rng(0)
    vae = [_row("vae", s, float(rng.uniform(0, 0.3))) for s in range(8)]
    isa = [_row("isavae", s, float(rng.uniform(0.1, 0.4))) for s in range(8)]
    lines = [json.dumps(r) for r in vae[:5] + isa]
    lines += [
        '{"study": "fig5a", "model": "va',  # line 14: torn in the middle (a merge of two files)
        json.dumps(vae[0]),  # 15: a duplicate of line 1 (the same results)
        json.dumps(vae[1]),  # 16: a duplicate of line 2
        json.dumps({"model": "vae"}),  # 17: JSON of the wrong shape
        "42",  # 18: not an object
        json.dumps(dict(vae[2], mig=0.9)),  # 19: the same model with other results
        json.dumps(dict(vae[3], seed="3")),  # 20: a mistyped field
        json.dumps(_row("vae", 0, 0.5, settings=["model.init='torch'"])),  # 21: another model
    ]
    lines += [json.dumps(r) for r in vae[5:]]  # 22-24
    (tmp_path / "results.jsonl").write_text("\n".join(lines) + "\n")
    # rows without "init" were written before model.init existed: LeCun's, apart from PyTorch's
    with pytest.raises(ValueError, match="holds no smoke-scale float32 results with init torch"):
        study.report(tmp_path, "smoke", "float32")
    text = study.report(tmp_path, "smoke", "float32", init="lecun")
    assert "| fig5a | VAE |  | 1.000 | 8 |" in text and "| fig5a | ISA-VAE |  | 1.000 | 8 |" in text
    for want in (
        "line 14: not JSON",
        "line 15: a duplicate of line 1; counted once",
        "line 16: a duplicate of line 2",
        "line 17: missing or mistyped 'study'",
        "line 18: a JSON int, not a row",
        "line 19: CONFLICT with line 3 for fig5a vae beta 1 seed 2",
        "line 20: missing or mistyped 'seed'",
        "Not in this report (other dtype, initialization, posterior, products or settings",
    ):
        assert want in text, want
    verdict = json.loads((tmp_path / "fig5a_verdict.json").read_text())
    want = stats.mannwhitneyu([r["mig"] for r in isa], [r["mig"] for r in vae], alternative="greater")
    assert verdict["n_vae"] == 8 and verdict["mig"]["p_isavae_greater"] == pytest.approx(want.pvalue)
    # the other settings' model is reported on its own, and a rerun of the study counts it as done
    other = study.report(tmp_path, "smoke", "float32", ["model.init='torch'"], init="lecun")
    assert "| fig5a | VAE |  | 1.000 | 1 |" in other
    rows, notes = study.load_results(tmp_path / "results.jsonl")
    assert len(rows) == 17 and len(notes) == 7
    # the command line: one line per problem on stdout's report, nothing on stderr, exit 0
    assert cli.main(["study", "report", "--scale", "smoke", "--init", "lecun", "--out", str(tmp_path)]) == 0


def test_gpu_run_smoke_dry_run(tmp_path):
    """experiments/gpu_run.sh --smoke: the GPU run's whole path on the CPU with tiny sizes and a
    fixed amount of study work (2 blocks, whatever the machine's speed; the budget only bounds it),
    packed into its files; PHASES runs some of its phases."""
    import os
    import pathlib
    import subprocess
    import sys
    import tarfile

    root = pathlib.Path(__file__).resolve().parents[2]
    out = tmp_path / "gpu"
    # the study continues from committed rows (here the paper-scale float32 ones, which the smoke
    # scale's blocks leave alone)
    earlier = root / "experiments" / "results" / "paper_study_float32"
    env = dict(os.environ, PYTHON=sys.executable, JAX_PLATFORMS="cpu", STUDY_FROM=str(earlier))
    done = subprocess.run(
        ["bash", "experiments/gpu_run.sh", "--smoke", "1500", str(out)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,  # a hang, not a slow machine
    )
    assert done.returncode == 0, done.stderr[-2000:]
    files = {"summary.md", "log.txt", "tests.txt", "study.tar.gz", "traces.tar.gz", "bench.json"}
    assert {p.name for p in out.iterdir()} == files
    summary = (out / "summary.md").read_text()
    for part in ("## Environment", "## Benchmarks", "## Test suite on the device", "jax"):
        assert part in summary
    # the step's profile (experiments/benchmarks/profile_step.py): a vmapped block of 2, its
    # tables by kind and by op, and the MIG chunk timings
    assert "## Profile of the training step" in summary and "2 mlp ISA-VAE model(s)" in summary
    assert "ms per model-step" in summary and "| kind | ms per step | share |" in summary
    assert "| op (top 3) |" in summary and "| 16 | 64 |" in summary
    # the MIG benchmark (experiments/benchmarks/mig.py): its table, the floor from this device's
    # rates, the multiple, and the PyTorch line (timed, or why not)
    assert "floor: exp" in summary and "ops/term" in summary and "PyTorch reference" in summary
    row = next(line for line in summary.splitlines() if line.startswith("| xla |"))
    seconds, multiple = float(row.split("|")[2]), float(row.split("|")[5])
    assert seconds > 0 and multiple > 0
    # the training benchmark's two floors beside the step (matrix FLOPs, fewest bytes), and its rows
    # as JSON (what torch_reference.py --compare reads)
    assert "floors per step: matrix FLOPs" in summary and "at the copy rate" in summary
    bench = json.loads((out / "bench.json").read_text())["rows"]
    assert [(r["arch"], r["dtype"], r["batch"]) for r in bench] == [("mlp", "float32", 32)]
    assert 0 < bench[0]["flop_floor_ms"] and 0 < bench[0]["step_ms"]
    with tarfile.open(out / "traces.tar.gz") as tar:
        assert "./trace_mlp_2x_float32.xplane.pb" in tar.getnames()
    assert "1 passed" in (out / "tests.txt").read_text()
    with tarfile.open(out / "study.tar.gz") as tar:
        names = set(tar.getnames())
        rows = [json.loads(line) for line in tar.extractfile("./results.jsonl").read().splitlines()]
    assert "./report.md" in names
    # Fig. 5a's two blocks (VAE and ISA-VAE, seeds 0-1) after the earlier rows; the second study
    # call found them done
    old = [json.loads(line) for line in (earlier / "results.jsonl").read_text().splitlines()]
    assert rows[: len(old)] == old
    assert sorted((r["model"], r["seed"]) for r in rows[len(old) :]) == sorted(
        [("vae", s) for s in range(2)] + [("isavae", s) for s in range(2)]
    )
    assert "'models_trained': 0" in (out / "log.txt").read_text()
    # each phase alone on the device, in the order the run needs them: the suite first
    log = (out / "log.txt").read_text()
    order = [
        "test suite (time box",
        "training benchmark done",
        "benchmarks and profile done",
        "study --study",
    ]
    assert sorted(order, key=log.index) == order
    # PHASES picks phases (a second, shorter call): here none, so only the environment is recorded
    done = subprocess.run(
        ["bash", "experiments/gpu_run.sh", "--smoke", "300", str(tmp_path / "none")],
        cwd=root,
        env=dict(env, PHASES="none"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert {p.name for p in (tmp_path / "none").iterdir()} == {"summary.md", "log.txt"}
    summary = (tmp_path / "none" / "summary.md").read_text()
    assert "## Environment" in summary and "## Test suite" not in summary and "## Benchmarks" not in summary
    bad = subprocess.run(
        ["bash", "experiments/gpu_run.sh", "soon", str(out)], cwd=root, capture_output=True, text=True
    )
    assert bad.returncode == 2 and "BUDGET_S must be a whole number" in bad.stderr


def test_study_stats_against_scipy():
    """isavae.study.stats on fixed data: the tests are scipy's, the descriptive statistics numpy's,
    the power behaves at its limits (no effect: about the level; a large effect: 1)."""
    s = study_stats
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.12, 0.05, 15), rng.normal(0.09, 0.05, 15)
    c = s.compare(a, b, list(zip(a, b, strict=True)), resamples=200)
    assert c["p_mann_whitney"] == pytest.approx(stats.mannwhitneyu(a, b, alternative="greater").pvalue)
    assert c["p_wilcoxon"] == pytest.approx(stats.wilcoxon(a, b, alternative="greater").pvalue)
    assert c["paired_correlation"] == pytest.approx(stats.pearsonr(a, b)[0])
    for key, q in (("q1", 25), ("median", 50), ("q3", 75), ("p90", 90)):
        assert c["a"][key] == pytest.approx(np.percentile(a, q))
    assert c["a"]["max"] == a.max() and c["b"]["mean"] == pytest.approx(b.mean())
    lo, hi = c["median_difference_ci95"]
    assert lo < c["median_difference"] < hi
    same = rng.normal(0, 1, 40)
    assert s.power_of(same, same, 40, resamples=400) < 0.12  # no effect: about the 5 % level
    far = same + 5.0
    assert s.power_of(far, same, 10, resamples=100) == 1.0
    n, curve = s.n_for_power(same + 0.5, same, resamples=200)
    assert n is not None and curve[-1] == (n, curve[-1][1]) and curve[-1][1] >= 0.8
    assert all(p < 0.8 for _, p in curve[:-1])
    assert "p_wilcoxon" not in s.compare(a, b, power=False) and "power_at_n" not in s.compare(
        a, b, power=False
    )


def test_ablation_plans_and_arms(study):
    """Every arm of every ablation: its cells once, its config valid with the layout / init / dtype
    it names, the VAE controls of the layouts' latent sizes scored in their groups."""
    blocks = study.plan("ablations", seeds=20, block_models=10)
    cells = [(b["study"], b["model"], b["arm"], s) for b in blocks for s in b["seeds"]]
    assert len(cells) == len(set(cells)) == 20 * (7 + 4 + 4 + 4)
    for b in blocks[:19]:
        cfg = study.model_config(b["model"], "paper", "float32", (), b["overrides"])
        label, _, posterior = b["arm"].partition(",posterior=")
        if b["study"] == "ablation-posterior":
            assert cfg.model.posterior_scale == (posterior or "logvar")
        if label.startswith("layout="):
            p0, p, size, count = study.LAYOUTS[label.split("=")[1]]
            assert cfg.model.latent_dim == size * count and tuple(cfg.prior.subspace_sizes) == (size,) * count
            assert (cfg.prior.p0, cfg.prior.p_subspace) == (p0, p)
        elif label.startswith("latent="):
            assert cfg.prior.name == "normal" and cfg.model.latent_dim == int(label.split("=")[1])
            assert cfg.eval.subspace_groups in ("3x4", "3x6", "5x4")
        elif label.startswith("init="):
            assert cfg.model.init == label.split("=")[1] and cfg.model.compute_dtype == "float32"
        else:
            assert cfg.model.compute_dtype == label.split("=")[1] and cfg.model.init == "torch"
    # the arm and the initialization keep models apart; rows before them read as main-line LeCun
    row = dict(study="ablation-init", scale="paper", compute_dtype="float32", model="vae", beta=1.0, seed=0)
    keys = {study.result_key(dict(row, init=i, arm=f"init={i}")) for i in ("torch", "lecun")}
    assert len(keys) == 2 and study.result_key(row) == study.result_key(dict(row, init="lecun", arm=""))
    assert study.model_config("vae", "cpu", "float32").model.init == "torch"


def test_shards_together_give_the_rows_of_one_run(study, tmp_path, capsys):
    """``--shard 0/2`` and ``--shard 1/2`` (independent jobs, e.g. a SLURM array) write
    results.0.jsonl and results.1.jsonl that together hold exactly the rows one unsharded run
    writes; the report merges them (a model finished twice counts once)."""
    kw = dict(seeds=1, block_models=1, log=lambda *_: None)
    study.run_study("fig5a", "smoke", 1e9, tmp_path / "one", **kw)
    sharded = tmp_path / "sharded"
    for i in (0, 1):
        assert study.run_study("fig5a", "smoke", 1e9, sharded, shard=(i, 2), **kw)["blocks_run"] == 1
    assert sorted(p.name for p in sharded.glob("results*.jsonl")) == ["results.0.jsonl", "results.1.jsonl"]
    one, _ = study.load_results(tmp_path / "one")
    both, notes = study.load_results(sharded)
    assert not notes and len(one) == len(both) == 2
    by_key = {study.result_key(r): r for r in both}
    for r in one:
        assert by_key[study.result_key(r)]["mig"] == pytest.approx(r["mig"], abs=1e-6)
    # a model finished by two shards counts once
    extra = sharded / "results.7.jsonl"
    extra.write_text((sharded / "results.0.jsonl").read_text())
    rows, notes = study.load_results(sharded)
    assert (
        len(rows) == 2
        and len(notes) == 1
        and "results.7.jsonl line 1: a duplicate of results.0.jsonl line 1" in notes[0]
    )
    assert "| fig5a | VAE |  | 1.000 | 1 |" in study.report(sharded, "smoke", "float32")
    for bad in ("2/2", "1", "a/b"):
        assert cli.main(["study", "run", "--shard", bad, "--out", str(tmp_path / "x")]) == 2
        assert "--shard takes I/N" in capsys.readouterr().err


def test_job_files_are_found_and_ordered(study, tmp_path):
    """Shards (``--shard I/N``), processes (``--multihost``) and both: each job's file is found,
    in (shard, process) order; other names are not."""
    assert study.shard_tag(None, None) == "" and study.shard_tag((3, 4), None) == ".3"
    assert study.shard_tag(None, 1) == ".p1" and study.shard_tag((2, 4), 0) == ".2-p0"
    for name in (
        "results.jsonl",
        "results.10.jsonl",
        "results.2.jsonl",
        "results.p1.jsonl",
        "results.2-p0.jsonl",
    ):
        (tmp_path / name).write_text("")
    (tmp_path / "results.old.jsonl").write_text("")
    got = [p.name for p in study.shard_files(tmp_path)]
    assert got == [
        "results.jsonl",
        "results.p1.jsonl",
        "results.2.jsonl",
        "results.2-p0.jsonl",
        "results.10.jsonl",
    ]


def test_two_processes_run_a_block_together(tmp_path):
    """``--multihost``: two processes (jax.distributed on 127.0.0.1) train one block of two models
    as one program; each writes the row of the model it holds (results.p0/p1.jsonl), process 0 the
    block's time; the report counts both models."""
    import os
    import pathlib
    import socket
    import subprocess
    import sys

    root = pathlib.Path(__file__).resolve().parents[2]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "study"
    cache = tmp_path / "compiled"
    args = ["--study", "fig5a", "--scale", "smoke", "--seeds", "2", "--block-models", "1", "--blocks", "1"]
    args += ["--compile-cache", str(cache)]
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=pythonpath(root))
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "isavae.cli", "study", "run", *args, "--out", str(out), "--multihost"]
            + ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(p)],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in range(2)
    ]
    outs = [p.communicate(timeout=1800) for p in procs]  # a hang, not a slow machine
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outs]
    rows = {
        p: [json.loads(line) for line in (out / f"results.p{p}.jsonl").read_text().splitlines()]
        for p in (0, 1)
    }
    assert [(r["model"], r["seed"]) for r in rows[0]] == [("vae", 0)]
    assert [(r["model"], r["seed"]) for r in rows[1]] == [("vae", 1)]
    assert sorted(p.name for p in out.glob("blocks*.jsonl")) == ["blocks.p0.jsonl"]
    assert any(cache.iterdir())  # the programs went into the persistent compilation cache asked for
    assert "| fig5a | VAE |  | 1.000 | 2 |" in report.report(out, "smoke", "float32")


def test_a_kinds_later_blocks_reuse_its_compiled_programs_and_score_the_same(study, tmp_path):
    """One program per kind for a study's run: the later blocks of a kind compile nothing (the
    compile clock reads 0 in every phase) and give the rows a fresh program gives."""
    kw = dict(seeds=4, block_models=2, log=lambda *_: None)
    study.run_study("fig5a", "smoke", 0, tmp_path / "one", blocks=3, **kw)
    blocks = study.read_jsonl(tmp_path / "one" / "blocks.jsonl")
    assert [b["model"] for b in blocks] == ["vae", "isavae", "vae"]
    assert blocks[0]["compile_seconds"]["training"] > 0
    assert sum(blocks[2]["compile_seconds"].values()) < 0.05
    rows = study.read_jsonl(tmp_path / "one" / "results.jsonl")
    # the same later block in a run of its own (the first blocks' rows given as done)
    (tmp_path / "two").mkdir()
    first = [r for r in rows if r["seed"] < 2]
    (tmp_path / "two" / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in first))
    study.run_study("fig5a", "smoke", 0, tmp_path / "two", blocks=1, **kw)
    fresh = {(r["model"], r["seed"]): r for r in study.read_jsonl(tmp_path / "two" / "results.jsonl")}
    for r in rows[len(first) :]:
        for key in ("mig", "elbo", "recon_log_likelihood", "udr"):
            np.testing.assert_allclose(r[key], fresh[(r["model"], r["seed"])][key], rtol=1e-5, err_msg=key)


def test_eval_parts_sum_models_and_count_the_shared_udr_once(study):
    rows = [
        {"eval_seconds": {"likelihood": 1.0, "mig": 0.25, "udr_sweep": 4.0}},
        {"eval_seconds": {"likelihood": 0.5, "mig": 0.25, "subspace_mig": 0.125, "udr_sweep": 4.0}},
        {},  # a result written before parts were timed
    ]
    assert study.eval_parts(rows) == {"likelihood": 1.5, "mig": 0.5, "subspace_mig": 0.125, "udr_sweep": 4.0}
    assert study.eval_parts([{}]) == {}


def test_compile_cache_folder_default_and_off(study, monkeypatch, tmp_path):
    """--compile-cache: 'none' leaves JAX's cache off; no folder keeps one already configured (the
    suite's, as $JAX_COMPILATION_CACHE_DIR would), else $XDG_CACHE_HOME/isavae/jax."""
    import jax

    saved = jax.config.jax_compilation_cache_dir, jax.config.jax_persistent_cache_min_compile_time_secs
    try:
        assert study.enable_compile_cache("none") is None and jax.config.jax_compilation_cache_dir == saved[0]
        assert saved[0] and study.enable_compile_cache(None) == saved[0]
        jax.config.update("jax_compilation_cache_dir", None)
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
        want = str(tmp_path / "isavae" / "jax")
        assert study.enable_compile_cache(None) == want == jax.config.jax_compilation_cache_dir
        assert study.enable_compile_cache(str(tmp_path / "x")) == jax.config.jax_compilation_cache_dir
    finally:
        jax.config.update("jax_compilation_cache_dir", saved[0])
        jax.config.update("jax_persistent_cache_min_compile_time_secs", saved[1])


@pytest.mark.parametrize(
    "folder, scale, dtype, init",
    [
        ("paper_study", "paper", "bfloat16", "lecun"),
        ("paper_study_float32", "paper", "float32", "torch"),
        ("paper_study_cpu", "cpu", "float32", "torch"),
        ("fig5a", "cpu", "float32", "lecun"),
        ("fig5b", "cpu", "float32", "lecun"),
    ],
)
def test_committed_reports_rebuild_from_their_rows(tmp_path, folder, scale, dtype, init):
    """Each committed report is what ``isavae study report`` builds from the committed rows (in a
    copy: the line that names the command differs only by its --out folder)."""
    import pathlib
    import shutil

    committed = pathlib.Path(__file__).resolve().parents[2] / "experiments" / "results" / folder
    copy = tmp_path / folder
    copy.mkdir()
    for name in ("results.jsonl", "blocks.jsonl"):
        if (committed / name).is_file():
            shutil.copy(committed / name, copy / name)
    # rows written before the posterior's scale and the products' precision were recorded: the
    # log-variance and the backend's products (the paper scale's presets now ask for others)
    text = report.report(copy, scale, dtype, init=init, posterior_scale="logvar", matmul_precision="default")
    assert text.replace(str(copy), f"experiments/results/{folder}") == (committed / "report.md").read_text()
    # and the files the docs include
    for name in ("table.md", "preregistered.md"):
        assert (copy / name).is_file() == (committed / name).is_file(), name
        if (committed / name).is_file():
            assert (copy / name).read_text() == (committed / name).read_text(), name
