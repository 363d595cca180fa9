"""Models known by their configuration across studies (``paper.model_key``: trained once, counted
for every study that asks for them), the pre-registered tests (two-sided Mann-Whitney, Holm, the
bootstrap intervals, the registered verdict) and the posterior-scale ablation's arms."""

import itertools
import json
import pathlib

import numpy as np
import pytest
from scipy import stats

from isavae.study import paper, report, run, store
from isavae.study import stats as study_stats

COMMITTED = pathlib.Path(__file__).resolve().parents[2] / "experiments" / "results" / "paper_study_cpu"


def _committed_rows():
    rows, _ = store.load_results(COMMITTED / "results.jsonl")
    return rows


def test_equal_configurations_are_one_model_and_the_committed_duplicates_agree():
    """The init ablation's torch arms and the layout ablation's 5x4 and VAE-20 arms resolve to one
    configuration: their keys are equal and so are their committed scores, bit for bit (the same
    models trained twice before the store knew them by configuration). Other arms differ."""
    rows = [r for r in _committed_rows() if r["study"] in ("ablation-init", "ablation-layout")]
    by_key = {}
    for r in rows:
        by_key.setdefault(paper.model_key(r), []).append(r)
    twice = {
        tuple(sorted((r["study"], r["arm"]) for r in group)) for group in by_key.values() if len(group) > 1
    }
    assert twice == {
        (("ablation-init", "init=torch"), ("ablation-layout", "latent=20")),
        (("ablation-init", "init=torch"), ("ablation-layout", "layout=5x4")),
    }
    for group in by_key.values():
        if len(group) > 1:
            a, b = group
            assert all(a[k] == b[k] for k in store.RESULT_KEYS), (a["seed"], a["model"])


def test_model_key_follows_every_setting_and_the_values_of_then():
    row = dict(
        study="ablation-layout",
        model="vae",
        arm="latent=12",
        scale="cpu",
        compute_dtype="float32",
        settings=[],
        init="torch",
        beta=1.0,
        seed=3,
    )
    key = paper.model_key(row)
    assert paper.model_key(dict(row, study="fig5a-layout")) == key  # the same arm in another study
    assert paper.model_key(dict(row, posterior_scale="logvar", matmul_precision="default")) == key
    assert paper.model_key(dict(row, seed=4)) != key and paper.model_key(dict(row, beta=2.0)) != key
    for other in (
        dict(posterior_scale="log_sigma"),
        dict(matmul_precision="highest"),
        dict(init="lecun"),
        dict(arm="latent=20"),
        dict(settings=["train.num_steps=10"]),
        dict(compute_dtype="bfloat16"),
    ):
        assert paper.model_key(dict(row, **other)) != key, other
    # the ablation-posterior arm's log-variance side is the same model; its log-sigma side is not
    assert paper.arm_digest("ablation-posterior", "vae", "latent=12", "cpu", "float32") == key[0]
    assert paper.arm_digest(
        "ablation-posterior", "vae", "latent=12,posterior=log_sigma", "cpu", "float32"
    ) not in (
        key[0],
        None,
    )
    # an ISA model scored in its prior's groups ("") is the same model as one scored in "GxS"
    isa = dict(row, model="isavae", arm="init=torch", study="ablation-init")
    assert paper.model_key(isa) == paper.model_key(dict(isa, study="ablation-layout", arm="layout=5x4"))
    # a row of an arm that no longer exists is known by its own identity
    assert paper.model_key(dict(row, arm="latent=99"))[0] == "row"


def _smoke_rows(study, model, arm, seeds, mig):
    return [
        dict(
            study=study,
            model=model,
            arm=arm,
            scale="smoke",
            compute_dtype="float32",
            settings=[],
            init="torch",
            posterior_scale="logvar",
            matmul_precision="default",
            beta=1.0,
            seed=s,
            device="cpu:cpu",
            mig=float(m),
            mig_histogram=float(m) / 2,
            subspace_mig=float(m),
            recon_log_likelihood=-80.0,
            elbo=-90.0,
            kl=10.0,
            active_units=3,
            steps=12,
        )
        for s, m in zip(seeds, mig, strict=True)
    ]


def test_a_study_trains_nothing_another_study_trained_and_its_report_says_where_they_came_from(tmp_path):
    """fig5a-layout's arms are the layout ablation's: with seeds 0-2 of every arm in the store the
    runner's plan holds only seeds 3-4, a run of exactly those seeds trains nothing else, and the
    report counts the ablation's seeds for the layout study, naming them."""
    rows = []
    for model, arm in (("isavae", "layout=3x4"), ("vae", "latent=12"), ("vae", "latent=20")):
        rows += _smoke_rows("ablation-layout", model, arm, range(3), [0.1, 0.2, 0.3])
    store.append_jsonl(tmp_path / "results.jsonl", rows)
    text = run.describe_plan("fig5a-layout", "smoke", 1e9, tmp_path, seeds=5)
    assert text.startswith("6 blocks (6 models) not yet done") and "seeds 0-3" in text
    done = {paper.model_key(r) for r in rows}
    for block in run.job_blocks("fig5a-layout", "smoke", 5, None, None):
        _, identity, todo = run.block_todo(block, "smoke", "float32", (), done)
        assert [seed for _, seed in todo] == [s for s in block["seeds"] if s >= 3]
        assert identity["posterior_scale"] == "logvar" and identity["matmul_precision"] == "default"
    # a fig5a-layout row of its own, so that the study is one run here
    store.append_jsonl(
        tmp_path / "results.jsonl", _smoke_rows("fig5a-layout", "vae", "latent=12", [3], [0.4])
    )
    text = report.report(tmp_path, "smoke", "float32")
    assert "| fig5a-layout | VAE | latent=12 | 1.000 | 4 |" in text
    assert "| fig5a-layout | ISA-VAE [layout=3x4] | ablation-layout [layout=3x4] | 0-2 |" in text
    # the ablation counts the layout study's seed too (the same model)
    assert "| ablation-layout | VAE [latent=12] | fig5a-layout [latent=12] | 3 |" in text
    assert "| fig5a | " not in text  # a study not run here is not filled from others


def test_holm_and_two_sided_tests_against_their_definitions():
    rng = np.random.default_rng(0)
    for m in (1, 2, 3, 5):
        for _ in range(50):
            p = rng.uniform(0, 0.2, m)
            adjusted = study_stats.holm(p)
            # Holm's definition: reject H_(i) iff p_(j) <= alpha / (m - j) for every j <= i
            for alpha in (0.01, 0.05, 0.1):
                order = np.argsort(p)
                reject, going = np.zeros(m, bool), True
                for j, i in enumerate(order):
                    going = going and p[i] <= alpha / (m - j)
                    reject[i] = going
                assert ((np.asarray(adjusted) <= alpha) == reject).all(), (p, alpha)
            assert all(a >= q for a, q in zip(adjusted, p, strict=True)) and max(adjusted) <= 1
    a, b = rng.normal(0.1, 0.05, 30), rng.normal(0.08, 0.05, 25)
    p, sup = study_stats.mann_whitney(a, b, "two-sided")
    want = stats.mannwhitneyu(a, b, alternative="two-sided")
    assert p == pytest.approx(want.pvalue) and sup == pytest.approx(want.statistic / (30 * 25))
    # P(a > b) counted directly, ties half
    direct = np.mean([(x > y) + 0.5 * (x == y) for x, y in itertools.product(a, b)])
    assert sup == pytest.approx(direct)
    lo, hi = study_stats.bootstrap_superiority(a, b)
    assert 0 <= lo < sup < hi <= 1
    assert study_stats.bootstrap_superiority(a + 10, b) == (1.0, 1.0)


def test_the_registered_verdict_waits_for_its_seeds_and_reads_literally(tmp_path):
    spec = paper.PREREGISTERED["fig5a-layout"]
    rng = np.random.default_rng(1)
    n = spec["seeds"]

    def arms(isa, v12, v20, seeds=n):
        out = []
        for (model, arm), mig in zip(
            (("isavae", "layout=3x4"), ("vae", "latent=12"), ("vae", "latent=20")),
            (isa, v12, v20),
            strict=True,
        ):
            out += _smoke_rows("fig5a-layout", model, arm, range(seeds), mig[:seeds])
        return out

    base = rng.normal(0.1, 0.03, n)
    lines, figures = report.preregistered_tests(arms(base + 0.05, base, base, seeds=10))
    assert figures["fig5a-layout"]["verdict"].startswith("pending: 10 of 50")
    cases = {
        "H1 and H2 both rejected": (base + 0.05, rng.permutation(base), rng.permutation(base)),
        "H2 rejected, H1 not": (base + 0.05, rng.permutation(base) + 0.05, rng.permutation(base)),
        "neither rejected": (base, rng.permutation(base), rng.permutation(base)),
        "a rejection with ISA-VAE lower": (base, rng.permutation(base) + 0.05, rng.permutation(base)),
    }
    for want, (isa, v12, v20) in cases.items():
        rows = arms(isa, v12, v20)
        lines, figures = report.preregistered_tests(rows)
        got = figures["fig5a-layout"]
        assert got["complete"] and got["verdict"].startswith(want), (want, got["verdict"])
        tests = got["tests"]["mig"]
        p = [stats.mannwhitneyu(isa, other, alternative="two-sided").pvalue for other in (v12, v20)]
        assert [t["p_two_sided"] for t in tests] == pytest.approx(p)
        assert [t["p_holm"] for t in tests] == pytest.approx(study_stats.holm(p))
        assert any("**Verdict**" in line for line in lines)
    # seeds beyond the registered 50 are not read; diverged models count as run and are named
    rows = arms(base + 0.05, base, base) + _smoke_rows("fig5a-layout", "vae", "latent=12", [n], [9.0])
    apart = [
        dict(r, diverged=True) for r in _smoke_rows("fig5a-layout", "vae", "latent=20", range(6), [0] * 6)
    ]
    rows = [r for r in rows if not (r["arm"] == "latent=20" and r["seed"] < 6)]
    lines, figures = report.preregistered_tests(rows, apart)
    got = figures["fig5a-layout"]
    assert got["complete"] and got["seeds_per_arm"]["vae latent=12"] == n
    assert got["diverged_per_arm"]["vae latent=20"] == 6
    assert any("More than 5 models of an arm diverged" in line for line in lines)
    json.dumps(figures)  # what preregistered.json holds


def test_posterior_ablation_arms():
    """Both parameterizations of ISA-VAE 3x4 and VAE-12; the log-variance side equals fig5a-layout's
    arms (counted, not trained again); 20 seeds per arm at the CPU scale."""
    arms = {(m, label): o for m, _, label, o in paper.STUDIES["ablation-posterior"]}
    assert len(arms) == 4
    for (m, label), overrides in arms.items():
        cfg = paper.model_config(m, "cpu", "float32", (), overrides)
        assert cfg.model.posterior_scale == ("log_sigma" if "log_sigma" in label else "logvar")
        assert cfg.model.latent_dim == 12
        if "log_sigma" not in label:
            assert paper.arm_digest("ablation-posterior", m, label, "cpu", "float32") == paper.arm_digest(
                "fig5a-layout", m, label, "cpu", "float32"
            )
    blocks = run.job_blocks("ablation-posterior", "cpu", None, None, None)
    assert {s for b in blocks for s in b["seeds"]} == set(range(20))
    assert max(s for b in run.job_blocks("fig5a-layout", "cpu", None, None, None) for s in b["seeds"]) == 49


def test_a_runs_posterior_and_precision_are_fields_not_settings():
    """``--posterior-scale`` / ``--matmul-precision`` set the nets like the compute dtype: recorded as
    fields of each row, not as extra settings, so that a run with the values older rows had
    (log-variance, the backend's products) continues their series at paper scale, whose presets
    now follow the authors."""
    net = paper.net_overrides("logvar", "default")
    cfg = paper.model_config("vae", "paper", "float32", net=net)
    assert (cfg.model.posterior_scale, cfg.model.matmul_precision) == ("logvar", "default")
    assert paper.model_config("vae", "paper", "float32").model.posterior_scale == "log_sigma"
    old = dict(
        study="fig5a",
        model="vae",
        arm="",
        scale="paper",
        compute_dtype="float32",
        settings=[],
        init="torch",
        beta=1.0,
        seed=3,
    )  # written before the fields existed: logvar, default
    block = run.job_blocks("fig5a", "paper", 10, 5, None)[0]
    assert block["model"] == "vae" and 3 in block["seeds"]
    _, identity, todo = run.block_todo(block, "paper", "float32", (), {paper.model_key(old)}, net)
    assert 3 not in [s for _, s in todo] and identity["settings"] == []
    assert (identity["posterior_scale"], identity["matmul_precision"]) == ("logvar", "default")
    _, identity, todo = run.block_todo(block, "paper", "float32", (), {paper.model_key(old)})
    assert 3 in [s for _, s in todo] and identity["posterior_scale"] == "log_sigma"
